//! A faster route to exactly the same plan when the segment cap binds hard.
//!
//! Over the cap, only gaps on the shortlist may stay open: the `budget`
//! best-ranked gaps between greedy segments ([`cap`](super::cap)). When a
//! large snapshot meets a cap of 10,000, those are long stretches of zeros,
//! and a stretch of at least 31 zeros always holds a whole 16-byte chunk of
//! zeros. So a first pass that only tests chunks for all-zero
//! ([`scan::for_each_coarse_run`]) finds every long gap with its exact ends,
//! without the run-by-run work of the greedy pass. At a cap of 100,000 on
//! a 256 MiB or 1 GiB snapshot the shortlist reaches gaps shorter than 31;
//! 8-byte words see gaps of 15 zeros or more, and with the borders between
//! them 14, and serve there ([`Grain`]).
//!
//! Near the start of a memory, offsets take fewer bytes, so a short gap
//! there is worth more (its segment's header is shorter) than the long gaps
//! of the rest. By words, the route finds the gaps of the regions that start
//! below 1 MiB byte by byte, as the full pass does
//! ([`Grain::exact_below`]): only past that does it need a short gap's worth
//! bounded.
//!
//! A long gap always splits the greedy pass (it costs at least any
//! header: [`Grain::applies`]), so the segment after it starts where the
//! gap ends, and its rank
//! ([`GapKey`](super::cap::GapKey)) is known exactly from the gap alone.
//! When the shortlist's last long gap outranks every short gap, the
//! shortlist is the full pass's, and the rest ([`Gaps::finish`]) is the same
//! code.
//!
//! Images longer than 1 GiB take this route too. A region (the stretch
//! between long gaps) longer than 1 GiB could hold a greedy segment that
//! must be split, and a long gap between two greedy segments that would
//! merge past 1 GiB never closes: the route knows which gaps those are from
//! the regions' ends alone (a gap of 1 GiB or more: never; two regions
//! within 1 GiB together: always), and gives up on the rest.
//!
//! When the premises do not hold (a region longer than 1 GiB, a gap whose
//! closing the regions cannot settle, too few long gaps to fill the
//! shortlist, or a shortlist that would reach short gaps), [`long_gaps`]
//! gives up on that grain, then on the next, and the full pass runs.

use std::sync::atomic::{AtomicBool, Ordering};

use super::cap::{Extent, Gaps, may_close};
use super::merge::Merger;
use super::{Engine, MAX_SEGMENT_LEN, MemoryImage, Range, image_bytes};
use crate::scan;
use crate::segment::{IndexType, MAX_FIXED_HEADER_LEN, fixed_header_len, header_len};

/// What the route tests for all-zero at once, and so which gaps it sees:
/// stretches of at least [`long_gap`](Grain::long_gap) zeros, the shortest
/// that always hold a whole aligned chunk of zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Grain {
    /// 16-byte chunks: gaps of 31 zeros or more, longer than any segment
    /// header (at most 23 bytes).
    Chunks,
    /// 8-byte words: gaps of 15 zeros or more. Half the bytes settled at a
    /// time, so tried only when chunks gave up; and only on 32-bit memories
    /// of index under 128, whose headers take at most 14 bytes.
    Words,
    /// 8-byte words and the borders between them: gaps of 14 zeros or more
    /// (14 that hold no whole zero word lie across the border of two
    /// non-zero words). A gap as long as the longest header it applies to,
    /// the shortest that always splits the greedy pass; a few more
    /// instructions a word, so tried last (the 256 MiB bench snapshot at
    /// 100,000, whose cut falls on gaps of 14 and 15 zeros).
    WordBorders,
}

/// Regions starting below this offset are looked into byte by byte on the
/// routes by words ([`Grain::exact_below`]): from here on an `i32.const`
/// offset takes 4 bytes or more (up to 2 GiB), so a gap the route does not
/// see is worth at most 24 (by word borders; 25 by words).
const WORDS_EXACT_BELOW: u64 = 1 << 20;

