//! Wizer's packing rule (wasmtime's `crates/wizer`, which weval copied), as
//! one of the layouts the cap weighs ([`super::cap`]), so that a plan is
//! never larger than the rule it replaces, by construction rather than by
//! test.
//!
//! The rule: non-zero runs at most [`WIZER_JOINED_GAP`] zeros apart are
//! joined; with more segments than the cap, the shortest gaps between them
//! close (ties: the lower offset first) until the cap is met. So the gaps
//! that stay open are the longest, ties by higher offset:
//! [`Order::Length`](super::cap::Order::Length).
//!
//! Those gaps come from two places. A gap of at least
//! [`NEVER_MERGED_GAP`] is never closed by the greedy pass, so it is
//! offered as the greedy segments go by, on either route. Shorter ones lie
//! inside greedy segments, and matter only when the cap leaves room for
//! gaps that short:
//! * in the full pass, each worker notes them as it merges the runs of its
//!   job ([`WizerGaps`]), those at least as long as the shortest that can
//!   still count ([`ShortGaps`]); they stop once the image shows more long
//!   gaps than the cap can keep;
//! * when that stopped too early, or on the coarse route, a scan of their
//!   own ([`offer_short_gaps`]) runs, only if they count
//!   ([`Gaps::needs_short_gaps`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::cap::{Gaps, Shortlist};
use super::merge::NEVER_MERGED_GAP;
use super::{MemoryImage, Range};
use crate::scan;
use crate::segment::IndexType;

/// Wizer joins runs this many zeros apart or closer
/// (`MIN_ACTIVE_SEGMENT_OVERHEAD`).
pub(super) const WIZER_JOINED_GAP: u64 = 4;

/// Whether a gap between runs is one of Wizer's that the greedy pass may
/// have closed: Wizer keeps it apart, the greedy pass may not.
fn is_short(len: u64) -> bool {
    len > WIZER_JOINED_GAP && len < NEVER_MERGED_GAP
}

/// The scan reads this much at a time, and tells `release` once read.
const SLICE: usize = 1 << 20;

/// Offers `gaps` every one of Wizer's gaps in `image` shorter than
/// [`NEVER_MERGED_GAP`] (the longer ones the greedy pass offered). One
/// thread: it runs only when the cap leaves room for short gaps, on images
/// that do not have many long ones.
pub(super) fn offer_short_gaps<'a, P: scan::Slice<'a>>(
    image: &MemoryImage<'_>,
    pieces: &[P],
    gaps: &mut Gaps,
    release: &(dyn Fn(&[u8]) + Sync),
) {
    let mut previous_end: Option<u64> = None;
    for piece in pieces {
        let (offset, data) = piece.get();
        for (i, slice) in data.chunks(SLICE).enumerate() {
            let at = offset + (i * SLICE) as u64;
            scan::for_each_run(slice, |s, e| {
                let run = Range {
                    start: at + s as u64,
                    end: at + e as u64,
                };
                if let Some(end) = previous_end.replace(run.end) {
                    let gap = Range {
                        start: end,
                        end: run.start,
                    };
                    if is_short(gap.len()) {
                        gaps.longest
                            .offer(image.memory_index, image.index_type, gap);
                    }
                }
            });
            release(slice);
        }
    }
}

/// What a worker finds of Wizer's gaps in one job, run by run as it
/// merges them ([`super::merge::scan_and_merge`]).
#[derive(Debug)]
pub(super) struct WizerGaps {
    /// The shortest gap to keep: at least [`WIZER_JOINED_GAP`] + 1, or
    /// `u64::MAX` to look for none.
    shortest: u64,
    /// Its first run's start and last run's end, if it has runs: the gap
    /// across the seam between two jobs is the consumer's to find.
    first: Option<u64>,
    last: u64,
    /// Its gaps between [`WIZER_JOINED_GAP`] and [`NEVER_MERGED_GAP`] long,
    /// those at least `shortest` long.
    short: Vec<Range>,
    /// How many short gaps can count at most: the shortlist's places.
    places: usize,
    /// How many gaps of at least [`NEVER_MERGED_GAP`] it holds (counted
    /// only while looking).
    long: u64,
}

