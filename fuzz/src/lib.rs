//! What the fuzz targets share: options decoded from the input's first
//! bytes, and the crate's differential harness (`tests/support`), included by
//! path so that the fuzzers and `cargo test` judge outputs the same way.

use segpack::{MaxSegments, PackOptions};

/// The integration tests' harness: wasmi instantiation ([`support::engine`]),
/// the static image evaluator ([`support::statics`]).
#[path = "../../tests/support/mod.rs"]
pub mod support;

/// How many bytes [`options`] reads.
pub const OPTION_BYTES: usize = 3;

/// Decodes [`PackOptions`] from three bytes (every value of theirs is
/// valid: an invalid cap cannot be made, `MaxSegments::new` refuses it):
///
/// * `max_segments`: the default, a small cap (1-16, where merging is
///   forced), a cap near the engine limit, or the engine limit;
/// * `zero_filled_imports` from one bit;
/// * `threads` 0 (one per core) to 4.
pub fn options(bytes: [u8; OPTION_BYTES]) -> PackOptions {
    let max_segments = match bytes[0] % 16 {
        0..=5 => MaxSegments::DEFAULT,
        6..=12 => cap(1 + u32::from(bytes[1] % 16)),
        13 => cap(MaxSegments::ENGINE_LIMIT.get() - u32::from(bytes[1])),
        _ => MaxSegments::ENGINE_LIMIT,
    };
    PackOptions::default().with_max_segments(max_segments).with_zero_filled_imports(bytes[2] & 0x80 != 0).with_threads(usize::from(bytes[2] % 5))
}

/// The cap `n`, which the caller keeps in range.
fn cap(n: u32) -> MaxSegments {
    MaxSegments::new(n).expect("a cap in 1..=100,000")
}

/// Checks what SPEC §5 asks of an error: one line.
pub fn assert_one_line(error: &segpack::Error) {
    let text = error.to_string();
    assert!(
        !text.contains('\n'),
        "the error spans several lines: {text:?}"
    );
    assert!(!text.is_empty(), "the error is empty");
}
