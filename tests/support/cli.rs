//! Running the `segpack` binary in tests: the command, files in a temporary
//! directory, and what an error must look like.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use tempfile::TempDir;

/// The `segpack` binary built for this test run.
pub fn segpack() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("segpack").unwrap()
}

/// The same, as a plain `std::process::Command` (to spawn and signal it).
pub fn segpack_std() -> std::process::Command {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("segpack"))
}

/// The arguments of "pack `src` to `dst`": `pack SRC -o DST`, for commands
/// that run segpack some other way (under `strace`, `/usr/bin/time`, with a
/// resource limit).
pub fn pack_args<'a>(
    src: &'a (impl AsRef<OsStr> + ?Sized),
    dst: &'a (impl AsRef<OsStr> + ?Sized),
) -> [&'a OsStr; 4] {
    ["pack".as_ref(), src.as_ref(), "-o".as_ref(), dst.as_ref()]
}

/// `segpack pack SRC -o DST`, ready to run; more options may follow
/// (`.arg("--stats")`: clap takes them after the positionals too).
pub fn pack_to(src: impl AsRef<OsStr>, dst: impl AsRef<OsStr>) -> assert_cmd::Command {
    let mut command = segpack();
    command.args(pack_args(&src, &dst));
    command
}

/// [`pack_to`] as a plain `std::process::Command` (to spawn and signal it).
pub fn pack_to_std(src: impl AsRef<OsStr>, dst: impl AsRef<OsStr>) -> std::process::Command {
    let mut command = segpack_std();
    command.args(pack_args(&src, &dst));
    command
}

/// The program at `path`, which a test cannot do without: when it is missing
/// the test fails (it is never skipped), saying "this test `why`: install it
/// (apt-get install `package`)".
#[track_caller]
pub fn required_tool(path: &'static str, why: &str, package: &str) -> &'static Path {
    let tool = Path::new(path);
    assert!(
        tool.exists(),
        "this test {why}: install it (apt-get install {package})"
    );
    tool
}

/// Writes `bytes` to `name` in `dir`; returns its path.
pub fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The file names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Exit status 1 and exactly one line on stderr, starting `error: `;
/// returns stderr.
#[track_caller]
pub fn assert_one_error_line(what: &str, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit status {:?}, stderr {stderr:?}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: stderr {stderr:?}");
    assert!(lines[0].starts_with("error: "), "{what}: {stderr:?}");
    stderr
}
