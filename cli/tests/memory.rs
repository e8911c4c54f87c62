//! Resident memory stays flat (issue 6, SPEC §8): packing a large naive
//! snapshot keeps the peak resident set (mapped input pages included) under
//! 64 MiB, for a file and for stdin, on the coarse route (a binding cap)
//! and on the full pass (a cap that binds loosely). The time figures live in
//! benchmarks; memory is a bound, so it is tested.

#![cfg(target_os = "linux")]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::Path;
use std::process::Stdio;

use support::cli::{pack_args, segpack_std};
use support::wasm::write_uleb;
use tempfile::TempDir;

const PAGE: usize = 1 << 16;

/// A naive snapshot: one active segment per used 64 KiB page of a memory of
/// `pages` pages, a third of them used, each holding objects separated by
/// zero gaps from 3 bytes to 2 KiB. About `pages / 3 × 64 KiB` bytes.
fn write_snapshot(path: &Path, pages: usize) {
    use std::io::Write;
    let mut rng = support::rng::Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next_u64();
    let used: Vec<usize> = (0..pages).filter(|i| i % 3 == 0).collect();
    let page_of = |next: &mut dyn FnMut() -> u64| {
        let mut page = vec![0u8; PAGE];
        let mut at = 0;
        while at < PAGE {
            let len = 8 + (next() % 120) as usize;
            for b in page[at..(at + len).min(PAGE)].iter_mut() {
                *b = (next() % 255) as u8 + 1;
            }
            at += len + [3, 9, 12, 40, 300, 2048][(next() % 6) as usize];
        }
        page
    };
    let mut section = Vec::new();
    write_uleb(&mut section, used.len() as u64);
    let mut headers = Vec::new();
    for &p in &used {
        let mut h = vec![0, 0x41];
        support::wasm::write_sleb(&mut h, (p * PAGE) as i64);
        h.push(0x0b);
        write_uleb(&mut h, PAGE as u64);
        headers.push(h);
    }
    let section_len = section.len() + headers.iter().map(|h| h.len() + PAGE).sum::<usize>();
    let mut file = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut head = b"\0asm\x01\0\0\0".to_vec();
    let mut memory = vec![1, 0];
    write_uleb(&mut memory, pages as u64);
    head.push(5);
    write_uleb(&mut head, memory.len() as u64);
    head.extend(memory);
    head.push(11);
    write_uleb(&mut head, section_len as u64);
    head.extend(section);
    file.write_all(&head).unwrap();
    for h in headers {
        file.write_all(&h).unwrap();
        file.write_all(&page_of(&mut next)).unwrap();
    }
    file.flush().unwrap();
}

/// Runs segpack with `args`, stdin from `stdin` if given, and returns its
/// peak resident set in KiB (from `wait4`).
fn peak_rss_kib(args: &[&std::ffi::OsStr], stdin: Option<&Path>) -> u64 {
    let mut command = segpack_std();
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(p) = stdin {
        command.stdin(fs::File::open(p).unwrap());
    }
    // Reaped below by wait4, which also reports the peak memory.
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().unwrap();
    let mut status = 0;
    // SAFETY: plain wait4 on our own child, with valid out-pointers; the
    // child is reaped here, so `Child::wait` is never called.
    let rusage = unsafe {
        let mut rusage: libc::rusage = std::mem::zeroed();
        let pid = libc::wait4(child.id() as i32, &mut status, 0, &mut rusage);
        assert_eq!(pid, child.id() as i32);
        rusage
    };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "segpack {args:?} failed: {status}"
    );
    rusage.ru_maxrss as u64
}

#[test]
fn peak_resident_memory_stays_under_64_mib() {
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("snapshot.wasm");
    let output = dir.path().join("out.wasm");
    // 3,600 pages: a 225 MiB memory, 1,200 segments, a 75 MiB file.
    write_snapshot(&input, 3600);
    let size = fs::metadata(&input).unwrap().len();
    assert!(size > 64 << 20, "the input must be larger than the bound");
    let (i, o) = (input.as_os_str(), output.as_os_str());
    let cases: [(&str, Vec<&std::ffi::OsStr>, Option<&Path>); 3] = [
        ("file, cap 10,000", pack_args(i, o).to_vec(), None),
        (
            "file, cap 100,000",
            vec![
                "pack".as_ref(),
                "--max-segments".as_ref(),
                "100000".as_ref(),
                i,
                "-o".as_ref(),
                o,
            ],
            None,
        ),
        (
            "stdin",
            vec!["pack".as_ref(), "-o".as_ref(), o],
            Some(&input),
        ),
    ];
    for (name, args, stdin) in cases {
        let kib = peak_rss_kib(&args, stdin);
        // The target is 64 MiB at any size; this input takes 10 to 30, so
        // pages left mapped behind the scan show up well before that.
        assert!(
            kib < 48 << 10,
            "{name}: peak resident set {kib} KiB for a {size}-byte input"
        );
        let packed = fs::metadata(&output).unwrap().len();
        assert!(packed < size, "{name}: {packed} bytes, not smaller");
    }
}
