//! Differential run over the data-related modules of the WebAssembly spec
//! test suite (issue 13).
//!
//! `tests/spec_testsuite/` holds every distinct valid module with a data
//! segment from the suite's `data`, `bulk`, `memory_init`, `data_drop`,
//! `memory_copy` and GC `array` scripts, split out with `wasm-tools
//! json-from-wast` (provenance and license in its README.md), and
//! `modules.txt`: for each module, whether the script expects it to
//! instantiate or to trap, which engine runs it, and the script's own
//! invocations of its exports.
//!
//! Each module is packed with the default options, with `max_segments` 1 and
//! 2, and with `zero_filled_imports` (the harness hands in a fresh memory,
//! zeroed). Every output must validate (all features) and have the same
//! static images, and must run like its original: the same instantiation
//! outcome, the same result or trap for every invocation, in order, and the
//! same bytes in every memory afterwards. Modules without GC run in wasmi
//! with the spec's `spectest` imports; the GC ones in wasmtime (Python).
//!
//! The suite's GC modules only have passive segments, which packing never
//! touches. So each of them also runs in a variant made here: a memory added
//! and every segment made active, so that packing re-packs segments that
//! `array.new_data`, `array.init_data` and `data.drop` name (issue 13: their
//! slots must survive).

mod support;

use std::path::{Path, PathBuf};

use segpack::PackOptions;
use support::read::{pack_with, validate};
use support::wasm::{self, SECTION_DATA, SECTION_MEMORY};
use wasmi::{
    CompilationMode, Config, Engine, Global, Linker, Memory, MemoryType, Module, Mutability, Store,
    Val,
};

/// The modules the fixtures hold: run in wasmi, run in wasmtime (the GC
/// ones, and two whose segment offsets read a global the module defines,
/// which wasmi refuses).
const WASMI_MODULES: usize = 143;
const WASMTIME_MODULES: usize = 10;
const GC_MODULES: usize = 8;

/// Fuel for a start function or one invocation (the scripts' loops are
/// short).
const FUEL: u64 = 10_000_000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec_testsuite")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Instantiates,
    Traps,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runner {
    Wasmi,
    Wasmtime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    I32(i32),
    I64(i64),
}

#[derive(Debug, Clone)]
struct Call {
    name: String,
    args: Vec<Arg>,
}

/// One line of `modules.txt`.
#[derive(Debug, Clone)]
struct Entry {
    file: String,
    script: String,
    /// `script.wast#n, line l`, for messages.
    origin: String,
    expect: Expect,
    runner: Runner,
    calls: Vec<Call>,
}

fn parse_call(text: &str) -> Call {
    let (name, rest) = text
        .split_once('(')
        .unwrap_or_else(|| panic!("bad call {text:?}"));
    let args = rest
        .strip_suffix(')')
        .unwrap_or_else(|| panic!("bad call {text:?}"));
    let args = args
        .split(',')
        .filter(|a| !a.is_empty())
        .map(|arg| match arg.split_once(':') {
            Some(("i32", v)) => Arg::I32(v.parse().unwrap()),
            Some(("i64", v)) => Arg::I64(v.parse().unwrap()),
            _ => panic!("bad argument {arg:?} in {text:?}"),
        })
        .collect();
    Call {
        name: name.to_string(),
        args,
    }
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(fixtures().join("modules.txt")).expect("modules.txt");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert!(fields.len() >= 6, "bad manifest line {line:?}");
            Entry {
                file: fields[0].to_string(),
                script: fields[1].to_string(),
                origin: format!("{}#{}, line {}", fields[1], fields[2], fields[3]),
                expect: match fields[4] {
                    "instantiates" => Expect::Instantiates,
                    "traps" => Expect::Traps,
                    other => panic!("bad expectation {other:?}"),
                },
                runner: match fields[5] {
                    "wasmi" => Runner::Wasmi,
                    "wasmtime" => Runner::Wasmtime,
                    other => panic!("bad engine {other:?}"),
                },
                calls: fields[6..].iter().map(|c| parse_call(c)).collect(),
            }
        })
        .collect()
}

