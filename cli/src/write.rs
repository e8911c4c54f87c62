//! Writing a plan to a file or pipe: worker threads assemble the output in
//! blocks, reading input ranges with `pread` (no page of the map is
//! touched, so resident memory stays flat), while the calling thread writes
//! the blocks in order. Reading and writing overlap on two cores, and one
//! `write` per block costs less than a kernel copy per segment: segments are
//! short and start at odd offsets. Short input ranges are served from one
//! read of the input around them ([`ReadAhead`]): at a cap of 100,000 most
//! payloads are a few hundred bytes, and a `pread` each cost more than
//! copying them.

use std::fs::File;
use std::io::{self, Write};
#[cfg(any(unix, windows))]
use std::sync::Mutex;
#[cfg(any(unix, windows))]
use std::sync::atomic::{AtomicBool, Ordering};

use segpack::{Chunk, Plan};

use crate::files::{Durability, Input};

/// Output bytes assembled per write: a few hundred KiB keeps a block in
/// the core's cache between the read into it and the write out of it.
const WRITE_BLOCK: usize = 256 * 1024;

/// Input ranges shorter than this are copied from a [`ReadAhead`] window
/// rather than read with a `pread` of their own.
#[cfg(any(unix, windows))]
const SHORT_READ: usize = 4096;

/// How much input one [`ReadAhead`] read takes, at most.
#[cfg(any(unix, windows))]
const READ_AHEAD: usize = 64 * 1024;

/// The most input bytes a [`ReadAhead`] read takes between two ranges it
/// serves: copying that many costs about what a `pread` call does.
#[cfg(any(unix, windows))]
const READ_SKIP: u64 = 4096;

/// A window of input bytes read once for the short ranges that fall in it:
/// the payloads of neighbouring segments lie close together in the input.
#[cfg_attr(target_os = "wasi", allow(dead_code))]
struct ReadAhead {
    start: u64,
    len: usize,
    buffer: Vec<u8>,
}

#[cfg(any(unix, windows))]
impl ReadAhead {
    fn new() -> Self {
        ReadAhead {
            start: 0,
            len: 0,
            buffer: Vec::new(),
        }
    }

    /// Copies `part.len()` input bytes from `offset` into `part` (shorter
    /// than [`READ_AHEAD`]). When they are not in the window, a new one is
    /// read from `offset` to the end of the input ranges `next` that follow
    /// (the next chunks of the block) at most [`READ_SKIP`] apart and within
    /// [`READ_AHEAD`]; with none, `part` is read on its own, as a `pread`.
    fn copy<'c>(
        &mut self,
        input: &File,
        part: &mut [u8],
        offset: u64,
        next: impl Iterator<Item = &'c Chunk<'c>>,
    ) -> io::Result<()> {
        let inside =
            offset >= self.start && offset - self.start + part.len() as u64 <= self.len as u64;
        if !inside {
            let limit = offset + READ_AHEAD as u64;
            let mut end = offset + part.len() as u64;
            for chunk in next.take(64) {
                match chunk {
                    Chunk::Input(r)
                        if r.start >= end && r.start - end <= READ_SKIP && r.end <= limit =>
                    {
                        end = r.end
                    }
                    Chunk::Input(_) => break,
                    _ => {}
                }
            }
            if end == offset + part.len() as u64 {
                return read_exact_at(input, part, offset);
            }
            let len = (end - offset) as usize;
            self.buffer.resize(len.max(self.buffer.len()), 0);
            self.len = read_at_least(input, &mut self.buffer[..len], offset, part.len())?;
            self.start = offset;
        }
        let from = (offset - self.start) as usize;
        part.copy_from_slice(&self.buffer[from..from + part.len()]);
        Ok(())
    }
}

/// A block of the output: `len` bytes from `skip` bytes into chunk `chunk`.
#[cfg_attr(target_os = "wasi", allow(dead_code))] // the block writer is not built there
#[derive(Debug, Clone, Copy)]
struct Block {
    chunk: usize,
    skip: u64,
    len: usize,
}

/// Writes `plan` (made from `input`) to `out`, on `threads` workers, and
/// reports progress, if asked, about ten times a second and at the end.
/// A file that will be synced is handed to the disk as it is written.
pub fn write_plan(
    plan: &Plan<'_>,
    input: &Input,
    out: &File,
    durability: Durability,
    threads: usize,
    progress: Option<&(dyn Fn(u64) + Sync)>,
) -> io::Result<()> {
    match progress {
        None => write_blocks(plan, input, out, durability, threads),
        Some(progress) => with_progress(plan, out, progress, || {
            write_blocks(plan, input, out, durability, threads)
        }),
    }
}

