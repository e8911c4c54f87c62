//! The output as a list of chunks: byte ranges of the input (copied straight
//! from the map), small owned pieces (headers, LEBs), and runs of zeros.
//! Its length is known before the first byte is written, which is what lets
//! enclosing section sizes be written first.

use std::io::{self, Write};

use wasm_encoder::Encode;

use crate::segment::Part;

/// One piece of a [`Plan`](crate::Plan)'s output ([`Plan::chunks`](crate::Plan::chunks)).
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk<'p> {
    /// These bytes of the input, copied as they are.
    Input(std::ops::Range<u64>),
    /// Bytes the plan made: section and segment headers, LEBs.
    Bytes(&'p [u8]),
    /// This many zero bytes.
    Zeros(u64),
}

impl Chunk<'_> {
    /// The number of output bytes this chunk stands for.
    ///
    /// ```
    /// assert_eq!(segpack::Chunk::Input(8..12).len(), 4);
    /// assert_eq!(segpack::Chunk::Zeros(3).len(), 3);
    /// ```
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Input(r) => r.end - r.start,
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::Zeros(n) => *n,
        }
    }

    /// Whether the chunk stands for no bytes (the plan never makes one).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
enum Span {
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
    spans: Vec<Span>,
    owned: Vec<u8>,
    len: u64,
    /// Counting only ([`Output::tally`]): the spans and owned bytes made so
    /// far, of which only the last span is kept (to join the next to it).
    tally: Option<(usize, usize)>,
}

impl<'a> Output<'a> {
    /// An empty output over `input`, the whole input binary.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Output {
            input,
            spans: Vec::new(),
            owned: Vec::new(),
            len: 0,
            tally: None,
        }
    }

    /// An empty output over `input` with room for `spans` spans and
    /// `owned` bytes the plan makes.
    pub(crate) fn with_capacity(input: &'a [u8], spans: usize, owned: usize) -> Self {
        Output {
            input,
            spans: Vec::with_capacity(spans),
            owned: Vec::with_capacity(owned),
            len: 0,
            tally: None,
        }
    }

    /// An output that only counts what it is given: how many spans and owned
    /// bytes ([`Output::tallied`]) an output given the same would hold.
    pub(crate) fn tally(input: &'a [u8]) -> Self {
        Output {
            tally: Some((0, 0)),
            ..Output::new(input)
        }
    }

    /// A tally's (spans, owned bytes).
    pub(crate) fn tallied(&self) -> (usize, usize) {
        self.tally.expect("a tally")
    }

    /// Adds a span that does not join the last one.
    fn push(&mut self, span: Span) {
        if let Some((spans, _)) = &mut self.tally {
            *spans += 1;
            self.spans.clear();
        }
        self.spans.push(span);
    }

    /// How many owned bytes there are.
    fn owned_len(&self) -> usize {
        self.tally.map_or(self.owned.len(), |(_, owned)| owned)
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
        match self.spans.last_mut() {
            Some(Span::Input(last)) if last.end == range.start => last.end = range.end,
            _ => self.push(Span::Input(range)),
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
        let start = self.owned_len();
        match &mut self.tally {
            Some((_, owned)) => *owned += bytes.len(),
            None => self.owned.extend_from_slice(bytes),
        }
        let end = self.owned_len();
        match self.spans.last_mut() {
            Some(Span::Owned(r)) if r.end == start => r.end = end,
            _ => self.push(Span::Owned(start..end)),
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
        match self.spans.last_mut() {
            Some(Span::Zeros(m)) => *m += n,
            _ => self.push(Span::Zeros(n)),
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
        if self.spans.is_empty() && std::ptr::eq(self.input, other.input) {
            // Nothing to join: take it whole (a module's output is the
            // plan's), not a second copy of its spans.
            *self = other;
            return;
        }
        for chunk in other.spans {
            match chunk {
                Span::Input(r) => self.input(r),
                Span::Owned(r) => self.owned(&other.owned[r]),
                Span::Zeros(n) => self.zeros(n),
            }
        }
    }

    /// The output as [`Chunk`]s, in order.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = Chunk<'_>> + '_ {
        self.spans.iter().map(|span| match span {
            Span::Input(r) => Chunk::Input(r.start as u64..r.end as u64),
            Span::Owned(r) => Chunk::Bytes(&self.owned[r.clone()]),
            Span::Zeros(n) => Chunk::Zeros(*n),
        })
    }

    /// Writes every byte, in order.
    pub(crate) fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        for chunk in &self.spans {
            match chunk {
                Span::Input(r) => out.write_all(&self.input[r.clone()])?,
                Span::Owned(r) => out.write_all(&self.owned[r.clone()])?,
                Span::Zeros(n) => {
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
