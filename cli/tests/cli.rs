//! The command line (SPEC §6): streams, in-place output, summaries, exit
//! statuses, and that nothing is written when the input is bad.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::Path;

use support::cli::{
    assert_one_error_line, listing, pack_args, pack_to, required_tool, segpack, write,
};
use support::read::*;
use support::wasm::write_uleb;
use tempfile::TempDir;

/// A module that packs: two segments with zeros around their bytes.
fn packable() -> Vec<u8> {
    wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "\00\00\00hello\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
        (data (i32.const 4096) "\00\00world\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00"))"#)
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// What `segpack inspect FILE` prints on stdout; it must succeed.
#[track_caller]
fn inspect_stdout(file: &Path) -> String {
    let out = segpack().arg("inspect").arg(file).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Packs `input` file to file, returning the output's bytes.
fn pack_file_to_file(input: &[u8]) -> Vec<u8> {
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in.wasm", input);
    let dst = dir.path().join("out.wasm");
    pack_to(&src, &dst).assert().success().stdout("");
    fs::read(&dst).unwrap()
}

#[test]
fn stdin_to_stdout_gives_the_same_bytes_as_file_to_file() {
    let input = packable();
    let from_files = pack_file_to_file(&input);
    assert!(from_files.len() < input.len());
    validate(&from_files);

    let piped = segpack()
        .arg("pack")
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr_of(&piped));
    assert_eq!(piped.stdout, from_files);

    // '-' names stdin and stdout explicitly.
    let dashed = segpack()
        .args(["pack", "-", "-o", "-"])
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert!(dashed.status.success(), "{}", stderr_of(&dashed));
    assert_eq!(dashed.stdout, from_files);

    // And the library agrees.
    assert_eq!(pack(&input), from_files);
}

#[test]
fn output_may_name_the_input_itself() {
    let input = packable();
    let expected = pack_file_to_file(&input);
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "snap.wasm", &input);
    pack_to(&path, &path).assert().success();
    assert_eq!(fs::read(&path).unwrap(), expected);
    // No temporary file left beside it.
    assert_eq!(listing(dir.path()), ["snap.wasm"]);
}

#[cfg(unix)]
#[test]
fn in_place_output_keeps_the_files_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let path = write(&dir, "snap.wasm", &packable());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    pack_to(&path, &path).assert().success();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

/// Checks `line` reads `segments N -> M, data section X -> Y (P), T s` (P:
/// `-42%`, `-2.1%`, `-<0.1%` or `unchanged`) and returns (N, M) with
/// thousands separators removed.
fn parse_stats(line: &str) -> (u64, u64) {
    fn bad<T>(line: &str) -> T {
        panic!("not a stats line: {line:?}")
    }
    let rest = line.strip_prefix("segments ").unwrap_or_else(|| bad(line));
    let (n, rest) = rest.split_once(" -> ").unwrap_or_else(|| bad(line));
    let (m, rest) = rest
        .split_once(", data section ")
        .unwrap_or_else(|| bad(line));
    let (x, rest) = rest.split_once(" -> ").unwrap_or_else(|| bad(line));
    let (y, rest) = rest.split_once(" (").unwrap_or_else(|| bad(line));
    let (p, rest) = rest.split_once("), ").unwrap_or_else(|| bad(line));
    let t = rest.strip_suffix(" s").unwrap_or_else(|| bad(line));
    let number = |s: &str| -> u64 { s.replace(',', "").parse().unwrap_or_else(|_| bad(line)) };
    for size in [x, y] {
        let (v, unit) = size.split_once(' ').unwrap_or_else(|| bad(line));
        assert!(v.parse::<f64>().is_ok(), "size {size:?} in {line:?}");
        assert!(
            ["B", "KiB", "MiB", "GiB", "TiB"].contains(&unit),
            "unit {unit:?} in {line:?}"
        );
    }
    let change = p.strip_suffix('%').map(|p| p.replacen('<', "", 1));
    assert!(
        p == "unchanged"
            || change.is_some_and(|c| c.starts_with(['+', '-']) && c[1..].parse::<f64>().is_ok()),
        "percent {p:?} in {line:?}"
    );
    assert!(t.parse::<f64>().is_ok(), "time {t:?} in {line:?}");
    (number(n), number(m))
}

