//! The exact settle: of every way to keep a shortlist's cuts open or close
//! them, the one that adds the fewest bytes to the data section. Taken when
//! its count is within the cap ([`super::cap`], step 3). Of layouts with as
//! few bytes, the one with the most segments: a gap stays open unless
//! closing it saves bytes (SPEC §4), as in the greedy pass; or, when that
//! one is over the cap, the one with the fewest.
//!
//! The best layout up to an open cut `j` ends with one segment: from where
//! an earlier open cut's gap ends (its *start*), or from the memory's first
//! byte, to where `j`'s gap starts. Before it lies the best layout up to
//! that earlier cut. So, cut by cut, in order:
//!
//! ```text
//! best(j) = min over starts s of  base(s) + leb(end(j) - s) + end(j)
//! base(s) = best(before s) + header(s) - s
//! ```
//!
//! Only the length LEB ties a start to an end. A later start has the
//! shorter segment to any end, so a LEB no wider: once a later start has a
//! base as low, an earlier one can never be the best again, and is dropped.
//! The starts kept are few (their gaps are about a header long: longer
//! ones lower the base), in a deque, bases rising front to back; the best
//! for an end is, for each LEB width, the first start whose segment is
//! within it: at most five looks. O(cuts) in all, 4 bytes a cut kept.
//!
//! Ties (as many bytes, as many segments) go to the later start: one
//! answer, which the plain O(cuts²) definition in the tests gives too.

use std::cmp::Reverse;
use std::collections::VecDeque;

use super::cap::{Cuts, Extent};
use super::{MAX_SEGMENT_LEN, Range};
use crate::segment::{fixed_header_len, segment_len, uleb_len};

/// The longest segment of each length-LEB width: 1 to 5 bytes.
const WIDEST: [u64; 5] = [
    (1 << 7) - 1,
    (1 << 14) - 1,
    (1 << 21) - 1,
    (1 << 28) - 1,
    u64::MAX,
];

/// The cost of a layout so far: its bytes, then its segments, counted as
/// [`Ties`] says (lower is better). Bytes in 128 bits: a base less a 64-bit
/// offset goes below zero by as much as 2^64.
type Cost = (i128, i64);

/// Which of two layouts with as many bytes is the better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ties {
    /// The one with more segments: gaps stay open unless closing saves.
    MoreSegments,
    /// The one with fewer segments: for a cap the first does not meet.
    FewerSegments,
}

impl Ties {
    /// What one more segment adds to a [`Cost`]'s count.
    fn step(self) -> i64 {
        match self {
            Ties::MoreSegments => -1,
            Ties::FewerSegments => 1,
        }
    }
}

/// Where a segment may start, after which layout.
#[derive(Debug, Clone, Copy)]
struct Start {
    at: u64,
    /// The cost of the best layout before it.
    before: Cost,
    /// What a segment from here costs before its length LEB and its end:
    /// `before`, its fixed header, less `at`.
    base: Cost,
    /// The cut whose gap ends at `at`, or [`MEMORY_START`].
    cut: u32,
}

impl Start {
    /// A start at `at` in the memory of `extent`, after a layout costing
    /// `before`.
    fn new(extent: Extent, at: u64, before: Cost, cut: u32) -> Self {
        let header = fixed_header_len(extent.memory_index, extent.index_type, at);
        Start {
            at,
            before,
            base: (before.0 + i128::from(header) - i128::from(at), before.1),
            cut,
        }
    }
}

/// A start at a memory's first byte.
const MEMORY_START: u32 = u32::MAX;

/// Which cuts stay open in the exact layout, and how many segments it has.
pub(super) fn settle_exactly(cuts: &Cuts, ties: Ties) -> (Vec<bool>, u64) {
    // The start of the last segment of the best layout ending at each cut.
    let mut from: Vec<u32> = Vec::with_capacity(cuts.len());
    // The starts that may still begin the best last segment: the
    // stretch's since the last cut that never closes.
    let mut starts: VecDeque<Start> = VecDeque::new();
    let mut best: Cost = (0, 0);
    for j in 0..cuts.len() {
        let extent = cuts.extent(j);
        if j == 0 || cuts.memory_index(j) != cuts.memory_index(j - 1) {
            starts.clear();
            starts.push_back(Start::new(extent, extent.first, best, MEMORY_START));
        }
        let gap = cuts.gap(j);
        let start = last_segment_start(&mut starts, gap.start);
        let len = gap.start - start.at;
        let cost = segment_len(extent.memory_index, extent.index_type, start.at, len);
        best = (
            start.before.0 + i128::from(cost),
            start.before.1 + ties.step(),
        );
        from.push(start.cut);
        if cuts.is_fixed(j) {
            starts.clear();
        }
        enter(&mut starts, Start::new(extent, gap.end, best, j as u32));
    }
    (open_cuts(cuts, &from), best.1.unsigned_abs())
}

/// The start of the segment ending at `end` in the best layout. Starts
/// whose segment would pass 1 GiB leave; if none is left, the latest (a
/// segment past 1 GiB, which only cuts that never close can bound: the
/// 1 GiB re-split cuts it later).
fn last_segment_start(starts: &mut VecDeque<Start>, end: u64) -> Start {
    let latest = *starts.back().expect("a start before every cut");
    while starts.front().is_some_and(|s| end - s.at > MAX_SEGMENT_LEN) {
        starts.pop_front();
    }
    let mut chosen: Option<(Cost, Reverse<u64>, Start)> = None;
    for widest in WIDEST {
        // Segments shorten from front to back: this width's best start
        // is the first within it.
        let at = starts.partition_point(|s| end - s.at > widest);
        let Some(&start) = starts.get(at) else {
            continue;
        };
        let cost = (
            start.base.0 + i128::from(uleb_len(end - start.at)) + i128::from(end),
            start.base.1,
        );
        let candidate = (cost, Reverse(start.at), start);
        if chosen.is_none_or(|c| (candidate.0, candidate.1) < (c.0, c.1)) {
            chosen = Some(candidate);
        }
        if at == 0 {
            // Every wider width's best is the same start.
            break;
        }
    }
    chosen.map_or(latest, |(_, _, start)| start)
}

