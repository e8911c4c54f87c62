//! Differential testing of segpack against the wasmi engine.
//!
//! Every run packs 10,000 generated core modules by default — half of them from
//! `wasm-smith` (often with parts of their segments zeroed, so that there is
//! something to pack), two fifths from a generator below that builds modules
//! full of what segpack cares about: overlapping and erasing segments, zero
//! gaps around the merge threshold, passive segments used by `memory.init` in
//! a start function, several memories, memory64, custom page sizes, offsets
//! through globals and extended-const arithmetic, imported memories and
//! globals, segment names, a data count LEB wider than it needs to be.
//!
//! The last tenth are Wasm GC modules (issue 13): wasm-smith with GC on,
//! into which the test splices two exported functions whose
//! `array.new_data` and `array.init_data` name data segments (often the last
//! one, often an active one that packing re-packs), so that every one of them
//! names segments through the GC instructions, not only the few where
//! wasm-smith writes one itself. wasmi has no GC: these are validated and
//! compared statically, and a sample without imports or start function runs
//! in wasmtime (original and packed: instantiation, calls of the spliced
//! functions, every memory).
//!
//! Each module is packed three ways (default options, a small
//! `max_segments`, `zero_filled_imports`), and every output must:
//! validate; leave each memory with the same static image
//! ([`support::statics::assert_same_static_images`]); instantiate in wasmi
//! to the same memories, or trap just like the original; pass
//! `segpack::verify`; be a fixed point (`pack(pack(x)) == pack(x)`); be no
//! larger than the input; respect the segment cap when the input did. Some
//! modules are also packed inside a component, which must give the
//! component of the packed module.
//!
//! Environment:
//! * `SEGPACK_SEED=<u64>` replaces the fixed seed; `SEGPACK_SEED=random`
//!   picks one and prints it.
//! * `SEGPACK_CASES=<n>` sets the number of modules (default 10,000).
//! * `SEGPACK_CASE=<n>` runs only case `n` of the seed.
//! * `SEGPACK_REPLAY=<file.wasm>` runs the checks on one file (a failure
//!   writes its input to `target/differential-failure-<seed>-<case>.wasm`).

mod support;

use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use segpack::{ErrorKind, PackOptions, VerifyOptions};
use support::rng::Rng;
use support::wasm::{write_bytes, write_sleb, write_sleb_padded, write_uleb, write_uleb_padded};
use support::{Comparison, Outcome};
use wasmparser::{DataKind, Operator, Parser, Payload, Validator, WasmFeatures};

const DEFAULT_SEED: u64 = 0x5e67_ac00_d1ff_0001;
const DEFAULT_CASES: u64 = 10_000;

/// Stack for the threads that run wasmi: its interpreter recurses once per
/// executed branch when the compiler does not turn its tail calls into
/// jumps (as at the test profile's opt-level), and a start function that
/// loops until it runs out of fuel overflows the default 2 MiB. Only
/// touched pages are ever allocated.
const ENGINE_STACK: usize = 1 << 30;

/// The seed: fixed, or from `SEGPACK_SEED`.
fn seed() -> u64 {
    match std::env::var("SEGPACK_SEED") {
        Err(_) => DEFAULT_SEED,
        Ok(s) if s == "random" => {
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                ^ u64::from(std::process::id()) << 32;
            eprintln!("differential: SEGPACK_SEED={seed}");
            seed
        }
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("SEGPACK_SEED={s:?} is neither a u64 nor `random`")),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}

/// Where failing inputs are written: the cargo target directory.
fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map(PathBuf::from).unwrap_or(tmp)
}

/// The generator of one case: its own stream, so that a case replays alone.
fn case_rng(seed: u64, case: u64) -> Rng {
    let mut rng = Rng::new(seed ^ case.wrapping_mul(0xd134_2543_de82_ef95));
    rng.next_u64();
    rng
}

// ---------------------------------------------------------------------------
// What a case found, for the totals.

#[derive(Debug, Default, Clone)]
struct Tally {
    modules: u64,
    smith: u64,
    generated: u64,
    /// Default packing changed the bytes.
    changed: u64,
    /// Any of the three packings changed the bytes.
    changed_any: u64,
    same_memories: u64,
    both_trapped: u64,
    skipped: u64,
    in_components: u64,
    relocatable: u64,
    /// Packings of modules whose code names data segments by index (once
    /// the bug of `code_may_name_a_repacked_segment`; now checked).
    names_segments: u64,
    /// Wasm GC cases: from wasm-smith with GC on, or generated here (both
    /// with the probes spliced in).
    gc: u64,
    gc_smith: u64,
    gc_generated: u64,
    /// GC modules whose code names a data segment with `array.new_data` or
    /// `array.init_data`.
    gc_naming: u64,
    /// ... of which wasm-smith wrote such an instruction itself.
    gc_naming_by_smith: u64,
    /// Packings of GC modules that re-packed a segment that `array.new_data`
    /// or `array.init_data` names (issue 13's case).
    gc_named_segment_repacked: u64,
    /// Packings of GC modules compared in wasmi (GC modules without GC
    /// types), and compared statically only.
    gc_ran_in_wasmi: u64,
    gc_static_only: u64,
    /// GC modules run in wasmtime, and the distinct packed outputs run there.
    gc_wasmtime_modules: u64,
    gc_wasmtime_outputs: u64,
    /// Time spent running them (a Python process per run).
    gc_wasmtime_time: std::time::Duration,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.modules += other.modules;
        self.smith += other.smith;
        self.generated += other.generated;
        self.changed += other.changed;
        self.changed_any += other.changed_any;
        self.same_memories += other.same_memories;
        self.both_trapped += other.both_trapped;
        self.skipped += other.skipped;
        self.in_components += other.in_components;
        self.relocatable += other.relocatable;
        self.names_segments += other.names_segments;
        self.gc += other.gc;
        self.gc_smith += other.gc_smith;
        self.gc_generated += other.gc_generated;
        self.gc_naming += other.gc_naming;
        self.gc_naming_by_smith += other.gc_naming_by_smith;
        self.gc_named_segment_repacked += other.gc_named_segment_repacked;
        self.gc_ran_in_wasmi += other.gc_ran_in_wasmi;
        self.gc_static_only += other.gc_static_only;
        self.gc_wasmtime_modules += other.gc_wasmtime_modules;
        self.gc_wasmtime_outputs += other.gc_wasmtime_outputs;
        self.gc_wasmtime_time += other.gc_wasmtime_time;
    }
}

// ---------------------------------------------------------------------------
// The checks.

/// Packs `wasm`; `None` when segpack refuses it as relocatable (a random
/// custom section may be called `linking`). Any other error fails.
fn try_pack(wasm: &[u8], options: &PackOptions) -> Option<(Vec<u8>, segpack::PackReport)> {
    let mut out = Vec::new();
    match segpack::pack_module(wasm, &mut out, options) {
        Ok(report) => Some((out, report)),
        Err(e) if e.kind() == ErrorKind::Relocatable => None,
        Err(e) => panic!("segpack refused a valid module with {options:?}: {e}"),
    }
}

/// Active segments in a core module.
fn active_segments(wasm: &[u8]) -> usize {
    let mut count = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        if let Ok(Payload::DataSection(reader)) = payload {
            for data in reader {
                if matches!(data.expect("data parses").kind, DataKind::Active { .. }) {
                    count += 1;
                }
            }
        }
    }
    count
}

/// Data segments in a core module.
fn segment_count(wasm: &[u8]) -> u32 {
    for payload in Parser::new(0).parse_all(wasm) {
        if let Ok(Payload::DataSection(reader)) = payload {
            return reader.count();
        }
    }
    0
}

