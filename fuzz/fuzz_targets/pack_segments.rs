//! Arbitrary segment lists into the producer API, `segpack::pack_segments`.
//!
//! Up to three memories (each `i32` or `i64`), up to 64 segments that
//! overlap, overwrite each other with zeros, sit near the top of their
//! address space or 4 GiB apart. A segment naming an undescribed memory, not
//! fitting its address space or ending at 2^64 must give `InvalidSegment`;
//! otherwise the output must:
//!
//! * be sorted by (memory, offset), without overlaps, no segment empty or
//!   longer than `MAX_SEGMENT_LEN` (1 GiB), none past its address space;
//! * cover exactly the non-zero bytes of each memory's image (last writer
//!   wins): every payload byte equals the image's byte there, and every
//!   non-zero byte of the image is in some segment;
//! * hold at most `max_segments` segments whenever that is possible (gaps of
//!   `MAX_GAP` or more are never closed, segments stay within 1 GiB);
//! * not depend on the thread count.
//!
//! Zero runs (`Part::Zeros`) are checked against the sparse image without
//! being materialized, so gigabyte gaps cost nothing.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use segpack::{ErrorKind, IndexType, MAX_GAP, MAX_SEGMENT_LEN, Part, Segment};
use segpack_fuzz::{OPTION_BYTES, assert_one_line, options};

/// One generated segment, owning its bytes.
struct Spec {
    memory_index: u32,
    offset: u64,
    data: Vec<u8>,
}

fn offset(u: &mut Unstructured<'_>, space: u128, len: usize) -> Result<u64> {
    let top = |back: u64| (space - 1) as u64 - back.min((space - 1) as u64);
    Ok(match u.int_in_range(0..=9)? {
        // A small window, where segments overlap and gaps are short.
        0..=4 => u.int_in_range(0..=4096)?,
        // Ending exactly at, or just before, the end of the address space.
        5 => (space - len as u128).saturating_sub(u128::from(u.int_in_range(0..=64u64)?)) as u64,
        // Near 2^31 (where i32.const immediates turn negative).
        6 => (1u64 << 31) - 2048 + u.int_in_range(0..=4096)?,
        // Gaps around 4 GiB, and the 1 GiB segment limit.
        7 => u.int_in_range(0..=3)? << 30 | u.int_in_range(0..=4096)?,
        8 => top(u.int_in_range(0..=4096)?),
        _ => u.arbitrary()?,
    })
}

fn data(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let len = if u.ratio(1, 16)? {
        u.int_in_range(0..=4096)?
    } else {
        u.int_in_range(0..=48)?
    };
    let zeros = u.int_in_range(0..=3)?;
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        out.push(match zeros {
            // All zeros: erases what is below.
            0 => 0,
            // Mostly zeros, or runs of zeros.
            1 => u.arbitrary::<u8>()?.saturating_sub(200),
            2 if (i / 8) % 2 == 0 => 0,
            _ => u.arbitrary()?,
        });
    }
    Ok(out)
}

/// The image: every non-zero byte, by (memory, address).
fn image(specs: &[Spec]) -> BTreeMap<(u32, u64), u8> {
    let mut image = BTreeMap::new();
    for s in specs {
        for (i, &b) in s.data.iter().enumerate() {
            let at = (s.memory_index, s.offset + i as u64);
            if b == 0 {
                image.remove(&at);
            } else {
                image.insert(at, b);
            }
        }
    }
    image
}

