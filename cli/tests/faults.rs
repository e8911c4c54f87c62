//! I/O faults through the command line (SPEC §5, §6): a full disk, an
//! unwritable or impossible output path, unreadable inputs, signals in the
//! middle of writing. Each must end with exit status 1 (or death by the
//! signal), one line of error, no output file, no temporary file left
//! beside it, and an in-place target left as it was.
//!
//! Everything here works unprivileged; the tests that need root (device
//! nodes made with `mknod`) say so and skip themselves otherwise. Nothing
//! outside a temporary directory is ever written.

#![cfg(unix)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use support::cli::{
    assert_one_error_line, listing, pack_args, pack_to, pack_to_std, segpack, segpack_std, write,
};
use support::wasm::write_uleb;
use tempfile::TempDir;

/// A module that packs: runs of bytes far apart, with zeros around them.
fn packable() -> Vec<u8> {
    wat::parse_str(
        r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "\00\00\00hello\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
        (data (i32.const 4096) "\00\00world\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00"))"#,
    )
    .unwrap()
}

/// Writes to `path` a module with one data segment of `len` bytes: non-zero
/// bytes with a gap of 64 zeros every 4 KiB, so that it packs into many
/// segments and the output is nearly as big as the input.
fn write_big_module(path: &Path, len: usize) {
    use std::io::Write;
    let pages = (len as u64).div_ceil(65536);
    let mut head = b"\0asm\x01\0\0\0".to_vec();
    let mut memory = vec![1, 0];
    write_uleb(&mut memory, pages);
    head.push(5);
    write_uleb(&mut head, memory.len() as u64);
    head.extend(memory);
    let mut segment = vec![1, 0, 0x41, 0, 0x0b];
    write_uleb(&mut segment, len as u64);
    head.push(11);
    write_uleb(&mut head, (segment.len() + len) as u64);
    head.extend(segment);
    let mut file = std::io::BufWriter::new(fs::File::create(path).unwrap());
    file.write_all(&head).unwrap();
    let mut chunk = vec![0u8; 4096];
    for (i, b) in chunk.iter_mut().enumerate().skip(64) {
        *b = (i % 251) as u8 + 1;
    }
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len());
        file.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    file.flush().unwrap();
}

/// Whether this process may make device nodes (root, outside a user
/// namespace that forbids it).
fn can_mknod(dir: &Path) -> bool {
    let probe = dir.join("probe");
    let ok = StdCommand::new("mknod")
        .arg(&probe)
        .args(["c", "1", "3"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = fs::remove_file(&probe);
    ok
}

fn mknod(path: &Path, major: u32, minor: u32) {
    let status = StdCommand::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "mknod {}", path.display());
}

// ---------------------------------------------------------------------------
// A full disk.

#[test]
fn stdout_on_a_full_device_is_a_one_line_error() {
    let dir = TempDir::new().unwrap();
    let input = write(&dir, "in.wasm", &packable());
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    for args in [&["pack"][..], &["pack", "-o", "-"][..]] {
        let out = segpack_std()
            .args(args)
            .arg(&input)
            .stdout(full.try_clone().unwrap())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = assert_one_error_line(&format!("{args:?} > /dev/full"), &out);
        assert!(stderr.contains("No space left"), "{stderr}");
    }
    assert_eq!(listing(dir.path()), ["in.wasm"]);
}

/// Runs segpack with a file size limit of `limit` bytes (RLIMIT_FSIZE, with
/// SIGXFSZ ignored so that the write fails with EFBIG instead of killing
/// the process): a full disk without needing one.
fn segpack_with_file_size_limit(limit: u64, args: &[&std::ffi::OsStr]) -> Output {
    let mut command = segpack_std();
    command.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    command.output().unwrap()
}

#[test]
fn a_full_disk_leaves_no_output_and_no_temporary_file() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("in.wasm");
    write_big_module(&input, 1 << 20);
    let original = fs::read(&input).unwrap();
    let output = dir.path().join("out.wasm");
    let out = segpack_with_file_size_limit(64 * 1024, &pack_args(&input, &output));
    assert_one_error_line("a file size limit of 64 KiB", &out);
    assert!(!output.exists(), "output created");
    assert_eq!(listing(dir.path()), ["in.wasm"], "temporary file left");
    assert_eq!(fs::read(&input).unwrap(), original);
}

#[test]
fn a_full_disk_in_place_leaves_the_input_as_it_was() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("in.wasm");
    write_big_module(&input, 1 << 20);
    let original = fs::read(&input).unwrap();
    let out = segpack_with_file_size_limit(64 * 1024, &pack_args(&input, &input));
    assert_one_error_line("in place with a file size limit of 64 KiB", &out);
    assert_eq!(listing(dir.path()), ["in.wasm"], "temporary file left");
    assert!(
        fs::read(&input).unwrap() == original,
        "the input changed after a failed in-place write"
    );
}