/// The data segment indices that function bodies name, each with whether
/// the instruction is a GC one (`array.new_data`, `array.init_data`) rather
/// than `memory.init` or `data.drop`.
fn data_indices_named(wasm: &[u8]) -> Vec<(u32, bool)> {
    let mut named = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Ok(Payload::CodeSectionEntry(body)) = payload {
            let Ok(mut reader) = body.get_operators_reader() else {
                continue;
            };
            while !reader.eof() {
                match reader.read() {
                    Ok(
                        Operator::MemoryInit { data_index, .. } | Operator::DataDrop { data_index },
                    ) => named.push((data_index, false)),
                    Ok(
                        Operator::ArrayNewData {
                            array_data_index, ..
                        }
                        | Operator::ArrayInitData {
                            array_data_index, ..
                        },
                    ) => named.push((array_data_index, true)),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
    named
}

/// The highest data segment index that code names (`memory.init`,
/// `data.drop`, `array.new_data`, `array.init_data`), if any.
fn max_data_index_used(wasm: &[u8]) -> Option<u32> {
    data_indices_named(wasm)
        .iter()
        .map(|&(index, _)| index)
        .max()
}

/// Wraps a core module in a component that only declares it.
fn component_of(module: &[u8]) -> Vec<u8> {
    let mut out = b"\0asm\x0d\x00\x01\x00".to_vec();
    out.push(0x01); // core module section
    write_bytes(&mut out, module);
    out
}

fn validates(wasm: &[u8]) -> bool {
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(wasm)
        .is_ok()
}

/// Each data segment's bytes in the file (header and payload), and whether
/// it is active.
fn raw_segments(wasm: &[u8]) -> Vec<(&[u8], bool)> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Ok(Payload::DataSection(reader)) = payload {
            for data in reader {
                let data = data.expect("data parses");
                out.push((
                    &wasm[data.range.start as usize..data.range.end as usize],
                    matches!(data.kind, DataKind::Active { .. }),
                ));
            }
        }
    }
    out
}

/// Runs every check on one module (`gc`: one of the Wasm GC cases, counted
/// apart). `rng` picks the cap and whether to try a component. Returns the
/// outputs of the three packings (none when the module is relocatable).
fn check_module(wasm: &[u8], rng: &mut Rng, tally: &mut Tally, gc: bool) -> Vec<Vec<u8>> {
    tally.modules += 1;
    let original = support::instantiate(wasm);
    let named = data_indices_named(wasm);
    let gc_named: Vec<u32> = named
        .iter()
        .filter(|&&(_, by_gc)| by_gc)
        .map(|&(index, _)| index)
        .collect();
    let segments_in = raw_segments(wasm);
    let mut outputs = Vec::new();
    let cap = rng.range(1..=4) as u32;
    let option_sets = [
        PackOptions::default(),
        PackOptions::default().with_max_segments(segpack::MaxSegments::new(cap).unwrap()),
        PackOptions::default().with_zero_filled_imports(true),
    ];
    let active_in = active_segments(wasm);
    let mut default_output = None;
    let mut changed_any = false;
    for (i, options) in option_sets.iter().enumerate() {
        let what = format!("packing with {options:?}");
        let Some((out, report)) = try_pack(wasm, options) else {
            tally.relocatable += 1;
            return Vec::new();
        };
        assert!(
            out.len() <= wasm.len(),
            "{what}: the output ({} bytes) is larger than the input ({} bytes)",
            out.len(),
            wasm.len()
        );
        if out == wasm {
            assert!(
                !report.changed(),
                "{what}: report says changed, bytes equal"
            );
        } else {
            assert!(report.changed(), "{what}: bytes changed, report says not");
            changed_any = true;
            if i == 0 {
                tally.changed += 1;
            }
        }
        if let Some(needed) = max_data_index_used(wasm) {
            // Code names segment `needed`: its slot must survive packing.
            assert!(
                segment_count(&out) > needed,
                "{what}: code names segment {needed}, which packing removed"
            );
            tally.names_segments += 1;
        }
        if gc {
            // Issue 13's case: a segment that a GC instruction names was
            // active and packing replaced it (its slot must still exist,
            // which validation checks, and hold a segment).
            let segments_out = raw_segments(&out);
            if gc_named.iter().any(|&index| {
                let index = index as usize;
                segments_in[index].1
                    && segments_out.get(index).map(|s| s.0) != Some(segments_in[index].0)
            }) {
                tally.gc_named_segment_repacked += 1;
            }
        }
        support::statics::assert_same_static_images(wasm, &out, options.zero_filled_imports);
        let comparison = match &original {
            // wasmi refuses some valid modules (`global.get` of a defined
            // global in an offset); packing may turn them into ones it runs.
            Outcome::Unsupported(why) => {
                support::assert_validates(&out, "the packed binary");
                Comparison::Skipped(why.clone())
            }
            _ => support::assert_equivalent_to(&original, &out),
        };
        match comparison {
            Comparison::SameMemories | Comparison::BothTrapped if gc => tally.gc_ran_in_wasmi += 1,
            Comparison::Skipped(_) if gc => tally.gc_static_only += 1,
            Comparison::SameMemories => tally.same_memories += 1,
            Comparison::BothTrapped => tally.both_trapped += 1,
            Comparison::Skipped(_why) => {
                if std::env::var_os("SEGPACK_DEBUG_SKIPS").is_some() {
                    eprintln!("skipped: {_why}");
                }
                tally.skipped += 1
            }
        }
        let verdict = segpack::verify(
            wasm,
            &out,
            &VerifyOptions::default().with_zero_filled_imports(options.zero_filled_imports),
        )
        .unwrap_or_else(|e| panic!("{what}: segpack::verify fails: {e}"));
        assert_eq!(verdict, None, "{what}: segpack::verify finds a difference");
        let again = try_pack(&out, options).expect("the output is not relocatable");
        assert!(
            again.0 == out,
            "{what}: packing the output again changes it ({} -> {} bytes)",
            out.len(),
            again.0.len()
        );
        let active_out = active_segments(&out);
        if active_in <= options.max_segments.get() as usize {
            assert!(
                active_out <= options.max_segments.get() as usize,
                "{what}: {active_in} active segments in, {active_out} out, over the cap"
            );
        }
        if i == 0 {
            default_output = Some(out.clone());
        }
        outputs.push(out);
    }
    let default_output = default_output.unwrap();
    if changed_any {
        tally.changed_any += 1;
    }

    if rng.percent(10) {
        // Determinism: all cores give the same bytes as one thread (the default).
        let (all_cores, _) = try_pack(wasm, &PackOptions::default().with_threads(0)).unwrap();
        assert!(
            all_cores == default_output,
            "all cores give a different output than one thread"
        );
    }

    if rng.percent(10) {
        // Inside a component the module is packed just as alone.
        let component = component_of(wasm);
        if validates(&component) {
            tally.in_components += 1;
            let (packed, _) =
                try_pack(&component, &PackOptions::default()).expect("not relocatable");
            support::statics::assert_same_static_images(&component, &packed, false);
            assert!(
                packed == component_of(&default_output),
                "the module packs differently inside a component"
            );
        }
    }
    outputs
}

// ---------------------------------------------------------------------------
// Modules from wasm-smith.

// One setting per line, with the reason beside it.
#[allow(clippy::field_reassign_with_default)]
fn smith_config(rng: &mut Rng) -> wasm_smith::Config {
    let mut c = wasm_smith::Config::default();
    // What wasmi cannot run.
    c.simd_enabled = false;
    c.relaxed_simd_enabled = false;
    c.gc_enabled = false;
    c.exceptions_enabled = false;
    c.threads_enabled = false;
    c.compact_imports_enabled = false;
    c.custom_descriptors_enabled = false;
    c.shared_everything_threads_enabled = false;
    // What segpack cares about.
    c.bulk_memory_enabled = true;
    c.reference_types_enabled = true;
    c.memory64_enabled = rng.percent(60);
    c.extended_const_enabled = true;
    c.custom_page_sizes_enabled = rng.percent(30);
    c.wide_arithmetic_enabled = rng.percent(20);
    c.max_memories = rng.range(1..=4) as usize;
    c.min_memories = u32::from(rng.percent(80));
    // Small memories: instantiation stays cheap.
    let max_bytes = 65536 * rng.range(1..=4);
    c.max_memory32_bytes = max_bytes;
    c.max_memory64_bytes = u128::from(max_bytes);
    c.min_data_segments = rng.range(0..=6) as usize;
    c.max_data_segments = c.min_data_segments + rng.range(0..=30) as usize;
    c.max_funcs = rng.range(0..=4) as usize;
    c.max_instructions = 40;
    // wasmi refuses `global.get` of a defined global in a constant
    // expression, which smith writes often: half the modules have none.
    c.max_globals = if rng.percent(50) {
        0
    } else {
        rng.range(1..=10) as usize
    };
    c.max_types = 8;
    c.max_imports = rng.range(0..=6) as usize;
    c.max_exports = 6;
    c.max_tables = 2;
    c.max_table_elements = 64;
    c.max_elements = 16;
    c.max_element_segments = 4;
    c.max_tags = 2;
    c.max_type_size = 100;
    c.min_uleb_size = if rng.percent(10) {
        rng.range(2..=5) as u8
    } else {
        1
    };
    c.generate_custom_sections = rng.percent(20);
    c.disallow_traps = false;
    c.allow_start_export = true;
    c
}

/// A wasm-smith module (or `None` when smith gives up on its input).
fn smith_module(rng: &mut Rng) -> Option<Vec<u8>> {
    let config = smith_config(rng);
    let mut input = vec![0u8; rng.range(64..=6000) as usize];
    rng.fill(&mut input);
    if rng.percent(30) {
        // Zero bytes make smith pick its first choices: small, dense modules.
        for byte in input.iter_mut() {
            if rng.percent(40) {
                *byte = 0;
            }
        }
    }
    let mut u = arbitrary::Unstructured::new(&input);
    let module = wasm_smith::Module::new(config, &mut u).ok()?;
    let mut wasm = module.to_bytes();
    if rng.percent(70) {
        zero_parts_of_segments(&mut wasm, rng);
    }
    Some(wasm)
}

/// Zeroes random ranges of data segment payloads in place (lengths unchanged,
/// so the module stays valid): smith fills segments with random bytes, which
/// leave nothing to pack.
fn zero_parts_of_segments(wasm: &mut [u8], rng: &mut Rng) {
    let mut payloads = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Ok(Payload::DataSection(reader)) = payload {
            for data in reader.into_iter().flatten() {
                let start = data.data.as_ptr() as usize - wasm.as_ptr() as usize;
                payloads.push(start..start + data.data.len());
            }
        }
    }
    for range in payloads {
        let len = range.len() as u64;
        if len == 0 || rng.percent(30) {
            continue;
        }
        let payload = &mut wasm[range];
        if rng.percent(15) {
            payload.fill(0);
            continue;
        }
        for _ in 0..rng.range(1..=4) {
            let at = rng.below(len) as usize;
            let n = rng.range(1..=len.min(64)) as usize;
            let end = (at + n).min(payload.len());
            payload[at..end].fill(0);
        }
    }
}

