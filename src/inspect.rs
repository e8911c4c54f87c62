//! What packing would do, memory by memory, without writing anything: the
//! numbers behind `segpack inspect`.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::memo::Memo;
use crate::parse::{self, Binary, Module, Placement};
use crate::rules;
use crate::segment::IndexType;
use crate::{PackOptions, PackReport, Plan};

/// One memory of a module, before and after packing.
///
/// Sizes of segments are their exact size in the data section: header
/// (flag, memory index, offset expression, length) and payload.
///
/// ```
/// let input = wat::parse_str(r#"(module (import "env" "mem" (memory 1))
///     (data (i32.const 0) "a\00\00b"))"#).unwrap();
/// let inspection = segpack::inspect(&input, &Default::default())?;
/// let memory = &inspection.memories[0][0];
/// assert!(memory.imported);
/// assert_eq!((memory.zero_bytes, memory.non_zero_bytes), (2, 2));
/// assert_eq!(memory.not_packable, Some(segpack::NotPackable::ImportedMemory));
/// // Not packable: packing leaves its segments as they are.
/// assert_eq!(memory.packed_segment_bytes, memory.segment_bytes);
/// # Ok::<(), segpack::Error>(())
/// ```
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryReport {
    /// The memory's index in its module.
    pub memory_index: u32,
    /// 32- or 64-bit.
    pub index_type: IndexType,
    /// Whether the memory is imported (packable only with
    /// [`zero_filled_imports`](PackOptions::zero_filled_imports)).
    pub imported: bool,
    /// Active segments that write this memory.
    pub segments: u64,
    /// Their payload bytes.
    pub data_bytes: u64,
    /// Zero bytes inside those payloads: what packing can drop.
    pub zero_bytes: u64,
    /// Non-zero bytes inside those payloads (`data_bytes - zero_bytes`).
    pub non_zero_bytes: u64,
    /// The segments' size in the data section, headers included.
    pub segment_bytes: u64,
    /// Active segments of this memory after packing.
    pub packed_segments: u64,
    /// Their size in the data section after packing, headers included.
    pub packed_segment_bytes: u64,
    /// Why the memory's segments are left as they are, when they are.
    pub not_packable: Option<crate::NotPackable>,
}

/// What packing a binary would do, per module and per memory.
///
/// ```
/// let input = wat::parse_str(r#"(component
///     (core module (memory 1) (memory 1)
///         (data (memory 1) (i32.const 0) "\00\00\00\00\00\00\00\00\00\00x")))"#).unwrap();
/// let inspection = segpack::inspect(&input, &Default::default())?;
/// assert_eq!(inspection.report.modules[0].path, "core module 0");
/// let [unused, used] = &inspection.memories[0][..] else { panic!() };
/// assert_eq!(unused.segments, 0);
/// assert_eq!((used.memory_index, used.segments, used.packed_segments), (1, 1, 1));
/// assert!(used.packed_segment_bytes < used.segment_bytes);
/// # Ok::<(), segpack::Error>(())
/// ```
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Inspection {
    /// The report [`pack_module`](crate::pack_module) would return.
    pub report: PackReport,
    /// The memories of each module: `memories[i]` are those of
    /// `report.modules[i]`, in index order.
    pub memories: Vec<Vec<MemoryReport>>,
}

/// Plans the packing of `input` (a core module or component) and reports,
/// for each core module and each of its memories, the segments and bytes
/// before and after, the zero bytes inside segments, and why a memory is not
/// packable. Writes nothing.
///
/// # Errors
/// As [`Plan::new`].
///
/// ```
/// let input = wat::parse_str(r#"(module (memory 1)
///     (data (i32.const 0) "\00\00hi\00\00\00\00\00\00\00\00\00\00\00\00\00\00!"))"#).unwrap();
/// let inspection = segpack::inspect(&input, &Default::default())?;
/// let memory = &inspection.memories[0][0];
/// assert_eq!((memory.segments, memory.data_bytes, memory.zero_bytes), (1, 19, 16));
/// // Two segments ("hi" and "!") are smaller than one with 14 zeros inside.
/// assert_eq!(memory.packed_segments, 2);
/// assert!(memory.packed_segment_bytes < memory.segment_bytes);
/// assert_eq!(memory.not_packable, None);
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn inspect(input: &[u8], options: &PackOptions) -> Result<Inspection> {
    inspect_with_release(input, options, &|_| {})
}

