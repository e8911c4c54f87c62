//! Differential testing of segpack against the wasmi engine.
//!
//! Every run packs 10,000 generated core modules by default — half of them from
//! `wasm-smith` (often with parts of their segments zeroed, so that there is
//! something to pack), half from a generator below that builds modules full
//! of what segpack cares about: overlapping and erasing segments, zero gaps
//! around the merge threshold, passive segments used by `memory.init` in a
//! start function, several memories, memory64, custom page sizes, offsets
//! through globals and extended-const arithmetic, imported memories and
//! globals, segment names, a data count LEB wider than it needs to be.
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
use support::wasm::{write_bytes, write_sleb, write_uleb};
use support::{Comparison, Outcome, Rng};
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

/// The highest data segment index that code names (`memory.init`,
/// `data.drop`), if any.
fn max_data_index_used(wasm: &[u8]) -> Option<u32> {
    let mut max = None;
    for payload in Parser::new(0).parse_all(wasm) {
        if let Ok(Payload::CodeSectionEntry(body)) = payload {
            let Ok(mut reader) = body.get_operators_reader() else {
                continue;
            };
            while !reader.eof() {
                match reader.read() {
                    Ok(
                        Operator::MemoryInit { data_index, .. } | Operator::DataDrop { data_index },
                    ) => {
                        max = max.max(Some(data_index));
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }
    max
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

/// Runs every check on one module. `rng` picks the cap and whether to try a
/// component.
fn check_module(wasm: &[u8], rng: &mut Rng, tally: &mut Tally) {
    tally.modules += 1;
    let original = support::instantiate(wasm);
    let cap = rng.range(1..=4) as u32;
    let option_sets = [
        PackOptions::default(),
        PackOptions {
            max_segments: cap,
            ..Default::default()
        },
        PackOptions {
            zero_filled_imports: true,
            ..Default::default()
        },
    ];
    let active_in = active_segments(wasm);
    let mut default_output = None;
    let mut changed_any = false;
    for (i, options) in option_sets.iter().enumerate() {
        let what = format!("packing with {options:?}");
        let Some((out, report)) = try_pack(wasm, options) else {
            tally.relocatable += 1;
            return;
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
            &VerifyOptions {
                zero_filled_imports: options.zero_filled_imports,
            },
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
        if active_in <= options.max_segments as usize {
            assert!(
                active_out <= options.max_segments as usize,
                "{what}: {active_in} active segments in, {active_out} out, over the cap"
            );
        }
        if i == 0 {
            default_output = Some(out);
        }
    }
    let default_output = default_output.unwrap();
    if changed_any {
        tally.changed_any += 1;
    }

    if rng.percent(10) {
        // Determinism: one thread gives the same bytes as all cores.
        let (single, _) = try_pack(
            wasm,
            &PackOptions {
                threads: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            single == default_output,
            "one thread gives a different output"
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

/// An unsigned LEB128 padded to `width` bytes.
fn write_uleb_padded(out: &mut Vec<u8>, mut value: u64, width: usize) {
    for i in 0..width {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        out.push(if i + 1 < width { byte | 0x80 } else { byte });
    }
}

/// A signed LEB128 padded to 5 (i32) or 10 (i64) bytes.
fn write_sleb_padded(out: &mut Vec<u8>, value: i64, width: usize) {
    let mut v = value;
    for i in 0..width {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        out.push(if i + 1 < width { byte | 0x80 } else { byte });
    }
}

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

/// A module built from scratch.
fn generated_module(rng: &mut Rng) -> Vec<u8> {
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
            imported: rng.percent(25),
            memory64,
            page_size_log2,
            min,
            max,
        });
    }
    // Imported memories come first in the index space.
    memories.sort_by_key(|m| !m.imported);
    let imported_globals = rng.below(3) as u32;
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
    let wasm = if case.is_multiple_of(2) {
        match smith_module(&mut rng) {
            Some(wasm) => {
                tally.smith += 1;
                wasm
            }
            None => {
                tally.generated += 1;
                generated_module(&mut rng)
            }
        }
    } else {
        tally.generated += 1;
        generated_module(&mut rng)
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
    check_module(&wasm, &mut rng, tally);
}

#[test]
fn packing_generated_modules_changes_nothing_observable() {
    if let Ok(path) = std::env::var("SEGPACK_REPLAY") {
        let wasm = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let tally = std::thread::Builder::new()
            .stack_size(ENGINE_STACK)
            .spawn(move || {
                let mut tally = Tally::default();
                check_module(&wasm, &mut Rng::new(0), &mut tally);
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
