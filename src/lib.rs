//! segpack packs the data segments of WebAssembly modules and components:
//! the smallest data section that gives the same memories at instantiation.
//!
//! A snapshot (from Wizer, weval, componentize-js) often has one segment per
//! page, full of zeros. segpack rewrites only the data section (and the data
//! count and segment names that depend on it), cutting each memory's image
//! into segments of non-zero bytes, merging neighbours whenever the gap of
//! zeros costs fewer bytes than a new segment header.
//!
//! Two entry points:
//!
//! * [`pack_segments`], for producers that hold a list of segments:
//!   `(memory, offset, &[u8])` in, merged segments out, borrowing your bytes.
//! * [`pack_module`], for whole binaries: `&[u8]` in, the packed binary
//!   written to any [`std::io::Write`], and a [`PackReport`] back. [`Plan`]
//!   splits it in two: plan everything, look at the report, then write.
//!
//! And two to look before and after: [`inspect`] tells what packing would
//! do to each memory, [`verify()`] checks that a packed binary gives the
//! same memories as its original.
//!
//! # Cargo features
//!
//! * `parallel` (default): scan memory images on a pool of worker threads
//!   ([`PackOptions::threads`]). Without it everything runs on the calling
//!   thread and the crate has one dependency less (crossbeam-channel); the
//!   output is byte-identical either way, for any number of threads.
//!   Producers that pack small images, or run inside their own thread pool,
//!   can turn it off: `default-features = false`.
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

mod emit;
mod error;
mod inspect;
pub mod io;
mod pack;
mod parse;
mod plan;
mod scan;
mod segment;
mod verify;

use std::io::Write;

pub use error::{Error, ErrorKind, Result};
pub use inspect::{Inspection, MemoryReport, inspect};
pub use plan::{MAX_GAP, MAX_SEGMENT_LEN};
pub use segment::{IndexType, PackedSegment, Part, Segment};
pub use verify::{Difference, VerifyOptions, verify};

// The README's examples are doc-tests too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Wizer's cap on the number of data segments, segpack's default.
///
/// ```
/// assert_eq!(segpack::PackOptions::default().max_segments, segpack::DEFAULT_MAX_SEGMENTS);
/// ```
pub const DEFAULT_MAX_SEGMENTS: u32 = 10_000;

/// Engines reject modules with more data segments than this, so it is the
/// largest `max_segments` accepted.
///
/// ```
/// let options = segpack::PackOptions { max_segments: segpack::ENGINE_MAX_SEGMENTS + 1, ..Default::default() };
/// let input = wat::parse_str("(module)").unwrap();
/// let error = segpack::pack_module(&input, Vec::new(), &options).unwrap_err();
/// assert_eq!(error.kind(), segpack::ErrorKind::InvalidOptions);
/// ```
pub const ENGINE_MAX_SEGMENTS: u32 = 100_000;

/// How to pack.
///
/// ```
/// let options = segpack::PackOptions { max_segments: 100_000, ..Default::default() };
/// assert!(!options.zero_filled_imports);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackOptions {
    /// The most active segments a module may have after packing (1 to
    /// [`ENGINE_MAX_SEGMENTS`]). Over it, the cheapest gaps are closed first.
    pub max_segments: u32,
    /// Treat imported memories as zero-filled at instantiation, so they can be
    /// packed. Only sound when the host really hands in fresh zeroed memory.
    pub zero_filled_imports: bool,
    /// Worker threads for scanning and for assembling the output; 0 means one
    /// per core. The output does not depend on it.
    pub threads: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            max_segments: DEFAULT_MAX_SEGMENTS,
            zero_filled_imports: false,
            threads: 0,
        }
    }
}

impl PackOptions {
    fn check(&self) -> Result<()> {
        if self.max_segments == 0 || self.max_segments > ENGINE_MAX_SEGMENTS {
            return Err(Error::new(
                ErrorKind::InvalidOptions,
                format!(
                    "max_segments must be between 1 and {ENGINE_MAX_SEGMENTS} (engines reject more), not {}",
                    self.max_segments
                ),
                None,
            ));
        }
        Ok(())
    }
}

