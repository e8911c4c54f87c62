//! The producer API: what a snapshotting tool (Wizer, weval, a compiler)
//! calls with the memories it holds, and what it gets back to encode.
//!
//! Two shapes:
//! * [`pack_segments`]: a list of `(memory, offset, &[u8])` in, merged
//!   segments borrowing those bytes out, in one call.
//! * [`Packer`]: whole memories handed in one at a time, only extents kept
//!   (no bytes), one cap across all of them; the caller slices its own
//!   memories afterwards. Peak memory does not grow with the heap.

use crate::PackOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{self, MEMORY_INDEX_LIMIT, MemoryImage, StreamingPlan};
#[cfg(feature = "encoder")]
use crate::segment::Part;
use crate::segment::{IndexType, PackedSegment, Segment, offset_immediate};

/// The constant expression of an active segment's offset, as the memory's
/// index type requires: `i32.const` with a signed immediate (offsets of 2^31
/// and above are negative) or `i64.const` for memory64. Hand the immediate to
/// whatever encoder you use. `Send` and `Sync`.
///
/// ```
/// use segpack::{IndexType, OffsetExpr};
/// assert_eq!(OffsetExpr::new(IndexType::I32, 0x8000_0000), OffsetExpr::I32Const(i32::MIN));
/// assert_eq!(OffsetExpr::new(IndexType::I64, 1 << 40), OffsetExpr::I64Const(1 << 40));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetExpr {
    /// `i32.const` with this immediate.
    I32Const(i32),
    /// `i64.const` with this immediate.
    I64Const(i64),
}

impl OffsetExpr {
    /// The expression for `offset` in a memory of `index_type`.
    pub fn new(index_type: IndexType, offset: u64) -> Self {
        match index_type {
            IndexType::I32 => OffsetExpr::I32Const(offset_immediate(index_type, offset) as i32),
            IndexType::I64 => OffsetExpr::I64Const(offset_immediate(index_type, offset)),
        }
    }

    /// The same as a `wasm_encoder::ConstExpr`.
    ///
    /// ```
    /// use segpack::{IndexType, OffsetExpr};
    /// use wasm_encoder::Encode;
    /// let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    /// OffsetExpr::new(IndexType::I32, 16).to_const_expr().encode(&mut ours);
    /// wasm_encoder::ConstExpr::i32_const(16).encode(&mut theirs);
    /// assert_eq!(ours, theirs);
    /// ```
    #[cfg(feature = "encoder")]
    pub fn to_const_expr(self) -> wasm_encoder::ConstExpr {
        match self {
            OffsetExpr::I32Const(v) => wasm_encoder::ConstExpr::i32_const(v),
            OffsetExpr::I64Const(v) => wasm_encoder::ConstExpr::i64_const(v),
        }
    }
}

/// What packing returns: the packed segments grouped by memory, in
/// (memory, offset) order, and whether they are within
/// [`PackOptions::max_segments`]. [`pack_segments`] gives
/// `Packed<PackedSegment>` (payloads borrowing the caller's bytes),
/// [`Packer::finish`] gives `Packed<Extent>` (ranges of the memories, no
/// bytes). `Send` and `Sync`.
///
/// ```
/// use segpack::{IndexType, Segment};
/// let data = [1u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// let segments = [Segment { memory_index: 0, offset: 0, data: &data }];
/// let packed = segpack::pack_segments(&segments, &[IndexType::I32], &Default::default())?;
/// assert!(packed.within_cap());
/// assert_eq!(packed.len(), 2);
/// let memory = &packed.memories()[0];
/// assert_eq!((memory.memory_index(), memory.index_type()), (0, IndexType::I32));
/// assert_eq!(memory.segments()[1].offset, 12);
/// # Ok::<(), segpack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed<S> {
    memories: Vec<PackedMemory<S>>,
    within_cap: bool,
}

/// The packed segments of one memory, in offset order: an item of
/// [`Packed::memories`]. `Send` and `Sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedMemory<S> {
    memory_index: u32,
    index_type: IndexType,
    segments: Vec<S>,
}

impl<S> Packed<S> {
    /// Groups segments given in (memory, offset) order.
    fn group(
        segments: impl IntoIterator<Item = (u32, S)>,
        index_type: impl Fn(u32) -> IndexType,
        within_cap: bool,
    ) -> Self {
        let mut memories: Vec<PackedMemory<S>> = Vec::new();
        for (memory_index, segment) in segments {
            match memories.last_mut() {
                Some(memory) if memory.memory_index == memory_index => {
                    memory.segments.push(segment)
                }
                _ => memories.push(PackedMemory {
                    memory_index,
                    index_type: index_type(memory_index),
                    segments: vec![segment],
                }),
            }
        }
        Packed {
            memories,
            within_cap,
        }
    }

