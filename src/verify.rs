//! Checking a packing: do two binaries give the same memories at
//! instantiation, and differ nowhere else than SPEC §1 allows?
//!
//! The check walks both binaries side by side, recursing into components as
//! packing does, and compares each pair of core modules:
//!
//! 1. every section other than data and data count byte for byte, in order
//!    (a `name` section may only have lost data segment names);
//! 2. the memories;
//! 3. trap behaviour: an original with a segment out of bounds keeps its data
//!    section as is, and a packing adds no segment out of bounds;
//! 4. passive segments at their index (new slots must be empty);
//! 5. per memory: the static images of packable memories (SPEC §2), byte
//!    for byte, or else the list of active segments, unchanged and in order.
//!
//! Images are compared by walking both memories' pieces in address order:
//! no memory is ever allocated whole, so checking a 4 GiB memory costs what
//! its segments cost, not 4 GiB.
//!
//! `verify` is an independent check on purpose: it must catch what a wrong
//! rule in packing would produce, so it does not call packing's rules
//! (`crate::rules`) or its overlay. It has its own small reading of SPEC §2
//! ([`not_packable`], [`overlay`]), written differently (the overlay paints
//! segments from the last one back), and shares only the parser.

use std::fmt;
use std::ops::Range;

use wasmparser::BinaryReader;

use crate::error::Result;
use crate::names;
use crate::parse::{self, Binary, Module, Placement, Section};
use crate::plan::Piece;
use crate::segment::IndexType;

/// How to [`verify`](crate::verify()).
///
/// ```
/// let options = segpack::VerifyOptions { zero_filled_imports: true };
/// assert_ne!(options, segpack::VerifyOptions::default());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Imported memories were packed as zero-filled (the `pack` option of
    /// the same name): compare their images instead of their segments.
    pub zero_filled_imports: bool,
}

/// The first way in which a packed binary does not behave as its original,
/// in one line.
///
/// ```
/// let original = wat::parse_str(r#"(module (memory 1) (data (i32.const 0) "a"))"#).unwrap();
/// let other = wat::parse_str(r#"(module (memory 1) (data (i32.const 0) "b"))"#).unwrap();
/// let difference = segpack::verify(&original, &other, &Default::default())?.unwrap();
/// assert_eq!(difference.to_string(), "memory 0, byte 0x0: expected 0x61, found 0x62");
/// # Ok::<(), segpack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Where the module is inside a component, e.g. `core module 0`; empty
    /// for a top-level module.
    pub path: String,
    /// What differs, e.g. `memory 0, byte 0x10: expected 0x61, found 0x00`.
    pub message: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Decides whether `packed` is a correct packing of `original`: both
/// instantiate to the same memories, and nothing else differs except what
/// packing may change (SPEC §1). `Ok(None)` when it is; `Ok(Some(_))` with
/// the first difference when it is not.
///
/// What is compared, per core module (nested ones of a component too):
/// every section other than data and data count, byte for byte (the `name`
/// section may drop data segment names); the memories; the static image of
/// each packable memory, byte for byte, without allocating it; the active
/// segments of every other memory, which must be unchanged and in order;
/// passive segments at their index (new ones must be empty); and trap
/// behaviour: an original whose instantiation traps on a segment out of
/// bounds must keep its data section as is, and a packing must not add such
/// a segment.
///
/// # Errors
/// [`ErrorKind::Malformed`](crate::ErrorKind::Malformed) when either binary
/// is not valid; the message says which.
///
/// ```
/// let original = wat::parse_str(r#"(module (memory 1)
///     (data (i32.const 0) "a")
///     (data (i32.const 2) "b"))"#).unwrap();
/// let mut packed = Vec::new();
/// segpack::pack_module(&original, &mut packed, &Default::default())?;
/// assert_eq!(segpack::verify(&original, &packed, &Default::default())?, None);
///
/// // Writing "b" one byte further is caught.
/// let shifted = wat::parse_str(r#"(module (memory 1) (data (i32.const 0) "a\00\00b"))"#).unwrap();
/// let difference = segpack::verify(&original, &shifted, &Default::default())?.unwrap();
/// assert_eq!(difference.message, "memory 0, byte 0x2: expected 0x62, found 0x00");
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn verify(
    original: &[u8],
    packed: &[u8],
    options: &VerifyOptions,
) -> Result<Option<Difference>> {
    let keep = &|_: &[u8]| {};
    let original_headers =
        parse::validate(original, keep).map_err(|e| e.in_context("the original"))?;
    let packed_headers =
        parse::validate(packed, keep).map_err(|e| e.in_context("the packed binary"))?;
    let cx = Sides {
        original,
        packed,
        original_headers,
        packed_headers,
    };
    cx.binary(0..original.len(), 0..packed.len(), "", options)
}