/// How far in (this share of the image) the route first judges whether it
/// will work: a sixteenth, so that a try that fails (chunks at 100,000 on
/// the 256 MiB and 1 GiB bench snapshots, then words on the 256 MiB one)
/// costs little over the one that follows. A 1 GiB snapshot's sixteenth
/// holds 40,000 long gaps. (Chunks judged a quarter in until 0.97x the wall
/// time at 100,000 on the 1 GiB snapshot said otherwise; the default cap
/// and the 4,000 MiB snapshot took the same time.)
const JUDGED_AFTER: u64 = 16;

/// The route judges no sooner than this many bytes in, whatever the
/// image: a smaller sample (a sixteenth of a small image) says too little
/// of the rest, and scanning it all costs little anyway.
const JUDGED_AFTER_BYTES: u64 = 4 << 20;

/// The route gives up when the regions it looks into byte by byte hold more
/// than this share of the image (one in eight bytes), and more than
/// [`EXACT_BYTES`]: it is meant to read most of them a word at a time.
const EXACT_SHARE: u64 = 8;

/// What the route may always look into byte by byte: the first mebibyte of
/// an image, about a millisecond's scan.
const EXACT_BYTES: u64 = 1 << 20;

impl Grain {
    /// The shortest gap the route sees.
    pub(super) fn long_gap(self) -> u64 {
        match self {
            Grain::Chunks => <u128 as scan::Chunk>::MIN_GAP as u64,
            Grain::Words => <u64 as scan::Chunk>::MIN_GAP as u64,
            Grain::WordBorders => <u64 as scan::Chunk>::MIN_GAP as u64 - 1,
        }
    }

    /// Regions that start below this offset are looked into byte by byte,
    /// their gaps offered as the full pass offers them.
    fn exact_below(self) -> u64 {
        match self {
            Grain::Chunks => 0,
            Grain::Words | Grain::WordBorders => WORDS_EXACT_BELOW,
        }
    }

    /// How close to [`short_gap_max_worth`](Self::short_gap_max_worth) the
    /// shortlist's cut, projected from the bytes scanned so far, makes the
    /// route give up early. Words have a finer grain after them: a cut
    /// projected within 2 of the bound (the 256 MiB bench snapshot at
    /// 100,000: 26 against 25) gives way to it a sixteenth in, rather than
    /// failing at the end and scanning the image twice.
    fn projection_margin(self) -> u64 {
        match self {
            Grain::Words => 2,
            Grain::Chunks | Grain::WordBorders => 0,
        }
    }

    /// The most a gap the route does not see can be worth
    /// ([`GapKey`](super::cap::GapKey)): shorter than
    /// [`long_gap`](Self::long_gap), in a region starting at
    /// [`exact_below`](Self::exact_below) or later, so its zeros less the
    /// shortest fixed header from there to the image's end.
    fn short_gap_max_worth(self, images: &[MemoryImage<'_>]) -> u64 {
        let from = self.exact_below();
        let shortest_header = images
            .iter()
            .filter_map(|image| {
                let end = image.pieces.last()?.end();
                // Offsets of 2^31 and up are negative immediates, shorter
                // again towards the end: the shortest is at one end.
                (end > from).then(|| {
                    let at =
                        |offset| fixed_header_len(image.memory_index, image.index_type, offset);
                    at(from).min(at(end - 1))
                })
            })
            .min();
        match shortest_header {
            Some(header) => self.long_gap() - 1 + MAX_FIXED_HEADER_LEN - header,
            None => 0,
        }
    }

    /// Whether every long gap splits the greedy pass in every image: it is
    /// at least as long as any header there. (The greedy pass joins two
    /// runs only across fewer zeros than the second one's header.)
    pub(super) fn applies(self, images: &[MemoryImage<'_>]) -> bool {
        images
            .iter()
            .all(|image| longest_header(image.memory_index, image.index_type) <= self.long_gap())
    }

    /// The coarse runs of a job's slices: non-zero stretches less than
    /// [`long_gap`](Self::long_gap) zeros apart may come as one.
    fn runs<'a>(self, slices: impl Iterator<Item = (u64, &'a [u8])>) -> Vec<Range> {
        let long_gap = self.long_gap() as usize;
        match self {
            Grain::Chunks => runs_by::<u128, _>(slices, long_gap),
            Grain::Words | Grain::WordBorders => runs_by::<u64, _>(slices, long_gap),
        }
    }
}