impl WizerGaps {
    /// Looks for short gaps of at least `shortest` bytes, of which at most
    /// `places` can count, into `buffer` (emptied).
    pub(super) fn new(shortest: u64, places: u64, mut buffer: Vec<Range>) -> Self {
        buffer.clear();
        WizerGaps {
            shortest: shortest.max(WIZER_JOINED_GAP + 1),
            first: None,
            last: 0,
            short: buffer,
            places: usize::try_from(places).unwrap_or(usize::MAX),
            long: 0,
        }
    }

    /// Takes the job's next run (as the scanner gives them: whole runs may
    /// come in parts, a gap of 0 or at most [`scan::JOINED_GAP`] apart).
    #[inline(always)]
    pub(super) fn run(&mut self, run: Range) {
        if self.first.is_none() {
            self.first = Some(run.start);
        } else {
            let gap = run.start - self.last;
            // Not taken at all once the workers stop looking.
            if gap >= self.shortest {
                self.gap(Range {
                    start: self.last,
                    end: run.start,
                });
            }
        }
        self.last = run.end;
    }

    #[inline(never)]
    fn gap(&mut self, gap: Range) {
        if gap.len() >= NEVER_MERGED_GAP {
            self.long += 1;
            return;
        }
        self.short.push(gap);
        // A job of dense short gaps would otherwise hold them all (a
        // megabyte a job) before the consumer's floor rises: once twice the
        // places are held, only the best can count (within a job, a later
        // gap wins a tie, as in the shortlist).
        if self.short.len() >= self.places.saturating_mul(2).max(2) {
            let keep = self.places.max(1);
            let drop = self.short.len() - keep;
            self.short
                .select_nth_unstable_by_key(drop, |g| (g.len(), g.start));
            self.short.drain(..drop);
            // Back in offset order, as the consumer's shortlist keeps them
            // (else it sorts its own buffer at its next cut).
            self.short.sort_unstable_by_key(|g| g.start);
            let lowest = self.short.iter().map(Range::len).min();
            self.shortest = self.shortest.max(lowest.unwrap_or(u64::MAX));
        }
    }
}

/// Wizer's short gaps gathered from the workers of a full pass
/// ([`WizerGaps`]), in a shortlist by length of their own, and whether
/// every job was looked into: then they are all that can count.
#[derive(Debug)]
pub(super) struct ShortGaps {
    /// Short gaps by length, as many as the long gaps seen so far leave
    /// places for (a long gap outranks every short one).
    shortlist: Shortlist,
    /// The places of the cap: long and short gaps together.
    places: u64,
    /// Whether every job so far was looked into, for gaps at least as long
    /// as the shortlist's floor then (the floor only rises, so a gap left
    /// out is shorter than every gap the shortlist ends with).
    complete: bool,
    /// Bytes in all, bytes looked into so far, and long gaps among them:
    /// when long gaps will outnumber the places, short ones never count.
    total: u64,
    scanned: u64,
    long: u64,
    /// The image being scanned, and its last run's end so far.
    memory: Option<(u32, IndexType)>,
    last: Option<u64>,
}

impl ShortGaps {
    /// For a cap of `budget` segments over `total` bytes of images.
    pub(super) fn new(budget: u64, total: u64) -> Self {
        let mut shortlist = Shortlist::by_length(budget);
        // Its whole room at once, as far as the image may fill it (a short
        // gap and a run take 6 bytes at least): grown step by step, the
        // buffers it left behind would stay in a Wasm memory.
        shortlist.expect(usize::try_from(total / 6).unwrap_or(usize::MAX));
        ShortGaps {
            places: shortlist.places(),
            shortlist,
            complete: true,
            total,
            scanned: 0,
            long: 0,
            memory: None,
            last: None,
        }
    }

