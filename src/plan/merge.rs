//! Greedy merging: a memory's non-zero runs, found by [`crate::scan`] on
//! the worker pool, merged left to right while the merged segment is
//! strictly smaller in the file (SPEC §4's first rule).

use super::wizer::{Lookout, ShortGaps, WizerGaps};
use super::{Engine, MAX_GAP, MAX_SEGMENT_LEN, MemoryImage, Range};
use crate::scan;
use crate::segment::{IndexType, MAX_FIXED_HEADER_LEN, header_len, uleb_len};

/// A gap this long never closes in the greedy pass: it costs as much as any
/// header, the longest fixed part and a 5-byte length LEB (a run that may
/// merge is within 1 GiB). Wizer's rule ([`super::wizer`]) relies on it.
pub(super) const NEVER_MERGED_GAP: u64 = MAX_FIXED_HEADER_LEN + 5;

/// Greedy left-to-right merging of non-zero runs into segments.
///
/// Runs arrive in address order, possibly cut into parts wherever the image
/// was sliced (overlay pieces, scanning jobs). Parts at most
/// [`JOINED_GAP`](scan::JOINED_GAP) zeros apart are first joined into one
/// whole run, and only a whole run is weighed: the open segment absorbs it
/// when the merged segment is strictly smaller in the file than the two apart
/// (a gap of zeros cheaper than a new header). Deciding on a part would
/// misjudge the length LEB of the segment it starts. Segments longer than
/// [`MAX_SEGMENT_LEN`] are split.
#[derive(Debug, Clone)]
pub(crate) struct Merger {
    memory_index: u32,
    index_type: IndexType,
    /// The segment being built.
    open: Option<Range>,
    /// The latest run, which may still grow; not yet weighed.
    last: Option<Range>,
}

impl Merger {
    pub(crate) fn new(memory_index: u32, index_type: IndexType) -> Self {
        Merger {
            memory_index,
            index_type,
            open: None,
            last: None,
        }
    }

    /// Whether joining `a` and the following `b` makes the file smaller.
    #[inline]
    pub(super) fn worth_merging(&self, a: Range, b: Range) -> bool {
        let gap = b.start - a.end;
        // A header is at least 4 bytes besides its length LEB, and joining
        // grows the length LEB by at most 2 bytes more than `b`'s own: gaps
        // of up to 2 bytes always pay (see docs/design.md).
        if gap <= 2 {
            return true;
        }
        if gap >= MAX_GAP || b.end - a.start > MAX_SEGMENT_LEN {
            return false;
        }
        // cost(a.start..b.end) < cost(a) + cost(b), with what both sides
        // share (`a`'s flag, memory, offset and payload, `b`'s payload)
        // taken out: the merged length LEB and the gap against `a`'s length
        // LEB and `b`'s whole header.
        uleb_len(b.end - a.start) + gap
            < uleb_len(a.end - a.start)
                + header_len(self.memory_index, self.index_type, b.start, b.end - b.start)
    }

    /// Takes the next run (or part of one); hands finished segments to `out`.
    #[inline]
    pub(crate) fn push(&mut self, run: Range, out: &mut impl FnMut(Range)) {
        match &mut self.last {
            Some(last) if run.start - last.end <= scan::JOINED_GAP as u64 => last.end = run.end,
            _ => {
                if let Some(whole) = self.last.replace(run) {
                    self.weigh(whole, out);
                }
            }
        }
    }

    /// Merges a whole run into the open segment, or starts a new one.
    pub(super) fn weigh(&mut self, run: Range, out: &mut impl FnMut(Range)) {
        match self.open {
            Some(open) if self.worth_merging(open, run) => {
                self.open = Some(Range {
                    start: open.start,
                    end: run.end,
                })
            }
            Some(open) => {
                Self::flush(open, out);
                self.open = Some(run);
            }
            None => self.open = Some(run),
        }
    }

    /// Hands `range` to `out` as segments of at most [`MAX_SEGMENT_LEN`],
    /// cut from its start.
    pub(super) fn flush(mut range: Range, out: &mut impl FnMut(Range)) {
        while range.len() > MAX_SEGMENT_LEN {
            out(Range {
                start: range.start,
                end: range.start + MAX_SEGMENT_LEN,
            });
            range.start += MAX_SEGMENT_LEN;
        }
        out(range);
    }

    /// Hands the open segment, if any, to `out`: the input has ended.
    pub(crate) fn finish_open(&mut self, out: &mut impl FnMut(Range)) {
        if let Some(whole) = self.last.take() {
            self.weigh(whole, out);
        }
        if let Some(open) = self.open.take() {
            Self::flush(open, out);
        }
    }
}

/// Whether a whole run starting `gap` bytes after the open segment ends
/// splits from it whatever that segment is: the gap alone costs as much as
/// the run's own header. Such splits let a worker merge its job
/// independently.
pub(super) fn always_splits(
    memory_index: u32,
    index_type: IndexType,
    prev_end: u64,
    run: Range,
) -> bool {
    let gap = run.start - prev_end;
    gap >= MAX_GAP || gap >= header_len(memory_index, index_type, run.start, run.len())
}

/// What a worker makes of one job.
pub(super) struct JobResult {
    /// The runs up to the first split that holds whatever came before the
    /// job: the consumer merges them into its own state.
    prefix: Vec<Range>,
    /// From that split on, the merging is the worker's: the finished
    /// segments, and its merger's state at the job's end.
    body: Option<(Vec<Range>, Merger)>,
}

