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
//!    close the cheapest gaps ([`GapTracker`]), or close them as Wizer's
//!    rule does ([`wizer`]), whichever layout is smaller. Only the gaps that
//!    may stay open are kept, O(cap) of them, so memory does not grow with
//!    the image: one scan, no list of all runs.
//! 4. Describe each segment's payload as parts borrowing the pieces
//!    ([`build_parts`]).

use std::collections::BTreeMap;

use crate::scan;

mod cap;
mod coarse;
mod exact;
mod merge;
#[cfg(test)]
mod tests;
mod wizer;

use crate::segment::{IndexType, Part};
use cap::GapTracker;
use merge::greedy_segments;
use wizer::ShortGaps;

/// SpiderMonkey rejects data segments longer than 1 GiB, so no merged
/// segment grows past it.
pub const MAX_SEGMENT_LEN: u64 = 1 << 30;

/// A gap this long is never closed: it would write at least 4 GiB of zeros.
pub const MAX_GAP: u64 = 1 << 32;

/// Memory indices are below this: the cap keeps a 64-bit memory's flag in
/// the top bit of a gap's memory index ([`cap`]'s `Gap`), and no engine has
/// two billion memories (validation allows 100).
pub(crate) const MEMORY_INDEX_LIMIT: u32 = 1 << 31;

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

impl<'a> scan::Slice<'a> for Piece<'a> {
    fn get(&self) -> (u64, &'a [u8]) {
        (self.offset, self.data)
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
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }
}

/// Final segments in (memory, offset) order: their ranges, 16 bytes each,
/// and the memory they belong to once per run of one memory's segments (a
/// memory index beside every range would take a third more).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Segments {
    pub ranges: Vec<Range>,
    /// (memory index, how many of `ranges` in a row are its), in order.
    pub memories: Vec<(u32, usize)>,
}

impl Segments {
    /// Appends a segment of memory `memory_index`.
    pub(crate) fn push(&mut self, memory_index: u32, r: Range) {
        self.ranges.push(r);
        match self.memories.last_mut() {
            Some((m, n)) if *m == memory_index => *n += 1,
            _ => self.memories.push((memory_index, 1)),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// The segments as (memory index, range), in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, Range)> + Clone + '_ {
        self.memories
            .iter()
            .flat_map(|&(m, n)| std::iter::repeat_n(m, n))
            .zip(self.ranges.iter().copied())
    }
}

/// Resolves segments, given in section order, into the image's disjoint
/// pieces sorted by offset. Where segments overlap, the later one's bytes win,
/// as instantiation applies them in order. Empty segments contribute nothing.
pub(crate) fn overlay<'a>(segments: &[(u64, &'a [u8])]) -> Vec<Piece<'a>> {
    overlay_iter(segments.iter().copied())
}

