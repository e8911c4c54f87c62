//! A static evaluator of data segments, for binaries wasmi cannot run
//! (components, proposals wasmi lacks, imports it cannot fake).
//!
//! For each core module it works out what instantiation would put in each
//! memory from the active segments whose offsets are constant (SPEC §2:
//! `i32.const`, `i64.const`, extended-const arithmetic, `global.get` of an
//! immutable global with a constant initializer), last writer wins, and
//! keeps the segments it cannot place (non-constant offsets) and the passive
//! ones as they are. [`assert_same_static_images`] then checks that packing
//! changed nothing instantiation could observe.

use std::collections::BTreeMap;
use std::ops::Range;

use wasmparser::{
    Chunk, ConstExpr, DataKind, Operator, Parser, Payload, TypeRef, ValType, Validator,
    WasmFeatures,
};

/// A memory as declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryInfo {
    pub imported: bool,
    pub memory64: bool,
    /// Minimum size in bytes (pages times the page size); up to 2^64.
    pub min_bytes: u128,
}

/// Where a data segment goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Passive,
    /// Active, with its offset when it is a constant.
    Active {
        memory: u32,
        offset: Option<u64>,
        /// The offset expression's bytes, `end` included.
        expr: Vec<u8>,
    },
}

/// One data segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub placement: Placement,
    pub data: Vec<u8>,
}

impl SegmentInfo {
    /// The segment's memory, when it is active.
    pub fn memory(&self) -> Option<u32> {
        match self.placement {
            Placement::Active { memory, .. } => Some(memory),
            Placement::Passive => None,
        }
    }

    /// Whether instantiation would trap on this segment: a constant offset
    /// whose end is past the memory's minimum size.
    pub fn out_of_bounds(&self, memories: &[MemoryInfo]) -> bool {
        match self.placement {
            Placement::Active {
                memory,
                offset: Some(offset),
                ..
            } => u128::from(offset) + self.data.len() as u128 > memories[memory as usize].min_bytes,
            _ => false,
        }
    }
}

/// What the static evaluator knows about one core module.
#[derive(Debug, Clone, Default)]
pub struct ModuleInfo {
    pub memories: Vec<MemoryInfo>,
    /// Each global's value type and constant value, if it has one. Imported
    /// globals have none.
    pub globals: Vec<(ValType, Option<i64>)>,
    pub segments: Vec<SegmentInfo>,
    /// Byte range of the data section's contents in the module, if any.
    pub data_section: Option<Range<usize>>,
    /// Whether the module has a data count section.
    pub has_data_count: bool,
}

/// Evaluates a constant expression with only the operators segment offsets
/// may use. `None` when it is not a constant (reads an imported global, or
/// uses anything else).
pub fn eval_const(expr: &ConstExpr<'_>, globals: &[(ValType, Option<i64>)]) -> Option<i64> {
    // Values are kept as i64; i32 results are wrapped at each step.
    let mut stack: Vec<(bool, i64)> = Vec::new(); // (is_i64, value)
    let mut reader = expr.get_operators_reader();
    while !reader.eof() {
        let op = reader.read().ok()?;
        let mut binary = |f: fn(i64, i64) -> i64, wide: bool| -> Option<()> {
            let (_, b) = stack.pop()?;
            let (_, a) = stack.pop()?;
            let v = f(a, b);
            stack.push((wide, if wide { v } else { i64::from(v as i32) }));
            Some(())
        };
        match op {
            Operator::I32Const { value } => stack.push((false, i64::from(value))),
            Operator::I64Const { value } => stack.push((true, value)),
            Operator::GlobalGet { global_index } => {
                let (ty, value) = globals.get(global_index as usize)?;
                let value = (*value)?;
                stack.push((*ty == ValType::I64, value));
            }
            Operator::I32Add => binary(i64::wrapping_add, false)?,
            Operator::I32Sub => binary(i64::wrapping_sub, false)?,
            Operator::I32Mul => binary(i64::wrapping_mul, false)?,
            Operator::I64Add => binary(i64::wrapping_add, true)?,
            Operator::I64Sub => binary(i64::wrapping_sub, true)?,
            Operator::I64Mul => binary(i64::wrapping_mul, true)?,
            Operator::End => {}
            _ => return None,
        }
    }
    match stack.as_slice() {
        [(_, value)] => Some(*value),
        _ => None,
    }
}