fn read_module(entry: &Entry) -> Vec<u8> {
    let path = fixtures().join(&entry.file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The four packings of every module.
// `PackOptions` may not be built by a struct expression outside the crate.
#[allow(clippy::field_reassign_with_default)]
fn option_sets() -> Vec<PackOptions> {
    let mut sets = vec![PackOptions::default()];
    for cap in [1, 2] {
        let mut options = PackOptions::default();
        options.max_segments = segpack::MaxSegments::new(cap).unwrap();
        sets.push(options);
    }
    let mut options = PackOptions::default();
    options.zero_filled_imports = true;
    sets.push(options);
    sets
}

// ---------------------------------------------------------------------------
// wasmi, with the spec interpreter's `spectest` module.

/// What a run showed: the instantiation outcome, a line per invocation, and
/// every memory's bytes afterwards (imported ones included).
#[derive(Debug, PartialEq, Eq)]
struct Run {
    instantiation: Result<(), String>,
    calls: Vec<String>,
    memories: Vec<Vec<u8>>,
}

fn wasmi_config() -> Config {
    let mut config = Config::default();
    config
        .wasm_multi_memory(true)
        .wasm_bulk_memory(true)
        .wasm_reference_types(true)
        .wasm_extended_const(true)
        .wasm_memory64(true)
        .wasm_custom_page_sizes(true)
        .consume_fuel(true)
        .compilation_mode(CompilationMode::Lazy);
    config
}

/// Instantiates `wasm` in wasmi, with the imports the reference
/// interpreter's `spectest` module gives (the ones these modules use: an
/// i32 and an i64 global holding 666, a memory of 1 to 2 pages, fresh for
/// each run), runs `calls` in order and reads every memory.
fn run_wasmi(wasm: &[u8], calls: &[Call]) -> Run {
    let (wasm, memory_names) =
        support::engine::export_all_memories(wasm).expect("memories exported");
    let engine = Engine::new(&wasmi_config());
    let module =
        Module::new(&engine, &wasm[..]).unwrap_or_else(|e| panic!("wasmi rejects it: {e}"));
    let mut store = Store::new(&engine, ());
    store.set_fuel(FUEL).unwrap();
    let mut linker = Linker::<()>::new(&engine);
    let global_i32 = Global::new(&mut store, Val::I32(666), Mutability::Const);
    let global_i64 = Global::new(&mut store, Val::I64(666), Mutability::Const);
    let memory = Memory::new(&mut store, MemoryType::new(1, Some(2))).unwrap();
    linker
        .define("spectest", "global_i32", global_i32)
        .unwrap()
        .define("spectest", "global_i64", global_i64)
        .unwrap()
        .define("spectest", "memory", memory)
        .unwrap();
    let instance = match linker.instantiate_and_start(&mut store, &module) {
        Ok(instance) => instance,
        Err(e) => {
            return Run {
                instantiation: Err(e.to_string()),
                calls: Vec::new(),
                memories: Vec::new(),
            };
        }
    };
    let mut lines = Vec::new();
    for call in calls {
        let func = instance
            .get_func(&store, &call.name)
            .unwrap_or_else(|| panic!("no exported function {:?}", call.name));
        let inputs: Vec<Val> = call
            .args
            .iter()
            .map(|arg| match *arg {
                Arg::I32(v) => Val::I32(v),
                Arg::I64(v) => Val::I64(v),
            })
            .collect();
        let mut outputs: Vec<Val> = func
            .ty(&store)
            .results()
            .iter()
            .map(|&ty| Val::default_for_ty(ty))
            .collect();
        store.set_fuel(FUEL).unwrap();
        let line = match func.call(&mut store, &inputs, &mut outputs) {
            Ok(()) => format!("{}{:?}: {outputs:?}", call.name, call.args),
            Err(e) => format!("{}{:?}: trap {e}", call.name, call.args),
        };
        lines.push(line);
    }
    let memories = memory_names
        .iter()
        .map(|name| {
            let memory = instance.get_memory(&store, name).expect("exported memory");
            memory.data(&store).to_vec()
        })
        .collect();
    Run {
        instantiation: Ok(()),
        calls: lines,
        memories,
    }
}

/// Asserts that two runs agree, naming the first difference.
fn assert_same_run(original: &Run, packed: &Run, what: &str) {
    assert_eq!(
        original.instantiation, packed.instantiation,
        "{what}: instantiation differs"
    );
    for (a, b) in original.calls.iter().zip(&packed.calls) {
        assert_eq!(a, b, "{what}: an invocation differs");
    }
    assert_eq!(original.calls.len(), packed.calls.len());
    assert_eq!(original.memories.len(), packed.memories.len(), "{what}");
    for (index, (a, b)) in original.memories.iter().zip(&packed.memories).enumerate() {
        if let Some(why) = support::memory_difference(a, b) {
            panic!("{what}: memory {index} differs: {why}");
        }
    }
}

// ---------------------------------------------------------------------------
// wasmtime, for the GC modules.

fn run_wasmtime(wasm: &[u8], calls: &[Call]) -> Vec<String> {
    let (wasm, _) = support::engine::export_all_memories(wasm).expect("memories exported");
    let args: Vec<Vec<i32>> = calls
        .iter()
        .map(|call| {
            call.args
                .iter()
                .map(|arg| match *arg {
                    Arg::I32(v) => v,
                    Arg::I64(_) => panic!("the wasmtime runner passes i32 arguments only"),
                })
                .collect()
        })
        .collect();
    let calls: Vec<(&str, &[i32])> = calls
        .iter()
        .zip(&args)
        .map(|(call, args)| (call.name.as_str(), args.as_slice()))
        .collect();
    support::python::run_in_wasmtime(&wasm, &calls)
}

/// The suite's GC module `wasm` with a memory of one page added and each of
/// its (passive) segments made active, two bytes after the previous one:
/// packing then merges segments that the code names. `None` when the module
/// has a memory or imports, or a segment that is not passive.
fn activated(wasm: &[u8]) -> Option<Vec<u8>> {
    use wasmparser::{DataKind, Parser, Payload};
    let mut payloads = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("valid module") {
            Payload::MemorySection(_) => return None,
            Payload::ImportSection(reader) if reader.count() > 0 => return None,
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data.expect("valid module");
                    if !matches!(data.kind, DataKind::Passive) {
                        return None;
                    }
                    payloads.push(data.data);
                }
            }
            _ => {}
        }
    }
    let mut data = Vec::new();
    wasm::write_uleb(&mut data, payloads.len() as u64);
    let mut offset = 0;
    for payload in &payloads {
        data.extend([0x00, 0x41]); // active in memory 0, i32.const
        wasm::write_sleb(&mut data, offset);
        data.push(0x0b);
        wasm::write_bytes(&mut data, payload);
        offset += payload.len() as i64 + 2;
    }
    let memory = [0x01, 0x00, 0x01]; // one memory: no maximum, 1 page
    let memory_rank = wasm::section_rank(SECTION_MEMORY);
    let mut sections: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut memory_added = false;
    for section in wasm::sections(wasm) {
        if !memory_added && wasm::section_rank(section.id) > memory_rank {
            sections.push((SECTION_MEMORY, memory.to_vec()));
            memory_added = true;
        }
        if section.id == SECTION_DATA {
            sections.push((SECTION_DATA, data.clone()));
        } else {
            sections.push((section.id, section.content.to_vec()));
        }
    }
    assert!(
        memory_added,
        "a module with data segments has a data section"
    );
    let out = wasm::assemble(sections.iter().map(|(id, c)| (*id, c.as_slice())));
    validate(&out);
    Some(out)
}

