//! A small snapshotter, as Wizer is, written only against segpack's public API.
//!
//! 1. Instantiate a module in wasmi (two memories: a 32-bit heap and a
//!    memory64) and call its `init` export, which grows the memories and
//!    writes a loop's worth of words and a few strings, leaving lots of zeros.
//! 2. Read every memory and hand each to a [`segpack::Packer`], borrowed, one
//!    at a time: the packer keeps extents (offset, length), no bytes.
//! 3. Encode the snapshot with wasm-encoder: every section of the original is
//!    copied through as it is, except the memory section (minimums grown to
//!    the size after init), the data count and the data section, whose
//!    segments [`segpack::PackedMemory::encode_into`] slices from each memory
//!    (without the `encoder` feature: each extent's range and offset
//!    expression, for any version of wasm-encoder).
//!
//! No `unwrap` or `expect` on the way (the lints below deny them): with
//! constant options, packing cannot fail.
//! 4. Validate the snapshot, instantiate it in wasmi without calling `init`,
//!    and check that every memory equals the snapshot.
//!
//! Run it with `cargo run --example snapshotter`; `tests/producer.rs` runs it too.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error;

use segpack::{IndexType, OffsetExpr, PackOptions, Packer};
use wasm_encoder::{
    ConstExpr, DataCountSection, DataSection, Encode, MemorySection, MemoryType, RawSection,
};
use wasmi::{Config, Engine, Instance, Linker, Memory, Module, Store};
use wasmparser::{DataKind, ExternalKind, Parser, Payload, Validator, WasmFeatures};

/// The module to snapshot. `init` only writes memory: its one global is
/// immutable, so the global section can be copied as it is (a snapshotter
/// whose `init` changes globals writes their new values there too).
const WAT: &str = r#"(module
  (memory $heap (export "heap") 1)
  (memory $big (export "big") i64 1)
  (global $table (export "table") i32 (i32.const 0x1000))
  (data (memory $heap) (i32.const 16) "hello from before init")
  (data (memory $big) (i64.const 0x100) "memory64 says hi")
  (func (export "init") (local $i i32)
    ;; The heap grows to 4 pages; every 1 KiB from $table on gets i*i.
    (drop (memory.grow $heap (i32.const 3)))
    (loop $fill
      (i32.store $heap
        (i32.add (global.get $table) (i32.mul (local.get $i) (i32.const 1024)))
        (i32.mul (local.get $i) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 200))))
    ;; Strings: the greeting to the last heap page, memory64's to heap page 2.
    (memory.copy $heap $heap (i32.const 0x3ff00) (i32.const 16) (i32.const 22))
    (memory.copy $heap $big (i32.const 0x20000) (i64.const 0x100) (i32.const 16))
    ;; memory64 grows to 2 pages and gets "snapshot" at the end of the last.
    (drop (memory.grow $big (i64.const 1)))
    (i64.store $big (i64.const 0x1fff8) (i64.const 0x746f687370616e73))))"#;

/// What a run did.
#[derive(Debug)]
pub struct Summary {
    /// Each memory's size in bytes after `init`.
    pub memory_sizes: Vec<usize>,
    /// Segments in the snapshot's data section.
    pub segments: usize,
    /// Their payload bytes.
    pub payload_bytes: u64,
    /// The encoded data section (size, count and segments).
    pub data_section_bytes: usize,
    /// The same with one segment per page that is not all zeros, as a naive
    /// snapshotter writes it.
    pub per_page_section_bytes: usize,
    /// Whether the snapshot, instantiated, gives exactly the memories `init` left.
    pub memories_match: bool,
}

fn instantiate(
    engine: &Engine,
    store: &mut Store<()>,
    wasm: &[u8],
) -> Result<Instance, Box<dyn Error>> {
    let module = Module::new(engine, wasm)?;
    Ok(Linker::new(engine).instantiate_and_start(store, &module)?)
}

/// Every memory of `instance` in index order, found through the exports of
/// `wasm` (wasmi reaches memories by export name; Wizer exports them first).
fn memories(
    wasm: &[u8],
    instance: &Instance,
    store: &Store<()>,
) -> Result<Vec<Memory>, Box<dyn Error>> {
    let (mut count, mut names) = (0, Vec::new());
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ImportSection(_) => {
                return Err("this snapshotter takes modules without imports".into());
            }
            Payload::MemorySection(reader) => count = reader.count(),
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    if export.kind == ExternalKind::Memory {
                        names.push((export.index, export.name));
                    }
                }
            }
            _ => {}
        }
    }
    (0..count)
        .map(|i| {
            let name = names
                .iter()
                .find(|(index, _)| *index == i)
                .map(|(_, name)| *name);
            name.and_then(|name| instance.get_memory(store, name))
                .ok_or_else(|| format!("memory {i} is not exported").into())
        })
        .collect()
}

fn index_type(memory: &Memory, store: &Store<()>) -> IndexType {
    IndexType::from_memory64(memory.ty(store).is_64())
}

