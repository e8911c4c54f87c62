//! The producer API as a producer uses it: the snapshotter example, `Packer`
//! against `pack_segments`, the offset expressions `encode_into` writes, and
//! the cap a producer must be told about.

use proptest::prelude::*;
use segpack::{IndexType, MaxSegments, PackOptions, Packer, Segment};

/// The cap `n`, valid in every test that calls it.
fn cap(n: u32) -> MaxSegments {
    MaxSegments::new(n).unwrap()
}

#[allow(dead_code)] // its `main` and the fields the tests do not read
#[path = "../examples/snapshotter.rs"]
mod snapshotter;

#[test]
fn snapshotter_example_gives_the_same_memories_in_fewer_bytes() {
    let summary = snapshotter::run().unwrap();
    assert!(summary.memories_match, "{summary:?}");
    assert_eq!(summary.memory_sizes, [4 << 16, 2 << 16]);
    assert!(summary.segments > 1, "{summary:?}");
    assert!(
        summary.data_section_bytes < summary.per_page_section_bytes,
        "{summary:?}"
    );
}

#[allow(dead_code)]
#[path = "../examples/wizer.rs"]
mod wizer;

#[allow(dead_code)]
#[path = "../examples/weval.rs"]
mod weval;

/// Rebuilds a memory of `len` bytes from its segments.
fn apply(len: usize, segments: impl IntoIterator<Item = (usize, Vec<u8>)>) -> Vec<u8> {
    let mut memory = vec![0u8; len];
    for (offset, data) in segments {
        memory[offset..offset + data.len()].copy_from_slice(&data);
    }
    memory
}

/// Wizer's shape: the segments give back every memory, they are the ones
/// `pack_segments` gives for the same memories, and the future holding the
/// packer across `.await` is `Send` (`assert_send` would not compile
/// otherwise).
#[test]
fn wizer_example_packs_as_pack_segments_does() {
    let (module, mut memories) = wizer::example();
    let (mins, segments) = wizer::block_on(wizer::assert_send(wizer::snapshot_memories(
        &module,
        &mut memories,
    )));
    assert_eq!(mins, [4, 2]);
    for (index, (_, memory)) in memories.0.iter().enumerate() {
        let ours = segments.iter().filter(|s| s.memory_index == index as u32);
        assert!(ours.clone().all(|s| s.is64 == (index == 1)));
        let rebuilt = apply(
            memory.len(),
            ours.map(|s| (s.offset as usize, s.data.clone())),
        );
        assert!(rebuilt == *memory, "memory {index} differs");
    }
    let inputs: Vec<Segment<'_>> = (0..)
        .zip(&memories.0)
        .map(|(memory_index, (_, data))| Segment {
            memory_index,
            offset: 0,
            data,
        })
        .collect();
    let packed = segpack::pack_segments(
        &inputs,
        &[IndexType::I32, IndexType::I64],
        &PackOptions::default(),
    )
    .unwrap();
    let expected: Vec<(u32, u64, Vec<u8>)> = packed
        .segments()
        .map(|s| (s.memory_index, s.offset, s.to_vec()))
        .collect();
    let got: Vec<(u32, u64, Vec<u8>)> = segments
        .into_iter()
        .map(|s| (s.memory_index, s.offset, s.data))
        .collect();
    assert!(got.len() > 2, "{} segments", got.len());
    assert_eq!(got, expected);
}

/// weval's shape: the old segments are replaced, the all-zero memory gets
/// none, the minimum grows to the image, and the segments give back the
/// image.
#[test]
fn weval_example_replaces_the_segments() {
    let (mut module, image) = weval::example();
    weval::update(&mut module, &image);
    let heap = &module.memories[&weval::Memory(0)];
    assert_eq!(heap.initial_pages, 3);
    assert!(heap.segments.len() > 1);
    let rebuilt = apply(
        image.memories[&weval::Memory(0)].image.len(),
        heap.segments.iter().map(|s| (s.offset, s.data.clone())),
    );
    assert!(rebuilt == image.memories[&weval::Memory(0)].image);
    let zeros = &module.memories[&weval::Memory(1)];
    assert!(zeros.segments.is_empty());
    assert_eq!(zeros.initial_pages, 1);
}