#[test]
fn a_full_disk_while_spooling_stdin_is_a_one_line_error() {
    // stdin is spooled to a temporary file first: that write fails too.
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("in.wasm");
    write_big_module(&input, 1 << 20);
    let spool = TempDir::new().unwrap();
    let output = dir.path().join("out.wasm");
    let mut command = segpack_std();
    command
        .env("TMPDIR", spool.path())
        .args(["pack", "-o"])
        .arg(&output)
        .stdin(fs::File::open(&input).unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let rlimit = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = command.output().unwrap();
    assert_one_error_line("spooling stdin with a file size limit", &out);
    assert!(!output.exists());
    assert_eq!(listing(dir.path()), ["in.wasm"]);
    assert!(listing(spool.path()).is_empty(), "spool file left behind");
}

/// Special files (devices, FIFOs) named by `-o` must be written through,
/// never replaced: segpack renames a temporary file over the target, so
/// `-o /dev/null` run as root would replace the system's /dev/null with a
/// regular file, and `-o /dev/full` "succeeds". Tested on device nodes made
/// in a temporary directory (needs root) and on a FIFO (does not).
#[test]
fn output_to_a_special_file_writes_through_it() {
    let dir = TempDir::new().unwrap();
    let input = write(&dir, "in.wasm", &packable());

    // A FIFO, with a reader.
    let fifo = dir.path().join("fifo");
    let status = StdCommand::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            // Opening blocks until the writer opens; a rename over the FIFO
            // never opens it, so give up after a while.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(fs::read(&fifo));
            });
            rx.recv_timeout(Duration::from_secs(10)).ok()
        })
    };
    let out = pack_to(&input, &fifo).output().unwrap();
    let still_fifo = fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo();
    if !still_fifo {
        // Unblock the reader thread, if it still waits, by making a new FIFO
        // at the path... it opened the old inode; just let it time out.
        let _ = fs::remove_file(&fifo);
    }
    let read = reader.join().unwrap();
    assert!(out.status.success(), "-o FIFO: {out:?}");
    assert!(still_fifo, "-o FIFO replaced the FIFO with a regular file");
    let bytes = read.expect("nothing was written into the FIFO").unwrap();
    wasmparser::validate(&bytes).expect("what went through the FIFO validates");

    assert!(
        can_mknod(dir.path()),
        "the device cases need to create device nodes: run the tests as root, or skip this test with --skip output_to_a_special_file_writes_through_it"
    );
    // A full device: exit 1, and the node is still a device.
    let full = dir.path().join("full");
    mknod(&full, 1, 7);
    let out = pack_to(&input, &full).output().unwrap();
    let still_device = fs::symlink_metadata(&full)
        .unwrap()
        .file_type()
        .is_char_device();
    assert!(
        still_device,
        "-o FULL-DEVICE replaced the device node with a regular file"
    );
    assert_one_error_line("-o FULL-DEVICE", &out);
    assert_eq!(listing(dir.path()), ["fifo", "full", "in.wasm"]);

    // A null device: success, and the node is still a device.
    let null = dir.path().join("null");
    mknod(&null, 1, 3);
    let out = pack_to(&input, &null).output().unwrap();
    assert!(out.status.success(), "-o NULL-DEVICE: {out:?}");
    assert!(
        fs::symlink_metadata(&null)
            .unwrap()
            .file_type()
            .is_char_device(),
        "-o NULL-DEVICE replaced the device node with a regular file"
    );
}

// ---------------------------------------------------------------------------
// Output paths that cannot be written.

#[test]
fn output_in_an_unwritable_directory_is_a_one_line_error() {
    let dir = TempDir::new().unwrap();
    let input = write(&dir, "in.wasm", &packable());
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    let probe = locked.join("probe");
    if fs::write(&probe, b"").is_ok() {
        let _ = fs::remove_file(&probe);
        eprintln!(
            "note: a 0555 directory is writable here (running as root); \
             the unwritable-directory case is covered by /proc below"
        );
    } else {
        let output = locked.join("out.wasm");
        let out = pack_to(&input, &output).output().unwrap();
        assert_one_error_line("-o in a 0555 directory", &out);
        assert!(listing(&locked).is_empty());
    }
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();

    // No one may create files in /proc, not even root.
    let out = pack_to(&input, "/proc/segpack-test-out.wasm")
        .output()
        .unwrap();
    assert_one_error_line("-o /proc/NEW", &out);
    let out = pack_to(&input, "/proc/version").output().unwrap();
    assert_one_error_line("-o /proc/version", &out);
    assert_eq!(listing(dir.path()), ["in.wasm", "locked"]);
}

