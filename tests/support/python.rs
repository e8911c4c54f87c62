//! wasmtime through its Python package: the engine for what wasmi cannot
//! run (components, Wasm GC). Installed on first use into
//! `target/e2e-venv` from PyPI, unless `$SEGPACK_PYTHON` names a Python that
//! has it. And the other outside tools of the end-to-end tests: how to run
//! them ([`run`]) and npm packages ([`npm_tool`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasmtime release the venv gets (its component API and GC are needed).
const WASMTIME_PY: &str = "wasmtime==50.0.1";

fn has_wasmtime(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import wasmtime.component"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Python interpreter that can `import wasmtime.component` (installed
/// once per test process, even when tests ask at the same time).
///
/// # Panics
/// When it can be neither found nor installed: the tests that need it fail
/// rather than pass without running.
pub fn python_with_wasmtime() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(find_or_install_python).clone()
}

fn find_or_install_python() -> PathBuf {
    if let Some(python) = std::env::var_os("SEGPACK_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            has_wasmtime(&python),
            "SEGPACK_PYTHON={} cannot import wasmtime.component",
            python.display()
        );
        return python;
    }
    let venv = target_dir().join("e2e-venv");
    let python = venv.join("bin/python");
    if has_wasmtime(&python) {
        return python;
    }
    // Two test binaries may install at once: each works in its own venv
    // and the first to finish moves it into place.
    let staging = target_dir().join(format!("e2e-venv.{}", std::process::id()));
    let staged_python = staging.join("bin/python");
    run(Command::new("python3").arg("-m").arg("venv").arg(&staging));
    run(Command::new(&staged_python).args(["-m", "pip", "install", "--quiet", WASMTIME_PY]));
    if std::fs::rename(&staging, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    assert!(
        has_wasmtime(&python),
        "installed {WASMTIME_PY}, still no wasmtime.component"
    );
    python
}

/// Runs `command`, panicking with its output when it fails; its stdout.
pub fn run(command: &mut Command) -> Vec<u8> {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The cargo target directory (where the venv and npm installs live).
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf()
}

/// The program `bin` (a path under `node_modules`) of the npm `package`,
/// installed on first use into `target/<dir>` from the npm registry.
pub fn npm_tool(dir: &str, package: &str, bin: &str) -> PathBuf {
    let dir = target_dir().join(dir);
    let bin = dir.join("node_modules").join(bin);
    if !bin.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("npm")
            .current_dir(&dir)
            .args(["install", "--no-audit", "--no-fund", "--prefix", "."])
            .arg(package));
    }
    bin
}

/// Instantiates the core module `wasm` in wasmtime with Wasm GC enabled, then
/// calls each export of `calls` (name, i32 arguments) in order, and returns
/// one line per step: `instantiate: ok` or `instantiate: trap <message>`, then
/// `<name>: <results>` or `<name>: trap <message>`, and last
/// `memory <i>: <sha256>` for every exported memory.
pub fn run_in_wasmtime(wasm: &[u8], calls: &[(&str, &[i32])]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("module.wasm");
    std::fs::write(&path, wasm).expect("write module");
    let script = super::repo_root().join("tests/e2e/run_core.py");
    let mut command = Command::new(python_with_wasmtime());
    command.arg(script).arg(&path);
    for (name, args) in calls {
        let args: Vec<String> = args.iter().map(i32::to_string).collect();
        command.arg(format!("{name}({})", args.join(",")));
    }
    String::from_utf8(run(&mut command))
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}
