//! Planning: from a memory's active segments to the fewest bytes of packed
//! segments. Pure computation over borrowed slices; no I/O.
//!
//! The steps, per memory:
//! 1. [`overlay`]: resolve overlapping segments, last writer wins, into
//!    sorted, disjoint pieces of the image (zeros between them).
//! 2. Find the image's non-zero runs ([`crate::scan`]) and merge neighbours
//!    greedily while the merged segment is strictly smaller in the file
//!    ([`Merger`]), using the exact header size ([`crate::segment`]).
//! 3. Over all memories: if there are more segments than the cap allows,
//!    close the cheapest gaps ([`apply_cap`]).
//! 4. Describe each segment's payload as parts borrowing the pieces
//!    ([`build_parts`]).

use std::collections::BTreeMap;

use crate::scan;
use crate::segment::{IndexType, Part, segment_len};

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
/// Runs arrive in address order. The open segment absorbs the next run when
/// the merged segment is strictly smaller in the file than the two apart
/// (a gap of zeros cheaper than a new header), and touching runs (gap 0) are
/// always joined. Segments longer than [`MAX_SEGMENT_LEN`] are split.
pub(crate) struct Merger {
    memory_index: u32,
    index_type: IndexType,
    open: Option<Range>,
    out: Vec<Range>,
}

impl Merger {
    pub(crate) fn new(memory_index: u32, index_type: IndexType) -> Self {
        Merger {
            memory_index,
            index_type,
            open: None,
            out: Vec::new(),
        }
    }

    fn cost(&self, start: u64, end: u64) -> u64 {
        segment_len(self.memory_index, self.index_type, start, end - start)
    }

    /// Whether joining `a` and the following `b` makes the file smaller.
    fn worth_merging(&self, a: Range, b: Range) -> bool {
        let gap = b.start - a.end;
        if gap == 0 {
            return true;
        }
        gap < MAX_GAP
            && b.end - a.start <= MAX_SEGMENT_LEN
            && self.cost(a.start, b.end) < self.cost(a.start, a.end) + self.cost(b.start, b.end)
    }

    pub(crate) fn push(&mut self, run: Range) {
        match self.open {
            Some(open) if self.worth_merging(open, run) => {
                self.open = Some(Range {
                    start: open.start,
                    end: run.end,
                })
            }
            Some(open) => {
                self.flush(open);
                self.open = Some(run);
            }
            None => self.open = Some(run),
        }
    }

    fn flush(&mut self, mut range: Range) {
        while range.len() > MAX_SEGMENT_LEN {
            self.out.push(Range {
                start: range.start,
                end: range.start + MAX_SEGMENT_LEN,
            });
            range.start += MAX_SEGMENT_LEN;
        }
        self.out.push(range);
    }

    pub(crate) fn finish(mut self) -> Vec<Range> {
        if let Some(open) = self.open.take() {
            self.flush(open);
        }
        self.out
    }
}

/// The greedy segments of one memory's image.
pub(crate) fn merge_runs(image: &MemoryImage<'_>) -> Vec<Range> {
    let mut merger = Merger::new(image.memory_index, image.index_type);
    // Runs that touch across piece boundaries arrive with gap 0 and are joined.
    for piece in &image.pieces {
        scan::for_each_run(piece.data, |s, e| {
            merger.push(Range {
                start: piece.offset + s as u64,
                end: piece.offset + e as u64,
            })
        });
    }
    merger.finish()
}

/// What closing one gap costs, and where it is: the order in which gaps are
/// closed when over the cap. Cheapest first; ties by lower (memory, offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct GapKey {
    extra_bytes: u64,
    memory_index: u32,
    gap_start: u64,
}

/// The key of the gap between neighbouring segments `a` and `b`, or `None`
/// when that gap may never be closed.
fn gap_key(image: &MemoryImage<'_>, a: Range, b: Range) -> Option<GapKey> {
    let merged = Range {
        start: a.start,
        end: b.end,
    };
    if b.start - a.end >= MAX_GAP || merged.len() > MAX_SEGMENT_LEN {
        return None;
    }
    let cost = |r: Range| segment_len(image.memory_index, image.index_type, r.start, r.len());
    Some(GapKey {
        extra_bytes: cost(merged).saturating_sub(cost(a) + cost(b)),
        memory_index: image.memory_index,
        gap_start: a.end,
    })
}

/// Closes the cheapest gaps until at most `budget` segments remain over all
/// memories. Returns `false` when the budget could not be met (gaps of 4 GiB
/// or more, or segments that would pass 1 GiB).
///
/// The gaps to close are fixed first, as all gaps whose key is at most the
/// `need`-th smallest; then one pass per memory closes them, keys taken
/// between the greedy neighbours so the choice does not depend on the order
/// of closing. A closure that would pass 1 GiB is skipped.
pub(crate) fn apply_cap(images: &[MemoryImage<'_>], plans: &mut [Vec<Range>], budget: u64) -> bool {
    let total: u64 = plans.iter().map(|p| p.len() as u64).sum();
    if total <= budget {
        return true;
    }
    let mut keys: Vec<GapKey> = images
        .iter()
        .zip(plans.iter())
        .flat_map(|(image, plan)| plan.windows(2).filter_map(|w| gap_key(image, w[0], w[1])))
        .collect();
    let need = (total - budget) as usize;
    let threshold = if keys.len() <= need {
        keys.iter().max().copied()
    } else {
        Some(*keys.select_nth_unstable(need - 1).1)
    };
    let Some(threshold) = threshold else {
        return false;
    };
    for (image, plan) in images.iter().zip(plans.iter_mut()) {
        let mut out: Vec<Range> = Vec::with_capacity(plan.len());
        for (j, &r) in plan.iter().enumerate() {
            if let Some(last) = out.last_mut() {
                let chosen = gap_key(image, plan[j - 1], r).is_some_and(|k| k <= threshold);
                if chosen && r.end - last.start <= MAX_SEGMENT_LEN {
                    last.end = r.end;
                    continue;
                }
            }
            out.push(r);
        }
        *plan = out;
    }
    plans.iter().map(|p| p.len() as u64).sum::<u64>() <= budget
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

/// The packed segments of some memories, in (memory, offset) order.
pub(crate) struct Packed<'a> {
    pub segments: Vec<crate::PackedSegment<'a>>,
    /// Whether the segment budget was met.
    pub cap_met: bool,
}

/// Packs the images into at most `budget` segments where possible.
pub(crate) fn pack_images<'a>(images: &[MemoryImage<'a>], budget: u64) -> Packed<'a> {
    let mut plans: Vec<Vec<Range>> = images.iter().map(merge_runs).collect();
    let cap_met = apply_cap(images, &mut plans, budget);
    let mut segments = Vec::with_capacity(plans.iter().map(Vec::len).sum());
    for (image, plan) in images.iter().zip(&plans) {
        let mut cursor = 0;
        for &range in plan {
            segments.push(crate::PackedSegment {
                memory_index: image.memory_index,
                offset: range.start,
                parts: build_parts(&image.pieces, &mut cursor, range),
            });
        }
    }
    Packed { segments, cap_met }
}
