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

use crate::error::Result;
use crate::parse::{self, Binary, Module, Placement, Section};
use crate::plan::Piece;
use crate::segment::IndexType;

mod image;
mod sections;
use image::{compare_images, not_packable, overlay};
use sections::{first_difference_note, names_compatible, section_name};

/// How to [`verify`](crate::verify()).
///
/// ```
/// let options = segpack::VerifyOptions::default().with_zero_filled_imports(true);
/// assert_ne!(options, segpack::VerifyOptions::default());
/// ```
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Imported memories were packed as zero-filled (the `pack` option of
    /// the same name): compare their images instead of their segments.
    pub zero_filled_imports: bool,
}

impl VerifyOptions {
    /// Sets [`zero_filled_imports`](Self::zero_filled_imports).
    pub fn with_zero_filled_imports(mut self, zero_filled_imports: bool) -> Self {
        self.zero_filled_imports = zero_filled_imports;
        self
    }
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
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
        parse::validate(original, keep, None, 0).map_err(|e| e.in_context("the original"))?;
    let packed_headers =
        parse::validate(packed, keep, None, 0).map_err(|e| e.in_context("the packed binary"))?;
    let cx = Sides {
        original,
        packed,
        original_headers: original_headers.into(),
        packed_headers: packed_headers.into(),
    };
    cx.binary(0..original.len(), 0..packed.len(), "", options)
}

/// The two binaries being compared.
struct Sides<'a> {
    original: &'a [u8],
    packed: &'a [u8],
    /// Data segment headers that validation copied, read again by parsing.
    original_headers: std::cell::RefCell<parse::KnownHeaders>,
    packed_headers: std::cell::RefCell<parse::KnownHeaders>,
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
