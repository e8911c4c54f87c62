//! Reading what packing needs from a core module: its sections as byte
//! ranges, its memories, the constant values of its globals, and its data
//! segments. Offsets are absolute in the whole input, so nested modules of a
//! component are read in place.

use std::ops::Range;

use wasmparser::{BinaryReader, Chunk, DataKind, Encoding, Operator, Parser, Payload, TypeRef};

use crate::error::{Error, ErrorKind, Result};
use crate::segment::IndexType;

mod slots;
mod validate;
use slots::{data_slots_used, element_slots_used, offset_slots_used, slots_named_by};
pub(crate) use validate::{KnownHeaders, ReadAt, validate};

/// Section ids of core modules (binary format §5.5.2).
pub(crate) const CUSTOM_SECTION: u8 = 0;
pub(crate) const DATA_SECTION: u8 = 11;
pub(crate) const DATA_COUNT_SECTION: u8 = 12;
/// The component section id of a nested core module.
pub(crate) const COMPONENT_MODULE_SECTION: u8 = 1;

/// One section, header included, as a range of the input.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub id: u8,
    pub range: Range<usize>,
    /// For nested modules and components (inside a component): the range of
    /// the nested binary.
    pub nested: Option<Range<usize>>,
}

/// A linear memory, imported or defined, in index order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory {
    pub imported: bool,
    pub index_type: IndexType,
    /// The memory's minimum size in bytes (pages × page size).
    pub min_bytes: u128,
}

/// Where an active segment writes, as far as it is known statically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Passive: applied only by `memory.init`.
    Passive,
    /// Active with an offset known before instantiation.
    Constant { memory_index: u32, offset: u64 },
    /// Active with an offset that depends on an import.
    Dynamic { memory_index: u32 },
}

/// One data segment of the input.
#[derive(Debug, Clone)]
pub(crate) struct DataSegment<'a> {
    pub placement: Placement,
    pub data: &'a [u8],
    /// The segment's whole encoding in the input.
    pub range: Range<usize>,
}

/// What packing needs to know of one core module.
#[derive(Debug, Default)]
pub(crate) struct Module<'a> {
    pub sections: Vec<Section>,
    pub memories: Vec<Memory>,
    pub segments: Vec<DataSegment<'a>>,
    /// Index into `sections` of the data section.
    pub data_section: Option<usize>,
    /// Index into `sections` of the data count section, and the range of its
    /// count LEB.
    pub data_count: Option<(usize, Range<usize>)>,
    /// Indices into `sections` of the `name` custom sections (the spec says
    /// one, but nothing rejects a second, and each may name data segments).
    pub name_sections: Vec<usize>,
    /// The first custom section that marks a relocatable object, and where.
    pub relocatable: Option<(String, usize)>,
    /// One more than the highest data segment index any instruction names
    /// (see `slots::named_data_index`), in function bodies or in constant
    /// expressions, 0 when none does. Function bodies that name one need a
    /// data count section, so the code is only read when there is one.
    pub data_slots_used: u32,
}

/// A parsed binary: a core module or a component.
#[derive(Debug)]
pub(crate) enum Binary<'a> {
    Module(Module<'a>),
    Component(Vec<Section>),
}

/// Releases input pages behind a reader that walks forward through it, a
/// few MiB at a time: reading one header per page maps the pages around it
/// too, so without this a walk over a big data section would map the file.
struct ReleaseBehind<'r> {
    release: &'r (dyn Fn(&[u8]) + Sync),
    released: usize,
}

impl<'r> ReleaseBehind<'r> {
    const STEP: usize = 4 << 20;

    fn new(release: &'r (dyn Fn(&[u8]) + Sync), from: usize) -> Self {
        ReleaseBehind {
            release,
            released: from,
        }
    }

    /// The reader is at `here`: release what is far enough behind.
    fn advance(&mut self, input: &[u8], here: usize) {
        if here >= self.released + Self::STEP {
            (self.release)(&input[self.released..here]);
            self.released = here;
        }
    }

    /// The walk ended at `end`: release the rest.
    fn finish(self, input: &[u8], end: usize) {
        if end > self.released {
            (self.release)(&input[self.released..end]);
        }
    }
}

/// Names the nested binaries of one component as reports and errors do:
/// "core module N" and "component N", numbered per kind in section order,
/// after the parent's path and " / ".
#[derive(Default)]
pub(crate) struct NestedNames {
    modules: u32,
    components: u32,
}

impl NestedNames {
    /// The path of the next nested core module (`is_module`) or component.
    pub(crate) fn next(&mut self, parent: &str, is_module: bool) -> String {
        let name = if is_module {
            self.modules += 1;
            format!("core module {}", self.modules - 1)
        } else {
            self.components += 1;
            format!("component {}", self.components - 1)
        };
        if parent.is_empty() {
            name
        } else {
            format!("{parent} / {name}")
        }
    }
}

