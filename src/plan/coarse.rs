//! A faster route to exactly the same plan when the segment cap binds hard.
//!
//! Over the cap, only the `budget` most expensive gaps between greedy
//! segments stay open ([`GapTracker`](super::GapTracker)). When a large
//! snapshot meets a cap of 10,000, those are long stretches of zeros, and a
//! stretch of at least [`BIG_GAP`] zeros always holds a whole 16-byte chunk
//! of zeros. So a first pass that only tests chunks for all-zero
//! ([`scan::for_each_coarse_run`]) finds every long gap with its exact ends,
//! without the run-by-run work of the greedy pass.
//!
//! The stretches between long gaps ("regions") merge independently: a long
//! gap always splits the greedy pass (it costs more than any header). What a
//! long gap costs to close depends on its length, known, and on the greedy
//! segments on either side of it, unknown, but those lie within its two
//! regions, which bounds the cost to a few bytes either way. Only the gaps
//! whose bounds straddle the cut are weighed exactly, by merging their two
//! regions greedily.
//!
//! Images longer than 1 GiB take this route too. A region longer than
//! 1 GiB could hold a greedy segment that must be split, and a long gap
//! between two greedy segments that would merge past 1 GiB never closes
//! ([`GapTracker`](super::GapTracker)): the route knows which gaps those are
//! from the regions' ends alone (a gap of 1 GiB or more: never; two regions
//! within 1 GiB together: always), and gives up on the rest.
//!
//! When the premises do not hold (a region longer than 1 GiB, a gap whose
//! closing the regions cannot settle, too few long gaps to fill the cap, a
//! cut that falls among short gaps, or too many gaps on the cut to hold in
//! O(cap) memory), [`final_ranges`] gives up and the full pass runs.

use std::sync::atomic::{AtomicBool, Ordering};

use super::cap::{closing_cost, cut_extents};
use super::merge::greedy_segments;
use super::{
    Engine, MAX_GAP, MAX_SEGMENT_LEN, MemoryImage, Range, Segments, image_bytes, pieces_within,
};
use crate::scan;
use crate::segment::{IndexType, header_len, uleb_len};

/// Zero stretches at least this long: 2 × 16 − 1 bytes, the shortest that
/// always holds a whole 16-byte chunk. Longer than any segment header (at
/// most 23 bytes), so the greedy pass always splits at them.
pub(super) const BIG_GAP: u64 = scan::COARSE_MIN_GAP as u64;

/// The most a short gap (under [`BIG_GAP`]) can cost to close: its zeros,
/// plus at most 4 bytes of a longer length LEB, minus a header of at least 5.
/// (See `GapTracker::segment` for the cost.)
const SHORT_GAP_MAX_COST: u64 = BIG_GAP - 1;

/// A long gap, the regions on either side and bounds on its cost.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    memory_index: u32,
    index_type: IndexType,
    left: Range,
    right: Range,
    /// Bounds on the bytes that closing the gap adds (`GapKey::extra_bytes`).
    lo: u64,
    hi: u64,
}

impl Candidate {
    fn new(memory_index: u32, index_type: IndexType, left: Range, right: Range) -> Self {
        let gap = right.start - left.end;
        // The greedy segments `a` (ending at the gap) and `b` (starting after
        // it) lie within `left` and `right`. The cost is
        // uleb(b.end - a.start) + gap - uleb(a.len) - header(b): the merged
        // LEB is never shorter than `a`'s, and `b`'s header is at most that
        // of a segment as long as `right` and at least that of one byte.
        let lo = gap.saturating_sub(header_len(
            memory_index,
            index_type,
            right.start,
            right.len(),
        ));
        let hi = (uleb_len(right.end - left.start) - 1 + gap).saturating_sub(header_len(
            memory_index,
            index_type,
            right.start,
            1,
        ));
        Candidate {
            memory_index,
            index_type,
            left,
            right,
            lo,
            hi,
        }
    }

    fn gap(&self) -> Range {
        Range {
            start: self.left.end,
            end: self.right.start,
        }
    }
}