/// The two binaries being compared.
struct Sides<'a> {
    original: &'a [u8],
    packed: &'a [u8],
    /// Data segment headers that validation copied, read again by parsing.
    original_headers: parse::KnownHeaders,
    packed_headers: parse::KnownHeaders,
}

fn different(path: &str, message: impl Into<String>) -> Result<Option<Difference>> {
    Ok(Some(Difference {
        path: path.to_string(),
        message: message.into(),
    }))
}

impl<'a> Sides<'a> {
    fn binary(
        &self,
        a: Range<usize>,
        b: Range<usize>,
        path: &str,
        options: &VerifyOptions,
    ) -> Result<Option<Difference>> {
        let keep = &|_: &[u8]| {};
        let a_bin = parse::parse_with(self.original, a.clone(), keep, &self.original_headers)
            .map_err(|e| e.in_context("the original"))?;
        let b_bin = parse::parse_with(self.packed, b.clone(), keep, &self.packed_headers)
            .map_err(|e| e.in_context("the packed binary"))?;
        if self.original[a.start..a.start + 8] != self.packed[b.start..b.start + 8] {
            return different(path, "the preamble (magic, version) differs");
        }
        match (a_bin, b_bin) {
            (Binary::Module(ma), Binary::Module(mb)) => {
                Ok(self.module(&ma, &mb, options).map(|message| Difference {
                    path: path.to_string(),
                    message,
                }))
            }
            (Binary::Component(sa), Binary::Component(sb)) => {
                self.component(&sa, &sb, path, options)
            }
            (Binary::Module(_), _) => {
                different(path, "the original is a module, the other a component")
            }
            (Binary::Component(_), _) => {
                different(path, "the original is a component, the other a module")
            }
        }
    }

    fn component(
        &self,
        a: &[Section],
        b: &[Section],
        path: &str,
        options: &VerifyOptions,
    ) -> Result<Option<Difference>> {
        if a.len() != b.len() {
            return different(
                path,
                format!(
                    "the original has {} sections, the packed binary {}",
                    a.len(),
                    b.len()
                ),
            );
        }
        let mut names = parse::NestedNames::default();
        for (i, (sa, sb)) in a.iter().zip(b).enumerate() {
            if sa.id != sb.id {
                return different(
                    path,
                    format!(
                        "component section {i}: expected id {}, found id {}",
                        sa.id, sb.id
                    ),
                );
            }
            match (&sa.nested, &sb.nested) {
                (Some(na), Some(nb)) => {
                    let nested_path = names.next(path, sa.id == parse::COMPONENT_MODULE_SECTION);
                    if let Some(d) = self.binary(na.clone(), nb.clone(), &nested_path, options)? {
                        return Ok(Some(d));
                    }
                }
                _ => {
                    if let Some(m) = self.bytes_differ(
                        &format!("component section {i} (id {})", sa.id),
                        sa.range.clone(),
                        sb.range.clone(),
                    ) {
                        return different(path, m);
                    }
                }
            }
        }
        Ok(None)
    }