/// What packing did to one core module.
///
/// ```
/// let input = wat::parse_str(r#"(component
///     (core module (memory 1) (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00b")))"#).unwrap();
/// let report = segpack::pack_module(&input, Vec::new(), &Default::default())?;
/// let module = &report.modules[0];
/// assert_eq!(module.path, "core module 0");
/// assert_eq!((module.segments_before, module.segments_after), (1, 2));
/// assert!(module.changed && module.data_bytes_after < module.data_bytes_before);
/// # Ok::<(), segpack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleReport {
    /// Where the module is inside a component, e.g. `core module 0`; empty
    /// for a top-level module.
    pub path: String,
    /// Data segments in the input.
    pub segments_before: u64,
    /// Data segments in the output.
    pub segments_after: u64,
    /// Size of the input's data section in bytes, header included (0 if none).
    pub data_bytes_before: u64,
    /// Size of the output's data section in bytes, header included.
    pub data_bytes_after: u64,
    /// Whether the module's bytes changed.
    pub changed: bool,
    /// Things the user should know, e.g. why the data section was left as is.
    pub warnings: Vec<String>,
    /// Memories with segments that were not re-packed, and why.
    pub unpacked_memories: Vec<(u32, String)>,
}

/// What packing did to a binary: one [`ModuleReport`] per core module, in
/// the order they appear.
///
/// ```
/// // Out of bounds: instantiation traps, so the data section is kept, with a warning.
/// let input = wat::parse_str(r#"(module (memory 1) (data (i32.const 65535) "ab"))"#).unwrap();
/// let mut output = Vec::new();
/// let report = segpack::pack_module(&input, &mut output, &Default::default())?;
/// assert!(!report.changed());
/// assert_eq!(output, input);
/// assert_eq!(report.segments_before(), report.segments_after());
/// assert_eq!(report.data_bytes_before(), report.data_bytes_after());
/// assert!(report.warnings().next().unwrap().contains("out of bounds"));
/// # Ok::<(), segpack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackReport {
    /// One report per core module (one for a plain module).
    pub modules: Vec<ModuleReport>,
    /// Size of the input in bytes.
    pub input_len: u64,
    /// Size of the output in bytes.
    pub output_len: u64,
}

impl PackReport {
    /// Data segments in the input, over all modules.
    pub fn segments_before(&self) -> u64 {
        self.modules.iter().map(|m| m.segments_before).sum()
    }
    /// Data segments in the output, over all modules.
    pub fn segments_after(&self) -> u64 {
        self.modules.iter().map(|m| m.segments_after).sum()
    }
    /// Data section bytes in the input, over all modules.
    pub fn data_bytes_before(&self) -> u64 {
        self.modules.iter().map(|m| m.data_bytes_before).sum()
    }
    /// Data section bytes in the output, over all modules.
    pub fn data_bytes_after(&self) -> u64 {
        self.modules.iter().map(|m| m.data_bytes_after).sum()
    }
    /// Whether the output differs from the input.
    pub fn changed(&self) -> bool {
        self.modules.iter().any(|m| m.changed)
    }
    /// Every warning, prefixed with its module's path inside a component.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.modules.iter().flat_map(|m| {
            m.warnings.iter().map(move |w| {
                if m.path.is_empty() {
                    w.clone()
                } else {
                    format!("{}: {w}", m.path)
                }
            })
        })
    }
}

/// A binary planned for packing: every output byte is decided, none written.
///
/// Planning first means errors surface before any output exists, and the
/// caller can look at the [`PackReport`] before deciding to write.
#[derive(Debug)]
pub struct Plan<'a> {
    input: &'a [u8],
    output: emit::Output<'a>,
    report: PackReport,
    /// Threads for assembling the output ([`PackOptions::threads`]).
    threads: usize,
}

impl<'a> Plan<'a> {
    /// Validates and plans `input`, a core module or component.
    ///
    /// # Errors
    /// [`ErrorKind::Malformed`] when the input is not a valid binary,
    /// [`ErrorKind::Relocatable`] for object files.
    ///
    /// ```
    /// let input = wat::parse_str("(module (memory 1) (data (i32.const 8) \"\\00\\00hi\"))").unwrap();
    /// let plan = segpack::Plan::new(&input, &Default::default())?;
    /// assert!(plan.report().changed());
    /// assert_eq!(plan.len(), input.len() as u64 - 2);
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn new(input: &'a [u8], options: &PackOptions) -> Result<Self> {
        Self::with_release(input, options, &|_| {})
    }

