//! What the fuzz targets share: options decoded from the input's first
//! bytes, and the crate's differential harness (`tests/support`), included by
//! path so that the fuzzers and `cargo test` judge outputs the same way.

use segpack::{DEFAULT_MAX_SEGMENTS, ENGINE_MAX_SEGMENTS, PackOptions};

/// The integration tests' harness: wasmi instantiation ([`support::engine`]),
/// the static image evaluator ([`support::statics`]).
#[path = "../../tests/support/mod.rs"]
pub mod support;

/// How many bytes [`options`] reads.
pub const OPTION_BYTES: usize = 3;

/// Decodes [`PackOptions`] from three bytes, valid ones mostly:
///
/// * `max_segments`: the default, a small cap (1-16, where merging is
///   forced), a cap near the engine limit, or (rarely) 0 and one past the
///   engine limit, which must be refused with an error;
/// * `zero_filled_imports` from one bit;
/// * `threads` 0 (one per core) to 4.
pub fn options(bytes: [u8; OPTION_BYTES]) -> PackOptions {
    let max_segments = match bytes[0] % 16 {
        0..=5 => DEFAULT_MAX_SEGMENTS,
        6..=12 => 1 + u32::from(bytes[1] % 16),
        13 => ENGINE_MAX_SEGMENTS - u32::from(bytes[1]),
        14 => 0,
        _ => ENGINE_MAX_SEGMENTS + 1,
    };
    PackOptions::default().with_max_segments(max_segments).with_zero_filled_imports(bytes[2] & 0x80 != 0).with_threads(usize::from(bytes[2] % 5))
}

/// Whether `options` are in the range the library accepts.
pub fn options_valid(options: &PackOptions) -> bool {
    (1..=ENGINE_MAX_SEGMENTS).contains(&options.max_segments)
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
