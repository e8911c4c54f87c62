//! `segpack verify` and `segpack::verify`: every correct packing passes,
//! every wrong packing the tests can make by mutating a correct one fails
//! with a one-line explanation.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::PathBuf;

use assert_cmd::Command;
use segpack::{PackOptions, VerifyOptions};
use support::read::{pack, pack_with, validate, wat};
use support::wasm::{write_sleb, write_uleb};
use tempfile::TempDir;
use wasmparser::{Parser, Payload};

fn check(original: &[u8], packed: &[u8]) -> Option<String> {
    check_with(original, packed, &VerifyOptions::default())
}

fn check_with(original: &[u8], packed: &[u8], options: &VerifyOptions) -> Option<String> {
    segpack::verify(original, packed, options)
        .unwrap_or_else(|e| panic!("verify failed: {e}"))
        .map(|d| d.to_string())
}

/// Asserts that `mutated` is refused and that the explanation, one line,
/// contains `expected`.
fn assert_caught(original: &[u8], mutated: &[u8], expected: &str) {
    validate(mutated);
    let difference = check(original, mutated).expect("the mutation is not caught");
    assert!(!difference.contains('\n'), "{difference}");
    assert!(
        difference.contains(expected),
        "expected {expected:?} in: {difference}"
    );
}

/// A module's data segments as raw encodings, and a way to put changed ones
/// back: the data section (and data count) are rebuilt, the rest is copied.
struct Segments {
    raw: Vec<Vec<u8>>,
}

fn segments_of(wasm: &[u8]) -> Segments {
    let mut raw = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::DataSection(reader) = payload.unwrap() {
            for data in reader {
                let r = data.unwrap().range;
                raw.push(wasm[r.start as usize..r.end as usize].to_vec());
            }
        }
    }
    Segments { raw }
}

/// An active segment of memory 0 at `offset` (i32).
fn active(offset: i32, data: &[u8]) -> Vec<u8> {
    let mut s = vec![0x00, 0x41];
    write_sleb(&mut s, offset as i64);
    s.push(0x0b);
    write_uleb(&mut s, data.len() as u64);
    s.extend_from_slice(data);
    s
}

/// `wasm` with its data section replaced by `segments` (and its data
/// count, if any, updated).
fn with_segments(wasm: &[u8], segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = wasm[..8].to_vec();
    for s in support::read::sections(wasm) {
        match s.id {
            11 => {
                let mut body = Vec::new();
                write_uleb(&mut body, segments.len() as u64);
                segments.iter().for_each(|seg| body.extend_from_slice(seg));
                out.push(11);
                write_uleb(&mut out, body.len() as u64);
                out.extend(body);
            }
            12 => {
                let mut body = Vec::new();
                write_uleb(&mut body, segments.len() as u64);
                out.push(12);
                write_uleb(&mut out, body.len() as u64);
                out.extend(body);
            }
            _ => out.extend_from_slice(&s.bytes),
        }
    }
    out
}

/// Where `needle` is in `haystack` (it must be there exactly once).
fn find_once(haystack: &[u8], needle: &[u8]) -> usize {
    let hits: Vec<usize> = haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "{:?} occurs {} times", needle, hits.len());
    hits[0]
}

/// Scattered data, one segment per 64-byte "page" with zeros around: packing
/// merges and trims, so the packed segments differ from the original ones.
/// Also: a passive segment, a custom section and a name section.
const SNAPSHOT: &str = r#"(module
    (memory (export "mem") 1)
    (func (export "init") (memory.init $p (i32.const 900) (i32.const 0) (i32.const 3)))
    (data $a (i32.const 0) "\00\00hello\00\00\00\00")
    (data $b (i32.const 64) "\00\00\00\00world\00\00")
    (data $p "pas")
    (data $c (i32.const 4000) "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00x")
    (@custom "keep-me" "custom bytes"))"#;

fn snapshot() -> (Vec<u8>, Vec<u8>) {
    let original = wat(SNAPSHOT);
    let packed = pack(&original);
    assert_ne!(original, packed, "the sample must pack");
    assert_eq!(check(&original, &packed), None);
    (original, packed)
}

#[test]
fn a_module_and_its_packing_are_the_same() {
    let (original, packed) = snapshot();
    assert_eq!(check(&original, &packed), None);
    // And the identity, and a packing of a packing.
    assert_eq!(check(&original, &original), None);
    assert_eq!(check(&original, &pack(&packed)), None);
}

