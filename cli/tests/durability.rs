//! Durable in-place writes (SPEC §8): the temporary file's data reaches the
//! disk before it is renamed over the target, and the directory is synced
//! after the rename, so a crash or power loss leaves the old file or the new
//! one. Checked on the system calls themselves, under strace.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use support::cli::{pack_args, required_tool, write};

/// The synchronisation and rename calls of `segpack ARGS`, in order, as
/// strace names them (`fsync`, `fdatasync`, `rename`, `renameat2`...).
fn sync_and_rename_calls(dir: &Path, args: &[&std::ffi::OsStr]) -> Vec<String> {
    let strace = required_tool(
        "/usr/bin/strace",
        "reads the system calls with strace",
        "strace",
    );
    let log = dir.join("strace.log");
    let status = Command::new(strace)
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
            "-o",
        ])
        .arg(&log)
        .arg(assert_cmd::cargo::cargo_bin("segpack"))
        .args(args)
        .status()
        .expect("strace runs");
    assert!(status.success(), "segpack under strace: {status}");
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|line| {
            // `PID name(args) = result`
            let call = line.split_once(' ').map_or(line, |(_, rest)| rest);
            let name = call.split('(').next()?.trim();
            (!name.is_empty() && !call.contains("resumed")).then(|| name.to_string())
        })
        .collect()
}

fn is_sync(call: &str) -> bool {
    call == "fsync" || call == "fdatasync"
}

#[test]
fn in_place_output_is_synced_before_and_after_the_rename() {
    let dir = tempfile::tempdir().unwrap();
    let input = std::fs::read(support::repo_root().join("samples/snapshot.wasm")).unwrap();
    let target = write(&dir, "snapshot.wasm", &input);
    let calls = sync_and_rename_calls(dir.path(), &pack_args(&target, &target));
    let rename = calls
        .iter()
        .position(|c| c.starts_with("rename"))
        .unwrap_or_else(|| panic!("no rename in {calls:?}"));
    assert!(
        calls[..rename].iter().any(|c| is_sync(c)),
        "the temporary file is renamed before it is synced: {calls:?}"
    );
    assert!(
        calls[rename + 1..].iter().any(|c| is_sync(c)),
        "the directory is not synced after the rename: {calls:?}"
    );
    assert_ne!(
        std::fs::read(&target).unwrap(),
        input,
        "the sample was not packed"
    );
}
