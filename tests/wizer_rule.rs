//! segpack's data section is never larger than Wizer's packing rule at the
//! same cap (SPEC §4), on the corpus and on generated snapshots, at every
//! cap from 1 to the engines' limit. Wizer's rule: `support::wizer`.

mod support;

use segpack::{MaxSegments, PackOptions};
use support::read::data_section_len;
use support::statics::{ModuleInfo, core_modules};
use support::wizer::wizer_data_section_len;

/// The caps the corpus and the snapshots are swept at (issue 23).
const CAPS: [u32; 9] = [1, 2, 10, 100, 1_000, 10_000, 20_000, 50_000, 100_000];

/// Compares segpack with Wizer's rule at every cap of [`CAPS`] on every
/// core module of `binary` whose only memory is memory 0 and is packable;
/// returns how many (module, cap) pairs were compared.
fn assert_not_larger_than_wizer(name: &str, binary: &[u8], zero_filled_imports: bool) -> usize {
    // Each module's runs, read once for all caps (None: not compared).
    let runs: Vec<Option<Vec<(u64, u64)>>> = core_modules(binary)
        .into_iter()
        .map(|original| {
            let info = ModuleInfo::parse(original);
            let compared = info.memories.len() == 1
                && !info.segments.is_empty()
                && info.packable(0, zero_filled_imports)
                // passive segments: Wizer never writes those
                && info.segments.iter().all(|s| s.memory().is_some());
            compared.then(|| {
                let runs = info.image(0).non_zero_runs();
                runs.iter().map(|(o, d)| (*o, o + d.len() as u64)).collect()
            })
        })
        .collect();
    let mut compared = 0;
    for cap in CAPS {
        let options = PackOptions::default()
            .with_zero_filled_imports(zero_filled_imports)
            .with_max_segments(MaxSegments::new(cap).unwrap());
        let packed = support::pack(binary, &options);
        for (runs, packed) in runs.iter().zip(core_modules(&packed)) {
            let Some(runs) = runs else { continue };
            let wizer = wizer_data_section_len(runs.iter().copied(), cap as usize);
            let ours = data_section_len(packed);
            assert!(
                ours <= wizer,
                "{name} at cap {cap}: segpack's data section is {ours} bytes, Wizer's rule gives {wizer}"
            );
            compared += 1;
        }
    }
    compared
}

#[test]
fn never_larger_than_wizer_on_the_corpus() {
    let mut compared = 0;
    for path in support::corpus_files() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let binary = std::fs::read(&path).unwrap();
        compared += assert_not_larger_than_wizer(&name, &binary, false);
        compared += assert_not_larger_than_wizer(&name, &binary, true);
    }
    // sql-wasm, brotli, esbuild, the components' snapshot and quickjs (with
    // zero-filled imports) at least.
    assert!(
        compared >= 6 * CAPS.len(),
        "only {compared} modules compared"
    );
}

/// A naive snapshot: one segment per 64 KiB page that holds data, written
/// like a heap of objects separated by zero gaps of every size.
fn naive_snapshot(pages: u32, seed: u64) -> Vec<u8> {
    let mut rng = support::rng::Rng::new(seed);
    let mut next = move || rng.next_u64();
    let mut module = wasm_encoder::Module::new();
    let mut memories = wasm_encoder::MemorySection::new();
    memories.memory(wasm_encoder::MemoryType {
        minimum: pages as u64,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut data = wasm_encoder::DataSection::new();
    for page in 0..pages {
        if next() % 3 == 0 {
            continue;
        }
        let mut bytes = vec![0u8; 65536];
        let mut at = (next() % 512) as usize;
        while at < bytes.len() {
            let len = 1 + (next() % 48) as usize;
            for b in bytes.iter_mut().skip(at).take(len) {
                *b = (next() % 255 + 1) as u8;
            }
            // Gaps: mostly 1-12 bytes, sometimes a few hundred.
            let gap = if next() % 10 == 0 {
                next() % 400
            } else {
                1 + next() % 12
            };
            at += len + gap as usize;
        }
        let offset = wasm_encoder::ConstExpr::i32_const((page * 65536) as i32);
        data.active(0, &offset, bytes);
    }
    module.section(&data);
    module.finish()
}

#[test]
fn never_larger_than_wizer_on_generated_snapshots() {
    // Sizes on both sides of the cap: a few thousand runs, and far more than
    // 10,000 (so gaps are closed).
    for (pages, seed) in [(4, 1), (16, 2), (48, 3)] {
        let module = naive_snapshot(pages, seed);
        let name = format!("snapshot {pages} pages");
        let compared = assert_not_larger_than_wizer(&name, &module, false);
        assert_eq!(compared, CAPS.len());
    }
}

/// The shared benchmarks' 64 MiB naive snapshot (`../shared/bench`, seed 1),
/// where issue 23 found the planner up to 1,156 bytes larger than Wizer's
/// rule at a cap.
#[test]
fn never_larger_than_wizer_on_the_bench_snapshot() {
    bench_snapshot_at_every_cap(64);
}

/// The shared benchmarks' 256 MiB and 1 GiB snapshots, as
/// `make_snapshots.sh` writes them.
#[test]
#[ignore = "generates 400 MB of snapshots and holds a 1 GiB image, 9 packs each: minutes; \
            run with `cargo test --release --test wizer_rule -- --ignored`"]
fn never_larger_than_wizer_on_the_large_bench_snapshots() {
    bench_snapshot_at_every_cap(256);
    bench_snapshot_at_every_cap(1024);
}

/// Generates the shared benchmarks' naive snapshot of `mib` MiB (seed 1)
/// and compares it with Wizer's rule at every cap of [`CAPS`].
fn bench_snapshot_at_every_cap(mib: u32) {
    let name = format!("snapshot-{mib}m.wasm");
    let module = support::bench_snapshot(mib);
    let compared = assert_not_larger_than_wizer(&name, &module, false);
    assert_eq!(compared, CAPS.len());
}