/// Adds `start` behind the starts, dropping those it makes useless: every
/// earlier start whose base is no lower.
fn enter(starts: &mut VecDeque<Start>, start: Start) {
    while starts.back().is_some_and(|s| s.base >= start.base) {
        starts.pop_back();
    }
    starts.push_back(start);
}

/// Opens the closed cuts of `open` (a layout of `count` segments) that add
/// nothing to the data section when opened, from the first, while it has
/// fewer than `budget` segments. (On the layout with the fewest bytes, no
/// opening saves.)
pub(super) fn reopen_free_cuts(cuts: &Cuts, open: &mut [bool], mut count: u64, budget: u64) {
    // The open cuts before and after cut `i`.
    let mut previous: Option<usize> = None;
    let mut next = 0;
    for i in 0..open.len() {
        if count >= budget {
            break;
        }
        if open[i] {
            previous = Some(i);
            continue;
        }
        // A memory's end is a cut that never closes: one is open after.
        next = (next.max(i)..open.len())
            .find(|&k| open[k])
            .expect("a memory's end");
        let merged = Range {
            start: cuts.start(i, previous),
            end: cuts.gap(next).start,
        };
        if cuts.close_price(i, merged) >= 0 {
            open[i] = true;
            count += 1;
            previous = Some(i);
        }
    }
}

/// Which cuts the best layout keeps open, followed back from the last cut
/// (every memory ends at a cut that never closes).
fn open_cuts(cuts: &Cuts, from: &[u32]) -> Vec<bool> {
    let mut open = vec![false; from.len()];
    let mut next_open = from.len().checked_sub(1);
    for j in (0..from.len()).rev() {
        if next_open == Some(j) || cuts.is_fixed(j) {
            open[j] = true;
            next_open = match from[j] {
                MEMORY_START => None,
                i => Some(i as usize),
            };
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Segments of `cuts` (all of memory 0) that stay `open`, as (start, end).
    fn segments(cuts: &Cuts, open: &[bool]) -> Vec<(u64, u64)> {
        cuts.open_segments(open)
            .map(|(_, r)| (r.start, r.end))
            .collect()
    }

    /// Dense data over more than 1 GiB, a byte of zeros every 64 MiB: one
    /// segment would be smallest, but none may pass 1 GiB, so the best
    /// layout cuts at the gap nearest below each 1 GiB, and only there.
    #[test]
    fn no_segment_passes_1_gib() {
        let step = 64 << 20;
        let gaps: Vec<Range> = (1..40u64)
            .map(|k| Range {
                start: k * step,
                end: k * step + 1,
            })
            .collect();
        let cuts = Cuts::of_gaps(0, 40 * step, &gaps);
        for ties in [Ties::MoreSegments, Ties::FewerSegments] {
            let (open, count) = settle_exactly(&cuts, ties);
            let segments = segments(&cuts, &open);
            assert_eq!(count, segments.len() as u64);
            assert!(
                segments.iter().all(|&(s, e)| e - s <= MAX_SEGMENT_LEN),
                "{segments:?}"
            );
            // 40 stretches of 64 MiB: 16 to a segment, at most.
            assert_eq!(segments.len(), 3, "{segments:?}");
        }
    }

    /// Runs across the 2-byte length LEB boundary: a segment of 16,383
    /// bytes takes a 2-byte LEB, one of 16,384 a 3-byte one. Three runs,
    /// 8,190 bytes each, 2 zeros apart: closing both gaps makes a segment
    /// of 24,574 bytes (3-byte LEB), closing one makes 16,382 (2 bytes).
    #[test]
    fn a_length_leb_boundary_is_priced_exactly() {
        let run = 8_190;
        let gaps = [
            Range {
                start: run,
                end: run + 2,
            },
            Range {
                start: 2 * run + 2,
                end: 2 * run + 4,
            },
        ];
        let cuts = Cuts::of_gaps(0, 3 * run + 4, &gaps);
        let (open, _) = settle_exactly(&cuts, Ties::MoreSegments);
        let segments = segments(&cuts, &open);
        let bytes: u64 = segments
            .iter()
            .map(|&(s, e)| segment_len(0, crate::segment::IndexType::I32, s, e - s))
            .sum();
        // Every layout, by hand: the smallest is the one found.
        let layouts = [
            vec![(0, run), (run + 2, 2 * run + 2), (2 * run + 4, 3 * run + 4)],
            vec![(0, 2 * run + 2), (2 * run + 4, 3 * run + 4)],
            vec![(0, run), (run + 2, 3 * run + 4)],
            vec![(0, 3 * run + 4)],
        ];
        let least = layouts
            .iter()
            .map(|l| {
                l.iter()
                    .map(|&(s, e)| segment_len(0, crate::segment::IndexType::I32, s, e - s))
                    .sum::<u64>()
            })
            .min()
            .unwrap();
        assert_eq!(bytes, least, "{segments:?}");
    }
}