/// Takes the snapshot, packs it, rebuilds the module and checks it.
pub fn run() -> Result<Summary, Box<dyn Error>> {
    let wasm = wat::parse_str(WAT)?;
    let engine = Engine::new(Config::default().wasm_memory64(true));
    let mut store = Store::new(&engine, ());
    let instance = instantiate(&engine, &mut store, &wasm)?;
    instance
        .get_typed_func::<(), ()>(&store, "init")?
        .call(&mut store, ())?;
    let memories = memories(&wasm, &instance, &store)?;

    // Pack: each memory borrowed straight from the store, nothing copied.
    let mut packer = Packer::new(&PackOptions::default());
    for (i, memory) in memories.iter().enumerate() {
        packer.add_memory(i as u32, index_type(memory, &store), memory.data(&store));
    }
    let packed = packer.finish();
    if !packed.within_cap() {
        eprintln!("warning: more segments than max_segments (gaps of 4 GiB or more)");
    }
    // Second pass, memory by memory: the extents sliced out of the same
    // memory, in one call (feature `encoder`), or extent by extent with the
    // offset expression's immediate, as a producer on another wasm-encoder
    // version writes them.
    let mut data = DataSection::new();
    for (index, memory) in (0..).zip(&memories) {
        // A memory that is all zeros has no segments.
        let Some(packed_memory) = packed.memory(index) else {
            continue;
        };
        let memory = memory.data(&store);
        #[cfg(feature = "encoder")]
        packed_memory.encode_into(memory, &mut data);
        #[cfg(not(feature = "encoder"))]
        for e in packed_memory.segments() {
            data.active(
                index,
                &const_expr(packed_memory.offset_expr(e.offset())),
                memory[e.range()].iter().copied(),
            );
        }
    }

    // The new module: every section copied, but the three that describe
    // memory. The `init` export stays: dropping it means re-encoding the
    // export section, which is no part of what segpack is about (Wizer drops
    // it by default, as calling it again would grow the heap a second time).
    let mut module = wasm_encoder::Module::new();
    let mut data_written = false;
    for payload in Parser::new(0).parse_all(&wasm) {
        let payload = payload?;
        match &payload {
            Payload::MemorySection(reader) => {
                let mut section = MemorySection::new();
                for (ty, memory) in reader.clone().into_iter().zip(&memories) {
                    let ty = ty?;
                    section.memory(MemoryType {
                        minimum: memory.size(&store),
                        maximum: ty.maximum,
                        memory64: ty.memory64,
                        shared: ty.shared,
                        page_size_log2: ty.page_size_log2,
                    });
                }
                module.section(&section);
            }
            Payload::DataCountSection { .. } => {
                module.section(&DataCountSection { count: data.len() });
            }
            Payload::DataSection(reader) => {
                // Passive segments are named by index from code; replacing
                // them would break it (`segpack::pack_module` keeps their slots).
                for segment in reader.clone() {
                    if let DataKind::Passive = segment?.kind {
                        return Err("this snapshotter takes no passive segments".into());
                    }
                }
                module.section(&data);
                data_written = true;
            }
            // The data section is the last known one; custom sections may follow it.
            Payload::End(_) if !data_written => {
                module.section(&data);
            }
            _ => {
                if let Some((id, range)) = payload.as_section() {
                    let data = &wasm[range.start as usize..range.end as usize];
                    module.section(&RawSection { id, data });
                }
            }
        }
    }
    let snapshot = module.finish();
    Validator::new_with_features(WasmFeatures::all()).validate_all(&snapshot)?;

    // Instantiate the snapshot (no init) and compare every memory.
    let mut fresh_store = Store::new(&engine, ());
    let fresh = instantiate(&engine, &mut fresh_store, &snapshot)?;
    let restored = self::memories(&snapshot, &fresh, &fresh_store)?;
    let memories_match = restored.len() == memories.len()
        && restored
            .iter()
            .zip(&memories)
            .all(|(r, m)| r.data(&fresh_store) == m.data(&store));

    let mut naive = DataSection::new();
    for (i, memory) in memories.iter().enumerate() {
        let index_type = index_type(memory, &store);
        for (p, page) in memory.data(&store).chunks(1 << 16).enumerate() {
            if page.iter().any(|&b| b != 0) {
                let offset = OffsetExpr::new(index_type, (p as u64) << 16);
                naive.active(i as u32, &const_expr(offset), page.iter().copied());
            }
        }
    }
    Ok(Summary {
        memory_sizes: memories.iter().map(|m| m.data(&store).len()).collect(),
        segments: packed.len(),
        payload_bytes: packed.segments().map(|e| e.len()).sum(),
        data_section_bytes: encoded_len(&data),
        per_page_section_bytes: encoded_len(&naive),
        memories_match,
    })
}

/// What `OffsetExpr::to_const_expr` gives with the `encoder` feature.
fn const_expr(offset: OffsetExpr) -> ConstExpr {
    match offset {
        OffsetExpr::I32Const(value) => ConstExpr::i32_const(value),
        OffsetExpr::I64Const(value) => ConstExpr::i64_const(value),
    }
}

fn encoded_len(section: &DataSection) -> usize {
    let mut bytes = Vec::new();
    section.encode(&mut bytes);
    bytes.len()
}

#[allow(dead_code)] // tests/producer.rs includes this file and calls run() only.
fn main() -> Result<(), Box<dyn Error>> {
    let s = run()?;
    println!("memories after init: {:?} bytes", s.memory_sizes);
    println!(
        "{} segments, {} payload bytes; data section {} bytes (one segment per page: {})",
        s.segments, s.payload_bytes, s.data_section_bytes, s.per_page_section_bytes
    );
    if !s.memories_match {
        return Err("the snapshot does not give the same memories".into());
    }
    println!("the snapshot gives the same memories");
    Ok(())
}
