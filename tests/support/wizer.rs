//! Wizer's packing rule (wasmtime `crates/wizer/src/snapshot.rs`, which
//! weval copied), restated at any cap: take the non-zero runs of memory 0,
//! merge neighbours whose gap is at most 4 bytes (its
//! `MIN_ACTIVE_SEGMENT_OVERHEAD`), then, with `cap` segments or more, close
//! the smallest gaps (ties: the lower offset first, a stable sort) until
//! `cap` remain. Each segment is written with flag 0 (memory 0), an
//! `i32.const` offset and its length.

use super::wasm::{sleb_len, uleb_len};

const WIZER_MERGE_GAP: u64 = 4;

/// Wizer's segments, as (start, end), for the runs `runs` (sorted, as
/// (start, end)) at cap `cap`.
pub fn wizer_segments(runs: impl IntoIterator<Item = (u64, u64)>, cap: usize) -> Vec<(u64, u64)> {
    let mut segments: Vec<(u64, u64)> = Vec::new();
    for (start, end) in runs {
        match segments.last_mut() {
            Some(last) if start - last.1 <= WIZER_MERGE_GAP => last.1 = end,
            _ => segments.push((start, end)),
        }
    }
    if segments.len() >= cap && segments.len() > 1 {
        let excess = segments.len() - cap;
        let mut gaps: Vec<(u64, usize)> = segments
            .windows(2)
            .enumerate()
            .map(|(i, w)| (w[1].0 - w[0].1, i))
            .collect();
        gaps.sort_by_key(|g| g.0);
        let mut close = vec![false; segments.len()];
        for &(_, i) in &gaps[..excess] {
            close[i] = true;
        }
        let mut capped: Vec<(u64, u64)> = Vec::new();
        for (i, &s) in segments.iter().enumerate() {
            match capped.last_mut() {
                Some(last) if close[i - 1] => last.1 = s.1,
                _ => capped.push(s),
            }
        }
        segments = capped;
    }
    segments
}

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
