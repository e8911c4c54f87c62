//! Planning: from a memory's active segments to the fewest bytes of packed
//! segments. Pure computation over borrowed slices; no I/O.
//!
//! The steps, per memory:
//! 1. [`overlay`]: resolve overlapping segments, last writer wins, into
//!    sorted, disjoint pieces of the image (zeros between them).
//! 2. Find the image's non-zero runs ([`crate::scan`], in parallel) and merge
//!    neighbours greedily while the merged segment is strictly smaller in the
//!    file ([`Merger`]), using the exact header size ([`crate::segment`]).
//! 3. Over all memories: if there are more segments than the cap allows,
//!    close the cheapest gaps ([`GapTracker`]). Only the gaps that stay open
//!    are kept, at most the cap's worth, so memory does not grow with the
//!    image: one scan, no list of all runs.
//! 4. Describe each segment's payload as parts borrowing the pieces
//!    ([`build_parts`]).

use std::collections::BTreeMap;

use crate::scan;

mod coarse;
use crate::segment::{IndexType, Part, header_len, uleb_len};

/// SpiderMonkey rejects data segments longer than 1 GiB, so no merged
/// segment grows past it.
pub const MAX_SEGMENT_LEN: u64 = 1 << 30;

/// A gap this long is never closed: it would write at least 4 GiB of zeros.
pub const MAX_GAP: u64 = 1 << 32;

/// A piece of a memory's image: `data` is at `offset`, and no other piece
/// overlaps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece<'a> {
    pub offset: u64,
    pub data: &'a [u8],
}

impl Piece<'_> {
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// A memory to pack: its identity and its image as pieces.
#[derive(Debug, Clone)]
pub(crate) struct MemoryImage<'a> {
    pub memory_index: u32,
    pub index_type: IndexType,
    /// Sorted by offset and disjoint (see [`overlay`]).
    pub pieces: Vec<Piece<'a>>,
}

/// A planned segment: the image range `start..end` of one memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Resolves segments, given in section order, into the image's disjoint
/// pieces sorted by offset. Where segments overlap, the later one's bytes win,
/// as instantiation applies them in order. Empty segments contribute nothing.
pub(crate) fn overlay<'a>(segments: &[(u64, &'a [u8])]) -> Vec<Piece<'a>> {
    let pieces: Vec<Piece<'a>> = segments
        .iter()
        .filter(|(_, d)| !d.is_empty())
        .map(|&(offset, data)| Piece { offset, data })
        .collect();
    // The common case (every producer we know): sorted and disjoint already.
    if pieces.windows(2).all(|w| w[0].end() <= w[1].offset) {
        return pieces;
    }
    // Walk from the last writer back; `covered` holds the union of what later
    // segments wrote, as start -> end of disjoint, non-adjacent intervals.
    let mut covered: BTreeMap<u64, u64> = BTreeMap::new();
    let mut visible = Vec::new();
    for piece in pieces.iter().rev() {
        let (a, b) = (piece.offset, piece.end());
        // First interval that may overlap [a, b): the last one starting at or before a.
        let first = covered
            .range(..=a)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(a);
        let overlapping: Vec<(u64, u64)> = covered
            .range(first..b)
            .map(|(&s, &e)| (s, e))
            .filter(|&(_, e)| e > a)
            .collect();
        let mut pos = a;
        for &(s, e) in &overlapping {
            if s > pos {
                visible.push(slice_piece(piece, pos, s));
            }
            pos = pos.max(e);
        }
        if pos < b {
            visible.push(slice_piece(piece, pos, b));
        }
        let mut new_start = a;
        let mut new_end = b;
        for &(s, e) in &overlapping {
            covered.remove(&s);
            new_start = new_start.min(s);
            new_end = new_end.max(e);
        }
        covered.insert(new_start, new_end);
    }
    visible.sort_unstable_by_key(|p| p.offset);
    visible
}

