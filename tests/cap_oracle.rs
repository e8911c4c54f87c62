//! The planner against an exact oracle and against Wizer's rule, on small
//! generated images at every small cap (SPEC §4), through both producer
//! APIs (`pack_segments`, and `Packer` where the memory is small enough to
//! hold whole).
//!
//! The oracle is a dynamic program over a memory's non-zero runs: the best
//! data section with `k` segments covering the first `i` runs, for every `k`,
//! with the exact encoding (LEB widths of offsets and lengths, the memory
//! index flag, `i64.const` offsets, segments within 1 GiB). Starting a
//! segment anywhere but at a run, or cutting inside a run, never saves a
//! byte, so runs are the only places to cut. Written for clarity, not speed.

mod support;

use segpack::{IndexType, MaxSegments, PackOptions, Segment};
use support::rng::Rng;
use support::wasm::{sleb_len, uleb_len};
use support::wizer::{segments_len, wizer_segments};

/// One memory of a generated case: its index type, and its non-zero runs as
/// (offset, bytes), sorted and at least one zero apart.
struct Memory {
    index_type: IndexType,
    runs: Vec<(u64, Vec<u8>)>,
}

/// The exact size of an active segment, header and payload.
fn segment_len(memory_index: u32, index_type: IndexType, offset: u64, len: u64) -> u64 {
    let flag = if memory_index == 0 {
        1
    } else {
        1 + uleb_len(memory_index.into()) as u64
    };
    let immediate = match index_type {
        IndexType::I32 => offset as u32 as i32 as i64,
        IndexType::I64 => offset as i64,
    };
    flag + 1 + sleb_len(immediate) as u64 + 1 + uleb_len(len) as u64 + len
}

/// `best[k]`: the fewest bytes of exactly `k` segments covering `runs`
/// (`u64::MAX` when impossible), for `k` in `0..=runs.len()`.
fn memory_optimum(memory_index: u32, memory: &Memory) -> Vec<u64> {
    let runs: Vec<(u64, u64)> = memory
        .runs
        .iter()
        .map(|(o, d)| (*o, o + d.len() as u64))
        .collect();
    let n = runs.len();
    // table[k][i]: the first `i` runs in `k` segments.
    let mut table = vec![vec![u64::MAX; n + 1]; n + 1];
    table[0][0] = 0;
    for k in 1..=n {
        for i in 1..=n {
            // The last segment covers runs j..i.
            for j in 0..i {
                let (start, end) = (runs[j].0, runs[i - 1].1);
                if table[k - 1][j] == u64::MAX || end - start > segpack::MAX_SEGMENT_LEN {
                    continue;
                }
                let cost = table[k - 1][j]
                    + segment_len(memory_index, memory.index_type, start, end - start);
                table[k][i] = table[k][i].min(cost);
            }
        }
    }
    (0..=n).map(|k| table[k][n]).collect()
}

/// The fewest bytes of segments for all memories with at most `cap`
/// segments in all, or `None` when no layout meets the cap.
fn optimum(memories: &[Memory], cap: usize) -> Option<u64> {
    // total[k]: the fewest bytes of exactly k segments over the memories so far.
    let mut total = vec![0u64];
    for (m, memory) in memories.iter().enumerate() {
        let best = memory_optimum(m as u32, memory);
        let mut next = vec![u64::MAX; total.len() + best.len() - 1];
        for (a, &x) in total.iter().enumerate() {
            for (b, &y) in best.iter().enumerate() {
                if x != u64::MAX && y != u64::MAX {
                    next[a + b] = next[a + b].min(x + y);
                }
            }
        }
        total = next;
    }
    total
        .into_iter()
        .take(cap + 1)
        .min()
        .filter(|&b| b != u64::MAX)
}

/// The bytes of all of `packed`'s segments in the file; `offset_len` reads
/// a segment's offset and length.
fn packed_bytes<S>(packed: &segpack::Packed<S>, offset_len: impl Fn(&S) -> (u64, u64)) -> u64 {
    let offset_len = &offset_len;
    packed
        .memories()
        .iter()
        .flat_map(|m| {
            let (memory_index, index_type) = (m.memory_index(), m.index_type());
            m.segments().iter().map(move |s| {
                let (offset, len) = offset_len(s);
                segment_len(memory_index, index_type, offset, len)
            })
        })
        .sum()
}