    /// `None` when the two ranges hold the same bytes, else where they differ.
    fn bytes_differ(&self, what: &str, a: Range<usize>, b: Range<usize>) -> Option<String> {
        let (x, y) = (&self.original[a.clone()], &self.packed[b]);
        if x == y {
            return None;
        }
        Some(match x.iter().zip(y).position(|(p, q)| p != q) {
            Some(k) => format!(
                "{what} differs at its byte {k} (offset {:#x} of the original): expected {:#04x}, found {:#04x}",
                a.start + k,
                x[k],
                y[k]
            ),
            None => format!(
                "{what} is {} bytes long in the original, {} in the packed binary",
                x.len(),
                y.len()
            ),
        })
    }

    /// The first difference between two core modules, as a message.
    fn module(&self, a: &Module<'a>, b: &Module<'a>, options: &VerifyOptions) -> Option<String> {
        self.sections(a, b)
            .or_else(|| memories(a, b))
            .or_else(|| self.segments(a, b, options))
    }

    /// Rule 1: the same sections in the same order, all but data, data count
    /// and data segment names byte for byte.
    fn sections(&self, a: &Module<'a>, b: &Module<'a>) -> Option<String> {
        let name_of = |input: &[u8], s: &Section| section_name(input, s);
        for (i, pair) in a.sections.iter().zip(&b.sections).enumerate() {
            let (sa, sb) = pair;
            if sa.id != sb.id {
                return Some(format!(
                    "section {i}: expected the {}, found the {}",
                    name_of(self.original, sa),
                    name_of(self.packed, sb)
                ));
            }
            if sa.id == parse::DATA_SECTION || sa.id == parse::DATA_COUNT_SECTION {
                continue;
            }
            if a.name_sections.contains(&i) && b.name_sections.contains(&i) {
                let (x, y) = (
                    &self.original[sa.range.clone()],
                    &self.packed[sb.range.clone()],
                );
                if x != y && !names_compatible(x, y) {
                    return Some(
                        "the name section differs in more than dropped data segment names".into(),
                    );
                }
                continue;
            }
            if let Some(m) = self.bytes_differ(
                &format!("the {}", name_of(self.original, sa)),
                sa.range.clone(),
                sb.range.clone(),
            ) {
                return Some(m);
            }
        }
        if a.sections.len() != b.sections.len() {
            let (longer, input, what) = if a.sections.len() > b.sections.len() {
                (a, self.original, "lacks")
            } else {
                (b, self.packed, "adds")
            };
            let extra = &longer.sections[a.sections.len().min(b.sections.len())];
            return Some(format!(
                "the packed module {what} the {} (the original has {} sections, the packed module {})",
                name_of(input, extra),
                a.sections.len(),
                b.sections.len()
            ));
        }
        None
    }

    /// Rules 3 to 5: trap behaviour, passive segments, memory contents.
    fn segments(&self, a: &Module<'a>, b: &Module<'a>, options: &VerifyOptions) -> Option<String> {
        let data_section = |m: &Module<'_>| {
            m.data_section
                .map(|i| m.sections[i].range.clone())
                .unwrap_or(0..0)
        };
        // An original that traps, or whose relocations point into its
        // segments, keeps its data section as is.
        let keep_reason = out_of_bounds(a)
            .map(|(i, why)| format!("segment {i} of the original {why}: instantiation traps"))
            .or_else(|| {
                a.relocatable.as_ref().map(|(name, _)| {
                    format!("the original is relocatable (custom section `{name}`)")
                })
            });
        if let Some(why) = keep_reason {
            return self
                .bytes_differ("the data section", data_section(a), data_section(b))
                .map(|m| format!("{why}, so the data section must be left as is, but {m}"));
        }
        if let Some((i, why)) = out_of_bounds(b) {
            return Some(format!(
                "packed segment {i} {why}: instantiation would trap, the original's does not"
            ));
        }