/// [`Grain::runs`] by chunks `C`, one function each, so that the scan is
/// inlined into it whole.
fn runs_by<'a, C: scan::Chunk, I: Iterator<Item = (u64, &'a [u8])>>(
    slices: I,
    long_gap: usize,
) -> Vec<Range> {
    let mut runs = Vec::new();
    for (offset, data) in slices {
        scan::for_each_coarse_run::<C>(data, long_gap, |s, e| {
            runs.push(Range {
                start: offset + s as u64,
                end: offset + e as u64,
            })
        });
    }
    runs
}

/// The longest header a segment of this memory can have: its offset
/// immediate at full width (5 bytes for `i32.const`, 10 for `i64.const`),
/// and its length at full width (within 1 GiB: 5 bytes).
fn longest_header(memory_index: u32, index_type: IndexType) -> u64 {
    let widest_offset = match index_type {
        IndexType::I32 => 1 << 30,
        IndexType::I64 => 1 << 62,
    };
    header_len(memory_index, index_type, widest_offset, MAX_SEGMENT_LEN)
}

/// Follows one image's coarse runs, in order, joining those less than
/// `long_gap` apart into regions.
struct Regions<'i, 'a> {
    long_gap: u64,
    image: &'i MemoryImage<'a>,
    /// Regions starting below this are looked into ([`Grain::exact_below`]).
    exact_below: u64,
    /// The region before `current`, once there is one.
    previous: Option<Range>,
    /// The region being extended.
    current: Option<Range>,
    first_start: Option<u64>,
}

impl Regions<'_, '_> {
    fn run(&mut self, run: Range, route: &mut Route) {
        match &mut self.current {
            Some(c) if run.start - c.end < self.long_gap => c.end = run.end,
            _ => {
                self.first_start.get_or_insert(run.start);
                if let Some(done) = self.current.replace(run) {
                    self.region_done(done, route);
                }
            }
        }
    }

    /// `done` is a whole region: rank the long gap before it, and the gaps
    /// inside it when it starts low enough.
    fn region_done(&mut self, done: Range, route: &mut Route) {
        // Greedy segments never span a long gap, so a region within 1 GiB
        // holds no segment that the greedy pass must split.
        if done.len() > MAX_SEGMENT_LEN {
            route.unsettled = true;
        }
        if let Some(before) = self.previous.replace(done) {
            self.gap_before(before, done, route);
        }
        if done.start < self.exact_below && !route.unsettled {
            self.gaps_inside(done, route);
        }
    }

    /// Ranks the long gap between the regions `before` and `done`.
    fn gap_before(&self, before: Range, done: Range, route: &mut Route) {
        let (memory_index, index_type) = (self.image.memory_index, self.image.index_type);
        let gap = Range {
            start: before.end,
            end: done.start,
        };
        // The greedy segments on either side, `a` and `b`, lie within the
        // regions and touch the gap: `may_close` is false for the narrowest
        // pair (a byte each side) exactly when it is false for every pair
        // (a gap of 4 GiB, or of 1 GiB less a byte), and true for the widest
        // (the two regions) exactly when it is true for every pair.
        let narrowest = (
            Range {
                start: gap.start - 1,
                end: gap.start,
            },
            Range {
                start: gap.end,
                end: gap.end + 1,
            },
        );
        if !may_close(narrowest.0, narrowest.1) {
            route.gaps.never_closed.push((memory_index, gap));
        } else if may_close(before, done) {
            route.gaps.offer_stretch(memory_index, index_type, gap);
        } else {
            route.unsettled = true;
        }
    }