    /// Whether there are at most `max_segments` segments. When the cap cannot
    /// be met (gaps of 4 GiB or more are never closed, no segment grows past
    /// 1 GiB), the segments are still correct, just more of them.
    pub fn within_cap(&self) -> bool {
        self.within_cap
    }

    /// The memories that have packed segments, by memory index. A memory
    /// whose image is all zeros has none, and is not listed.
    pub fn memories(&self) -> &[PackedMemory<S>] {
        &self.memories
    }

    /// The packed segments of memory `memory_index`, if it has any.
    pub fn memory(&self, memory_index: u32) -> Option<&PackedMemory<S>> {
        self.memories
            .binary_search_by_key(&memory_index, |m| m.memory_index)
            .ok()
            .map(|i| &self.memories[i])
    }

    /// Every packed segment, in (memory, offset) order.
    pub fn segments(&self) -> impl Iterator<Item = &S> {
        self.memories.iter().flat_map(|m| &m.segments)
    }

    /// How many packed segments there are, over all memories.
    pub fn len(&self) -> usize {
        self.memories.iter().map(|m| m.segments.len()).sum()
    }

    /// Whether there are none (every image is all zeros).
    pub fn is_empty(&self) -> bool {
        self.memories.is_empty()
    }
}

impl<S> PackedMemory<S> {
    /// The memory's index.
    pub fn memory_index(&self) -> u32 {
        self.memory_index
    }

    /// The memory's index type, as it was described.
    pub fn index_type(&self) -> IndexType {
        self.index_type
    }

    /// Its packed segments, in offset order (never empty).
    pub fn segments(&self) -> &[S] {
        &self.segments
    }

    /// The offset expression of a segment at `offset` in this memory.
    pub fn offset_expr(&self, offset: u64) -> OffsetExpr {
        OffsetExpr::new(self.index_type, offset)
    }
}

impl<'a> Packed<PackedSegment<'a>> {
    /// Appends every segment to `section` as an active segment with the
    /// offset expression its memory's index type needs (flag 2 and the
    /// memory index for memories other than 0, as wasm-encoder writes them).
    ///
    /// ```
    /// use segpack::{IndexType, Segment};
    /// let page = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    /// let segments = [Segment { memory_index: 0, offset: 0x8000_0000, data: &page }];
    /// let packed = segpack::pack_segments(&segments, &[IndexType::I32], &Default::default())?;
    /// let mut section = wasm_encoder::DataSection::new();
    /// packed.encode_into(&mut section);
    /// assert_eq!(section.len(), 1);
    /// # Ok::<(), segpack::Error>(())
    /// ```
    #[cfg(feature = "encoder")]
    pub fn encode_into(&self, section: &mut wasm_encoder::DataSection) {
        for memory in &self.memories {
            for segment in &memory.segments {
                section.active(
                    memory.memory_index,
                    &memory.offset_expr(segment.offset).to_const_expr(),
                    Payload::new(&segment.parts),
                );
            }
        }
    }
}

impl PackedMemory<Extent> {
    /// Appends this memory's segments to `section`, each payload sliced
    /// from `memory` (the whole memory, as it was added to the packer).
    ///
    /// ```
    /// use segpack::{IndexType, Packer};
    /// let heap = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
    /// let mut packer = Packer::new(&Default::default());
    /// packer.add_memory(0, IndexType::I32, &heap);
    /// let mut section = wasm_encoder::DataSection::new();
    /// for memory in packer.finish().memories() {
    ///     memory.encode_into(&heap, &mut section);
    /// }
    /// assert_eq!(section.len(), 1);
    /// ```
    #[cfg(feature = "encoder")]
    pub fn encode_into(&self, memory: &[u8], section: &mut wasm_encoder::DataSection) {
        for extent in &self.segments {
            section.active(
                self.memory_index,
                &self.offset_expr(extent.offset()).to_const_expr(),
                memory[extent.range()].iter().copied(),
            );
        }
    }
}

/// A payload's bytes, part after part, with its length known up front (as
/// wasm-encoder wants it).
#[cfg(feature = "encoder")]
struct Payload<'p, 'a> {
    parts: std::slice::Iter<'p, Part<'a>>,
    current: Part<'a>,
    left: usize,
}

