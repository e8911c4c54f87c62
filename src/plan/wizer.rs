//! Wizer's packing rule (wasmtime's `crates/wizer`, which weval copied), as
//! one of the layouts the cap weighs ([`super::cap`]), so that a plan is
//! never larger than the rule it replaces, by construction rather than by
//! test.
//!
//! The rule: non-zero runs at most [`WIZER_JOINED_GAP`] zeros apart are
//! joined; with more segments than the cap, the shortest gaps between them
//! close (ties: the lower offset first) until the cap is met. So the gaps
//! that stay open are the longest, ties by higher offset:
//! [`Order::Length`](super::cap::Order::Length).
//!
//! Those gaps come from two places. A gap of at least
//! [`NEVER_MERGED_GAP`] is never closed by the greedy pass, so it is
//! offered as the greedy segments go by, on either route. Shorter ones lie
//! inside greedy segments; they matter only when the cap leaves room for
//! gaps that short, so they are found by a scan of their own
//! ([`offer_short_gaps`]) only then
//! ([`Gaps::needs_short_gaps`](super::cap::Gaps::needs_short_gaps)).

use super::cap::Gaps;
use super::merge::NEVER_MERGED_GAP;
use super::{MemoryImage, Range};
use crate::scan;

/// Wizer joins runs this many zeros apart or closer
/// (`MIN_ACTIVE_SEGMENT_OVERHEAD`).
pub(super) const WIZER_JOINED_GAP: u64 = 4;

/// The scan reads this much at a time, and tells `release` once read.
const SLICE: usize = 1 << 20;

/// Offers `gaps` every one of Wizer's gaps in `image` shorter than
/// [`NEVER_MERGED_GAP`] (the longer ones the greedy pass offered). One
/// thread: it runs only when the cap leaves room for short gaps, on images
/// that do not have many long ones.
pub(super) fn offer_short_gaps<'a, P: scan::Slice<'a>>(
    image: &MemoryImage<'_>,
    pieces: &[P],
    gaps: &mut Gaps,
    release: &(dyn Fn(&[u8]) + Sync),
) {
    let mut previous_end: Option<u64> = None;
    for piece in pieces {
        let (offset, data) = piece.get();
        for (i, slice) in data.chunks(SLICE).enumerate() {
            let at = offset + (i * SLICE) as u64;
            scan::for_each_run(slice, |s, e| {
                let run = Range {
                    start: at + s as u64,
                    end: at + e as u64,
                };
                if let Some(end) = previous_end.replace(run.end) {
                    let gap = Range {
                        start: end,
                        end: run.start,
                    };
                    if gap.len() > WIZER_JOINED_GAP && gap.len() < NEVER_MERGED_GAP {
                        gaps.longest
                            .offer(image.memory_index, image.index_type, gap);
                    }
                }
            });
            release(slice);
        }
    }
}
