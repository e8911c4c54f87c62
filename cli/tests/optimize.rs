//! `--optimize-for` (issue 25): the smallest file once compressed, never
//! larger compressed than the input, the same memories; and its reports.
//! Here rather than in the library's tests because the CLI package builds
//! the library with its codecs (features `gzip`, `brotli`, `zstd`).

#[path = "../../tests/support/mod.rs"]
mod support;

use segpack::{Codec, Compression, PackOptions};
use support::cli::segpack;

fn compressed(c: Compression, bytes: &[u8]) -> u64 {
    c.compressed_len(bytes.len() as u64, &mut std::iter::once(bytes))
        .unwrap()
}

/// Optimizes `input`, writes the result, and checks the promises: the
/// whole output compressed is what the report says and never more than the
/// input compressed; the output is the input when it does not win; it
/// validates and gives the same memories (the library's independent
/// `verify`). Returns the output.
fn optimized<'a>(input: &'a [u8], c: Compression, name: &str) -> (Vec<u8>, segpack::Optimized<'a>) {
    let o = segpack::optimize(input, &PackOptions::default(), c)
        .unwrap_or_else(|e| panic!("{name} {c}: {e}"));
    assert_within_budget(
        input.len() as u64,
        o.bytes_compressed,
        &format!("{name} {c}"),
    );
    let mut output = Vec::new();
    o.plan.write_to(&mut output, None).unwrap();
    assert_eq!(compressed(c, input), o.compressed_before, "{name} {c}");
    assert_eq!(compressed(c, &output), o.compressed_after, "{name} {c}");
    assert!(
        o.compressed_after <= o.compressed_before,
        "{name} {c}: {} > {}",
        o.compressed_after,
        o.compressed_before
    );
    if o.max_segments.is_none() {
        assert_eq!(output, input, "{name} {c}: kept, so the input itself");
    } else {
        assert!(o.compressed_after < o.compressed_before, "{name} {c}");
    }
    support::assert_validates(&output, name);
    assert_eq!(
        segpack::verify(input, &output, &Default::default()).unwrap(),
        None,
        "{name} {c}"
    );
    (output, o)
}

/// The cost: at most about three compressions of the input. Counted
/// in bytes handed to the codec (a timed test would fail on a loaded
/// machine): at most `BUDGET` (3) times the input's length plus
/// `BUDGET_SLACK` (64 KiB), and at least the input's length (it is
/// compressed whole, for the guarantee).
fn assert_within_budget(len: u64, bytes_compressed: u64, name: &str) {
    assert_eq!(segpack::BUDGET, 3, "the issue's budget");
    let budget = segpack::BUDGET * len + segpack::BUDGET_SLACK;
    assert!(
        (len..=budget).contains(&bytes_compressed),
        "{name}: {bytes_compressed} bytes compressed for a {len}-byte input, over the budget of {budget}"
    );
}

/// Each codec at its usual level on the corpus's small modules and the
/// sample; the 12-14 MB modules with gzip at its fastest level only (the
/// rule is the same at every level; with every codec at its usual level
/// this loop took eight minutes, too long for CI; that run passed, see
/// docs/benchmarks.md).
#[test]
fn never_larger_compressed_than_the_input_on_the_corpus() {
    let mut files = support::corpus_files();
    files.push(support::repo_root().join("samples/snapshot.wasm"));
    let mut won = 0;
    for path in &files {
        let input = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let small = input.len() < 2 << 20;
        let level = |codec: Codec| {
            let level = if small {
                codec.default_level()
            } else {
                *codec.levels().start().max(&1)
            };
            Compression::with_level(codec, level).unwrap()
        };
        let codecs = if small {
            vec![level(Codec::Gzip), level(Codec::Zstd), level(Codec::Brotli)]
        } else {
            vec![level(Codec::Gzip)]
        };
        for c in codecs.into_iter().filter(|c| c.codec.is_available()) {
            let (_, o) = optimized(&input, c, &name);
            won += usize::from(o.max_segments.is_some());
        }
    }
    // The sample gains with all three (docs/benchmarks.md): a test that
    // always kept the input would pass the loop above.
    assert!(won >= 3, "only {won} wins");
}