        // Passive segments keep their index and bytes; new slots are empty.
        for (i, sb) in b.segments.iter().enumerate() {
            let sa = a.segments.get(i);
            match (sa.map(|s| s.placement), sb.placement) {
                (Some(Placement::Passive), Placement::Passive) => {
                    let da = sa.expect("matched Some").data;
                    if da != sb.data {
                        return Some(format!(
                            "passive segment {i} differs: expected {} bytes{}, found {} bytes",
                            da.len(),
                            first_difference_note(da, sb.data),
                            sb.data.len()
                        ));
                    }
                }
                (Some(Placement::Passive), _) => {
                    return Some(format!(
                        "segment {i} is passive in the original, active in the packed binary"
                    ));
                }
                (_, Placement::Passive) if !sb.data.is_empty() => {
                    return Some(format!(
                        "segment {i} is a new passive segment of {} bytes (a new passive slot must be empty)",
                        sb.data.len()
                    ));
                }
                _ => {}
            }
        }
        if let Some(i) = (b.segments.len()..a.segments.len())
            .find(|&i| matches!(a.segments[i].placement, Placement::Passive))
        {
            return Some(format!(
                "passive segment {i} of the original is missing (the packed binary has {} segments)",
                b.segments.len()
            ));
        }

        for m in 0..a.memories.len() {
            let targets = |module: &Module<'a>| -> Vec<(usize, Placement, &'a [u8], Range<usize>)> {
                module
                    .segments
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| match s.placement {
                        Placement::Constant { memory_index, .. }
                        | Placement::Dynamic { memory_index } => memory_index as usize == m,
                        Placement::Passive => false,
                    })
                    .map(|(i, s)| (i, s.placement, s.data, s.range.clone()))
                    .collect()
            };
            let (sa, sb) = (targets(a), targets(b));
            if let Some(reason) = not_packable(a, m, options.zero_filled_imports) {
                // The same active segments, encoded the same, in the same order.
                for (k, (x, y)) in sa.iter().zip(&sb).enumerate() {
                    if self.original[x.3.clone()] != self.packed[y.3.clone()] {
                        return Some(format!(
                            "memory {m}: active segment {k} (segment {} of the original, {} of the packed binary) differs, but the memory is not packable, so its segments must stay as they are: {reason}",
                            x.0, y.0
                        ));
                    }
                }
                if sa.len() != sb.len() {
                    return Some(format!(
                        "memory {m}: the original has {} active segments for it, the packed binary {}, but the memory is not packable, so its segments must stay as they are: {reason}",
                        sa.len(),
                        sb.len()
                    ));
                }
                continue;
            }
            if let Some((i, ..)) = sb.iter().find(|s| matches!(s.1, Placement::Dynamic { .. })) {
                return Some(format!(
                    "packed segment {i} writes memory {m} at an offset that is not a constant"
                ));
            }
            let image = |segs: &[(usize, Placement, &'a [u8], Range<usize>)]| {
                let segs: Vec<(u64, &'a [u8])> = segs
                    .iter()
                    .filter_map(|s| match s.1 {
                        Placement::Constant { offset, .. } => Some((offset, s.2)),
                        _ => None,
                    })
                    .collect();
                overlay(&segs)
            };
            if let Some((at, expected, found)) = compare_images(&image(&sa), &image(&sb)) {
                return Some(format!(
                    "memory {m}, byte {at:#x}: expected {expected:#04x}, found {found:#04x}"
                ));
            }
        }
        None
    }
}

