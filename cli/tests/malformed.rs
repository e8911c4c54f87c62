//! Malformed and invalid inputs (SPEC §5): a corpus of small broken binaries
//! in `tests/malformed/`, each of which the command line must refuse with
//! exit status 1, one line of error naming a byte offset, no output file and
//! no temporary file left behind; `inspect` must refuse it too. Never a
//! panic (exit 101), an abort or a signal.
//!
//! The corpus is made by [`generate`] below, from modules built here with
//! `wat`, `samples/snapshot.wasm` and the first bytes of the shared corpus's
//! `jco-wasi-adapter.wasm`; only binaries that wasmparser's validator (every
//! feature on) rejects are kept. `checked_in_corpus_is_what_the_generator_makes`
//! checks that the directory matches the generator; after changing the
//! generator, rewrite the directory with
//!
//! ```text
//! SEGPACK_REGENERATE=1 cargo test --test malformed checked_in_corpus
//! ```

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;

use support::cli::{listing, pack_to, segpack};
use support::wasm::{self, uleb, uleb_padded, write_bytes, write_sleb, write_uleb};
use tempfile::TempDir;
use wasmparser::{Validator, WasmFeatures};

/// Files in the corpus must stay small.
const MAX_FILE: usize = 64 * 1024;

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/malformed")
}