/// The candidates that may be among the `budget` most expensive, in
/// O(budget) memory: those whose upper bound reaches the `budget`-th largest
/// lower bound seen so far.
struct Shortlist {
    budget: u64,
    kept: Vec<Candidate>,
    /// Candidates with `hi` below this are out: `budget` others cost more.
    floor: u64,
    /// When `kept` is next cut back.
    limit: usize,
    /// Long gaps seen.
    count: u64,
    /// Too many candidates on the cut to hold: give up.
    overflowed: bool,
}

impl Shortlist {
    fn new(budget: u64) -> Self {
        let limit = Self::first_limit(budget);
        Shortlist {
            budget,
            kept: Vec::new(),
            floor: 0,
            limit,
            count: 0,
            overflowed: false,
        }
    }

    fn first_limit(budget: u64) -> usize {
        usize::try_from(budget.saturating_mul(2).saturating_add(1024)).unwrap_or(usize::MAX)
    }

    fn push(&mut self, c: Candidate) {
        self.count += 1;
        if c.hi < self.floor || self.overflowed {
            return;
        }
        self.kept.push(c);
        if self.kept.len() >= self.limit {
            self.floor = self.floor.max(kth_largest_lo(&mut self.kept, self.budget));
            let floor = self.floor;
            self.kept.retain(|c| c.hi >= floor);
            // Many gaps tied on the cut: let the cutting stay linear, and
            // give up when the list stops being O(budget).
            self.limit = self.limit.max(2 * self.kept.len());
            if self.limit > 4 * Self::first_limit(self.budget) {
                self.overflowed = true;
                self.kept = Vec::new();
            }
        }
    }
}

impl Shortlist {
    /// The cut the whole image would give if the rest of it held long gaps
    /// as the `scanned` bytes so far did: the `budget × scanned / total`-th
    /// largest lower bound seen. Every candidate at or above it is still
    /// kept: it ranks above the `budget`-th. (`kept` is a set: selecting in
    /// it reorders it, nothing more, so it is not copied.)
    fn projected_cut(&mut self, scanned: u64, total: u64) -> u64 {
        let k = u128::from(self.budget) * u128::from(scanned) / u128::from(total.max(1));
        let k = u64::try_from(k).unwrap_or(u64::MAX).max(1);
        kth_largest_lo(&mut self.kept, k)
    }
}

/// The `k`-th largest `lo` of `candidates` (k ≥ 1), or 0 when there are fewer.
fn kth_largest_lo(candidates: &mut [Candidate], k: u64) -> u64 {
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    if k == 0 || candidates.len() < k {
        return 0;
    }
    let at = candidates.len() - k;
    candidates.select_nth_unstable_by_key(at, |c| c.lo);
    candidates[at].lo
}

/// Follows one image's coarse runs, in order, joining those less than
/// [`BIG_GAP`] apart into regions.
struct Regions {
    memory_index: u32,
    index_type: IndexType,
    /// The region before `current`, once there is one.
    previous: Option<Range>,
    /// The region being extended.
    current: Option<Range>,
    first_start: Option<u64>,
}

impl Regions {
    fn run(&mut self, run: Range, gaps: &mut Gaps) {
        match &mut self.current {
            Some(c) if run.start - c.end < BIG_GAP => c.end = run.end,
            _ => {
                self.first_start.get_or_insert(run.start);
                if let Some(done) = self.current.replace(run) {
                    self.region_done(done, gaps);
                }
            }
        }
    }

    /// `done` is a whole region: weigh the long gap before it.
    fn region_done(&mut self, done: Range, gaps: &mut Gaps) {
        // Greedy segments never span a long gap, so a region within 1 GiB
        // holds no segment that the greedy pass must split.
        if done.len() > MAX_SEGMENT_LEN {
            gaps.unsettled = true;
        }
        let Some(before) = self.previous.replace(done) else {
            return;
        };
        let gap = done.start - before.end;
        // The greedy segments on either side, `a` and `b`, lie within the
        // regions and touch the gap, so b.end - a.start is at least gap + 2
        // and at most the two regions with the gap. GapTracker never closes
        // a gap of 4 GiB, nor one whose segments would merge past 1 GiB.
        if gap >= MAX_GAP || gap + 2 > MAX_SEGMENT_LEN {
            gaps.never_closed.push((
                self.memory_index,
                Range {
                    start: before.end,
                    end: done.start,
                },
            ));
        } else if done.end - before.start <= MAX_SEGMENT_LEN {
            gaps.shortlist.push(Candidate::new(
                self.memory_index,
                self.index_type,
                before,
                done,
            ));
        } else {
            gaps.unsettled = true;
        }
    }