// ---------------------------------------------------------------------------
// Packer and pack_segments agree.

/// One memory of a case: its index type and contents.
#[derive(Debug, Clone)]
struct TestMemory {
    index_type: IndexType,
    bytes: Vec<u8>,
}

/// A memory of up to 256 KiB: sparse runs of random bytes (some of them
/// zeros), clustered in places so that gaps of every size occur; or runs at
/// a fixed stride, so that many gaps tie (in this memory and across them).
fn memory() -> impl Strategy<Value = TestMemory> {
    const MAX: usize = 256 << 10;
    let size = prop_oneof![Just(0), Just(MAX), 1..=MAX];
    let at = prop_oneof![
        0..MAX,
        1000..1400usize,
        100_000..100_300usize,
        MAX - 64..MAX
    ];
    let runs = prop::collection::vec((at, prop::collection::vec(any::<u8>(), 1..48)), 0..40);
    let sparse = (size, runs).prop_map(|(size, runs)| {
        let mut bytes = vec![0u8; size];
        for (at, run) in runs {
            let at = at.min(size);
            let end = (at + run.len()).min(size);
            bytes[at..end].copy_from_slice(&run[..end - at]);
        }
        bytes
    });
    let strided =
        (0..MAX / 2, 2..40usize, 1..4usize, 1..200usize).prop_map(|(start, stride, run, count)| {
            let mut bytes = vec![0u8; MAX];
            for k in 0..count {
                let at = start + k * stride;
                let end = (at + run.min(stride - 1)).min(MAX);
                bytes[at.min(MAX)..end].fill(0x5a);
            }
            bytes
        });
    (any::<bool>(), prop_oneof![3 => sparse, 1 => strided]).prop_map(|(memory64, bytes)| {
        let index_type = if memory64 {
            IndexType::I64
        } else {
            IndexType::I32
        };
        TestMemory { index_type, bytes }
    })
}

/// A memory's packed segments: (memory index, index type, (offset, length)s).
type MemorySpans = (u32, IndexType, Vec<(u64, u64)>);

/// A case: memories at their indices, the order they are added in, a cap,
/// and a thread count.
type Case = (Vec<(u32, TestMemory)>, Vec<usize>, Option<u32>, usize);