#[test]
fn stats_prints_one_summary_line_on_stderr() {
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in.wasm", &packable());
    let out = pack_to(&src, dir.path().join("out.wasm"))
        .arg("--stats")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = stderr_of(&out);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr:?}");
    assert_eq!(parse_stats(lines[0]), (2, 2));
    assert!(lines[0].contains("(-"), "data shrank: {stderr:?}");

    // Through a pipe, the summary stays off stdout.
    let piped = segpack()
        .args(["pack", "--stats"])
        .write_stdin(packable())
        .output()
        .unwrap();
    assert_eq!(piped.stdout, pack(&packable()));
    assert_eq!(stderr_of(&piped).lines().count(), 1);
}

#[test]
fn json_prints_valid_json_with_segment_counts() {
    let input = packable();
    let out = segpack()
        .args(["pack", "--json"])
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, pack(&input));
    let v: serde_json::Value = serde_json::from_str(&stderr_of(&out))
        .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", stderr_of(&out)));
    assert_eq!(v["segments_before"], 2);
    assert_eq!(v["segments_after"], 2);
    assert!(v["data_bytes_after"].as_u64().unwrap() < v["data_bytes_before"].as_u64().unwrap());
    assert_eq!(v["changed"], true);
    assert_eq!(
        v["output_bytes"].as_u64().unwrap(),
        pack(&input).len() as u64
    );
}

#[test]
fn warnings_go_to_stderr_unless_quiet() {
    // Out of bounds: left as is, with a warning.
    let input =
        wat(r#"(module (memory 1) (data (i32.const 0) "\00\00a") (data (i32.const 65535) "ab"))"#);
    let out = segpack()
        .arg("pack")
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, input);
    let stderr = stderr_of(&out);
    assert!(stderr.starts_with("warning: "), "{stderr:?}");
    let quiet = segpack()
        .args(["pack", "--quiet"])
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert_eq!(quiet.stdout, input);
    assert_eq!(stderr_of(&quiet), "");
}