// ---------------------------------------------------------------------------
// Wasm GC modules (issue 13): `array.new_data` and `array.init_data` name
// data segments.

/// wasm-smith with GC on, and only what the wasmtime runner
/// (tests/e2e/run_core.py) enables besides: GC, function references,
/// reference types, bulk memory, multi-memory, memory64, and wasmtime's
/// defaults.
// One setting per line, with the reason beside it.
#[allow(clippy::field_reassign_with_default)]
fn gc_smith_config(rng: &mut Rng) -> wasm_smith::Config {
    use wasm_smith::{InstructionKind, InstructionKinds};
    let mut c = wasm_smith::Config::default();
    // GC (it brings function references with it), and what it needs:
    // reference types, and bulk memory for the data count section that
    // `array.new_data` and `array.init_data` require.
    c.gc_enabled = true;
    c.reference_types_enabled = true;
    c.bulk_memory_enabled = true;
    // Off in the wasmtime runner, or not default there.
    c.simd_enabled = false;
    c.relaxed_simd_enabled = false;
    c.exceptions_enabled = false;
    c.threads_enabled = false;
    c.tail_call_enabled = false;
    c.compact_imports_enabled = false;
    c.custom_descriptors_enabled = false;
    c.shared_everything_threads_enabled = false;
    c.custom_page_sizes_enabled = false;
    c.wide_arithmetic_enabled = false;
    c.memory64_enabled = rng.percent(30);
    c.extended_const_enabled = true;
    // Data segments in a memory or two, so that there is something to pack.
    c.min_memories = 1;
    c.max_memories = rng.range(1..=2) as usize;
    let max_bytes = 65536 * rng.range(1..=2);
    c.max_memory32_bytes = max_bytes;
    c.max_memory64_bytes = u128::from(max_bytes);
    c.min_data_segments = rng.range(2..=6) as usize;
    c.max_data_segments = c.min_data_segments + rng.range(0..=12) as usize;
    // Array types and code, so that wasm-smith writes `array.new_data` and
    // `array.init_data` itself now and then; half the time only the kinds
    // of instructions that build their operands.
    c.min_types = 2;
    c.max_types = 12;
    c.min_funcs = 1;
    c.max_funcs = rng.range(1..=6) as usize;
    c.max_instructions = 60;
    if rng.percent(50) {
        c.allowed_instructions = InstructionKinds::new(&[
            InstructionKind::NumericInt,
            InstructionKind::Aggregate,
            InstructionKind::Reference,
            InstructionKind::Variable,
            InstructionKind::Parametric,
            InstructionKind::Control,
            InstructionKind::MemoryInt,
        ]);
    }
    c.max_globals = rng.range(0..=6) as usize;
    // Half without imports and start function: those can run in wasmtime
    // (the runner has no imports to give, and a start function may loop).
    let runnable = rng.percent(50);
    c.max_imports = if runnable {
        0
    } else {
        rng.range(0..=4) as usize
    };
    c.allow_start_export = !runnable;
    c.max_exports = 6;
    c.max_tables = 2;
    c.max_table_elements = 64;
    c.max_elements = 16;
    c.max_element_segments = 4;
    c.max_tags = 0;
    c.max_type_size = 100;
    c.generate_custom_sections = rng.percent(10);
    c.disallow_traps = false;
    c
}

/// What the spliced functions name: the segment that
/// `segpack-probe-new(offset, len)` reads with `array.new_data` (it returns
/// the array's last byte) and the one that `segpack-probe-init(offset, len)`
/// copies with `array.init_data` into an array of 8 bytes (it returns 1),
/// each with its length.
#[derive(Debug, Clone, Copy)]
struct Probes {
    new_data: (u32, u32),
    init_data: (u32, u32),
}

const PROBE_NEW: &str = "segpack-probe-new";
const PROBE_INIT: &str = "segpack-probe-init";