#[cfg(feature = "encoder")]
impl<'p, 'a> Payload<'p, 'a> {
    fn new(parts: &'p [Part<'a>]) -> Self {
        Payload {
            left: parts.iter().map(|p| p.len() as usize).sum(),
            parts: parts.iter(),
            current: Part::Zeros(0),
        }
    }
}

#[cfg(feature = "encoder")]
impl Iterator for Payload<'_, '_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        loop {
            match &mut self.current {
                Part::Bytes([first, rest @ ..]) => {
                    let b = *first;
                    self.current = Part::Bytes(rest);
                    self.left -= 1;
                    return Some(b);
                }
                Part::Zeros(n) if *n > 0 => {
                    *n -= 1;
                    self.left -= 1;
                    return Some(0);
                }
                _ => self.current = *self.parts.next()?,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

#[cfg(feature = "encoder")]
impl ExactSizeIterator for Payload<'_, '_> {}

/// Merges a producer's data segments into the fewest bytes of segments.
///
/// `segments` are in the order instantiation would apply them (later ones
/// overwrite earlier ones where they overlap). `memories[i]` is the index type
/// of memory `i`. The result holds every non-zero byte of each memory's
/// image, and at most `options.max_segments` segments when that is possible
/// ([`Packed::within_cap`] says whether it was).
///
/// # Errors
/// [`ErrorKind::InvalidSegment`] when a segment names an undescribed memory
/// (or one of index 2^31 or more) or does not fit its address space.
///
/// ```
/// use segpack::{IndexType, Segment};
/// let page = [0u8, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
/// let segments = [Segment { memory_index: 0, offset: 4096, data: &page }];
/// let packed = segpack::pack_segments(&segments, &[IndexType::I32], &Default::default())?;
/// let found: Vec<_> = packed.segments().map(|s| (s.offset, s.to_vec())).collect();
/// assert_eq!(found, [(4098, vec![1, 2]), (4112, vec![3])]);
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn pack_segments<'a>(
    segments: &[Segment<'a>],
    memories: &[IndexType],
    options: &PackOptions,
) -> Result<Packed<PackedSegment<'a>>> {
    let images = images_of_segments(segments, memories)?;
    let packed = plan::pack_images(
        &images,
        u64::from(options.max_segments.get()),
        options.threads,
        &|_| {},
    );
    Ok(Packed::group(
        packed.segments.into_iter().map(|s| (s.memory_index, s)),
        |m| memories[m as usize],
        packed.cap_met,
    ))
}

/// A packed segment as a range of the memory it was planned from: where it
/// goes and how long it is, no bytes. Slice the memory with
/// [`range`](Self::range) to get its payload; the memory index and index
/// type are its [`PackedMemory`]'s. `Send` and `Sync`.
///
/// ```
/// use segpack::{IndexType, Packer};
/// let mut memory = [0u8; 64];
/// memory[8..12].copy_from_slice(b"data");
/// let mut packer = Packer::new(&Default::default());
/// packer.add_memory(0, IndexType::I32, &memory);
/// let packed = packer.finish();
/// let extent = packed.memories()[0].segments()[0];
/// assert_eq!((extent.offset(), extent.len()), (8, 4));
/// assert_eq!(&memory[extent.range()], b"data");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    // Within a slice that was handed in, so both fit a `usize`.
    start: usize,
    end: usize,
}

impl Extent {
    /// The address of the segment's first byte.
    pub fn offset(&self) -> u64 {
        self.start as u64
    }

    /// The payload's length in bytes (never 0).
    pub fn len(&self) -> u64 {
        (self.end - self.start) as u64
    }

    /// Always false: packing makes no empty segment.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The payload's bytes as a range of the memory (for slicing it).
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// Packs whole memories handed in one at a time, keeping only extents.
///
/// For a producer that holds each memory as one slice, perhaps only inside
/// a callback, as Wizer does: call [`add_memory`](Self::add_memory) for each
/// memory (in any order, each index once; leave out memories you do not
/// want packed, such as imported ones), then [`finish`](Self::finish), and
/// slice your memories with the extents in a second pass, memory by
/// memory. The packer holds no bytes of any memory, and the state it keeps
/// is bounded by the cap (`max_segments` gaps), not by the heap. One cap
/// applies across all memories. The extents are those [`pack_segments`]
/// gives for the same memories, except that a segment merged past 1 GiB is
/// cut at 1 GiB boundaries rather than at a gap.
///
/// `Send` and `Sync`: it may be held across an `.await` in a `Send` future,
/// or moved to another thread between memories.
///
/// ```
/// use segpack::{IndexType, PackOptions, Packer};
/// let mut heap = vec![0u8; 1 << 16];
/// heap[100..104].copy_from_slice(b"heap");
/// heap[60_000] = 1;
/// let mut packer = Packer::new(&PackOptions::default());
/// packer.add_memory(0, IndexType::I32, &heap);
/// let packed = packer.finish();
/// assert!(packed.within_cap());
/// let payloads: Vec<&[u8]> = packed.segments().map(|e| &heap[e.range()]).collect();
/// assert_eq!(payloads, [&b"heap"[..], &[1u8][..]]);
/// ```
#[derive(Debug)]
pub struct Packer {
    plan: StreamingPlan,
    index_types: Vec<Option<IndexType>>,
}

impl Packer {
    /// A packer with `options` (its `max_segments` and `threads`;
    /// `zero_filled_imports` does not apply: you choose the memories).
    pub fn new(options: &PackOptions) -> Packer {
        Packer {
            plan: StreamingPlan::new(u64::from(options.max_segments.get()), options.threads),
            index_types: Vec::new(),
        }
    }

