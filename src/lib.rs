//! segpack packs the data segments of WebAssembly modules and components:
//! the smallest data section that gives the same memories at instantiation.
//!
//! A snapshot (from Wizer, weval, componentize-js) often has one segment per
//! page, full of zeros. segpack rewrites only the data section (and the data
//! count and segment names that depend on it), cutting each memory's image
//! into segments of non-zero bytes, merging neighbours whenever the gap of
//! zeros costs fewer bytes than a new segment header.
//!
//! For producers, who hold the memories (no dependency but the thread pool's,
//! crossbeam-channel with `parallel` or rayon with `rayon`); start with
//! `docs/producers.md`, which shows Wizer's and weval's packing on segpack:
//!
//! * [`Packer`]: whole memories handed in one at a time as borrowed slices,
//!   extents out (offset, length: no bytes kept), one cap across all
//!   memories; slice your own memories with them in a second pass.
//! * [`pack_segments`]: a list of `(memory, offset, &[u8])` in, merged
//!   segments out, borrowing your bytes.
//!
//! Both give a [`Packed`]: the segments grouped by memory
//! ([`PackedMemory`]), and whether the cap was met. With constant
//! [`PackOptions`] nothing can fail: every value they hold is valid (the cap
//! is a [`MaxSegments`]). Either writes straight into a
//! `wasm_encoder::DataSection` ([`Packed::encode_into`],
//! [`PackedMemory::encode_into`], feature `encoder`), or gives the offset
//! expression's immediate ([`OffsetExpr`]) for any other encoder. Every
//! public type is `Send` and `Sync`.
//!
//! For whole binaries (feature `module`): [`pack_module`], `&[u8]` in, the
//! packed binary written to any [`std::io::Write`], and a [`PackReport`]
//! back. [`Plan`] splits it in two: plan everything, look at the report,
//! then write. [`inspect`] tells what packing would do to each memory,
//! [`verify()`] checks that a packed binary gives the same memories as its
//! original.
//!
//! The library does no file I/O, has no `unsafe` code, and starts no
//! threads but its worker pool ([`pool`]): with `parallel`, one per core
//! unless [`PackOptions::threads`] asks for fewer. The `segpack` command line
//! is its own package, `segpack-cli`.
//!
//! # Cargo features
//!
//! * `parallel` (default): scan memory images (and validate function
//!   bodies) on a pool of worker threads, one per core by default
//!   ([`PackOptions::threads`]). Without it
//!   everything runs on the calling thread and the crate has one dependency
//!   less (crossbeam-channel); the output is byte-identical either way, for
//!   any number of threads. Where threads cannot be started (wasm32), it runs
//!   on the calling thread.
//! * `rayon`: scan on the rayon pool the call is made from (rayon's global
//!   pool outside one) instead of starting threads, for producers that
//!   already run rayon; takes precedence over `parallel`. The same bytes.
//! * `module` (default): the whole-binary API, with wasmparser and
//!   wasm-encoder.
//! * `encoder` (default): `encode_into` methods that write packed segments
//!   into a `wasm_encoder::DataSection`.
//! * `gzip`, `brotli`, `zstd` (`compress`: all three), off by default: the
//!   codecs [`optimize`] can weigh layouts with, for the smallest file once
//!   compressed ([`optimize_with`] takes any compressed-size function
//!   without them). `zstd` builds zstd's C sources.
//!
//! `default-features = false` leaves the producer API with no dependency
//! at all, so it pins no version of the wasm crates; add `parallel` or
//! `rayon` back for threads.
//!
//! ```
//! # fn main() -> segpack::Result<()> {
//! let wat = r#"(module (memory 1)
//!     (data (i32.const 0) "a")
//!     (data (i32.const 2) "b")
//!     (data (i32.const 1000) "c"))"#;
//! let input = wat::parse_str(wat).unwrap();
//! let mut output = Vec::new();
//! let report = segpack::pack_module(&input, &mut output, &segpack::PackOptions::default())?;
//! // "a" and "b" are one segment "a\0b"; "c" is too far away to join them.
//! assert_eq!(report.segments_after(), 2);
//! assert!(output.len() < input.len());
//! wasmparser::validate(&output).unwrap();
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod options;
mod plan;
pub mod pool;
mod producer;
mod scan;
mod segment;
mod sniff;

#[cfg(feature = "module")]
mod compress;
#[cfg(feature = "module")]
mod emit;
#[cfg(feature = "module")]
mod inspect;
#[cfg(feature = "module")]
mod map;
#[cfg(feature = "module")]
mod mapped;
#[cfg(feature = "module")]
mod memo;
#[cfg(feature = "module")]
mod names;
#[cfg(feature = "module")]
mod optimize;
#[cfg(feature = "module")]
mod pack;
#[cfg(feature = "module")]
mod parse;
#[cfg(feature = "module")]
mod report;
#[cfg(feature = "module")]
mod rewrite;
#[cfg(feature = "module")]
mod rules;
#[cfg(feature = "module")]
mod verify;

pub use error::{Error, ErrorKind, Result};
pub use options::{MaxSegments, PackOptions};
pub use plan::{MAX_GAP, MAX_SEGMENT_LEN};
pub use producer::{Extent, OffsetExpr, Packed, PackedMemory, Packer, pack_segments};
pub use segment::{IndexType, PackedSegment, Part, Segment};

#[cfg(feature = "module")]
pub use compress::{Codec, Compression};
#[cfg(feature = "module")]
pub use inspect::{Inspection, MemoryReport, inspect, inspect_with_mapped, inspect_with_release};
#[cfg(feature = "module")]
pub use map::{MAX_COLUMNS, MapColumn, MemoryMap, ModuleMap, memory_maps};
#[cfg(feature = "module")]
pub use mapped::MappedInput;
#[cfg(feature = "module")]
pub use optimize::{
    BUDGET, BUDGET_SLACK, CompressedLen, Optimized, WINDOWS, optimize, optimize_with,
    optimize_with_mapped,
};
#[cfg(feature = "module")]
pub use report::{Figures, ModuleReport, PackReport};
#[cfg(feature = "module")]
pub use rewrite::{Chunk, Plan, pack_module};
#[cfg(feature = "module")]
pub use rules::NotPackable;
#[cfg(feature = "module")]
pub use verify::{Difference, VerifyOptions, verify};

// The README's examples are doc-tests too, and so is the producers' page.
#[cfg(all(doctest, feature = "module", feature = "encoder"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/producers.md")]
struct ProducersDoctests;