/// Appends a section's new entries to its vector: the count grows by
/// `added`, the old entries stay byte for byte.
fn extend_vector(content: &[u8], added: u64, entries: &[u8]) -> Vec<u8> {
    let mut pos = 0;
    let count = support::wasm::read_uleb(content, &mut pos);
    let mut out = Vec::new();
    write_uleb(&mut out, count + added);
    out.extend_from_slice(&content[pos..]);
    out.extend_from_slice(entries);
    out
}

/// Splices into `wasm` two exported functions, [`PROBE_NEW`] and
/// [`PROBE_INIT`], whose `array.new_data` and `array.init_data` name data
/// segments: half the time the last one (whose slot packing used to drop),
/// otherwise an active one when there is one (what packing re-packs), or any.
/// Two types are appended (`(array (mut i8))` and `(func (param i32 i32)
/// (result i32))`), the functions come after every other function, the
/// exports after every other export: no index in the module moves. `None`
/// when the module has no data segment.
fn splice_probes(wasm: &[u8], rng: &mut Rng) -> Option<(Vec<u8>, Probes)> {
    use support::wasm::{SECTION_DATA_COUNT, SECTION_EXPORT, section_rank, sections};
    const SECTION_TYPE: u8 = 1;
    const SECTION_FUNCTION: u8 = 3;
    const SECTION_CODE: u8 = 10;

    let mut types = 0u64;
    let mut functions = 0u64;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    types += group.ok()?.types().len() as u64;
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import.ok()?.ty, wasmparser::TypeRef::Func(_)) {
                        functions += 1;
                    }
                }
            }
            Payload::FunctionSection(reader) => functions += u64::from(reader.count()),
            Payload::ExportSection(reader) => {
                for export in reader {
                    exports.push(export.ok()?.name.to_string());
                }
            }
            _ => {}
        }
    }
    let segments = raw_segments(wasm);
    if segments.is_empty() {
        return None;
    }
    if exports.iter().any(|e| e == PROBE_NEW || e == PROBE_INIT) {
        return None;
    }
    let lengths: Vec<u32> = data_lengths(wasm);
    let active: Vec<u32> = (0..segments.len() as u32)
        .filter(|&i| segments[i as usize].1)
        .collect();
    let pick = |rng: &mut Rng| -> (u32, u32) {
        let index = if rng.percent(50) {
            segments.len() as u32 - 1
        } else if !active.is_empty() && rng.percent(70) {
            active[rng.below(active.len() as u64) as usize]
        } else {
            rng.below(segments.len() as u64) as u32
        };
        (index, lengths[index as usize])
    };
    let probes = Probes {
        new_data: pick(rng),
        init_data: pick(rng),
    };
    let array_type = types;
    let func_type = types + 1;

    // (type (array (mut i8))) (type (func (param i32 i32) (result i32)))
    let new_types = vec![0x5e, 0x78, 0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f];
    let mut new_functions = Vec::new();
    write_uleb(&mut new_functions, func_type);
    write_uleb(&mut new_functions, func_type);
    // local.get 0, local.get 1, array.new_data, then array.get_u of the
    // last element: local.get 1, i32.const 1, i32.sub.
    let mut new_body = vec![0x00, 0x20, 0x00, 0x20, 0x01, 0xfb, 0x09];
    write_uleb(&mut new_body, array_type);
    write_uleb(&mut new_body, u64::from(probes.new_data.0));
    new_body.extend([0x20, 0x01, 0x41, 0x01, 0x6b, 0xfb, 0x0d]);
    write_uleb(&mut new_body, array_type);
    new_body.push(END);
    // i32.const 8, array.new_default, i32.const 0 (destination),
    // local.get 0 (source), local.get 1 (length), array.init_data,
    // i32.const 1.
    let mut init_body = vec![0x00, 0x41, 0x08, 0xfb, 0x07];
    write_uleb(&mut init_body, array_type);
    init_body.extend([0x41, 0x00, 0x20, 0x00, 0x20, 0x01, 0xfb, 0x12]);
    write_uleb(&mut init_body, array_type);
    write_uleb(&mut init_body, u64::from(probes.init_data.0));
    init_body.extend([0x41, 0x01, END]);
    let mut new_code = Vec::new();
    write_bytes(&mut new_code, &new_body);
    write_bytes(&mut new_code, &init_body);
    let mut new_exports = Vec::new();
    for (name, index) in [(PROBE_NEW, functions), (PROBE_INIT, functions + 1)] {
        write_bytes(&mut new_exports, name.as_bytes());
        new_exports.push(0x00); // a function
        write_uleb(&mut new_exports, index);
    }
    // The sections that get entries (a missing one is created where the
    // section order wants it, with the two entries), in section order; and
    // the data count section, created with the segment count if missing.
    let mut wanted: Vec<(u8, Option<Vec<u8>>)> = vec![
        (SECTION_TYPE, Some(new_types)),
        (SECTION_FUNCTION, Some(new_functions)),
        (SECTION_EXPORT, Some(new_exports)),
        (SECTION_DATA_COUNT, None),
        (SECTION_CODE, Some(new_code)),
    ];
    let create = |id: u8, entries: Option<Vec<u8>>| -> (u8, Vec<u8>) {
        let mut content = Vec::new();
        match entries {
            Some(entries) => {
                write_uleb(&mut content, 2);
                content.extend(entries);
            }
            None => write_uleb(&mut content, segments.len() as u64),
        }
        (id, content)
    };
    let mut rebuilt: Vec<(u8, Vec<u8>)> = Vec::new();
    for section in sections(wasm) {
        if let Some(rank) = section_rank(section.id) {
            while wanted
                .first()
                .is_some_and(|(id, _)| section_rank(*id).unwrap() < rank)
            {
                let (id, entries) = wanted.remove(0);
                rebuilt.push(create(id, entries));
            }
        }
        match wanted.first() {
            Some((id, entries)) if *id == section.id => {
                let content = match entries {
                    Some(entries) => extend_vector(section.content, 2, entries),
                    None => section.content.to_vec(),
                };
                rebuilt.push((section.id, content));
                wanted.remove(0);
            }
            _ => rebuilt.push((section.id, section.content.to_vec())),
        }
    }
    assert!(wanted.is_empty(), "a module with data has a data section");
    let out = support::wasm::assemble(rebuilt.iter().map(|(id, c)| (*id, c.as_slice())));
    Some((out, probes))
}

/// Each data segment's payload length.
fn data_lengths(wasm: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Ok(Payload::DataSection(reader)) = payload {
            for data in reader {
                out.push(data.expect("data parses").data.len() as u32);
            }
        }
    }
    out
}

/// Where a GC case's module comes from.
#[derive(Debug, Clone, Copy)]
enum GcSource {
    /// wasm-smith with GC; `naming`: it wrote `array.new_data` or
    /// `array.init_data` itself.
    Smith { naming: bool },
    /// [`generated_module`].
    Generated,
}

/// Which case of every ten is a GC one.
const GC_CASE: u64 = 9;

/// The percentage of GC cases that run in wasmtime when they can (about a
/// fifth of them can: no imports, no loop in a start function, and packing
/// changed them). Each run is a Python process of 0.1-0.4 s.
const WASMTIME_PERCENT: u64 = 8;

