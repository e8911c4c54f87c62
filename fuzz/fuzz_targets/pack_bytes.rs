//! Arbitrary bytes into the whole-module API, `segpack::pack_module`.
//!
//! The first three bytes choose the options (`segpack_fuzz::options`), the
//! rest is the binary. segpack must never panic or abort, and must never
//! make an allocation bigger than the input warrants: every allocation made
//! while segpack runs is checked against [`allowance`] by a wrapping global
//! allocator, which aborts (a libFuzzer crash with the stack) when it is
//! exceeded. Run with `-malloc_limit_mb` as well (docs/robustness.md).
//!
//! When segpack accepts the input, the output must validate (all features),
//! equal the input when nothing changed, hold the same static memory images
//! (`tests/support/statics.rs`), pass `segpack::verify`, and pack to itself
//! (SPEC §1.3).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use libfuzzer_sys::fuzz_target;
use segpack::ErrorKind;
use segpack_fuzz::support::statics;
use segpack_fuzz::{OPTION_BYTES, assert_one_line, options};

/// The largest single allocation allowed right now; `usize::MAX` when
/// segpack is not running.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// What one allocation may take while segpack packs an input of `len`
/// bytes: the output buffer (a `Vec` that doubles, so up to twice the
/// input), per-segment tables, and a fixed 16 MiB for everything else.
fn allowance(len: usize) -> usize {
    (16 << 20) + 4 * len
}

struct Guard;

impl Guard {
    #[cold]
    fn too_big(size: usize) -> ! {
        let limit = LIMIT.swap(usize::MAX, Ordering::SeqCst);
        eprintln!(
            "segpack allocated {size} bytes at once, more than the {limit} bytes its input warrants"
        );
        std::process::abort();
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the wrapper only
// looks at sizes.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT.load(Ordering::Relaxed) {
            Self::too_big(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LIMIT.load(Ordering::Relaxed) {
            Self::too_big(layout.size());
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LIMIT.load(Ordering::Relaxed) {
            Self::too_big(new_size);
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Guard = Guard;

/// Runs `pack_module` with the allocation guard armed.
fn pack(
    wasm: &[u8],
    options: &segpack::PackOptions,
) -> (segpack::Result<segpack::PackReport>, Vec<u8>) {
    let mut out = Vec::new();
    LIMIT.store(allowance(wasm.len()), Ordering::SeqCst);
    let result = segpack::pack_module(wasm, &mut out, options);
    LIMIT.store(usize::MAX, Ordering::SeqCst);
    (result, out)
}

fuzz_target!(|data: &[u8]| {
    let Some((head, wasm)) = data.split_first_chunk::<OPTION_BYTES>() else {
        return;
    };
    let options = options(*head);
    let (result, out) = pack(wasm, &options);
    let report = match result {
        Err(e) => {
            assert_one_line(&e);
            if e.kind() == ErrorKind::Malformed {
                assert!(e.offset().is_some(), "no offset in {e}");
            }
            assert!(out.is_empty(), "output written before the error {e}");
            return;
        }
        Ok(report) => report,
    };
    assert_eq!(report.output_len, out.len() as u64);
    assert_eq!(report.input_len, wasm.len() as u64);
    if !report.changed() {
        assert!(out == wasm, "nothing changed, yet the output differs");
        return;
    }
    statics::assert_validates(&out, "the packed binary");
    statics::assert_same_static_images(wasm, &out, options.zero_filled_imports);
    let verify = segpack::VerifyOptions::default().with_zero_filled_imports(options.zero_filled_imports);
    match segpack::verify(wasm, &out, &verify) {
        Ok(None) => {}
        Ok(Some(difference)) => panic!("segpack::verify finds a difference: {difference}"),
        Err(e) => panic!("segpack::verify fails: {e}"),
    }
    let (again, twice) = pack(&out, &options);
    let again = again.unwrap_or_else(|e| panic!("segpack refuses its own output: {e}"));
    assert!(
        twice == out,
        "pack(pack(x)) != pack(x): {} bytes, then {} bytes ({again:?})",
        out.len(),
        twice.len()
    );
});
