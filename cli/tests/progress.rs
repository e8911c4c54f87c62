//! The progress bar of `segpack pack`: drawn on stderr when it is a terminal
//! and the input is large (`SEGPACK_PROGRESS_MIN_BYTES`, 64 MiB by default),
//! never into a pipe.
//!
//! The terminal is a pseudo-terminal made by util-linux's `script`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

#[path = "../../tests/support/mod.rs"]
mod support;

use support::cli::pack_to_std;

fn sample() -> PathBuf {
    support::repo_root().join("samples/snapshot.wasm")
}

fn packed_sample() -> Vec<u8> {
    let input = std::fs::read(sample()).unwrap();
    let mut out = Vec::new();
    segpack::pack_module(&input, &mut out, &Default::default()).unwrap();
    out
}

/// Runs `segpack ARGS` with stdin, stdout and stderr on a pseudo-terminal
/// and returns everything the terminal showed.
fn on_a_terminal(args: &str, min_bytes: Option<&str>) -> String {
    let command = format!("'{}' {args}", env!("CARGO_BIN_EXE_segpack"));
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("SEGPACK_PROGRESS_MIN_BYTES");
    if let Some(min) = min_bytes {
        script.env("SEGPACK_PROGRESS_MIN_BYTES", min);
    }
    let out = script
        .output()
        .expect("`script` (util-linux) runs commands on a pseudo-terminal");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{shown}");
    shown
}

fn quote(p: &Path) -> String {
    let s = p.display().to_string();
    assert!(!s.contains('\''), "{s}");
    format!("'{s}'")
}

#[test]
fn a_terminal_shows_the_bar_for_a_large_input() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out.wasm");
    // Every input counts as large here.
    let shown = on_a_terminal(
        &format!("pack {} -o {}", quote(&sample()), quote(&out)),
        Some("0"),
    );
    assert!(shown.contains("planning "), "{shown:?}");
    assert!(shown.contains("writing ["), "{shown:?}");
    // The last frame drawn is the full bar.
    assert!(
        shown.contains(&format!("[{}]", "=".repeat(40))),
        "{shown:?}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), packed_sample());
}

#[test]
fn the_bar_also_shows_when_writing_to_stdout() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out.wasm");
    let shown = on_a_terminal(
        &format!("pack {} > {}", quote(&sample()), quote(&out)),
        Some("0"),
    );
    assert!(shown.contains("writing ["), "{shown:?}");
    assert_eq!(std::fs::read(&out).unwrap(), packed_sample());
    // And into a pipe on stdout, while stderr is the terminal.
    let shown = on_a_terminal(
        &format!("pack {} | cat > {}", quote(&sample()), quote(&out)),
        Some("0"),
    );
    assert!(shown.contains("writing ["), "{shown:?}");
    assert_eq!(std::fs::read(&out).unwrap(), packed_sample());
}

#[test]
fn a_terminal_shows_no_bar_for_a_small_input_or_with_quiet() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out.wasm");
    // The sample is far below the default 64 MiB.
    let shown = on_a_terminal(
        &format!("pack {} -o {} --stats", quote(&sample()), quote(&out)),
        None,
    );
    assert!(!shown.contains("writing"), "{shown:?}");
    assert!(shown.starts_with("segments 6 -> "), "{shown:?}");
    let shown = on_a_terminal(
        &format!("pack {} -o {} --quiet", quote(&sample()), quote(&out)),
        Some("0"),
    );
    assert_eq!(shown, "");
}

#[test]
fn a_pipe_gets_no_bar() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("out.wasm");
    let result = pack_to_std(sample(), &out)
        .env("SEGPACK_PROGRESS_MIN_BYTES", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(result.status.success());
    assert_eq!(String::from_utf8_lossy(&result.stderr), "");
    assert_eq!(std::fs::read(&out).unwrap(), packed_sample());
}
