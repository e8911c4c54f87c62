//! SPEC §1.4: the output is byte-identical for any `--threads`, and with or
//! without the `parallel` cargo feature.
//!
//! Every module is packed with 1, 2, 3 and 8 threads (and 0, all cores) and
//! the outputs must be equal byte for byte: the real corpus, and generated
//! "naive snapshots" of a few MiB whose images span several 1 MiB scanning
//! jobs, with non-zero runs and short gaps crossing the job boundaries.
//!
//! The same tests run without the feature (`cargo test --no-default-features
//! --test determinism`), where every thread count takes the serial path. To
//! compare the two builds, each test prints an FNV-1a hash of every output
//! (`-- --nocapture`): both builds must print the same hashes.

mod support;

use segpack::PackOptions;
use support::rng::Rng;

/// The thread counts compared; 0 is "one per core".
const THREADS: [usize; 5] = [1, 2, 3, 8, 0];

const PAGE: usize = 1 << 16;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Packs `wasm` with every thread count in [`THREADS`] and asserts the
/// outputs are identical; returns the output.
fn assert_same_for_all_threads(what: &str, wasm: &[u8], max_segments: u32) -> Vec<u8> {
    let options = |threads| {
        PackOptions::default()
            .with_threads(threads)
            .with_max_segments(segpack::MaxSegments::new(max_segments).unwrap())
    };
    let reference = support::pack(wasm, &options(THREADS[0]));
    for &threads in &THREADS[1..] {
        let out = support::pack(wasm, &options(threads));
        if out != reference {
            let first = out
                .iter()
                .zip(&reference)
                .position(|(a, b)| a != b)
                .unwrap_or(out.len().min(reference.len()));
            panic!(
                "{what} (--max-segments {max_segments}): {threads} threads give {} bytes, 1 thread {} bytes; first difference at byte {first:#x}",
                out.len(),
                reference.len()
            );
        }
    }
    println!(
        "{what} --max-segments {max_segments}: {} -> {} bytes, fnv1a {:016x}",
        wasm.len(),
        reference.len(),
        fnv1a(&reference)
    );
    reference
}

#[test]
fn corpus_output_does_not_depend_on_threads() {
    for path in support::corpus_files() {
        let wasm = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for cap in [segpack::MaxSegments::DEFAULT.get(), 100] {
            assert_same_for_all_threads(&name, &wasm, cap);
        }
    }
}

/// Writes a heap page the way gen_snapshot.py does, roughly: objects of
/// 1-64 non-zero bytes, mostly 9-12 zero bytes apart, some 1-4 (which a
/// segment header never pays for), some free blocks of hundreds of bytes.
fn fill_heap(rng: &mut Rng, bytes: &mut [u8]) {
    let mut at = rng.below(256) as usize;
    while at < bytes.len() {
        let len = (1 + rng.below(64) as usize).min(bytes.len() - at);
        for b in &mut bytes[at..at + len] {
            *b = 1 + rng.below(255) as u8;
        }
        let gap = match rng.below(20) {
            0..=9 => rng.range(9..=12),
            10..=15 => rng.range(1..=4),
            16..=18 => rng.range(5..=64),
            _ => rng.range(256..=4096),
        };
        at += len + gap as usize;
    }
}

