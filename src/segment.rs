//! Data segments: the types the producer API speaks, and the exact binary size
//! of an active segment's header (SPEC §4).

/// The index type of a linear memory: it decides how a segment's offset is
/// encoded (`i32.const` or `i64.const`), and so what a segment header costs.
/// `Send` and `Sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IndexType {
    /// A 32-bit memory: offsets are `i32.const` (signed LEB of the offset as `i32`).
    #[default]
    I32,
    /// A 64-bit memory (memory64): offsets are `i64.const`.
    I64,
}

impl IndexType {
    /// The index type of a memory whose type has the 64-bit flag
    /// `memory64` (wasmparser's and wasm-encoder's `MemoryType::memory64`,
    /// wasmtime's `MemoryType::is_64`).
    ///
    /// ```
    /// use segpack::IndexType;
    /// let ty = wasmparser::MemoryType {
    ///     memory64: true, shared: false, initial: 1, maximum: None, page_size_log2: None,
    /// };
    /// assert_eq!(IndexType::from_memory64(ty.memory64), IndexType::I64);
    /// assert_eq!(IndexType::from_memory64(false), IndexType::I32);
    /// ```
    pub fn from_memory64(memory64: bool) -> IndexType {
        if memory64 {
            IndexType::I64
        } else {
            IndexType::I32
        }
    }

    /// The largest address space of a memory of this index type, in bytes.
    ///
    /// ```
    /// use segpack::IndexType;
    /// assert_eq!(IndexType::I32.address_space(), 1 << 32);
    /// ```
    pub fn address_space(self) -> u128 {
        match self {
            IndexType::I32 => 1 << 32,
            IndexType::I64 => 1 << 64,
        }
    }
}

/// An active data segment as a producer holds it: `data` is written to memory
/// `memory_index` at byte `offset` when the module is instantiated.
/// `Send` and `Sync`.
///
/// ```
/// use segpack::Segment;
/// let heap = [0u8, 0, 7, 7, 0];
/// let seg = Segment { memory_index: 0, offset: 1024, data: &heap };
/// assert_eq!(seg.end(), 1029);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    /// The memory the segment initializes.
    pub memory_index: u32,
    /// The address of the segment's first byte.
    pub offset: u64,
    /// The bytes written, borrowed from the caller.
    pub data: &'a [u8],
}

impl Segment<'_> {
    /// The address one past the segment's last byte (saturating).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.data.len() as u64)
    }
}

/// One piece of a [`PackedSegment`]'s payload: either bytes borrowed from an
/// input segment, or a run of zeros (a gap that was cheaper to fill than to
/// start a new segment for). `Send` and `Sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    /// Bytes copied from an input segment.
    Bytes(&'a [u8]),
    /// This many zero bytes.
    Zeros(u64),
}

impl Part<'_> {
    /// The number of bytes this part contributes to the payload.
    pub fn len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::Zeros(n) => *n,
        }
    }

    /// Whether the part contributes no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A segment of the packed output: its payload is the concatenation of
/// `parts`, which borrow the input's bytes (no copies are made). `Send` and
/// `Sync`.
///
/// ```
/// use segpack::{Part, PackedSegment};
/// let seg = PackedSegment { memory_index: 0, offset: 8, parts: vec![Part::Bytes(b"ab"), Part::Zeros(2), Part::Bytes(b"c")] };
/// assert_eq!(seg.len(), 5);
/// assert_eq!(seg.to_vec(), b"ab\0\0c");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedSegment<'a> {
    /// The memory the segment initializes.
    pub memory_index: u32,
    /// The address of the segment's first byte.
    pub offset: u64,
    /// The payload, in order.
    pub parts: Vec<Part<'a>>,
}

impl<'a> PackedSegment<'a> {
    /// The payload's length in bytes.
    pub fn len(&self) -> u64 {
        self.parts.iter().map(Part::len).sum()
    }