/// A GC case, with the probes spliced in: half the time a wasm-smith module
/// with GC, parts of its segments zeroed (wasm-smith's segments are mostly
/// passive and tiny, its memories often empty: little to pack), otherwise
/// one of this test's generated modules (dense active segments, which
/// packing re-packs). Also says whether wasm-smith wrote `array.new_data` or
/// `array.init_data` itself. `None` when smith gives up on its input.
fn gc_module(rng: &mut Rng) -> Option<(Vec<u8>, Option<Probes>, GcSource)> {
    if rng.percent(50) {
        // Half of them without imports, so that wasmtime can run them.
        let imports = rng.percent(50);
        let wasm = generated_module(rng, imports);
        return Some(match splice_probes(&wasm, rng) {
            Some((spliced, probes)) => (spliced, Some(probes), GcSource::Generated),
            None => (wasm, None, GcSource::Generated),
        });
    }
    let config = gc_smith_config(rng);
    let mut input = vec![0u8; rng.range(256..=8000) as usize];
    rng.fill(&mut input);
    let mut u = arbitrary::Unstructured::new(&input);
    let module = wasm_smith::Module::new(config, &mut u).ok()?;
    let mut wasm = module.to_bytes();
    if rng.percent(80) {
        zero_parts_of_segments(&mut wasm, rng);
    }
    let source = GcSource::Smith {
        naming: data_indices_named(&wasm).iter().any(|&(_, by_gc)| by_gc),
    };
    match splice_probes(&wasm, rng) {
        Some((spliced, probes)) => Some((spliced, Some(probes), source)),
        None => Some((wasm, None, source)),
    }
}

/// Whether wasmtime can run `wasm` as the runner does: no imports (it gives
/// none) and, unless `start_allowed` (the generated modules' start functions
/// have no loops), no start function (wasm-smith's may loop forever; the
/// runner has no fuel), and no custom page sizes.
fn runnable_in_wasmtime(wasm: &[u8], start_allowed: bool) -> bool {
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::ImportSection(reader)) if reader.count() > 0 => return false,
            Ok(Payload::StartSection { .. }) if !start_allowed => return false,
            // The runner does not enable custom page sizes.
            Ok(Payload::MemorySection(reader))
                if reader
                    .clone()
                    .into_iter()
                    .any(|m| m.map_or(true, |m| m.page_size_log2.is_some())) =>
            {
                return false;
            }
            Err(_) => return false,
            _ => {}
        }
    }
    true
}

/// Runs `original` and each distinct output in wasmtime with every memory
/// exported (the harness's rewrite, the same for all), calling the probes;
/// every line (instantiation, each call's result or trap, each memory's
/// hash) must be the same.
fn compare_in_wasmtime(original: &[u8], outputs: &[Vec<u8>], probes: Probes, tally: &mut Tally) {
    let run = |wasm: &[u8]| {
        let (wasm, _) = support::engine::export_all_memories(wasm).expect("memories exported");
        let (_, new_len) = probes.new_data;
        let (_, init_len) = probes.init_data;
        let new_len = new_len.min(i32::MAX as u32) as i32;
        let init_len = init_len.min(8) as i32;
        let calls: Vec<(&str, Vec<i32>)> = vec![
            (PROBE_NEW, vec![0, 1]),
            (PROBE_NEW, vec![0, new_len]),
            (PROBE_NEW, vec![new_len / 2, 1]),
            (PROBE_INIT, vec![0, 0]),
            (PROBE_INIT, vec![0, init_len]),
        ];
        let calls: Vec<(&str, &[i32])> = calls.iter().map(|(n, a)| (*n, a.as_slice())).collect();
        support::python::run_in_wasmtime(&wasm, &calls)
    };
    let before = run(original);
    assert!(
        before.len() >= 6 || before[0].starts_with("instantiate: trap"),
        "the wasmtime runner called nothing: {before:?}"
    );
    tally.gc_wasmtime_modules += 1;
    let mut seen: Vec<&[u8]> = vec![original];
    for out in outputs {
        if seen.contains(&out.as_slice()) {
            continue;
        }
        seen.push(out);
        tally.gc_wasmtime_outputs += 1;
        let after = run(out);
        assert_eq!(
            before, after,
            "wasmtime: the packed module behaves differently"
        );
    }
}

// ---------------------------------------------------------------------------
// Modules built here: what segpack has to get right, densely.

#[derive(Debug, Clone)]
struct Memory {
    imported: bool,
    memory64: bool,
    page_size_log2: Option<u32>,
    min: u64,
    max: Option<u64>,
}

impl Memory {
    fn min_bytes(&self) -> u64 {
        self.min << self.page_size_log2.unwrap_or(16)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum GlobalKind {
    Imported,
    Defined,
}

struct Builder<'r> {
    rng: &'r mut Rng,
    memories: Vec<Memory>,
    /// (kind, is_i64, init expression for defined globals, constant value).
    globals: Vec<(GlobalKind, bool, Vec<u8>, Option<i64>)>,
    imported_globals: u32,
    /// Whether offsets may read defined globals.
    defined_global_offsets: bool,
    segments: Vec<u8>,
    segment_count: u32,
    /// Per segment: passive, length.
    segment_info: Vec<(bool, u32)>,
    /// (memory, offset, len) of the active segments placed so far.
    placed: Vec<(u32, u64, u64)>,
}

const I32_CONST: u8 = 0x41;
const I64_CONST: u8 = 0x42;
const GLOBAL_GET: u8 = 0x23;
const END: u8 = 0x0b;

impl Builder<'_> {
    fn const_expr(&mut self, memory64: bool, value: i64) -> Vec<u8> {
        let mut e = Vec::new();
        e.push(if memory64 { I64_CONST } else { I32_CONST });
        if self.rng.percent(5) {
            write_sleb_padded(&mut e, value, if memory64 { 10 } else { 5 });
        } else {
            write_sleb(&mut e, value);
        }
        e
    }

    /// A defined immutable global holding `value`; returns its index.
    fn global_with(&mut self, memory64: bool, value: i64) -> u32 {
        let mut init = if self.rng.percent(30) {
            self.arithmetic(memory64, value)
        } else {
            self.const_expr(memory64, value)
        };
        init.push(END);
        self.globals
            .push((GlobalKind::Defined, memory64, init, Some(value)));
        self.globals.len() as u32 - 1
    }

    /// Extended-const arithmetic that computes `value` (wrapping as i32 for
    /// 32-bit memories), without the trailing `end`.
    fn arithmetic(&mut self, memory64: bool, value: i64) -> Vec<u8> {
        let (add, sub, mul) = if memory64 {
            (0x7c, 0x7d, 0x7e)
        } else {
            (0x6a, 0x6b, 0x6c)
        };
        let wrap = |v: i64| if memory64 { v } else { i64::from(v as i32) };
        let mut e = Vec::new();
        match self.rng.below(3) {
            0 => {
                let a = wrap(self.rng.next_u64() as i64 >> self.rng.below(60));
                let b = wrap(value.wrapping_sub(a));
                e.extend(self.const_expr(memory64, a));
                e.extend(self.const_expr(memory64, b));
                e.push(add);
            }
            1 => {
                let b = wrap(self.rng.below(1 << 20) as i64);
                let a = wrap(value.wrapping_add(b));
                e.extend(self.const_expr(memory64, a));
                e.extend(self.const_expr(memory64, b));
                e.push(sub);
            }
            _ => {
                let f = self.rng.range(1..=64) as i64;
                let q = value / f;
                let r = wrap(value - q * f);
                e.extend(self.const_expr(memory64, q));
                e.extend(self.const_expr(memory64, f));
                e.push(mul);
                e.extend(self.const_expr(memory64, r));
                e.push(add);
            }
        }
        e
    }

