//! What packing would do, memory by memory, without writing anything: the
//! numbers behind `segpack inspect`.

use std::ops::Range;

use crate::error::Result;
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
    let plan = Plan::build(input, options, release, read_at, None)?;
    let report = plan.report().clone();
    let mut memories = Vec::with_capacity(report.modules.len());
    walk(input, 0..input.len(), release, &mut |module| {
        let packed = report
            .modules
            .get(memories.len())
            .map_or(&[][..], |m| &m.packed_memories[..]);
        memories.push(module_memories(module, packed, options, release));
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
    match parse::parse(input, range, release)? {
        Binary::Module(module) => f(&module),
        Binary::Component(sections) => {
            for nested in sections.into_iter().filter_map(|s| s.nested) {
                walk(input, nested, release, f)?;
            }
        }
    }
    Ok(())
}

/// The memory reports of one module; `packed` is what packing gave each
/// re-packed memory (segments, bytes), from the plan. `release` is told of
/// each segment's bytes once counted.
fn module_memories(
    module: &Module<'_>,
    packed: &[(u32, u64, u64)],
    options: &PackOptions,
    release: &(dyn Fn(&[u8]) + Sync),
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
        let zeros = count_zeros(s.data);
        release(s.data);
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
