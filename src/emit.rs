//! The output as a list of chunks: byte ranges of the input (copied straight
//! from the map), small owned pieces (headers, LEBs), and runs of zeros.
//! Its length is known before the first byte is written, which is what lets
//! enclosing section sizes be written first.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use wasm_encoder::Encode;

use crate::scan;
use crate::segment::Part;

/// Output bytes assembled per write: a few hundred KiB keeps a block in
/// the core's cache between the read into it and the write out of it.
const WRITE_BLOCK: usize = 256 * 1024;

/// A block of the output: `len` bytes from `skip` bytes into chunk `chunk`.
#[derive(Debug, Clone, Copy)]
struct Block {
    chunk: usize,
    skip: u64,
    len: usize,
}

#[derive(Debug, Clone)]
enum Chunk {
    /// A range of the input.
    Input(std::ops::Range<usize>),
    /// A range of `Output::owned`.
    Owned(std::ops::Range<usize>),
    Zeros(u64),
}

impl Chunk {
    fn len(&self) -> u64 {
        match self {
            Chunk::Input(r) | Chunk::Owned(r) => r.len() as u64,
            Chunk::Zeros(n) => *n,
        }
    }
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

    /// Writes every byte, in order, to a file (or pipe). The output is
    /// assembled in blocks of [`WRITE_BLOCK`] bytes on up to `threads`
    /// workers ([`scan::map_ordered`]), which read input ranges from
    /// `input_file` (holding the same bytes as the input slice) with
    /// `pread`, so no input page is mapped; the calling thread writes the
    /// blocks in order. Reading and writing overlap on two cores, and one
    /// `write` per block costs less than a kernel copy per segment: segments
    /// are short and start at odd offsets.
    pub(crate) fn write_to_file(
        &self,
        input_file: &File,
        out: &File,
        threads: usize,
    ) -> io::Result<()> {
        let blocks = self.blocks(WRITE_BLOCK as u64);
        // Buffers go back and forth between the writer and the workers.
        let spare: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());
        let failed = AtomicBool::new(false);
        let mut result = Ok(());
        let mut out = out;
        scan::map_ordered(
            &blocks,
            threads,
            |block| {
                if failed.load(Ordering::Relaxed) {
                    return Err(None);
                }
                let buffer = spare.lock().unwrap_or_else(|e| e.into_inner()).pop();
                let mut buffer =
                    buffer.unwrap_or_else(|| vec![0u8; WRITE_BLOCK].into_boxed_slice());
                match self.fill(input_file, block, &mut buffer[..block.len]) {
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
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    spare.lock().unwrap_or_else(|e| e.into_inner()).push(buffer);
                }
                Err(e) => result = Err(e.expect("only a failed block fails")),
            },
        );
        result
    }

    /// Cuts the output into blocks of `size` bytes (the last one shorter).
    fn blocks(&self, size: u64) -> Vec<Block> {
        let mut blocks = Vec::new();
        let mut block = Block {
            chunk: 0,
            skip: 0,
            len: 0,
        };
        for (i, chunk) in self.chunks.iter().enumerate() {
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

    /// Assembles one block of output into `buffer` (exactly its length).
    fn fill(&self, input_file: &File, block: &Block, buffer: &mut [u8]) -> io::Result<()> {
        let mut at = 0;
        let mut skip = block.skip;
        for chunk in &self.chunks[block.chunk..] {
            if at == buffer.len() {
                break;
            }
            let take = (chunk.len() - skip).min((buffer.len() - at) as u64) as usize;
            let part = &mut buffer[at..at + take];
            match chunk {
                Chunk::Input(r) => input_file
                    .read_exact_at(part, r.start as u64 + skip)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::UnexpectedEof => io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the input file shrank while it was being packed",
                        ),
                        _ => e,
                    })?,
                Chunk::Owned(r) => {
                    let from = r.start + skip as usize;
                    part.copy_from_slice(&self.owned[from..from + take]);
                }
                Chunk::Zeros(_) => part.fill(0),
            }
            at += take;
            skip = 0;
        }
        Ok(())
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