    /// An offset expression (with `end`) that evaluates to `offset`, or, when
    /// `dynamic`, one that reads an imported global.
    fn offset_expr(&mut self, memory64: bool, offset: u64, dynamic: bool) -> Vec<u8> {
        let value = if memory64 {
            offset as i64
        } else {
            i64::from(offset as u32 as i32)
        };
        let mut e = Vec::new();
        if dynamic {
            let imported: Vec<u32> = (0..self.imported_globals)
                .filter(|&g| self.globals[g as usize].1 == memory64)
                .collect();
            if let Some(&g) = imported.get(self.rng.below(imported.len().max(1) as u64) as usize) {
                e.push(GLOBAL_GET);
                write_uleb(&mut e, u64::from(g));
                if self.rng.percent(50) {
                    e.extend(self.const_expr(memory64, value));
                    e.push(if memory64 { 0x7c } else { 0x6a });
                }
                e.push(END);
                return e;
            }
        }
        // wasmi refuses `global.get` of a defined global in an offset, so
        // only some modules use them: the others are run in the engine.
        let choice = if self.defined_global_offsets {
            self.rng.below(100)
        } else {
            [0, 90][self.rng.below(2) as usize]
        };
        match choice {
            0..55 => e.extend(self.const_expr(memory64, value)),
            55..75 => {
                let g = self.global_with(memory64, value);
                e.push(GLOBAL_GET);
                write_uleb(&mut e, u64::from(g));
            }
            75..85 => {
                // global.get of a global plus a constant.
                let part = if memory64 {
                    value.wrapping_sub(self.rng.below(256) as i64)
                } else {
                    i64::from((value as i32).wrapping_sub(self.rng.below(256) as i32))
                };
                let g = self.global_with(memory64, part);
                e.push(GLOBAL_GET);
                write_uleb(&mut e, u64::from(g));
                let rest = if memory64 {
                    value.wrapping_sub(part)
                } else {
                    i64::from((value as i32).wrapping_sub(part as i32))
                };
                e.extend(self.const_expr(memory64, rest));
                e.push(if memory64 { 0x7c } else { 0x6a });
            }
            _ => e.extend(self.arithmetic(memory64, value)),
        }
        e.push(END);
        e
    }

    /// Bytes for a segment of `len` bytes in one of several shapes.
    fn payload(&mut self, len: usize) -> Vec<u8> {
        let rng = &mut *self.rng;
        let mut data = vec![0u8; len];
        if len == 0 {
            return data;
        }
        let nonzero = |rng: &mut Rng| rng.range(1..=255) as u8;
        match rng.below(100) {
            // Zeros with a few runs of non-zero bytes.
            0..35 => {
                for _ in 0..rng.range(0..=6) {
                    let at = rng.below(len as u64) as usize;
                    let n = rng.range(1..=40) as usize;
                    for b in data.iter_mut().skip(at).take(n) {
                        *b = nonzero(rng);
                    }
                }
            }
            // Non-zero bytes with holes of zeros.
            35..50 => {
                for b in data.iter_mut() {
                    *b = nonzero(rng);
                }
                for _ in 0..rng.range(1..=8) {
                    let at = rng.below(len as u64) as usize;
                    let n = rng.range(1..=30) as usize;
                    let end = (at + n).min(len);
                    data[at..end].fill(0);
                }
            }
            // All zeros: erases what earlier segments wrote.
            50..65 => {}
            // Random bytes.
            65..75 => rng.fill(&mut data),
            // Short runs and gaps around the merge threshold.
            _ => {
                let mut at = rng.below(8) as usize;
                while at < len {
                    let run = rng.range(1..=6) as usize;
                    for b in data.iter_mut().skip(at).take(run) {
                        *b = nonzero(rng);
                    }
                    at += run + rng.range(1..=12) as usize;
                }
            }
        }
        data
    }

    fn segment_len(&mut self) -> u64 {
        match self.rng.below(100) {
            0..5 => 0,
            5..75 => self.rng.range(1..=300),
            75..95 => self.rng.range(300..=4096),
            _ => self.rng.range(4096..=70_000),
        }
    }

    fn add_active(&mut self, memory: u32) {
        let mem = self.memories[memory as usize].clone();
        let size = mem.min_bytes();
        let mut len = self.segment_len();
        let out_of_bounds = self.rng.percent(3);
        let offset = if out_of_bounds {
            match self.rng.below(3) {
                0 => size.saturating_sub(len) + 1,
                1 => size + self.rng.below(100),
                _ if mem.memory64 => u64::MAX - self.rng.below(16),
                _ => u64::from(u32::MAX) - self.rng.below(16),
            }
        } else {
            len = len.min(size);
            let room = size - len;
            let near: Vec<(u64, u64)> = self
                .placed
                .iter()
                .filter(|p| p.0 == memory)
                .map(|p| (p.1, p.2))
                .collect();
            if !near.is_empty() && self.rng.percent(40) {
                let (at, plen) = near[self.rng.below(near.len() as u64) as usize];
                let jitter = self.rng.below(2 * 40 + plen) as i64 - 40;
                (at as i64 + jitter).clamp(0, room as i64) as u64
            } else if size > 1 << 20 && self.rng.percent(50) {
                // Across the boundary of two 1 MiB scanning jobs.
                let at = (1u64 << 20).saturating_sub(self.rng.below(len + 64));
                at.min(room)
            } else if self.rng.percent(20) {
                let align = [8u64, 4096, 65536][self.rng.below(3) as usize];
                (self.rng.below(room + 1) / align * align).min(room)
            } else {
                self.rng.below(room + 1)
            }
        };
        let dynamic = self.imported_globals > 0 && self.rng.percent(6);
        let expr = self.offset_expr(mem.memory64, offset, dynamic);
        let data = self.payload(len as usize);
        if memory == 0 && self.rng.percent(85) {
            self.segments.push(0);
        } else {
            self.segments.push(2);
            write_uleb(&mut self.segments, u64::from(memory));
        }
        self.segments.extend(expr);
        write_bytes(&mut self.segments, &data);
        self.segment_count += 1;
        self.segment_info.push((false, len as u32));
        self.placed.push((memory, offset, len));
    }

    fn add_passive(&mut self) {
        let len = self.segment_len().min(5000);
        let data = self.payload(len as usize);
        self.segments.push(1);
        write_bytes(&mut self.segments, &data);
        self.segment_count += 1;
        self.segment_info.push((true, len as u32));
    }
}

fn limits(out: &mut Vec<u8>, m: &Memory) {
    let mut flags = 0u8;
    if m.max.is_some() {
        flags |= 1;
    }
    if m.memory64 {
        flags |= 4;
    }
    if m.page_size_log2.is_some() {
        flags |= 8;
    }
    out.push(flags);
    write_uleb(out, m.min);
    if let Some(max) = m.max {
        write_uleb(out, max);
    }
    if let Some(log2) = m.page_size_log2 {
        write_uleb(out, u64::from(log2));
    }
}