#[test]
fn a_flipped_payload_byte_is_caught() {
    let (original, mut packed) = snapshot();
    let at = find_once(&packed, b"hello");
    packed[at + 1] ^= 0x20; // "hEllo"
    assert_caught(
        &original,
        &packed,
        "memory 0, byte 0x3: expected 0x65, found 0x45",
    );
}

#[test]
fn a_dropped_segment_is_caught() {
    let (original, packed) = snapshot();
    let mut segs = segments_of(&packed).raw;
    let last = segs.iter().rposition(|s| s[0] == 0).unwrap();
    segs.remove(last);
    assert_caught(
        &original,
        &with_segments(&packed, &segs),
        "memory 0, byte 0xfc0: expected 0x78, found 0x00",
    );
}

#[test]
fn a_shifted_offset_is_caught() {
    let (original, packed) = snapshot();
    let mut segs = segments_of(&packed).raw;
    // The segment of "x" at 4000, written one byte later.
    let x = segs.iter().position(|s| s.ends_with(b"x")).unwrap();
    assert_eq!(segs[x], active(4032, b"x"));
    segs[x] = active(4033, b"x");
    assert_caught(
        &original,
        &with_segments(&packed, &segs),
        "memory 0, byte 0xfc0: expected 0x78, found 0x00",
    );
}

#[test]
fn a_changed_passive_segment_is_caught() {
    let (original, packed) = snapshot();
    let mut changed = packed.clone();
    let at = find_once(&changed, b"pas");
    changed[at + 2] = b'z';
    assert_caught(&original, &changed, "passive segment 2 differs");
    // Turning it into an active segment is caught too.
    let mut segs = segments_of(&packed).raw;
    let p = segs
        .iter()
        .position(|s| s[0] == 1 && s.ends_with(b"pas"))
        .unwrap();
    segs[p] = active(900, b"pas");
    assert_caught(
        &original,
        &with_segments(&packed, &segs),
        "is passive in the original",
    );
}

#[test]
fn a_changed_byte_outside_the_data_section_is_caught() {
    let (original, mut packed) = snapshot();
    let at = find_once(&packed, b"custom bytes");
    packed[at] = b'C';
    assert_caught(&original, &packed, "the custom section `keep-me` differs");
    // An export name, in the export section.
    let (original, mut packed) = snapshot();
    let at = find_once(&packed, b"init");
    packed[at] = b'I';
    assert_caught(&original, &packed, "the export section differs");
}

#[test]
fn a_segment_out_of_bounds_is_caught() {
    let (original, packed) = snapshot();
    let mut segs = segments_of(&packed).raw;
    // Zeros past the end of the one-page memory: same image, but a trap.
    segs.push(active(65535, b"\0\0"));
    assert_caught(
        &original,
        &with_segments(&packed, &segs),
        "out of bounds of memory 0",
    );
}

