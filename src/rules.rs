//! The rules of SPEC §2, each written once: when a memory may be re-packed,
//! when the data section must be left as it is because instantiation traps,
//! and what a memory's image is. Packing and inspecting call these; `verify`
//! keeps its own on purpose (see its module docs). SPEC §3's input, which
//! data segment indices code names, is read with the module
//! (`crate::parse::slots`); the layout it constrains is `crate::pack`'s.

use std::fmt;

use crate::PackOptions;
use crate::parse::{DataSegment, Module, Placement};
use crate::plan::{self, MemoryImage};

/// Why a memory's segments are left as they are (SPEC §2).
///
/// ```
/// let input = wat::parse_str(r#"(module (import "env" "m" (memory 1))
///     (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00b"))"#).unwrap();
/// let inspection = segpack::inspect(&input, &Default::default())?;
/// let memory = &inspection.memories[0][0];
/// assert_eq!(memory.not_packable, Some(segpack::NotPackable::ImportedMemory));
/// assert_eq!(segpack::NotPackable::ImportedMemory.to_string(), "imported memory");
/// # Ok::<(), segpack::Error>(())
/// ```
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotPackable {
    /// The memory is imported: its contents at instantiation are the host's
    /// ([`PackOptions::zero_filled_imports`] promises they are zeros).
    ImportedMemory,
    /// A segment's offset is not a constant (it reads an imported global).
    DynamicOffset,
    /// A segment ends at the very top of the 64-bit address space (2^64),
    /// which no engine allocates.
    EndsAtTopOfAddressSpace,
    /// The memory is imported and another segment's offset is not a
    /// constant: a trap at instantiation would leave earlier segments
    /// visible in the host's memory, and packing reorders them.
    ImportedWithDynamicOffsetElsewhere,
}

impl fmt::Display for NotPackable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotPackable::ImportedMemory => "imported memory",
            NotPackable::DynamicOffset => "a segment's offset is not a constant",
            NotPackable::EndsAtTopOfAddressSpace => {
                "a segment ends at the very top of the 64-bit address space (2^64)"
            }
            NotPackable::ImportedWithDynamicOffsetElsewhere => {
                "imported memory, and another segment's offset is not a constant"
            }
        })
    }
}

/// The active segments that write memory `memory_index`, in section order.
pub(crate) fn segments_of<'m, 'a>(
    module: &'m Module<'a>,
    memory_index: usize,
) -> impl Iterator<Item = &'m DataSegment<'a>> + Clone + 'm {
    module.segments.iter().filter(move |s| match s.placement {
        Placement::Constant {
            memory_index: m, ..
        }
        | Placement::Dynamic { memory_index: m } => m as usize == memory_index,
        Placement::Passive => false,
    })
}

/// SPEC §2: whether memory `memory_index` may be re-packed; why not if not.
pub(crate) fn not_packable(
    module: &Module<'_>,
    memory_index: usize,
    options: &PackOptions,
) -> Option<NotPackable> {
    let memory = module.memories[memory_index];
    if memory.imported && !options.zero_filled_imports {
        return Some(NotPackable::ImportedMemory);
    }
    let mut segments = segments_of(module, memory_index);
    if segments
        .clone()
        .any(|s| matches!(s.placement, Placement::Dynamic { .. }))
    {
        return Some(NotPackable::DynamicOffset);
    }
    // The planner's ranges end below 2^64.
    if segments.any(|s| {
        matches!(s.placement, Placement::Constant { offset, .. } if offset.checked_add(s.data.len() as u64).is_none())
    }) {
        return Some(NotPackable::EndsAtTopOfAddressSpace);
    }
    if memory.imported
        && module
            .segments
            .iter()
            .any(|s| matches!(s.placement, Placement::Dynamic { .. }))
    {
        return Some(NotPackable::ImportedWithDynamicOffsetElsewhere);
    }
    None
}

/// SPEC §2: the first active segment that is out of bounds of its memory's
/// minimum size (instantiation traps, so the data section stays as it is),
/// as a warning.
pub(crate) fn out_of_bounds(module: &Module<'_>) -> Option<String> {
    module.segments.iter().enumerate().find_map(|(i, seg)| {
        let Placement::Constant {
            memory_index,
            offset,
        } = seg.placement
        else {
            return None;
        };
        let memory = &module.memories[memory_index as usize];
        (offset as u128 + seg.data.len() as u128 > memory.min_bytes).then(|| {
            format!(
                "data segment {i} (offset {offset:#x}, {} bytes) is out of bounds of memory {memory_index} ({} bytes): instantiation traps, data section left as is",
                seg.data.len(),
                memory.min_bytes
            )
        })
    })
}

/// SPEC §2: memory `memory_index`'s image, its constant-offset segments
/// applied in section order, later ones overwriting earlier ones.
pub(crate) fn image<'a>(module: &Module<'a>, memory_index: usize) -> MemoryImage<'a> {
    let segments = segments_of(module, memory_index).filter_map(|s| match s.placement {
        Placement::Constant { offset, .. } => Some((offset, s.data)),
        _ => None,
    });
    MemoryImage {
        memory_index: memory_index as u32,
        index_type: module.memories[memory_index].index_type,
        pieces: plan::overlay_iter(segments),
    }
}