/// 1 to 3 memories at indices with holes between them (memories a producer
/// leaves out, such as imported ones), the order they are added in, a cap
/// (`None`: the default) and a thread count.
fn case() -> impl Strategy<Value = Case> {
    let memories = prop::collection::vec((0..3u32, memory()), 1..=3).prop_map(|memories| {
        let mut index = 0;
        let mut out = Vec::new();
        for (hole, memory) in memories {
            index += hole;
            out.push((index, memory));
            index += 1;
        }
        out
    });
    let cap = prop_oneof![Just(None), (1..=50u32).prop_map(Some)];
    (memories, cap, 1..=3usize).prop_flat_map(|(memories, cap, threads)| {
        let order = Just((0..memories.len()).collect::<Vec<_>>()).prop_shuffle();
        (Just(memories), order, Just(cap), Just(threads))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn packer_matches_pack_segments((memories, order, cap, threads) in case()) {
        let mut options = PackOptions::default().with_threads(threads);
        if let Some(n) = cap {
            options = options.with_max_segments(self::cap(n));
        }
        let cap = options.max_segments.get() as usize;

        let mut packer = Packer::new(&options);
        for &i in &order {
            let (index, memory) = &memories[i];
            packer.add_memory(*index, memory.index_type, &memory.bytes);
        }
        let extents = packer.finish();

        // pack_segments, each memory one segment at offset 0; the memories
        // left out are described (as 32-bit) but have no segments.
        let mut index_types = vec![IndexType::I32; memories.last().unwrap().0 as usize + 1];
        for (index, memory) in &memories {
            index_types[*index as usize] = memory.index_type;
        }
        let segments: Vec<Segment<'_>> = memories
            .iter()
            .map(|(index, memory)| Segment { memory_index: *index, offset: 0, data: &memory.bytes })
            .collect();
        let packed = segpack::pack_segments(&segments, &index_types, &options).unwrap();

        let from_packer: Vec<MemorySpans> = extents
            .memories()
            .iter()
            .map(|m| (m.memory_index(), m.index_type(), m.segments().iter().map(|e| (e.offset(), e.len())).collect()))
            .collect();
        let from_segments: Vec<MemorySpans> = packed
            .memories()
            .iter()
            .map(|m| (m.memory_index(), m.index_type(), m.segments().iter().map(|s| (s.offset, s.len())).collect()))
            .collect();
        prop_assert_eq!(&from_packer, &from_segments);
        prop_assert_eq!(extents.within_cap(), packed.within_cap());
        prop_assert_eq!(extents.len(), packed.segments().count());

        // The cap can be missed here only because a segment never spans two
        // memories.
        let nonempty = memories.iter().filter(|(_, m)| m.bytes.iter().any(|&b| b != 0)).count();
        prop_assert_eq!(extents.within_cap(), nonempty <= cap);
        prop_assert_eq!(extents.memories().len(), nonempty);
        if extents.within_cap() {
            prop_assert!(extents.len() <= cap);
        }

        let memory_of = |index: u32| &memories.iter().find(|(i, _)| *i == index).unwrap().1;
        let mut previous: Option<(u32, u64)> = None;
        for (group, segments) in extents.memories().iter().zip(packed.memories()) {
            let memory = memory_of(group.memory_index());
            prop_assert_eq!(group.index_type(), memory.index_type);
            // `memory(i)` finds the same group.
            prop_assert_eq!(extents.memory(group.memory_index()), Some(group));
            prop_assert!(!group.segments().is_empty());
            for (extent, segment) in group.segments().iter().zip(segments.segments()) {
                prop_assert!(!extent.is_empty() && extent.len() == extent.range().len() as u64);
                prop_assert!(extent.range().end <= memory.bytes.len());
                let slice = &memory.bytes[extent.range()];
                // Cut at non-zero bytes, and the same bytes from either API.
                prop_assert!(slice[0] != 0 && slice[slice.len() - 1] != 0, "{:?}", extent);
                prop_assert_eq!(&segment.to_vec()[..], slice);
                if let Some(borrowed) = segment.as_slice() {
                    prop_assert_eq!(borrowed, slice);
                }
                // In (memory, offset) order, never overlapping.
                let at = (group.memory_index(), extent.offset());
                if let Some(p) = previous {
                    prop_assert!(p <= at, "{:?} then {:?}", p, at);
                }
                previous = Some((group.memory_index(), extent.offset() + extent.len()));
            }
        }

        // Every non-zero byte of every memory is in some extent; a memory
        // with none is all zeros.
        for (index, memory) in &memories {
            let mut covered = vec![false; memory.bytes.len()];
            let group = extents.memory(*index);
            prop_assert_eq!(group.is_some(), memory.bytes.iter().any(|&b| b != 0));
            for extent in group.map_or(&[][..], |g| g.segments()) {
                covered[extent.range()].fill(true);
            }
            for (at, &byte) in memory.bytes.iter().enumerate() {
                prop_assert!(byte == 0 || covered[at], "memory {} byte {:#x} is not covered", index, at);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Options and misuse.

#[test]
fn a_cap_is_checked_where_it_is_made() {
    assert_eq!(MaxSegments::new(0), None);
    assert_eq!(MaxSegments::new(100_001), None);
    assert_eq!(MaxSegments::new(u32::MAX), None);
    assert_eq!(MaxSegments::new(1).map(MaxSegments::get), Some(1));
    assert_eq!(MaxSegments::new(100_000), Some(MaxSegments::ENGINE_LIMIT));
    assert_eq!(MaxSegments::new(10_000), Some(MaxSegments::DEFAULT));
    assert_eq!(PackOptions::default().max_segments, MaxSegments::DEFAULT);
}

#[test]
fn index_type_from_the_memory64_flag() {
    for memory64 in [false, true] {
        let ty = wasmparser::MemoryType {
            memory64,
            shared: false,
            initial: 1,
            maximum: None,
            page_size_log2: None,
        };
        let expected = if memory64 {
            IndexType::I64
        } else {
            IndexType::I32
        };
        assert_eq!(IndexType::from_memory64(ty.memory64), expected);
    }
}

#[test]
#[should_panic(expected = "twice")]
fn adding_a_memory_twice_panics() {
    let mut packer = Packer::new(&PackOptions::default());
    packer.add_memory(1, IndexType::I32, &[1, 2, 3]);
    packer.add_memory(1, IndexType::I32, &[4]);
}

#[test]
#[should_panic(expected = "2^31 or more")]
fn a_memory_index_of_2_pow_31_panics_before_anything_is_allocated() {
    let mut packer = Packer::new(&PackOptions::default());
    packer.add_memory(1 << 31, IndexType::I64, &[1, 2, 3]);
}

#[test]
fn a_segment_naming_memory_2_pow_31_is_refused() {
    for memory_index in [1 << 31, u32::MAX] {
        let segment = Segment {
            memory_index,
            offset: 0,
            data: &[1],
        };
        let err = segpack::pack_segments(&[segment], &[IndexType::I64], &PackOptions::default())
            .unwrap_err();
        assert_eq!(err.kind(), segpack::ErrorKind::InvalidSegment);
        assert!(err.to_string().contains("2^31 or more"), "{err}");
    }
}

// ---------------------------------------------------------------------------
// Offsets past 2^31 (32-bit), past 4 GiB (memory64), and memory indices > 0.

const GIB: u64 = 1 << 30;

/// Three memories with data where offset expressions are easy to get wrong:
/// memory 0 (32-bit) above 2^31, memory 1 (memory64) above 4 GiB, and
/// memory 2 (32-bit) near 0. Each as (memory, offset, bytes).
const FAR_DATA: [(u32, IndexType, u64, &[u8]); 6] = [
    (0, IndexType::I32, 16, b"low"),
    (0, IndexType::I32, 2 * GIB + 16, b"high"),
    (1, IndexType::I64, 100, b"abc"),
    (1, IndexType::I64, 4 * GIB + 0x200, b"far!!"),
    (2, IndexType::I32, 8, b"m2"),
    (2, IndexType::I32, 0x1000, b"last"),
];

/// A memory of `len` bytes (untouched zero pages cost no RAM) with the
/// bytes of `FAR_DATA` that belong to `memory_index`.
#[cfg(target_pointer_width = "64")]
fn far_memory(memory_index: u32, len: u64) -> Vec<u8> {
    let mut memory = vec![0u8; len as usize];
    for (m, _, offset, bytes) in FAR_DATA {
        if m == memory_index {
            memory[offset as usize..][..bytes.len()].copy_from_slice(bytes);
        }
    }
    memory
}

fn far_index_types() -> [IndexType; 3] {
    [IndexType::I32, IndexType::I64, IndexType::I32]
}

#[cfg(feature = "encoder")]
mod encode {
    use super::*;
    use segpack::OffsetExpr;
    use wasm_encoder::{DataSection, MemorySection, MemoryType, Module};
    use wasmparser::{DataKind, Operator, Parser, Payload, Validator, WasmFeatures};

    /// A module with `FAR_DATA`'s three memories, big enough to hold it, and
    /// `data`; validated with every feature.
    fn module_with(data: &DataSection) -> Vec<u8> {
        let mut memories = MemorySection::new();
        for (memory64, minimum) in [(false, 1 << 16), (true, (5 * GIB) >> 16), (false, 1)] {
            memories.memory(MemoryType {
                minimum,
                maximum: None,
                memory64,
                shared: false,
                page_size_log2: None,
            });
        }
        let mut module = Module::new();
        module.section(&memories).section(data);
        let wasm = module.finish();
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(&wasm)
            .unwrap();
        wasm
    }

    /// Every segment of `wasm` as (memory, offset expression, bytes).
    fn read_back(wasm: &[u8]) -> Vec<(u32, OffsetExpr, Vec<u8>)> {
        let mut out = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            let Payload::DataSection(reader) = payload.unwrap() else {
                continue;
            };
            for data in reader {
                let data = data.unwrap();
                let DataKind::Active {
                    memory_index,
                    offset_expr,
                } = data.kind
                else {
                    panic!("a passive segment");
                };
                let mut ops = offset_expr.get_operators_reader();
                let offset = match ops.read().unwrap() {
                    Operator::I32Const { value } => OffsetExpr::I32Const(value),
                    Operator::I64Const { value } => OffsetExpr::I64Const(value),
                    op => panic!("offset expression {op:?}"),
                };
                assert!(matches!(ops.read().unwrap(), Operator::End));
                out.push((memory_index, offset, data.data.to_vec()));
            }
        }
        out
    }

    fn expected() -> Vec<(u32, OffsetExpr, Vec<u8>)> {
        FAR_DATA
            .iter()
            .map(|&(m, index_type, offset, bytes)| {
                (m, OffsetExpr::new(index_type, offset), bytes.to_vec())
            })
            .collect()
    }

    #[test]
    fn offset_expressions_by_hand() {
        // What the expected list holds, spelled out: a negative i32 immediate
        // above 2^31, an i64 one above 4 GiB.
        let expected = expected();
        assert_eq!(expected[1].1, OffsetExpr::I32Const(i32::MIN + 16));
        assert_eq!(expected[3].1, OffsetExpr::I64Const((4 << 30) + 0x200));
        assert_eq!(
            OffsetExpr::new(IndexType::I32, u32::MAX as u64),
            OffsetExpr::I32Const(-1)
        );
    }

    #[test]
    fn pack_segments_encode_into() {
        let segments: Vec<Segment<'_>> = FAR_DATA
            .iter()
            .map(|&(memory_index, _, offset, data)| Segment {
                memory_index,
                offset,
                data,
            })
            .collect();
        let packed =
            segpack::pack_segments(&segments, &far_index_types(), &PackOptions::default()).unwrap();
        assert!(packed.within_cap());
        let mut section = DataSection::new();
        packed.encode_into(&mut section);
        assert_eq!(read_back(&module_with(&section)), expected());
    }

    #[test]
    fn pack_segments_encode_into_top_of_i32() {
        // The last bytes a 32-bit memory has: immediate -4.
        let segments = [Segment {
            memory_index: 0,
            offset: u32::MAX as u64 - 3,
            data: b"top!",
        }];
        let packed =
            segpack::pack_segments(&segments, &far_index_types(), &PackOptions::default()).unwrap();
        let mut section = DataSection::new();
        packed.encode_into(&mut section);
        let read = read_back(&module_with(&section));
        assert_eq!(read, [(0, OffsetExpr::I32Const(-4), b"top!".to_vec())]);
    }

    /// The Packer over whole memories of 2 GiB and 5 GiB (zero pages, never
    /// touched but by the scan).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn extents_encode_into() {
        let memories = [
            far_memory(0, 2 * GIB + (1 << 16)),
            far_memory(1, 4 * GIB + (1 << 16)),
            far_memory(2, 1 << 16),
        ];
        let mut packer = Packer::new(&PackOptions::default().with_threads(2));
        // In reverse, to show the order does not matter.
        for m in (0..3).rev() {
            packer.add_memory(m, far_index_types()[m as usize], &memories[m as usize]);
        }
        let packed = packer.finish();
        assert!(packed.within_cap());
        let mut section = DataSection::new();
        for memory in packed.memories() {
            memory.encode_into(&memories[memory.memory_index() as usize], &mut section);
        }
        assert_eq!(read_back(&module_with(&section)), expected());

        // Extent by extent, as a producer without the feature writes them.
        let mut by_hand = DataSection::new();
        for memory in packed.memories() {
            let index = memory.memory_index();
            for e in memory.segments() {
                let offset = match memory.offset_expr(e.offset()) {
                    OffsetExpr::I32Const(v) => wasm_encoder::ConstExpr::i32_const(v),
                    OffsetExpr::I64Const(v) => wasm_encoder::ConstExpr::i64_const(v),
                };
                let bytes = &memories[index as usize][e.range()];
                by_hand.active(index, &offset, bytes.iter().copied());
            }
        }
        assert_eq!(read_back(&module_with(&by_hand)), expected());
    }
}

// ---------------------------------------------------------------------------
// A cap that cannot be met is reported.

#[test]
fn pack_segments_reports_a_cap_not_met() {
    // Memory 1's two runs are more than 4 GiB apart: never merged.
    let segments: Vec<Segment<'_>> = FAR_DATA
        .iter()
        .filter(|d| d.0 == 1)
        .map(|&(memory_index, _, offset, data)| Segment {
            memory_index,
            offset,
            data,
        })
        .collect();
    let options = PackOptions::default().with_max_segments(cap(1));
    let packed = segpack::pack_segments(&segments, &far_index_types(), &options).unwrap();
    assert!(!packed.within_cap());
    assert_eq!(packed.len(), 2);
    assert_eq!(packed.memories().len(), 1);
    assert_eq!(
        packed.memory(1).unwrap().segments()[1].offset,
        4 * GIB + 0x200
    );
}

#[cfg(target_pointer_width = "64")]
#[test]
fn packer_reports_a_cap_not_met() {
    let memory = far_memory(1, 4 * GIB + (1 << 16));
    let mut packer = Packer::new(&PackOptions::default().with_max_segments(cap(1)));
    packer.add_memory(1, IndexType::I64, &memory);
    let packed = packer.finish();
    assert!(!packed.within_cap());
    assert!(packed.memory(0).is_none());
    let found: Vec<(u64, u64)> = packed.segments().map(|e| (e.offset(), e.len())).collect();
    assert_eq!(found, [(100, 3), (4 * GIB + 0x200, 5)]);
}

/// Over the cap, the packer closes every gap off its shortlist, and several
/// such closings in a row can make a segment past 1 GiB: with the bytes
/// gone, that segment is cut at 1 GiB from its start (SPEC §3: no segment
/// over 1 GiB). A shortlisted gap never closes past 1 GiB.
#[cfg(target_pointer_width = "64")]
#[test]
fn the_packer_cuts_a_segment_merged_past_1_gib_at_1_gib() {
    const MIB: u64 = 1 << 20;
    // Untouched zero pages cost no RAM: only four pages are written. Three
    // equal gaps: the shortlist (one place at a cap of one) keeps the last.
    let mut memory = vec![0u8; (1800 * MIB + 1) as usize];
    for at in [0, 600 * MIB, 1200 * MIB, 1800 * MIB] {
        memory[at as usize] = 1;
    }
    let options = PackOptions::default().with_max_segments(cap(1));
    let mut packer = Packer::new(&options);
    packer.add_memory(0, IndexType::I32, &memory);
    let packed = packer.finish();
    let spans: Vec<(u64, u64)> = packed.segments().map(|e| (e.offset(), e.len())).collect();
    assert_eq!(
        spans,
        [(0, GIB), (GIB, 1200 * MIB + 1 - GIB), (1800 * MIB, 1)]
    );
    assert!(!packed.within_cap(), "three segments are over a cap of one");
}
