//! End to end (issue 7): packed StarlingMonkey components still run.
//!
//! * The corpus's `hello-noimports.component.wasm`, original and packed, is
//!   instantiated in a component-model engine (wasmtime, through its Python
//!   package) and `hello("segpack")` must return `Hello, segpack!` from each.
//! * A fresh component is built by `componentize-js` from
//!   `tests/e2e/greet.js`, packed, and must answer `greet` as before.
//!
//! Tools are installed on first use under `target/` and reused after:
//! the Python `wasmtime` package (`$SEGPACK_PYTHON` if set, else a venv in
//! `target/e2e-venv`, from PyPI) and npm's
//! `@bytecodealliance/componentize-js` (in `target/e2e-npm`, from the npm
//! registry; needs `node` and `npm`).

mod support;

use std::path::{Path, PathBuf};

use std::process::Command;
use support::python::{npm_tool, python_with_wasmtime, run};

use segpack::PackOptions;

/// What `function("segpack")` of the component at `component` returns, with
/// a newline.
fn call(python: &Path, component: &Path, function: &str) -> String {
    let script = e2e_dir().join("call_export.py");
    let out = run(Command::new(python)
        .arg(script)
        .arg(component)
        .arg(function)
        .arg("segpack"));
    String::from_utf8(out).expect("utf-8")
}

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

/// Packs `original` at wasm-opt's cap and checks the result statically.
/// (Components from componentize-js are Wizer's output at 10,000 segments;
/// at that cap segpack leaves them as they are, which would prove nothing.)
fn pack_component(original: &[u8]) -> Vec<u8> {
    let options = PackOptions::default().with_max_segments(segpack::MaxSegments::ENGINE_LIMIT);
    let packed = support::pack(original, &options);
    assert!(
        packed.len() < original.len(),
        "the component did not shrink"
    );
    support::assert_validates(&packed, "the packed component");
    support::statics::assert_same_static_images(original, &packed, false);
    packed
}

#[test]
fn packed_starlingmonkey_component_still_says_hello() {
    let python = python_with_wasmtime();
    let original_path = support::corpus_dir().join("hello-noimports.component.wasm");
    let original = std::fs::read(&original_path).expect("read the corpus component");
    let packed = pack_component(&original);
    let dir = tempfile::tempdir().unwrap();
    let packed_path = dir.path().join("hello.packed.wasm");
    std::fs::write(&packed_path, &packed).unwrap();
    assert_eq!(call(&python, &original_path, "hello"), "Hello, segpack!\n");
    assert_eq!(call(&python, &packed_path, "hello"), "Hello, segpack!\n");
}

/// The componentize-js release used (the one that built the corpus's).
const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js@0.23.0";

#[test]
fn fresh_componentize_js_component_packs_and_runs() {
    let cli = npm_tool("e2e-npm", COMPONENTIZE_JS, ".bin/componentize-js");
    let dir = tempfile::tempdir().unwrap();
    let original_path = dir.path().join("greet.component.wasm");
    // No WASI imports, so the engine needs no host functions.
    run(Command::new(&cli)
        .arg(e2e_dir().join("greet.js"))
        .arg("--wit")
        .arg(e2e_dir().join("greet.wit"))
        .args([
            "-d",
            "stdio",
            "random",
            "clocks",
            "http",
            "fetch-event",
            "-o",
        ])
        .arg(&original_path));
    let original = std::fs::read(&original_path).unwrap();
    let packed = pack_component(&original);
    let packed_path = dir.path().join("greet.packed.wasm");
    std::fs::write(&packed_path, &packed).unwrap();

    let python = python_with_wasmtime();
    let expected = "segpack packs data segments; the 500th prime is 3571\n";
    assert_eq!(call(&python, &original_path, "greet"), expected);
    assert_eq!(call(&python, &packed_path, "greet"), expected);
    eprintln!(
        "componentize-js greet component: {} -> {} bytes",
        original.len(),
        packed.len()
    );
}
