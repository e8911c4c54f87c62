//! Where a memory's bytes lie: its address space cut into a fixed number of
//! columns, each with its non-zero bytes and the bytes segments write before
//! and after packing. The numbers behind the memory map of
//! `segpack inspect --svg` and of the web page; a picture of a 4 GiB image
//! has as many columns as one of a 1 MiB image.

use crate::error::{Error, Result};
use crate::inspect::{count_zeros, walk};
use crate::parse::{Module, Placement};
use crate::rules;
use crate::segment::IndexType;
use crate::{PackOptions, Plan};

/// One column of a [`MemoryMap`]: [`column_bytes`](MemoryMap::column_bytes)
/// addresses (the last column may be shorter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MapColumn {
    /// Non-zero bytes of the memory's initial contents in this column, as
    /// the packed output's segments write them.
    pub non_zero: u64,
    /// Addresses in this column that the input's active segments write.
    pub before: u64,
    /// Addresses in this column that the packed output's active segments
    /// write.
    pub after: u64,
}

/// One memory of a module, in columns along its address space.
///
/// Only segments with a constant offset are placed; a segment placed by an
/// imported global has no address before instantiation (its memory is not
/// packable, and [`not_packable`](Self::not_packable) says so). Where kept
/// segments overlap, a column's counts stop at its width.
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryMap {
    /// The memory's index in its module.
    pub memory_index: u32,
    /// 32- or 64-bit.
    pub index_type: IndexType,
    /// Whether the memory is imported.
    pub imported: bool,
    /// The memory's minimum size in bytes (`u64::MAX` if larger).
    pub min_bytes: u64,
    /// The addresses shown, `0..extent`: up to the end of the last segment,
    /// before or after packing, rounded up to a 64 KiB page (but not past
    /// the memory's minimum size, unless a segment is). The rest of the
    /// memory holds zeros.
    pub extent: u64,
    /// Addresses per column.
    pub column_bytes: u64,
    /// The columns, from address 0 on.
    pub columns: Vec<MapColumn>,
    /// Active segments of this memory in the input.
    pub segments_before: u64,
    /// Active segments of this memory in the packed output.
    pub segments_after: u64,
    /// Why the memory's segments are left as they are, when they are.
    pub not_packable: Option<crate::NotPackable>,
}

/// The memory maps of one core module.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleMap {
    /// Where the module is inside a component (as
    /// [`ModuleReport::path`](crate::ModuleReport::path)); empty for a
    /// top-level module.
    pub path: String,
    /// Its memories, in index order.
    pub memories: Vec<MemoryMap>,
}

/// A page of memory, as the picture rounds the data's end up to it: 64 KiB.
const PAGE: u64 = 65536;

/// The most columns [`memory_maps`] cuts a memory into.
pub const MAX_COLUMNS: usize = 1 << 16;

/// Plans the packing of `input` (a core module or component) and maps each
/// memory of each core module in at most `columns` columns: its non-zero
/// bytes and its segments before and after packing.
///
/// Holds the packed output in memory while it maps it (as large as the
/// input's non-zero data, not its zeros).
///
/// `columns` is taken as 1 when 0, and as [`MAX_COLUMNS`] above it.
///
/// # Errors
/// As [`Plan::new`].
///
/// ```
/// let input = wat::parse_str(r#"(module (memory 1)
///     (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00b"))"#).unwrap();
/// let maps = segpack::memory_maps(&input, &Default::default(), 4)?;
/// let memory = &maps[0].memories[0];
/// assert_eq!((memory.extent, memory.column_bytes, memory.columns.len()), (65536, 16384, 4));
/// // One segment of 21 bytes becomes two of one byte each.
/// assert_eq!((memory.segments_before, memory.segments_after), (1, 2));
/// assert_eq!((memory.columns[0].before, memory.columns[0].after, memory.columns[0].non_zero), (21, 2, 2));
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn memory_maps(input: &[u8], options: &PackOptions, columns: usize) -> Result<Vec<ModuleMap>> {
    let columns = columns.clamp(1, MAX_COLUMNS);
    let plan = Plan::new(input, options)?;
    let mut output = Vec::with_capacity(plan.len() as usize);
    plan.write_to(&mut output, None)
        .map_err(|e| Error::io("packing", e))?;
    let report = plan.report();
    let mut maps = Vec::with_capacity(report.modules.len());
    let mut inputs = Vec::with_capacity(report.modules.len());
    walk(input, 0..input.len(), &|_| {}, &mut |module| {
        let path = report
            .modules
            .get(maps.len())
            .map_or_else(String::new, |m| m.path.clone());
        let (memories, segments) = before(module, options);
        maps.push(ModuleMap { path, memories });
        inputs.push(segments);
    })?;
    let mut at = 0;
    walk(&output, 0..output.len(), &|_| {}, &mut |module| {
        if let (Some(map), Some(segments)) = (maps.get_mut(at), inputs.get(at)) {
            after(module, &mut map.memories, segments, columns);
        }
        at += 1;
    })?;
    debug_assert_eq!(at, maps.len());
    Ok(maps)
}

