//! wasm-smith modules and components into `segpack::pack_module`: the
//! output must validate and be equivalent to the input.
//!
//! * Modules: bulk memory (passive segments, data count), multi-memory (up to
//!   four), memory64, custom page sizes, extended-const offsets, imported
//!   memories and globals (non-constant offsets), small memories (at most
//!   four 64 KiB pages) so wasmi can run them, overlong LEBs.
//! * Components (`wasm_smith::Component`, one input in eight): nested core
//!   modules are packed; only the static comparison applies.
//!
//! Equivalence is judged by the integration tests' harness: the static
//! image comparison (`assert_same_static_images`: the non-zero bytes of every
//! packable memory's image identical, passive segments identical at their
//! index, a non-packable memory's active segments unchanged) and, for core
//! modules, instantiation in wasmi (every memory's bytes, or both trap).
//! Also: `segpack::verify` agrees, the output is no larger than the input,
//! `pack(pack(x)) == pack(x)`, and the output is the same with one thread.

#![no_main]

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use segpack::ErrorKind;
use segpack_fuzz::support::{self, statics, wasm};
use segpack_fuzz::{OPTION_BYTES, options};
use wasm_smith::{Component, Config, Module};

const PAGE: u64 = 1 << 16;

/// A wasm-smith configuration for data-heavy modules that wasmi can run.
fn config(u: &mut Unstructured<'_>) -> Result<Config> {
    Ok(Config {
        bulk_memory_enabled: true,
        reference_types_enabled: true,
        multi_value_enabled: true,
        extended_const_enabled: true,
        memory64_enabled: u.arbitrary()?,
        custom_page_sizes_enabled: u.ratio(1, 4)?,
        min_memories: u.int_in_range(0..=1)?,
        max_memories: u.int_in_range(1..=4)?,
        max_memory32_bytes: u.int_in_range(0..=4)? * PAGE,
        max_memory64_bytes: u128::from(u.int_in_range(0..=4)? * PAGE),
        min_data_segments: u.int_in_range(0..=4)?,
        max_data_segments: u.int_in_range(4..=40)?,
        max_imports: u.int_in_range(0..=8)?,
        max_globals: 8,
        max_funcs: 8,
        max_instructions: 32,
        min_uleb_size: if u.ratio(1, 8)? {
            u.int_in_range(1..=5)?
        } else {
            1
        },
        // wasmi lacks these; modules using them could only be compared
        // statically.
        gc_enabled: false,
        exceptions_enabled: false,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        threads_enabled: false,
        max_components: 2,
        max_modules: 3,
        max_instances: 3,
        max_nesting_depth: 3,
        ..Config::default()
    })
}

/// Whether `SEGPACK_FUZZ_STATS` is set: then each input prints what
/// packing did (run the target over its corpus with `-runs=0`).
fn stats() -> bool {
    static STATS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STATS.get_or_init(|| std::env::var_os("SEGPACK_FUZZ_STATS").is_some())
}

fn pack(wasm: &[u8], options: &segpack::PackOptions) -> segpack::Result<Vec<u8>> {
    let mut out = Vec::new();
    segpack::pack_module(wasm, &mut out, options)?;
    Ok(out)
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let options = options(u.arbitrary::<[u8; OPTION_BYTES]>()?);
    let component = u.ratio(1, 8)?;
    let config = config(u)?;
    let input = if component {
        Component::new(config, u)?.to_bytes()
    } else {
        Module::new(config, u)?.to_bytes()
    };
    if statics::core_modules(&input).is_empty()
        || wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&input)
            .is_err()
    {
        // Not segpack's business.
        return Ok(());
    }
    let out = match pack(&input, &options) {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::Relocatable => return Ok(()),
        Err(e) => panic!("segpack refuses a valid wasm-smith binary: {e}"),
    };
    if stats() {
        // One line per input, for docs/robustness.md's coverage figures.
        let report = segpack::Plan::new(&input, &options).expect("planned once already");
        let report = report.report();
        eprintln!(
            "segpack-fuzz-stats component={component} modules={} segments={}->{} data_bytes={}->{} changed={} unpacked={}",
            report.modules.len(),
            report.segments_before(),
            report.segments_after(),
            report.data_bytes_before(),
            report.data_bytes_after(),
            report.changed(),
            report
                .modules
                .iter()
                .map(|m| m.unpacked_memories.len())
                .sum::<usize>(),
        );
    }
    statics::assert_validates(&out, "the packed binary");
    statics::assert_same_static_images(&input, &out, options.zero_filled_imports);
    if wasm::is_core_module(&input) {
        // wasmi hands every imported memory in zero-filled, so the
        // comparison holds with or without `zero_filled_imports`.
        support::assert_equivalent(&input, &out);
    }
    assert!(
        out.len() <= input.len(),
        "the output ({} bytes) is larger than the input ({} bytes)",
        out.len(),
        input.len()
    );
    let verify = segpack::VerifyOptions::default().with_zero_filled_imports(options.zero_filled_imports);
    match segpack::verify(&input, &out, &verify) {
        Ok(None) => {}
        Ok(Some(difference)) => panic!("segpack::verify finds a difference: {difference}"),
        Err(e) => panic!("segpack::verify fails: {e}"),
    }
    let twice = pack(&out, &options).expect("segpack accepts its own output");
    assert!(twice == out, "pack(pack(x)) != pack(x)");
    if options.threads != 1 {
        let serial = pack(
            &input,
            &options.clone().with_threads(1),
        )
        .expect("packs with one thread");
        assert!(serial == out, "the output depends on the thread count");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
