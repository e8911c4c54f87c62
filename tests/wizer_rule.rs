//! segpack's data section is never larger than Wizer's packing rule at the
//! same cap (SPEC §4), on the corpus and on generated snapshots.
//!
//! Wizer's rule (wasmtime `crates/wizer/src/snapshot.rs`), restated: take the
//! non-zero runs of each memory, merge neighbours whose gap is at most 4 bytes
//! (its `MIN_ACTIVE_SEGMENT_OVERHEAD`), then, with 10,000 segments or more,
//! close the smallest gaps until 10,000 remain. Each segment is written with
//! flag 0 (memory 0), an `i32.const` offset and its length.

mod support;

use segpack::PackOptions;
use support::read::data_section_len;
use support::statics::{ModuleInfo, core_modules};
use support::wasm::{sleb_len, uleb_len};

const WIZER_CAP: usize = 10_000;
const WIZER_MERGE_GAP: u64 = 4;

/// The size of the data section Wizer's rule writes for memory 0's runs,
/// header included.
fn wizer_data_section_len(runs: &[(u64, Vec<u8>)]) -> u64 {
    // (start, end) after merging small gaps.
    let mut segments: Vec<(u64, u64)> = Vec::new();
    for (start, run) in runs {
        let end = start + run.len() as u64;
        match segments.last_mut() {
            Some(last) if start - last.1 <= WIZER_MERGE_GAP => last.1 = end,
            _ => segments.push((*start, end)),
        }
    }
    if segments.len() >= WIZER_CAP {
        let excess = segments.len() - WIZER_CAP;
        let mut gaps: Vec<(u64, usize)> = segments
            .windows(2)
            .enumerate()
            .map(|(i, w)| (w[1].0 - w[0].1, i))
            .collect();
        gaps.sort_by_key(|g| g.0);
        let mut close = vec![false; segments.len()];
        for &(_, i) in &gaps[..excess] {
            close[i] = true;
        }
        let mut capped: Vec<(u64, u64)> = Vec::new();
        for (i, &s) in segments.iter().enumerate() {
            match capped.last_mut() {
                Some(last) if close[i - 1] => last.1 = s.1,
                _ => capped.push(s),
            }
        }
        segments = capped;
    }
    let header =
        |(s, e): (u64, u64)| 1 + 1 + sleb_len(s as u32 as i32 as i64) + 1 + uleb_len(e - s);
    let payload = uleb_len(segments.len() as u64) as u64
        + segments
            .iter()
            .map(|&(s, e)| header((s, e)) as u64 + (e - s))
            .sum::<u64>();
    1 + uleb_len(payload) as u64 + payload
}

/// Compares segpack with Wizer's rule on every core module of `binary` whose
/// only memory is memory 0 and is packable; returns how many were compared.
fn assert_not_larger_than_wizer(name: &str, binary: &[u8], zero_filled_imports: bool) -> usize {
    let options = PackOptions::default().with_zero_filled_imports(zero_filled_imports);
    let packed = support::pack(binary, &options);
    let mut compared = 0;
    for (original, packed) in core_modules(binary).into_iter().zip(core_modules(&packed)) {
        let info = ModuleInfo::parse(original);
        if info.memories.len() != 1
            || info.segments.is_empty()
            || !info.packable(0, zero_filled_imports)
        {
            continue;
        }
        if info.segments.iter().any(|s| s.memory().is_none()) {
            continue; // passive segments: Wizer never writes those
        }
        let wizer = wizer_data_section_len(&info.image(0).non_zero_runs());
        let ours = data_section_len(packed);
        assert!(
            ours <= wizer,
            "{name}: segpack's data section is {ours} bytes, Wizer's rule gives {wizer}"
        );
        eprintln!("{name}: segpack {ours} bytes, Wizer's rule {wizer} bytes");
        compared += 1;
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
    assert!(compared >= 6, "only {compared} modules compared");
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
        let compared =
            assert_not_larger_than_wizer(&format!("snapshot {pages} pages"), &module, false);
        assert_eq!(compared, 1);
    }
}
