//! Durability per output (SPEC §8, issue 26), checked on the system calls
//! themselves, under strace:
//!
//! - in place (the output is the input's own file, whatever path names
//!   it) and any output with `--sync`: the temporary file is synced before
//!   it is renamed over the target, and the directory after, so a crash or
//!   power loss leaves the old file or the new one;
//! - every other output: renamed into place (or written to stdout) with no
//!   sync of any kind, as `cp` leaves its copy; over an existing file, the
//!   two are exchanged and the old one removed, so that ext4 does not write
//!   the new one out at the rename;
//! - standard output that is the input's own file is refused, as `cat`
//!   refuses it, with nothing written.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::cli::{listing, pack_args, required_tool, segpack_std, write};

/// Every system call that can make the kernel write a file's data or a
/// directory's entries to disk (`?` tells strace to skip a name this
/// architecture does not have).
const SYNC_CALLS: &[&str] = &[
    "fsync",
    "fdatasync",
    "sync_file_range",
    "?sync_file_range2",
    "syncfs",
    "sync",
    "msync",
];

/// One traced system call: its name and its arguments as strace prints
/// them with `-y` (a descriptor shows the path it is open on: `3</a/b>`).
#[derive(Debug)]
struct Call {
    name: String,
    args: String,
}

impl Call {
    fn is_sync(&self) -> bool {
        SYNC_CALLS
            .iter()
            .any(|s| s.trim_start_matches('?') == self.name)
    }

    fn is_rename(&self) -> bool {
        self.name.starts_with("rename")
    }

    fn is_exchange(&self) -> bool {
        self.name == "renameat2" && self.args.contains("RENAME_EXCHANGE")
    }

    /// The path of the descriptor in the first argument (`3</a/b>` gives
    /// `/a/b`).
    fn fd_path(&self) -> Option<&str> {
        let (_, rest) = self.args.split_once('<')?;
        Some(rest.split_once('>')?.0)
    }

    /// The quoted paths among the arguments (a rename's source and target).
    fn quoted(&self) -> Vec<&str> {
        self.args.split('"').skip(1).step_by(2).collect()
    }
}

/// The sync and rename calls of `segpack ARGS`, in order, with standard
/// input and output as given (empty input and no output when `None`).
fn traced(dir: &Path, args: &[&OsStr], stdin: Option<File>, stdout: Option<File>) -> Vec<Call> {
    let strace = required_tool(
        "/usr/bin/strace",
        "reads the system calls with strace",
        "strace",
    );
    let log = dir.join("strace.log");
    let calls = SYNC_CALLS
        .iter()
        .chain(&["rename", "renameat", "renameat2"])
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    let status = Command::new(strace)
        .args(["-f", "-qq", "-y", "-e", "signal=none", "-e"])
        .arg(format!("trace={calls}"))
        .arg("-o")
        .arg(&log)
        .arg(assert_cmd::cargo::cargo_bin("segpack"))
        .args(args)
        .stdin(stdin.map_or(Stdio::null(), Stdio::from))
        .stdout(stdout.map_or(Stdio::null(), Stdio::from))
        .status()
        .expect("strace runs");
    assert!(status.success(), "segpack under strace: {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    text.lines()
        .filter_map(|line| {
            // `PID name(args) = result`, or `PID name(args <unfinished ...>`
            // when another thread's call came in between (its `<... name
            // resumed>` line carries only the result).
            let call = line.split_once(' ').map_or(line, |(_, rest)| rest);
            let (name, args) = call.split_once('(')?;
            let name = name.trim();
            (!name.is_empty() && !name.starts_with('<')).then(|| Call {
                name: name.to_string(),
                args: args.to_string(),
            })
        })
        .collect()
}

/// The temporary file was synced, then renamed over `target` (the file a
/// link resolves to, as strace prints it), then `target`'s directory was
/// synced.
#[track_caller]
fn assert_synced_in_order(what: &str, calls: &[Call], target: &Path) {
    let real = target.canonicalize().unwrap();
    let dir = real.parent().unwrap().to_str().unwrap();
    let real = real.to_str().unwrap();
    let rename = calls
        .iter()
        .position(|c| c.is_rename() && c.quoted().get(1) == Some(&real))
        .unwrap_or_else(|| panic!("{what}: no rename over {real} in {calls:#?}"));
    let temp = calls[rename].quoted()[0];
    assert!(
        temp.contains(".segpack-"),
        "{what}: renamed from {temp}, not a temporary file"
    );
    assert!(
        calls[..rename]
            .iter()
            .any(|c| c.is_sync() && c.fd_path() == Some(temp)),
        "{what}: the temporary file {temp} is not synced before the rename: {calls:#?}"
    );
    assert!(
        calls[rename + 1..]
            .iter()
            .any(|c| c.is_sync() && c.fd_path() == Some(dir)),
        "{what}: the directory {dir} is not synced after the rename: {calls:#?}"
    );
}

/// No call that writes anything to disk.
#[track_caller]
fn assert_not_synced(calls: &[Call]) {
    let synced: Vec<&Call> = calls.iter().filter(|c| c.is_sync()).collect();
    assert!(synced.is_empty(), "synced: {synced:#?}");
}

fn sample() -> Vec<u8> {
    std::fs::read(support::repo_root().join("samples/snapshot.wasm")).unwrap()
}

/// The file at `path` is `input` packed (smaller, and valid).
#[track_caller]
fn assert_packed(path: &Path, input: &[u8]) {
    let out = std::fs::read(path).unwrap();
    assert!(
        out.len() < input.len(),
        "{} was not packed: {} bytes, input {}",
        path.display(),
        out.len(),
        input.len()
    );
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&out)
        .unwrap();
}