/// A nesting path short enough for a one-line message: deeper than six
/// levels, the middle levels are counted instead of listed.
pub(crate) fn short_path(path: &str) -> String {
    let levels: Vec<&str> = path.split(" / ").collect();
    if levels.len() <= 6 {
        return path.to_string();
    }
    format!(
        "{} / ... {} more levels ... / {}",
        levels[..2].join(" / "),
        levels.len() - 4,
        levels[levels.len() - 2..].join(" / ")
    )
}

/// Components nested deeper than this are refused (wasmparser's validator
/// allows 1,000 modules and components in all): the planner recurses once
/// per level, and this bounds its stack.
pub(crate) const MAX_NESTING: usize = 1000;

/// The path of the nested core module or component of `input` that holds
/// byte `offset`, named as in the reports ("component 0 / core module 1"),
/// or "" when the offset is in the top-level binary. Reads only section
/// headers, and stops quietly where the input is malformed.
pub(crate) fn nested_path_at(input: &[u8], offset: usize) -> String {
    let mut path = String::new();
    let mut range = 0..input.len();
    'binary: loop {
        let mut parser = Parser::new(range.start as u64);
        let mut pos = range.start;
        let mut names = NestedNames::default();
        loop {
            let Ok(Chunk::Parsed { consumed, payload }) =
                parser.parse(&input[pos..range.end], true)
            else {
                return path;
            };
            pos += consumed;
            let (nested, name) = match payload {
                Payload::Version {
                    encoding: Encoding::Module,
                    ..
                }
                | Payload::End(_) => return path,
                Payload::CodeSectionStart { size, .. } => {
                    parser.skip_section();
                    pos += size as usize;
                    continue;
                }
                Payload::ModuleSection {
                    unchecked_range, ..
                } => (unchecked_range, names.next(&path, true)),
                Payload::ComponentSection {
                    unchecked_range, ..
                } => (unchecked_range, names.next(&path, false)),
                _ => continue,
            };
            let nested = nested.start as usize..nested.end as usize;
            if nested.end > range.end || nested.start > nested.end {
                return path;
            }
            // The parent parser has already stepped over the nested bytes.
            pos = nested.end;
            if nested.contains(&offset) {
                path = name;
                range = nested;
                continue 'binary;
            }
        }
    }
}

/// Reads the binary at `range` of `input`.
/// `release` is told which header bytes were read for good.
pub(crate) fn parse<'a>(
    input: &'a [u8],
    range: Range<usize>,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<Binary<'a>> {
    parse_with(input, range, release, &Default::default())
}