/// Forty small objects 40 bytes apart in each of 16 pages, under a few
/// page-long gaps: the raw optimum keeps every object apart (a 40-byte gap
/// costs more than a header), every codec prefers one segment per cluster
/// (40 zeros compress to a few bits, a header hardly at all). The optimized
/// file is larger raw and smaller compressed than the default pack, and
/// instantiates to the same memory.
#[test]
fn gaps_close_when_zeros_are_cheaper_than_headers() {
    let mut data = String::new();
    let mut rng = support::rng::Rng::new(25);
    for page in 0..16u64 {
        for i in 0..40u64 {
            let bytes: String = (0..6)
                .map(|_| format!("\\{:02x}", 1 + rng.next_u64() % 255))
                .collect();
            data.push_str(&format!(
                "(data (i32.const {}) \"{bytes}\")",
                page * 65536 + i * 46
            ));
        }
    }
    let input = wat::parse_str(format!("(module (memory 16) {data})")).unwrap();
    let default = support::pack(&input, &PackOptions::default());
    // zstd is native on Linux and other Unixes only (cli/Cargo.toml).
    for codec in [Codec::Gzip, Codec::Brotli, Codec::Zstd]
        .into_iter()
        .filter(|c| c.is_available())
    {
        let c = Compression::new(codec);
        let (output, o) = optimized(&input, c, "clusters");
        assert!(output.len() > default.len(), "{c}: raw grows");
        assert!(
            o.compressed_after < compressed(c, &default),
            "{c}: {} not under the default pack's {}",
            o.compressed_after,
            compressed(c, &default)
        );
        assert!(
            o.plan.report().segments_after() <= 32,
            "{c}: {} segments; {:?} {:?} {}",
            o.plan.report().segments_after(),
            o.candidates,
            o.measured,
            input.len()
        );
        support::assert_equivalent(&input, &output);
    }
}

/// A component's nested core modules are sampled too: if the walk missed
/// their data sections, every candidate's sample would be empty and weigh
/// the same.
#[test]
fn samples_reach_into_components() {
    let mut data = String::new();
    for i in 0..60u64 {
        data.push_str(&format!("(data (i32.const {}) \"obj{i:02}\")", i * 48));
    }
    let wat = format!(
        "(component (core module (memory 1) {data}) (core module (memory 1) (data (i32.const 0) \"x\")))"
    );
    let input = wat::parse_str(wat).unwrap();
    let (_, o) = optimized(&input, Compression::new(Codec::Gzip), "component");
    let weights: Vec<u64> = o.candidates.iter().map(|c| c.2).collect();
    assert!(weights.len() > 2, "{weights:?}");
    assert!(
        weights.iter().any(|&w| w != weights[0]),
        "all samples weigh the same: {weights:?}"
    );
}

/// The codec sees the same writes whatever slices the bytes come in
/// (miniz_oxide's fastest level compresses differently when writes are cut
/// differently): the size reported for a streamed plan is the size of the
/// file.
#[test]
fn compressed_len_does_not_depend_on_how_bytes_are_sliced() {
    let input = std::fs::read(support::repo_root().join("samples/snapshot.wasm")).unwrap();
    for c in ["gzip:1", "gzip:9", "zstd:1", "brotli:1"] {
        let c: Compression = c.parse().unwrap();
        if !c.codec.is_available() {
            continue;
        }
        let whole = compressed(c, &input);
        for size in [1, 4093, 1 << 16, 1 << 20] {
            let sliced = c
                .compressed_len(input.len() as u64, &mut input.chunks(size))
                .unwrap();
            assert_eq!(sliced, whole, "{c} in slices of {size}");
        }
    }
}

/// Nothing to gain: the input, byte for byte, and `max_segments` says so.
#[test]
fn keeps_the_input_when_no_layout_wins() {
    let input = wat::parse_str("(module (memory 1) (data (i32.const 0) \"abc\"))").unwrap();
    // zstd is native on Linux and other Unixes only (cli/Cargo.toml).
    for codec in [Codec::Gzip, Codec::Brotli, Codec::Zstd]
        .into_iter()
        .filter(|c| c.is_available())
    {
        let (output, o) = optimized(&input, Compression::new(codec), "abc");
        assert_eq!(o.max_segments, None);
        assert_eq!(output, input);
    }
}

#[test]
fn cli_reports_compressed_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let sample = support::repo_root().join("samples/snapshot.wasm");
    let out = dir.path().join("out.wasm");
    let assert = segpack()
        .args(["pack", "--optimize-for", "gzip", "--json"])
        .arg(&sample)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let json: serde_json::Value =
        serde_json::from_slice(&assert.get_output().stderr).expect("JSON on stderr");
    let c = &json["compressed"];
    assert_eq!(c["codec"], "gzip");
    assert_eq!(c["level"], 9);
    let packed = std::fs::read(&out).unwrap();
    let gzip = Compression::new(Codec::Gzip);
    assert_eq!(c["bytes_after"], compressed(gzip, &packed));
    assert!(c["bytes_after"].as_u64().unwrap() < c["bytes_before"].as_u64().unwrap());

    let zstd = if Codec::Zstd.is_available() {
        "zstd:3"
    } else {
        "brotli:3"
    };
    let assert = segpack()
        .args(["pack", "--optimize-for", zstd, "--stats"])
        .arg(&sample)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(stderr.contains(&format!("{zstd} compressed: ")), "{stderr}");

    let assert = segpack()
        .args(["inspect", "--compressed", "gzip"])
        .arg(&sample)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert!(
        stdout.contains("gzip:9 compressed: input ") && stdout.contains("--optimize-for gzip:9: "),
        "{stdout}"
    );
}

