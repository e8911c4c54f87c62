//! The whole-module rewriter: [`Plan`] (validate and plan every output byte,
//! then write) and [`pack_module`] (both at once).

use std::io::Write;

pub use crate::emit::Chunk;
use crate::error::{Error, Result};
use crate::memo::Memo;
use crate::{MappedInput, PackOptions, PackReport, emit, pack, parse};

/// A binary planned for packing: every output byte is decided, none written.
///
/// Planning first means errors surface before any output exists, and the
/// caller can look at the [`PackReport`] before deciding to write.
///
/// `Send` and `Sync`.
#[derive(Debug)]
pub struct Plan<'a> {
    input: &'a [u8],
    output: emit::Output<'a>,
    report: PackReport,
}

impl<'a> Plan<'a> {
    /// Validates and plans `input`, a core module or component.
    ///
    /// # Errors
    /// [`ErrorKind::Malformed`](crate::ErrorKind::Malformed) when the input is not a valid binary,
    /// [`ErrorKind::Relocatable`](crate::ErrorKind::Relocatable) for object files.
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

    /// As [`Plan::new`], telling `release` which parts of `input` have been
    /// read for good as planning goes, so that a caller who mapped the input
    /// can drop those pages and keep resident memory flat whatever the
    /// input's size (the `segpack` CLI does).
    ///
    /// # Errors
    /// As [`Plan::new`].
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let input = wat::parse_str("(module (memory 1) (data (i32.const 8) \"\\00\\00hi\"))").unwrap();
    /// let released = AtomicU64::new(0);
    /// let plan = segpack::Plan::with_release(&input, &Default::default(), &|bytes| {
    ///     released.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    /// })?;
    /// assert!(released.into_inner() > 0);
    /// assert!(plan.report().changed());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn with_release(
        input: &'a [u8],
        options: &PackOptions,
        release: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<Self> {
        Self::build(input, options, release, None, None)
    }

    /// As [`Plan::with_release`], for an input mapped from a file: `mapped`
    /// is told what was read for good, and serves the data segments'
    /// headers by positioned reads ([`MappedInput`]), so that their pages
    /// are not faulted in only to be released again.
    ///
    /// # Errors
    /// As [`Plan::new`].
    ///
    /// See [`MappedInput`] for an example.
    pub fn with_mapped(
        input: &'a [u8],
        options: &PackOptions,
        mapped: &dyn MappedInput,
    ) -> Result<Self> {
        let release = |bytes: &[u8]| mapped.release(bytes);
        let read_at = |offset, buf: &mut [u8]| mapped.read_at(offset, buf);
        Self::build(input, options, &release, Some(&read_at), None)
    }

    /// [`Plan::with_release`], the data segments' headers read with
    /// `read_at` if given ([`MappedInput::read_at`]), keeping what can be
    /// planned again at other caps in `memo`, if given.
    pub(crate) fn build(
        input: &'a [u8],
        options: &PackOptions,
        release: &(dyn Fn(&[u8]) + Sync),
        read_at: Option<parse::ReadAt<'_>>,
        memo: Option<&Memo<'a>>,
    ) -> Result<Self> {
        let known = parse::validate(input, release, read_at, options.threads)?;
        release(input);
        Self::build_valid(input, options, release, false, known, memo)
    }

    /// [`Plan::build`] for an input already validated, with the segment
    /// headers that validation copied (`known`; none is as good, only
    /// slower). `optimize` plans one input at several caps: validating it
    /// again at each took longer than compressing it at fast levels
    /// (esbuild.wasm: 0.3 s a plan, against 0.12 s for `zstd -3`).
    ///
    /// With `allow_growth`, a capped plan is laid out even when its data
    /// section is larger than the input's (for `optimize`, which weighs
    /// compressed sizes instead). With a `memo` of an earlier plan of the
    /// same input at a cap as high, the input is neither parsed nor
    /// scanned again ([`Memo`]).
    pub(crate) fn build_valid(
        input: &'a [u8],
        options: &PackOptions,
        release: &(dyn Fn(&[u8]) + Sync),
        allow_growth: bool,
        known: parse::KnownHeaders,
        memo: Option<&Memo<'a>>,
    ) -> Result<Self> {
        let known = std::cell::RefCell::new(known);
        let mut output = emit::Output::new(input);
        let mut modules = Vec::new();
        let cx = pack::Context {
            options,
            release,
            known: &known,
            allow_growth,
            memo,
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
        })
    }

    /// The input itself as the output, with `report` saying that nothing
    /// changed (`optimize`, when no layout beats the input compressed).
    pub(crate) fn keep_input(input: &'a [u8], mut report: PackReport) -> Self {
        for m in &mut report.modules {
            m.segments_after = m.segments_before;
            m.data_bytes_after = m.data_bytes_before;
            m.changed = false;
            m.packed_memories.clear();
        }
        let mut output = emit::Output::new(input);
        output.input(0..input.len());
        report.output_len = output.len();
        Plan {
            input,
            output,
            report,
        }
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

    /// Writes the packed binary to `output`, and if `progress` is given,
    /// calls it with the number of bytes written so far as they go out
    /// (every MiB, and once more with [`len`](Self::len) at the end).
    ///
    /// # Errors
    /// Whatever `output` returns.
    ///
    /// ```
    /// use std::cell::Cell;
    /// let input = wat::parse_str("(module (memory 1) (data (i32.const 8) \"\\00\\00hi\"))").unwrap();
    /// let plan = segpack::Plan::new(&input, &Default::default())?;
    /// let mut output = Vec::new();
    /// let written = Cell::new(0);
    /// plan.write_to(&mut output, Some(&|n| written.set(n))).unwrap();
    /// assert_eq!(output.len() as u64, plan.len());
    /// assert_eq!(written.get(), plan.len());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn write_to(
        &self,
        output: impl Write,
        progress: Option<&dyn Fn(u64)>,
    ) -> std::io::Result<()> {
        let Some(progress) = progress else {
            let mut output = output;
            return self.output.write_to(&mut output);
        };
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

    /// The output as a sequence of chunks, in order: ranges of the input,
    /// bytes the plan made (headers, LEBs), runs of zeros; a piece of 4 GiB
    /// or more comes as several chunks. For writers that copy input ranges
    /// their own way (the `segpack` CLI reads them with `pread` on worker
    /// threads, so no page of its map is touched).
    ///
    /// ```
    /// use segpack::Chunk;
    /// let input = wat::parse_str("(module (memory 1) (data (i32.const 8) \"\\00\\00hi\"))").unwrap();
    /// let plan = segpack::Plan::new(&input, &Default::default())?;
    /// let mut output = Vec::new();
    /// for chunk in plan.chunks() {
    ///     match chunk {
    ///         Chunk::Input(range) => output.extend_from_slice(&input[range.start as usize..range.end as usize]),
    ///         Chunk::Bytes(bytes) => output.extend_from_slice(bytes),
    ///         Chunk::Zeros(n) => output.resize(output.len() + n as usize, 0),
    ///     }
    /// }
    /// assert_eq!(output.len() as u64, plan.len());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn chunks(&self) -> impl Iterator<Item = Chunk<'_>> + '_ {
        self.output.chunks()
    }

    /// The output's chunks, able to skip bytes (`optimize`'s samples).
    pub(crate) fn cursor(&self) -> emit::Cursor<'_, 'a> {
        self.output.cursor()
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
/// See [`Plan::new`]; [`ErrorKind::Io`](crate::ErrorKind::Io) when writing fails.
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
    plan.write_to(output, None)
        .map_err(|e| Error::io("writing the output", e))?;
    Ok(plan.report)
}