/// Runs `write` while a helper thread reports how far `out`'s file offset
/// has moved. An output without an offset (a pipe) is written by the
/// plan's own counting writer instead.
fn with_progress(
    plan: &Plan<'_>,
    out: &File,
    progress: &(dyn Fn(u64) + Sync),
    write: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    use std::io::Seek;
    use std::sync::mpsc;
    use std::time::Duration;
    // A duplicate descriptor shares the file offset with `out`.
    let watcher = out.try_clone()?;
    let Ok(start) = (&watcher).stream_position() else {
        return plan.write_to(io::BufWriter::new(out), Some(&|n| progress(n)));
    };
    let (done, finished) = mpsc::channel::<()>();
    let len = plan.len();
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
        let result = write();
        drop(done);
        result
    })?;
    progress(len);
    Ok(())
}

/// The block writer (see the module's docs).
#[cfg(any(unix, windows))]
fn write_blocks(
    plan: &Plan<'_>,
    input: &Input,
    out: &File,
    durability: Durability,
    threads: usize,
) -> io::Result<()> {
    let chunks: Vec<Chunk<'_>> = plan.chunks().collect();
    let blocks = blocks(&chunks, WRITE_BLOCK as u64);
    // Buffers go back and forth between the writer and the workers.
    let spare: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());
    let failed = AtomicBool::new(false);
    let mut result = Ok(());
    let mut writeback = crate::files::Writeback::new(out, durability);
    let mut written = 0u64;
    let mut out = out;
    segpack::pool::map_ordered(
        &blocks,
        threads,
        |block| {
            if failed.load(Ordering::Relaxed) {
                return Err(None);
            }
            let buffer = spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut buffer = buffer.unwrap_or_else(|| vec![0u8; WRITE_BLOCK].into_boxed_slice());
            match fill(&chunks, input.file(), block, &mut buffer[..block.len]) {
                Ok(()) => Ok(buffer),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    Err(Some(e))
                }
            }
        },
        |i, filled| match filled {
            _ if result.is_err() => {}
            Ok(buffer) => {
                result = out.write_all(&buffer[..blocks[i].len]);
                written += blocks[i].len as u64;
                match (&result, &mut writeback) {
                    (Err(_), _) => failed.store(true, Ordering::Relaxed),
                    (Ok(()), Some(writeback)) => writeback.written(written),
                    (Ok(()), None) => {}
                }
                spare.lock().unwrap_or_else(|e| e.into_inner()).push(buffer);
            }
            Err(e) => result = Err(e.expect("only a failed block fails")),
        },
    );
    result
}

/// Without `pread` (WASI): the plan writes itself from the bytes in memory.
#[cfg(not(any(unix, windows)))]
fn write_blocks(plan: &Plan<'_>, _: &Input, out: &File, _: Durability, _: usize) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(WRITE_BLOCK, out);
    plan.write_to(&mut out, None)?;
    out.flush()
}

/// Cuts the output into blocks of `size` bytes (the last one shorter).
#[cfg_attr(target_os = "wasi", allow(dead_code))]
fn blocks(chunks: &[Chunk<'_>], size: u64) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut block = Block {
        chunk: 0,
        skip: 0,
        len: 0,
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let mut left = chunk.len();
        let mut skip = 0;
        while left > 0 {
            let take = left.min(size - block.len as u64);
            block.len += take as usize;
            left -= take;
            skip += take;
            if block.len as u64 == size {
                blocks.push(block);
                // The next block starts where this one ended.
                block = Block {
                    chunk: if left > 0 { i } else { i + 1 },
                    skip: if left > 0 { skip } else { 0 },
                    len: 0,
                };
            }
        }
    }
    if block.len > 0 {
        blocks.push(block);
    }
    blocks
}