/// [`inspect`], telling `release` which input bytes planning has read for
/// good, as [`Plan::with_release`] does: a caller that maps a large file
/// can drop those pages, so that inspecting it holds no more memory than
/// packing it.
///
/// # Errors
/// As [`Plan::new`].
///
/// ```
/// let input = wat::parse_str(r#"(module (memory 1) (data (i32.const 0) "hi"))"#).unwrap();
/// let released = std::sync::atomic::AtomicUsize::new(0);
/// let inspection = segpack::inspect_with_release(&input, &Default::default(), &|bytes| {
///     released.fetch_add(bytes.len(), std::sync::atomic::Ordering::Relaxed);
/// })?;
/// assert_eq!(inspection.memories[0][0].segments, 1);
/// assert!(released.into_inner() > 0);
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn inspect_with_release(
    input: &[u8],
    options: &PackOptions,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<Inspection> {
    inspect_with(input, options, release, None)
}

/// [`inspect`] for an input mapped from a file, as [`Plan::with_mapped`]
/// plans it.
///
/// # Errors
/// As [`Plan::new`].
///
/// See [`MappedInput`](crate::MappedInput) for a mapped input.
pub fn inspect_with_mapped(
    input: &[u8],
    options: &PackOptions,
    mapped: &dyn crate::MappedInput,
) -> Result<Inspection> {
    let release = |bytes: &[u8]| mapped.release(bytes);
    let read_at = |offset, buf: &mut [u8]| mapped.read_at(offset, buf);
    inspect_with(input, options, &release, Some(&read_at))
}

fn inspect_with(
    input: &[u8],
    options: &PackOptions,
    release: &(dyn Fn(&[u8]) + Sync),
    read_at: Option<crate::parse::ReadAt<'_>>,
) -> Result<Inspection> {
    // As `Plan::build`, but the zeros of each payload piece the plan scans
    // are counted as it is released (its pages still mapped), and the
    // parses are kept: the figures then need no second reading of the
    // input (at 1 GiB, that reading took a third of the time).
    let known = parse::validate(input, release, read_at, options.threads)?;
    release(input);
    let seen = ZerosSeen::new(input, known.payloads());
    let counting = |bytes: &[u8]| {
        seen.see(bytes);
        release(bytes);
    };
    let memo = Memo::parses_only();
    let plan = Plan::build_valid(input, options, &counting, false, known, Some(&memo))?;
    let report = plan.report().clone();
    drop(plan);
    let seen = seen.finish();
    let mut memories = Vec::with_capacity(report.modules.len());
    let parse =
        |range: Range<usize>| memo.binary(range.start, || parse::parse(input, range, release));
    walk_with(0..input.len(), &parse, &mut |module| {
        let packed = report
            .modules
            .get(memories.len())
            .map_or(&[][..], |m| &m.packed_memories[..]);
        memories.push(module_memories(module, packed, options, release, &seen));
    })?;
    debug_assert_eq!(memories.len(), report.modules.len());
    Ok(Inspection { report, memories })
}

/// Calls `f` on each core module of the binary at `range`, in the order
/// packing reports them. `release` is told which bytes parsing read for
/// good.
pub(crate) fn walk(
    input: &[u8],
    range: Range<usize>,
    release: &(dyn Fn(&[u8]) + Sync),
    f: &mut dyn FnMut(&Module<'_>),
) -> Result<()> {
    let parse = |range: Range<usize>| parse::parse(input, range, release).map(Arc::new);
    walk_with(range, &parse, f)
}

/// [`walk`], each binary parsed by `parse`.
fn walk_with<'a>(
    range: Range<usize>,
    parse: &dyn Fn(Range<usize>) -> Result<Arc<Binary<'a>>>,
    f: &mut dyn FnMut(&Module<'_>),
) -> Result<()> {
    match &*parse(range)? {
        Binary::Module(module) => f(module),
        Binary::Component(sections) => {
            for nested in sections.iter().filter_map(|s| s.nested.clone()) {
                walk_with(nested, parse, f)?;
            }
        }
    }
    Ok(())
}

/// Zero bytes of segment payloads, counted as planning releases each piece
/// it scanned ([`ZerosSeen::see`]): a piece lies inside one payload.
struct ZerosSeen<'a> {
    input: &'a [u8],
    /// Every payload in the input, in input order.
    payloads: Vec<Range<usize>>,
    /// What was seen: (payload, range in the input, its zero bytes).
    seen: Mutex<Vec<(usize, Range<usize>, u64)>>,
}

impl<'a> ZerosSeen<'a> {
    fn new(input: &'a [u8], payloads: Vec<Range<usize>>) -> Self {
        ZerosSeen {
            input,
            payloads,
            seen: Mutex::default(),
        }
    }

    /// Counts the zeros of `bytes` when they lie inside one payload (a
    /// scanned piece; not the whole input or a section, which validation
    /// and parsing release).
    fn see(&self, bytes: &[u8]) {
        let Some(start) = crate::emit::offset_in(self.input, bytes).filter(|_| !bytes.is_empty())
        else {
            return;
        };
        let end = start + bytes.len();
        let i = self.payloads.partition_point(|p| p.end <= start);
        if !self
            .payloads
            .get(i)
            .is_some_and(|p| p.start <= start && end <= p.end)
        {
            return;
        }
        let zeros = count_zeros(bytes);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((i, start..end, zeros));
        }
    }

    /// What was seen, in input order.
    fn finish(self) -> Seen<'a> {
        let mut seen = self.seen.into_inner().unwrap_or_default();
        seen.sort_unstable_by_key(|s| s.1.start);
        Seen {
            input: self.input,
            payloads: self.payloads,
            seen,
        }
    }
}