    /// Plans a mapped input file, dropping scanned pages from memory as it
    /// goes so that resident memory stays flat whatever the input's size.
    ///
    /// # Errors
    /// As [`Plan::new`].
    ///
    /// ```no_run
    /// let input = segpack::io::Input::open(Some("snapshot.wasm".as_ref()))?;
    /// let plan = segpack::Plan::from_input(&input, &Default::default())?;
    /// println!("{} -> {} bytes", input.bytes().len(), plan.len());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn from_input(input: &'a io::Input, options: &PackOptions) -> Result<Self> {
        Self::with_release(input.bytes(), options, &|bytes| input.release(bytes))
    }

    fn with_release(
        input: &'a [u8],
        options: &PackOptions,
        release: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<Self> {
        options.check()?;
        let known = parse::validate(input, release)?;
        release(input);
        let mut output = emit::Output::new(input);
        let mut modules = Vec::new();
        let cx = pack::Context {
            options,
            release,
            known: &known,
        };
        pack::plan_binary(input, 0..input.len(), &cx, "", &mut output, &mut modules)?;
        let changed = modules.iter().any(|m| m.changed);
        if !changed {
            // SPEC §1.3: nothing gained means the input, byte for byte.
            output = emit::Output::new(input);
            output.input(0..input.len());
        }
        let report = PackReport {
            modules,
            input_len: input.len() as u64,
            output_len: output.len(),
        };
        Ok(Plan {
            input,
            output,
            report,
            threads: options.threads,
        })
    }

    /// What packing does.
    ///
    /// ```
    /// let input = wat::parse_str("(module (memory 1) (data (i32.const 0) \"abc\"))").unwrap();
    /// let plan = segpack::Plan::new(&input, &Default::default())?;
    /// // Nothing to gain: the output is the input.
    /// assert!(!plan.report().changed());
    /// assert_eq!(plan.len(), input.len() as u64);
    /// assert!(!plan.is_empty());
    /// assert_eq!(plan.input(), &input[..]);
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn report(&self) -> &PackReport {
        &self.report
    }

    /// The output's length in bytes.
    pub fn len(&self) -> u64 {
        self.output.len()
    }

    /// Whether the output is empty (never, for a valid binary).
    pub fn is_empty(&self) -> bool {
        self.output.len() == 0
    }

    /// The input this plan reads from.
    pub fn input(&self) -> &'a [u8] {
        self.input
    }

    /// Writes the packed binary to a file or pipe. Worker threads
    /// ([`PackOptions::threads`]) assemble the output in 256 KiB blocks,
    /// reading the input's bytes with `pread` (no page of the map is
    /// touched, so resident memory stays flat), while this thread writes
    /// the blocks in order. `input` must be the input this plan was made
    /// from.
    ///
    /// # Errors
    /// Whatever writing `output` returns.
    ///
    /// # Panics
    /// When `input` is not the input the plan was made from.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("in.wasm");
    /// # std::fs::write(&path, wat::parse_str("(module (memory 1) (data (i32.const 8) \"\\00\\00hi\"))").unwrap()).unwrap();
    /// let input = segpack::io::Input::open(Some(&path))?;
    /// let plan = segpack::Plan::from_input(&input, &Default::default())?;
    /// let target = dir.path().join("out.wasm");
    /// segpack::io::write_atomically(&target, |file| plan.write_to_file(&input, file))?;
    /// assert_eq!(std::fs::metadata(&target).unwrap().len(), plan.len());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn write_to_file(&self, input: &io::Input, output: &std::fs::File) -> std::io::Result<()> {
        assert!(
            std::ptr::eq(input.bytes().as_ptr(), self.input.as_ptr()),
            "write_to_file needs the Input the plan was made from"
        );
        self.output
            .write_to_file(input.file(), output, scan::thread_count(self.threads))
    }

    /// Writes the packed binary.
    ///
    /// # Errors
    /// Whatever `output` returns.
    ///
    /// ```
    /// let input = wat::parse_str("(module (memory 1) (data (i32.const 8) \"\\00\\00hi\"))").unwrap();
    /// let plan = segpack::Plan::new(&input, &Default::default())?;
    /// let mut output = Vec::new();
    /// plan.write_to(&mut output).unwrap();
    /// assert_eq!(output.len() as u64, plan.len());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn write_to(&self, mut output: impl Write) -> std::io::Result<()> {
        self.output.write_to(&mut output)
    }

    /// Writes the packed binary as [`write_to`](Self::write_to) does, and
    /// calls `progress` with the number of bytes written so far as they go
    /// out (at least once, with [`len`](Self::len), at the end).
    ///
    /// # Errors
    /// Whatever `output` returns.
    ///
    /// ```
    /// use std::cell::Cell;
    /// let input = wat::parse_str("(module (memory 1) (data (i32.const 8) \"\\00\\00hi\"))").unwrap();
    /// let plan = segpack::Plan::new(&input, &Default::default())?;
    /// let written = Cell::new(0);
    /// plan.write_to_with_progress(Vec::new(), &|n| written.set(n)).unwrap();
    /// assert_eq!(written.get(), plan.len());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn write_to_with_progress(
        &self,
        output: impl Write,
        progress: &dyn Fn(u64),
    ) -> std::io::Result<()> {
        let mut counting = Counting {
            inner: output,
            written: 0,
            progress,
        };
        self.output.write_to(&mut counting)?;
        counting.flush()?;
        progress(counting.written);
        Ok(())
    }

    /// Writes the packed binary as [`write_to_file`](Self::write_to_file)
    /// does, and calls `progress` with the number of bytes written so far,
    /// about ten times a second and once more, with [`len`](Self::len), at
    /// the end.
    ///
    /// A helper thread reads how far `output`'s file offset has moved. An
    /// output without an offset (a pipe, a socket) is written from the map
    /// instead, counting as it goes.
    ///
    /// # Errors
    /// Whatever writing `output` returns.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("in.wasm");
    /// # std::fs::write(&path, wat::parse_str("(module (memory 1) (data (i32.const 8) \"\\00\\00hi\"))").unwrap()).unwrap();
    /// let input = segpack::io::Input::open(Some(&path))?;
    /// let plan = segpack::Plan::from_input(&input, &Default::default())?;
    /// let output = tempfile::tempfile().unwrap();
    /// let last = std::sync::atomic::AtomicU64::new(0);
    /// plan.write_to_file_with_progress(&input, &output, &|n| last.store(n, std::sync::atomic::Ordering::Relaxed)).unwrap();
    /// assert_eq!(last.into_inner(), plan.len());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn write_to_file_with_progress(
        &self,
        input: &io::Input,
        output: &std::fs::File,
        progress: &(dyn Fn(u64) + Sync),
    ) -> std::io::Result<()> {
        use std::io::Seek;
        use std::sync::mpsc;
        use std::time::Duration;
        // A duplicate descriptor shares the file offset with `output`.
        let watcher = output.try_clone()?;
        let Ok(start) = (&watcher).stream_position() else {
            return self.write_to_with_progress(std::io::BufWriter::new(output), progress);
        };
        let (done, finished) = mpsc::channel::<()>();
        let len = self.len();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    finished.recv_timeout(Duration::from_millis(100))
                {
                    if let Ok(at) = (&watcher).stream_position() {
                        progress(at.saturating_sub(start).min(len));
                    }
                }
            });
            let result = self.write_to_file(input, output);
            drop(done);
            result
        })?;
        progress(len);
        Ok(())
    }
}