/// SPEC §2 as verify reads it: why memory `m` of `module` may not be
/// re-packed, if it may not.
fn not_packable(module: &Module<'_>, m: usize, zero_filled_imports: bool) -> Option<&'static str> {
    let imported = module.memories[m].imported;
    if imported && !zero_filled_imports {
        return Some("imported memory");
    }
    let mut dynamic_here = false;
    let mut dynamic_anywhere = false;
    for s in &module.segments {
        match s.placement {
            Placement::Dynamic { memory_index } => {
                dynamic_anywhere = true;
                dynamic_here |= memory_index as usize == m;
            }
            Placement::Constant {
                memory_index,
                offset,
            } if memory_index as usize == m => {
                if u128::from(offset) + s.data.len() as u128 > u128::from(u64::MAX) {
                    return Some("a segment ends at 2^64");
                }
            }
            _ => {}
        }
    }
    if dynamic_here {
        Some("a segment's offset is not a constant")
    } else if imported && dynamic_anywhere {
        Some("imported memory, and another segment's offset is not a constant")
    } else {
        None
    }
}

/// A memory's image as disjoint pieces in address order: segments painted
/// from the last one back, each byte taken from the last segment that
/// writes it (packing's overlay sweeps forward instead).
fn overlay<'a>(segments: &[(u64, &'a [u8])]) -> Vec<Piece<'a>> {
    use std::collections::BTreeMap;
    // Painted ranges, start -> end, disjoint and not touching.
    let mut painted: BTreeMap<u64, u64> = BTreeMap::new();
    let mut pieces = Vec::new();
    for &(offset, data) in segments.iter().rev() {
        let (start, end) = (offset, offset + data.len() as u64);
        if start == end {
            continue;
        }
        // The painted ranges that overlap or touch start..end, merged away.
        let mut from = start;
        let mut to = end;
        let first = painted
            .range(..=start)
            .next_back()
            .filter(|(_, e)| **e >= start)
            .map(|(s, _)| *s);
        let overlapping: Vec<(u64, u64)> = painted
            .range(first.unwrap_or(start)..=end)
            .map(|(s, e)| (*s, *e))
            .collect();
        let mut cursor = start;
        for (s, e) in &overlapping {
            if *s > cursor {
                pieces.push(Piece {
                    offset: cursor,
                    data: &data[(cursor - start) as usize..(*s - start) as usize],
                });
            }
            cursor = cursor.max(*e);
            from = from.min(*s);
            to = to.max(*e);
            painted.remove(s);
        }
        if cursor < end {
            pieces.push(Piece {
                offset: cursor,
                data: &data[(cursor - start) as usize..],
            });
        }
        painted.insert(from, to);
    }
    pieces.sort_unstable_by_key(|p| p.offset);
    pieces
}

/// Rule 2: the same memories (their sections are compared byte for byte
/// too; this names the difference).
fn memories(a: &Module<'_>, b: &Module<'_>) -> Option<String> {
    if a.memories.len() != b.memories.len() {
        return Some(format!(
            "the original has {} memories, the packed module {}",
            a.memories.len(),
            b.memories.len()
        ));
    }
    for (m, (x, y)) in a.memories.iter().zip(&b.memories).enumerate() {
        let describe = |mem: &parse::Memory| {
            format!(
                "{}{} memory of {} bytes",
                if mem.imported { "an imported " } else { "a " },
                match mem.index_type {
                    IndexType::I32 => "32-bit",
                    IndexType::I64 => "64-bit",
                },
                mem.min_bytes
            )
        };
        if (x.imported, x.index_type, x.min_bytes) != (y.imported, y.index_type, y.min_bytes) {
            return Some(format!(
                "memory {m}: expected {}, found {}",
                describe(x),
                describe(y)
            ));
        }
    }
    None
}

/// The first constant-offset segment of `m` that does not fit its memory's
/// minimum size, and how.
fn out_of_bounds(m: &Module<'_>) -> Option<(usize, String)> {
    m.segments.iter().enumerate().find_map(|(i, s)| {
        let Placement::Constant {
            memory_index,
            offset,
        } = s.placement
        else {
            return None;
        };
        let memory = m.memories.get(memory_index as usize)?;
        (offset as u128 + s.data.len() as u128 > memory.min_bytes).then(|| {
            (
                i,
                format!(
                    "(offset {offset:#x}, {} bytes) is out of bounds of memory {memory_index} ({} bytes)",
                    s.data.len(),
                    memory.min_bytes
                ),
            )
        })
    })
}

/// ", first at byte k (0x.. expected, 0x.. found)" for two slices, or "".
fn first_difference_note(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(k) => format!(" with byte {k} = {:#04x} (found {:#04x})", a[k], b[k]),
        None => String::new(),
    }
}