/// Inputs segpack must refuse: exit 1, one line of error with an offset.
fn malformed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let valid = packable();
    let mut truncated = valid.clone();
    truncated.truncate(valid.len() - 7);

    let mut bad_version = valid.clone();
    bad_version[4] = 2;

    // A custom section whose size says 100 bytes, with 3 left in the file.
    let mut past_end = b"\0asm\x01\0\0\0".to_vec();
    past_end.extend([0x00, 100, 1, b'x', b'y']);

    // A section size LEB of 6 bytes (a u32 takes at most 5).
    let mut overlong = b"\0asm\x01\0\0\0".to_vec();
    overlong.extend([0x00, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00]);

    // Length fields that promise 4 GiB: an error, never a 4 GiB allocation.
    let mut huge_segment = b"\0asm\x01\0\0\0".to_vec();
    huge_segment.extend([0x05, 0x03, 0x01, 0x00, 0x01]);
    huge_segment.extend([0x0b, 0x0a, 0x01, 0x00, 0x41, 0x00, 0x0b]);
    huge_segment.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);

    let type_mismatch = wat(r#"(module (func (result i32) (i64.const 1)))"#);
    // wat checks syntax only; the module is invalid.
    assert!(wasmparser::validate(&type_mismatch).is_err());

    vec![
        ("truncated module", truncated),
        ("bad magic", bad_magic()),
        ("bad version", bad_version),
        ("section length past the end", past_end),
        ("overlong LEB", overlong),
        ("data segment length of 4 GiB", huge_segment),
        ("type mismatch in a function", type_mismatch),
        ("empty file", Vec::new()),
        (
            "relocatable object",
            wat(r#"(module (memory 1) (data (i32.const 0) "\00a") (@custom "linking" "\02"))"#),
        ),
    ]
}

/// [`support::cli::assert_one_error_line`], and the line names an offset.
fn assert_one_error_line_with_offset(what: &str, out: &std::process::Output) {
    let stderr = assert_one_error_line(what, out);
    assert!(stderr.contains("offset 0x"), "{what}: {stderr:?}");
}

#[test]
fn malformed_input_is_refused_without_creating_the_output() {
    for (what, bytes) in malformed_inputs() {
        let dir = TempDir::new().unwrap();
        let src = write(&dir, "in.wasm", &bytes);
        let dst = dir.path().join("out.wasm");
        let out = pack_to(&src, &dst).output().unwrap();
        assert_one_error_line_with_offset(what, &out);
        assert!(out.stdout.is_empty(), "{what}");
        assert!(!dst.exists(), "{what}: output file created");
        assert_eq!(listing(dir.path()), ["in.wasm"], "{what}: stray files");
        assert_eq!(fs::read(&src).unwrap(), bytes, "{what}: input changed");
    }
}

#[test]
fn malformed_input_leaves_an_existing_output_untouched() {
    for (what, bytes) in malformed_inputs() {
        let dir = TempDir::new().unwrap();
        let src = write(&dir, "in.wasm", &bytes);
        let dst = write(&dir, "out.wasm", b"precious bytes");
        let out = pack_to(&src, &dst).output().unwrap();
        assert_one_error_line_with_offset(what, &out);
        assert_eq!(fs::read(&dst).unwrap(), b"precious bytes", "{what}");
        assert_eq!(listing(dir.path()), ["in.wasm", "out.wasm"], "{what}");

        // In place: the input is left as it was.
        let out = pack_to(&src, &src).output().unwrap();
        assert_one_error_line_with_offset(what, &out);
        assert_eq!(fs::read(&src).unwrap(), bytes, "{what}");
    }
}

#[test]
fn malformed_input_on_stdin_writes_nothing_to_stdout() {
    for (what, bytes) in malformed_inputs() {
        let out = segpack().arg("pack").write_stdin(bytes).output().unwrap();
        assert_one_error_line_with_offset(what, &out);
        assert!(out.stdout.is_empty(), "{what}: wrote to stdout");
    }
}

/// A file that does not start with `\0asm`.
fn bad_magic() -> Vec<u8> {
    let mut bytes = packable();
    bytes[1] = b'x';
    bytes
}

#[test]
fn bad_magic_error_is_one_line() {
    // Regression: wasmparser's message pretty-prints both magic numbers as
    // multi-line arrays; segpack must still print one line.
    let out = segpack()
        .arg("pack")
        .write_stdin(bad_magic())
        .output()
        .unwrap();
    assert_one_error_line_with_offset("bad magic", &out);
    assert!(out.stdout.is_empty());
}

#[test]
fn huge_data_segment_count_is_an_error_not_an_allocation() {
    // One memory, then a data section whose count says 4,294,967,295 and
    // holds nothing else.
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend([0x05, 0x03, 0x01, 0x00, 0x01]);
    bytes.extend([0x0b, 0x05, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in.wasm", &bytes);
    let dst = dir.path().join("out.wasm");
    let out = pack_to(&src, &dst).output().unwrap();
    assert_one_error_line_with_offset("data segment count of 2^32 - 1", &out);
    assert!(!dst.exists());
}

#[test]
fn missing_input_file_is_an_io_error() {
    let dir = TempDir::new().unwrap();
    let dst = dir.path().join("out.wasm");
    let out = pack_to(dir.path().join("nope.wasm"), &dst)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).starts_with("error: "));
    assert_eq!(stderr_of(&out).lines().count(), 1);
    assert!(!dst.exists());
}

#[test]
fn output_into_a_missing_directory_is_an_io_error() {
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in.wasm", &packable());
    let out = pack_to(&src, dir.path().join("no/such/dir/out.wasm"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(listing(dir.path()), ["in.wasm"]);
}

#[test]
fn usage_errors_exit_with_status_two() {
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in.wasm", &packable());
    let dst = dir.path().join("out.wasm");
    let cases: [&[&str]; 6] = [
        &["--max-segments", "0"],
        &["--max-segments", "100001"],
        &["--max-segments", "many"],
        &["--frobnicate"],
        &["--threads", "-1"],
        &["extra-positional"],
    ];
    for args in cases {
        let out = pack_to(&src, &dst).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr_of(&out));
        assert!(!dst.exists(), "{args:?}: output written");
    }
    // The limits themselves are accepted.
    for cap in ["1", "100000"] {
        pack_to(&src, &dst)
            .args(["--max-segments", cap])
            .assert()
            .success();
    }
    segpack().assert().code(2);
    segpack().arg("frobnicate").assert().code(2);
    segpack().arg("inspect").assert().code(2);
}

/// A module whose one segment is a 3 MiB image (more than one scanning
/// job, so the worker pool runs), with one non-zero byte per 4 KiB page.
fn three_mib_module() -> Vec<u8> {
    let mut image = vec![0u8; 3 << 20];
    for i in (0..image.len()).step_by(4096) {
        image[i] = 1;
    }
    let mut data = Vec::new();
    write_uleb(&mut data, 1);
    data.extend([0x00, 0x41, 0x00, 0x0b]);
    write_uleb(&mut data, image.len() as u64);
    data.extend(&image);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend([0x05, 0x03, 0x01, 0x00, 0x40]); // one memory of 64 pages
    module.push(0x0b);
    write_uleb(&mut module, data.len() as u64);
    module.extend(data);
    module
}

#[test]
fn thread_count_does_not_change_the_output() {
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "big.wasm", &three_mib_module());
    let mut outputs = Vec::new();
    for threads in ["1", "2", "7", "0"] {
        let out = segpack()
            .arg("pack")
            .arg(&src)
            .args(["--threads", threads])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        outputs.push(out.stdout);
    }
    assert!(outputs.iter().all(|o| *o == outputs[0]));
    assert_eq!(data_segments(&outputs[0]).len(), 768);
}

#[test]
fn huge_thread_count_is_not_a_panic() {
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "big.wasm", &three_mib_module());
    let expected = segpack().arg("pack").arg(&src).output().unwrap().stdout;
    let out = segpack()
        .arg("pack")
        .arg(&src)
        .args(["--threads", &usize::MAX.to_string()])
        .output()
        .unwrap();
    let stderr = stderr_of(&out);
    assert!(!stderr.contains("panicked"), "{stderr}");
    match out.status.code() {
        // Clamped to something sensible: the same output.
        Some(0) => assert_eq!(out.stdout, expected),
        // Or refused as a usage error.
        Some(2) => assert!(out.stdout.is_empty()),
        other => panic!("exit status {other:?}: {stderr}"),
    }
}

