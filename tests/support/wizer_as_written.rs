//! Wizer's packing rule (wasmtime `crates/wizer/src/snapshot.rs`, which
//! weval copied) as written there, restated at any cap: the non-zero runs
//! of memory 0 at most 4 bytes apart (its `MIN_ACTIVE_SEGMENT_OVERHEAD`)
//! are merged, then, with `cap` segments or more, the smallest gaps close
//! (ties: the lower offset first, a stable sort) until `cap` remain.
//!
//! No dependencies: the integration tests (`support::wizer`) and the
//! library's unit tests (src/plan/tests.rs, by path) check against this one
//! copy.

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