    /// Scans memory `memory_index`, whose whole contents are `memory` from
    /// address 0. Nothing of `memory` is kept.
    ///
    /// # Panics
    /// When `memory_index` was added before, or is 2^31 or more (no engine
    /// has that many memories; a module may have 100).
    pub fn add_memory(&mut self, memory_index: u32, index_type: IndexType, memory: &[u8]) {
        assert!(
            memory_index < MEMORY_INDEX_LIMIT,
            "memory index {memory_index} is 2^31 or more: segpack packs memories 0 to 2^31 - 1"
        );
        let slot = memory_index as usize;
        if self.index_types.len() <= slot {
            self.index_types.resize(slot + 1, None);
        }
        assert!(
            self.index_types[slot].replace(index_type).is_none(),
            "memory {memory_index} was added to the packer twice"
        );
        self.plan.add(memory_index, index_type, memory);
    }

    /// The extents of every memory added, grouped by memory.
    pub fn finish(self) -> Packed<Extent> {
        let (ranges, cap_met) = self.plan.finish();
        let index_types = self.index_types;
        Packed::group(
            ranges.into_iter().map(|(memory_index, r)| {
                // Ranges of a slice that was handed in: they fit a `usize`.
                let extent = Extent {
                    start: r.start as usize,
                    end: r.end as usize,
                };
                (memory_index, extent)
            }),
            // Extents come only from added memories, which have an entry.
            |m| index_types[m as usize].unwrap_or_default(),
            cap_met,
        )
    }
}

/// Checks producer-API segments and groups them into images.
pub(crate) fn images_of_segments<'a>(
    segments: &[crate::Segment<'a>],
    memories: &[IndexType],
) -> Result<Vec<MemoryImage<'a>>> {
    let mut per_memory: Vec<Vec<(u64, &'a [u8])>> = vec![Vec::new(); memories.len()];
    for (i, s) in segments.iter().enumerate() {
        if s.memory_index >= MEMORY_INDEX_LIMIT {
            return Err(Error::new(
                ErrorKind::InvalidSegment,
                format!(
                    "segment {i} names memory {}, 2^31 or more: segpack packs memories 0 to 2^31 - 1",
                    s.memory_index
                ),
                None,
            ));
        }
        let Some(&index_type) = memories.get(s.memory_index as usize) else {
            return Err(Error::new(
                ErrorKind::InvalidSegment,
                format!(
                    "segment {i} names memory {}, but only {} memories were described",
                    s.memory_index,
                    memories.len()
                ),
                None,
            ));
        };
        if s.offset.checked_add(s.data.len() as u64).is_none() {
            return Err(Error::new(
                ErrorKind::InvalidSegment,
                format!(
                    "segment {i} (offset {:#x}, {} bytes) ends at the very top of the 64-bit address space (2^64), which segpack does not pack; leave that memory's segments as they are",
                    s.offset,
                    s.data.len()
                ),
                None,
            ));
        }
        if s.offset as u128 + s.data.len() as u128 > index_type.address_space() {
            return Err(Error::new(
                ErrorKind::InvalidSegment,
                format!(
                    "segment {i} (offset {:#x}, {} bytes) does not fit a {index_type:?} memory",
                    s.offset,
                    s.data.len()
                ),
                None,
            ));
        }
        per_memory[s.memory_index as usize].push((s.offset, s.data));
    }
    Ok(per_memory
        .into_iter()
        .enumerate()
        .filter(|(_, segs)| !segs.is_empty())
        .map(|(m, segs)| MemoryImage {
            memory_index: m as u32,
            index_type: memories[m],
            pieces: plan::overlay(&segs),
        })
        .collect())
}