/// The pieces [`ZerosSeen`] counted, in input order.
struct Seen<'a> {
    input: &'a [u8],
    payloads: Vec<Range<usize>>,
    seen: Vec<(usize, Range<usize>, u64)>,
}

impl Seen<'_> {
    /// The zero bytes of `data`, a payload: those seen, and the rest
    /// counted now (all of it when two pieces seen overlap but differ).
    /// Whether any byte was read now.
    fn zeros(&self, data: &[u8]) -> (u64, bool) {
        let start = crate::emit::offset_in(self.input, data).expect("a payload of the input");
        let end = start + data.len();
        let i = self.payloads.partition_point(|p| p.start < start);
        if self.payloads.get(i) != Some(&(start..end)) {
            return (count_zeros(data), true);
        }
        let from = self.seen.partition_point(|s| s.0 < i);
        let pieces = self.seen[from..].iter().take_while(|s| s.0 == i);
        let (mut zeros, mut at, mut read) = (0, start, false);
        let mut last: Option<&Range<usize>> = None;
        for (_, range, seen) in pieces {
            // A piece scanned twice (the coarse route's look into the first
            // mebibyte) is the same range: counted once.
            if last == Some(range) {
                continue;
            }
            last = Some(range);
            if range.start < at {
                return (count_zeros(data), true);
            }
            if range.start > at {
                zeros += count_zeros(&self.input[at..range.start]);
                read = true;
            }
            zeros += seen;
            at = range.end;
        }
        if at < end {
            zeros += count_zeros(&self.input[at..end]);
            read = true;
        }
        (zeros, read)
    }
}