    pub(super) fn start_image(&mut self, image: &MemoryImage<'_>) {
        self.memory = Some((image.memory_index, image.index_type));
        self.last = None;
    }

    /// The shortest gap the workers should report, or `u64::MAX` once they
    /// need not look.
    pub(super) fn shortest(&self) -> u64 {
        if self.complete && self.shortlist.places() > 0 {
            self.shortlist.floor()
        } else {
            u64::MAX
        }
    }

    /// How many short gaps can still count.
    pub(super) fn places(&self) -> u64 {
        self.shortlist.places()
    }

    /// Takes what a worker found in a job of `bytes` bytes; returns the
    /// job's buffer, for another job.
    pub(super) fn take(&mut self, mut job: WizerGaps, bytes: u64) -> Vec<Range> {
        if !self.complete {
            return job.short;
        }
        let (memory_index, index_type) = self.memory.expect("an image was started");
        if let (Some(last), Some(first)) = (self.last, job.first) {
            let gap = Range {
                start: last,
                end: first,
            };
            if gap.len() >= NEVER_MERGED_GAP {
                self.long += 1;
            } else if is_short(gap.len()) {
                self.shortlist.offer(memory_index, index_type, gap);
            }
        }
        if job.first.is_some() {
            self.last = Some(job.last);
        }
        for gap in job.short.drain(..) {
            self.shortlist.offer(memory_index, index_type, gap);
        }
        self.long += job.long;
        self.shortlist.narrow(self.places.saturating_sub(self.long));
        self.scanned += bytes;
        // Long gaps at a rate that will give half as many again as the
        // places, an eighth in: short ones will most likely never count.
        // (A guess: if they do, `offer_short_gaps` finds them.)
        let places = u128::from(self.places);
        let plenty = 2 * u128::from(self.long) * u128::from(self.total)
            >= 3 * places * u128::from(self.scanned);
        if plenty && self.scanned >= self.total / 8 {
            self.complete = false;
        }
        job.short
    }

    /// Hands the gaps found to `gaps`, if every job was looked into.
    pub(super) fn finish(self, gaps: &mut Gaps) {
        if self.complete {
            gaps.take_short_gaps(self.shortlist);
        }
    }
}

/// What the workers of a full pass are told of Wizer's short gaps, as the
/// consumer last learnt it ([`ShortGaps`]), and the buffers they note them
/// in, handed back for the next jobs: each grows once, not once a job.
#[derive(Debug)]
pub(super) struct Lookout {
    shortest: AtomicU64,
    places: AtomicU64,
    buffers: Mutex<Vec<Vec<Range>>>,
}

impl Lookout {
    /// What `short` asks for now; with none, workers look for nothing.
    pub(super) fn new(short: Option<&ShortGaps>) -> Self {
        Lookout {
            shortest: AtomicU64::new(short.map_or(u64::MAX, ShortGaps::shortest)),
            places: AtomicU64::new(short.map_or(0, ShortGaps::places)),
            buffers: Mutex::new(Vec::new()),
        }
    }

    /// A worker's notes for its next job.
    pub(super) fn job(&self) -> WizerGaps {
        let buffer = self.buffers.lock().map_or(None, |mut b| b.pop());
        WizerGaps::new(
            self.shortest.load(Ordering::Relaxed),
            self.places.load(Ordering::Relaxed),
            buffer.unwrap_or_default(),
        )
    }

    /// Hands a job's notes (`bytes` bytes looked into) to `short`, and tells
    /// the workers what it asks for now.
    pub(super) fn take(&self, short: &mut ShortGaps, gaps: WizerGaps, bytes: u64) {
        let buffer = short.take(gaps, bytes);
        if let Ok(mut b) = self.buffers.lock() {
            b.push(buffer);
        }
        self.shortest.store(short.shortest(), Ordering::Relaxed);
        self.places.store(short.places(), Ordering::Relaxed);
    }
}
