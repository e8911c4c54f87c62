//! Running a module: instantiate it in wasmi with dummy imports, run its
//! start function on a fuel budget, and read back every memory.
//!
//! Memories that the module does not export are made readable by a
//! test-only rewrite ([`export_all_memories`]) that appends one export per
//! memory. The same rewrite is applied to the original and the packed module,
//! and it touches neither the data section nor any code, so it cannot make a
//! difference between them.

use wasmi::{
    CompilationMode, Config, Engine, Extern, ExternType, Func, Global, Instance, Memory, Module,
    Nullable, Ref, RefType, Store, StoreLimits, StoreLimitsBuilder, Table, Val,
    errors::{ErrorKind, MemoryError, TableError},
};
use wasmparser::{Parser, Payload, TypeRef};

use super::wasm::{self, SECTION_EXPORT};

/// Fuel for the start function: enough for small loops, and the end of
/// infinite ones (both modules then run out of fuel at the same instruction).
pub const FUEL: u64 = 200_000;

/// A memory bigger than this is not allocated; the module is reported as
/// [`Outcome::Unsupported`] rather than risking the test machine's memory.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;

/// What instantiating a module produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Instantiation trapped (segment out of bounds, a trap or running out of
    /// fuel in the start function...). The message is wasmi's.
    Trapped(String),
    /// Instantiation succeeded: the bytes of every memory, by memory index
    /// (imported memories included).
    Memories(Vec<Vec<u8>>),
    /// wasmi cannot run this binary (a component, an unsupported proposal, a
    /// memory too big for the test machine...). Not a verdict on the module.
    Unsupported(String),
}

impl Outcome {
    /// A short description for messages: the trap, the memory sizes, or why
    /// the module could not be run.
    pub fn summary(&self) -> String {
        match self {
            Outcome::Trapped(message) => format!("trapped: {message}"),
            Outcome::Memories(memories) => {
                let sizes: Vec<usize> = memories.iter().map(Vec::len).collect();
                format!("instantiated; memory sizes {sizes:?}")
            }
            Outcome::Unsupported(why) => format!("unsupported: {why}"),
        }
    }
}

/// The wasmi configuration: every proposal that segpack handles and wasmi
/// implements (SIMD only exists behind wasmi's `simd` cargo feature, which
/// this crate does not enable).
fn config() -> Config {
    let mut config = Config::default();
    config
        .wasm_mutable_global(true)
        .wasm_sign_extension(true)
        .wasm_saturating_float_to_int(true)
        .wasm_multi_value(true)
        .wasm_multi_memory(true)
        .wasm_bulk_memory(true)
        .wasm_reference_types(true)
        .wasm_tail_call(true)
        .wasm_extended_const(true)
        .wasm_custom_page_sizes(true)
        .wasm_memory64(true)
        .wasm_wide_arithmetic(true)
        .consume_fuel(true)
        // Function bodies are validated by wasmparser elsewhere; translating
        // only what the start function runs keeps big modules fast.
        .compilation_mode(CompilationMode::Lazy);
    config
}