#[test]
fn raw_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let sample = support::repo_root().join("samples/snapshot.wasm");
    let (a, b) = (dir.path().join("a.wasm"), dir.path().join("b.wasm"));
    segpack()
        .arg("pack")
        .arg(&sample)
        .arg("-o")
        .arg(&a)
        .assert()
        .success();
    segpack()
        .args(["pack", "--optimize-for", "raw"])
        .arg(&sample)
        .arg("-o")
        .arg(&b)
        .assert()
        .success();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn bad_codecs_are_usage_errors() {
    for (arg, says) in [
        ("lzma", "unknown codec `lzma`"),
        ("gzip:10", "gzip levels go from 0 to 9, not 10"),
        ("zstd:x", "`x` is not a zstd level"),
    ] {
        let assert = segpack()
            .args(["pack", "--optimize-for", arg, "-o", "/dev/null", "in.wasm"])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert!(stderr.contains(says), "{arg}: {stderr}");
    }
}

/// The budget, counted by the caller: every byte `optimize_with` hands to
/// the compressed-size function, summed outside the library, matches
/// `bytes_compressed` and stays within about three compressions of the
/// input, on the sample (where brotli 11 took 20 s, 29x one compression,
/// before the budget held for small inputs) and on a few kilobytes (where
/// the slack lets candidates be weighed whole).
#[test]
fn optimizing_costs_at_most_about_three_compressions_of_the_input() {
    let sample = std::fs::read(support::repo_root().join("samples/snapshot.wasm")).unwrap();
    let mut small = String::new();
    for i in 0..200u64 {
        small.push_str(&format!("(data (i32.const {}) \"obj{i:03}\")", i * 40));
    }
    let small = wat::parse_str(format!("(module (memory 1) {small})")).unwrap();
    for (name, input) in [("snapshot.wasm", &sample), ("small", &small)] {
        for c in ["gzip", "zstd", "brotli"] {
            let c: Compression = c.parse().unwrap();
            if !c.codec.is_available() {
                continue;
            }
            let handed = std::sync::atomic::AtomicU64::new(0);
            let calls = std::sync::atomic::AtomicU64::new(0);
            let o = segpack::optimize_with(input, &PackOptions::default(), &|len, bytes| {
                // Count what actually comes through, not the `len` claimed.
                let mut counted = 0u64;
                let mut all = Vec::new();
                for b in bytes {
                    counted += b.len() as u64;
                    all.extend_from_slice(b);
                }
                assert_eq!(counted, len, "{name} {c}: `len` is the bytes' length");
                handed.fetch_add(counted, std::sync::atomic::Ordering::Relaxed);
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                c.compressed_len(len, &mut std::iter::once(&all[..]))
            })
            .unwrap();
            let handed = handed.into_inner();
            assert_eq!(o.bytes_compressed, handed, "{name} {c}");
            assert_within_budget(input.len() as u64, handed, &format!("{name} {c}"));
            // The input once, and at least one candidate weighed and then
            // compressed whole: the budget did not starve the search.
            assert!(calls.into_inner() >= 3, "{name} {c}");
            assert!(o.candidates.len() >= 3, "{name} {c}: {:?}", o.candidates);
            assert!(!o.measured.is_empty(), "{name} {c}");
        }
    }
}

/// The compressions run several at a time on the workers, and the search
/// comes out the same on any number of them: the same candidates, the same
/// estimates, the same layouts measured whole, the same output, the same
/// cost.
#[test]
fn optimizing_chooses_the_same_on_any_number_of_threads() {
    let sample = std::fs::read(support::repo_root().join("samples/snapshot.wasm")).unwrap();
    for c in ["gzip", "zstd:3", "brotli:5"] {
        let c: Compression = c.parse().unwrap();
        if !c.codec.is_available() {
            continue;
        }
        let run = |threads: usize| {
            let options = PackOptions::default().with_threads(threads);
            let o = segpack::optimize(&sample, &options, c).unwrap();
            let mut output = Vec::new();
            o.plan.write_to(&mut output, None).unwrap();
            let what = (
                o.candidates.clone(),
                o.measured.clone(),
                o.max_segments,
                o.compressed_before,
                o.compressed_after,
                o.bytes_compressed,
            );
            (what, output)
        };
        let one = run(1);
        for threads in [2, 3, 5] {
            let other = run(threads);
            assert_eq!(one.0, other.0, "{c}, {threads} threads");
            assert!(one.1 == other.1, "{c}, {threads} threads: another output");
        }
    }
}