/// A section's name for messages: "code section", "custom section `name`".
fn section_name(input: &[u8], s: &Section) -> String {
    const NAMES: [&str; 14] = [
        "custom",
        "type",
        "import",
        "function",
        "table",
        "memory",
        "global",
        "export",
        "start",
        "element",
        "code",
        "data",
        "data count",
        "tag",
    ];
    if s.id == parse::CUSTOM_SECTION {
        let mut r = BinaryReader::new(&input[s.range.clone()], 0);
        let name = (|| {
            r.read_u8().ok()?;
            r.read_var_u32().ok()?;
            r.read_string().ok().map(str::to_string)
        })();
        if let Some(name) = name {
            return format!("custom section `{name}`");
        }
    }
    match NAMES.get(s.id as usize) {
        Some(n) => format!("{n} section"),
        None => format!("section with id {}", s.id),
    }
}

/// Whether `packed`'s name section is `original`'s with some data segment
/// names (subsection 9) dropped, as SPEC §1.1 allows.
fn names_compatible(original: &[u8], packed: &[u8]) -> bool {
    let (Some((name_a, a)), Some((name_b, b))) = (names::read(original), names::read(packed))
    else {
        return false;
    };
    let others = |s: &[names::Subsection<'_>]| -> Vec<(u8, Vec<u8>)> {
        s.iter()
            .filter(|sub| sub.id != names::DATA_SEGMENT_NAMES)
            .map(|sub| (sub.id, sub.body.to_vec()))
            .collect()
    };
    if name_a != name_b || others(&a) != others(&b) {
        return false;
    }
    let data_names = |s: &[names::Subsection<'_>]| -> Option<Vec<Vec<u8>>> {
        let mut all = Vec::new();
        for sub in s.iter().filter(|sub| sub.id == names::DATA_SEGMENT_NAMES) {
            all.extend(
                names::map_entries(sub.body)?
                    .into_iter()
                    .map(|(_, raw)| raw.to_vec()),
            );
        }
        Some(all)
    };
    let (Some(kept), Some(original_names)) = (data_names(&b), data_names(&a)) else {
        return false;
    };
    // The kept names are a subsequence of the original's.
    let mut rest = original_names.iter();
    kept.iter().all(|k| rest.any(|o| o == k))
}