/// The fewest segments possible: per memory, runs of non-zero bytes joined
/// greedily while the gap is below `MAX_GAP` and the joined segment stays
/// within `MAX_SEGMENT_LEN`.
fn fewest_segments(image: &BTreeMap<(u32, u64), u8>) -> u64 {
    let mut count = 0;
    let mut current: Option<(u32, u64, u64)> = None; // memory, start, end
    for &(memory, at) in image.keys() {
        match current {
            Some((m, start, end))
                if m == memory && at - end < MAX_GAP && at + 1 - start <= MAX_SEGMENT_LEN =>
            {
                current = Some((m, start, at + 1));
            }
            _ => {
                count += 1;
                current = Some((memory, at, at + 1));
            }
        }
    }
    count
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let options = options(u.arbitrary::<[u8; OPTION_BYTES]>()?);
    let memories: Vec<IndexType> = (0..u.int_in_range(1..=3)?)
        .map(|_| {
            Ok(if u.arbitrary()? {
                IndexType::I64
            } else {
                IndexType::I32
            })
        })
        .collect::<Result<_>>()?;
    let mut specs = Vec::new();
    for _ in 0..u.int_in_range(0..=64)? {
        let memory_index = if u.ratio(1, 100)? {
            memories.len() as u32 + u.int_in_range(0..=1)?
        } else {
            u.int_in_range(0..=memories.len() as u32 - 1)?
        };
        let space = memories
            .get(memory_index as usize)
            .map_or(1 << 32, |t| t.address_space());
        let data = data(u)?;
        let offset = offset(u, space, data.len())?;
        specs.push(Spec {
            memory_index,
            offset,
            data,
        });
    }
    // A segment ending at 2^64 exactly fits a memory64 but is refused (since
    // b9d4907; found by this target, see tests/fuzz_regressions.rs
    // `pack_segments_i64_segment_ending_at_2_pow_64`).
    let valid = specs.iter().all(|s| {
        memories.get(s.memory_index as usize).is_some_and(|t| {
            u128::from(s.offset) + s.data.len() as u128 <= t.address_space()
                && s.offset.checked_add(s.data.len() as u64).is_some()
        })
    });
    let segments: Vec<Segment<'_>> = specs
        .iter()
        .map(|s| Segment {
            memory_index: s.memory_index,
            offset: s.offset,
            data: &s.data,
        })
        .collect();

    let packed = match segpack::pack_segments(&segments, &memories, &options) {
        Err(e) => {
            assert_one_line(&e);
            assert!(!valid, "valid segments refused: {e}");
            assert_eq!(e.kind(), ErrorKind::InvalidSegment, "{e}");
            return Ok(());
        }
        Ok(packed) => packed,
    };
    assert!(valid, "invalid segments accepted");

    let image = image(&specs);
    let mut covered = 0usize;
    let mut previous: Option<(u32, u64)> = None; // memory, end
    for (i, seg) in packed.segments().enumerate() {
        let len = seg.len();
        let what = format!(
            "segment {i} (memory {}, offset {:#x}, {len} bytes)",
            seg.memory_index, seg.offset
        );
        assert!(len > 0, "{what} is empty");
        assert!(len <= MAX_SEGMENT_LEN, "{what} is longer than 1 GiB");
        let space = memories
            .get(seg.memory_index as usize)
            .unwrap_or_else(|| panic!("{what}: no such memory"))
            .address_space();
        assert!(
            u128::from(seg.offset) + u128::from(len) <= space,
            "{what} is past its address space"
        );
        if let Some((memory, end)) = previous {
            assert!(
                (memory, end) <= (seg.memory_index, seg.offset),
                "{what} is out of order or overlaps the previous one (memory {memory}, end {end:#x})"
            );
        }
        previous = Some((seg.memory_index, seg.offset + len));
        let mut at = seg.offset;
        for part in &seg.parts {
            match *part {
                Part::Bytes(bytes) => {
                    for (j, &b) in bytes.iter().enumerate() {
                        let want = image
                            .get(&(seg.memory_index, at + j as u64))
                            .copied()
                            .unwrap_or(0);
                        assert_eq!(b, want, "{what}: byte at {:#x}", at + j as u64);
                        covered += usize::from(b != 0);
                    }
                }
                Part::Zeros(n) => {
                    if let Some(((_, x), b)) = image
                        .range((seg.memory_index, at)..(seg.memory_index, at + n))
                        .next()
                    {
                        panic!("{what}: zeros over the image's byte {b:#x} at {x:#x}");
                    }
                }
            }
            at += part.len();
        }
    }
    assert_eq!(
        covered,
        image.len(),
        "the segments miss non-zero bytes of the image"
    );
    let fewest = fewest_segments(&image);
    if fewest <= u64::from(options.max_segments.get()) {
        assert!(
            packed.len() as u64 <= u64::from(options.max_segments.get()),
            "{} segments, over the cap of {} ({fewest} would do)",
            packed.len(),
            options.max_segments
        );
    }
    if options.threads != 1 {
        let serial = segpack::pack_segments(
            &segments,
            &memories,
            &options.clone().with_threads(1),
        )
        .expect("packs with one thread");
        assert!(serial == packed, "the result depends on the thread count");
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