/// The memory reports of one module; `packed` is what packing gave each
/// re-packed memory (segments, bytes), from the plan; `seen`, the zeros
/// counted as the plan scanned. `release` is told of the segments read
/// here, once counted.
fn module_memories(
    module: &Module<'_>,
    packed: &[(u32, u64, u64)],
    options: &PackOptions,
    release: &(dyn Fn(&[u8]) + Sync),
    seen: &Seen<'_>,
) -> Vec<MemoryReport> {
    let mut reports: Vec<MemoryReport> = module
        .memories
        .iter()
        .enumerate()
        .map(|(m, memory)| MemoryReport {
            memory_index: m as u32,
            index_type: memory.index_type,
            imported: memory.imported,
            segments: 0,
            data_bytes: 0,
            zero_bytes: 0,
            non_zero_bytes: 0,
            segment_bytes: 0,
            packed_segments: 0,
            packed_segment_bytes: 0,
            not_packable: None,
        })
        .collect();
    for s in &module.segments {
        let memory_index = match s.placement {
            Placement::Constant { memory_index, .. } | Placement::Dynamic { memory_index } => {
                memory_index
            }
            Placement::Passive => continue,
        };
        let Some(r) = reports.get_mut(memory_index as usize) else {
            continue;
        };
        let (zeros, read) = seen.zeros(s.data);
        if read {
            release(s.data);
        }
        r.segments += 1;
        r.data_bytes += s.data.len() as u64;
        r.zero_bytes += zeros;
        r.non_zero_bytes += s.data.len() as u64 - zeros;
        r.segment_bytes += s.range.len() as u64;
    }
    for r in &mut reports {
        if r.segments > 0 {
            r.not_packable = rules::not_packable(module, r.memory_index as usize, options);
        }
        r.packed_segments = r.segments;
        r.packed_segment_bytes = r.segment_bytes;
    }
    if !packed.is_empty() {
        // Re-packed memories that come out with no segment at all (all
        // zeros) are not in `packed`.
        for r in reports
            .iter_mut()
            .filter(|r| r.segments > 0 && r.not_packable.is_none())
        {
            r.packed_segments = 0;
            r.packed_segment_bytes = 0;
        }
        for &(memory_index, segments, bytes) in packed {
            let r = &mut reports[memory_index as usize];
            r.packed_segments = segments;
            r.packed_segment_bytes = bytes;
        }
    }
    reports
}