/// Walks two images (sorted, disjoint pieces, zeros elsewhere) in address
/// order and returns the first address where they differ, with the expected
/// and found bytes. Memory is O(1): slices of the pieces are compared in
/// place.
fn compare_images(a: &[Piece<'_>], b: &[Piece<'_>]) -> Option<(u64, u8, u8)> {
    let end = |p: &Piece<'_>| p.offset + p.data.len() as u64;
    // Where each side is at `pos`: the rest of the piece covering it, and
    // where that state ends.
    let at = |pieces: &[Piece<'_>], i: usize, pos: u64| -> (bool, u64) {
        match pieces.get(i) {
            Some(p) if p.offset <= pos => (true, end(p)),
            Some(p) => (false, p.offset),
            None => (false, u64::MAX),
        }
    };
    fn slice<'p>(p: &Piece<'p>, from: u64, to: u64) -> &'p [u8] {
        &p.data[(from - p.offset) as usize..(to - p.offset) as usize]
    }
    let (mut i, mut j, mut pos) = (0, 0, 0u64);
    loop {
        while a.get(i).is_some_and(|p| end(p) <= pos) {
            i += 1;
        }
        while b.get(j).is_some_and(|p| end(p) <= pos) {
            j += 1;
        }
        if i == a.len() && j == b.len() {
            return None;
        }
        let (in_a, a_next) = at(a, i, pos);
        let (in_b, b_next) = at(b, j, pos);
        let next = a_next.min(b_next);
        match (in_a, in_b) {
            (false, false) => {}
            (true, false) => {
                let x = slice(&a[i], pos, next);
                if let Some(k) = x.iter().position(|&v| v != 0) {
                    return Some((pos + k as u64, x[k], 0));
                }
            }
            (false, true) => {
                let y = slice(&b[j], pos, next);
                if let Some(k) = y.iter().position(|&v| v != 0) {
                    return Some((pos + k as u64, 0, y[k]));
                }
            }
            (true, true) => {
                let (x, y) = (slice(&a[i], pos, next), slice(&b[j], pos, next));
                if x != y {
                    let k = x.iter().zip(y).position(|(p, q)| p != q).expect("differ");
                    return Some((pos + k as u64, x[k], y[k]));
                }
            }
        }
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(segs: &[(u64, &'static [u8])]) -> Vec<Piece<'static>> {
        overlay(segs)
    }

    /// The image as bytes, the plain definition: zeros, then each segment
    /// written in order.
    fn image_bytewise(segs: &[(u64, Vec<u8>)], len: usize) -> Vec<u8> {
        let mut image = vec![0u8; len];
        for (offset, data) in segs {
            image[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
        }
        image
    }

    proptest::proptest! {
        /// verify's overlay (painted from the back) and packing's (swept
        /// forward) are written apart; both must give the plain image.
        #[test]
        fn both_overlays_give_the_plain_image(
            segs in proptest::collection::vec(
                (0u64..200, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)),
                0..12,
            )
        ) {
            let plain = image_bytewise(&segs, 300);
            let borrowed: Vec<(u64, &[u8])> = segs.iter().map(|(o, d)| (*o, d.as_slice())).collect();
            for pieces in [overlay(&borrowed), crate::plan::overlay(&borrowed)] {
                let mut image = vec![0u8; 300];
                let mut last_end = 0;
                for p in &pieces {
                    proptest::prop_assert!(p.offset >= last_end, "pieces overlap or are out of order");
                    last_end = p.offset + p.data.len() as u64;
                    image[p.offset as usize..last_end as usize].copy_from_slice(p.data);
                }
                proptest::prop_assert_eq!(&image, &plain);
            }
        }
    }

    #[test]
    fn images_equal_when_only_zeros_move() {
        let a = pieces(&[(0, b"a\0\0b"), (10, b"\0\0\0")]);
        let b = pieces(&[(0, b"a"), (3, b"b")]);
        assert_eq!(compare_images(&a, &b), None);
        assert_eq!(compare_images(&b, &a), None);
    }

    #[test]
    fn the_first_differing_byte_is_named() {
        let a = pieces(&[(0, b"abc"), (100, b"x")]);
        let b = pieces(&[(0, b"abd"), (100, b"x")]);
        assert_eq!(compare_images(&a, &b), Some((2, b'c', b'd')));
        let c = pieces(&[(0, b"abc")]);
        assert_eq!(compare_images(&a, &c), Some((100, b'x', 0)));
        assert_eq!(compare_images(&c, &a), Some((100, 0, b'x')));
    }

    #[test]
    fn later_writers_win_in_both_images() {
        let a = pieces(&[(0, b"aaaa"), (1, b"\0\0")]);
        let b = pieces(&[(0, b"a"), (3, b"a")]);
        assert_eq!(compare_images(&a, &b), None);
    }

    #[test]
    fn names_may_only_lose_data_segment_names() {
        fn section(subsections: &[(u8, Vec<u8>)]) -> Vec<u8> {
            let mut content = vec![4, b'n', b'a', b'm', b'e'];
            for (id, body) in subsections {
                content.push(*id);
                content.push(body.len() as u8);
                content.extend_from_slice(body);
            }
            let mut s = vec![0, content.len() as u8];
            s.extend(content);
            s
        }
        let module_name = (0u8, vec![1, b'm']);
        let two = (9u8, vec![2, 0, 1, b'x', 1, 1, b'y']);
        let second = (9u8, vec![1, 1, 1, b'y']);
        let renamed = (9u8, vec![1, 1, 1, b'z']);
        let original = section(&[module_name.clone(), two]);
        assert!(names_compatible(
            &original,
            &section(&[module_name.clone(), second])
        ));
        assert!(names_compatible(
            &original,
            &section(std::slice::from_ref(&module_name))
        ));
        assert!(!names_compatible(
            &original,
            &section(&[module_name, renamed])
        ));
        assert!(!names_compatible(&original, &section(&[])));
    }
}