/// What segpack's producer API gives: the bytes of its segments, and
/// whether it met the cap.
fn planner(memories: &[Memory], cap: u32) -> (u64, bool) {
    let segments: Vec<Segment<'_>> = memories
        .iter()
        .enumerate()
        .flat_map(|(m, memory)| {
            memory.runs.iter().map(move |(offset, data)| Segment {
                memory_index: m as u32,
                offset: *offset,
                data,
            })
        })
        .collect();
    let index_types: Vec<IndexType> = memories.iter().map(|m| m.index_type).collect();
    let options = PackOptions::default().with_max_segments(MaxSegments::new(cap).unwrap());
    let packed = segpack::pack_segments(&segments, &index_types, &options).unwrap();
    let bytes = packed_bytes(&packed, |s| (s.offset, s.len()));
    (bytes, packed.within_cap())
}

/// What segpack's streaming producer API (`Packer`, whole memories one at a
/// time) gives: the bytes of its segments. `None` when a memory would take
/// more than 4 MiB to hold whole.
fn packer(memories: &[Memory], cap: u32) -> Option<u64> {
    let options = PackOptions::default().with_max_segments(MaxSegments::new(cap).unwrap());
    let mut packer = segpack::Packer::new(&options);
    let mut images = Vec::new();
    for memory in memories {
        let (offset, data) = memory.runs.last()?;
        let len = offset + data.len() as u64;
        if len > 4 << 20 {
            return None;
        }
        let mut image = vec![0u8; len as usize];
        for (offset, data) in &memory.runs {
            image[*offset as usize..][..data.len()].copy_from_slice(data);
        }
        images.push(image);
    }
    for (m, (memory, image)) in memories.iter().zip(&images).enumerate() {
        packer.add_memory(m as u32, memory.index_type, image);
    }
    let packed = packer.finish();
    Some(packed_bytes(&packed, |e| (e.offset(), e.len())))
}

/// Runs of 1 to 200 bytes, gaps of 1 to 300 zeros: lengths and merged
/// lengths around the 128-byte LEB boundary, gaps around header sizes, and
/// offsets around the signed LEB boundaries (64, 8,192, 2^20, 2^31).
fn generate(rng: &mut Rng) -> Vec<Memory> {
    let memories = if rng.percent(80) { 1 } else { 2 };
    (0..memories)
        .map(|_| {
            let index_type = if rng.percent(20) {
                IndexType::I64
            } else {
                IndexType::I32
            };
            let bases = [0, 40, 8100, (1 << 20) - 300, (1 << 31) - 400, 1 << 27];
            let mut at = bases[rng.below(bases.len() as u64) as usize] + rng.below(64);
            let n = rng.range(1..=30);
            let runs = (0..n)
                .map(|_| {
                    let len = match rng.below(4) {
                        0 => rng.range(1..=4),
                        1 => rng.range(100..=140),
                        _ => rng.range(1..=60),
                    };
                    let mut data = vec![0u8; len as usize];
                    rng.fill(&mut data);
                    // Non-zero at both ends, zeros inside are fine.
                    data[0] |= 1;
                    *data.last_mut().unwrap() |= 1;
                    let run = (at, data);
                    let gap = match rng.below(4) {
                        0 => rng.range(3..=12),
                        1 => rng.range(13..=40),
                        _ => rng.range(1..=300),
                    };
                    at += len + gap;
                    run
                })
                .collect();
            Memory { index_type, runs }
        })
        .collect()
}

/// The non-zero runs of `memory` as (start, end), zeros inside a run
/// splitting it, as Wizer sees them.
fn non_zero_runs(memory: &Memory) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (offset, data) in &memory.runs {
        for (i, &b) in data.iter().enumerate() {
            let at = offset + i as u64;
            match runs.last_mut() {
                _ if b == 0 => {}
                Some(r) if r.1 == at => r.1 = at + 1,
                _ => runs.push((at, at + 1)),
            }
        }
    }
    runs
}

#[test]
fn the_smallest_case_found_is_no_larger_than_wizer() {
    // Non-zero runs 6+2, 23+2, 39+120 and 171+1, cap 2: Wizer's rule gives
    // (6, 2 B) and (23, 149 B), 162 bytes of segments.
    let runs = [(6u64, 2usize), (23, 2), (39, 120), (171, 1)]
        .map(|(o, n)| (o, vec![7u8; n]))
        .to_vec();
    let memory = Memory {
        index_type: IndexType::I32,
        runs,
    };
    let wizer = segments_len(&wizer_segments(non_zero_runs(&memory), 2));
    assert_eq!(wizer, 162);
    let memories = [memory];
    assert_eq!(planner(&memories, 2), (162, true));
    assert_eq!(optimum(&memories, 2), Some(162));
}