/// Zero bytes in `data`.
pub(crate) fn count_zeros(data: &[u8]) -> u64 {
    // Counted in bytes over blocks of 255 (a byte's count cannot wrap): the
    // compiler turns that into wide byte compares, with no branch a byte.
    let count = |block: &[u8]| block.iter().fold(0u8, |n, &b| n + u8::from(b == 0));
    let mut blocks = data.chunks_exact(255);
    let whole: u64 = (&mut blocks).map(|block| u64::from(count(block))).sum();
    whole + u64::from(count(blocks.remainder()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_are_counted_at_every_alignment() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 3 == 0) as u8 * 7).collect();
        let expected = data.iter().filter(|&&b| b == 0).count() as u64;
        for start in 0..9 {
            let slice = &data[start..];
            let expected = expected - data[..start].iter().filter(|&&b| b == 0).count() as u64;
            assert_eq!(count_zeros(slice), expected);
        }
    }

    /// Each memory's zero bytes are those of its segments' payloads, read
    /// here with wasmparser, however planning scanned them (counted as it
    /// released each piece, or read again): coarse and full routes, one
    /// and two threads, overlapping segments (a piece of the earlier one is
    /// never scanned), passive segments, an imported memory, two modules
    /// of a component.
    #[test]
    fn zeros_are_those_of_the_payloads_however_planning_scans() {
        use wasm_encoder::{
            ConstExpr, DataSection, EntityType, ImportSection, MemorySection, MemoryType,
        };
        // Bytes with zero runs of every length up to 40.
        let mut state = 12345u32;
        let mut bytes = |n: usize| -> Vec<u8> {
            let mut out = Vec::new();
            while out.len() < n {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                out.extend(std::iter::repeat_n(0, ((state >> 16) % 41) as usize));
                out.extend((0..1 + (state >> 8) % 23).map(|k| (1 + (k + state) % 255) as u8));
            }
            out.truncate(n);
            out
        };
        let memory = |pages| MemoryType {
            minimum: pages,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        };
        // Memory 0 imported, 1 with 48 pages of 65,000 bytes (3 MiB: the
        // coarse route at low caps), 2 with one segment; and a passive one.
        let mut first = wasm_encoder::Module::new();
        let mut imports = ImportSection::new();
        imports.import("env", "m", EntityType::Memory(memory(1)));
        first.section(&imports);
        let mut memories = MemorySection::new();
        memories.memory(memory(64)).memory(memory(1));
        first.section(&memories);
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(8), [0, 0, b'x']);
        for i in 0..48 {
            data.active(1, &ConstExpr::i32_const(i * 65_536), bytes(65_000));
        }
        data.active(2, &ConstExpr::i32_const(0), bytes(3000));
        data.passive(*b"\0\0\0 passive");
        first.section(&data);
        // Two overlapping segments.
        let mut second = wasm_encoder::Module::new();
        let mut memories = MemorySection::new();
        memories.memory(memory(1));
        second.section(&memories);
        let mut data = DataSection::new();
        data.active(0, &ConstExpr::i32_const(100), bytes(1000));
        data.active(0, &ConstExpr::i32_const(300), bytes(500));
        second.section(&data);
        let mut component = wasm_encoder::Component::new();
        component.section(&wasm_encoder::ModuleSection(&first));
        component.section(&wasm_encoder::ModuleSection(&second));
        let input = component.finish();
        // The reference: per module, per memory, zeros in active payloads.
        let mut expected: Vec<Vec<u64>> = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(&input) {
            match payload.unwrap() {
                wasmparser::Payload::Version {
                    encoding: wasmparser::Encoding::Module,
                    ..
                } => {
                    expected.push(vec![0; 3]);
                }
                wasmparser::Payload::DataSection(reader) => {
                    for data in reader {
                        let data = data.unwrap();
                        if let wasmparser::DataKind::Active { memory_index, .. } = data.kind {
                            let zeros = data.data.iter().filter(|&&b| b == 0).count() as u64;
                            expected.last_mut().unwrap()[memory_index as usize] += zeros;
                        }
                    }
                }
                _ => {}
            }
        }
        for cap in [1, 10, 100, 10_000] {
            for threads in [1, 2] {
                let options = PackOptions::default()
                    .with_max_segments(crate::MaxSegments::new(cap).unwrap())
                    .with_threads(threads);
                let inspection = inspect(&input, &options).unwrap();
                let zeros: Vec<Vec<u64>> = inspection
                    .memories
                    .iter()
                    .map(|module| {
                        let mut z: Vec<u64> = module.iter().map(|m| m.zero_bytes).collect();
                        z.resize(3, 0);
                        z
                    })
                    .collect();
                assert_eq!(zeros, expected, "cap {cap}, {threads} threads");
            }
        }
    }

    /// Pieces seen count once, a piece seen twice too; what no piece
    /// covered is read, and all of a payload whose pieces overlap; slices
    /// that are not inside one payload are not counted.
    #[test]
    fn seen_pieces_count_once() {
        let input: Vec<u8> = (0..130u32)
            .map(|i| u8::from(i % 3 == 1 || i % 7 == 0))
            .collect();
        let zeros = |r: Range<usize>| count_zeros(&input[r]);
        let seen = ZerosSeen::new(&input, vec![10..50, 60..100, 110..120]);
        for r in [
            10..20,
            10..20,
            30..50,
            60..70,
            65..80,
            110..115,
            115..120,
            0..100,
            45..65,
        ] {
            seen.see(&input[r]);
        }
        let seen = seen.finish();
        assert_eq!(seen.seen.len(), 7);
        assert_eq!(seen.zeros(&input[10..50]), (zeros(10..50), true));
        assert_eq!(seen.zeros(&input[60..100]), (zeros(60..100), true));
        assert_eq!(seen.zeros(&input[110..120]), (zeros(110..120), false));
        // Not a payload it knows: read.
        assert_eq!(seen.zeros(&input[120..125]), (zeros(120..125), true));
    }

    #[test]
    fn an_imported_memory_says_why_it_is_not_packed() {
        let input = wat::parse_str(
            r#"(module (import "env" "mem" (memory 1)) (memory 1)
                (data (memory 0) (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00b")
                (data (memory 1) (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00b"))"#,
        )
        .unwrap();
        let inspection = inspect(&input, &PackOptions::default()).unwrap();
        let [imported, defined] = &inspection.memories[0][..] else {
            panic!()
        };
        assert!(imported.imported);
        assert_eq!(
            imported.not_packable,
            Some(crate::NotPackable::ImportedMemory)
        );
        assert_eq!(imported.packed_segments, 1);
        assert_eq!(defined.not_packable, None);
        assert_eq!(defined.packed_segments, 2);
        let options = PackOptions::default().with_zero_filled_imports(true);
        let inspection = inspect(&input, &options).unwrap();
        assert_eq!(inspection.memories[0][0].packed_segments, 2);
    }
}
