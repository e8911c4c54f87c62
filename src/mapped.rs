//! What a caller that maps its input file can do for planning, so that
//! resident memory stays flat and few pages are faulted in twice (the
//! `segpack` CLI implements it for its input).

/// A mapped input: planning tells it which bytes were read for good, and
/// reads the data segments' headers through it instead of the map. In a
/// snapshot each header sits on a page of its own, and reading one in the
/// map faults in the pages around it too (the kernel's fault-around): a
/// 1 GiB snapshot's validation then maps most of the file once only to
/// release it, before the scan maps it again.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// /// The input as a mapped file would serve it: here, a byte slice.
/// struct Mapped<'a> {
///     bytes: &'a [u8],
///     reads: AtomicUsize,
/// }
/// impl segpack::MappedInput for Mapped<'_> {
///     fn release(&self, _bytes: &[u8]) {}
///     fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
///         self.reads.fetch_add(1, Ordering::Relaxed);
///         let rest = self.bytes.get(offset as usize..).unwrap_or(&[]);
///         let n = rest.len().min(buf.len());
///         buf[..n].copy_from_slice(&rest[..n]);
///         Ok(n)
///     }
/// }
/// let input = wat::parse_str(r#"(module (memory 1) (data (i32.const 8) "\00\00hi"))"#).unwrap();
/// let mapped = Mapped { bytes: &input, reads: AtomicUsize::new(0) };
/// let plan = segpack::Plan::with_mapped(&input, &Default::default(), &mapped)?;
/// assert_eq!(plan.len(), input.len() as u64 - 2);
/// assert_eq!(mapped.reads.into_inner(), 1); // one header
/// # Ok::<(), segpack::Error>(())
/// ```
pub trait MappedInput: Sync {
    /// `bytes`, a part of the input, will not be read again soon: their
    /// pages may leave the resident set (as [`Plan::with_release`]'s
    /// `release`).
    ///
    /// [`Plan::with_release`]: crate::Plan::with_release
    fn release(&self, bytes: &[u8]);

    /// Reads the input's bytes from `offset` into `buf` without touching
    /// the map (a positioned read of the file), as many as there are up to
    /// `buf`'s length, and returns how many. On an error the map is read
    /// instead.
    ///
    /// # Errors
    /// Whatever the read fails with; planning then reads the map.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
}