#[test]
fn an_original_that_traps_must_keep_its_data_section() {
    let original = wat(r#"(module (memory 1)
        (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00b")
        (data (i32.const 65535) "xy"))"#);
    // segpack leaves it as is...
    assert_eq!(pack(&original), original);
    assert_eq!(check(&original, &original), None);
    // ...and a "packing" that splits the first segment is refused.
    let segs = vec![active(0, b"a"), active(12, b"b"), active(65535, b"xy")];
    assert_caught(
        &original,
        &with_segments(&original, &segs),
        "the data section must be left as is",
    );
}

#[test]
fn reordered_overlapping_segments_are_caught() {
    let original = wat(r#"(module (memory 1)
        (data (i32.const 0) "aaaa")
        (data (i32.const 2) "bb"))"#);
    let packed = pack(&original);
    assert_eq!(check(&original, &packed), None);
    let segs = segments_of(&original).raw;
    let swapped = with_segments(&original, &[segs[1].clone(), segs[0].clone()]);
    assert_caught(
        &original,
        &swapped,
        "memory 0, byte 0x2: expected 0x62, found 0x61",
    );
    // A memory that is not packable compares segment lists: reordering
    // non-overlapping segments is caught there too.
    let imported = wat(r#"(module (import "env" "mem" (memory 1))
        (data (i32.const 0) "a")
        (data (i32.const 8) "b"))"#);
    let segs = segments_of(&imported).raw;
    let swapped = with_segments(&imported, &[segs[1].clone(), segs[0].clone()]);
    assert_caught(
        &imported,
        &swapped,
        "the memory is not packable, so its segments must stay as they are: imported memory",
    );
    // With --zero-filled-imports their images are compared instead.
    let zero = VerifyOptions::default().with_zero_filled_imports(true);
    assert_eq!(check_with(&imported, &swapped, &zero), None);
}

#[test]
fn changed_memory_limits_are_caught() {
    let (original, packed) = snapshot();
    let mut sections = support::read::sections(&packed);
    let memory = sections.iter_mut().find(|s| s.id == 5).unwrap();
    // count 1, flags 0, min 1 -> min 2
    assert_eq!(memory.contents, [1, 0, 1]);
    let mut changed = packed.clone();
    changed[memory.start + 4] = 2;
    assert_caught(&original, &changed, "the memory section differs");
}

#[test]
fn a_mutated_segment_in_a_nested_component_module_is_caught() {
    let original = wat(r#"(component
        (core module $empty)
        (core module $m (memory (export "m") 1)
            (data (i32.const 0) "\00\00nested\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00z"))
        (core instance (instantiate $m)))"#);
    let mut packed = pack(&original);
    assert_ne!(original, packed);
    assert_eq!(check(&original, &packed), None);
    let at = find_once(&packed, b"nested");
    packed[at] = b'N';
    assert_caught(
        &original,
        &packed,
        "core module 1: memory 0, byte 0x2: expected 0x6e, found 0x4e",
    );
}

#[test]
fn new_empty_passive_slots_are_allowed_but_not_with_bytes() {
    // The slot rule: "a" and "b" become one segment in slot 0; slot 1
    // becomes an empty passive segment so that the passive one keeps index 2.
    let original = wat(r#"(module (memory 1)
        (func (export "f") (memory.init 2 (i32.const 100) (i32.const 0) (i32.const 1)))
        (data (i32.const 0) "a")
        (data (i32.const 2) "b")
        (data "p"))"#);
    let packed = pack(&original);
    let segs = segments_of(&packed).raw;
    assert_eq!(segs[1], [1, 0], "an empty passive slot");
    assert_eq!(check(&original, &packed), None);
    let mut with_bytes = segs.clone();
    with_bytes[1] = vec![1, 1, b'q'];
    assert_caught(
        &original,
        &with_segments(&packed, &with_bytes),
        "segment 1 is a new passive segment of 1 bytes",
    );
}

#[test]
fn dropped_data_segment_names_are_allowed_but_not_renamed_ones() {
    let original = wat(r#"(module (memory 1)
        (data $first (i32.const 0) "a")
        (data $second (i32.const 1000) "b")
        (data $third (i32.const 1002) "c"))"#);
    let packed = pack(&original);
    assert_ne!(
        support::read::data_segment_names(&original),
        support::read::data_segment_names(&packed)
    );
    assert_eq!(check(&original, &packed), None);
    let mut renamed = packed.clone();
    // "first" keeps its name (its segment is unchanged), the others lose theirs.
    let at = find_once(&renamed, b"first");
    renamed[at] = b'F';
    assert_caught(&original, &renamed, "the name section differs");
}

#[test]
fn dynamic_offsets_must_be_kept() {
    let original = wat(
        r#"(module (import "env" "base" (global $base i32)) (memory 1)
        (data (global.get $base) "a\00\00\00\00\00\00\00\00\00\00b"))"#,
    );
    assert_eq!(pack(&original), original);
    let mut changed = original.clone();
    let at = find_once(&changed, b"a\0\0");
    changed[at] = b'A';
    assert_caught(
        &original,
        &changed,
        "memory 0: active segment 0 (segment 0 of the original, 0 of the packed binary) differs, but the memory is not packable, so its segments must stay as they are: a segment's offset is not a constant",
    );
}

#[test]
fn a_module_and_a_component_are_not_the_same() {
    let module = wat("(module)");
    let component = wat("(component)");
    let d = check(&module, &component).unwrap();
    assert!(d.contains("preamble"), "{d}");
}

#[test]
fn malformed_inputs_are_errors_naming_the_side() {
    let good = wat("(module)");
    let e = segpack::verify(b"\0asm\x01\0\0\0\x05", &good, &Default::default()).unwrap_err();
    assert!(e.to_string().starts_with("in the original:"), "{e}");
    let e = segpack::verify(&good, b"nope", &Default::default()).unwrap_err();
    assert!(e.to_string().starts_with("in the packed binary:"), "{e}");
}