/// The active segments of `module` with a constant offset: (memory, offset,
/// bytes).
fn placed<'m>(module: &'m Module<'_>) -> impl Iterator<Item = (u32, u64, &'m [u8])> + 'm {
    module.segments.iter().filter_map(|s| match s.placement {
        Placement::Constant {
            memory_index,
            offset,
        } => Some((memory_index, offset, s.data)),
        _ => None,
    })
}

/// The maps of one input module before packing: the memories, their
/// segments counted and their extents, and each memory's placed segments as
/// (offset, length). Columns are cut in [`after`], once the packed output's
/// extents are known too.
fn before(module: &Module<'_>, options: &PackOptions) -> (Vec<MemoryMap>, Vec<Vec<(u64, u64)>>) {
    let mut maps: Vec<MemoryMap> = module
        .memories
        .iter()
        .enumerate()
        .map(|(m, memory)| MemoryMap {
            memory_index: m as u32,
            index_type: memory.index_type,
            imported: memory.imported,
            min_bytes: u64::try_from(memory.min_bytes).unwrap_or(u64::MAX),
            extent: 0,
            column_bytes: 0,
            columns: Vec::new(),
            segments_before: 0,
            segments_after: 0,
            not_packable: None,
        })
        .collect();
    for s in &module.segments {
        if let Placement::Constant {
            memory_index: m, ..
        }
        | Placement::Dynamic { memory_index: m } = s.placement
            && let Some(map) = maps.get_mut(m as usize)
        {
            map.segments_before += 1;
        }
    }
    let mut segments = vec![Vec::new(); maps.len()];
    for (m, offset, data) in placed(module) {
        if let Some(map) = maps.get_mut(m as usize) {
            let len = data.len() as u64;
            map.extent = map.extent.max(offset.saturating_add(len));
            segments[m as usize].push((offset, len));
        }
    }
    for map in maps.iter_mut().filter(|m| m.segments_before > 0) {
        map.not_packable = rules::not_packable(module, map.memory_index as usize, options);
    }
    (maps, segments)
}

/// Cuts each memory of `maps` into at most `columns` columns and fills
/// them from the input's `segments` (from [`before`]) and the packed
/// module's.
fn after(
    packed: &Module<'_>,
    maps: &mut [MemoryMap],
    segments: &[Vec<(u64, u64)>],
    columns: usize,
) {
    for (m, offset, data) in placed(packed) {
        if let Some(map) = maps.get_mut(m as usize) {
            map.segments_after += 1;
            map.extent = map.extent.max(offset.saturating_add(data.len() as u64));
        }
    }
    for (map, inputs) in maps.iter_mut().zip(segments) {
        let page = map.extent.div_ceil(PAGE).saturating_mul(PAGE);
        map.extent = page.min(map.min_bytes.max(map.extent)).max(1);
        let extent = map.extent;
        map.column_bytes = extent.div_ceil(columns as u64);
        let width = map.column_bytes;
        let n = extent.div_ceil(width) as usize;
        map.columns = vec![MapColumn::default(); n];
        for &(offset, len) in inputs {
            for_each_column(offset, len, width, |c, range| {
                map.columns[c].before += range.end - range.start;
            });
        }
    }
    for (m, offset, data) in placed(packed) {
        let Some(map) = maps.get_mut(m as usize) else {
            continue;
        };
        let width = map.column_bytes;
        for_each_column(offset, data.len() as u64, width, |c, range| {
            let column = &mut map.columns[c];
            column.after += range.end - range.start;
            let bytes = &data[(range.start - offset) as usize..(range.end - offset) as usize];
            column.non_zero += bytes.len() as u64 - count_zeros(bytes);
        });
    }
    for map in maps.iter_mut() {
        let (width, extent) = (map.column_bytes, map.extent);
        for (c, column) in map.columns.iter_mut().enumerate() {
            let len = width.min(extent - c as u64 * width);
            column.before = column.before.min(len);
            column.after = column.after.min(len);
            column.non_zero = column.non_zero.min(len);
        }
    }
}