#[cfg_attr(target_os = "wasi", allow(dead_code))]
/// Assembles one block of output into `buffer` (exactly its length).
#[cfg(any(unix, windows))]
fn fill(chunks: &[Chunk<'_>], input: &File, block: &Block, buffer: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    let mut skip = block.skip;
    let mut ahead = ReadAhead::new();
    for (i, chunk) in chunks.iter().enumerate().skip(block.chunk) {
        if at == buffer.len() {
            break;
        }
        let take = (chunk.len() - skip).min((buffer.len() - at) as u64) as usize;
        let part = &mut buffer[at..at + take];
        match chunk {
            Chunk::Input(r) => {
                let read = if take < SHORT_READ {
                    ahead.copy(input, part, r.start + skip, chunks[i + 1..].iter())
                } else {
                    read_exact_at(input, part, r.start + skip)
                };
                read.map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the input file shrank while it was being packed",
                    ),
                    _ => e,
                })?
            }
            Chunk::Bytes(bytes) => {
                let from = skip as usize;
                part.copy_from_slice(&bytes[from..from + take]);
            }
            Chunk::Zeros(_) => part.fill(0),
        }
        at += take;
        skip = 0;
    }
    Ok(())
}

/// Fills `buf` from `offset`, or fails with `UnexpectedEof` where the file
/// ends first.
#[cfg(any(unix, windows))]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let len = buf.len();
    read_at_least(file, buf, offset, len).map(|_| ())
}

/// Reads into `buf` from `offset` until it is full or the file ends, and
/// returns how much it read: at least `min` bytes, or an `UnexpectedEof`.
#[cfg(any(unix, windows))]
fn read_at_least(file: &File, buf: &mut [u8], offset: u64, min: usize) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match read_at(file, &mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if done < min {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(done)
}

#[cfg(unix)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Windows' positioned read moves the file offset, which no one else reads.
#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Runs `write` on standard output as a `File` (a duplicate of fd 1 on
/// Unix, so pipes get the threaded writer too).
#[cfg(unix)]
pub fn to_stdout(write: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    use std::os::fd::AsFd;
    let fd = io::stdout().as_fd().try_clone_to_owned()?;
    crate::files::grow_pipe(&fd);
    write(&File::from(fd))
}

#[cfg(windows)]
pub fn to_stdout(write: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    use std::os::windows::io::AsHandle;
    let handle = io::stdout().as_handle().try_clone_to_owned()?;
    write(&File::from(handle))
}

/// WASI: file descriptor 1 as a `File` (WASI cannot duplicate it), never
/// closed here.
#[cfg(not(any(unix, windows)))]
pub fn to_stdout(write: impl FnOnce(&File) -> io::Result<()>) -> io::Result<()> {
    use std::os::fd::FromRawFd;
    io::stdout().flush()?;
    // SAFETY: descriptor 1 is open for the life of the process, and the
    // `ManuallyDrop` keeps this `File` from closing it.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    write(&file)
}

#[cfg(all(test, any(unix, windows)))]
mod tests {
    use super::*;
    use std::io::Write;

    /// Every block, assembled from short and long input ranges in and out
    /// of order, holds exactly the bytes the chunks stand for.
    #[test]
    fn blocks_hold_the_chunks_bytes_however_the_input_is_read() {
        let input: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&input).unwrap();
        let header = [0xAAu8; 5];
        let mut chunks = Vec::new();
        let mut at = 0u64;
        let mut state = 12345u64;
        while at < 280_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = [1, 3, 100, 700, 4095, 4096, 9000, 70_000][(state >> 33) as usize % 8];
            let jump = [0u64, 1, 9, 31, 2000, 66_000][(state >> 40) as usize % 6];
            // Now and then a range from behind: out of order in the input.
            let start = if (state >> 50).is_multiple_of(7) {
                at / 2
            } else {
                at + jump
            };
            let end = (start + len).min(input.len() as u64);
            chunks.push(Chunk::Bytes(&header));
            chunks.push(Chunk::Input(start..end));
            if (state >> 45).is_multiple_of(5) {
                chunks.push(Chunk::Zeros(17));
            }
            at = end;
        }
        let mut expected = Vec::new();
        for chunk in &chunks {
            match chunk {
                Chunk::Input(r) => expected.extend(&input[r.start as usize..r.end as usize]),
                Chunk::Bytes(b) => expected.extend(*b),
                Chunk::Zeros(n) => expected.extend(std::iter::repeat_n(0, *n as usize)),
            }
        }
        for size in [7u64, 4096, 65_536, 256 * 1024] {
            let mut got = Vec::new();
            for block in blocks(&chunks, size) {
                let mut buffer = vec![0u8; block.len];
                fill(&chunks, &file, &block, &mut buffer).unwrap();
                got.extend(buffer);
            }
            assert!(got == expected, "block size {size}");
        }
    }
}