fn invalid(bytes: &[u8]) -> bool {
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .is_err()
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------
// Building blocks.

const MODULE: &[u8] = b"\0asm\x01\0\0\0";
const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

/// A section with an honest size.
fn section(id: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    write_bytes(&mut out, content);
    out
}

/// A section whose size field is `size`, whatever the content.
fn section_sized(id: u8, size: &[u8], content: &[u8]) -> Vec<u8> {
    let mut out = vec![id];
    out.extend_from_slice(size);
    out.extend_from_slice(content);
    out
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A memory section with one memory of one page.
fn one_memory() -> Vec<u8> {
    section(5, &[1, 0, 1])
}

/// An active segment for memory 0 at `i32.const offset`.
fn active(offset: i32, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0x41];
    write_sleb(&mut out, i64::from(offset));
    out.push(0x0b);
    write_bytes(&mut out, data);
    out
}

/// A data section holding `segments` under the count `count`.
fn data_section(count: &[u8], segments: &[u8]) -> Vec<u8> {
    section(11, &concat(&[count, segments]))
}

/// The base core module: two memories (one memory64), a global used as an
/// offset, active and passive segments, a data count, code that uses the
/// passive segment, and names.
fn base_module() -> Vec<u8> {
    wat(r#"(module
        (memory 1)
        (memory $m1 i64 1)
        (global $g i32 (i32.const 16))
        (data $a (i32.const 0) "hello\00\00\00\00\00\00\00\00\00\00\00\00world")
        (data $b (memory $m1) (i64.const 4096) "abc")
        (data $p "passive")
        (data $c (global.get $g) "xyz")
        (func (export "f")
            (memory.init $p (i32.const 0) (i32.const 0) (i32.const 1))
            (data.drop $p)))"#)
}

/// The base component: core modules with data, an empty one, and a nested
/// component with its own module.
fn base_component() -> Vec<u8> {
    wat(r#"(component
        (core module (memory 1) (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00b"))
        (core module)
        (component
            (core module (memory 1) (data (i32.const 8) "zz\00\00\00\00\00\00\00\00\00\00\00\00\00y"))))"#)
}

/// Where the interesting header bytes of a core module are: the preamble,
/// each section's id and size, and in the memory, data count and data
/// sections every count, flag, index, opcode, `end` and length.
fn header_positions(module: &[u8]) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..8).collect();
    let mut pos = 8;
    while pos < module.len() {
        let id = module[pos];
        positions.push(pos);
        pos += 1;
        let size_at = pos;
        let size = wasm::read_uleb(module, &mut pos) as usize;
        positions.extend(size_at..pos);
        let content = pos..pos + size;
        match id {
            5 | 12 => positions.extend(content.start..(content.start + 3).min(content.end)),
            11 => {
                let mut p = content.start;
                let count = wasm::read_uleb(module, &mut p);
                positions.extend(content.start..p);
                for _ in 0..count {
                    positions.push(p);
                    let flag = wasm::read_uleb(module, &mut p);
                    if flag == 2 {
                        positions.push(p);
                        wasm::read_uleb(module, &mut p);
                    }
                    if flag != 1 {
                        // One instruction with one LEB immediate, then `end`.
                        positions.push(p);
                        p += 1;
                        positions.push(p);
                        wasm::read_uleb(module, &mut p);
                        positions.push(p);
                        p += 1;
                    }
                    let len_at = p;
                    let len = wasm::read_uleb(module, &mut p) as usize;
                    positions.extend(len_at..p);
                    p += len;
                }
            }
            _ => {}
        }
        pos = content.end;
    }
    positions
}

/// [`header_positions`] for a component: its preamble, each section's id
/// and size, and the header positions of nested modules and components,
/// as offsets from `base`.
fn component_header_positions(component: &[u8], base: usize) -> Vec<usize> {
    let mut positions: Vec<usize> = (base..base + 8).collect();
    let mut pos = 8;
    while pos < component.len() {
        let id = component[pos];
        positions.push(base + pos);
        pos += 1;
        let size_at = pos;
        let size = wasm::read_uleb(component, &mut pos) as usize;
        positions.extend(base + size_at..base + pos);
        let content = &component[pos..pos + size];
        match id {
            1 => positions.extend(
                header_positions(content)
                    .into_iter()
                    .map(|p| base + pos + p),
            ),
            4 => positions.extend(component_header_positions(content, base + pos)),
            _ => {}
        }
        pos += size;
    }
    positions
}

/// Truncation points of a module: each section's start, the byte after its
/// id, the start of its content and one byte into it; in a data section,
/// the same for the first segments.
fn truncation_points(module: &[u8], limit: usize) -> Vec<usize> {
    let mut points = Vec::new();
    let mut pos = 8;
    while pos < module.len() && pos < limit {
        let id = module[pos];
        points.extend([pos, pos + 1]);
        pos += 1;
        let size = wasm::read_uleb(module, &mut pos) as usize;
        points.extend([pos - 1, pos, pos + 1, pos + size / 2, pos + size - 1]);
        if id == 11 {
            let mut p = pos;
            let count = wasm::read_uleb(module, &mut p);
            for _ in 0..count.min(40) {
                let start = p;
                let flag = wasm::read_uleb(module, &mut p);
                if flag == 2 {
                    wasm::read_uleb(module, &mut p);
                }
                if flag != 1 {
                    p += 1;
                    wasm::read_uleb(module, &mut p);
                    p += 1;
                }
                let len_at = p;
                let len = wasm::read_uleb(module, &mut p) as usize;
                points.extend([start, start + 1, start + 2, len_at, p, p + len / 2]);
                p += len;
                if p >= limit {
                    break;
                }
            }
        }
        pos += size;
    }
    points.retain(|&p| p > 0 && p < module.len() && p < limit);
    points.sort_unstable();
    points.dedup();
    points
}

// ---------------------------------------------------------------------------
// The generator.

/// Every file of the corpus, by name. Deterministic.
fn generate() -> BTreeMap<String, Vec<u8>> {
    let mut candidates: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| candidates.push((name, bytes));

    // Truncations of the small modules at every offset.
    let module = base_module();
    for at in 0..module.len() {
        add(format!("truncated-module-{at:04}"), module[..at].to_vec());
    }
    let component = base_component();
    for at in 0..component.len() {
        add(
            format!("truncated-component-{at:04}"),
            component[..at].to_vec(),
        );
    }
    // Truncations of real modules, small prefixes only.
    let snapshot = std::fs::read(support::repo_root().join("samples/snapshot.wasm"))
        .expect("samples/snapshot.wasm");
    for at in truncation_points(&snapshot, 16 * 1024) {
        add(
            format!("truncated-snapshot-{at:05}"),
            snapshot[..at].to_vec(),
        );
    }
    let adapter = std::fs::read(support::corpus_dir().join("jco-wasi-adapter.wasm"))
        .expect("jco-wasi-adapter.wasm");
    for at in truncation_points(&adapter, 8 * 1024) {
        add(format!("truncated-adapter-{at:05}"), adapter[..at].to_vec());
    }

    // Flipped header bytes.
    for (base, bytes) in [("module", &module), ("component", &component)] {
        let positions = if base == "module" {
            header_positions(bytes)
        } else {
            component_header_positions(bytes, 0)
        };
        for pos in positions {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut flipped = bytes.clone();
                flipped[pos] ^= mask;
                add(format!("flipped-{base}-{pos:04}-{mask:02x}"), flipped);
            }
        }
    }

    // Overlong and oversized LEBs.
    let seg = active(0, b"abc");
    add(
        "leb-section-size-6-bytes".into(),
        concat(&[MODULE, &section_sized(11, &uleb_padded(8, 6), &[])]),
    );
    add(
        "leb-section-size-over-u32".into(),
        concat(&[
            MODULE,
            &section_sized(0, &[0xff, 0xff, 0xff, 0xff, 0x7f], b"\x01x"),
        ]),
    );
    add(
        "leb-data-count-6-bytes".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &section(12, &uleb_padded(1, 6)),
            &data_section(&[1], &seg),
        ]),
    );
    add(
        "leb-data-count-over-u32".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &section(12, &[0xff, 0xff, 0xff, 0xff, 0x7f]),
            &data_section(&[1], &seg),
        ]),
    );
    add(
        "leb-segment-count-6-bytes".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &data_section(&uleb_padded(1, 6), &seg),
        ]),
    );
    add(
        "leb-segment-count-over-u32".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &data_section(&[0xff, 0xff, 0xff, 0xff, 0x1f], &seg),
        ]),
    );
    let mut long_len = vec![0, 0x41, 0, 0x0b];
    long_len.extend(uleb_padded(3, 6));
    long_len.extend(b"abc");
    add(
        "leb-segment-length-6-bytes".into(),
        concat(&[MODULE, &one_memory(), &data_section(&[1], &long_len)]),
    );
    let mut long_flag = uleb_padded(0, 6);
    long_flag.extend([0x41, 0, 0x0b, 3]);
    long_flag.extend(b"abc");
    add(
        "leb-segment-flag-6-bytes".into(),
        concat(&[MODULE, &one_memory(), &data_section(&[1], &long_flag)]),
    );
    let mut long_index = vec![2];
    long_index.extend(uleb_padded(0, 6));
    long_index.extend([0x41, 0, 0x0b, 3]);
    long_index.extend(b"abc");
    add(
        "leb-memory-index-6-bytes".into(),
        concat(&[MODULE, &one_memory(), &data_section(&[1], &long_index)]),
    );
    let mut long_offset = vec![0, 0x41];
    long_offset.extend([0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    long_offset.extend([0x0b, 3]);
    long_offset.extend(b"abc");
    add(
        "leb-i32-offset-6-bytes".into(),
        concat(&[MODULE, &one_memory(), &data_section(&[1], &long_offset)]),
    );
    let mut big_offset = vec![0, 0x41];
    big_offset.extend([0xff, 0xff, 0xff, 0xff, 0x4f]); // past i32's range
    big_offset.extend([0x0b, 3]);
    big_offset.extend(b"abc");
    add(
        "leb-i32-offset-over-i32".into(),
        concat(&[MODULE, &one_memory(), &data_section(&[1], &big_offset)]),
    );
    let mut long_offset64 = vec![2, 0, 0x42];
    long_offset64.extend([0x80; 10]);
    long_offset64.extend([0x00, 0x0b, 3]);
    long_offset64.extend(b"abc");
    add(
        "leb-i64-offset-11-bytes".into(),
        concat(&[
            MODULE,
            &section(5, &[1, 4, 1]),
            &data_section(&[1], &long_offset64),
        ]),
    );
    add(
        "leb-memory-minimum-over-u32".into(),
        concat(&[
            MODULE,
            &section(5, &[1, 0, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            &data_section(&[1], &seg),
        ]),
    );

    // Lengths and sizes past the end.
    let mut huge_len = vec![0, 0x41, 0, 0x0b];
    huge_len.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
    huge_len.extend(b"abc");
    add(
        "length-segment-4gib".into(),
        concat(&[MODULE, &one_memory(), &data_section(&[1], &huge_len)]),
    );
    let mut past_len = vec![0, 0x41, 0, 0x0b, 4];
    past_len.extend(b"abc");
    add(
        "length-segment-one-past-section".into(),
        concat(&[MODULE, &one_memory(), &data_section(&[1], &past_len)]),
    );
    for (name, size) in [
        ("plus-one", uleb(seg.len() as u64 + 2)),
        ("plus-1000", uleb(seg.len() as u64 + 1001)),
        ("u32-max", vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
    ] {
        add(
            format!("size-data-section-{name}"),
            concat(&[
                MODULE,
                &one_memory(),
                &section_sized(11, &size, &concat(&[&[1], &seg])),
            ]),
        );
    }
    add(
        "size-data-section-too-small".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &section_sized(11, &uleb(3), &concat(&[&[1], &seg])),
        ]),
    );
    add(
        "size-custom-section-past-end".into(),
        concat(&[MODULE, &section_sized(0, &[100], b"\x01xyz")]),
    );
    add(
        "size-custom-name-longer-than-section".into(),
        concat(&[MODULE, &section(0, &[10, b'n', b'a'])]),
    );
    // Every section of the base module, one byte longer than the file
    // allows, or past the end by a lot.
    let sections = wasm::sections(&module);
    for (i, s) in sections.iter().enumerate() {
        let mut bytes = MODULE.to_vec();
        for (j, t) in sections.iter().enumerate() {
            if i == j {
                bytes.push(t.id);
                let rest: usize = sections[j + 1..]
                    .iter()
                    .map(|u| 1 + uleb(u.content.len() as u64).len() + u.content.len())
                    .sum();
                write_uleb(&mut bytes, (t.content.len() + rest + 1) as u64);
                bytes.extend_from_slice(t.content);
            } else {
                bytes.push(t.id);
                write_bytes(&mut bytes, t.content);
            }
        }
        add(format!("size-section-{i}-id-{}-past-end", s.id), bytes);
    }

    // Counts that lie.
    for (name, count) in [
        ("u32-max", uleb(u64::from(u32::MAX))),
        ("2-pow-31", uleb(1 << 31)),
        ("one-more", uleb(2)),
        ("100001", uleb(100_001)),
        ("zero-with-trailing-segment", uleb(0)),
    ] {
        add(
            format!("count-data-segments-{name}"),
            concat(&[MODULE, &one_memory(), &data_section(&count, &seg)]),
        );
    }
    add(
        "count-data-segments-u32-max-empty".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &data_section(&uleb(u64::from(u32::MAX)), &[]),
        ]),
    );
    for (name, count) in [
        ("u32-max", uleb(u64::from(u32::MAX))),
        ("2-pow-31", uleb(1 << 31)),
        ("one-more", uleb(2)),
        ("one-less", uleb(0)),
    ] {
        add(
            format!("count-data-count-{name}"),
            concat(&[
                MODULE,
                &one_memory(),
                &section(12, &count),
                &data_section(&[1], &seg),
            ]),
        );
    }
    add(
        "count-data-count-u32-max-no-data-section".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &section(12, &uleb(u64::from(u32::MAX))),
        ]),
    );
    add(
        "count-data-count-u32-max-no-memory".into(),
        concat(&[MODULE, &section(12, &uleb(u64::from(u32::MAX)))]),
    );
    add(
        "count-memories-u32-max".into(),
        concat(&[
            MODULE,
            &section(5, &concat(&[&uleb(u64::from(u32::MAX)), &[0, 1]])),
            &data_section(&[1], &seg),
        ]),
    );
    add(
        "count-globals-u32-max".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &section(
                6,
                &concat(&[&uleb(u64::from(u32::MAX)), &[0x7f, 0, 0x41, 0, 0x0b]]),
            ),
        ]),
    );
    add(
        "count-functions-u32-max".into(),
        concat(&[MODULE, &section(3, &uleb(u64::from(u32::MAX)))]),
    );

    // Invalid segments.
    let data_mod = |segments: &[u8], count: u8| {
        concat(&[MODULE, &one_memory(), &data_section(&[count], segments)])
    };
    add(
        "segment-flag-3".into(),
        data_mod(&[3, 0x41, 0, 0x0b, 1, b'a'], 1),
    );
    add(
        "segment-flag-ff".into(),
        data_mod(&[0xff, 0x01, 0x41, 0, 0x0b, 1, b'a'], 1),
    );
    add(
        "segment-memory-5".into(),
        data_mod(&[2, 5, 0x41, 0, 0x0b, 1, b'a'], 1),
    );
    add(
        "segment-no-memory".into(),
        concat(&[MODULE, &data_section(&[1], &seg)]),
    );
    add(
        "segment-i64-offset-for-i32-memory".into(),
        data_mod(&[0, 0x42, 0, 0x0b, 1, b'a'], 1),
    );
    add(
        "segment-offset-local-get".into(),
        data_mod(&[0, 0x20, 0, 0x0b, 1, b'a'], 1),
    );
    add(
        "segment-offset-two-values".into(),
        data_mod(&[0, 0x41, 0, 0x41, 0, 0x0b, 1, b'a'], 1),
    );
    add(
        "segment-offset-empty".into(),
        data_mod(&[0, 0x0b, 1, b'a'], 1),
    );
    add(
        "segment-offset-missing-end".into(),
        data_mod(&[0, 0x41, 0, 1, b'a'], 1),
    );
    add(
        "segment-offset-unknown-global".into(),
        data_mod(&[0, 0x23, 7, 0x0b, 1, b'a'], 1),
    );
    add(
        "segment-offset-mutable-global".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &section(6, &[1, 0x7f, 1, 0x41, 0, 0x0b]),
            &data_section(&[1], &[0, 0x23, 0, 0x0b, 1, b'a']),
        ]),
    );
    add(
        "segment-offset-unknown-opcode".into(),
        data_mod(&[0, 0xfe, 0x0b, 1, b'a'], 1),
    );
    add(
        "sections-data-before-memory".into(),
        concat(&[MODULE, &data_section(&[1], &seg), &one_memory()]),
    );
    add(
        "sections-two-data-sections".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &data_section(&[1], &seg),
            &data_section(&[1], &seg),
        ]),
    );
    add(
        "sections-two-data-counts".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &section(12, &[1]),
            &section(12, &[1]),
            &data_section(&[1], &seg),
        ]),
    );
    add(
        "sections-data-count-after-data".into(),
        concat(&[
            MODULE,
            &one_memory(),
            &data_section(&[1], &seg),
            &section(12, &[1]),
        ]),
    );
    add(
        "sections-unknown-id-14".into(),
        concat(&[MODULE, &section(14, &[0])]),
    );
    add(
        "sections-unknown-id-7f".into(),
        concat(&[MODULE, &section(0x7f, &[0])]),
    );
    add(
        "sections-function-without-code".into(),
        concat(&[MODULE, &section(1, &[1, 0x60, 0, 0]), &section(3, &[1, 0])]),
    );

    // Preambles.
    add("preamble-empty".into(), Vec::new());
    add("preamble-magic-only".into(), b"\0asm".to_vec());
    add("preamble-seven-bytes".into(), b"\0asm\x01\0\0".to_vec());
    add("preamble-version-2".into(), b"\0asm\x02\0\0\0".to_vec());
    add(
        "preamble-component-layer-2".into(),
        b"\0asm\x0d\0\x02\0".to_vec(),
    );
    add("preamble-text".into(), b"(module (memory 1))\n".to_vec());
    add(
        "preamble-elf".into(),
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec(),
    );
    let mut garbage = vec![0u8; 200];
    support::rng::Rng::new(7).fill(&mut garbage);
    garbage[..4].copy_from_slice(b"\0asm");
    add("preamble-garbage-after-magic".into(), garbage);

    // Components.
    let good =
        wat(r#"(module (memory 1) (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00b"))"#);
    let nested_module = |bytes: &[u8]| section(1, bytes);
    let nested_component = |bytes: &[u8]| section(4, bytes);
    add(
        "component-module-size-past-end".into(),
        concat(&[
            COMPONENT,
            &section_sized(1, &uleb(good.len() as u64 + 5), &good),
        ]),
    );
    add(
        "component-module-size-u32-max".into(),
        concat(&[
            COMPONENT,
            &section_sized(1, &[0xff, 0xff, 0xff, 0xff, 0x0f], &good),
        ]),
    );
    for cut in [0, 4, 8, 9, 12, good.len() - 3, good.len() - 1] {
        add(
            format!("component-module-truncated-{cut:02}"),
            concat(&[COMPONENT, &nested_module(&good[..cut])]),
        );
    }
    add(
        "component-component-size-past-end".into(),
        concat(&[
            COMPONENT,
            &section_sized(4, &uleb(100), &concat(&[COMPONENT, &nested_module(&good)])),
        ]),
    );
    let inner = concat(&[COMPONENT, &nested_module(&good)]);
    for cut in [4, 8, 10, inner.len() - 1] {
        add(
            format!("component-component-truncated-{cut:02}"),
            concat(&[COMPONENT, &nested_component(&inner[..cut])]),
        );
    }
    let mut bad_magic = good.clone();
    bad_magic[1] = b'x';
    add(
        "component-module-bad-magic".into(),
        concat(&[COMPONENT, &nested_module(&bad_magic)]),
    );
    add(
        "component-module-is-a-component".into(),
        concat(&[COMPONENT, &nested_module(COMPONENT)]),
    );
    add(
        "component-component-is-a-module".into(),
        concat(&[COMPONENT, &nested_component(&good)]),
    );
    let lying = concat(&[
        MODULE,
        &one_memory(),
        &section(12, &uleb(u64::from(u32::MAX))),
        &data_section(&[1], &seg),
    ]);
    add(
        "component-module-data-count-u32-max".into(),
        concat(&[COMPONENT, &nested_module(&good), &nested_module(&lying)]),
    );
    let lying = concat(&[
        MODULE,
        &one_memory(),
        &data_section(&uleb(u64::from(u32::MAX)), &seg),
    ]);
    add(
        "component-module-segment-count-u32-max".into(),
        concat(&[COMPONENT, &nested_module(&lying)]),
    );
    let mut module_in_core = MODULE.to_vec();
    module_in_core.extend(section(1, &good)); // id 1 of a core module is the type section
    add("component-module-inside-core-module".into(), module_in_core);
    // Deep nesting: components in components, the innermost broken.
    for (depth, innermost, name) in [
        (50, good[..good.len() - 1].to_vec(), "truncated-module"),
        (500, bad_magic.clone(), "bad-magic-module"),
        (4000, vec![0x00], "garbage"),
    ] {
        let mut bytes = concat(&[COMPONENT, &nested_module(&innermost)]);
        for _ in 0..depth {
            bytes = concat(&[COMPONENT, &nested_component(&bytes)]);
        }
        add(format!("component-nested-{depth}-deep-{name}"), bytes);
    }
    let mut bytes = concat(&[COMPONENT, &nested_module(&good)]);
    for level in 0..300 {
        bytes = if level == 150 {
            // A size that overstates by one, halfway down.
            concat(&[
                COMPONENT,
                &section_sized(4, &uleb(bytes.len() as u64 + 1), &bytes),
            ])
        } else {
            concat(&[COMPONENT, &nested_component(&bytes)])
        };
    }
    add(
        "component-nested-300-deep-size-past-end-at-150".into(),
        bytes,
    );

    // Keep what the validator rejects, is small, and is new.
    let mut out = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for (name, bytes) in candidates {
        if bytes.len() < MAX_FILE && invalid(&bytes) && seen.insert(bytes.clone()) {
            let previous = out.insert(format!("{name}.wasm"), bytes);
            assert!(previous.is_none(), "two candidates named {name}");
        }
    }
    out
}

