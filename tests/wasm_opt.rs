//! SPEC §4: given wasm-opt's cap (`max_segments` 100,000), segpack's data
//! section is never larger than `wasm-opt --memory-packing`'s, on every core
//! module of the corpus. wasm-opt is binaryen's npm build (installed on first
//! use into `target/e2e-binaryen` from the npm registry; needs `node` and
//! `npm`). Components are left out: wasm-opt does not read them.

mod support;

use std::path::Path;
use std::process::Command;

use support::python::{npm_tool, run};
use support::read::data_section_len;

/// The binaryen release of `../shared/peers/setup.sh`.
const BINARYEN: &str = "binaryen@132.0.0";

fn wasm_opt() -> std::path::PathBuf {
    npm_tool("e2e-binaryen", BINARYEN, "binaryen/bin/wasm-opt")
}

fn is_component(wasm: &[u8]) -> bool {
    wasm.get(4..8) != Some(&[1, 0, 0, 0][..])
}

#[test]
fn segpack_at_wasm_opts_cap_is_never_larger_than_wasm_opt() {
    let wasm_opt = wasm_opt();
    let dir = tempfile::tempdir().unwrap();
    let options =
        segpack::PackOptions::default().with_max_segments(segpack::MaxSegments::ENGINE_LIMIT);
    let mut compared = 0;
    for path in support::corpus_files() {
        let original = std::fs::read(&path).unwrap();
        if is_component(&original) {
            continue;
        }
        let ours = data_section_len(&support::pack(&original, &options));
        let out = dir.path().join("wasm-opt.wasm");
        run(Command::new("node")
            .arg(&wasm_opt)
            .arg(&path)
            .args([
                "--memory-packing",
                "-all",
                "--disable-compact-imports",
                "-o",
            ])
            .arg(&out));
        let theirs = data_section_len(&std::fs::read(&out).unwrap());
        let name = Path::new(&path).file_name().unwrap().to_string_lossy();
        eprintln!("{name}: data section {ours} bytes (segpack), {theirs} (wasm-opt)");
        assert!(
            ours <= theirs,
            "{name}: segpack's data section ({ours} bytes) is larger than wasm-opt's ({theirs})"
        );
        compared += 1;
    }
    assert!(compared >= 6, "only {compared} core modules in the corpus");
}