impl ModuleInfo {
    /// Reads a core module's memories, globals and data segments.
    ///
    /// # Panics
    /// When the module does not parse.
    pub fn parse(wasm: &[u8]) -> ModuleInfo {
        let mut info = ModuleInfo::default();
        let memory = |ty: wasmparser::MemoryType, imported| {
            let page = 1u128 << ty.page_size_log2.unwrap_or(16);
            MemoryInfo {
                imported,
                memory64: ty.memory64,
                min_bytes: u128::from(ty.initial) * page,
            }
        };
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.expect("module parses") {
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        match import.expect("import parses").ty {
                            TypeRef::Memory(ty) => info.memories.push(memory(ty, true)),
                            TypeRef::Global(ty) => info.globals.push((ty.content_type, None)),
                            _ => {}
                        }
                    }
                }
                Payload::MemorySection(reader) => {
                    for ty in reader {
                        info.memories
                            .push(memory(ty.expect("memory parses"), false));
                    }
                }
                Payload::GlobalSection(reader) => {
                    for global in reader {
                        let global = global.expect("global parses");
                        let value = if global.ty.mutable {
                            None
                        } else {
                            eval_const(&global.init_expr, &info.globals)
                        };
                        info.globals.push((global.ty.content_type, value));
                    }
                }
                Payload::DataCountSection { .. } => info.has_data_count = true,
                Payload::DataSection(reader) => {
                    let range = reader.range();
                    info.data_section = Some(range.start as usize..range.end as usize);
                    for data in reader {
                        let data = data.expect("data segment parses");
                        let placement = match data.kind {
                            DataKind::Passive => Placement::Passive,
                            DataKind::Active {
                                memory_index,
                                offset_expr,
                            } => {
                                let memory64 = info.memories[memory_index as usize].memory64;
                                let offset = eval_const(&offset_expr, &info.globals).map(|v| {
                                    if memory64 {
                                        v as u64
                                    } else {
                                        u64::from(v as u32)
                                    }
                                });
                                let mut reader = offset_expr.get_binary_reader();
                                let expr = reader
                                    .read_bytes(reader.bytes_remaining())
                                    .expect("offset expression bytes")
                                    .to_vec();
                                Placement::Active {
                                    memory: memory_index,
                                    offset,
                                    expr,
                                }
                            }
                        };
                        info.segments.push(SegmentInfo {
                            placement,
                            data: data.data.to_vec(),
                        });
                    }
                }
                _ => {}
            }
        }
        info
    }

    /// Whether instantiation would trap on a segment with a constant offset.
    pub fn any_out_of_bounds(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.out_of_bounds(&self.memories))
    }

    /// Whether memory `memory` has an active segment with a non-constant
    /// offset.
    pub fn has_dynamic_segment(&self, memory: u32) -> bool {
        self.segments.iter().any(|s| {
            matches!(s.placement, Placement::Active { memory: m, offset: None, .. } if m == memory)
        })
    }

    /// Whether SPEC §2 lets segpack re-pack memory `memory`.
    pub fn packable(&self, memory: u32, zero_filled_imports: bool) -> bool {
        (!self.memories[memory as usize].imported || zero_filled_imports)
            && !self.has_dynamic_segment(memory)
            && !self.any_out_of_bounds()
    }

    /// The image that the constant-offset segments write into memory
    /// `memory`, in section order.
    pub fn image(&self, memory: u32) -> Image {
        let mut image = Image::default();
        for segment in &self.segments {
            if let Placement::Active {
                memory: m,
                offset: Some(offset),
                ..
            } = segment.placement
                && m == memory
            {
                image.write(offset, &segment.data);
            }
        }
        image
    }
}

/// A sparse memory image: the bytes written by segments, as disjoint runs
/// keyed by their start offset. Never allocates the memory itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Image {
    runs: BTreeMap<u64, Vec<u8>>,
}