    /// The image's extent (memory index, first start, last end), if it has
    /// any non-zero byte.
    fn finish(mut self, gaps: &mut Gaps) -> Option<(u32, u64, u64)> {
        let last = self.current?;
        self.region_done(last, gaps);
        let first = self.first_start.expect("a region has a start");
        Some((self.memory_index, first, last.end))
    }
}

/// The long gaps between regions, by what the cap may do with them.
struct Gaps {
    /// Gaps that may close, as the candidates that may stay open.
    shortlist: Shortlist,
    /// Gaps that never close (see [`Regions::region_done`]).
    never_closed: Vec<(u32, Range)>,
    /// A region or gap this route cannot settle: give up.
    unsettled: bool,
}

/// The final segments of each memory, as [`GapTracker::finish`] would give
/// them, or `None` when this route does not apply (then nothing is known and
/// the full pass must run).
///
/// [`GapTracker::finish`]: super::GapTracker
pub(super) fn final_ranges(
    images: &[MemoryImage<'_>],
    budget: u64,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Option<Segments> {
    if budget == 0 {
        return None;
    }
    let mut gaps = Gaps {
        shortlist: Shortlist::new(budget),
        never_closed: Vec::new(),
        unsettled: false,
    };
    let mut extents = Vec::new();
    let total = image_bytes(images);
    let mut scanned = 0u64;
    let mut projected = false;
    // Set once this route cannot work: workers then skip what is left.
    let give_up = AtomicBool::new(false);
    for image in images {
        let mut regions = Regions {
            memory_index: image.memory_index,
            index_type: image.index_type,
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
                let mut runs = Vec::new();
                if give_up.load(Ordering::Relaxed) {
                    return runs;
                }
                for (offset, data) in job.slices(pieces) {
                    scan::for_each_coarse_run(data, BIG_GAP as usize, |s, e| {
                        runs.push(Range {
                            start: offset + s as u64,
                            end: offset + e as u64,
                        })
                    });
                }
                runs
            },
            |i, runs| {
                if give_up.load(Ordering::Relaxed) {
                    return;
                }
                for run in runs {
                    regions.run(run, &mut gaps);
                }
                for (_, data) in jobs[i].slices(pieces) {
                    scanned += data.len() as u64;
                    release(data);
                }
                // A quarter in, with long gaps at a rate that will not
                // reach the cap, or a cut that, at the rate seen so far,
                // falls among short gaps: this route will most likely give
                // up at the end, so the full pass starts now. (A guess: the
                // plan is the same either way, only the time differs.)
                let quarter = scanned >= total / 4;
                let sparse = quarter
                    && u128::from(gaps.shortlist.count) * u128::from(total)
                        < u128::from(budget) * u128::from(scanned);
                let cheap_cut = quarter && !projected && {
                    projected = true;
                    gaps.shortlist.projected_cut(scanned, total) <= SHORT_GAP_MAX_COST
                };
                if gaps.shortlist.overflowed || gaps.unsettled || sparse || cheap_cut {
                    give_up.store(true, Ordering::Relaxed);
                }
            },
        );
        if give_up.load(Ordering::Relaxed) {
            return None;
        }
        extents.extend(regions.finish(&mut gaps));
    }
    let Gaps {
        shortlist,
        never_closed,
        unsettled,
    } = gaps;
    if shortlist.overflowed || unsettled {
        return None;
    }

    // Over the cap, the greedy pass's closable gaps that stay open number
    // `budget - extents - never closed` (as in `GapTracker::finish`), and
    // they must be long gaps: more long gaps than that, and the cheapest
    // kept one dearer than any short gap.
    let keep = budget
        .checked_sub(extents.len() as u64 + never_closed.len() as u64)
        .filter(|&k| k > 0)?;
    if shortlist.count <= keep {
        return None;
    }
    let mut kept = shortlist.kept;
    let cut = kth_largest_lo(&mut kept, keep);
    if cut <= SHORT_GAP_MAX_COST {
        return None;
    }
    kept.retain(|c| c.hi >= cut);

    // Certainly kept: fewer than `keep` others could cost more.
    let mut his: Vec<u64> = kept.iter().map(|c| c.hi).collect();
    his.sort_unstable();
    let rivals = |c: &Candidate| (his.len() - his.partition_point(|&h| h < c.lo)) as u64 - 1;
    let (mut open, mut uncertain): (Vec<Candidate>, Vec<Candidate>) =
        kept.into_iter().partition(|c| rivals(c) < keep);
    let more = (keep - open.len() as u64) as usize;
    if more > 0 {
        // Weigh the rest exactly: the greedy segments next to each gap. In
        // address order, so that pages are read (and released) once, and a
        // region between two uncertain gaps is merged once.
        uncertain.sort_unstable_by_key(|c| (c.memory_index, c.left.start));
        let mut last: Option<(u32, Range, (Range, Range))> = None;
        let mut ends = |memory_index: u32, region: Range| match last {
            Some((m, r, ends)) if m == memory_index && r == region => ends,
            _ => {
                let image = images
                    .iter()
                    .find(|i| i.memory_index == memory_index)
                    .expect("the candidate's image");
                let ends = greedy_ends(image, region, engine, release);
                last = Some((memory_index, region, ends));
                ends
            }
        };
        let mut weighed: Vec<(u64, u32, u64, Candidate)> = uncertain
            .into_iter()
            .map(|c| {
                let a = ends(c.memory_index, c.left).1;
                let b = ends(c.memory_index, c.right).0;
                let extra = closing_cost(c.memory_index, c.index_type, a, b);
                debug_assert!((c.lo..=c.hi).contains(&extra));
                (extra, c.memory_index, c.left.end, c)
            })
            .collect();
        // Most expensive first; ties by higher (memory, offset), as the
        // tracker keeps the largest keys.
        weighed.sort_unstable_by_key(|w| std::cmp::Reverse((w.0, w.1, w.2)));
        open.extend(weighed.into_iter().take(more).map(|w| w.3));
    }

    let mut gaps: Vec<(u32, Range)> = open.iter().map(|c| (c.memory_index, c.gap())).collect();
    gaps.extend(never_closed);
    gaps.sort_unstable_by_key(|&(memory_index, gap)| (memory_index, gap.start));
    Some(cut_extents(extents, gaps.len(), gaps.into_iter()))
}

/// The first and last greedy segments of `region` (which has a non-zero
/// byte at each end and long gaps outside).
fn greedy_ends(
    image: &MemoryImage<'_>,
    region: Range,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> (Range, Range) {
    let pieces = pieces_within(image, region);
    let mut ends: Option<(Range, Range)> = None;
    greedy_segments(image, &pieces, engine, release, &mut |r: Range| {
        ends = Some(match ends {
            None => (r, r),
            Some((first, _)) => (first, r),
        })
    });
    ends.expect("a region holds a segment")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projected_cut_scales_the_cap_to_the_bytes_scanned() {
        // Gaps of 100, 200, ..., 4000 zeros between one-byte regions.
        let mut shortlist = Shortlist::new(10);
        let mut los = Vec::new();
        let mut at = 0;
        for i in 1..=40u64 {
            let left = Range {
                start: at,
                end: at + 1,
            };
            at += 1 + 100 * i;
            let right = Range {
                start: at,
                end: at + 1,
            };
            let candidate = Candidate::new(0, IndexType::I32, left, right);
            los.push(candidate.lo);
            shortlist.push(candidate);
        }
        los.sort_unstable_by(|a, b| b.cmp(a));
        // A quarter of the image seen: a quarter of the cap (2 of 10).
        assert_eq!(shortlist.projected_cut(1, 4), los[1]);
        assert_eq!(shortlist.projected_cut(4, 4), los[9]);
        assert!(los[1] > los[9]);
    }
}
