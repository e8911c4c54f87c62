//! Reading what segpack wrote, for the edge-case, CLI and verify tests:
//! sections with their names and file offsets, data segments with their raw
//! encoding and evaluated offsets, the data count and `name` subsections.
//!
//! The section walker is written by hand (not with segpack's own parser) so
//! that the tests check segpack against an independent reading of the binary
//! format; [`super::wasm::sections`] is the lighter walker that borrows.
//! Data segments are decoded with wasmparser.

use wasmparser::{DataKind, Operator, Parser, Payload};

/// Where a data segment writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Applied only by `memory.init`.
    Passive,
    /// Written at instantiation.
    Active {
        /// The memory index as encoded.
        memory: u32,
        /// The raw bytes of the offset expression, `end` included.
        offset_expr: Vec<u8>,
        /// The offset, evaluated as instantiation would (truncated to `u32` for
        /// an `i32` expression); `None` when it depends on an imported global.
        offset: Option<u64>,
    },
}

/// One data segment of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSeg {
    pub kind: Kind,
    pub data: Vec<u8>,
    /// The segment's whole encoding (flag, memory, offset, length, payload).
    pub raw: Vec<u8>,
}

/// One section of a core module, as it is in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub id: u8,
    /// The name of a custom section.
    pub name: Option<String>,
    /// Where the section (its id byte) starts in the file.
    pub start: usize,
    /// The whole section: id, size LEB, contents.
    pub bytes: Vec<u8>,
    /// The contents only.
    pub contents: Vec<u8>,
}

pub use super::wasm::read_uleb;

/// The sections of a core module, in file order (hand-rolled walker).
pub fn sections(wasm: &[u8]) -> Vec<Section> {
    assert_eq!(&wasm[..4], b"\0asm", "not a wasm binary");
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let size = read_uleb(wasm, &mut pos) as usize;
        let contents = wasm[pos..pos + size].to_vec();
        let name = (id == 0).then(|| {
            let mut p = 0;
            let len = read_uleb(&contents, &mut p) as usize;
            String::from_utf8(contents[p..p + len].to_vec()).unwrap()
        });
        pos += size;
        out.push(Section {
            id,
            name,
            start,
            bytes: wasm[start..pos].to_vec(),
            contents,
        });
    }
    out
}

/// The size of the data section in the file, its id and size LEB included
/// (0 when there is none).
pub fn data_section_len(wasm: &[u8]) -> u64 {
    sections(wasm)
        .iter()
        .find(|s| s.id == 11)
        .map_or(0, |s| s.bytes.len() as u64)
}

/// Every section except data (11), data count (12) and `name`: what SPEC §1
/// says is copied byte for byte.
pub fn untouched_sections(wasm: &[u8]) -> Vec<Section> {
    sections(wasm)
        .into_iter()
        .filter(|s| s.id != 11 && s.id != 12 && s.name.as_deref() != Some("name"))
        .collect()
}

/// The constant values of the module's globals (`None` for imported or
/// non-constant ones), for evaluating `global.get` in offsets.
fn global_values(wasm: &[u8]) -> Vec<Option<i64>> {
    let mut globals = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let wasmparser::TypeRef::Global(_) = import.unwrap().ty {
                        globals.push(None);
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for g in reader {
                    let g = g.unwrap();
                    let v = eval(&g.init_expr, &globals);
                    globals.push(v);
                }
            }
            _ => {}
        }
    }
    globals
}

/// Evaluates an integer constant expression (MVP and extended-const).
fn eval(expr: &wasmparser::ConstExpr<'_>, globals: &[Option<i64>]) -> Option<i64> {
    let mut stack: Vec<i64> = Vec::new();
    let mut reader = expr.get_operators_reader();
    while !reader.eof() {
        let op = reader.read().unwrap();
        let v = match op {
            Operator::I32Const { value } => i64::from(value),
            Operator::I64Const { value } => value,
            Operator::GlobalGet { global_index } => (*globals.get(global_index as usize)?)?,
            Operator::I32Add | Operator::I32Sub | Operator::I32Mul => {
                let b = stack.pop()? as i32;
                let a = stack.pop()? as i32;
                i64::from(match op {
                    Operator::I32Add => a.wrapping_add(b),
                    Operator::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                })
            }
            Operator::I64Add | Operator::I64Sub | Operator::I64Mul => {
                let b = stack.pop()?;
                let a = stack.pop()?;
                match op {
                    Operator::I64Add => a.wrapping_add(b),
                    Operator::I64Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                }
            }
            Operator::End => break,
            other => panic!("unexpected operator in a constant expression: {other:?}"),
        };
        stack.push(v);
    }
    match stack.as_slice() {
        [v] => Some(*v),
        _ => None,
    }
}

/// Whether the memory at each index is a 64-bit memory.
fn memory64s(wasm: &[u8]) -> Vec<bool> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if let wasmparser::TypeRef::Memory(m) = import.unwrap().ty {
                        out.push(m.memory64);
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    out.push(m.unwrap().memory64);
                }
            }
            _ => {}
        }
    }
    out
}