#[test]
fn output_under_a_regular_file_is_a_one_line_error() {
    let dir = TempDir::new().unwrap();
    let input = write(&dir, "in.wasm", &packable());
    let file = write(&dir, "file.txt", b"not a directory");
    let out = pack_to(&input, file.join("out.wasm")).output().unwrap();
    assert_one_error_line("-o FILE/out.wasm", &out);
    assert_eq!(listing(dir.path()), ["file.txt", "in.wasm"]);
    assert_eq!(fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn output_naming_a_directory_is_a_one_line_error() {
    let dir = TempDir::new().unwrap();
    let input = write(&dir, "in.wasm", &packable());
    let target = dir.path().join("target");
    fs::create_dir(&target).unwrap();
    write(&dir, "target/keep", b"x");
    let out = pack_to(&input, &target).output().unwrap();
    assert_one_error_line("-o DIRECTORY", &out);
    assert!(target.is_dir());
    assert_eq!(listing(&target), ["keep"]);
    assert_eq!(
        listing(dir.path()),
        ["in.wasm", "target"],
        "temporary file left"
    );
}

// ---------------------------------------------------------------------------
// Inputs that cannot be read.

#[test]
fn unreadable_inputs_are_one_line_errors() {
    let dir = TempDir::new().unwrap();
    let sub = dir.path().join("a-directory");
    fs::create_dir(&sub).unwrap();
    let plain = write(&dir, "plain", b"x");
    let output = dir.path().join("out.wasm");
    let cases: [(&str, PathBuf); 3] = [
        ("a directory", sub.clone()),
        ("a missing file", dir.path().join("missing.wasm")),
        ("a path under a file", plain.join("x")),
    ];
    for (what, input) in cases {
        let out = pack_to(&input, &output).output().unwrap();
        assert_one_error_line(&format!("pack {what}"), &out);
        assert!(!output.exists(), "{what}: output created");
        let out = segpack().arg("inspect").arg(&input).output().unwrap();
        assert_one_error_line(&format!("inspect {what}"), &out);
        let out = segpack()
            .arg("verify")
            .arg(&input)
            .arg(&input)
            .output()
            .unwrap();
        assert_one_error_line(&format!("verify {what}"), &out);
    }
    assert_eq!(listing(dir.path()), ["a-directory", "plain"]);

    // In place on a directory: nothing happens to it.
    let out = pack_to(&sub, &sub).output().unwrap();
    assert_one_error_line("pack DIRECTORY -o DIRECTORY", &out);
    assert!(sub.is_dir());
    assert!(listing(&sub).is_empty());
    assert_eq!(listing(dir.path()), ["a-directory", "plain"]);
}

#[test]
fn an_empty_input_file_is_a_one_line_error() {
    let dir = TempDir::new().unwrap();
    let input = write(&dir, "in.wasm", b"");
    let out = pack_to(&input, &input).output().unwrap();
    assert_one_error_line("empty input in place", &out);
    assert_eq!(fs::read(&input).unwrap(), b"");
    assert_eq!(listing(dir.path()), ["in.wasm"]);
}

// ---------------------------------------------------------------------------
// Signals in the middle of writing.

/// Whether `dir` holds a file other than `keep`.
fn has_files_besides(dir: &Path, keep: &[&str]) -> bool {
    listing(dir).iter().any(|n| !keep.contains(&n.as_str()))
}

/// When to send the signal.
#[derive(Debug, Clone, Copy, PartialEq)]
enum When {
    /// As soon as the temporary output file exists.
    Created,
    /// Once bytes have been written to it.
    Writing,
}

/// The size of the temporary output file in `dir`, if there is one.
fn temporary_file_size(dir: &Path) -> Option<u64> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with(".segpack-"))
        .and_then(|e| e.metadata().ok())
        .map(|m| m.len())
}

/// Starts `segpack pack big.wasm -o out.wasm`, waits until its temporary
/// output file exists (`when`), sends `signal`, and checks what is left.
/// Returns `false` when segpack finished before it could be signalled (the
/// input was written too fast).
fn interrupt_while_writing(dir: &Path, input: &Path, signal: i32, when: When) -> bool {
    let output = dir.join("out.wasm");
    let mut child = pack_to_std(input, &output)
        .arg("--threads")
        .arg("1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut signalled = false;
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            break;
        }
        let ready = match when {
            When::Created => has_files_besides(dir, &["big.wasm"]),
            When::Writing => temporary_file_size(dir).is_some_and(|n| n > 0),
        };
        if !signalled && ready {
            // SAFETY: plain kill(2) of our own child.
            let rc = unsafe { libc::kill(child.id() as i32, signal) };
            assert_eq!(rc, 0);
            signalled = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "segpack neither finished nor died"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    let out = child.wait_with_output().unwrap();
    if !signalled {
        let _ = fs::remove_file(&output);
        return false;
    }
    let status = out.status;
    let by_signal = status.signal() == Some(signal);
    let by_code = matches!(status.code(), Some(1 | 130 | 143 | 129));
    if !(by_signal || by_code) && status.success() {
        // It finished between our look at the directory and the signal.
        let _ = fs::remove_file(&output);
        return false;
    }
    assert!(
        by_signal || by_code,
        "signal {signal}: segpack ended with {status:?}, stderr {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!output.exists(), "signal {signal}: out.wasm exists");
    assert_eq!(
        listing(dir),
        ["big.wasm"],
        "signal {signal}: temporary files left"
    );
    true
}

#[test]
fn signals_while_writing_leave_no_files() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("big.wasm");
    // Large enough that writing the output takes a while.
    write_big_module(&input, 200 << 20);
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let mut caught = false;
        for _attempt in 0..5 {
            if interrupt_while_writing(dir.path(), &input, signal, When::Writing) {
                caught = true;
                break;
            }
        }
        assert!(
            caught,
            "signal {signal}: segpack always finished before it could be interrupted"
        );
    }
}