#[test]
fn in_place_output_is_synced_before_and_after_the_rename() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample();
    let target = write(&dir, "snapshot.wasm", &input);
    let calls = traced(dir.path(), &pack_args(&target, &target), None, None);
    assert_synced_in_order("in place", &calls, &target);
    assert_packed(&target, &input);
}

/// In place is the same file, whatever names it: a hard link, a symbolic
/// link, another spelling of the path, or the file stdin comes from. (A
/// hard link's name is replaced by the rename, so the input's other name
/// keeps the old bytes: synced anyway, as the issue defines in place by
/// device and inode.)
#[test]
fn in_place_through_another_name_is_synced() {
    let input = sample();
    type Name = fn(&Path, &Path) -> PathBuf;
    let names: [(&str, Name); 3] = [
        ("a hard link", |dir, input| {
            let link = dir.join("hard.wasm");
            std::fs::hard_link(input, &link).unwrap();
            link
        }),
        ("a symbolic link", |dir, input| {
            let link = dir.join("sym.wasm");
            std::os::unix::fs::symlink(input, &link).unwrap();
            link
        }),
        ("another spelling", |dir, input| {
            dir.join(".").join(input.file_name().unwrap())
        }),
    ];
    for (what, name) in names {
        let dir = tempfile::tempdir().unwrap();
        let original = write(&dir, "snapshot.wasm", &input);
        let target = name(dir.path(), &original);
        let calls = traced(dir.path(), &pack_args(&original, &target), None, None);
        // A hard link's name gets the new file (the rename replaces that
        // name); a symbolic link keeps pointing at the packed input.
        assert_synced_in_order(what, &calls, &target);
        assert_packed(&target, &input);
    }
    // `segpack pack -o snapshot.wasm < snapshot.wasm`
    let dir = tempfile::tempdir().unwrap();
    let original = write(&dir, "snapshot.wasm", &input);
    let args = ["pack".as_ref(), "-o".as_ref(), original.as_os_str()];
    let stdin = File::open(&original).unwrap();
    let calls = traced(dir.path(), &args, Some(stdin), None);
    assert_synced_in_order("stdin redirected from the target", &calls, &original);
    assert_packed(&original, &input);
}

#[test]
fn sync_flag_syncs_a_new_output_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample();
    let source = write(&dir, "snapshot.wasm", &input);
    let target = dir.path().join("out.wasm");
    let mut args = pack_args(&source, &target).to_vec();
    args.push("--sync".as_ref());
    let calls = traced(dir.path(), &args, None, None);
    assert_synced_in_order("--sync", &calls, &target);
    assert_packed(&target, &input);
    assert_eq!(std::fs::read(&source).unwrap(), input);
}

/// A new file, or an existing file that is not the input, is renamed into
/// place with no sync (and no writeback started) of any kind. Fails if the
/// output is synced.
#[test]
fn a_new_output_is_not_synced() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample();
    let source = write(&dir, "snapshot.wasm", &input);
    let target = dir.path().join("out.wasm");
    for round in ["new", "existing"] {
        let calls = traced(dir.path(), &pack_args(&source, &target), None, None);
        assert!(
            calls.iter().any(|c| c.is_rename()),
            "{round}: not renamed into place: {calls:#?}"
        );
        // Over an existing file, a plain rename would make ext4 write the
        // new file out first (auto_da_alloc): the two are exchanged instead.
        assert_eq!(
            calls.iter().any(Call::is_exchange),
            round == "existing",
            "{round}: exchanged with the target only when there is one: {calls:#?}"
        );
        assert_not_synced(&calls);
        assert_packed(&target, &input);
    }
    assert_eq!(std::fs::read(&source).unwrap(), input);
    assert_eq!(listing(dir.path()), ["out.wasm", "snapshot.wasm"]);
}