/// The data segments of a core module, in index order.
pub fn data_segments(wasm: &[u8]) -> Vec<DataSeg> {
    let globals = global_values(wasm);
    let mem64 = memory64s(wasm);
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::DataSection(reader) = payload.unwrap() {
            for data in reader {
                let data = data.unwrap();
                let kind = match data.kind {
                    DataKind::Passive => Kind::Passive,
                    DataKind::Active {
                        memory_index,
                        offset_expr,
                    } => {
                        let r = offset_expr.get_binary_reader();
                        let start = r.original_position() as usize;
                        let expr_bytes = {
                            let mut r = offset_expr.get_operators_reader();
                            while !r.eof() {
                                r.read().unwrap();
                            }
                            wasm[start..r.original_position() as usize].to_vec()
                        };
                        let is64 = mem64.get(memory_index as usize).copied().unwrap_or(false);
                        let offset = eval(&offset_expr, &globals)
                            .map(|v| if is64 { v as u64 } else { u64::from(v as u32) });
                        Kind::Active {
                            memory: memory_index,
                            offset_expr: expr_bytes,
                            offset,
                        }
                    }
                };
                out.push(DataSeg {
                    kind,
                    data: data.data.to_vec(),
                    raw: wasm[data.range.start as usize..data.range.end as usize].to_vec(),
                });
            }
        }
    }
    out
}

/// An active segment as `(memory, offset, payload)`.
pub type Seg = (u32, u64, Vec<u8>);

/// The active segments as `(memory, offset, payload)`, in index order;
/// passive segments are left out. Panics on a non-constant offset.
pub fn active_segments(wasm: &[u8]) -> Vec<Seg> {
    data_segments(wasm)
        .into_iter()
        .filter_map(|s| match s.kind {
            Kind::Passive => None,
            Kind::Active { memory, offset, .. } => {
                Some((memory, offset.expect("constant offset"), s.data))
            }
        })
        .collect()
}

/// `(memory, offset, payload)` for writing expected segment lists briefly.
pub fn seg(memory: u32, offset: u64, data: &[u8]) -> Seg {
    (memory, offset, data.to_vec())
}

/// The data count section's value and the raw bytes of its LEB.
pub fn data_count(wasm: &[u8]) -> Option<(u64, Vec<u8>)> {
    let section = sections(wasm).into_iter().find(|s| s.id == 12)?;
    let mut pos = 0;
    let count = read_uleb(&section.contents, &mut pos);
    assert_eq!(pos, section.contents.len(), "trailing bytes in data count");
    Some((count, section.contents))
}

/// The subsections of the `name` section as `(id, contents)`.
pub fn name_subsections(wasm: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let section = sections(wasm)
        .into_iter()
        .find(|s| s.name.as_deref() == Some("name"))?;
    let c = &section.contents;
    let mut pos = 0;
    let name_len = read_uleb(c, &mut pos) as usize;
    pos += name_len;
    let mut out = Vec::new();
    while pos < c.len() {
        let id = c[pos];
        pos += 1;
        let len = read_uleb(c, &mut pos) as usize;
        out.push((id, c[pos..pos + len].to_vec()));
        pos += len;
    }
    Some(out)
}

/// The data segment names (name subsection 9) as `(index, name)`; empty when
/// there is no such subsection.
pub fn data_segment_names(wasm: &[u8]) -> Vec<(u32, String)> {
    let Some(subsections) = name_subsections(wasm) else {
        return Vec::new();
    };
    let Some((_, body)) = subsections.into_iter().find(|(id, _)| *id == 9) else {
        return Vec::new();
    };
    let mut pos = 0;
    let count = read_uleb(&body, &mut pos);
    let mut out = Vec::new();
    for _ in 0..count {
        let index = read_uleb(&body, &mut pos) as u32;
        let len = read_uleb(&body, &mut pos) as usize;
        out.push((
            index,
            String::from_utf8(body[pos..pos + len].to_vec()).unwrap(),
        ));
        pos += len;
    }
    assert_eq!(pos, body.len(), "trailing bytes in data names");
    out
}

/// Validates with every feature wasmparser knows (SPEC §3: every output validates).
pub fn validate(wasm: &[u8]) {
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(wasm)
        .unwrap_or_else(|e| panic!("output does not validate: {e}"));
}

/// Parses WAT, panicking with the error.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_else(|e| panic!("bad test WAT: {e}"))
}

/// Packs with `options`, checks that the output validates, and returns it
/// with the report.
pub fn pack_with(input: &[u8], options: &segpack::PackOptions) -> (Vec<u8>, segpack::PackReport) {
    let mut out = Vec::new();
    let report = segpack::pack_module(input, &mut out, options)
        .unwrap_or_else(|e| panic!("pack failed: {e}"));
    validate(&out);
    assert_eq!(report.output_len, out.len() as u64);
    (out, report)
}

/// Packs with the default options.
pub fn pack(input: &[u8]) -> Vec<u8> {
    pack_with(input, &segpack::PackOptions::default()).0
}

/// Instantiates `wasm` in wasmi (no imports besides an optional memory
/// `env.mem` of `imported_pages` pages), calls the exported nullary function
/// `func` if given, and returns the exported memory `name`'s bytes in `range`.
pub fn run_and_read(
    wasm: &[u8],
    func: Option<&str>,
    memory: &str,
    range: std::ops::Range<usize>,
) -> Vec<u8> {
    use wasmi::{Config, Engine, Linker, Module, Store};
    let mut config = Config::default();
    config
        .wasm_multi_memory(true)
        .wasm_bulk_memory(true)
        .wasm_extended_const(true)
        .wasm_memory64(true)
        .wasm_custom_page_sizes(true);
    let engine = Engine::new(&config);
    let module = Module::new(&engine, wasm).unwrap();
    let mut store = Store::new(&engine, ());
    let linker = Linker::<()>::new(&engine);
    let instance = linker.instantiate_and_start(&mut store, &module).unwrap();
    if let Some(func) = func {
        let f = instance
            .get_typed_func::<(), ()>(&store, func)
            .unwrap_or_else(|e| panic!("no function {func}: {e}"));
        f.call(&mut store, ()).unwrap();
    }
    let mem = instance
        .get_memory(&store, memory)
        .expect("exported memory");
    mem.data(&store)[range].to_vec()
}
