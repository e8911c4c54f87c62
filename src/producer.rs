//! The producer API: what a snapshotting tool (Wizer, weval, a compiler)
//! calls with the memories it holds, and what it gets back to encode.
//!
//! Two shapes:
//! * [`pack_segments`]: a list of `(memory, offset, &[u8])` in, merged
//!   segments borrowing those bytes out, in one call.
//! * [`Packer`]: whole memories handed in one at a time, only extents kept
//!   (no bytes), one cap across all of them; the caller slices its own
//!   memories afterwards. Peak memory does not grow with the heap.

use std::ops::Deref;

use crate::PackOptions;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{self, MemoryImage, StreamingPlan};
#[cfg(feature = "encoder")]
use crate::segment::Part;
use crate::segment::{IndexType, PackedSegment, Segment, offset_immediate};

/// The constant expression of an active segment's offset, as the memory's
/// index type requires: `i32.const` with a signed immediate (offsets of 2^31
/// and above are negative) or `i64.const` for memory64. Hand the immediate to
/// whatever encoder you use.
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

/// What [`pack_segments`] returns: the merged segments in (memory, offset)
/// order (use it as a slice), and whether they are within
/// [`PackOptions::max_segments`].
///
/// ```
/// use segpack::{IndexType, Segment};
/// let data = [1u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// let segments = [Segment { memory_index: 0, offset: 0, data: &data }];
/// let packed = segpack::pack_segments(&segments, &[IndexType::I32], &Default::default())?;
/// assert!(packed.cap_met());
/// assert_eq!(packed.len(), 2);
/// assert_eq!(packed[1].offset, 12);
/// # Ok::<(), segpack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedSegments<'a> {
    segments: Vec<PackedSegment<'a>>,
    index_types: Vec<IndexType>,
    cap_met: bool,
}

impl<'a> PackedSegments<'a> {
    /// Whether there are at most `max_segments` segments. When the cap cannot
    /// be met (gaps of 4 GiB or more are never closed, no segment grows past
    /// 1 GiB), the segments are still correct, just more of them.
    pub fn cap_met(&self) -> bool {
        self.cap_met
    }

    /// The segments as an owned list.
    pub fn into_vec(self) -> Vec<PackedSegment<'a>> {
        self.segments
    }

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
        for segment in &self.segments {
            let index_type = self.index_types[segment.memory_index as usize];
            section.active(
                segment.memory_index,
                &OffsetExpr::new(index_type, segment.offset).to_const_expr(),
                Payload::new(&segment.parts),
            );
        }
    }
}

impl<'a> Deref for PackedSegments<'a> {
    type Target = [PackedSegment<'a>];
    fn deref(&self) -> &Self::Target {
        &self.segments
    }
}

impl<'a> IntoIterator for PackedSegments<'a> {
    type Item = PackedSegment<'a>;
    type IntoIter = std::vec::IntoIter<PackedSegment<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.segments.into_iter()
    }
}

impl<'s, 'a> IntoIterator for &'s PackedSegments<'a> {
    type Item = &'s PackedSegment<'a>;
    type IntoIter = std::slice::Iter<'s, PackedSegment<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.segments.iter()
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
/// of memory `i`. The result is sorted by (memory, offset), holds every
/// non-zero byte of each memory's image, and at most
/// `options.max_segments` segments when that is possible
/// ([`PackedSegments::cap_met`] says whether it was).
///
/// # Errors
/// [`ErrorKind::InvalidSegment`] when a segment names an undescribed memory
/// or does not fit its address space; [`ErrorKind::InvalidOptions`] for a
/// `max_segments` of 0 or over [`ENGINE_MAX_SEGMENTS`](crate::ENGINE_MAX_SEGMENTS).
///
/// ```
/// use segpack::{IndexType, Segment};
/// let page = [0u8, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
/// let segments = [Segment { memory_index: 0, offset: 4096, data: &page }];
/// let packed = segpack::pack_segments(&segments, &[IndexType::I32], &Default::default())?;
/// assert_eq!(packed.len(), 2);
/// assert_eq!((packed[0].offset, packed[0].as_slice()), (4098, Some(&[1u8, 2][..])));
/// assert_eq!((packed[1].offset, packed[1].to_vec()), (4112, vec![3]));
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn pack_segments<'a>(
    segments: &[Segment<'a>],
    memories: &[IndexType],
    options: &PackOptions,
) -> Result<PackedSegments<'a>> {
    options.check()?;
    let images = images_of_segments(segments, memories)?;
    let packed = plan::pack_images(
        &images,
        options.max_segments as u64,
        options.threads,
        &|_| {},
    );
    Ok(PackedSegments {
        segments: packed.segments,
        index_types: memories.to_vec(),
        cap_met: packed.cap_met,
    })
}

/// A packed segment as a range of one memory: where it goes and how long it
/// is, no bytes. Slice your memory with [`range`](Self::range) to get its
/// payload.
///
/// ```
/// use segpack::{Extent, IndexType, OffsetExpr};
/// let extent = Extent { memory_index: 1, index_type: IndexType::I32, offset: 8, len: 4 };
/// let memory = *b"........data....";
/// assert_eq!(&memory[extent.range()], b"data");
/// assert_eq!(extent.offset_expr(), OffsetExpr::I32Const(8));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    /// The memory the segment initializes.
    pub memory_index: u32,
    /// That memory's index type.
    pub index_type: IndexType,
    /// The address of the segment's first byte.
    pub offset: u64,
    /// The payload's length in bytes.
    pub len: u64,
}

impl Extent {
    /// The payload's bytes as a range of the memory (for slicing it).
    ///
    /// # Panics
    /// On a 32-bit host, when the extent lies beyond what `usize` holds
    /// (a memory that large could not have been handed in).
    pub fn range(&self) -> std::ops::Range<usize> {
        let start = usize::try_from(self.offset).expect("extent within the address space");
        start..start + usize::try_from(self.len).expect("extent within the address space")
    }