/// The number of active data segments.
fn active_segments(wasm: &[u8]) -> usize {
    support::statics::ModuleInfo::parse(wasm)
        .segments
        .iter()
        .filter(|s| s.memory().is_some())
        .count()
}

// ---------------------------------------------------------------------------

#[test]
fn the_fixtures_are_the_manifest() {
    let entries = manifest();
    let mut listed: Vec<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    listed.sort_unstable();
    let mut files: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".wasm"))
        .collect();
    files.sort_unstable();
    assert_eq!(listed, files, "modules.txt and the .wasm files disagree");
    let wasmi = entries.iter().filter(|e| e.runner == Runner::Wasmi).count();
    let wasmtime = entries
        .iter()
        .filter(|e| e.runner == Runner::Wasmtime)
        .count();
    assert_eq!((wasmi, wasmtime), (WASMI_MODULES, WASMTIME_MODULES));
    for entry in &entries {
        let wasm = read_module(entry);
        validate(&wasm);
        let segments =
            wasmparser::Parser::new(0)
                .parse_all(&wasm)
                .find_map(|payload| match payload {
                    Ok(wasmparser::Payload::DataSection(reader)) => Some(reader.count()),
                    _ => None,
                });
        assert!(segments > Some(0), "{}: no data segment", entry.file);
    }
}

