//! The differential-testing harness shared by the integration tests
//! (`mod support;`).
//!
//! * [`corpus_dir`], [`corpus_files`]: where the real-world `.wasm` corpus
//!   lives, and its files.
//! * [`pack`]: segpack as a function.
//! * [`engine::instantiate`]: run a module in wasmi and read every memory.
//! * [`assert_equivalent`]: the packed module validates and instantiates to
//!   the same memories (or traps just the same).
//! * [`statics`]: the same question answered without running anything, for
//!   components and modules wasmi cannot run.
//! * [`read`]: sections, data segments and names of a packed module.
//! * [`cli`], [`wasm`]: running the binary; LEBs and section walking.
//! * [`rng::Rng`]: the tests' one random number generator.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod cli;
pub mod engine;
pub mod python;
pub mod read;
pub mod rng;
pub mod statics;
pub mod wasm;
pub mod wizer;
pub mod wizer_as_written;

use std::path::PathBuf;

pub use engine::{Outcome, instantiate};
pub use statics::assert_validates;

/// The repository's root (the library package's directory), also from the
/// CLI package's tests, which include this harness by path.
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("samples/snapshot.wasm").is_file())
        .unwrap_or_else(|| panic!("no repository root above {}", manifest.display()))
        .to_path_buf()
}

/// The shared benchmarks' naive snapshot of an `mib` MiB heap, as
/// `../shared/bench/make_snapshots.sh` writes it (`gen_snapshot.py
/// --no-base`, seed 1).
///
/// # Panics
/// When the shared benchmarks are not beside the repository, or the
/// generator fails: the tests that need a snapshot fail, never skip.
pub fn bench_snapshot(mib: u32) -> Vec<u8> {
    let script = repo_root().join("../shared/bench/gen_snapshot.py");
    assert!(
        script.is_file(),
        "{} is missing: this test needs the shared benchmarks beside the repository",
        script.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.wasm");
    let status = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "--no-base",
            "--image-mib",
            &mib.to_string(),
            "--seed",
            "1",
            "-o",
        ])
        .arg(&path)
        .status()
        .expect("python3 runs the snapshot generator");
    assert!(status.success(), "gen_snapshot.py failed: {status}");
    std::fs::read(&path).unwrap()
}

/// The directory of real-world `.wasm` files: `$SEGPACK_CORPUS` if set, else
/// `../shared/corpus` beside the crate, else `/work/shared/corpus`.
///
/// # Panics
/// When none of them exists: a missing corpus must fail the tests, never
/// make them pass vacuously.
pub fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEGPACK_CORPUS") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "SEGPACK_CORPUS={} is not a directory",
            dir.display()
        );
        return dir;
    }
    let candidates = [
        repo_root().join("../shared/corpus"),
        PathBuf::from("/work/shared/corpus"),
    ];
    for dir in &candidates {
        if dir.is_dir() {
            return dir.clone();
        }
    }
    panic!(
        "the wasm corpus is missing: set SEGPACK_CORPUS to its directory (looked in {})",
        candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    );
}

/// The `.wasm` files of [`corpus_dir`] (not its subdirectories), sorted.
///
/// # Panics
/// When there are none: like a missing corpus, an empty one must fail the
/// tests.
pub fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .wasm files in the corpus at {}",
        dir.display()
    );
    files
}

/// Packs `wasm` with `options`.
///
/// # Panics
/// When segpack refuses the input.
pub fn pack(wasm: &[u8], options: &segpack::PackOptions) -> Vec<u8> {
    let mut out = Vec::new();
    if let Err(e) = segpack::pack_module(wasm, &mut out, options) {
        panic!("segpack failed with {options:?}: {e}");
    }
    out
}

/// What [`assert_equivalent`] could establish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Both instantiated and every memory holds the same bytes.
    SameMemories,
    /// Both trapped at instantiation.
    BothTrapped,
    /// wasmi cannot run the original (nor the packed module), so nothing was
    /// compared by running; the reason.
    Skipped(String),
}

/// Asserts that `packed` validates (all features) and that instantiating it
/// gives the same outcome as instantiating `original`: both trap, or both
/// succeed with byte-identical memories.
///
/// # Panics
/// With a description of the first difference.
pub fn assert_equivalent(original: &[u8], packed: &[u8]) -> Comparison {
    assert_equivalent_to(&instantiate(original), packed)
}

/// [`assert_equivalent`] with the original's outcome already known (to
/// instantiate the original once for several packings of it).
pub fn assert_equivalent_to(original: &Outcome, packed: &[u8]) -> Comparison {
    assert_validates(packed, "the packed binary");
    compare_outcomes(original, &instantiate(packed))
}

/// Compares two outcomes as [`assert_equivalent`] does.
pub fn compare_outcomes(original: &Outcome, packed: &Outcome) -> Comparison {
    match (original, packed) {
        (Outcome::Trapped(_), Outcome::Trapped(_)) => Comparison::BothTrapped,
        (Outcome::Unsupported(a), Outcome::Unsupported(_)) => Comparison::Skipped(a.clone()),
        (Outcome::Memories(a), Outcome::Memories(b)) => {
            assert_eq!(
                a.len(),
                b.len(),
                "the packed module has {} memories, the original {}",
                b.len(),
                a.len()
            );
            for (index, (a, b)) in a.iter().zip(b).enumerate() {
                if let Some(why) = memory_difference(a, b) {
                    panic!("memory {index} differs after instantiation: {why}");
                }
            }
            Comparison::SameMemories
        }
        (a, b) => panic!(
            "different outcomes: the original {}, the packed module {}",
            a.summary(),
            b.summary()
        ),
    }
}

/// Describes how two memories differ, or `None` when they are equal.
pub fn memory_difference(a: &[u8], b: &[u8]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} bytes vs {} bytes", a.len(), b.len()));
    }
    let first = a.iter().zip(b).position(|(x, y)| x != y)?;
    let last = a.len()
        - a.iter()
            .rev()
            .zip(b.iter().rev())
            .position(|(x, y)| x != y)?;
    let count = a.iter().zip(b).filter(|(x, y)| x != y).count();
    let window = first..last.min(first + 16);
    Some(format!(
        "{count} bytes differ in {first:#x}..{last:#x}; at {first:#x} the original has {:02x?}, the packed module {:02x?}",
        &a[window.clone()],
        &b[window]
    ))
}