    /// The offset expression for the segment's header.
    pub fn offset_expr(&self) -> OffsetExpr {
        OffsetExpr::new(self.index_type, self.offset)
    }

    /// Appends the segment to `section`, its payload sliced from `memory`
    /// (the whole memory this extent was planned from).
    ///
    /// ```
    /// use segpack::{Extent, IndexType};
    /// let memory = [0u8, 0, 7, 7];
    /// let extent = Extent { memory_index: 0, index_type: IndexType::I32, offset: 2, len: 2 };
    /// let mut section = wasm_encoder::DataSection::new();
    /// extent.encode_into(&memory, &mut section);
    /// assert_eq!(section.len(), 1);
    /// ```
    #[cfg(feature = "encoder")]
    pub fn encode_into(&self, memory: &[u8], section: &mut wasm_encoder::DataSection) {
        section.active(
            self.memory_index,
            &self.offset_expr().to_const_expr(),
            memory[self.range()].iter().copied(),
        );
    }
}

/// What [`Packer::finish`] returns: the extents in (memory, offset) order,
/// and whether they are within [`PackOptions::max_segments`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extents {
    /// The packed segments, without their bytes.
    pub extents: Vec<Extent>,
    /// Whether there are at most `max_segments` of them (see
    /// [`PackedSegments::cap_met`] for when they cannot be).
    pub cap_met: bool,
}

/// Packs whole memories handed in one at a time, keeping only extents.
///
/// For a producer that holds each memory as one slice, perhaps only inside
/// a callback, as Wizer does: call [`add_memory`](Self::add_memory) for each
/// memory (in any order, each index once; leave out memories you do not
/// want packed, such as imported ones), then [`finish`](Self::finish), and
/// slice your memories with the extents in a second pass. The packer holds
/// no bytes of any memory, and the state it keeps is bounded by the cap
/// (`max_segments` gaps), not by the heap. One cap applies across all
/// memories. The extents are those [`pack_segments`] gives for the same
/// memories, except that a segment merged past 1 GiB is cut at 1 GiB
/// boundaries rather than at a gap.
///
/// ```
/// use segpack::{IndexType, Packer};
/// let mut heap = vec![0u8; 1 << 16];
/// heap[100..104].copy_from_slice(b"heap");
/// heap[60_000] = 1;
/// let mut packer = Packer::new(&Default::default())?;
/// packer.add_memory(0, IndexType::I32, &heap);
/// let packed = packer.finish();
/// assert!(packed.cap_met);
/// let payloads: Vec<&[u8]> = packed.extents.iter().map(|e| &heap[e.range()]).collect();
/// assert_eq!(payloads, [&b"heap"[..], &[1u8][..]]);
/// # Ok::<(), segpack::Error>(())
/// ```
#[derive(Debug)]
pub struct Packer {
    plan: StreamingPlan,
    index_types: Vec<Option<IndexType>>,
}

impl Packer {
    /// A packer with `options` (its `max_segments` and `threads`;
    /// `zero_filled_imports` does not apply: you choose the memories).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidOptions`] for a `max_segments` of 0 or over
    /// [`ENGINE_MAX_SEGMENTS`](crate::ENGINE_MAX_SEGMENTS).
    pub fn new(options: &PackOptions) -> Result<Packer> {
        options.check()?;
        Ok(Packer {
            plan: StreamingPlan::new(options.max_segments as u64, options.threads),
            index_types: Vec::new(),
        })
    }

    /// Scans memory `memory_index`, whose whole contents are `memory` from
    /// address 0. Nothing of `memory` is kept.
    ///
    /// # Panics
    /// When `memory_index` was added before.
    pub fn add_memory(&mut self, memory_index: u32, index_type: IndexType, memory: &[u8]) {
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

    /// The extents of every memory added, in (memory, offset) order.
    pub fn finish(self) -> Extents {
        let (ranges, cap_met) = self.plan.finish();
        let extents = ranges
            .into_iter()
            .map(|(memory_index, r)| Extent {
                memory_index,
                index_type: self.index_types[memory_index as usize].expect("an added memory"),
                offset: r.start,
                len: r.end - r.start,
            })
            .collect();
        Extents { extents, cap_met }
    }
}

impl Extents {
    /// Appends every extent to `section`, each payload sliced from the memory
    /// `memory(memory_index)` returns (the whole memory, as it was added).
    ///
    /// ```
    /// use segpack::{IndexType, Packer};
    /// let heap = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
    /// let mut packer = Packer::new(&Default::default())?;
    /// packer.add_memory(0, IndexType::I32, &heap);
    /// let mut section = wasm_encoder::DataSection::new();
    /// packer.finish().encode_into(&mut section, |_| &heap[..]);
    /// assert_eq!(section.len(), 1);
    /// # Ok::<(), segpack::Error>(())
    /// ```
    #[cfg(feature = "encoder")]
    pub fn encode_into<'m>(
        &self,
        section: &mut wasm_encoder::DataSection,
        memory: impl Fn(u32) -> &'m [u8],
    ) {
        for extent in &self.extents {
            extent.encode_into(memory(extent.memory_index), section);
        }
    }
}

/// Checks producer-API segments and groups them into images.
pub(crate) fn images_of_segments<'a>(
    segments: &[crate::Segment<'a>],
    memories: &[IndexType],
) -> Result<Vec<MemoryImage<'a>>> {
    let mut per_memory: Vec<Vec<(u64, &'a [u8])>> = vec![Vec::new(); memories.len()];
    for (i, s) in segments.iter().enumerate() {
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