/// An unsynced output that replaces a file takes its place whole, as a
/// rename would: through a symbolic link the link stays and its file gets
/// the packed bytes; another hard link to the old file keeps the old bytes;
/// the old file's permissions carry over; nothing is left beside it.
#[test]
fn an_existing_output_is_replaced_as_a_rename_would() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = sample();
    let source = write(&dir, "snapshot.wasm", &input);
    let old = b"an older build".to_vec();
    let file = write(&dir, "out.wasm", &old);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::fs::hard_link(&file, dir.path().join("kept.wasm")).unwrap();
    let link = dir.path().join("link.wasm");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let calls = traced(dir.path(), &pack_args(&source, &link), None, None);
    assert!(calls.iter().any(Call::is_exchange), "{calls:#?}");
    assert_not_synced(&calls);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_packed(&file, &input);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(std::fs::read(dir.path().join("kept.wasm")).unwrap(), old);
    assert_eq!(
        listing(dir.path()),
        ["kept.wasm", "link.wasm", "out.wasm", "snapshot.wasm"]
    );
}

/// Standard output is written as it is; `--sync` syncs it when it is a
/// regular file.
#[test]
fn stdout_is_synced_only_with_the_sync_flag() {
    let dir = tempfile::tempdir().unwrap();
    let input = sample();
    let source = write(&dir, "snapshot.wasm", &input);
    let out = dir.path().join("out.wasm");
    let args = ["pack".as_ref(), source.as_os_str()];
    let calls = traced(dir.path(), &args, None, Some(File::create(&out).unwrap()));
    assert_not_synced(&calls);
    assert_packed(&out, &input);

    let args = ["pack".as_ref(), source.as_os_str(), "--sync".as_ref()];
    let calls = traced(dir.path(), &args, None, Some(File::create(&out).unwrap()));
    let real = out.canonicalize().unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.is_sync() && c.fd_path() == real.to_str()),
        "stdout is not synced with --sync: {calls:#?}"
    );
    assert_packed(&out, &input);
}

/// `segpack pack < x.wasm > x.wasm` and `>> x.wasm` (and the same with the
/// input named): refused as `cat` refuses it, exit 1, one clear line,
/// nothing written.
#[test]
fn stdout_that_is_the_input_is_refused() {
    let input = sample();
    for named in [false, true] {
        for append in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = write(&dir, "snapshot.wasm", &input);
            // What the shell does before segpack starts: `>` empties the
            // file, `>>` opens it for appending.
            let stdout = File::options()
                .append(append)
                .write(true)
                .truncate(!append)
                .open(&path)
                .unwrap();
            let mut command = segpack_std();
            command.arg("pack").stdout(stdout).stdin(Stdio::null());
            if named {
                command.arg(&path);
            } else {
                command.stdin(File::open(&path).unwrap());
            }
            let out = command.output().unwrap();
            let case = format!("named {named}, append {append}");
            let stderr = support::cli::assert_one_error_line(&case, &out);
            assert!(
                stderr.contains("input file is output file"),
                "{case}: {stderr}"
            );
            assert_eq!(
                stderr.contains("emptied"),
                !append,
                "{case}: says whether '>' emptied it: {stderr}"
            );
            let expected: &[u8] = if append { &input } else { &[] };
            assert!(
                std::fs::read(&path).unwrap() == expected,
                "{case}: the file changed"
            );
            assert_eq!(listing(dir.path()), ["snapshot.wasm"], "{case}");
        }
    }
}

/// A module of one memory and one active segment of `len` non-zero bytes:
/// nothing to pack, so the output is the input, written all the same.
fn large_module(len: usize) -> Vec<u8> {
    use support::wasm::write_uleb;
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    let mut memory = vec![1, 0];
    write_uleb(&mut memory, len.div_ceil(1 << 16) as u64);
    module.push(5);
    write_uleb(&mut module, memory.len() as u64);
    module.extend(memory);
    let mut data = vec![1, 0, 0x41, 0, 0x0b];
    write_uleb(&mut data, len as u64);
    data.extend((0..len).map(|i| (i % 255) as u8 + 1));
    module.push(11);
    write_uleb(&mut module, data.len() as u64);
    module.extend(data);
    module
}

/// Past the 8 MiB writeback step, a synced output is handed to the disk as
/// it is written (`sync_file_range`, which this test sees), and an output
/// that is not synced gets no writeback either.
#[test]
fn writeback_is_only_for_synced_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let input = large_module(12 << 20);
    let source = write(&dir, "large.wasm", &input);
    let target = dir.path().join("out.wasm");
    let calls = traced(dir.path(), &pack_args(&source, &target), None, None);
    assert_not_synced(&calls);
    assert!(std::fs::read(&target).unwrap() == input);

    let mut args = pack_args(&source, &target).to_vec();
    args.push("--sync".as_ref());
    let calls = traced(dir.path(), &args, None, None);
    assert!(
        calls.iter().any(|c| c.name.starts_with("sync_file_range")),
        "no writeback for a synced 12 MiB output: {calls:#?}"
    );
    assert_synced_in_order("--sync, 12 MiB", &calls, &target);
    assert!(std::fs::read(&target).unwrap() == input);
}
