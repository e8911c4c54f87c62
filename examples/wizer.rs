//! Wizer's `snapshot_memories` (wasmtime `crates/wizer/src/snapshot.rs`)
//! with segpack doing the packing: the same shape, the same types, so the
//! patch to Wizer is this file's `snapshot_memories` in place of theirs.
//!
//! Wizer reaches each memory only inside an async callback
//! (`InstanceState::memory_contents`), one memory at a time, and may run
//! inside a `Send` future. So it packs in two passes over the memories:
//!
//! 1. each memory is handed to a [`segpack::Packer`] inside its callback
//!    (nothing is copied or kept but extents);
//! 2. after [`Packer::finish`], each memory's callback again slices that
//!    memory's extents into Wizer's `DataSegment`s.
//!
//! What Wizer deletes: the page scan with rayon (`par_extend` over pages),
//! the sort, `MIN_ACTIVE_SEGMENT_OVERHEAD` and the merge loop,
//! `remove_excess_segments`, `DataSegmentRange` with `gap`/`merge`, the
//! `next_if` walk and its final `assert!`, and the five-line `is64` `if`
//! (now [`IndexType::from_memory64`]). `MAX_DATA_SEGMENTS` is segpack's
//! default cap. Its `rayon` feature maps onto `segpack/rayon`.
//!
//! Here `InstanceState` is a stand-in holding the memories in plain
//! vectors; the future is polled to completion by a no-op waker, and is
//! checked to be `Send` with the packer held across its `.await`s.
//!
//! Run it with `cargo run --example wizer`; `tests/producer.rs` runs it too.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use segpack::{IndexType, PackOptions, Packer};

/// Wizer's `DataSegment`: one active segment of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSegment {
    /// The index of this data segment's memory.
    pub memory_index: u32,
    /// This data segment's initialized memory that it originated from.
    pub data: Vec<u8>,
    /// The offset within the memory that `data` should be copied to.
    pub offset: u64,
    /// Whether or not `memory_index` is a 64-bit memory.
    pub is64: bool,
}

/// The part of a memory's type Wizer reads (wasmparser's `MemoryType`).
#[derive(Debug, Clone, Copy)]
pub struct MemoryType {
    /// The 64-bit flag.
    pub memory64: bool,
    /// Log2 of the page size, `None` for 64 KiB pages.
    pub page_size_log2: Option<u32>,
}

/// Wizer's `ModuleContext`, reduced to the memories it defines and the
/// names it exported them under.
pub struct ModuleContext {
    /// (memory index, type, export name) of each defined memory.
    pub memories: Vec<(u32, MemoryType, String)>,
}

/// Wizer's `InstanceState`: memory contents only through a callback.
pub trait InstanceState {
    /// Calls `contents` with the memory exported as `name`.
    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send;
}

/// Finds the initialized minimum page size of each memory and its packed
/// segments: Wizer's `snapshot_memories`, with segpack.
pub async fn snapshot_memories(
    module: &ModuleContext,
    instance: &mut impl InstanceState,
) -> (Vec<u64>, Vec<DataSegment>) {
    let mut memory_mins = vec![];
    // Wizer's MAX_DATA_SEGMENTS (10,000) is segpack's default cap: no
    // `unwrap`, no `expect`, nothing to fail. With segpack's `rayon` feature
    // the scan runs on the caller's rayon pool; with `parallel`, on all cores.
    let mut packer = Packer::new(&PackOptions::default());
    for (memory_index, ty, name) in &module.memories {
        instance
            .memory_contents(name, |memory| {
                let page_size = 1 << ty.page_size_log2.unwrap_or(16);
                memory_mins.push((memory.len() / page_size) as u64);
                packer.add_memory(*memory_index, IndexType::from_memory64(ty.memory64), memory);
            })
            .await;
    }
    let packed = packer.finish();

    // Each memory's extents, sliced out of that memory.
    let mut final_data_segments = Vec::with_capacity(packed.len());
    for (memory_index, ty, name) in &module.memories {
        let Some(extents) = packed.memory(*memory_index) else {
            continue; // all zeros
        };
        instance
            .memory_contents(name, |memory| {
                final_data_segments.extend(extents.segments().iter().map(|e| DataSegment {
                    memory_index: *memory_index,
                    data: memory[e.range()].to_vec(),
                    offset: e.offset(),
                    is64: ty.memory64,
                }));
            })
            .await;
    }
    (memory_mins, final_data_segments)
}

/// An instance whose memories are vectors, by export name.
pub struct Memories(pub Vec<(String, Vec<u8>)>);

impl InstanceState for Memories {
    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        if let Some((_, memory)) = self.0.iter().find(|(n, _)| n == name) {
            contents(memory);
        }
        std::future::ready(())
    }
}

/// Polls `future` until it is ready (the stand-in instance never waits).
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Holds a future to `Send`, as a Wizer callback must be.
pub fn assert_send<F: Future + Send>(future: F) -> F {
    future
}

/// A module with a 32-bit heap of 4 pages and a memory64 of 2 pages, some
/// of it written, and the memory export names Wizer gives them.
pub fn example() -> (ModuleContext, Memories) {
    let mut heap = vec![0u8; 4 << 16];
    for i in 0..200usize {
        heap[0x1000 + i * 1024..][..4].copy_from_slice(&((i * i) as u32).to_le_bytes());
    }
    heap[0x3ff00..0x3ff05].copy_from_slice(b"hello");
    let mut big = vec![0u8; 2 << 16];
    big[0x1fff8..].copy_from_slice(b"snapshot");
    let i32_memory = MemoryType {
        memory64: false,
        page_size_log2: None,
    };
    let i64_memory = MemoryType {
        memory64: true,
        page_size_log2: None,
    };
    let module = ModuleContext {
        memories: vec![
            (0, i32_memory, "__wizer_memory_0".into()),
            (1, i64_memory, "__wizer_memory_1".into()),
        ],
    };
    let memories = Memories(vec![
        ("__wizer_memory_0".into(), heap),
        ("__wizer_memory_1".into(), big),
    ]);
    (module, memories)
}

#[allow(dead_code)] // tests/producer.rs includes this file and calls the rest.
fn main() {
    let (module, mut memories) = example();
    let (mins, segments) = block_on(assert_send(snapshot_memories(&module, &mut memories)));
    let payload: usize = segments.iter().map(|s| s.data.len()).sum();
    println!(
        "memory minimums {mins:?} pages; {} data segments, {payload} payload bytes",
        segments.len()
    );
}