/// A module built from scratch; without imports unless `imports`.
fn generated_module(rng: &mut Rng, imports: bool) -> Vec<u8> {
    let memory_count = rng.range(1..=3);
    let mut memories = Vec::new();
    for _ in 0..memory_count {
        let page_size_log2 = if rng.percent(15) {
            Some(if rng.percent(80) { 0 } else { 16 })
        } else {
            None
        };
        let memory64 = rng.percent(30);
        let min = match page_size_log2 {
            Some(0) => rng.below(6000),
            // 17 pages: past the 1 MiB jobs that segpack scans in parallel.
            _ if rng.percent(5) => 17,
            _ => [0, 1, 1, 1, 2, 3][rng.below(6) as usize],
        };
        let max = rng.percent(40).then(|| min + rng.below(3));
        memories.push(Memory {
            imported: rng.percent(25) && imports,
            memory64,
            page_size_log2,
            min,
            max,
        });
    }
    // Imported memories come first in the index space.
    memories.sort_by_key(|m| !m.imported);
    let imported_globals = rng.below(3) as u32 * u32::from(imports);
    let defined_global_offsets = rng.percent(25);
    let mut builder = Builder {
        rng,
        memories,
        globals: Vec::new(),
        imported_globals,
        defined_global_offsets,
        segments: Vec::new(),
        segment_count: 0,
        segment_info: Vec::new(),
        placed: Vec::new(),
    };
    for _ in 0..imported_globals {
        let i64 = builder.rng.percent(40);
        builder
            .globals
            .push((GlobalKind::Imported, i64, Vec::new(), None));
    }
    let segments = builder.rng.range(0..=24);
    for _ in 0..segments {
        if builder.rng.percent(15) {
            builder.add_passive();
        } else {
            let memory = builder.rng.below(memory_count) as u32;
            builder.add_active(memory);
        }
    }

    let rng = &mut *builder.rng;
    let mut sections: Vec<(u8, Vec<u8>)> = Vec::new();
    let start = rng.percent(40) && builder.segment_count > 0;
    if start {
        let mut types = Vec::new();
        write_uleb(&mut types, 1);
        types.extend([0x60, 0, 0]);
        sections.push((1, types));
    }
    // Imports.
    let imported_memories: Vec<&Memory> = builder.memories.iter().filter(|m| m.imported).collect();
    if !imported_memories.is_empty() || imported_globals > 0 {
        let mut imports = Vec::new();
        write_uleb(
            &mut imports,
            imported_memories.len() as u64 + u64::from(imported_globals),
        );
        for (i, m) in imported_memories.iter().enumerate() {
            write_bytes(&mut imports, b"env");
            write_bytes(&mut imports, format!("memory{i}").as_bytes());
            imports.push(0x02);
            limits(&mut imports, m);
        }
        for g in 0..imported_globals {
            write_bytes(&mut imports, b"env");
            write_bytes(&mut imports, format!("global{g}").as_bytes());
            imports.push(0x03);
            imports.push(if builder.globals[g as usize].1 {
                0x7e
            } else {
                0x7f
            });
            imports.push(0);
        }
        sections.push((2, imports));
    }
    if start {
        sections.push((3, vec![1, 0]));
    }
    let defined: Vec<&Memory> = builder.memories.iter().filter(|m| !m.imported).collect();
    if !defined.is_empty() {
        let mut mems = Vec::new();
        write_uleb(&mut mems, defined.len() as u64);
        for m in &defined {
            limits(&mut mems, m);
        }
        sections.push((5, mems));
    }
    let defined_globals: Vec<_> = builder
        .globals
        .iter()
        .filter(|g| g.0 == GlobalKind::Defined)
        .collect();
    if !defined_globals.is_empty() {
        let mut globals = Vec::new();
        write_uleb(&mut globals, defined_globals.len() as u64);
        for g in &defined_globals {
            globals.push(if g.1 { 0x7e } else { 0x7f });
            globals.push(0);
            globals.extend_from_slice(&g.2);
        }
        sections.push((6, globals));
    }
    if start {
        sections.push((8, vec![0]));
    }
    if start || rng.percent(40) {
        let mut count = Vec::new();
        if rng.percent(25) {
            write_uleb_padded(&mut count, u64::from(builder.segment_count), 5);
        } else {
            write_uleb(&mut count, u64::from(builder.segment_count));
        }
        sections.push((12, count));
    }
    if start {
        // memory.init and data.drop of random segments, passive or not.
        let mut body = vec![0u8]; // no locals
        for _ in 0..rng.range(1..=4) {
            let passive: Vec<u32> = (0..builder.segment_count)
                .filter(|&i| builder.segment_info[i as usize].0)
                .collect();
            let segment = if !passive.is_empty() && rng.percent(95) {
                passive[rng.below(passive.len() as u64) as usize]
            } else {
                rng.below(u64::from(builder.segment_count)) as u32
            };
            let (passive, len) = builder.segment_info[segment as usize];
            if rng.percent(20) {
                body.extend([0xfc, 9]);
                write_uleb(&mut body, u64::from(segment));
                continue;
            }
            let memory = rng.below(memory_count) as u32;
            let mem = &builder.memories[memory as usize];
            let n = if passive && rng.percent(80) {
                rng.below(u64::from(len) + 1)
            } else {
                rng.below(2)
            };
            let src = rng.below(u64::from(len).saturating_sub(n) + 1);
            let dst = rng.below(mem.min_bytes().saturating_sub(n) + 1);
            body.push(if mem.memory64 { I64_CONST } else { I32_CONST });
            write_sleb(&mut body, dst as i64);
            body.push(I32_CONST);
            write_sleb(&mut body, src as i64);
            body.push(I32_CONST);
            write_sleb(&mut body, n as i64);
            body.extend([0xfc, 8]);
            write_uleb(&mut body, u64::from(segment));
            write_uleb(&mut body, u64::from(memory));
        }
        body.push(END);
        let mut code = Vec::new();
        write_uleb(&mut code, 1);
        write_bytes(&mut code, &body);
        sections.push((10, code));
    }
    if builder.segment_count > 0 || rng.percent(50) {
        let mut data = Vec::new();
        write_uleb(&mut data, u64::from(builder.segment_count));
        data.extend_from_slice(&builder.segments);
        sections.push((11, data));
    }
    if rng.percent(30) && builder.segment_count > 0 {
        let mut names = Vec::new();
        write_bytes(&mut names, b"name");
        let mut map = Vec::new();
        let named: Vec<u32> = (0..builder.segment_count)
            .filter(|_| rng.percent(60))
            .collect();
        write_uleb(&mut map, named.len() as u64);
        for i in named {
            write_uleb(&mut map, u64::from(i));
            write_bytes(&mut map, format!("seg{i}").as_bytes());
        }
        names.push(9);
        write_bytes(&mut names, &map);
        sections.push((0, names));
    }
    support::wasm::assemble(sections.iter().map(|(id, c)| (*id, c.as_slice())))
}

// ---------------------------------------------------------------------------
// Driving.

/// Builds case `case` of `seed` and checks it. Returns the module (for the
/// failure file) through `module` before checking.
fn run_case(seed: u64, case: u64, module: &mut Vec<u8>, tally: &mut Tally) {
    let mut rng = case_rng(seed, case);
    let mut gc = None;
    let wasm = if case % 10 == GC_CASE {
        match gc_module(&mut rng) {
            Some((wasm, probes, source)) => {
                tally.gc += 1;
                let gc_named = data_indices_named(&wasm).iter().any(|&(_, by_gc)| by_gc);
                tally.gc_naming += u64::from(gc_named);
                match source {
                    GcSource::Smith { naming } => {
                        tally.gc_smith += 1;
                        tally.gc_naming_by_smith += u64::from(naming);
                    }
                    GcSource::Generated => tally.gc_generated += 1,
                }
                gc = Some((probes, source));
                wasm
            }
            None => {
                tally.generated += 1;
                generated_module(&mut rng, true)
            }
        }
    } else if case.is_multiple_of(2) {
        match smith_module(&mut rng) {
            Some(wasm) => {
                tally.smith += 1;
                wasm
            }
            None => {
                tally.generated += 1;
                generated_module(&mut rng, true)
            }
        }
    } else {
        tally.generated += 1;
        generated_module(&mut rng, true)
    };
    module.clone_from(&wasm);
    if std::env::var_os("SEGPACK_CASE").is_some() {
        // One case: keep its input, in case it aborts the process.
        let file = target_dir().join(format!("differential-case-{seed}-{case}.wasm"));
        std::fs::write(&file, &wasm).unwrap();
        eprintln!("differential: case {case} is {}", file.display());
    }
    if let Err(e) = Validator::new_with_features(WasmFeatures::all()).validate_all(&wasm) {
        panic!("the test's generator made an invalid module: {e}");
    }
    let outputs = check_module(&wasm, &mut rng, tally, gc.is_some());
    if let Some((Some(probes), source)) = gc {
        // A sample of the GC modules runs in wasmtime: a Python process per
        // run, so not all of them (every one when a single case runs).
        // Only modules that packing changed: the same bytes run the same.
        let sampled = rng.percent(WASMTIME_PERCENT) || std::env::var_os("SEGPACK_CASE").is_some();
        let start_allowed = matches!(source, GcSource::Generated);
        if sampled
            && outputs.iter().any(|out| *out != wasm)
            && runnable_in_wasmtime(&wasm, start_allowed)
        {
            let started = std::time::Instant::now();
            compare_in_wasmtime(&wasm, &outputs, probes, tally);
            tally.gc_wasmtime_time += started.elapsed();
        }
    }
}