/// The corpus and the sample snapshot.
fn corpus_files_and_sample() -> Vec<PathBuf> {
    let mut files = support::corpus_files();
    files.push(support::repo_root().join("samples/snapshot.wasm"));
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    files
}

#[test]
fn every_corpus_file_verifies_against_its_packings() {
    for path in corpus_files_and_sample() {
        let original = fs::read(&path).unwrap();
        for options in [
            PackOptions::default(),
            PackOptions::default().with_max_segments(segpack::MaxSegments::ENGINE_LIMIT),
            PackOptions::default().with_zero_filled_imports(true),
        ] {
            let (packed, _) = pack_with(&original, &options);
            let verify =
                VerifyOptions::default().with_zero_filled_imports(options.zero_filled_imports);
            assert_eq!(
                check_with(&original, &packed, &verify),
                None,
                "{} with {options:?}",
                path.display()
            );
        }
    }
}

#[test]
fn a_flipped_byte_in_a_packed_corpus_file_is_caught() {
    let path = support::corpus_dir().join("sql-wasm.wasm");
    let original = fs::read(path).unwrap();
    let packed = pack(&original);
    // Flip the last payload byte of the middle packed segment.
    let mut ranges = Vec::new();
    for payload in Parser::new(0).parse_all(&packed) {
        if let Payload::DataSection(reader) = payload.unwrap() {
            for data in reader {
                let data = data.unwrap();
                let end = data.data.as_ptr() as usize - packed.as_ptr() as usize + data.data.len();
                ranges.push(end);
            }
        }
    }
    let mut mutated = packed.clone();
    mutated[ranges[ranges.len() / 2] - 1] ^= 1;
    let d = check(&original, &mutated).expect("caught");
    assert!(d.starts_with("memory 0, byte 0x"), "{d}");
}

// The command line.

fn segpack() -> Command {
    Command::cargo_bin("segpack").unwrap()
}

#[test]
fn cli_verify_prints_same_and_exits_0() {
    let dir = TempDir::new().unwrap();
    let (original, packed) = snapshot();
    let a = dir.path().join("a.wasm");
    let b = dir.path().join("b.wasm");
    fs::write(&a, original).unwrap();
    fs::write(&b, packed).unwrap();
    let out = segpack().arg("verify").arg(&a).arg(&b).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        format!(
            "same: {} gives the same memories as {}\n",
            b.display(),
            a.display()
        )
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn cli_verify_explains_the_first_difference_and_exits_1() {
    let dir = TempDir::new().unwrap();
    let (original, mut packed) = snapshot();
    let at = find_once(&packed, b"world");
    packed[at] = b'W';
    let a = dir.path().join("a.wasm");
    let b = dir.path().join("b.wasm");
    fs::write(&a, original).unwrap();
    fs::write(&b, packed).unwrap();
    let out = segpack().arg("verify").arg(&a).arg(&b).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "error: {} is not a packing of {}: memory 0, byte 0x44: expected 0x77, found 0x57\n",
            b.display(),
            a.display()
        )
    );
}

#[test]
fn cli_verify_zero_filled_imports_compares_imported_images() {
    let dir = TempDir::new().unwrap();
    let quickjs = support::corpus_dir().join("quickjs.wasm");
    let original = fs::read(&quickjs).unwrap();
    let (packed, _) = pack_with(
        &original,
        &PackOptions::default().with_zero_filled_imports(true),
    );
    assert_ne!(original, packed);
    let b = dir.path().join("b.wasm");
    fs::write(&b, packed).unwrap();
    let out = segpack()
        .arg("verify")
        .arg(&quickjs)
        .arg(&b)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("not packable, so its segments must stay as they are: imported memory"),
        "{stderr}"
    );
    segpack()
        .arg("verify")
        .arg("--zero-filled-imports")
        .arg(&quickjs)
        .arg(&b)
        .assert()
        .success();
}

#[test]
fn cli_verify_malformed_or_missing_files_exit_1() {
    let dir = TempDir::new().unwrap();
    let a = dir.path().join("a.wasm");
    fs::write(&a, wat("(module)")).unwrap();
    let bad = dir.path().join("bad.wasm");
    fs::write(&bad, b"not wasm").unwrap();
    let out = segpack().arg("verify").arg(&a).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: in the packed binary: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = segpack()
        .arg("verify")
        .arg(&a)
        .arg(dir.path().join("missing.wasm"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    // One file only is a usage error.
    let out = segpack().arg("verify").arg(&a).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