/// A signal that comes just after segpack created its temporary output
/// file, before it registered the file for removal, leaves the file behind
/// (src/io.rs `write_atomically`: `tempfile_in`, then `Pending::register`).
/// Signalled as soon as the file shows up, about one run in six leaves a
/// `.segpack-*.tmp` of 0 bytes; 40 runs make that near certain.
#[test]
fn signals_just_after_the_temporary_file_is_created_leave_no_files() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("big.wasm");
    write_big_module(&input, 64 << 20);
    let mut interrupted = 0;
    for _ in 0..40 {
        if interrupt_while_writing(dir.path(), &input, libc::SIGTERM, When::Created) {
            interrupted += 1;
        }
    }
    assert!(
        interrupted >= 20,
        "only {interrupted} of 40 runs interrupted"
    );
}

#[test]
fn signals_while_spooling_stdin_leave_no_files() {
    // segpack copies stdin to a temporary file before mapping it: a signal
    // then must not leave that copy behind.
    let dir = TempDir::new().unwrap();
    let spool = TempDir::new().unwrap();
    let output = dir.path().join("out.wasm");
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut child = segpack_std()
            .env("TMPDIR", spool.path())
            .arg("pack")
            .arg("-o")
            .arg(&output)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Feed part of a module, then leave stdin open: segpack is still
        // reading when the signal comes.
        let mut stdin = child.stdin.take().unwrap();
        let mut head = b"\0asm\x01\0\0\0".to_vec();
        head.extend([0, 0x80, 0x80, 0x80, 0x01, 1, b'x']); // custom section of 2 MiB
        head.extend(vec![0u8; 1 << 20]);
        use std::io::Write;
        stdin.write_all(&head).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: plain kill(2) of our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let status = out.status;
        assert!(
            status.signal() == Some(signal) || matches!(status.code(), Some(1 | 130 | 143)),
            "signal {signal} while spooling: {status:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!output.exists());
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
        assert!(
            listing(spool.path()).is_empty(),
            "signal {signal}: spool files left: {:?}",
            listing(spool.path())
        );
    }
}

/// Another process truncates the input while segpack reads it. Reading a
/// mapped page past the new end raises SIGBUS, and copying a range past it
/// comes up short: either way segpack stops (exit status 1, or killed by
/// SIGBUS after a one-line error), writes no output and leaves no temporary
/// file. Which of the two happens depends on timing; a run that finished
/// before the truncation is fine too, but at least one run must be cut.
#[test]
fn input_truncated_during_a_run_leaves_no_output() {
    let dir = TempDir::new().unwrap();
    let mut cut = 0;
    for delay_ms in [0u64, 1, 2, 5, 10, 20, 40, 80] {
        let input = dir.path().join("big.wasm");
        let output = dir.path().join("out.wasm");
        let _ = fs::remove_file(&output);
        write_big_module(&input, 200 << 20);
        let child = pack_to_std(&input, &output)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        fs::OpenOptions::new()
            .write(true)
            .open(&input)
            .unwrap()
            .set_len(1000)
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !has_files_besides(dir.path(), &["big.wasm", "out.wasm"]),
            "after {delay_ms} ms: files left behind: {:?}",
            listing(dir.path())
        );
        if out.status.success() {
            assert!(
                output.exists(),
                "after {delay_ms} ms: success without output"
            );
            continue;
        }
        cut += 1;
        assert!(!output.exists(), "after {delay_ms} ms: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 1, "after {delay_ms} ms: {stderr:?}");
        assert!(lines[0].starts_with("error: "), "{stderr:?}");
        match out.status.signal() {
            Some(signal) => assert_eq!(signal, libc::SIGBUS, "{stderr}"),
            None => assert_eq!(out.status.code(), Some(1), "{stderr}"),
        }
    }
    assert!(cut > 0, "segpack always finished before the input was cut");
}