fn slice_piece<'a>(piece: &Piece<'a>, start: u64, end: u64) -> Piece<'a> {
    let from = (start - piece.offset) as usize;
    let to = (end - piece.offset) as usize;
    Piece {
        offset: start,
        data: &piece.data[from..to],
    }
}

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
    fn worth_merging(&self, a: Range, b: Range) -> bool {
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
    fn weigh(&mut self, run: Range, out: &mut impl FnMut(Range)) {
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

    fn flush(mut range: Range, out: &mut impl FnMut(Range)) {
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
fn always_splits(memory_index: u32, index_type: IndexType, prev_end: u64, run: Range) -> bool {
    let gap = run.start - prev_end;
    gap >= MAX_GAP || gap >= header_len(memory_index, index_type, run.start, run.len())
}

/// What a worker makes of one job.
struct JobResult {
    /// The runs up to the first split that holds whatever came before the
    /// job: the consumer merges them into its own state.
    prefix: Vec<Range>,
    /// From that split on, the merging is the worker's: the finished
    /// segments, and its merger's state at the job's end.
    body: Option<(Vec<Range>, Merger)>,
}

/// The runs of a job before its body starts (see [`JobResult`]).
struct Prefix {
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
    fn push(
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
fn scan_and_merge(memory_index: u32, index_type: IndexType, job: &scan::Job<'_>) -> JobResult {
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
    for &(offset, data) in job {
        scan::for_each_run(
            data,
            #[inline(always)]
            |s, e| {
                let run = Range {
                    start: offset + s as u64,
                    end: offset + e as u64,
                };
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

/// What closing one gap costs, and where it is: the order in which gaps are
/// closed when over the cap. Cheapest first; ties by lower (memory, offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GapKey {
    extra_bytes: u64,
    memory_index: u32,
    gap_start: u64,
}

/// A gap between greedy segments that may stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Gap {
    key: GapKey,
    gap_end: u64,
}

/// The key of the gap between neighbouring greedy segments `a` and `b`, or
/// `None` when that gap may never be closed (4 GiB or more of zeros, or a
/// merged segment past 1 GiB). The definition [`GapTracker::segment`]
/// computes in short.
#[cfg(test)]
fn gap_key(memory_index: u32, index_type: IndexType, a: Range, b: Range) -> Option<GapKey> {
    use crate::segment::segment_len;
    let merged = Range {
        start: a.start,
        end: b.end,
    };
    if b.start - a.end >= MAX_GAP || merged.len() > MAX_SEGMENT_LEN {
        return None;
    }
    let cost = |r: Range| segment_len(memory_index, index_type, r.start, r.len());
    Some(GapKey {
        extra_bytes: cost(merged).saturating_sub(cost(a) + cost(b)),
        memory_index,
        gap_start: a.end,
    })
}

/// Follows the greedy segments of every memory, in (memory, offset) order,
/// and keeps only what the final layout needs: each memory's extent, the
/// gaps that can never close, and the `budget` most expensive closable gaps.
///
/// Over the cap, the cheapest `greedy - budget` gaps close; the rest stay
/// open. The most expensive ones are kept in a buffer of at most
/// `2 × budget` gaps, cut back to the `budget` most expensive whenever it
/// fills (a selection, linear), so memory is O(budget), not O(runs).
#[derive(Debug)]
struct GapTracker {
    budget: u64,
    greedy_segments: u64,
    closable_gaps: u64,
    /// The most expensive closable gaps seen: every one of the `budget`
    /// most expensive is here, with at most as many cheaper ones besides
    /// (cut back in batches, [`GapTracker::keep_most_expensive`]).
    open: Vec<Gap>,
    never_closed: Vec<Gap>,
    /// Per memory with any segment: (memory index, first start, last end).
    extents: Vec<(u32, u64, u64)>,
    previous: Option<Range>,
    /// The extra bytes of the cheapest gap kept at the last cut, else 0:
    /// `budget` gaps cost more than a gap with fewer, which never enters.
    floor: u64,
}

impl GapTracker {
    fn new(budget: u64) -> Self {
        GapTracker {
            budget,
            greedy_segments: 0,
            closable_gaps: 0,
            open: Vec::new(),
            never_closed: Vec::new(),
            extents: Vec::new(),
            previous: None,
            floor: 0,
        }
    }

    fn start_memory(&mut self) {
        self.previous = None;
    }

    fn segment(&mut self, memory_index: u32, index_type: IndexType, r: Range) {
        self.greedy_segments += 1;
        let Some(prev) = self.previous.replace(r) else {
            self.extents.push((memory_index, r.start, r.end));
            return;
        };
        self.extents.last_mut().expect("extent of this memory").2 = r.end;
        let gap_end = r.start;
        let gap = r.start - prev.end;
        if gap >= MAX_GAP || r.end - prev.start > MAX_SEGMENT_LEN {
            // As `gap_key` says: never closed.
            self.never_closed.push(Gap {
                key: GapKey {
                    extra_bytes: u64::MAX,
                    memory_index,
                    gap_start: prev.end,
                },
                gap_end,
            });
            return;
        }
        self.closable_gaps += 1;
        let extra_bytes = closing_cost(memory_index, index_type, prev, r);
        // Most gaps are cheaper than every kept one: settled by `floor`.
        if extra_bytes < self.floor {
            return;
        }
        let gap = Gap {
            key: GapKey {
                extra_bytes,
                memory_index,
                gap_start: prev.end,
            },
            gap_end,
        };
        if self.budget == 0 {
            return;
        }
        self.open.push(gap);
        if self.open.len() as u64 >= self.budget.saturating_mul(2) {
            self.keep_most_expensive(self.budget);
            self.floor = self.open.first().map_or(0, |g| g.key.extra_bytes);
        }
    }

    /// Keeps only the `n` most expensive gaps of `open` (keys are distinct),
    /// the cheapest of them first.
    fn keep_most_expensive(&mut self, n: u64) {
        let len = self.open.len() as u64;
        if n == 0 {
            self.open.clear();
        } else if len > n {
            let cut = (len - n) as usize;
            self.open.select_nth_unstable(cut);
            self.open.drain(..cut);
        }
    }

    /// The final segments of each memory, as (memory index, range), in
    /// (memory, offset) order, before the 1 GiB re-split.
    fn finish(mut self) -> Vec<(u32, Range)> {
        // Memories may have come in any order (the streaming planner); a
        // stable sort leaves those that came in order as they are.
        self.extents
            .sort_by_key(|&(memory_index, _, _)| memory_index);
        // Closable gaps that stay open: all of them if within budget, else
        // the most expensive `closable - (greedy - budget)`.
        let need = self.greedy_segments.saturating_sub(self.budget);
        let stay_open = self.closable_gaps.saturating_sub(need);
        self.keep_most_expensive(stay_open.min(self.budget));
        let gaps = self.open.iter().chain(&self.never_closed).map(|g| {
            let gap = Range {
                start: g.key.gap_start,
                end: g.gap_end,
            };
            (g.key.memory_index, gap)
        });
        cut_extents(self.extents, gaps.collect())
    }
}

/// What closing the gap between neighbouring greedy segments `a` and `b`
/// adds to the file: [`gap_key`]'s extra bytes, with what the merged segment
/// and the two apart share taken out (as in [`Merger::worth_merging`]).
fn closing_cost(memory_index: u32, index_type: IndexType, a: Range, b: Range) -> u64 {
    (uleb_len(b.end - a.start) + (b.start - a.end))
        .saturating_sub(uleb_len(a.len()) + header_len(memory_index, index_type, b.start, b.len()))
}

/// The final segments: each memory's extent `(memory index, first start,
/// last end)` cut at the gaps that stay open, `(memory index, gap)`.
fn cut_extents(extents: Vec<(u32, u64, u64)>, mut gaps: Vec<(u32, Range)>) -> Vec<(u32, Range)> {
    gaps.sort_unstable_by_key(|&(memory_index, gap)| (memory_index, gap.start));
    let mut out = Vec::with_capacity(gaps.len() + extents.len());
    let mut gaps = gaps.into_iter().peekable();
    for (memory_index, first, last) in extents {
        let mut start = first;
        while let Some((_, gap)) = gaps.next_if(|&(m, _)| m == memory_index) {
            out.push((
                memory_index,
                Range {
                    start,
                    end: gap.start,
                },
            ));
            start = gap.end;
        }
        out.push((memory_index, Range { start, end: last }));
    }
    out
}

/// Pieces of `image` clipped to `range`, for scanning a part of it again.
fn pieces_within<'a>(image: &MemoryImage<'a>, range: Range) -> Vec<(u64, &'a [u8])> {
    let first = image.pieces.partition_point(|p| p.end() <= range.start);
    image.pieces[first..]
        .iter()
        .take_while(|p| p.offset < range.end)
        .map(|p| {
            let from = p.offset.max(range.start);
            let to = p.end().min(range.end);
            (
                from,
                &p.data[(from - p.offset) as usize..(to - p.offset) as usize],
            )
        })
        .collect()
}

/// Runs every greedy segment of `pieces` through `out`, in order. Workers
/// scan and merge jobs in parallel; the calling thread stitches their
/// results together with its own [`Merger`], so the segments are exactly
/// those of one greedy pass over all runs, for any number of threads.
fn greedy_segments(
    image: &MemoryImage<'_>,
    pieces: &[(u64, &[u8])],
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
    out: &mut impl FnMut(Range),
) {
    let (memory_index, index_type) = (image.memory_index, image.index_type);
    let mut merger = Merger::new(memory_index, index_type);
    let jobs = scan::jobs(pieces, engine.job_bytes);
    crate::pool::map_ordered(
        &jobs,
        engine.threads,
        |job| scan_and_merge(memory_index, index_type, job),
        |i, result| {
            for run in result.prefix {
                merger.push(run, out);
            }
            if let Some((done, state)) = result.body {
                merger.finish_open(out);
                done.into_iter().for_each(&mut *out);
                merger = state;
            }
            for (_, data) in &jobs[i] {
                release(data);
            }
        },
    );
    merger.finish_open(out);
}

/// Splits a final segment longer than [`MAX_SEGMENT_LEN`]: its gaps were
/// all chosen to close, so walk its greedy segments again and close them left
/// to right while the segment stays within 1 GiB.
fn split_long(image: &MemoryImage<'_>, range: Range, engine: Engine, out: &mut Vec<Range>) {
    let mut current: Option<Range> = None;
    let pieces = pieces_within(image, range);
    greedy_segments(image, &pieces, engine, &|_| {}, &mut |r: Range| {
        current = Some(match current {
            Some(c) if r.end - c.start <= MAX_SEGMENT_LEN => Range {
                start: c.start,
                end: r.end,
            },
            Some(c) => {
                out.push(c);
                r
            }
            None => r,
        });
    });
    out.extend(current);
}

/// How scanning is split up, and whether to try the coarse route first: the
/// result never depends on it.
#[derive(Debug, Clone, Copy)]
struct Engine {
    threads: usize,
    job_bytes: usize,
    coarse: bool,
}

/// Images of at least this many bytes per segment of the cap try the coarse
/// route ([`coarse`]) first: the cap then binds hard enough that only long
/// gaps stay open. Below it a full pass is cheap anyway.
const COARSE_BYTES_PER_SEGMENT: u64 = 256;

/// The packed segments of some memories, in (memory, offset) order.
pub(crate) struct Packed<'a> {
    pub segments: Vec<crate::PackedSegment<'a>>,
    /// Whether the segment budget was met.
    pub cap_met: bool,
}

/// Packs the images, in memory order, into at most `budget` segments where
/// possible. `release` is told which input bytes were scanned for good.
pub(crate) fn pack_images<'a>(
    images: &[MemoryImage<'a>],
    budget: u64,
    threads: usize,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Packed<'a> {
    let engine = Engine {
        threads: crate::pool::thread_count(threads),
        job_bytes: scan::JOB_BYTES,
        coarse: image_bytes(images) >= budget.saturating_mul(COARSE_BYTES_PER_SEGMENT),
    };
    pack_images_with(images, budget, engine, release)
}

/// Plans memories handed in one at a time, in any order, keeping only what
/// the final layout needs (O(budget), as [`GapTracker`]), never their bytes:
/// the planner behind [`crate::Packer`].
#[derive(Debug)]
pub(crate) struct StreamingPlan {
    tracker: GapTracker,
    engine: Engine,
}

impl StreamingPlan {
    pub(crate) fn new(budget: u64, threads: usize) -> Self {
        StreamingPlan {
            tracker: GapTracker::new(budget),
            engine: Engine {
                threads: crate::pool::thread_count(threads),
                job_bytes: scan::JOB_BYTES,
                coarse: false,
            },
        }
    }

    /// Scans one whole memory, its image `data` from address 0.
    pub(crate) fn add(&mut self, memory_index: u32, index_type: IndexType, data: &[u8]) {
        let image = MemoryImage {
            memory_index,
            index_type,
            pieces: Vec::new(),
        };
        let tracker = &mut self.tracker;
        tracker.start_memory();
        greedy_segments(&image, &[(0, data)], self.engine, &|_| {}, &mut |r| {
            tracker.segment(memory_index, index_type, r)
        });
    }

    /// The final segments, in (memory, offset) order, and whether they are
    /// within the budget. A segment longer than [`MAX_SEGMENT_LEN`] is cut
    /// at that length (the bytes are gone, so its gaps cannot be looked for
    /// again as [`split_long`] does).
    pub(crate) fn finish(self) -> (Vec<(u32, Range)>, bool) {
        let budget = self.tracker.budget;
        let mut out = Vec::new();
        for (memory_index, mut r) in self.tracker.finish() {
            while r.len() > MAX_SEGMENT_LEN {
                let end = r.start + MAX_SEGMENT_LEN;
                out.push((
                    memory_index,
                    Range {
                        start: r.start,
                        end,
                    },
                ));
                r.start = end;
            }
            out.push((memory_index, r));
        }
        let cap_met = out.len() as u64 <= budget;
        (out, cap_met)
    }
}

/// The bytes of all pieces of `images`: what a scan reads.
fn image_bytes(images: &[MemoryImage<'_>]) -> u64 {
    images
        .iter()
        .flat_map(|image| &image.pieces)
        .map(|p| p.data.len() as u64)
        .sum()
}

fn pack_images_with<'a>(
    images: &[MemoryImage<'a>],
    budget: u64,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Packed<'a> {
    let coarse = engine
        .coarse
        .then(|| coarse::final_ranges(images, budget, engine, release))
        .flatten();
    let finals = coarse.unwrap_or_else(|| {
        let mut tracker = GapTracker::new(budget);
        for image in images {
            tracker.start_memory();
            let pieces: Vec<(u64, &[u8])> =
                image.pieces.iter().map(|p| (p.offset, p.data)).collect();
            greedy_segments(image, &pieces, engine, release, &mut |r| {
                tracker.segment(image.memory_index, image.index_type, r)
            });
        }
        tracker.finish()
    });
    let mut segments = Vec::new();
    let mut ranges = Vec::new();
    let mut finals = finals.into_iter().peekable();
    for image in images {
        ranges.clear();
        while let Some((_, r)) = finals.next_if(|(m, _)| *m == image.memory_index) {
            if r.len() > MAX_SEGMENT_LEN {
                split_long(image, r, engine, &mut ranges);
            } else {
                ranges.push(r);
            }
        }
        let mut cursor = 0;
        for &range in &ranges {
            segments.push(crate::PackedSegment {
                memory_index: image.memory_index,
                offset: range.start,
                parts: build_parts(&image.pieces, &mut cursor, range),
            });
        }
    }
    let cap_met = segments.len() as u64 <= budget;
    Packed { segments, cap_met }
}

/// The payload of segment `range` as parts of the image's pieces, with zeros
/// for the holes between them. `cursor` is the index of the first piece that
/// may overlap `range`; ranges must be asked for in address order.
pub(crate) fn build_parts<'a>(
    pieces: &[Piece<'a>],
    cursor: &mut usize,
    range: Range,
) -> Vec<Part<'a>> {
    let mut parts = Vec::new();
    let mut pos = range.start;
    while *cursor < pieces.len() && pieces[*cursor].end() <= range.start {
        *cursor += 1;
    }
    let mut i = *cursor;
    while i < pieces.len() && pieces[i].offset < range.end {
        let p = pieces[i];
        let from = p.offset.max(range.start);
        let to = p.end().min(range.end);
        if from > pos {
            parts.push(Part::Zeros(from - pos));
        }
        parts.push(Part::Bytes(
            &p.data[(from - p.offset) as usize..(to - p.offset) as usize],
        ));
        pos = to;
        if p.end() > range.end {
            break;
        }
        i += 1;
    }
    *cursor = i;
    if pos < range.end {
        parts.push(Part::Zeros(range.end - pos));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn image(
        memory_index: u32,
        index_type: IndexType,
        segments: &[(u64, Vec<u8>)],
    ) -> MemoryImage<'_> {
        let segments: Vec<(u64, &[u8])> = segments.iter().map(|(o, d)| (*o, &d[..])).collect();
        MemoryImage {
            memory_index,
            index_type,
            pieces: overlay(&segments),
        }
    }

    /// The plain definition: one serial greedy pass over the runs of the
    /// same slices, then close the cheapest gaps (all keys sorted) left to
    /// right within 1 GiB.
    fn reference(images: &[MemoryImage<'_>], budget: u64) -> Vec<(u32, u64, u64)> {
        let mut plans = Vec::new();
        for image in images {
            // The image's whole runs, byte by byte: non-zero bytes at most
            // JOINED_GAP zeros apart, however the image is sliced.
            let mut runs: Vec<Range> = Vec::new();
            for piece in image.pieces.iter() {
                for (i, &b) in piece.data.iter().enumerate() {
                    let at = piece.offset + i as u64;
                    match runs.last_mut() {
                        _ if b == 0 => {}
                        Some(r) if at - r.end <= scan::JOINED_GAP as u64 => r.end = at + 1,
                        _ => runs.push(Range {
                            start: at,
                            end: at + 1,
                        }),
                    }
                }
            }
            let mut merger = Merger::new(image.memory_index, image.index_type);
            let mut segments = Vec::new();
            for run in runs {
                merger.push(run, &mut |r| segments.push(r));
            }
            merger.finish_open(&mut |r| segments.push(r));
            plans.push(segments);
        }
        let total: u64 = plans.iter().map(|p| p.len() as u64).sum();
        if total > budget {
            let mut keys: Vec<GapKey> = images
                .iter()
                .zip(&plans)
                .flat_map(|(im, p)| {
                    p.windows(2)
                        .filter_map(|w| gap_key(im.memory_index, im.index_type, w[0], w[1]))
                })
                .collect();
            keys.sort();
            let need = (total - budget) as usize;
            let threshold = keys.get(need.min(keys.len()).saturating_sub(1)).copied();
            for (im, plan) in images.iter().zip(plans.iter_mut()) {
                let mut out: Vec<Range> = Vec::new();
                for (j, &r) in plan.iter().enumerate() {
                    if let Some(last) = out.last_mut() {
                        let chosen = gap_key(im.memory_index, im.index_type, plan[j - 1], r)
                            .is_some_and(|k| threshold.is_some_and(|t| k <= t));
                        if chosen && r.end - last.start <= MAX_SEGMENT_LEN {
                            last.end = r.end;
                            continue;
                        }
                    }
                    out.push(r);
                }
                *plan = out;
            }
        }
        images
            .iter()
            .zip(plans)
            .flat_map(|(im, p)| {
                p.into_iter()
                    .map(move |r| (im.memory_index, r.start, r.end))
            })
            .collect()
    }

    fn packed(
        images: &[MemoryImage<'_>],
        budget: u64,
        threads: usize,
        job_bytes: usize,
    ) -> Vec<(u32, u64, u64)> {
        packed_with(
            images,
            budget,
            Engine {
                threads,
                job_bytes,
                coarse: false,
            },
        )
    }

    fn packed_with(
        images: &[MemoryImage<'_>],
        budget: u64,
        engine: Engine,
    ) -> Vec<(u32, u64, u64)> {
        pack_images_with(images, budget, engine, &|_| {})
            .segments
            .iter()
            .map(|s| (s.memory_index, s.offset, s.offset + s.len()))
            .collect()
    }

    /// Zero-heavy bytes, so runs, short gaps and long gaps all occur.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![6 => Just(0u8), 3 => 1..=255u8], 0..400)
    }

    fn segments() -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
        proptest::collection::vec((0u64..3000, bytes()), 0..6)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Workers, job cuts and the bounded gap buffer give exactly the plain
        /// serial greedy pass and the sort-everything cap.
        #[test]
        fn engine_matches_the_plain_definition(
            mem0 in segments(),
            mem1 in segments(),
            high in any::<bool>(),
            budget in 1u64..40,
            threads in 1usize..4,
            job_bytes in prop_oneof![Just(7usize), Just(64), Just(333), Just(1 << 20)],
        ) {
            // Memory 1 is 64-bit and, optionally, high in the address space
            // where offsets take long LEBs.
            let base = if high { 1u64 << 40 } else { 0 };
            let mem1: Vec<(u64, Vec<u8>)> = mem1.into_iter().map(|(o, d)| (o + base, d)).collect();
            let images = [image(0, IndexType::I32, &mem0), image(1, IndexType::I64, &mem1)];
            let expected = reference(&images, budget);
            prop_assert_eq!(packed(&images, budget, threads, job_bytes), expected);
        }

        /// Packed segments hold exactly the image's bytes, and nothing outside them is non-zero.
        #[test]
        fn segments_cover_every_non_zero_byte(segs in segments(), budget in 1u64..10) {
            let im = image(0, IndexType::I32, &segs);
            let mut expected = vec![0u8; 4000];
            for (o, d) in &segs {
                expected[*o as usize..*o as usize + d.len()].copy_from_slice(d);
            }
            let mut actual = vec![0u8; 4000];
            let engine = Engine { threads: 2, job_bytes: 64, coarse: true };
            let result = pack_images_with(std::slice::from_ref(&im), budget, engine, &|_| {});
            let mut last_end = 0;
            for s in &result.segments {
                prop_assert!(s.offset >= last_end, "sorted and disjoint");
                let bytes = s.to_vec();
                prop_assert!(bytes.first() != Some(&0) && bytes.last() != Some(&0), "trimmed");
                actual[s.offset as usize..s.offset as usize + bytes.len()].copy_from_slice(&bytes);
                last_end = s.offset + s.len();
            }
            prop_assert_eq!(actual, expected);
            prop_assert!(result.segments.len() as u64 <= budget);
        }
    }

    /// Objects (non-zero bytes with short zero gaps inside) separated by
    /// gaps around [`coarse::BIG_GAP`] and the cost cut, with region lengths
    /// on both sides of LEB boundaries: what the coarse route must weigh.
    fn snapshot_like() -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
        let object = (
            prop_oneof![0u64..8, 20u64..45, 100u64..180, 180u64..700],
            prop_oneof![1usize..20, 100usize..160, 300usize..600],
            any::<u8>(),
        );
        (proptest::collection::vec(object, 1..60), 0u64..2).prop_map(|(objects, split)| {
            let mut data = Vec::new();
            for (gap, len, seed) in objects {
                data.extend(std::iter::repeat_n(0u8, gap as usize));
                let seed = seed | 1;
                data.extend((0..len).map(|i| {
                    let x = (i as u8).wrapping_mul(seed).wrapping_add(seed);
                    if x % 7 == 0 { 0 } else { x | 1 }
                }));
            }
            // One segment, or two with a hole between them.
            if split == 0 || data.len() < 2 {
                vec![(0, data)]
            } else {
                let tail = data.split_off(data.len() / 2);
                let at = data.len() as u64 + 150;
                vec![(0, data), (at, tail)]
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The coarse route, when it applies, gives exactly the full pass.
        #[test]
        fn coarse_route_matches_the_plain_definition(
            mem0 in snapshot_like(),
            mem1 in snapshot_like(),
            high in any::<bool>(),
            budget in 1u64..40,
            threads in 1usize..3,
            job_bytes in prop_oneof![Just(64usize), Just(1000), Just(1 << 20)],
        ) {
            let base = if high { 1u64 << 40 } else { 0 };
            let mem1: Vec<(u64, Vec<u8>)> = mem1.into_iter().map(|(o, d)| (o + base, d)).collect();
            let images = [image(0, IndexType::I32, &mem0), image(1, IndexType::I64, &mem1)];
            let engine = Engine { threads, job_bytes, coarse: true };
            prop_assert_eq!(packed_with(&images, budget, engine), reference(&images, budget));
        }
    }

    #[test]
    fn the_coarse_route_applies_when_the_cap_binds_on_long_gaps() {
        // 40 objects 200 to 590 zeros apart, 10 segments allowed: the 9
        // longest gaps stay open, whatever the short gaps inside objects do.
        let mut data = Vec::new();
        for i in 0..40usize {
            data.extend(std::iter::repeat_n(0u8, 200 + (i * 37) % 391));
            data.extend((0..150).map(|j| if j % 9 == 0 { 0 } else { (i + j) as u8 | 1 }));
        }
        let segs = vec![(0u64, data)];
        let im = image(0, IndexType::I32, &segs);
        let engine = Engine {
            threads: 1,
            job_bytes: 256,
            coarse: true,
        };
        let images = std::slice::from_ref(&im);
        assert!(coarse::final_ranges(images, 10, engine, &|_| {}).is_some());
        assert_eq!(packed_with(images, 10, engine), reference(images, 10));
        // With room for every greedy segment, the cap does not bind: the
        // route declines and the full pass decides.
        assert!(coarse::final_ranges(images, 5000, engine, &|_| {}).is_none());
    }

    #[test]
    fn coarse_and_full_pass_agree_on_a_heap_snapshot() {
        // 48 pages of 64 KiB in two memories: objects of 4 to 131 bytes
        // with zero gaps of 1 to 2,048 bytes, one segment per page and some
        // pages left out; caps from tight to loose, jobs cut mid-page.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut memories = [Vec::new(), Vec::new()];
        for page in 0..48u64 {
            if next() % 5 == 0 {
                continue;
            }
            let mut data = vec![0u8; 1 << 16];
            let mut at = (next() % 64) as usize;
            while at < data.len() {
                let len = 4 + (next() % 128) as usize;
                for b in data[at..(at + len).min(1 << 16)].iter_mut() {
                    *b = (next() % 251) as u8 + 1;
                }
                at += len + [1, 3, 9, 12, 20, 40, 70, 300, 2048][(next() % 9) as usize];
            }
            memories[(page % 2) as usize].push((page << 16, data));
        }
        let images = [
            image(0, IndexType::I32, &memories[0]),
            image(1, IndexType::I64, &memories[1]),
        ];
        let mut taken = 0;
        for budget in [2u64, 10, 100, 1000, 3000, 10_000, 100_000] {
            let coarse = Engine {
                threads: 2,
                job_bytes: 40_000,
                coarse: true,
            };
            let full = Engine {
                coarse: false,
                ..coarse
            };
            taken += usize::from(coarse::final_ranges(&images, budget, coarse, &|_| {}).is_some());
            assert_eq!(
                packed_with(&images, budget, coarse),
                packed_with(&images, budget, full),
                "budget {budget}"
            );
        }
        assert!(taken >= 3, "the coarse route applied to {taken} caps only");
    }

    #[test]
    fn the_coarse_route_declines_when_too_many_gaps_tie_on_the_cut() {
        // 6,000 identical objects and gaps: every gap is on the cut, more
        // than an O(cap) list may hold.
        let mut data = Vec::new();
        for _ in 0..6000 {
            data.extend([0u8; 200]);
            data.extend([5u8; 20]);
        }
        let segs = vec![(0u64, data)];
        let im = image(0, IndexType::I32, &segs);
        let engine = Engine {
            threads: 2,
            job_bytes: 4096,
            coarse: true,
        };
        let images = std::slice::from_ref(&im);
        assert!(coarse::final_ranges(images, 10, engine, &|_| {}).is_none());
        assert_eq!(packed_with(images, 10, engine), reference(images, 10));
    }

    #[test]
    fn later_segments_win_and_zeros_erase() {
        let segs = vec![(0u64, vec![1u8; 10]), (4, vec![0u8; 3]), (8, vec![2u8; 4])];
        let im = image(0, IndexType::I32, &segs);
        let flat: Vec<(u64, Vec<u8>)> = im
            .pieces
            .iter()
            .map(|p| (p.offset, p.data.to_vec()))
            .collect();
        assert_eq!(
            flat,
            vec![
                (0, vec![1; 4]),
                (4, vec![0; 3]),
                (7, vec![1]),
                (8, vec![2; 4])
            ]
        );
    }

    #[test]
    fn a_gap_merges_exactly_when_it_is_cheaper_than_a_header() {
        // At offset < 64 with short payloads a header is 5 bytes (flag,
        // opcode, 1-byte offset, end, 1-byte length): a gap of 4 zeros
        // merges (4 < 5), a gap of 5 does not.
        for (gap, merged) in [(3usize, true), (4, true), (5, false), (6, false)] {
            let mut data = vec![7u8; 3];
            data.extend(std::iter::repeat_n(0, gap));
            data.extend([7u8; 3]);
            let segs = vec![(0u64, data)];
            let im = image(0, IndexType::I32, &segs);
            let n = packed(std::slice::from_ref(&im), 100, 1, 1 << 20).len();
            assert_eq!(n, if merged { 1 } else { 2 }, "gap {gap}");
        }
    }
}
