//! A producer's view of segpack: build a snapshot image, pack it.
//!
//! A snapshotting tool (Wizer, weval, a compiler) ends with a memory image
//! and a question: which data segments should the output module carry?
//! Here the image is four 64 KiB pages with a little data scattered in
//! them, as a heap after initialization looks.
//!
//! 1. [`segpack::pack_segments`]: one segment per page in, the fewest bytes
//!    of segments out, borrowing the image (nothing is copied).
//! 2. [`segpack::pack_module`]: the same image in a whole module built with
//!    wasm-encoder, packed, validated and checked with [`segpack::verify`].
//!
//! Run it with `cargo run --example producer`.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use segpack::{IndexType, PackOptions, Part, Segment};
use wasm_encoder::{
    ConstExpr, DataSection, ExportKind, ExportSection, MemorySection, MemoryType, Module,
};

const PAGE: usize = 64 * 1024;

/// Four pages: a string table at the start, a few counters, a sparse array
/// of pointers, and a page that stays all zeros.
fn snapshot_image() -> Vec<u8> {
    let mut memory = vec![0u8; 4 * PAGE];
    let mut put = |at: usize, bytes: &[u8]| memory[at..at + bytes.len()].copy_from_slice(bytes);
    put(1024, b"hello from the snapshot\0");
    put(1100, b"segpack\0");
    put(4096, &42u32.to_le_bytes());
    put(4100, &7u32.to_le_bytes());
    for i in 0..16u32 {
        // Every 1 KiB of page 1, a pointer back into page 0.
        let at = PAGE + i as usize * 1024;
        put(at, &(1024 + i * 8).to_le_bytes());
    }
    put(3 * PAGE + 100, b"the last page holds a little data too");
    memory
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let image = snapshot_image();

    // What a naive producer emits: one segment per page that is not all zeros.
    let segments: Vec<Segment<'_>> = image
        .chunks(PAGE)
        .enumerate()
        .filter(|(_, page)| page.iter().any(|&b| b != 0))
        .map(|(i, page)| Segment {
            memory_index: 0,
            offset: (i * PAGE) as u64,
            data: page,
        })
        .collect();
    let before: usize = segments.iter().map(|s| s.data.len()).sum();
    println!(
        "{} page segments, {before} bytes of payload",
        segments.len()
    );

    // 1. Merge them: runs of zeros cheaper than a segment header stay inside
    //    a segment, longer ones split it.
    let packed = segpack::pack_segments(&segments, &[IndexType::I32], &PackOptions::default())?;
    let after: u64 = packed.segments().map(|s| s.len()).sum();
    println!(
        "{} packed segments, {after} bytes of payload:",
        packed.len()
    );
    for s in packed.segments() {
        // A segment's payload is a list of parts borrowing the image, with
        // runs of zeros in between: stream them out, or `to_vec()` them.
        let zeros: u64 = s
            .parts
            .iter()
            .map(|p| match p {
                Part::Zeros(n) => *n,
                Part::Bytes(b) => b.iter().filter(|&&x| x == 0).count() as u64,
            })
            .sum();
        println!(
            "  memory {} offset {:#07x}: {:>2} B ({zeros} zeros inside)",
            s.memory_index,
            s.offset,
            s.len()
        );
    }

    // 2. The same image as a whole module, built with wasm-encoder.
    let mut module = Module::new();
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 4,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    module.section(&exports);
    let mut data = DataSection::new();
    for s in &segments {
        data.active(
            0,
            &ConstExpr::i32_const(s.offset as i32),
            s.data.iter().copied(),
        );
    }
    module.section(&data);
    let input = module.finish();

    let mut output = Vec::new();
    let report = segpack::pack_module(&input, &mut output, &PackOptions::default())?;
    println!(
        "module: {} -> {} bytes, segments {} -> {}",
        input.len(),
        output.len(),
        report.segments_before(),
        report.segments_after()
    );
    wasmparser::validate(&output)?;
    match segpack::verify(&input, &output, &Default::default())? {
        None => println!("verified: the packed module gives the same memory"),
        Some(difference) => return Err(difference.to_string().into()),
    }
    Ok(())
}