/// As [`overlay`], the segments read (up to three times) from an iterator,
/// so that the common cases hold one list of pieces, exactly as long as it
/// needs to be.
pub(crate) fn overlay_iter<'a>(
    segments: impl Iterator<Item = (u64, &'a [u8])> + Clone,
) -> Vec<Piece<'a>> {
    let nonempty = segments
        .filter(|(_, d)| !d.is_empty())
        .map(|(offset, data)| Piece { offset, data });
    let mut pieces: Vec<Piece<'a>> = Vec::with_capacity(nonempty.clone().count());
    pieces.extend(nonempty.clone());
    let disjoint = |pieces: &[Piece<'_>]| pieces.windows(2).all(|w| w[0].end() <= w[1].offset);
    // The common case (every producer we know): sorted and disjoint already.
    if disjoint(&pieces) {
        return pieces;
    }
    // Out of order but disjoint (Go's linker): no byte is written twice, so
    // the order does not matter, and sorted they are the image. (Disjoint
    // pieces are not empty: their offsets are distinct.)
    pieces.sort_unstable_by_key(|p| p.offset);
    if disjoint(&pieces) {
        return pieces;
    }
    // Overlapping: in section order again.
    pieces.clear();
    pieces.extend(nonempty);
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

/// Splits a final segment longer than [`MAX_SEGMENT_LEN`]: its gaps were
/// all chosen to close, so walk its greedy segments again and close them left
/// to right while the segment stays within 1 GiB.
fn split_long(image: &MemoryImage<'_>, range: Range, engine: Engine, out: &mut Vec<Range>) {
    let mut current: Option<Range> = None;
    let pieces = pieces_within(image, range);
    greedy_segments(image, &pieces, engine, &|_| {}, None, &mut |r: Range| {
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

impl Engine {
    /// `threads` as the user gave it (0: all cores), jobs sized for that
    /// many, and the coarse route tried first or not.
    fn new(threads: usize, coarse: bool) -> Self {
        let threads = crate::pool::thread_count(threads);
        Engine {
            threads,
            job_bytes: scan::job_bytes(threads),
            coarse,
        }
    }
}

/// Images of at least this many bytes per segment of the cap try the coarse
/// route ([`coarse`]) first: the cap then binds hard enough that only long
/// gaps stay open. Below it a full pass is cheap anyway.
const COARSE_BYTES_PER_SEGMENT: u64 = 256;

/// Nor do images of pieces shorter than this on average: the route saves
/// the full pass's work a run inside long pieces, but a piece this short
/// holds a run or two, and costs either pass about the same; a route that
/// gives up has then cost a pass more. esbuild.wasm's 98,450 pieces of 32
/// bytes: the route by chunks gave up after 8 ms, at every cap.
const COARSE_BYTES_PER_PIECE: u64 = 64;

/// The packed segments of some memories, in (memory, offset) order.
pub(crate) struct Packed<'a> {
    pub segments: Vec<crate::PackedSegment<'a>>,
    /// Whether the segment budget was met.
    pub cap_met: bool,
}

/// The packed segments of some memories as ranges, no parts: what the
/// rewriter keeps (a segment's parts are made again, one segment at a time,
/// as it is written: see [`PartsCursor`]).
pub(crate) struct PackedRanges {
    /// In (memory, offset) order.
    pub segments: Segments,
    /// Whether the segment budget was met.
    pub cap_met: bool,
    /// The segments within the second budget asked for, if any (for a
    /// report: what a higher cap would give), planned in the same pass.
    /// (Only whole modules have reports.)
    #[cfg_attr(not(feature = "module"), allow(dead_code))]
    pub also: Option<Segments>,
}

/// Packs the images, in memory order, into at most `budget` segments where
/// possible. `release` is told which input bytes were scanned for good.
pub(crate) fn pack_images<'a>(
    images: &[MemoryImage<'a>],
    budget: u64,
    threads: usize,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Packed<'a> {
    with_parts(images, pack_ranges(images, budget, None, threads, release))
}

/// As [`pack_images`], the segments as ranges only; and when `also` is
/// given, the segments within that budget too, from the same pass.
pub(crate) fn pack_ranges(
    images: &[MemoryImage<'_>],
    budget: u64,
    also: Option<u64>,
    threads: usize,
    release: &(dyn Fn(&[u8]) + Sync),
) -> PackedRanges {
    scan_gaps(images, budget, also, threads, release)
        .settle()
        .split(images)
}

/// [`pack_ranges`] in its three steps, so that a caller may free the
/// images' pieces while the cap settles, which reads none: the scan.
pub(crate) fn scan_gaps(
    images: &[MemoryImage<'_>],
    budget: u64,
    also: Option<u64>,
    threads: usize,
    release: &(dyn Fn(&[u8]) + Sync),
) -> ScannedGaps {
    let bytes = image_bytes(images);
    let pieces: u64 = images.iter().map(|image| image.pieces.len() as u64).sum();
    let coarse = bytes >= widest(budget, also).saturating_mul(COARSE_BYTES_PER_SEGMENT)
        && bytes >= pieces.saturating_mul(COARSE_BYTES_PER_PIECE);
    scan_gaps_with(images, budget, also, Engine::new(threads, coarse), release)
}

/// The higher of the budget and the second one a report asks for: what a
/// scan is made for ([`scan_gaps`]), and the most it can settle.
pub(crate) fn widest(budget: u64, also: Option<u64>) -> u64 {
    budget.max(also.unwrap_or(0))
}

/// What the cap needs of the images, scanned ([`scan_gaps`]).
#[derive(Clone)]
pub(crate) struct ScannedGaps {
    gaps: cap::Gaps,
    engine: Engine,
}

impl ScannedGaps {
    /// The highest budget this scan can be settled for.
    #[cfg_attr(not(feature = "module"), allow(dead_code))]
    pub(crate) fn widest(&self) -> u64 {
        self.gaps.widest()
    }

    /// This scan, to be settled within `budget` (and `also`, when asked),
    /// both at most [`widest`](Self::widest), as if it had been made for
    /// them ([`cap::Gaps::narrowed`]).
    #[cfg_attr(not(feature = "module"), allow(dead_code))]
    pub(crate) fn narrowed(&self, budget: u64, also: Option<u64>) -> ScannedGaps {
        ScannedGaps {
            gaps: self.gaps.narrowed(budget, also),
            engine: self.engine,
        }
    }

    /// The cap settled: the final segments, before any past 1 GiB is split.
    pub(crate) fn settle(self) -> Finals {
        let budget = self.gaps.budget;
        let (segments, also) = self.gaps.finish();
        Finals {
            segments,
            also,
            budget,
            engine: self.engine,
        }
    }
}

/// The final segments ([`ScannedGaps::settle`]).
pub(crate) struct Finals {
    segments: Segments,
    also: Option<Segments>,
    budget: u64,
    engine: Engine,
}

impl Finals {
    /// Splits the segments past 1 GiB, with the images scanned (their
    /// pieces again, if they were freed).
    pub(crate) fn split(self, images: &[MemoryImage<'_>]) -> PackedRanges {
        let segments = split_past_1_gib(images, self.segments, self.engine);
        let cap_met = segments.len() as u64 <= self.budget;
        let also = self
            .also
            .map(|also| split_past_1_gib(images, also, self.engine));
        PackedRanges {
            segments,
            cap_met,
            also,
        }
    }
}

/// The packed segments with their parts.
fn with_parts<'a>(images: &[MemoryImage<'a>], packed: PackedRanges) -> Packed<'a> {
    let mut cursor = PartsCursor::new(images);
    let segments = packed
        .segments
        .iter()
        .map(|(memory_index, range)| {
            let mut parts = Vec::new();
            cursor.parts(memory_index, range, &mut parts);
            crate::PackedSegment {
                memory_index,
                offset: range.start,
                parts,
            }
        })
        .collect();
    Packed {
        segments,
        cap_met: packed.cap_met,
    }
}

/// Makes the parts of packed segments asked for in (memory, offset) order,
/// any of them skipped.
pub(crate) struct PartsCursor<'i, 'a> {
    images: &'i [MemoryImage<'a>],
    /// The image of the last segment asked for, and the cursor into its pieces.
    image: usize,
    piece: usize,
}

impl<'i, 'a> PartsCursor<'i, 'a> {
    pub(crate) fn new(images: &'i [MemoryImage<'a>]) -> Self {
        PartsCursor {
            images,
            image: 0,
            piece: 0,
        }
    }

    /// Replaces `parts` with the payload of segment `range` of memory
    /// `memory_index` (see [`build_parts`]).
    pub(crate) fn parts(&mut self, memory_index: u32, range: Range, parts: &mut Vec<Part<'a>>) {
        while self.images[self.image].memory_index != memory_index {
            self.image += 1;
            self.piece = 0;
        }
        parts.clear();
        build_parts(
            &self.images[self.image].pieces,
            &mut self.piece,
            range,
            parts,
        );
    }
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
            tracker: GapTracker::new(budget, None),
            engine: Engine::new(threads, false),
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
        let mut short = ShortGaps::new(tracker.gaps.widest(), data.len() as u64);
        let pieces = [(0, data)];
        greedy_segments(
            &image,
            &pieces,
            self.engine,
            &|_| {},
            Some(&mut short),
            &mut |r| tracker.segment(memory_index, index_type, r),
        );
        // The bytes are gone after this call: Wizer's short gaps are looked
        // for now if they may count. (More memories only add long gaps, so
        // a memory passed over here is never needed later.)
        short.finish(&mut tracker.gaps);
        if tracker.gaps.needs_short_gaps() {
            wizer::offer_short_gaps(&image, &pieces, &mut tracker.gaps, &|_| {});
        }
    }

    /// The final segments, in (memory, offset) order, and whether they are
    /// within the budget. A segment longer than [`MAX_SEGMENT_LEN`] is cut
    /// at that length (the bytes are gone, so its gaps cannot be looked for
    /// again as [`split_long`] does).
    pub(crate) fn finish(self) -> (Vec<(u32, Range)>, bool) {
        let budget = self.tracker.gaps.budget;
        let mut out = Vec::new();
        for (memory_index, r) in self.tracker.finish().0.iter() {
            merge::Merger::flush(r, &mut |r| out.push((memory_index, r)));
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

#[cfg(test)]
fn pack_images_with<'a>(
    images: &[MemoryImage<'a>],
    budget: u64,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Packed<'a> {
    with_parts(
        images,
        pack_ranges_with(images, budget, None, engine, release),
    )
}

#[cfg(test)]
fn pack_ranges_with(
    images: &[MemoryImage<'_>],
    budget: u64,
    also: Option<u64>,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> PackedRanges {
    scan_gaps_with(images, budget, also, engine, release)
        .settle()
        .split(images)
}

fn scan_gaps_with(
    images: &[MemoryImage<'_>],
    budget: u64,
    also: Option<u64>,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> ScannedGaps {
    let coarse = engine
        .coarse
        .then(|| coarse::long_gaps(images, budget, also, engine, release))
        .flatten();
    let mut gaps = coarse.unwrap_or_else(|| greedy_gaps(images, budget, also, engine, release));
    if gaps.needs_short_gaps() {
        for image in images {
            wizer::offer_short_gaps(image, &image.pieces, &mut gaps, release);
        }
    }
    ScannedGaps { gaps, engine }
}

/// The full pass: every greedy segment of every image, into [`Gaps`].
fn greedy_gaps(
    images: &[MemoryImage<'_>],
    budget: u64,
    also: Option<u64>,
    engine: Engine,
    release: &(dyn Fn(&[u8]) + Sync),
) -> cap::Gaps {
    let mut tracker = GapTracker::new(budget, also);
    // A first guess at the greedy segments: twice the pieces (zeros inside
    // a piece split it, merging joins pieces: esbuild.wasm's 98,450 pieces
    // make 115,059), or one per 64 bytes of an image of few pieces (the
    // 64 MiB snapshot's 19 MB fill a shortlist of 225,000): grown step by
    // step, the buffers it left behind would stay in a Wasm memory. Room
    // not written to is not touched until freed and used again: no more.
    let pieces: usize = images.iter().map(|i| i.pieces.len()).sum();
    let per_64_bytes = usize::try_from(image_bytes(images) / 64).unwrap_or(usize::MAX);
    let guess = pieces.saturating_mul(2).max(per_64_bytes);
    tracker.gaps.shortlist.expect(guess);
    let mut short = ShortGaps::new(tracker.gaps.widest(), image_bytes(images));
    for image in images {
        tracker.start_memory();
        greedy_segments(
            image,
            &image.pieces,
            engine,
            release,
            Some(&mut short),
            &mut |r| tracker.segment(image.memory_index, image.index_type, r),
        );
    }
    short.finish(&mut tracker.gaps);
    tracker.gaps
}

/// The final segments, each longer than [`MAX_SEGMENT_LEN`] split by
/// [`split_long`].
fn split_past_1_gib(images: &[MemoryImage<'_>], finals: Segments, engine: Engine) -> Segments {
    // Segments longer than 1 GiB are rare: split them only if any.
    if finals.ranges.iter().any(|r| r.len() > MAX_SEGMENT_LEN) {
        let mut segments = Segments::default();
        segments.ranges.reserve_exact(finals.len());
        let mut ranges = Vec::new();
        for (memory_index, r) in finals.iter() {
            if r.len() > MAX_SEGMENT_LEN {
                let image = images
                    .iter()
                    .find(|i| i.memory_index == memory_index)
                    .expect("the segment's image");
                ranges.clear();
                split_long(image, r, engine, &mut ranges);
                ranges.iter().for_each(|&r| segments.push(memory_index, r));
            } else {
                segments.push(memory_index, r);
            }
        }
        segments
    } else {
        finals
    }
}

/// The payload of segment `range` as parts of the image's pieces, with zeros
/// for the holes between them. `cursor` is the index of the first piece that
/// may overlap `range`; ranges must be asked for in address order.
pub(crate) fn build_parts<'a>(
    pieces: &[Piece<'a>],
    cursor: &mut usize,
    range: Range,
    parts: &mut Vec<Part<'a>>,
) {
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
}
