//! The cap (SPEC §4): over `max_segments`, the cheapest gaps between greedy
//! segments close first, ties by lower (memory, offset), keeping O(cap)
//! state however many runs there are.

use super::{MAX_GAP, MAX_SEGMENT_LEN, Range, Segments};
use crate::segment::{IndexType, header_len, uleb_len};

/// What closing one gap costs, and where it is: the order in which gaps are
/// closed when over the cap. Cheapest first; ties by lower (memory, offset).
/// A closable gap is shorter than a merged segment may be (1 GiB), and
/// closing it costs less than its length: both fit in 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct GapKey {
    extra_bytes: u32,
    memory_index: u32,
    gap_start: u64,
}

/// A closable gap between greedy segments that may stay open: 24 bytes,
/// and the tracker holds up to 1.5 × budget of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Gap {
    key: GapKey,
    gap_len: u32,
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
    let extra_bytes = cost(merged).saturating_sub(cost(a) + cost(b));
    Some(GapKey {
        extra_bytes: u32::try_from(extra_bytes).expect("a closable gap costs under 4 GiB"),
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
/// `1.5 × budget` gaps, cut back to the `budget` most expensive whenever it
/// fills (a selection, linear), so memory is O(budget), not O(runs). (The
/// result does not depend on when the buffer is cut, only on its holding
/// more than `budget`.)
#[derive(Debug)]
pub(super) struct GapTracker {
    pub(super) budget: u64,
    greedy_segments: u64,
    closable_gaps: u64,
    /// The most expensive closable gaps seen: every one of the `budget`
    /// most expensive is here, with at most half as many cheaper ones
    /// besides (cut back in batches, [`GapTracker::keep_most_expensive`]).
    open: Vec<Gap>,
    /// Gaps that never close, as (memory index, gap).
    never_closed: Vec<(u32, Range)>,
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

    /// Makes room at once for the gaps between `segments` greedy segments
    /// (as far as the buffer may hold them): a buffer grown step by step
    /// needs the old one and the new one at once, each time.
    pub(super) fn expect(&mut self, segments: usize) {
        let room = segments.saturating_sub(1).min(self.limit());
        self.open
            .reserve_exact(room.saturating_sub(self.open.len()));
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
            self.never_closed.push((
                memory_index,
                Range {
                    start: prev.end,
                    end: gap_end,
                },
            ));
            return;
        }
        self.closable_gaps += 1;
        let extra_bytes = closing_cost(memory_index, index_type, prev, r);
        // Most gaps are cheaper than every kept one: settled by `floor`.
        if extra_bytes < self.floor {
            return;
        }
        if self.budget == 0 {
            return;
        }
        // Both under 1 GiB: the merged segment is (checked above).
        let gap = Gap {
            key: GapKey {
                extra_bytes: extra_bytes as u32,
                memory_index,
                gap_start: prev.end,
            },
            gap_len: gap as u32,
        };
        let limit = self.limit();
        if self.open.len() == self.open.capacity() {
            // Grow towards the limit, never past it: the buffer is the
            // tracker's whole memory. By half, not double: less room unused
            // at the end, and the old buffers, freed side by side, add up to
            // more than a later one needs (a growth below the golden ratio),
            // so a Wasm memory, which never shrinks, can reuse them.
            let capacity = self.open.capacity();
            let want = (capacity + capacity / 2).clamp(1024, limit.max(1024));
            self.open
                .reserve_exact(want.saturating_sub(self.open.len()).max(1));
        }
        self.open.push(gap);
        if self.open.len() >= limit {
            self.keep_most_expensive(self.budget);
            self.floor = self.open.first().map_or(0, |g| g.key.extra_bytes.into());
        }
    }

    /// The buffer is cut back when it holds this many gaps: `budget` and
    /// half as many again (at least one more).
    fn limit(&self) -> usize {
        let budget = usize::try_from(self.budget).unwrap_or(usize::MAX);
        budget.saturating_add((budget / 2).max(1))
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

    /// The final segments of each memory, in (memory, offset) order, before
    /// the 1 GiB re-split.
    ///
    /// They are written over the gaps' buffer: the gaps that stay open, the
    /// gaps that never close (as markers, in order) and one empty gap at the
    /// end of each memory's extent are sorted by (memory, offset), and each
    /// ends exactly one segment. A map over the buffer's `into_iter` to an
    /// item no larger and as aligned is collected in place by `std` (checked
    /// in debug builds): at `--max-segments 100000` on a module with 98,450
    /// segments, a second list of 2.4 MB is never made.
    pub(super) fn finish(mut self) -> Segments {
        // Memories may have come in any order (the streaming planner); a
        // stable sort leaves those that came in order as they are.
        self.extents
            .sort_by_key(|&(memory_index, _, _)| memory_index);
        // Closable gaps that stay open: all of them if within budget, else
        // the most expensive `closable - (greedy - budget)`.
        let need = self.greedy_segments.saturating_sub(self.budget);
        let stay_open = self.closable_gaps.saturating_sub(need);
        self.keep_most_expensive(stay_open.min(self.budget));
        let key = |&(memory_index, gap): &(u32, Range)| (memory_index, gap.start);
        self.never_closed
            .extend(self.extents.iter().map(|&(memory_index, _, last)| {
                (
                    memory_index,
                    Range {
                        start: last,
                        end: last,
                    },
                )
            }));
        self.never_closed.sort_unstable_by_key(key);
        self.open.reserve_exact(self.never_closed.len());
        self.open
            .extend(self.never_closed.iter().map(|&(memory_index, gap)| Gap {
                key: GapKey {
                    extra_bytes: NEVER_CLOSED,
                    memory_index,
                    gap_start: gap.start,
                },
                gap_len: 0,
            }));
        self.open
            .sort_unstable_by_key(|g| (g.key.memory_index, g.key.gap_start));
        let mut never = self.never_closed.iter();
        let mut extents = self.extents.iter();
        let mut memories: Vec<(u32, usize)> = Vec::with_capacity(self.extents.len());
        let mut start = 0;
        let buffer = self.open.as_ptr() as usize;
        let mut ranges: Vec<Range> = self
            .open
            .into_iter()
            .map(|g| {
                let (memory_index, gap) = if g.key.extra_bytes == NEVER_CLOSED {
                    *never.next().expect("a marker per gap that never closes")
                } else {
                    let gap = Range {
                        start: g.key.gap_start,
                        end: g.key.gap_start + u64::from(g.gap_len),
                    };
                    (g.key.memory_index, gap)
                };
                match memories.last_mut() {
                    Some((m, n)) if *m == memory_index => *n += 1,
                    _ => {
                        memories.push((memory_index, 1));
                        let &(m, first, _) = extents.next().expect("an extent per memory");
                        debug_assert_eq!(m, memory_index);
                        start = first;
                    }
                }
                let segment = Range {
                    start,
                    end: gap.start,
                };
                start = gap.end;
                segment
            })
            .collect();
        // `std` does not promise the in-place collect: if it ever stopped,
        // only memory would grow (never the output), and the tests say so.
        debug_assert_eq!(
            ranges.as_ptr() as usize,
            buffer,
            "the final segments are no longer written over the gaps' buffer"
        );
        ranges.shrink_to_fit();
        Segments { ranges, memories }
    }
}

/// A gap in [`GapTracker::finish`]'s buffer that stands for the next of the
/// gaps that never close (no closable gap costs this much: see [`GapKey`]).
const NEVER_CLOSED: u32 = u32::MAX;

/// What closing the gap between neighbouring greedy segments `a` and `b`
/// adds to the file: [`gap_key`]'s extra bytes, with what the merged segment
/// and the two apart share taken out (as in [`Merger::worth_merging`]).
pub(super) fn closing_cost(memory_index: u32, index_type: IndexType, a: Range, b: Range) -> u64 {
    (uleb_len(b.end - a.start) + (b.start - a.end))
        .saturating_sub(uleb_len(a.len()) + header_len(memory_index, index_type, b.start, b.len()))
}

/// The final segments: each memory's extent `(memory index, first start,
/// last end)` cut at the gaps that stay open, `(memory index, gap)`: `count`
/// of them, in (memory, offset) order.
pub(super) fn cut_extents(
    extents: Vec<(u32, u64, u64)>,
    count: usize,
    gaps: impl Iterator<Item = (u32, Range)>,
) -> Segments {
    let mut out = Segments::default();
    out.ranges.reserve_exact(count + extents.len());
    let mut gaps = gaps.peekable();
    for (memory_index, first, last) in extents {
        let mut start = first;
        while let Some((_, gap)) = gaps.next_if(|&(m, _)| m == memory_index) {
            out.push(
                memory_index,
                Range {
                    start,
                    end: gap.start,
                },
            );
            start = gap.end;
        }
        out.push(memory_index, Range { start, end: last });
    }
    out
}