/// The `.wasm` files of the checked-in corpus, by name.
fn checked_in() -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(corpus_path()).expect("tests/malformed exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
    files
}

#[test]
fn checked_in_corpus_is_what_the_generator_makes() {
    let generated = generate();
    if std::env::var_os("SEGPACK_REGENERATE").is_some() {
        for name in checked_in().keys() {
            std::fs::remove_file(corpus_path().join(name)).unwrap();
        }
        for (name, bytes) in &generated {
            std::fs::write(corpus_path().join(name), bytes).unwrap();
        }
        eprintln!(
            "wrote {} files to {}",
            generated.len(),
            corpus_path().display()
        );
        return;
    }
    let files = checked_in();
    let missing: Vec<&String> = generated
        .keys()
        .filter(|n| !files.contains_key(*n))
        .collect();
    let extra: Vec<&String> = files
        .keys()
        .filter(|n| !generated.contains_key(*n))
        .collect();
    let changed: Vec<&String> = generated
        .iter()
        .filter(|(n, b)| files.get(*n).is_some_and(|f| f != *b))
        .map(|(n, _)| n)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && changed.is_empty(),
        "tests/malformed/ is not what the generator makes (rewrite it with \
         SEGPACK_REGENERATE=1 cargo test --test malformed checked_in_corpus): \
         missing {missing:?}, extra {extra:?}, changed {changed:?}"
    );
}