/// The CLI reports the same cost, `bytes_compressed` in `--json`'s
/// `compressed` object, for each codec at its usual level.
#[test]
fn cli_reports_the_cost_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let sample = support::repo_root().join("samples/snapshot.wasm");
    let len = std::fs::metadata(&sample).unwrap().len();
    for codec in [Codec::Gzip, Codec::Brotli, Codec::Zstd]
        .into_iter()
        .filter(|c| c.is_available())
    {
        let assert = segpack()
            .args(["pack", "--json", "--optimize-for", codec.name()])
            .arg(&sample)
            .arg("-o")
            .arg(dir.path().join("out.wasm"))
            .assert()
            .success();
        let json: serde_json::Value =
            serde_json::from_slice(&assert.get_output().stderr).expect("JSON on stderr");
        let cost = json["compressed"]["bytes_compressed"]
            .as_u64()
            .expect("bytes_compressed in the report");
        assert_within_budget(len, cost, codec.name());
        let measured = json["compressed"]["measured"].as_array().expect("measured");
        assert!(!measured.is_empty(), "{codec}: {json}");
    }
}

/// Never larger compressed, on the bench snapshots: the 64 MiB one (19.5
/// MB) with gzip 9, a 4 MiB one (1.2 MB) with every codec at its usual
/// level. Costs: `optimize` is about three compressions of the input and
/// ten plans of the image, and the checks two compressions more and a
/// verify; on the 64 MiB snapshot zstd 19 took over a minute and the
/// pure-Rust brotli at 11 several (docs/benchmarks.md has those runs), and
/// even zstd 3 added 35 s here (test profile, a loaded machine). The rule is
/// the same at every level and size, so the larger image runs one codec and
/// the usual levels of all three run on the smaller one.
#[test]
fn never_larger_compressed_on_the_bench_snapshots() {
    let mut won = 0;
    for (mib, codecs) in [(64, &["gzip:9"][..]), (4, &["gzip", "zstd", "brotli"][..])] {
        let input = support::bench_snapshot(mib);
        let name = format!("snapshot-{mib}m");
        for c in codecs {
            let c: Compression = c.parse().unwrap();
            if !c.codec.is_available() {
                continue;
            }
            let (_, o) = optimized(&input, c, &name);
            won += usize::from(o.max_segments.is_some());
        }
    }
    // Both snapshots gain with gzip, the smaller one with zstd too
    // (docs/benchmarks.md): a search that always kept the input would pass
    // the loop above.
    assert!(won >= 2, "only {won} wins");
}

/// The combinations too slow for CI (issue 25): the 64 MiB bench snapshot
/// with zstd 19 and brotli 11, and the 1 GiB one with each codec at a level
/// that takes minutes, not hours, with the pure-Rust codecs. Run by hand:
/// `cargo test --release -p segpack-cli --test optimize -- --ignored`
/// (docs/benchmarks.md has the last run).
#[test]
#[ignore = "minutes of pure-Rust brotli 11 and zstd 19, and a 1 GiB image: run by hand, \
            see docs/benchmarks.md"]
fn never_larger_compressed_on_the_large_bench_snapshots() {
    for (mib, codecs) in [
        (64, &["zstd:19", "brotli:11"][..]),
        (1024, &["gzip:9", "zstd:3", "brotli:5"][..]),
    ] {
        let input = support::bench_snapshot(mib);
        let name = format!("snapshot-{mib}m");
        for c in codecs {
            let c: Compression = c.parse().unwrap();
            assert!(c.codec.is_available(), "{c} is not built in");
            let started = std::time::Instant::now();
            let (_, o) = optimized(&input, c, &name);
            eprintln!(
                "{name} {c}: {} -> {} compressed ({:+.2}%), max segments {:?}, {:.0} s",
                o.compressed_before,
                o.compressed_after,
                100.0 * (o.compressed_after as f64 / o.compressed_before as f64 - 1.0),
                o.max_segments,
                started.elapsed().as_secs_f64()
            );
        }
    }
}
