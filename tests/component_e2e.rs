//! End to end (issue 7): the packed StarlingMonkey component from the corpus
//! still runs. Both the original and the packed
//! `hello-noimports.component.wasm` are instantiated in a component-model
//! engine (wasmtime, through its Python package) and `hello("segpack")` must
//! return `Hello, segpack!` from each.
//!
//! The Python `wasmtime` package is looked for in `$SEGPACK_PYTHON`, then in
//! `target/e2e-venv`; when neither has it, that venv is created and the
//! package installed from PyPI (once; later runs reuse it).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use segpack::PackOptions;

/// The wasmtime release the venv gets (its component API is needed).
const WASMTIME_PY: &str = "wasmtime==50.0.1";

fn has_wasmtime(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import wasmtime.component"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Python interpreter that can `import wasmtime.component`.
fn python_with_wasmtime() -> PathBuf {
    if let Some(python) = std::env::var_os("SEGPACK_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            has_wasmtime(&python),
            "SEGPACK_PYTHON={} cannot import wasmtime.component",
            python.display()
        );
        return python;
    }
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("e2e-venv");
    let python = venv.join("bin/python");
    if has_wasmtime(&python) {
        return python;
    }
    let run = |command: &mut Command| {
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert!(
            out.status.success(),
            "{command:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", WASMTIME_PY]));
    assert!(
        has_wasmtime(&python),
        "installed {WASMTIME_PY}, still no wasmtime.component"
    );
    python
}

fn call_hello(python: &Path, component: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/call_hello.py");
    let out = Command::new(python)
        .arg(script)
        .arg(component)
        .arg("segpack")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "calling hello in {} failed:\n{}",
        component.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn packed_starlingmonkey_component_still_says_hello() {
    let python = python_with_wasmtime();
    let original_path = support::corpus_dir().join("hello-noimports.component.wasm");
    let original = std::fs::read(&original_path).expect("read the corpus component");
    // The corpus component is Wizer's output at 10,000 segments; wasm-opt's
    // cap lets segpack's cost model make it smaller (at 10,000 it is left
    // as is, which would prove nothing here).
    let options = PackOptions {
        max_segments: 100_000,
        ..PackOptions::default()
    };
    let packed = support::pack(&original, &options);
    assert!(
        packed.len() < original.len(),
        "the component did not shrink"
    );
    support::assert_validates(&packed, "the packed component");
    support::statics::assert_same_static_images(&original, &packed, false);

    let dir = tempfile::tempdir().unwrap();
    let packed_path = dir.path().join("hello.packed.wasm");
    std::fs::write(&packed_path, &packed).unwrap();
    assert_eq!(call_hello(&python, &original_path), "Hello, segpack!\n");
    assert_eq!(call_hello(&python, &packed_path), "Hello, segpack!\n");
}