/// As [`parse`], reading data segment headers from `known` where validation
/// copied them (and taking them out: they are read once).
pub(crate) fn parse_with<'a>(
    input: &'a [u8],
    range: Range<usize>,
    release: &(dyn Fn(&[u8]) + Sync),
    known: &std::cell::RefCell<KnownHeaders>,
) -> Result<Binary<'a>> {
    let mut parser = Parser::new(range.start as u64);
    let mut pos = range.start;
    let mut module = Module::default();
    let mut component_sections = Vec::new();
    let mut encoding = Encoding::Module;
    // Constant values of globals, in index order; `None` when not constant.
    let mut globals: Vec<Option<i64>> = Vec::new();
    loop {
        let start = pos;
        let (consumed, payload) = match parser.parse(&input[pos..range.end], true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            // With `eof` set the parser reports truncation as an error instead.
            Chunk::NeedMoreData(_) => {
                return Err(Error::malformed("unexpected end-of-file", pos as u64));
            }
        };
        pos += consumed;
        let mut nested = None;
        match &payload {
            Payload::Version { encoding: e, .. } => {
                encoding = *e;
                continue;
            }
            Payload::End(_) => break,
            Payload::CodeSectionStart {
                unchecked_range: code,
                size,
                ..
            } => {
                parser.skip_section();
                pos += *size as usize;
                if module.data_count.is_some() {
                    let code = code.start as usize..code.end as usize;
                    let read = known.borrow().code_slots.get(&code.start).copied();
                    let used = match read {
                        Some(used) => used,
                        None => data_slots_used(input, code.clone())?,
                    };
                    module.data_slots_used = module.data_slots_used.max(used);
                    release(&input[code]);
                }
            }
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // The parent parser has already stepped over the nested bytes.
                let r = unchecked_range.start as usize..unchecked_range.end as usize;
                if r.end > range.end {
                    return Err(Error::malformed(
                        "nested binary extends past its parent",
                        start as u64,
                    ));
                }
                pos = r.end;
                nested = Some(r);
            }
            Payload::ImportSection(reader) => {
                for import in reader.clone().into_imports() {
                    match import?.ty {
                        TypeRef::Memory(ty) => module.memories.push(memory(ty, true)),
                        TypeRef::Global(_) => globals.push(None),
                        _ => {}
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for ty in reader.clone() {
                    module.memories.push(memory(ty?, false));
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader.clone() {
                    let global = global?;
                    module.data_slots_used = slots_named_by(
                        global.init_expr.get_operators_reader(),
                        module.data_slots_used,
                    )?;
                    let value = if global.ty.mutable {
                        None
                    } else {
                        eval_const(&global.init_expr, &globals)?
                    };
                    globals.push(value);
                }
            }
            Payload::ElementSection(reader) => {
                module.data_slots_used = module.data_slots_used.max(element_slots_used(reader)?);
            }
            Payload::DataCountSection { range: r, .. } => {
                module.data_count = Some((module.sections.len(), r.start as usize..r.end as usize));
            }
            Payload::DataSection(reader) => {
                module.data_section = Some(module.sections.len());
                let copied = known
                    .borrow_mut()
                    .sections
                    .remove(&(reader.range().start as usize));
                if let Some(known) = copied {
                    // Validated already: its headers were copied then.
                    module.segments.reserve_exact(known.len());
                    let headers =
                        wasmparser::DataSectionReader::new(BinaryReader::new(&known.headers, 0))?;
                    for (data, (range, payload)) in headers.into_iter().zip(known.ranges()) {
                        let data = data?;
                        module.data_slots_used = offset_slots_used(&data, module.data_slots_used)?;
                        module.segments.push(DataSegment {
                            placement: placement(data.kind, &module.memories, &globals)?,
                            data: &input[payload],
                            range,
                        });
                    }
                } else {
                    let mut behind = ReleaseBehind::new(release, start);
                    // The count is the file's claim: never more than the
                    // section's bytes could hold (3 bytes or more each).
                    let most = (reader.range().end - reader.range().start) as usize / 3;
                    module
                        .segments
                        .reserve_exact((reader.count() as usize).min(most));
                    for data in reader.clone() {
                        let data = data?;
                        behind.advance(input, data.range.start as usize);
                        module.data_slots_used = offset_slots_used(&data, module.data_slots_used)?;
                        module.segments.push(DataSegment {
                            placement: placement(data.kind, &module.memories, &globals)?,
                            data: data.data,
                            range: data.range.start as usize..data.range.end as usize,
                        });
                    }
                    behind.finish(input, pos);
                }
            }
            Payload::CustomSection(reader) => {
                let name = reader.name();
                if name == "name" {
                    module.name_sections.push(module.sections.len());
                }
                if (name == "linking" || name.starts_with("reloc.")) && module.relocatable.is_none()
                {
                    module.relocatable = Some((name.to_string(), start));
                }
            }
            _ => {}
        }
        let section = Section {
            id: input[start],
            range: start..pos,
            nested,
        };
        match encoding {
            Encoding::Module => module.sections.push(section),
            Encoding::Component => component_sections.push(section),
        }
    }
    Ok(match encoding {
        Encoding::Module => Binary::Module(module),
        Encoding::Component => Binary::Component(component_sections),
    })
}

/// Where a data segment goes, its offset evaluated where it is constant.
fn placement(
    kind: DataKind<'_>,
    memories: &[Memory],
    globals: &[Option<i64>],
) -> Result<Placement> {
    Ok(match kind {
        DataKind::Passive => Placement::Passive,
        DataKind::Active {
            memory_index,
            offset_expr,
        } => {
            let index_type = memories
                .get(memory_index as usize)
                .map(|m| m.index_type)
                .unwrap_or_default();
            match eval_const(&offset_expr, globals)? {
                Some(v) => Placement::Constant {
                    memory_index,
                    offset: match index_type {
                        IndexType::I32 => v as u32 as u64,
                        IndexType::I64 => v as u64,
                    },
                },
                None => Placement::Dynamic { memory_index },
            }
        }
    })
}

fn memory(ty: wasmparser::MemoryType, imported: bool) -> Memory {
    let page_size = 1u128 << ty.page_size_log2.unwrap_or(16);
    Memory {
        imported,
        index_type: if ty.memory64 {
            IndexType::I64
        } else {
            IndexType::I32
        },
        min_bytes: ty.initial as u128 * page_size,
    }
}

/// The value of a constant expression that is one `i32.const` or
/// `i64.const` and its `end`, as [`eval_const`] gives it: nearly every
/// segment's offset, read without an operator reader (esbuild.wasm's 98,450
/// offsets took a third of its parse that way).
fn single_const(expr: &wasmparser::ConstExpr<'_>) -> Option<i64> {
    let mut reader = expr.get_binary_reader();
    let value = match reader.read_u8().ok()? {
        0x41 => i64::from(reader.read_var_i32().ok()?),
        0x42 => reader.read_var_i64().ok()?,
        _ => return None,
    };
    (reader.read_u8().ok()? == 0x0b && reader.eof()).then_some(value)
}

/// Evaluates a constant expression of integer arithmetic (the MVP constants,
/// extended-const `add`/`sub`/`mul`, `global.get` of a constant global).
/// `None` when its value is not known before instantiation. `i32` results are
/// sign-extended; callers truncate to the memory's index type.
fn eval_const(expr: &wasmparser::ConstExpr<'_>, globals: &[Option<i64>]) -> Result<Option<i64>> {
    match single_const(expr) {
        Some(value) => Ok(Some(value)),
        None => eval_operators(expr, globals),
    }
}

/// [`eval_const`] by an operator reader, for any constant expression.
fn eval_operators(
    expr: &wasmparser::ConstExpr<'_>,
    globals: &[Option<i64>],
) -> Result<Option<i64>> {
    let mut stack: Vec<(i64, bool)> = Vec::new(); // (value, is_i64)
    let mut reader = expr.get_operators_reader();
    while !reader.eof() {
        let op = reader.read()?;
        let value = match op {
            Operator::I32Const { value } => (value as i64, false),
            Operator::I64Const { value } => (value, true),
            Operator::GlobalGet { global_index } => match globals.get(global_index as usize) {
                Some(Some(v)) => (*v, false),
                _ => return Ok(None),
            },
            Operator::I32Add | Operator::I32Sub | Operator::I32Mul => {
                let (Some((b, _)), Some((a, _))) = (stack.pop(), stack.pop()) else {
                    return Ok(None);
                };
                let (a, b) = (a as i32, b as i32);
                let v = match op {
                    Operator::I32Add => a.wrapping_add(b),
                    Operator::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                };
                (v as i64, false)
            }
            Operator::I64Add | Operator::I64Sub | Operator::I64Mul => {
                let (Some((b, _)), Some((a, _))) = (stack.pop(), stack.pop()) else {
                    return Ok(None);
                };
                let v = match op {
                    Operator::I64Add => a.wrapping_add(b),
                    Operator::I64Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                };
                (v, true)
            }
            Operator::End => break,
            _ => return Ok(None),
        };
        stack.push(value);
    }
    Ok(match stack.as_slice() {
        [(v, _)] => Some(*v),
        _ => None,
    })
}

impl Module<'_> {
    /// The error to report when this module is a relocatable object.
    pub(crate) fn relocatable_error(&self) -> Option<Error> {
        self.relocatable.as_ref().map(|(name, offset)| {
            Error::new(
                ErrorKind::Relocatable,
                format!(
                    "relocatable object file (custom section `{name}`): its relocations point into data segments; link it first and pack the linked module"
                ),
                Some(*offset as u64),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{eval_operators, single_const};
    use wasm_encoder::Encode;

    /// A single `i32.const` or `i64.const` reads as the operator reader
    /// evaluates it, at the edges of each LEB width and sign; anything
    /// else is left to the reader.
    #[test]
    fn a_single_constant_reads_as_the_operator_reader_evaluates_it() {
        fn expr(bytes: &[u8]) -> wasmparser::ConstExpr<'_> {
            wasmparser::ConstExpr::new(wasmparser::BinaryReader::new(bytes, 0))
        }
        let encoded = |e: wasm_encoder::ConstExpr| {
            let mut bytes = Vec::new();
            e.encode(&mut bytes);
            bytes
        };
        let globals = [Some(7)];
        let edges = [0, 1, -1, 63, 64, -64, -65, 8191, -8193, 624_485];
        let mut singles: Vec<(Vec<u8>, i64)> = Vec::new();
        for v in edges.into_iter().chain([i32::MAX, i32::MIN]) {
            singles.push((encoded(wasm_encoder::ConstExpr::i32_const(v)), v.into()));
        }
        for v in edges.map(i64::from).into_iter().chain([i64::MAX, i64::MIN]) {
            singles.push((encoded(wasm_encoder::ConstExpr::i64_const(v)), v));
        }
        for (bytes, v) in &singles {
            assert_eq!(single_const(&expr(bytes)), Some(*v), "{bytes:x?}");
            assert_eq!(eval_operators(&expr(bytes), &globals).unwrap(), Some(*v));
        }
        // `global.get 0`; `i32.const 1 i32.const 2 i32.add`.
        for (bytes, v) in [
            (&[0x23, 0, 0x0b][..], 7),
            (&[0x41, 1, 0x41, 2, 0x6a, 0x0b][..], 3),
        ] {
            assert_eq!(single_const(&expr(bytes)), None, "{bytes:x?}");
            assert_eq!(eval_operators(&expr(bytes), &globals).unwrap(), Some(v));
        }
    }
}