    /// Offers the gaps between the greedy segments of the region `done`
    /// (within 1 GiB), found byte by byte as the full pass finds them: long
    /// gaps split the greedy pass, so the region's segments are those the
    /// full pass makes of its bytes alone.
    fn gaps_inside(&self, done: Range, route: &mut Route) {
        route.exact_bytes += done.len();
        if route.exact_bytes > route.exact_limit {
            route.unsettled = true;
            return;
        }
        let (memory_index, index_type) = (self.image.memory_index, self.image.index_type);
        let mut merger = Merger::new(memory_index, index_type);
        let mut previous: Option<Range> = None;
        let mut segment = |r: Range| {
            if let Some(p) = previous.replace(r) {
                let gap = Range {
                    start: p.end,
                    end: r.start,
                };
                // (Always closable within a region of at most 1 GiB.)
                debug_assert!(may_close(p, r));
                route.gaps.offer(memory_index, index_type, gap);
            }
        };
        for (offset, data) in super::pieces_within(self.image, done) {
            scan::for_each_run(data, |s, e| {
                let run = Range {
                    start: offset + s as u64,
                    end: offset + e as u64,
                };
                merger.push(run, &mut segment);
            });
        }
        merger.finish_open(&mut segment);
    }

    /// The image's extent, if it has any non-zero byte.
    fn finish(mut self, route: &mut Route) -> Option<Extent> {
        let last = self.current?;
        self.region_done(last, route);
        Some(Extent {
            memory_index: self.image.memory_index,
            index_type: self.image.index_type,
            first: self.first_start.expect("a region has a start"),
            last: last.end,
        })
    }
}

/// What the route has gathered: the long gaps as [`Gaps`], and whether a
/// region or gap came up that it cannot settle (then it gives up).
struct Route {
    grain: Grain,
    gaps: Gaps,
    unsettled: bool,
    /// The bytes of the images' pieces: what a scan reads.
    total: u64,
    /// The most a gap the route does not see can be worth.
    short_gap_max_worth: u64,
    /// The bytes of the regions looked into byte by byte, and the most it
    /// may be ([`EXACT_SHARE`], [`EXACT_BYTES`]).
    exact_bytes: u64,
    exact_limit: u64,
}