#[test]
fn spec_modules_pack_to_modules_that_run_alike_in_wasmi() {
    let started = std::time::Instant::now();
    let entries: Vec<Entry> = manifest()
        .into_iter()
        .filter(|e| e.runner == Runner::Wasmi)
        .collect();
    assert_eq!(entries.len(), WASMI_MODULES);
    let (mut compared, mut changed, mut calls, mut trapped) = (0, 0, 0, 0);
    for entry in &entries {
        let wasm = read_module(entry);
        let original = run_wasmi(&wasm, &entry.calls);
        let what = format!("{} ({})", entry.file, entry.origin);
        // The harness runs the module as the script says it runs.
        match entry.expect {
            Expect::Instantiates => assert_eq!(
                original.instantiation,
                Ok(()),
                "{what}: the script expects it to instantiate"
            ),
            Expect::Traps => {
                assert!(
                    original.instantiation.is_err(),
                    "{what}: the script expects a trap at instantiation"
                );
                trapped += 1;
            }
        }
        for options in option_sets() {
            let what = format!("{what}, packed with {options:?}");
            let (out, _) = pack_with(&wasm, &options);
            validate(&out);
            support::statics::assert_same_static_images(&wasm, &out, options.zero_filled_imports);
            let packed = run_wasmi(&out, &entry.calls);
            assert_same_run(&original, &packed, &what);
            compared += 1;
            changed += usize::from(out != wasm);
            calls += packed.calls.len();
        }
    }
    eprintln!(
        "spec_testsuite: {} modules ({trapped} trap at instantiation), {compared} packings run \
         in wasmi ({changed} changed the bytes), {calls} invocations compared, in {:.1?}",
        entries.len(),
        started.elapsed()
    );
    assert_eq!(compared, WASMI_MODULES * option_sets().len());
    // Nothing vacuous: packing changes some of them, and the scripts'
    // invocations ran.
    assert!(changed >= 60, "only {changed} packings changed a module");
    assert!(calls >= 5_000, "only {calls} invocations compared");
}

#[test]
fn spec_gc_modules_pack_to_modules_that_run_alike_in_wasmtime() {
    let started = std::time::Instant::now();
    let entries: Vec<Entry> = manifest()
        .into_iter()
        .filter(|e| e.runner == Runner::Wasmtime)
        .collect();
    assert_eq!(entries.len(), WASMTIME_MODULES);
    let (mut runs, mut packings, mut changed) = (0, 0, 0);
    let (mut variants, mut variants_merged) = (0, 0);
    for entry in &entries {
        let suite_module = read_module(entry);
        let what = format!("{} ({})", entry.file, entry.origin);
        let mut inputs = vec![(suite_module.clone(), what.clone())];
        if let Some(variant) = activated(&suite_module) {
            inputs.push((variant, format!("{what} with its segments made active")));
            variants += 1;
        }
        for (i, (wasm, what)) in inputs.iter().enumerate() {
            let original = run_wasmtime(wasm, &entry.calls);
            runs += 1;
            assert_eq!(
                original.first().map(String::as_str),
                Some("instantiate: ok"),
                "{what}: {original:?}"
            );
            assert!(
                original.len() > entry.calls.len(),
                "{what}: the runner made fewer calls than asked: {original:?}"
            );
            let mut seen = vec![wasm.clone()];
            for options in option_sets() {
                let what = format!("{what}, packed with {options:?}");
                let (out, _) = pack_with(wasm, &options);
                validate(&out);
                support::statics::assert_same_static_images(
                    wasm,
                    &out,
                    options.zero_filled_imports,
                );
                packings += 1;
                changed += usize::from(out != *wasm);
                if i == 1 && options.max_segments.get() == 1 {
                    // The variant's segments, two bytes apart, must be merged
                    // under a cap of 1, slots named by the code or not.
                    let segments = active_segments(wasm);
                    assert_eq!(
                        active_segments(&out),
                        1,
                        "{what}: {segments} active segments not merged"
                    );
                    if segments > 1 {
                        variants_merged += 1;
                    }
                }
                // The same bytes run the same: each distinct output once.
                if seen.contains(&out) {
                    continue;
                }
                let packed = run_wasmtime(&out, &entry.calls);
                runs += 1;
                assert_eq!(original, packed, "{what}: runs differently in wasmtime");
                seen.push(out);
            }
        }
    }
    eprintln!(
        "spec_testsuite: {} modules and {variants} variants with active segments \
         ({variants_merged} with several, merged into one under a cap of 1), {packings} \
         packings ({changed} changed the bytes), {runs} runs in wasmtime, in {:.1?}",
        entries.len(),
        started.elapsed()
    );
    // Every GC module has its variant; in those with several segments,
    // packing re-packs segments that the code names.
    let gc = entries
        .iter()
        .filter(|e| e.script.starts_with("array"))
        .count();
    assert_eq!((gc, variants), (GC_MODULES, GC_MODULES));
    assert!(
        variants_merged >= 2,
        "only {variants_merged} variants have several segments"
    );
}