impl Image {
    /// Writes `data` at `offset`, over whatever was there.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        // Runs overlapping [offset, end): the one starting before `offset`
        // that reaches into it, and every run starting inside it.
        let overlapping: Vec<u64> = self
            .runs
            .range(..end)
            .rev()
            .take_while(|(start, run)| **start + run.len() as u64 > offset)
            .map(|(start, _)| *start)
            .collect();
        for start in overlapping {
            let run = self.runs.remove(&start).unwrap();
            let run_end = start + run.len() as u64;
            if start < offset {
                self.runs
                    .insert(start, run[..(offset - start) as usize].to_vec());
            }
            if run_end > end {
                self.runs
                    .insert(end, run[(end - start) as usize..].to_vec());
            }
        }
        self.runs.insert(offset, data.to_vec());
    }

    /// The image as maximal runs of non-zero bytes: what a memory that
    /// starts zero-filled holds (a written zero is no different from an
    /// unwritten one).
    pub fn non_zero_runs(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        for (&start, run) in &self.runs {
            let mut i = 0;
            while i < run.len() {
                if run[i] == 0 {
                    i += 1;
                    continue;
                }
                let j = run[i..]
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(run.len(), |p| i + p);
                let at = start + i as u64;
                match out.last_mut() {
                    Some((s, r)) if *s + r.len() as u64 == at => r.extend_from_slice(&run[i..j]),
                    _ => out.push((at, run[i..j].to_vec())),
                }
                i = j;
            }
        }
        out
    }

    /// Total number of non-zero bytes.
    pub fn non_zero_len(&self) -> usize {
        self.runs
            .values()
            .map(|r| r.iter().filter(|&&b| b != 0).count())
            .sum()
    }
}

/// Every core module inside `binary`, depth first in file order (a core
/// module is its own only member).
pub fn core_modules(binary: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    collect_core_modules(binary, &mut out);
    out
}

fn collect_core_modules<'a>(binary: &'a [u8], out: &mut Vec<&'a [u8]>) {
    let mut parser = Parser::new(0);
    let mut pos = 0;
    loop {
        let (consumed, payload) = match parser.parse(&binary[pos..], true) {
            Ok(Chunk::Parsed { consumed, payload }) => (consumed, payload),
            Ok(Chunk::NeedMoreData(_)) => unreachable!("eof is true"),
            Err(e) => panic!("binary does not parse: {e}"),
        };
        pos += consumed;
        match payload {
            Payload::Version { encoding, .. } if encoding != wasmparser::Encoding::Component => {
                out.push(binary);
                return;
            }
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // The parent parser has already stepped over the nested
                // bytes (no `skip_section`); only `pos` must follow.
                let range = unchecked_range.start as usize..unchecked_range.end as usize;
                collect_core_modules(&binary[range.clone()], out);
                pos = range.end;
            }
            Payload::End(_) => return,
            _ => {}
        }
    }
}

/// Validates `wasm` with every feature wasmparser knows (components too).
pub fn assert_validates(wasm: &[u8], what: &str) {
    if let Err(e) = Validator::new_with_features(WasmFeatures::all()).validate_all(wasm) {
        panic!("{what} does not validate: {e}");
    }
}

/// Checks, without running anything, that `packed` gives every core module
/// the same memories at instantiation as `original`:
///
/// * the same core modules, with the same memories;
/// * if instantiation of the original traps on a constant-offset segment,
///   the data segments are unchanged;
/// * passive segments are unchanged at their index; any other passive
///   segment in the output is empty (a slot keeper);
/// * a memory that may not be re-packed (imported without
///   `zero_filled_imports`, or with a non-constant offset) keeps its active
///   segments unchanged, each at its index (SPEC §3 slot rule);
/// * a re-packed memory gets only constant, in-bounds segments whose
///   image holds the same non-zero bytes at the same offsets.
///
/// Returns the number of core modules compared.
pub fn assert_same_static_images(
    original: &[u8],
    packed: &[u8],
    zero_filled_imports: bool,
) -> usize {
    let originals = core_modules(original);
    let packeds = core_modules(packed);
    assert_eq!(
        originals.len(),
        packeds.len(),
        "packing changed the number of core modules"
    );
    for (i, (a, b)) in originals.iter().zip(&packeds).enumerate() {
        let context = if originals.len() == 1 {
            String::new()
        } else {
            format!("core module {i}: ")
        };
        assert_same_module_images(a, b, zero_filled_imports, &context);
    }
    originals.len()
}