/// Calls `f(column, addresses)` for each column of `width` addresses that
/// `offset..offset + len` touches, with the part of the range inside it.
fn for_each_column(
    offset: u64,
    len: u64,
    width: u64,
    mut f: impl FnMut(usize, std::ops::Range<u64>),
) {
    let end = offset.saturating_add(len);
    let mut at = offset;
    while at < end {
        let c = at / width;
        let next = (c + 1).saturating_mul(width).min(end);
        f(c as usize, at..next);
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns add up to what `inspect` counts: every non-zero byte,
    /// every byte the segments write before and after packing.
    #[test]
    fn columns_add_up_to_the_inspection() {
        let mut data = String::new();
        for i in 0..3000u32 {
            data.push_str(if i % 97 < 5 { "\\07" } else { "\\00" });
        }
        let input = wat::parse_str(format!(
            r#"(module (memory 3) (memory i64 1)
                (data (memory 0) (i32.const 70000) "{data}")
                (data (memory 0) (i32.const 100) "ab\00\00\00\00\00\00\00\00\00\00\00\00\00c")
                (data (memory 1) (i64.const 65000) "x"))"#
        ))
        .unwrap();
        let options = PackOptions::default();
        let inspection = crate::inspect(&input, &options).unwrap();
        for columns in [1, 7, 64, 1000] {
            let maps = memory_maps(&input, &options, columns).unwrap();
            assert_eq!(maps.len(), 1);
            for (map, report) in maps[0].memories.iter().zip(&inspection.memories[0]) {
                let sum = |f: fn(&MapColumn) -> u64| map.columns.iter().map(f).sum::<u64>();
                assert!(map.columns.len() <= columns);
                assert_eq!(map.extent, [2 * 65536, 65536][map.memory_index as usize]);
                assert_eq!(map.min_bytes, [3 * 65536, 65536][map.memory_index as usize]);
                assert_eq!(sum(|c| c.non_zero), report.non_zero_bytes);
                assert_eq!(sum(|c| c.before), report.data_bytes);
                assert_eq!(map.segments_before, report.segments);
                assert_eq!(map.segments_after, report.packed_segments);
                assert!(sum(|c| c.after) >= report.non_zero_bytes);
                if map.memory_index == 0 {
                    assert!(sum(|c| c.after) < report.data_bytes);
                }
            }
        }
    }

    #[test]
    fn a_segment_is_split_at_column_edges() {
        let mut seen = Vec::new();
        for_each_column(5, 20, 8, |c, r| seen.push((c, r)));
        assert_eq!(seen, [(0, 5..8), (1, 8..16), (2, 16..24), (3, 24..25)]);
        seen.clear();
        for_each_column(u64::MAX - 3, 10, 1 << 62, |c, r| seen.push((c, r)));
        assert_eq!(seen, [(3, u64::MAX - 3..u64::MAX)]);
    }

    #[test]
    fn columns_are_clamped() {
        let input =
            wat::parse_str(r#"(module (memory 1000) (data (i32.const 65535999) "x"))"#).unwrap();
        let options = PackOptions::default();
        let maps = memory_maps(&input, &options, 0).unwrap();
        assert_eq!(maps[0].memories[0].columns.len(), 1);
        let maps = memory_maps(&input, &options, MAX_COLUMNS + 1).unwrap();
        assert_eq!(maps[0].memories[0].columns.len(), MAX_COLUMNS);
    }
}