/// A snapshot-like module: one memory of `image_mib` MiB (memory64 if asked)
/// whose image is written as one active segment per used 64 KiB page, the
/// whole page as payload, plus what makes the job boundaries interesting:
///
/// * a stretch of non-zero bytes 2.5 MiB long, crossing two or three
///   1 MiB job boundaries;
/// * non-zero bytes right up to, and right after, every 1 MiB address, and
///   gaps of 1-16 bytes straddling it;
/// * later segments that overwrite earlier ones (one with zeros, erasing
///   non-zero bytes across a boundary) and small unaligned segments;
/// * passive segments between the active ones, a data count section, and
///   with `second_memory` a second memory (multi-memory) with its own image.
fn snapshot(seed: u64, image_mib: usize, memory64: bool, second_memory: bool) -> Vec<u8> {
    use wasm_encoder::{
        ConstExpr, DataCountSection, DataSection, MemorySection, MemoryType, Module,
    };
    let mut rng = Rng::new(seed);
    let pages = image_mib * 16;
    let mut image = vec![0u8; pages * PAGE];
    // About 40% of the pages hold a heap, in extents of 1-12 pages.
    let mut page = 0;
    while page < pages {
        let extent = rng.range(1..=12) as usize;
        let used = rng.percent(40);
        for p in page..(page + extent).min(pages) {
            if used {
                fill_heap(&mut rng, &mut image[p * PAGE..(p + 1) * PAGE]);
            }
        }
        page += extent;
    }
    // A long non-zero stretch across job boundaries.
    let long_start = PAGE * 3 + 17;
    for b in &mut image[long_start..long_start + (5 << 19)] {
        *b = 1 + rng.below(255) as u8;
    }
    // Around every MiB: runs touching the boundary, and short gaps across it.
    for mib in 1..image_mib {
        let at = mib << 20;
        let gap = rng.range(1..=16) as usize;
        let gap_start = at - rng.below(gap as u64 + 1) as usize;
        for (i, b) in image.iter_mut().enumerate().take(at + 40).skip(at - 40) {
            *b = if (gap_start..gap_start + gap).contains(&i) {
                0
            } else {
                0x80 | (i as u8)
            };
        }
    }

    let offset = |o: usize| {
        if memory64 {
            ConstExpr::i64_const(o as i64)
        } else {
            ConstExpr::i32_const(o as i32)
        }
    };
    let mut data = DataSection::new();
    let mut count = 0u32;
    for p in 0..pages {
        let bytes = &image[p * PAGE..(p + 1) * PAGE];
        if bytes.iter().all(|&b| b == 0) {
            continue;
        }
        data.active(0, &offset(p * PAGE), bytes.iter().copied());
        count += 1;
        if p % 7 == 3 {
            data.passive([p as u8, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            count += 1;
        }
    }
    // Later writers win: zeros erasing bytes across the 2 MiB boundary, and
    // small unaligned segments over used and unused memory.
    data.active(0, &offset((2 << 20) - 300), [0u8; 600]);
    count += 1;
    for _ in 0..200 {
        let at = rng.below((pages * PAGE - 64) as u64) as usize;
        let mut bytes = vec![0u8; 1 + rng.below(48) as usize];
        fill_heap(&mut rng, &mut bytes);
        data.active(0, &offset(at), bytes);
        count += 1;
    }
    if second_memory {
        let mut image = vec![0u8; 24 * PAGE];
        fill_heap(&mut rng, &mut image[PAGE..20 * PAGE]);
        for p in 0..24 {
            data.active(
                1,
                &ConstExpr::i32_const((p * PAGE) as i32),
                image[p * PAGE..(p + 1) * PAGE].iter().copied(),
            );
            count += 1;
        }
    }

    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: pages as u64,
        maximum: None,
        memory64,
        shared: false,
        page_size_log2: None,
    });
    if second_memory {
        memories.memory(MemoryType {
            minimum: 24,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
    }
    let mut module = Module::new();
    module.section(&memories);
    module.section(&DataCountSection { count });
    module.section(&data);
    module.finish()
}

#[test]
fn snapshot_output_does_not_depend_on_threads() {
    let cases = [
        ("snapshot 6 MiB", snapshot(1, 6, false, false)),
        (
            "snapshot 5 MiB, memory64 + second memory",
            snapshot(2, 5, true, true),
        ),
    ];
    for (what, wasm) in &cases {
        support::assert_validates(wasm, what);
        let mut sizes = Vec::new();
        let caps = [
            segpack::MaxSegments::ENGINE_LIMIT.get(),
            segpack::MaxSegments::DEFAULT.get(),
            1_000,
            50,
        ];
        for cap in caps {
            let out = assert_same_for_all_threads(what, wasm, cap);
            support::assert_validates(&out, &format!("{what} packed, cap {cap}"));
            assert!(out.len() < wasm.len(), "{what}: nothing was packed");
            sizes.push(out.len());
        }
        // Tighter caps close more gaps; at 1,000 and 50 the cap binds (the
        // images hold many thousands of runs), so gaps really were closed.
        assert!(
            sizes[0] <= sizes[1] && sizes[1] < sizes[2] && sizes[2] < sizes[3],
            "{what}: sizes for caps {caps:?}: {sizes:?}"
        );
    }
}

/// The producer API (`pack_segments`) too: same segments, every thread count.
#[test]
fn pack_segments_does_not_depend_on_threads() {
    let mut rng = Rng::new(7);
    let mut image = vec![0u8; 4 << 20];
    fill_heap(&mut rng, &mut image);
    let segments: Vec<segpack::Segment<'_>> = image
        .chunks(PAGE)
        .enumerate()
        .map(|(p, data)| segpack::Segment {
            memory_index: 0,
            offset: (p * PAGE) as u64,
            data,
        })
        .collect();
    let run = |threads| {
        let options = PackOptions::default().with_threads(threads);
        segpack::pack_segments(&segments, &[segpack::IndexType::I32], &options)
            .unwrap()
            .segments()
            .map(|s| (s.memory_index, s.offset, s.to_vec()))
            .collect::<Vec<_>>()
    };
    let reference = run(1);
    assert!(reference.len() > 100, "{} segments", reference.len());
    for &threads in &THREADS[1..] {
        assert!(run(threads) == reference, "{threads} threads differ");
    }
}