fn assert_same_module_images(original: &[u8], packed: &[u8], zfi: bool, context: &str) {
    let a = ModuleInfo::parse(original);
    let b = ModuleInfo::parse(packed);
    assert_eq!(a.memories, b.memories, "{context}memories changed");
    assert_eq!(a.globals, b.globals, "{context}globals changed");
    if a.any_out_of_bounds() {
        assert_eq!(
            a.segments, b.segments,
            "{context}instantiation traps on a segment, yet the data segments changed"
        );
        return;
    }
    // Computed once: `packable` looks at every segment.
    let packable: Vec<bool> = (0..a.memories.len() as u32)
        .map(|memory| a.packable(memory, zfi))
        .collect();
    for (index, segment) in a.segments.iter().enumerate() {
        let keep = match segment.placement {
            Placement::Passive => true,
            Placement::Active { memory, .. } => !packable[memory as usize],
        };
        if keep {
            assert_eq!(
                b.segments.get(index),
                Some(segment),
                "{context}segment {index} must be kept unchanged at its index ({})",
                if segment.placement == Placement::Passive {
                    "passive".to_string()
                } else {
                    format!("memory {} is not packable", segment.memory().unwrap())
                }
            );
        }
    }
    for (index, segment) in b.segments.iter().enumerate() {
        let original_passive =
            a.segments.get(index).map(|s| &s.placement) == Some(&Placement::Passive);
        if segment.placement == Placement::Passive && !original_passive {
            assert!(
                segment.data.is_empty(),
                "{context}output segment {index} is a new non-empty passive segment"
            );
        }
        if let Some(memory) = segment.memory()
            && packable[memory as usize]
        {
            assert!(
                !segment.out_of_bounds(&b.memories),
                "{context}output segment {index} is out of bounds for memory {memory}"
            );
            assert!(
                matches!(
                    segment.placement,
                    Placement::Active {
                        offset: Some(_),
                        ..
                    }
                ),
                "{context}output segment {index} for re-packed memory {memory} has a non-constant offset"
            );
        }
    }
    for memory in 0..a.memories.len() as u32 {
        let count = |info: &ModuleInfo| {
            info.segments
                .iter()
                .filter(|s| s.memory() == Some(memory))
                .count()
        };
        if !packable[memory as usize] {
            assert_eq!(
                count(&a),
                count(&b),
                "{context}memory {memory} is not packable, yet its number of segments changed"
            );
            continue;
        }
        let (image_a, image_b) = (
            a.image(memory).non_zero_runs(),
            b.image(memory).non_zero_runs(),
        );
        if image_a != image_b {
            panic!(
                "{context}memory {memory}: packed image differs from the original: {}",
                describe_image_difference(&image_a, &image_b)
            );
        }
    }
}

/// Where two images (as non-zero runs) first differ, in words.
pub fn describe_image_difference(a: &[(u64, Vec<u8>)], b: &[(u64, Vec<u8>)]) -> String {
    let total = |runs: &[(u64, Vec<u8>)]| runs.iter().map(|(_, r)| r.len()).sum::<usize>();
    for (i, (ra, rb)) in a.iter().zip(b).enumerate() {
        if ra != rb {
            return format!(
                "run {i}: original has {} non-zero bytes at {:#x} (starting {:02x?}), packed has {} at {:#x} (starting {:02x?}); {} vs {} non-zero bytes in all",
                ra.1.len(),
                ra.0,
                &ra.1[..ra.1.len().min(16)],
                rb.1.len(),
                rb.0,
                &rb.1[..rb.1.len().min(16)],
                total(a),
                total(b),
            );
        }
    }
    format!(
        "original has {} runs of non-zero bytes, packed has {}; {} vs {} non-zero bytes in all",
        a.len(),
        b.len(),
        total(a),
        total(b)
    )
}
