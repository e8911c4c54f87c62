//! The cap (SPEC §4): over `max_segments`, the cheapest gaps between greedy
//! segments close first, ties by lower (memory, offset), keeping O(cap)
//! state however many runs there are.

use super::{MAX_GAP, MAX_SEGMENT_LEN, Range};
use crate::segment::{IndexType, header_len, uleb_len};

/// What closing one gap costs, and where it is: the order in which gaps are
/// closed when over the cap. Cheapest first; ties by lower (memory, offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct GapKey {
    extra_bytes: u64,
    memory_index: u32,
    gap_start: u64,
}

/// A gap between greedy segments that may stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Gap {
    key: GapKey,
    gap_end: u64,
}

/// The key of the gap between neighbouring greedy segments `a` and `b`, or
/// `None` when that gap may never be closed (4 GiB or more of zeros, or a
/// merged segment past 1 GiB). The definition [`GapTracker::segment`]
/// computes in short.
#[cfg(test)]
pub(super) fn gap_key(
    memory_index: u32,
    index_type: IndexType,
    a: Range,
    b: Range,
) -> Option<GapKey> {
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
pub(super) struct GapTracker {
    pub(super) budget: u64,
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
    pub(super) fn new(budget: u64) -> Self {
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

    pub(super) fn start_memory(&mut self) {
        self.previous = None;
    }

    pub(super) fn segment(&mut self, memory_index: u32, index_type: IndexType, r: Range) {
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
    pub(super) fn keep_most_expensive(&mut self, n: u64) {
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
    pub(super) fn finish(mut self) -> Vec<(u32, Range)> {
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
pub(super) fn closing_cost(memory_index: u32, index_type: IndexType, a: Range, b: Range) -> u64 {
    (uleb_len(b.end - a.start) + (b.start - a.end))
        .saturating_sub(uleb_len(a.len()) + header_len(memory_index, index_type, b.start, b.len()))
}

/// The final segments: each memory's extent `(memory index, first start,
/// last end)` cut at the gaps that stay open, `(memory index, gap)`.
pub(super) fn cut_extents(
    extents: Vec<(u32, u64, u64)>,
    mut gaps: Vec<(u32, Range)>,
) -> Vec<(u32, Range)> {
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