/// A writer that reports how many bytes went through it.
struct Counting<'p, W> {
    inner: W,
    written: u64,
    progress: &'p dyn Fn(u64),
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let before = self.written;
        self.written += n as u64;
        // Report every MiB crossed, not every small write.
        if before >> 20 != self.written >> 20 {
            (self.progress)(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Packs a whole binary (core module or component) from `input` into
/// `output`.
///
/// Everything is planned before the first byte is written: on error, nothing
/// is written.
///
/// # Errors
/// See [`Plan::new`]; [`ErrorKind::Io`] when writing fails.
///
/// ```
/// let input = wat::parse_str("(module (memory 1) (data (i32.const 0) \"x\\00\\00\\00\\00\\00\\00\\00\\00y\"))").unwrap();
/// let mut output = Vec::new();
/// let report = segpack::pack_module(&input, &mut output, &Default::default())?;
/// assert_eq!((report.segments_before(), report.segments_after()), (1, 2));
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn pack_module(input: &[u8], output: impl Write, options: &PackOptions) -> Result<PackReport> {
    let plan = Plan::new(input, options)?;
    plan.write_to(output)
        .map_err(|e| Error::io("writing the output", e))?;
    Ok(plan.report)
}

/// Merges a producer's data segments into the fewest bytes of segments.
///
/// `segments` are in the order instantiation would apply them (later ones
/// overwrite earlier ones where they overlap). `memories[i]` is the index type
/// of memory `i`. The result is sorted by (memory, offset), holds every
/// non-zero byte of each memory's image, and at most
/// `options.max_segments` segments when that is possible.
///
/// # Errors
/// [`ErrorKind::InvalidSegment`] when a segment names an undescribed memory
/// or does not fit its address space.
///
/// ```
/// use segpack::{IndexType, Segment};
/// let page = [0u8, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
/// let segments = [Segment { memory_index: 0, offset: 4096, data: &page }];
/// let packed = segpack::pack_segments(&segments, &[IndexType::I32], &Default::default())?;
/// assert_eq!(packed.len(), 2);
/// assert_eq!((packed[0].offset, packed[0].to_vec()), (4098, vec![1, 2]));
/// assert_eq!((packed[1].offset, packed[1].to_vec()), (4112, vec![3]));
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn pack_segments<'a>(
    segments: &[Segment<'a>],
    memories: &[IndexType],
    options: &PackOptions,
) -> Result<Vec<PackedSegment<'a>>> {
    options.check()?;
    let images = pack::images_of_segments(segments, memories)?;
    Ok(plan::pack_images(
        &images,
        options.max_segments as u64,
        options.threads,
        &|_| {},
    )
    .segments)
}