/// The runs of a job before its body starts (see [`JobResult`]).
pub(super) struct Prefix {
    runs: Vec<Range>,
    /// The end of the last whole run in `runs`.
    prev_end: Option<u64>,
    /// The latest run, which may still grow.
    latest: Option<Range>,
}

impl Prefix {
    /// Takes the next run; returns the body's first open segment and latest
    /// run when the body starts with it.
    #[inline(never)]
    pub(super) fn push(
        &mut self,
        memory_index: u32,
        index_type: IndexType,
        run: Range,
    ) -> Option<(Range, Range)> {
        match &mut self.latest {
            Some(l) if run.start - l.end <= scan::JOINED_GAP as u64 => l.end = run.end,
            _ => {
                // `whole` is complete: `run` starts past its joining gap.
                if let Some(whole) = self.latest.replace(run) {
                    if self
                        .prev_end
                        .is_some_and(|p| always_splits(memory_index, index_type, p, whole))
                    {
                        self.latest = None;
                        return Some((whole, run));
                    }
                    self.runs.push(whole);
                    self.prev_end = Some(whole.end);
                }
            }
        }
        None
    }
}

/// Scans one job and merges its runs greedily, as far as that can be done
/// without knowing what came before (see [`JobResult`]).
pub(super) fn scan_and_merge<'a>(
    memory_index: u32,
    index_type: IndexType,
    job: impl Iterator<Item = (u64, &'a [u8])>,
    wizer: &mut WizerGaps,
) -> JobResult {
    let mut prefix = Prefix {
        runs: Vec::new(),
        prev_end: None,
        latest: None,
    };
    // Once the body has started: the open segment and the latest run (the
    // state of a [`Merger`], both always present), and the finished segments.
    let merger = Merger::new(memory_index, index_type);
    let mut started = false;
    let mut open = Range { start: 0, end: 0 };
    let mut last = Range { start: 0, end: 0 };
    // `done[..finished]` are the finished segments; the rest is scratch.
    let mut done = Vec::new();
    let mut finished = 0;
    for (offset, data) in job {
        scan::for_each_run(
            data,
            #[inline(always)]
            |s, e| {
                let run = Range {
                    start: offset + s as u64,
                    end: offset + e as u64,
                };
                wizer.run(run);
                if started {
                    // As `Merger::push` does.
                    if run.start - last.end <= scan::JOINED_GAP as u64 {
                        last.end = run.end;
                    } else {
                        let whole = std::mem::replace(&mut last, run);
                        let merge = merger.worth_merging(open, whole);
                        if !merge & (open.len() > MAX_SEGMENT_LEN) {
                            done.truncate(finished);
                            Merger::flush(open, &mut |r| done.push(r));
                            finished = done.len();
                            open = whole;
                        } else {
                            // Without a branch on `merge`, which the data
                            // decides run by run: `open` is written to the next
                            // free slot either way, and kept only when it ends.
                            if finished == done.len() {
                                done.resize(2 * finished + 64, open);
                            }
                            done[finished] = open;
                            finished += usize::from(!merge);
                            open = Range {
                                start: if merge { open.start } else { whole.start },
                                end: whole.end,
                            };
                        }
                    }
                } else if let Some((o, l)) = prefix.push(memory_index, index_type, run) {
                    (open, last, started) = (o, l, true);
                }
            },
        );
    }
    // A run at the job's end may go on in the next job: it is never weighed
    // here, it goes to the consumer.
    prefix.runs.extend(prefix.latest);
    done.truncate(finished);
    JobResult {
        prefix: prefix.runs,
        body: started.then(|| {
            let mut merger = merger;
            merger.open = Some(open);
            merger.last = Some(last);
            (done, merger)
        }),
    }
}

/// Runs every greedy segment of `pieces` through `out`, in order. Workers
/// scan and merge jobs in parallel; the calling thread stitches their
/// results together with its own [`Merger`], so the segments are exactly
/// those of one greedy pass over all runs, for any number of threads. With
/// `short`, workers also look for Wizer's short gaps in their jobs.
pub(super) fn greedy_segments<'a, P: scan::Slice<'a>>(
    image: &MemoryImage<'_>,
    pieces: &[P],
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
    mut short: Option<&mut ShortGaps>,
    out: &mut impl FnMut(Range),
) {
    let (memory_index, index_type) = (image.memory_index, image.index_type);
    let mut merger = Merger::new(memory_index, index_type);
    let jobs = scan::jobs(pieces, engine.job_bytes);
    if let Some(short) = short.as_deref_mut() {
        short.start_image(image);
    }
    let lookout = Lookout::new(short.as_deref());
    crate::pool::map_ordered(
        &jobs,
        engine.threads,
        |job| {
            let mut gaps = lookout.job();
            let merged = scan_and_merge(memory_index, index_type, job.slices(pieces), &mut gaps);
            (merged, gaps)
        },
        |i, (result, gaps)| {
            for run in result.prefix {
                merger.push(run, out);
            }
            if let Some((done, state)) = result.body {
                merger.finish_open(out);
                done.into_iter().for_each(&mut *out);
                merger = state;
            }
            let mut bytes = 0;
            for (_, data) in jobs[i].slices(pieces) {
                bytes += data.len() as u64;
                release(data);
            }
            if let Some(short) = short.as_deref_mut() {
                lookout.take(short, gaps, bytes);
            }
        },
    );
    merger.finish_open(out);
}