// ---------------------------------------------------------------------------
// Running the command line.

/// What is wrong with a refusal: exit status 1, one `error:` line naming a
/// byte offset, nothing on stdout.
fn refusal_problem(out: &Output, needs_offset: bool) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    if out.status.code() != Some(1) {
        return Some(format!("exit status {:?}, stderr {stderr:?}", out.status));
    }
    if lines.len() != 1 || !lines[0].starts_with("error: ") {
        return Some(format!("stderr is not one error line: {stderr:?}"));
    }
    if needs_offset && !lines[0].contains("offset 0x") {
        return Some(format!("the error names no byte offset: {stderr:?}"));
    }
    if !out.stdout.is_empty() {
        return Some(format!("{} bytes on stdout", out.stdout.len()));
    }
    None
}

/// Runs `pack` (file to file, and stdin to stdout) and `inspect` on `bytes`;
/// describes every way the refusal is wrong.
fn check_refused(bytes: &[u8]) -> Vec<String> {
    let mut problems = Vec::new();
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("in.wasm");
    std::fs::write(&input, bytes).unwrap();
    let output = dir.path().join("out.wasm");

    let out = pack_to(&input, &output)
        .current_dir(dir.path())
        .output()
        .unwrap();
    if let Some(p) = refusal_problem(&out, true) {
        problems.push(format!("pack: {p}"));
    }
    if output.exists() {
        problems.push("pack: created the output file".into());
    }
    if listing(dir.path()) != ["in.wasm"] {
        problems.push(format!(
            "pack: left files behind: {:?}",
            listing(dir.path())
        ));
    }
    if std::fs::read(&input).unwrap() != bytes {
        problems.push("pack: changed the input".into());
    }

    // From stdin, with the spool file's directory watched.
    let spool = TempDir::new().unwrap();
    let out = segpack()
        .env("TMPDIR", spool.path())
        .arg("pack")
        .write_stdin(bytes.to_vec())
        .output()
        .unwrap();
    if let Some(p) = refusal_problem(&out, true) {
        problems.push(format!("pack from stdin: {p}"));
    }
    if !listing(spool.path()).is_empty() {
        problems.push(format!(
            "pack from stdin: left temporary files: {:?}",
            listing(spool.path())
        ));
    }

    let out = segpack().arg("inspect").arg(&input).output().unwrap();
    if let Some(p) = refusal_problem(&out, false) {
        problems.push(format!("inspect: {p}"));
    }
    problems
}