#[test]
fn packing_generated_modules_changes_nothing_observable() {
    if let Ok(path) = std::env::var("SEGPACK_REPLAY") {
        let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let tally = std::thread::Builder::new()
            .stack_size(ENGINE_STACK)
            .spawn(move || {
                let mut tally = Tally::default();
                let gc = data_indices_named(&wasm).iter().any(|&(_, by_gc)| by_gc);
                check_module(&wasm, &mut Rng::new(0), &mut tally, gc);
                tally
            })
            .unwrap()
            .join()
            .unwrap_or_else(|e| panic::resume_unwind(e));
        eprintln!("replayed {path}: {tally:?}");
        return;
    }
    let seed = seed();
    let (first, cases) = match env_u64("SEGPACK_CASE") {
        Some(case) => (case, 1),
        None => (0, env_u64("SEGPACK_CASES").unwrap_or(DEFAULT_CASES)),
    };
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let trace = std::env::var_os("SEGPACK_TRACE").is_some();
    let next = AtomicU64::new(first);
    let failed = AtomicBool::new(false);
    let failures = Mutex::new(Vec::new());
    let total = Mutex::new(Tally::default());
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let worker = std::thread::Builder::new().stack_size(ENGINE_STACK);
            worker.spawn_scoped(scope, || {
                let mut tally = Tally::default();
                loop {
                    let case = next.fetch_add(1, Ordering::Relaxed);
                    if case >= first + cases || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    if trace {
                        eprintln!("differential: case {case}");
                    }
                    let mut module = Vec::new();
                    let result = panic::catch_unwind(AssertUnwindSafe(|| {
                        run_case(seed, case, &mut module, &mut tally)
                    }));
                    if let Err(payload) = result {
                        failed.store(true, Ordering::Relaxed);
                        let message = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        let file = target_dir()
                            .join(format!("differential-failure-{seed}-{case}.wasm"));
                        let saved = std::fs::write(&file, &module);
                        failures.lock().unwrap().push(format!(
                            "seed {seed}, case {case}: {message}\n  input: {} ({})\n  replay: SEGPACK_SEED={seed} SEGPACK_CASE={case} cargo test --test differential, or SEGPACK_REPLAY={}",
                            file.display(),
                            match saved {
                                Ok(()) => format!("{} bytes", module.len()),
                                Err(e) => format!("not written: {e}"),
                            },
                            file.display(),
                        ));
                    }
                }
                total.lock().unwrap().add(&tally);
            })
            .expect("worker thread");
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        panic!("differential testing failed:\n{}", failures.join("\n"));
    }
    let t = total.into_inner().unwrap();
    eprintln!(
        "differential: seed {seed}, {cases} cases in {:.1?}: {t:?}",
        started.elapsed()
    );
    if cases >= 100 {
        assert!(
            t.modules >= cases * 9 / 10,
            "only {} of {cases} modules were checked (relocatable: {})",
            t.modules - t.relocatable,
            t.relocatable
        );
        assert!(
            t.changed * 5 >= t.modules,
            "only {} of {} modules changed when packed: the test exercises too little",
            t.changed,
            t.modules
        );
        assert!(
            t.smith * 4 >= cases,
            "only {} of {cases} modules came from wasm-smith",
            t.smith
        );
        let compared = t.same_memories + t.both_trapped;
        assert!(
            compared * 2 >= t.same_memories + t.both_trapped + t.skipped,
            "wasmi ran too few of the packings: {t:?}"
        );
        assert!(
            t.same_memories > t.both_trapped,
            "most instantiations trapped: {t:?}"
        );
        // The GC cases (issue 13): about a tenth, nearly all naming data
        // segments through `array.new_data` and `array.init_data`, many of
        // them re-packing a named segment.
        assert!(t.gc * 12 >= cases, "only {} GC cases: {t:?}", t.gc);
        assert!(
            t.gc_naming * 10 >= t.gc * 9,
            "only {} of {} GC modules name a data segment with a GC instruction",
            t.gc_naming,
            t.gc
        );
        assert!(
            t.gc_named_segment_repacked * 4 >= t.gc,
            "only {} packings of {} GC modules re-packed a segment a GC instruction names",
            t.gc_named_segment_repacked,
            t.gc
        );
    }
    if cases >= 5_000 {
        // About 20 are expected at 10,000 cases; fewer means the sample
        // stopped working.
        assert!(
            t.gc_wasmtime_outputs >= cases / 2_000,
            "only {} packed GC modules ran in wasmtime: {t:?}",
            t.gc_wasmtime_outputs
        );
    }
}

/// Regression: code may name an *active* segment (`data.drop` of one is
/// valid, as is a zero-length `memory.init`; wasm-smith writes both). Packing
/// merges the two active segments into one and removes slot 1, which the
/// code still names: the output does not validate (SPEC §3: "Every output
/// validates"). The slot rule only keeps slots up to the last *kept*
/// segment; it would have to keep every slot the code names (or every slot
/// when there is a data count section, which such code requires).
#[test]
fn code_may_name_a_repacked_segment() {
    let wasm = wat::parse_str(
        r#"(module (memory 1)
            (data (i32.const 0) "a")
            (data (i32.const 1) "b")
            (func data.drop 1))"#,
    )
    .unwrap();
    support::assert_validates(&wasm, "the original");
    let out = support::pack(&wasm, &PackOptions::default());
    support::assert_equivalent(&wasm, &out);
    support::statics::assert_same_static_images(&wasm, &out, false);
}

/// Regression: a later segment that starts with zeros, written over the
/// middle of an earlier one, leaves a gap of 6 zeros between two runs of
/// non-zero bytes. A new segment header there costs 7 bytes (`i32.const
/// 206`, a 2-byte length), so merging saves a byte, and segpack does merge
/// the same image when it comes as two plain segments. From the overlapping
/// segments it does not: `pack(x)` is one byte larger than `pack(pack(x))`
/// (SPEC §1.3 `pack(pack(x)) == pack(x)`; §4 the smallest data section).
#[test]
fn packing_twice_gains_nothing() {
    let wasm = wat::parse_str(format!(
        r#"(module (memory 1)
            (data (i32.const 0) "{}")
            (data (i32.const 200) "{}{}"))"#,
        "x".repeat(400),
        "\\00".repeat(6),
        "y".repeat(10)
    ))
    .unwrap();
    let once = support::pack(&wasm, &PackOptions::default());
    let twice = support::pack(&once, &PackOptions::default());
    assert_eq!(
        once.len(),
        twice.len(),
        "packing the packed module again saves bytes"
    );
    assert_eq!(once, twice);
}