#[test]
fn closes_that_save_only_together_are_taken() {
    // Offsets past 2^20 take a 4-byte signed LEB: each header is 8 bytes
    // here. Runs of 113, 126, 7 and 121 bytes, 7, 8 and 7 zeros apart: any
    // one or two closes save nothing (the first grows a length LEB to 2
    // bytes), all three together save a byte: 398 bytes against 399.
    let runs = [
        (1_050_114u64, 113usize),
        (1_050_234, 126),
        (1_050_368, 7),
        (1_050_382, 121),
    ]
    .map(|(o, n)| (o, vec![7u8; n]))
    .to_vec();
    let memories = [Memory {
        index_type: IndexType::I32,
        runs,
    }];
    assert_eq!(optimum(&memories, 4), Some(398));
    assert_eq!(planner(&memories, 4), (398, true));
}

/// How far the planner is from the optimum over `cases` generated cases,
/// capped (a cap below the greedy count) or not: (cases, largest excess,
/// total excess).
#[derive(Debug, Default)]
struct Distance {
    cases: u64,
    largest: u64,
    total: u64,
}

impl Distance {
    fn add(&mut self, excess: u64) {
        self.cases += 1;
        self.largest = self.largest.max(excess);
        self.total += excess;
    }

    fn mean(&self) -> f64 {
        self.total as f64 / self.cases.max(1) as f64
    }
}

#[test]
fn never_larger_than_wizer_and_close_to_the_optimum() {
    // Other seeds: ORACLE_SEED=N (docs/design.md lists what 30 seeds gave).
    let seed =
        std::env::var("ORACLE_SEED").map_or(23, |s| s.parse().expect("ORACLE_SEED: a number"));
    let mut rng = Rng::new(seed);
    let (mut capped, mut uncapped) = (Distance::default(), Distance::default());
    let (mut against_wizer, mut streamed_cases) = (0, 0);
    for case in 0..4000 {
        let memories = generate(&mut rng);
        let runs: usize = memories.iter().map(|m| m.runs.len()).sum();
        let cap = match rng.below(3) {
            0 => rng.range(1..=3) as u32,
            _ => rng.range(1..=runs as u64 + 2) as u32,
        };
        let (ours, cap_met) = planner(&memories, cap);
        if let Some(streamed) = packer(&memories, cap) {
            assert_eq!(
                streamed, ours,
                "case {case}: Packer and pack_segments differ"
            );
            streamed_cases += 1;
        }
        let Some(best) = optimum(&memories, cap as usize) else {
            assert!(!cap_met, "case {case}: a cap no layout meets was met");
            continue;
        };
        assert!(cap_met, "case {case}: cap {cap} not met");
        assert!(
            ours >= best,
            "case {case}: below the optimum: the oracle is wrong"
        );
        let unbounded = optimum(&memories, runs).unwrap();
        if best > unbounded {
            capped.add(ours - best);
        } else {
            uncapped.add(ours - best);
        }
        if memories.len() == 1 && memories[0].index_type == IndexType::I32 {
            let wizer = segments_len(&wizer_segments(non_zero_runs(&memories[0]), cap as usize));
            assert!(
                ours <= wizer,
                "case {case}: {ours} bytes, Wizer's rule {wizer} at cap {cap}"
            );
            against_wizer += 1;
        }
    }
    eprintln!(
        "distance to the optimum: capped {} cases, largest {} B, mean {:.4} B; \
         uncapped {} cases, largest {} B, mean {:.4} B; {against_wizer} cases against Wizer",
        capped.cases,
        capped.largest,
        capped.mean(),
        uncapped.cases,
        uncapped.largest,
        uncapped.mean()
    );
    assert!(capped.cases > 1000 && uncapped.cases > 500 && against_wizer > 2000);
    // Uncapped, the exact settle is the optimum; capped,
    // a rare byte is left (docs/design.md).
    assert_eq!(uncapped.largest, 0, "uncapped, short of the optimum");
    assert!(
        capped.largest <= 1,
        "capped, {} B short of the optimum",
        capped.largest
    );
    assert!(
        streamed_cases > 1000,
        "only {streamed_cases} cases through the Packer"
    );
}