/// Instantiates `wasm` (a core module) with dummy imports and returns what it
/// left in its memories.
///
/// Imports are satisfied with: functions that return default values (zero or
/// null), globals holding a default value, tables filled with null, and fresh
/// zero-filled memories of the import's own type (so at its minimum size).
pub fn instantiate(wasm: &[u8]) -> Outcome {
    if !wasm::is_core_module(wasm) {
        return Outcome::Unsupported("not a core module (a component?)".into());
    }
    let (wasm, export_names) = match export_all_memories(wasm) {
        Ok(rewritten) => rewritten,
        Err(why) => return Outcome::Unsupported(why),
    };
    let engine = Engine::new(&config());
    let module = match Module::new(&engine, &wasm) {
        Ok(module) => module,
        Err(e) => return Outcome::Unsupported(format!("wasmi rejects the module: {e}")),
    };
    let limits = StoreLimitsBuilder::new()
        .memory_size(MAX_MEMORY_BYTES)
        .build();
    let mut store: Store<StoreLimits> = Store::new(&engine, limits);
    store.limiter(|limits| limits);
    store.set_fuel(FUEL).expect("fuel is enabled");

    let mut externs = Vec::new();
    for import in module.imports() {
        let import_name = format!("{}::{}", import.module(), import.name());
        let ext = match import.ty().clone() {
            ExternType::Func(ty) => {
                let results = ty.results().to_vec();
                Extern::Func(Func::new(&mut store, ty, move |_, _, out| {
                    for (slot, &ty) in out.iter_mut().zip(&results) {
                        *slot = Val::default_for_ty(ty);
                    }
                    Ok(())
                }))
            }
            ExternType::Global(ty) => Extern::Global(Global::new(
                &mut store,
                Val::default_for_ty(ty.content()),
                ty.mutability(),
            )),
            ExternType::Table(ty) => {
                let init = match ty.element() {
                    RefType::Func => Ref::Func(Nullable::Null),
                    RefType::Extern => Ref::Extern(Nullable::Null),
                };
                match Table::new(&mut store, ty, init) {
                    Ok(table) => Extern::Table(table),
                    Err(e) => {
                        return Outcome::Unsupported(format!(
                            "cannot create imported table {import_name}: {e}"
                        ));
                    }
                }
            }
            ExternType::Memory(ty) => match Memory::new(&mut store, ty) {
                Ok(memory) => Extern::Memory(memory),
                Err(e) => {
                    return Outcome::Unsupported(format!(
                        "cannot create imported memory {import_name}: {e}"
                    ));
                }
            },
        };
        externs.push(ext);
    }

    let instance = match Instance::new(&mut store, &module, &externs) {
        Ok(instance) => instance,
        Err(e) => {
            return match e.kind() {
                // The machine's limits, not the module's behaviour.
                ErrorKind::Memory(
                    MemoryError::OutOfSystemMemory
                    | MemoryError::ResourceLimiterDeniedAllocation
                    | MemoryError::MinimumSizeOverflow
                    | MemoryError::MaximumSizeOverflow,
                )
                | ErrorKind::Table(
                    TableError::OutOfSystemMemory
                    | TableError::ResourceLimiterDeniedAllocation
                    | TableError::MinimumSizeOverflow
                    | TableError::MaximumSizeOverflow,
                )
                // A function wasmi cannot compile (validation is lazy).
                | ErrorKind::Wasm(_)
                | ErrorKind::Translation(_)
                | ErrorKind::Read(_)
                | ErrorKind::Linker(_)
                | ErrorKind::ImplementationLimits(_)
                | ErrorKind::UserLimits(_) => {
                    Outcome::Unsupported(format!("wasmi cannot instantiate the module: {e}"))
                }
                _ => Outcome::Trapped(e.to_string()),
            };
        }
    };
    let memories = export_names
        .iter()
        .map(|name| {
            let memory = instance
                .get_memory(&store, name)
                .unwrap_or_else(|| panic!("the harness's export {name:?} is missing"));
            memory.data(&store).to_vec()
        })
        .collect();
    Outcome::Memories(memories)
}

/// Appends an export for every memory of the core module `wasm` (imported
/// ones included), under names that clash with no existing export. Returns
/// the rewritten module and the export name of each memory, by index.
///
/// Only the export section changes (or one is inserted where the spec's
/// section order wants it); every other section is copied byte for byte.
pub fn export_all_memories(wasm: &[u8]) -> Result<(Vec<u8>, Vec<String>), String> {
    let mut memories = 0u32;
    let mut export_names = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("wasmparser cannot parse the module: {e}"))? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if matches!(import.ty, TypeRef::Memory(_)) {
                        memories += 1;
                    }
                }
            }
            Payload::MemorySection(reader) => memories += reader.count(),
            Payload::ExportSection(reader) => {
                for export in reader {
                    export_names.push(export.map_err(|e| e.to_string())?.name.to_string());
                }
            }
            _ => {}
        }
    }

    let mut prefix = String::from("segpack-harness-memory-");
    while export_names.iter().any(|name| name.starts_with(&prefix)) {
        prefix.push('_');
    }
    let names: Vec<String> = (0..memories).map(|i| format!("{prefix}{i}")).collect();
    if names.is_empty() {
        return Ok((wasm.to_vec(), names));
    }

    let mut new_entries = Vec::new();
    for (index, name) in names.iter().enumerate() {
        wasm::write_bytes(&mut new_entries, name.as_bytes());
        new_entries.push(0x02); // external kind: memory
        wasm::write_uleb(&mut new_entries, index as u64);
    }

    let sections = wasm::sections(wasm);
    let export_rank = wasm::section_rank(SECTION_EXPORT);
    let mut rebuilt: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut done = false;
    for section in &sections {
        if section.id == SECTION_EXPORT {
            let mut pos = 0;
            let count = wasm::read_uleb(section.content, &mut pos);
            let mut content = Vec::new();
            wasm::write_uleb(&mut content, count + u64::from(memories));
            content.extend_from_slice(&section.content[pos..]);
            content.extend_from_slice(&new_entries);
            rebuilt.push((SECTION_EXPORT, content));
            done = true;
            continue;
        }
        if !done && wasm::section_rank(section.id) > export_rank {
            // `None < Some(_)`, so custom sections never trigger this.
            let mut content = Vec::new();
            wasm::write_uleb(&mut content, u64::from(memories));
            content.extend_from_slice(&new_entries);
            rebuilt.push((SECTION_EXPORT, content));
            done = true;
        }
        rebuilt.push((section.id, section.content.to_vec()));
    }
    if !done {
        let mut content = Vec::new();
        wasm::write_uleb(&mut content, u64::from(memories));
        content.extend_from_slice(&new_entries);
        rebuilt.push((SECTION_EXPORT, content));
    }
    let out = wasm::assemble(rebuilt.iter().map(|(id, c)| (*id, c.as_slice())));
    Ok((out, names))
}