    /// Whether the payload is empty (packing never produces one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload as one slice of the caller's bytes, when it is one (no
    /// zeros were filled in and it does not straddle two input segments):
    /// hand it to an encoder with no copy.
    ///
    /// ```
    /// use segpack::{Part, PackedSegment};
    /// let one = PackedSegment { memory_index: 0, offset: 0, parts: vec![Part::Bytes(b"ab")] };
    /// assert_eq!(one.as_slice(), Some(&b"ab"[..]));
    /// let two = PackedSegment { memory_index: 0, offset: 0, parts: vec![Part::Bytes(b"a"), Part::Zeros(1)] };
    /// assert_eq!(two.as_slice(), None);
    /// ```
    pub fn as_slice(&self) -> Option<&'a [u8]> {
        match self.parts.as_slice() {
            [Part::Bytes(bytes)] => Some(bytes),
            [] => Some(&[]),
            _ => None,
        }
    }

    /// The payload as one owned buffer, for segments that are not one slice
    /// ([`as_slice`](Self::as_slice)); writers can also stream `parts`.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() as usize);
        for part in &self.parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::Zeros(n) => out.resize(out.len() + *n as usize, 0),
            }
        }
        out
    }
}

/// Appends `v` in unsigned LEB128, [`uleb_len`] bytes.
pub(crate) fn push_uleb(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A LEB128 number at `at` in `h`: its bits, and how many were read (7 a
/// byte); `None` when `h` ends first. Bits past 64 are dropped, as they
/// cannot be in a valid binary.
pub(crate) fn read_leb(h: &[u8], at: &mut usize) -> Option<(u64, u32)> {
    let (mut value, mut shift) = (0u64, 0u32);
    loop {
        let b = *h.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        shift += 7;
        if b & 0x80 == 0 {
            return Some((value, shift));
        }
    }
}

/// An unsigned LEB128 number at `at` in `h` ([`read_leb`]).
pub(crate) fn read_uleb(h: &[u8], at: &mut usize) -> Option<u64> {
    read_leb(h, at).map(|(value, _)| value)
}

/// Bytes in the unsigned LEB128 encoding of `v`.
pub(crate) fn uleb_len(v: u64) -> u64 {
    // 7 payload bits per byte; 0 still takes one byte.
    let bits = 64 - (v | 1).leading_zeros() as u64;
    bits.div_ceil(7)
}

/// Bytes in the signed LEB128 encoding of `v`.
pub(crate) fn sleb_len(v: i64) -> u64 {
    // A signed LEB needs one sign bit on top of the value's significant bits.
    let significant = if v < 0 {
        64 - v.leading_ones()
    } else {
        64 - v.leading_zeros()
    } as u64;
    (significant + 1).div_ceil(7)
}

/// The offset as the `i32.const`/`i64.const` immediate encodes it: offsets of
/// 2^31 and above in a 32-bit memory are negative `i32`s.
pub(crate) fn offset_immediate(index_type: IndexType, offset: u64) -> i64 {
    match index_type {
        IndexType::I32 => offset as u32 as i32 as i64,
        IndexType::I64 => offset as i64,
    }
}

/// The part of an active segment's header that does not depend on its
/// length: flag byte, memory index (only when not 0: flag 2), const opcode,
/// signed LEB offset and `end`. What opening a gap costs before length LEBs.
pub(crate) fn fixed_header_len(memory_index: u32, index_type: IndexType, offset: u64) -> u64 {
    let flag_and_memory = if memory_index == 0 {
        1
    } else {
        1 + uleb_len(memory_index as u64)
    };
    // opcode + immediate + `end`
    let offset_expr = 1 + sleb_len(offset_immediate(index_type, offset)) + 1;
    flag_and_memory + offset_expr
}

/// The most [`fixed_header_len`] can be: flag, a 5-byte memory index, the
/// opcode, a 10-byte `i64.const` immediate and `end`.
pub(crate) const MAX_FIXED_HEADER_LEN: u64 = 1 + 5 + 1 + 10 + 1;

/// The exact size in the file of an active segment's header: the fixed part
/// ([`fixed_header_len`]) and the LEB payload length. The payload itself is
/// not counted.
pub(crate) fn header_len(memory_index: u32, index_type: IndexType, offset: u64, len: u64) -> u64 {
    fixed_header_len(memory_index, index_type, offset) + uleb_len(len)
}

/// The full size in the file of an active segment: header and payload.
pub(crate) fn segment_len(memory_index: u32, index_type: IndexType, offset: u64, len: u64) -> u64 {
    header_len(memory_index, index_type, offset, len) + len
}

/// Appends the header of an active segment (everything before the payload).
#[cfg(feature = "module")]
pub(crate) fn encode_header(
    out: &mut Vec<u8>,
    memory_index: u32,
    index_type: IndexType,
    offset: u64,
    len: u64,
) {
    use wasm_encoder::Encode;
    if memory_index == 0 {
        out.push(0x00);
    } else {
        out.push(0x02);
        memory_index.encode(out);
    }
    // The offset expression as wasm-encoder's `ConstExpr` writes it (opcode,
    // signed LEB, `end`), without the list a `ConstExpr` allocates: this
    // runs once per packed segment, twice when writing.
    match index_type {
        IndexType::I32 => {
            out.push(0x41);
            (offset as u32 as i32).encode(out);
        }
        IndexType::I64 => {
            out.push(0x42);
            (offset as i64).encode(out);
        }
    }
    out.push(0x0b);
    len.encode(out);
}

#[cfg(all(test, any(feature = "module", feature = "encoder")))]
mod tests {
    use super::*;
    use wasm_encoder::{ConstExpr, DataSection, Encode};

    /// The arithmetic cost must match what wasm-encoder writes, byte for byte.
    #[test]
    fn header_len_matches_wasm_encoder() {
        let offsets = [
            0u64,
            1,
            63,
            64,
            127,
            128,
            8191,
            8192,
            1 << 20,
            (1 << 31) - 1,
            1 << 31,
            u32::MAX as u64,
            1 << 40,
            i64::MAX as u64,
            u64::MAX,
        ];
        let lens = [0u64, 1, 127, 128, 16383, 16384, 1 << 30];
        for &memory_index in &[0u32, 1, 127, 128, 70000] {
            for index_type in [IndexType::I32, IndexType::I64] {
                for &offset in &offsets {
                    if index_type == IndexType::I32 && offset > u32::MAX as u64 {
                        continue;
                    }
                    for &len in &lens {
                        let mut ours = Vec::new();
                        encode_header(&mut ours, memory_index, index_type, offset, len);
                        assert_eq!(
                            ours.len() as u64,
                            header_len(memory_index, index_type, offset, len),
                            "memory {memory_index} {index_type:?} offset {offset} len {len}"
                        );
                        // And the header is what wasm-encoder's DataSection writes.
                        if len <= 128 {
                            let payload = vec![1u8; len as usize];
                            let expr = match index_type {
                                IndexType::I32 => ConstExpr::i32_const(offset as u32 as i32),
                                IndexType::I64 => ConstExpr::i64_const(offset as i64),
                            };
                            let mut section = DataSection::new();
                            section.active(memory_index, &expr, payload.iter().copied());
                            let mut bytes = Vec::new();
                            section.encode(&mut bytes);
                            ours.extend_from_slice(&payload);
                            // section = id, size LEB, count LEB (1), segment
                            assert!(bytes.ends_with(&ours));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn leb_lengths() {
        assert_eq!(uleb_len(0), 1);
        assert_eq!(uleb_len(127), 1);
        assert_eq!(uleb_len(128), 2);
        assert_eq!(uleb_len(u64::MAX), 10);
        assert_eq!(sleb_len(63), 1);
        assert_eq!(sleb_len(64), 2);
        assert_eq!(sleb_len(-64), 1);
        assert_eq!(sleb_len(-65), 2);
        assert_eq!(sleb_len(i64::MIN), 10);
    }
}
