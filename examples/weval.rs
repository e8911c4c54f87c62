//! weval's `image::update` (`src/image.rs`, its copy of Wizer's packing)
//! with segpack doing the packing: the same shape, the same types, so the
//! patch to weval is this file's `update` in place of `update`,
//! `snapshot_memories` and `remove_excess_segments`.
//!
//! weval holds every memory image as a `Vec<u8>` at once (`Image::memories`,
//! a `BTreeMap` by memory id), so one pass hands each to a
//! [`segpack::Packer`] and a second slices each memory's extents into
//! waffle's `MemorySegment`s.
//!
//! What weval deletes: `MAX_DATA_SEGMENTS` (segpack's default cap),
//! `MIN_ACTIVE_SEGMENT_OVERHEAD`, `DataSegmentRange`, `snapshot_memories`
//! (the rayon page scan, the sort, the merge loop, the `next_if` walk and
//! its `assert!`) and `remove_excess_segments`; the tests of
//! `MIN_ACTIVE_SEGMENT_OVERHEAD` go with it.
//!
//! `Memory`, `MemoryData`, `MemorySegment` and `Module` are stand-ins for
//! waffle's types, with the fields `update` touches.
//!
//! Run it with `cargo run --example weval`; `tests/producer.rs` runs it too.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use segpack::{IndexType, PackOptions, Packer};

/// A wasm page, as waffle names it.
pub const WASM_PAGE: usize = 0x1_0000;

/// waffle's memory id: an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Memory(pub u32);

impl Memory {
    /// The memory's index in the module.
    pub fn index(self) -> u32 {
        self.0
    }
}

/// waffle's `MemorySegment`: an active segment of a memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySegment {
    /// Where the bytes go.
    pub offset: usize,
    /// The bytes.
    pub data: Vec<u8>,
}

/// waffle's `MemoryData`, the fields `update` touches.
#[derive(Debug, Clone, Default)]
pub struct MemoryData {
    /// The memory's initial size in pages.
    pub initial_pages: usize,
    /// Whether it is a memory64.
    pub memory64: bool,
    /// Its active segments.
    pub segments: Vec<MemorySegment>,
}

/// waffle's `Module`, its memories only.
#[derive(Debug, Clone, Default)]
pub struct Module {
    /// By memory id.
    pub memories: BTreeMap<Memory, MemoryData>,
}

/// weval's `MemImage`.
#[derive(Debug, Clone)]
pub struct MemImage {
    /// The whole memory.
    pub image: Vec<u8>,
}

/// weval's `Image`, its memories only.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// The memory images, by memory id.
    pub memories: BTreeMap<Memory, MemImage>,
}

/// Writes the images' packed segments and sizes into `module`: weval's
/// `update`, with segpack.
pub fn update(module: &mut Module, im: &Image) {
    // weval's MAX_DATA_SEGMENTS (10,000) is segpack's default cap: no
    // `unwrap`, no `expect`, nothing to fail.
    let mut packer = Packer::new(&PackOptions::default());
    for (&mem_id, mem) in &im.memories {
        let memory64 = module.memories.get(&mem_id).is_some_and(|m| m.memory64);
        packer.add_memory(
            mem_id.index(),
            IndexType::from_memory64(memory64),
            &mem.image,
        );
    }
    let packed = packer.finish();

    for (&mem_id, mem) in &im.memories {
        let memory = module.memories.entry(mem_id).or_default();
        // Clear the existing segments, then apply the snapshot's.
        memory.segments.clear();
        if let Some(extents) = packed.memory(mem_id.index()) {
            memory
                .segments
                .extend(extents.segments().iter().map(|e| MemorySegment {
                    offset: e.range().start,
                    data: mem.image[e.range()].to_vec(),
                }));
        }
        let image_pages = mem.image.len() / WASM_PAGE;
        memory.initial_pages = memory.initial_pages.max(image_pages);
    }
}

/// An image of two memories (the second one all zeros) over a module whose
/// first memory still has the segments it started with.
pub fn example() -> (Module, Image) {
    let mut heap = vec![0u8; 3 * WASM_PAGE];
    heap[16..21].copy_from_slice(b"weval");
    for (i, b) in heap[WASM_PAGE..2 * WASM_PAGE].iter_mut().enumerate() {
        if i % 97 < 5 {
            *b = (i % 251) as u8 | 1;
        }
    }
    let mut module = Module::default();
    module.memories.insert(
        Memory(0),
        MemoryData {
            initial_pages: 1,
            memory64: false,
            segments: vec![MemorySegment {
                offset: 16,
                data: b"weval".to_vec(),
            }],
        },
    );
    module.memories.insert(Memory(1), MemoryData::default());
    let mut image = Image::default();
    image.memories.insert(Memory(0), MemImage { image: heap });
    image.memories.insert(
        Memory(1),
        MemImage {
            image: vec![0; WASM_PAGE],
        },
    );
    (module, image)
}

#[allow(dead_code)] // tests/producer.rs includes this file and calls the rest.
fn main() {
    let (mut module, image) = example();
    update(&mut module, &image);
    for (id, memory) in &module.memories {
        let payload: usize = memory.segments.iter().map(|s| s.data.len()).sum();
        println!(
            "memory {}: {} pages, {} segments, {payload} payload bytes",
            id.index(),
            memory.initial_pages,
            memory.segments.len()
        );
    }
}
