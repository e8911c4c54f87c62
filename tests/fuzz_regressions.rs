//! Regression tests for what the fuzzers (`fuzz/`, docs/robustness.md)
//! found. Each test names the target that found it; the minimized input is
//! checked in under `tests/fuzz_regressions/` for replaying with
//! `cargo fuzz run <target> <file>` (from `fuzz/`), and the test restates it
//! through the public API so that it needs no fuzzing build.
//!
//! A test marked `#[ignore = "segpack bug: ..."]` is a bug not yet fixed:
//! run it with `cargo test --test fuzz_regressions -- --ignored`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use segpack::{ErrorKind, IndexType, PackOptions, Part, Segment};
use support::statics;

/// The global allocator of this test binary: `System`, noting the largest
/// single allocation each thread makes (see [`largest_allocation`]).
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the slot may be gone while the thread exits.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded to `System` unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns the largest single allocation this thread made
/// meanwhile, in bytes.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|largest| largest.set(0));
    f();
    LARGEST.with(Cell::get)
}

/// The minimized fuzz input at `tests/fuzz_regressions/<name>`.
fn artifact(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every non-zero byte the packed segments write, as (memory, address,
/// byte), in order. Checks on the way that zero runs are zeros.
fn non_zero_bytes(packed: &segpack::Packed<segpack::PackedSegment<'_>>) -> Vec<(u32, u64, u8)> {
    let mut out = Vec::new();
    for s in packed.segments() {
        let mut at = s.offset;
        for part in &s.parts {
            if let Part::Bytes(bytes) = part {
                for (i, &b) in bytes.iter().enumerate() {
                    if b != 0 {
                        out.push((s.memory_index, at + i as u64, b));
                    }
                }
            }
            at = at.wrapping_add(part.len());
        }
    }
    out
}

/// Found by `pack_segments` (artifact
/// `pack_segments-i64-end-at-2-pow-64`): a memory64 segment whose last byte
/// is the last byte of the 64-bit address space (offset + length == 2^64)
/// fits its memory, yet the planner's ranges end below 2^64: `offset + len`
/// overflowed (a panic with overflow checks, a dropped byte without). Now
/// the producer API refuses such a segment with a clear error, and never
/// panics.
#[test]
fn pack_segments_i64_segment_ending_at_2_pow_64() {
    assert!(!artifact("pack_segments-i64-end-at-2-pow-64").is_empty());
    let top = [7u8];
    let below = [0u8, 5, 0];
    let segments = [
        Segment {
            memory_index: 0,
            offset: u64::MAX - 10,
            data: &below,
        },
        Segment {
            memory_index: 0,
            offset: u64::MAX,
            data: &top,
        },
    ];
    let err =
        segpack::pack_segments(&segments, &[IndexType::I64], &PackOptions::default()).unwrap_err();
    assert_eq!(err.kind(), segpack::ErrorKind::InvalidSegment);
    assert!(err.to_string().contains("2^64"), "{err}");
    // Ending one byte lower is packed as usual.
    let segments = [Segment {
        memory_index: 0,
        offset: u64::MAX - 1,
        data: &top,
    }];
    let packed =
        segpack::pack_segments(&segments, &[IndexType::I64], &PackOptions::default()).unwrap();
    assert_eq!(non_zero_bytes(&packed), [(0, u64::MAX - 1, 7)]);
}

/// The same through the whole-module API: a memory64 of 2^48 pages (the
/// whole 64-bit address space, which validates) with a segment on its last
/// byte is not re-packed, and the output is the input.
#[test]
fn pack_module_i64_segment_ending_at_2_pow_64() {
    let wasm = wat::parse_str(
        r#"(module (memory i64 281474976710656)
            (data (i64.const -11) "\00\05\00")
            (data (i64.const -1) "\07"))"#,
    )
    .unwrap();
    statics::assert_validates(&wasm, "the input");
    let mut out = Vec::new();
    let report = segpack::pack_module(&wasm, &mut out, &PackOptions::default()).unwrap();
    assert_eq!(out, wasm);
    assert!(
        report.modules[0].unpacked_memories[0].1 == segpack::NotPackable::EndsAtTopOfAddressSpace,
        "{report:?}"
    );
}

/// Found by `pack_bytes` (artifact `pack_bytes-lying-import-count`, whose
/// first three bytes are the fuzzer's options): a 31-byte module whose
/// import section claims 737,279 imports. wasmparser's validator, which
/// segpack runs first, reserves room for the claimed count before reading
/// one entry: 70 MiB (1,048,576 slots of 70 bytes) for a 31-byte input.
/// Bounded, by wasmparser's limit of 1,000,000 imports, but far more than
/// the input warrants (issue 9; SPEC §5: "never an unbounded allocation
/// from a length field"); a CI runner with little memory pays it for any
/// corrupt file. Fixed: segpack checks each section's count against its
/// size before validating (every entry takes at least one byte), for every
/// section wasmparser reserves by count (types, imports, functions, tables,
/// memories, tags, globals, exports, elements, data, component sections).
#[test]
fn lying_import_count_reserves_70_mib() {
    let artifact = artifact("pack_bytes-lying-import-count");
    // The fuzzer's option bytes, then the module.
    let wasm = &artifact[3..];
    assert!(wasm.starts_with(b"\0asm"));
    // The same with the largest count wasmparser allows, 1,000,000.
    let mut max = b"\0asm\x01\0\0\0\x02\x05\xc0\x84\x3d\x01\x61".to_vec();
    max.extend_from_slice(b"\x01\x62\x02\x00\x01");
    for input in [wasm, &max] {
        let mut result = None;
        let largest = largest_allocation(|| {
            result = Some(segpack::pack_module(
                input,
                &mut Vec::new(),
                &PackOptions::default(),
            ));
        });
        let error = result.unwrap().expect_err("the input is malformed");
        assert_eq!(error.kind(), ErrorKind::Malformed, "{error}");
        assert!(
            largest <= 1 << 20,
            "a {}-byte input made a {largest}-byte allocation ({error})",
            input.len()
        );
    }
}