impl Route {
    fn new(grain: Grain, images: &[MemoryImage<'_>], budget: u64, also: Option<u64>) -> Self {
        let total = image_bytes(images);
        Route {
            grain,
            gaps: Gaps::new(budget, also),
            unsettled: false,
            total,
            short_gap_max_worth: grain.short_gap_max_worth(images),
            exact_bytes: 0,
            exact_limit: (total / EXACT_SHARE).max(EXACT_BYTES),
        }
    }

    /// The gaps gathered, if they are the full pass's. Its shortlist holds
    /// the best-ranked closable gaps of all: they are those offered here
    /// when there are enough of them and the last of them outranks every
    /// gap not seen. Wizer's longest gaps must all have been seen too
    /// ([`Gaps::see_short_gaps_from`]), or be long enough that the greedy
    /// pass never closes them.
    fn finish(self) -> Option<Gaps> {
        let mut gaps = self.gaps;
        gaps.see_short_gaps_from(self.grain.long_gap());
        let places = gaps.shortlist.places();
        let enough = gaps.shortlist.offered >= places
            && gaps.shortlist.kth_best_worth(places) > self.short_gap_max_worth
            && !gaps.needs_short_gaps();
        (enough && !self.unsettled).then_some(gaps)
    }

    /// Far enough in ([`JUDGED_AFTER`], [`JUDGED_AFTER_BYTES`]), with long
    /// gaps at a rate that will not fill the shortlist, or a shortlist that,
    /// at the rate seen so far, would reach short gaps (looked at once,
    /// `projected`): this route will most likely give up at the end, so the
    /// next one had better start now. (A guess: the plan is the same either way, only
    /// the time differs.)
    fn looks_hopeless(&self, scanned: u64, projected: &mut bool) -> bool {
        let total = self.total;
        let shortlist = &self.gaps.shortlist;
        if scanned < (total / JUDGED_AFTER).max(JUDGED_AFTER_BYTES) {
            return false;
        }
        let places = shortlist.places();
        let sparse = u128::from(shortlist.offered) * u128::from(total)
            < u128::from(places) * u128::from(scanned);
        let cheap_cut = !*projected && {
            *projected = true;
            let rank = projected_rank(places, scanned, total);
            shortlist.kth_best_worth(rank)
                <= self.short_gap_max_worth + self.grain.projection_margin()
        };
        sparse || cheap_cut
    }
}

/// The [`Gaps`] the full pass would gather, or `None` when this route does
/// not apply (then nothing is known and the full pass must run): by
/// 16-byte chunks, else by 8-byte words where those apply, else by words
/// and their borders.
pub(super) fn long_gaps(
    images: &[MemoryImage<'_>],
    budget: u64,
    also: Option<u64>,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Option<Gaps> {
    [Grain::Chunks, Grain::Words, Grain::WordBorders]
        .into_iter()
        .filter(|grain| grain.applies(images))
        .find_map(|grain| long_gaps_by(grain, images, budget, also, engine, release))
}

/// [`long_gaps`] at one grain, which must [apply](Grain::applies).
pub(super) fn long_gaps_by(
    grain: Grain,
    images: &[MemoryImage<'_>],
    budget: u64,
    also: Option<u64>,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Option<Gaps> {
    debug_assert!(grain.applies(images));
    if budget == 0 {
        return None;
    }
    let mut route = Route::new(grain, images, budget, also);
    let mut scanned = 0u64;
    let mut projected = false;
    // Set once this route cannot work: workers then skip what is left.
    let give_up = AtomicBool::new(false);
    for image in images {
        let mut regions = Regions {
            long_gap: grain.long_gap(),
            image,
            exact_below: grain.exact_below(),
            previous: None,
            current: None,
            first_start: None,
        };
        let pieces = &image.pieces;
        let jobs = scan::jobs(pieces, engine.job_bytes);
        crate::pool::map_ordered(
            &jobs,
            engine.threads,
            |job| {
                if give_up.load(Ordering::Relaxed) {
                    return Vec::new();
                }
                grain.runs(job.slices(pieces))
            },
            |i, runs| {
                if give_up.load(Ordering::Relaxed) {
                    return;
                }
                for run in runs {
                    regions.run(run, &mut route);
                }
                for (_, data) in jobs[i].slices(pieces) {
                    scanned += data.len() as u64;
                    release(data);
                }
                if route.unsettled || route.looks_hopeless(scanned, &mut projected) {
                    give_up.store(true, Ordering::Relaxed);
                }
            },
        );
        if give_up.load(Ordering::Relaxed) {
            return None;
        }
        let extent = regions.finish(&mut route);
        route.gaps.extents.extend(extent);
    }
    route.finish()
}

/// The rank the shortlist's last place would have if the rest of the image
/// held long gaps as the `scanned` bytes so far did: the budget scaled to
/// the bytes scanned (at least 1).
fn projected_rank(budget: u64, scanned: u64, total: u64) -> u64 {
    let k = u128::from(budget) * u128::from(scanned) / u128::from(total.max(1));
    u64::try_from(k).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_headers_are_at_full_width() {
        assert_eq!(longest_header(0, IndexType::I32), 13);
        assert_eq!(longest_header(127, IndexType::I32), 14);
        assert_eq!(longest_header(128, IndexType::I32), 15);
        assert_eq!(longest_header(0, IndexType::I64), 18);
        assert_eq!(longest_header(1 << 30, IndexType::I64), 23);
    }

    #[test]
    fn the_projected_rank_scales_the_budget_to_the_bytes_scanned() {
        assert_eq!(projected_rank(10, 1, 4), 2);
        assert_eq!(projected_rank(10, 4, 4), 10);
        assert_eq!(projected_rank(10, 0, 4), 1);
    }
}
