//! The output as a list of chunks: byte ranges of the input (copied straight
//! from the map), small owned pieces (headers, LEBs), and runs of zeros.
//! Its length is known before the first byte is written, which is what lets
//! enclosing section sizes be written first.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use wasm_encoder::Encode;

use crate::segment::Part;

#[derive(Debug, Clone)]
enum Chunk {
    /// A range of the input.
    Input(std::ops::Range<usize>),
    /// A range of `Output::owned`.
    Owned(std::ops::Range<usize>),
    Zeros(u64),
}

/// The planned output bytes, not yet written.
#[derive(Debug, Clone)]
pub(crate) struct Output<'a> {
    input: &'a [u8],
    chunks: Vec<Chunk>,
    owned: Vec<u8>,
    len: u64,
}

impl<'a> Output<'a> {
    /// An empty output over `input`, the whole input binary.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Output {
            input,
            chunks: Vec::new(),
            owned: Vec::new(),
            len: 0,
        }
    }

    /// The total length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a range of the input, written later straight from it.
    pub(crate) fn input(&mut self, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        self.len += range.len() as u64;
        // Neighbouring input ranges become one write.
        match self.chunks.last_mut() {
            Some(Chunk::Input(last)) if last.end == range.start => last.end = range.end,
            _ => self.chunks.push(Chunk::Input(range)),
        }
    }

    /// Appends a slice that borrows from the input.
    fn input_slice(&mut self, bytes: &[u8]) {
        let start = (bytes.as_ptr() as usize)
            .checked_sub(self.input.as_ptr() as usize)
            .filter(|s| s + bytes.len() <= self.input.len())
            .expect("payload bytes borrow from the input");
        self.input(start..start + bytes.len());
    }

    /// Appends small bytes that the plan made.
    pub(crate) fn owned(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        let start = self.owned.len();
        self.owned.extend_from_slice(bytes);
        let end = self.owned.len();
        match self.chunks.last_mut() {
            Some(Chunk::Owned(r)) if r.end == start => r.end = end,
            _ => self.chunks.push(Chunk::Owned(start..end)),
        }
    }

    /// Appends an unsigned LEB128.
    pub(crate) fn uleb(&mut self, v: u64) {
        let mut buf = Vec::with_capacity(10);
        v.encode(&mut buf);
        self.owned(&buf);
    }

    /// Appends `n` zero bytes.
    pub(crate) fn zeros(&mut self, n: u64) {
        if n == 0 {
            return;
        }
        self.len += n;
        match self.chunks.last_mut() {
            Some(Chunk::Zeros(m)) => *m += n,
            _ => self.chunks.push(Chunk::Zeros(n)),
        }
    }

    /// Appends a packed segment's payload.
    pub(crate) fn parts(&mut self, parts: &[Part<'a>]) {
        for part in parts {
            match *part {
                Part::Bytes(b) => self.input_slice(b),
                Part::Zeros(n) => self.zeros(n),
            }
        }
    }

    /// Appends another output (a nested module's).
    pub(crate) fn append(&mut self, other: Output<'a>) {
        for chunk in other.chunks {
            match chunk {
                Chunk::Input(r) => self.input(r),
                Chunk::Owned(r) => self.owned(&other.owned[r]),
                Chunk::Zeros(n) => self.zeros(n),
            }
        }
    }

    /// Writes every byte, in order, to a file (or pipe). Ranges of the input
    /// move from `input_file`, which holds the same bytes as the input slice,
    /// in the kernel (`copy_file_range`, or `sendfile` into a pipe) without
    /// passing through this process; the small pieces in between are
    /// gathered in one buffer.
    pub(crate) fn write_to_file(&self, input_file: &File, out: &File) -> io::Result<()> {
        const SMALL: usize = 16 * 1024;
        let mut buffer: Vec<u8> = Vec::with_capacity(256 * 1024);
        let mut out_ref = out;
        let mut in_ref = input_file;
        // `copy_file_range` at explicit input offsets: one call per range,
        // where `io::copy` also seeks and looks up both files each time.
        let mut direct = cfg!(target_os = "linux");
        for chunk in &self.chunks {
            match chunk {
                // Small ranges are cheaper read than one copy call each; read
                // from the file, not the map, so no pages get mapped.
                Chunk::Input(r) if r.len() < SMALL => {
                    let at = buffer.len();
                    buffer.resize(at + r.len(), 0);
                    input_file.read_exact_at(&mut buffer[at..], r.start as u64)?;
                }
                Chunk::Input(r) => {
                    out_ref.write_all(&buffer)?;
                    buffer.clear();
                    let mut copied = 0;
                    if direct {
                        match copy_range(input_file, r.start as u64, r.len(), out)? {
                            Some(n) => copied = n,
                            // Not between these files: the portable way from now on.
                            None => direct = false,
                        }
                    }
                    if !direct {
                        in_ref.seek(SeekFrom::Start(r.start as u64))?;
                        copied = io::copy(&mut in_ref.take(r.len() as u64), &mut out_ref)? as usize;
                    }
                    if copied != r.len() {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the input file shrank while it was being packed",
                        ));
                    }
                }
                Chunk::Owned(r) => buffer.extend_from_slice(&self.owned[r.clone()]),
                // A closed gap can be up to 1 GiB of zeros: write it through
                // the buffer a block at a time, never all at once.
                Chunk::Zeros(n) => {
                    let mut left = *n;
                    while left > 0 {
                        let room = (256 * 1024usize).saturating_sub(buffer.len()).max(1);
                        let k = left.min(room as u64) as usize;
                        buffer.resize(buffer.len() + k, 0);
                        left -= k as u64;
                        if buffer.len() >= 256 * 1024 {
                            out_ref.write_all(&buffer)?;
                            buffer.clear();
                        }
                    }
                }
            }
            if buffer.len() >= 256 * 1024 {
                out_ref.write_all(&buffer)?;
                buffer.clear();
            }
        }
        out_ref.write_all(&buffer)
    }

    /// Writes every byte, in order.
    pub(crate) fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        for chunk in &self.chunks {
            match chunk {
                Chunk::Input(r) => out.write_all(&self.input[r.clone()])?,
                Chunk::Owned(r) => out.write_all(&self.owned[r.clone()])?,
                Chunk::Zeros(n) => {
                    let mut left = *n;
                    while left > 0 {
                        let k = left.min(ZEROS.len() as u64) as usize;
                        out.write_all(&ZEROS[..k])?;
                        left -= k as u64;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Copies `len` bytes at `offset` of `input` to the current position of
/// `out` in the kernel, with `copy_file_range`. The bytes copied (fewer only
/// when the input ended), or `None` when these two files cannot be copied
/// between this way (nothing was copied then).
#[cfg(target_os = "linux")]
fn copy_range(input: &File, offset: u64, len: usize, out: &File) -> io::Result<Option<usize>> {
    use std::os::fd::AsRawFd;
    let mut from = i64::try_from(offset).map_err(io::Error::other)?;
    let mut done = 0;
    while done < len {
        // SAFETY: both descriptors are open for the call; `from` is a valid
        // i64 the kernel advances; a null output offset means the file's own.
        let n = unsafe {
            libc::copy_file_range(
                input.as_raw_fd(),
                &mut from,
                out.as_raw_fd(),
                std::ptr::null_mut(),
                len - done,
                0,
            )
        };
        match n {
            0 => break,
            n if n > 0 => done += n as usize,
            _ => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    // Old kernels, pipes, file systems that do not support
                    // it: only ever on the first call.
                    Some(
                        libc::ENOSYS | libc::EXDEV | libc::EINVAL | libc::EOPNOTSUPP | libc::EBADF,
                    ) if done == 0 => {
                        return Ok(None);
                    }
                    _ => return Err(e),
                }
            }
        }
    }
    Ok(Some(done))
}

#[cfg(not(target_os = "linux"))]
fn copy_range(_: &File, _: u64, _: usize, _: &File) -> io::Result<Option<usize>> {
    Ok(None)
}