/// Files whose check fails because of a known segpack bug, with the bug.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

#[test]
fn every_malformed_file_is_refused_cleanly() {
    let files = checked_in();
    assert!(
        files.len() >= 300,
        "only {} files in tests/malformed",
        files.len()
    );
    let names: Vec<&String> = files.keys().collect();
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(name) = names.get(i) else { break };
                    let bytes = &files[*name];
                    assert!(bytes.len() < MAX_FILE, "{name} is too big");
                    assert!(invalid(bytes), "{name} is valid: not a malformed input");
                    let problems = check_refused(bytes);
                    let known = KNOWN_FAILURES.iter().any(|(n, _)| n == name);
                    if !problems.is_empty() && !known {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{name}: {}", problems.join("; ")));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {} malformed files were not refused cleanly:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// Truncations of every real module in the shared corpus at its section
/// boundaries and at a few places inside (not checked in: the files are
/// big). Components are cut inside their nested modules too.
#[test]
fn truncated_corpus_files_are_refused_cleanly() {
    let mut rng = support::rng::Rng::new(0x7275_6e63);
    let mut failures = Vec::new();
    let mut checked = 0;
    for path in support::corpus_files() {
        let bytes = std::fs::read(&path).unwrap();
        let mut points: Vec<usize> = if wasm::is_core_module(&bytes) {
            truncation_points(&bytes, usize::MAX)
        } else {
            Vec::new()
        };
        points.truncate(40);
        for _ in 0..6 {
            points.push(rng.range(1..=bytes.len() as u64 - 1) as usize);
        }
        for at in points {
            let cut = &bytes[..at];
            if !invalid(cut) {
                continue;
            }
            checked += 1;
            for problem in check_refused(cut) {
                failures.push(format!("{} cut at {at}: {problem}", path.display()));
            }
        }
    }
    assert!(checked >= 50, "only {checked} truncations checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Not malformed: a valid component nested 990 deep (wasmparser allows
/// 1,000 modules and components in all). Packing and inspecting it must not
/// overflow the stack.
#[test]
fn deeply_nested_valid_component_is_not_a_stack_overflow() {
    let good =
        wat(r#"(module (memory 1) (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00b"))"#);
    let mut bytes = concat(&[COMPONENT, &section(1, &good)]);
    for _ in 0..990 {
        bytes = concat(&[COMPONENT, &section(4, &bytes)]);
    }
    assert!(!invalid(&bytes), "the deep component should be valid");
    let dir = TempDir::new().unwrap();
    let input = dir.path().join("deep.wasm");
    std::fs::write(&input, &bytes).unwrap();
    let output = dir.path().join("out.wasm");
    let out = pack_to(&input, &output).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "pack: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let packed = std::fs::read(&output).unwrap();
    assert!(!invalid(&packed), "the packed deep component is invalid");
    assert!(
        packed.len() < bytes.len(),
        "the nested module was not packed"
    );
    let out = segpack().arg("inspect").arg(&input).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "inspect: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Custom sections are not validated, so a broken `name` section is a valid
/// module; segpack rewrites its data-segment names, and must neither crash
/// nor write an invalid binary over one.
#[test]
fn broken_name_sections_are_not_a_crash() {
    let seg = active(0, b"a\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0b");
    let module = |name_content: &[u8]| {
        concat(&[
            MODULE,
            &one_memory(),
            &data_section(&[1], &seg),
            &section(0, &concat(&[&[4], b"name", name_content])),
        ])
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "data names, count u32::MAX",
            concat(&[&[9, 5], &uleb(u64::from(u32::MAX))]),
        ),
        ("data names, size past the end", vec![9, 100, 1, 0, 1, b'a']),
        (
            "data names, name length past the end",
            vec![9, 4, 1, 0, 50, b'a'],
        ),
        (
            "data names, overlong count",
            concat(&[&[9, 7], &uleb_padded(1, 6), &[0]]),
        ),
        (
            "data names, index u32::MAX",
            concat(&[&[9, 9, 1], &uleb(u64::from(u32::MAX)), &[1, b'a', 0, 0]]),
        ),
        (
            "subsection size u32::MAX",
            concat(&[&[9], &uleb(u64::from(u32::MAX))]),
        ),
        (
            "unknown subsection, then data names",
            vec![0x7f, 1, 0, 9, 4, 1, 0, 1, b'a'],
        ),
        (
            "data names out of order",
            vec![9, 8, 2, 1, 1, b'b', 0, 1, b'a', 0],
        ),
        ("truncated subsection id only", vec![9]),
    ];
    let mut failures = Vec::new();
    for (what, content) in cases {
        let bytes = module(&content);
        assert!(!invalid(&bytes), "{what}: the module should be valid");
        let dir = TempDir::new().unwrap();
        let input = dir.path().join("in.wasm");
        std::fs::write(&input, &bytes).unwrap();
        let output = dir.path().join("out.wasm");
        let out = pack_to(&input, &output).output().unwrap();
        match out.status.code() {
            Some(0) => {
                let packed = std::fs::read(&output).unwrap();
                if invalid(&packed) {
                    failures.push(format!("{what}: the output does not validate"));
                }
            }
            Some(1) => {
                if let Some(p) = refusal_problem(&out, false) {
                    failures.push(format!("{what}: {p}"));
                }
                if output.exists() {
                    failures.push(format!("{what}: refused, yet wrote the output"));
                }
            }
            _ => failures.push(format!(
                "{what}: {:?}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The error for a problem deep inside nested components names the path
/// to it, one `component 0 / ` per level: for the corpus file nested 4,000
/// deep that is a 14 KB line. One line, but not the "clear one-line error"
/// of SPEC §5.
#[test]
fn error_for_a_deeply_nested_component_is_short() {
    let file = corpus_path().join("component-nested-4000-deep-garbage.wasm");
    let out = segpack().arg("pack").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.len() < 500,
        "a {}-byte error line: {}...",
        stderr.len(),
        &stderr[..200]
    );
}
