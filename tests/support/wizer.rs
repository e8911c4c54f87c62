//! Wizer's packing rule (wasmtime `crates/wizer/src/snapshot.rs`, which
//! weval copied), restated at any cap: take the non-zero runs of memory 0,
//! merge neighbours whose gap is at most 4 bytes (its
//! `MIN_ACTIVE_SEGMENT_OVERHEAD`), then, with `cap` segments or more, close
//! the smallest gaps (ties: the lower offset first, a stable sort) until
//! `cap` remain. Each segment is written with flag 0 (memory 0), an
//! `i32.const` offset and its length. The rule itself is in
//! `wizer_as_written.rs`, which the library's unit tests include too.

use super::wasm::{sleb_len, uleb_len};

pub use super::wizer_as_written::wizer_segments;

/// The bytes of `segments` (memory 0, `i32.const` offsets) in a data
/// section, headers included, without the section's own header and count.
pub fn segments_len(segments: &[(u64, u64)]) -> u64 {
    segments
        .iter()
        .map(|&(s, e)| {
            1 + 1 + sleb_len(s as u32 as i32 as i64) as u64 + 1 + uleb_len(e - s) as u64 + (e - s)
        })
        .sum()
}

/// The size of the data section Wizer's rule writes for memory 0's runs at
/// cap `cap`, header included.
pub fn wizer_data_section_len(runs: impl IntoIterator<Item = (u64, u64)>, cap: usize) -> u64 {
    let segments = wizer_segments(runs, cap);
    let payload = uleb_len(segments.len() as u64) as u64 + segments_len(&segments);
    1 + uleb_len(payload) as u64 + payload
}