#[test]
fn closing_a_large_gap_does_not_hold_its_zeros_in_memory() {
    // Memory 0: "a" at 0 and "b" at 96 MiB, as two segments. Memory 1: one
    // segment of 100 MiB of zeros ending in "c". With --max-segments 2,
    // memory 0's gap must close: 96 MiB of zeros written out, and the
    // output is still smaller than the input.
    let time = required_tool(
        "/usr/bin/time",
        "measures the child's peak memory with GNU time",
        "time",
    );
    let gap: u64 = 96 << 20;
    let zeros: u64 = 100 << 20;
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    // Two memories of 2000 pages (0x07d0 = `d0 0f`).
    module.extend([0x05, 0x07, 0x02, 0x00, 0xd0, 0x0f, 0x00, 0xd0, 0x0f]);
    let mut data = vec![0x03, 0x00, 0x41, 0x00, 0x0b, 0x01, b'a', 0x00, 0x41];
    // i32.const 96 MiB = 0x6000000: signed LEB 80 80 80 30.
    data.extend([0x80, 0x80, 0x80, 0x30, 0x0b, 0x01, b'b']);
    data.extend([0x02, 0x01, 0x41, 0x00, 0x0b]);
    write_uleb(&mut data, zeros);
    module.push(0x0b);
    write_uleb(&mut module, data.len() as u64 + zeros);
    module.extend(data);
    module.resize(module.len() + zeros as usize - 1, 0);
    module.push(b'c');

    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in.wasm", &module);
    drop(module);
    let dst = dir.path().join("out.wasm");
    let bin = assert_cmd::cargo::cargo_bin("segpack");
    let out = std::process::Command::new(time)
        .args(["-f", "maxrss %M"])
        .arg(&bin)
        .args(pack_args(&src, &dst))
        .args(["--max-segments", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    let kib: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no maxrss in {stderr:?}"));
    let written = fs::metadata(&dst).unwrap().len();
    assert!(written > gap && written < fs::metadata(&src).unwrap().len());
    assert!(
        kib < 48 * 1024,
        "peak RSS {kib} KiB while writing a {gap}-byte gap"
    );
}

#[test]
fn binary_output_is_never_written_to_a_terminal() {
    // assert_cmd cannot give the child a terminal; util-linux `script` can.
    let script = required_tool(
        "/usr/bin/script",
        "needs util-linux's script for a terminal",
        "bsdutils",
    );
    let dir = TempDir::new().unwrap();
    let src = write(&dir, "in.wasm", &packable());
    let bin = assert_cmd::cargo::cargo_bin("segpack");
    let inner = format!("'{}' pack '{}'", bin.display(), src.display());
    let out = std::process::Command::new(script)
        .args(["-qec", &inner, "/dev/null"])
        .output()
        .unwrap();
    // The child's stdout and stderr are the terminal `script` records.
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("terminal"), "{text}");
    assert!(
        !text.contains("\0asm"),
        "binary reached the terminal: {text:?}"
    );
}

#[test]
fn packing_twice_through_the_cli_changes_nothing() {
    let once = pack_file_to_file(&packable());
    let twice = pack_file_to_file(&once);
    assert_eq!(twice, once);
    // Nothing to gain: the input, byte for byte.
    let minimal = wat(r#"(module (memory 1) (data (i32.const 0) "abc"))"#);
    assert_eq!(pack_file_to_file(&minimal), minimal);
}

#[test]
fn inspect_prints_per_module_lines_and_writes_nothing() {
    let dir = TempDir::new().unwrap();
    let input = packable();
    let src = write(&dir, "in.wasm", &input);
    let stdout = inspect_stdout(&src);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("module: segments 2 -> 2, data section "),
        "{stdout}"
    );
    parse_stats(lines[1]);
    assert_eq!(listing(dir.path()), ["in.wasm"]);
    assert_eq!(fs::read(&src).unwrap(), input);

    let json = segpack()
        .args(["inspect", "--json"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["segments_before"], 2);
    assert_eq!(v["modules"].as_array().unwrap().len(), 1);
    assert_eq!(listing(dir.path()), ["in.wasm"]);
}

#[test]
fn inspect_names_each_module_of_a_component() {
    let dir = TempDir::new().unwrap();
    let input = wat(r#"(component
        (core module (memory 1) (data (i32.const 0) "\00\00a") (data (i32.const 3) "b"))
        (core module (memory 1) (data (i32.const 0) "xyz")))"#);
    let src = write(&dir, "c.wasm", &input);
    let stdout = inspect_stdout(&src);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("core module 0: segments 2 -> 1"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("core module 1: segments 1 -> 1"),
        "{stdout}"
    );
}

/// What `segpack inspect --svg` prints for `src`, which it must accept.
fn inspect_svg(src: &std::path::Path) -> String {
    let out = segpack()
        .args(["inspect", "--svg"])
        .arg(src)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inspect_svg_maps_each_memory_with_data() {
    let dir = TempDir::new().unwrap();
    let input = wat(r#"(component
        (core module (memory 1)
            (data (i32.const 3) "hello\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00!"))
        (core module (memory 2))
        (core module (import "env" "m" (memory 1)) (data (i32.const 0) "a\00\00\00\00\00\00\00\00b")))"#);
    let src = write(&dir, "c.wasm", &input);
    let svg = inspect_svg(&src);
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.ends_with("</svg>\n"));
    // The memories with data, not the one without.
    assert_eq!(svg.matches("<g class=\"memory\"").count(), 2, "{svg}");
    assert_eq!(svg.matches("<g ").count(), svg.matches("</g>").count());
    assert!(
        svg.contains("core module 0, memory 0 (32-bit): 64.0 KiB"),
        "{svg}"
    );
    assert!(
        svg.contains("core module 2, memory 0 (32-bit, imported)"),
        "{svg}"
    );
    assert!(
        svg.contains("before: 1 segment<") && svg.contains("after: 2 segments<"),
        "{svg}"
    );
    assert!(
        svg.contains("not packable: imported memory (pass --zero-filled-imports"),
        "{svg}"
    );
    // "hello" is in the first column of pixels, on the non-zero row.
    assert!(
        svg.contains("<rect x=\"160.0\" y=\"70\" width=\"1.0\" height=\"16\" fill=\"#c0392b\""),
        "{svg}"
    );
    assert_eq!(listing(dir.path()), ["c.wasm"]);

    // Not with --json, and a file that is not Wasm gets inspect's message.
    let both = segpack()
        .args(["inspect", "--svg", "--json"])
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2));
    let text = write(&dir, "notes.txt", b"hello, world");
    let out = segpack()
        .args(["inspect", "--svg", "notes.txt"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr_of(&out),
        "error: notes.txt is not a WebAssembly binary (it starts with \"hell\") (at offset 0x0)\n"
    );
    assert!(text.exists());
}

/// A byte at each end of a 4 GiB memory: two columns of 5.3 MiB, each
/// drawn, at the left and the right edge of the picture.
#[test]
fn inspect_svg_shows_single_bytes_in_a_4_gib_memory() {
    let dir = TempDir::new().unwrap();
    let input = wat(r#"(module (memory 65536)
        (data (i32.const 0) "a") (data (i32.const 4294967295) "b"))"#);
    let src = write(&dir, "big.wasm", &input);
    let svg = inspect_svg(&src);
    assert!(
        svg.contains("memory 0 (32-bit): 4.0 GiB, one column 5.3 MiB"),
        "{svg}"
    );
    let red: Vec<&str> = svg
        .lines()
        .filter(|l| l.contains("fill=\"#c0392b\""))
        .collect();
    assert_eq!(red.len(), 2, "{svg}");
    assert!(red[0].starts_with("<rect x=\"160.0\" "), "{}", red[0]);
    assert!(red[1].starts_with("<rect x=\"939.0\" "), "{}", red[1]);
}

#[test]
fn inspect_refuses_malformed_input() {
    for (what, bytes) in malformed_inputs() {
        let dir = TempDir::new().unwrap();
        let src = write(&dir, "in.wasm", &bytes);
        let out = segpack().arg("inspect").arg(&src).output().unwrap();
        assert_one_error_line_with_offset(what, &out);
        assert!(out.stdout.is_empty(), "{what}");
    }
}

#[test]
fn verify_accepts_a_module_and_its_packing() {
    let dir = TempDir::new().unwrap();
    let original = write(&dir, "a.wasm", &packable());
    let packed = write(&dir, "b.wasm", &pack(&packable()));
    segpack()
        .arg("verify")
        .arg(&original)
        .arg(&packed)
        .assert()
        .success();
    // A module with other memory contents is not equivalent.
    let other = write(
        &dir,
        "c.wasm",
        &wat(r#"(module (memory (export "mem") 1) (data (i32.const 3) "hellO"))"#),
    );
    let out = segpack()
        .arg("verify")
        .arg(&original)
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
}

#[test]
fn sample_snapshot_packs_smaller() {
    let sample = support::repo_root().join("samples/snapshot.wasm");
    let input = fs::read(&sample).unwrap();
    let dir = TempDir::new().unwrap();
    let dst = dir.path().join("packed.wasm");
    let out = pack_to(&sample, &dst).arg("--stats").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (before, after) = parse_stats(stderr_of(&out).trim_end());
    let packed = fs::read(&dst).unwrap();
    assert!(
        packed.len() < input.len(),
        "{} -> {}",
        input.len(),
        packed.len()
    );
    validate(&packed);
    assert_eq!(before, data_segments(&input).len() as u64);
    assert_eq!(after, data_segments(&packed).len() as u64);
    assert!(after <= segpack::MaxSegments::DEFAULT.get() as u64);
    assert_eq!(untouched_sections(&input), untouched_sections(&packed));
    // The sample is still packed the same way through a pipe.
    let piped = segpack()
        .arg("pack")
        .pipe_stdin(&sample)
        .unwrap()
        .output()
        .unwrap();
    assert_eq!(piped.stdout, packed);
}

// Issue 8: inspect per memory, verify, help.

#[test]
fn inspect_reports_each_memory_with_its_zero_bytes_and_what_packing_gives() {
    let dir = TempDir::new().unwrap();
    let input = wat(r#"(module
        (import "env" "mem" (memory 1))
        (memory 1)
        (data (memory 0) (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00b")
        (data (memory 1) (i32.const 0) "\00\00hello\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00world"))"#);
    let src = write(&dir, "two.wasm", &input);
    let stdout = inspect_stdout(&src);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].contains(
            "; memory 0 (32-bit, imported): payload 13 B (11 B zeros, 2 B non-zero), 1 segment, not packable: imported memory (pass --zero-filled-imports if the host zeroes it)"
        ),
        "{stdout}"
    );
    assert!(
        lines[0].contains(
            "; memory 1 (32-bit): payload 30 B (20 B zeros, 10 B non-zero), segments 1 -> 2, with headers "
        ),
        "{stdout}"
    );
    parse_stats(lines[1]);

    let json = segpack()
        .args(["inspect", "--json"])
        .arg(&src)
        .output()
        .unwrap();
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let memories = v["modules"][0]["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 2);
    assert_eq!(memories[0]["imported"], true);
    assert_eq!(memories[0]["packable"], false);
    assert!(
        memories[0]["not_packable_reason"]
            .as_str()
            .unwrap()
            .contains("--zero-filled-imports")
    );
    assert_eq!(memories[1]["memory"], 1);
    assert_eq!(memories[1]["index_type"], "i32");
    assert_eq!(memories[1]["segments"], 1);
    assert_eq!(memories[1]["data_bytes"], 30);
    assert_eq!(memories[1]["zero_bytes"], 20);
    assert_eq!(memories[1]["non_zero_bytes"], 10);
    assert_eq!(memories[1]["packed_segments"], 2);
    assert!(
        memories[1]["packed_segment_bytes"].as_u64().unwrap()
            < memories[1]["segment_bytes"].as_u64().unwrap()
    );

    // --zero-filled-imports makes the imported memory packable.
    let out = segpack()
        .args(["inspect", "--zero-filled-imports"])
        .arg(&src)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("memory 0 (32-bit, imported): payload 13 B (11 B zeros, 2 B non-zero), segments 1 -> 2, with headers "),
        "{stdout}"
    );
    assert_eq!(listing(dir.path()), ["two.wasm"]);
}

#[test]
fn help_shows_examples_for_every_subcommand() {
    for sub in ["pack", "inspect", "verify"] {
        let out = segpack().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Examples:"), "{sub}: {help}");
        assert!(help.contains(&format!("segpack {sub} ")), "{sub}: {help}");
    }
    let out = segpack().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in ["pack", "inspect", "verify"] {
        assert!(help.contains(sub), "{help}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = segpack().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("segpack {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn stats_of_a_component_has_a_line_per_nested_module_then_the_totals() {
    let dir = TempDir::new().unwrap();
    let src = write(
        &dir,
        "c.wasm",
        &wat(r#"(component
            (core module (memory 1) (data (i32.const 0) "\00\00a") (data (i32.const 3) "b"))
            (component (core module (memory 1) (data (i32.const 9) "q"))))"#),
    );
    let out = dir.path().join("out.wasm");
    let run = pack_to(&src, &out).arg("--stats").assert().success();
    let stderr = String::from_utf8(run.get_output().stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("  core module 0: segments 2 -> 1, "),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("  component 0 / core module 0: segments 1 -> 1, "),
        "{stderr}"
    );
    assert!(lines[2].starts_with("segments 3 -> 2, "), "{stderr}");
}
