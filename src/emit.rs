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

/// A piece of the output as the list keeps it: a few per data segment,
/// so it is kept to 16 bytes (12 where `usize` is 4), not the 24 of ranges.
/// A piece longer than `u32::MAX` bytes takes several spans.
#[derive(Debug, Clone, Copy)]
enum Span {
    /// `len` bytes of the input from `start`.
    Input { start: usize, len: u32 },
    /// The next `len` bytes of `Output::owned`, which spans use in order.
    Owned(u32),
    /// This many zero bytes.
    Zeros(u32),
    /// `Owned(owned)`, then `Input { start, len }`: a packed segment's
    /// header and payload, one span, not two (at 100,000 segments, 1.2 MB).
    OwnedInput { owned: u8, start: usize, len: u32 },
}

const _: () = assert!(size_of::<Span>() <= 16);

impl Span {
    /// Its length; of `OwnedInput`, its input's (what a join adds to).
    fn len(self) -> u32 {
        match self {
            Span::Input { len, .. }
            | Span::Owned(len)
            | Span::Zeros(len)
            | Span::OwnedInput { len, .. } => len,
        }
    }

    /// Takes `next` in when it continues this span and the length fits, or
    /// when it is input after a few owned bytes.
    fn join(&mut self, next: Span) -> bool {
        if let (Span::Owned(owned), Span::Input { start, len }) = (*self, next)
            && let Ok(owned) = u8::try_from(owned)
        {
            *self = Span::OwnedInput { owned, start, len };
            return true;
        }
        let len = match (self, next) {
            (
                Span::Input { start, len } | Span::OwnedInput { start, len, .. },
                Span::Input { start: at, .. },
            ) if *start + *len as usize == at => len,
            (Span::Owned(len), Span::Owned(_)) | (Span::Zeros(len), Span::Zeros(_)) => len,
            _ => return false,
        };
        match len.checked_add(next.len()) {
            Some(sum) => {
                *len = sum;
                true
            }
            None => false,
        }
    }
}

/// `n` bytes as the lengths of the spans that hold them (none for 0).
fn span_lens(mut n: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        let len = u32::try_from(n).unwrap_or(u32::MAX);
        n -= u64::from(len);
        (len > 0).then_some(len)
    })
}

/// Where `bytes` starts in `input`, when it is a slice of it (it borrows
/// from it, and lies within it).
pub(crate) fn offset_in(input: &[u8], bytes: &[u8]) -> Option<usize> {
    (bytes.as_ptr() as usize)
        .checked_sub(input.as_ptr() as usize)
        .filter(|start| start + bytes.len() <= input.len())
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

    /// Adds a span, joined to the last one when it continues it (so that
    /// neighbouring input ranges become one write).
    fn push(&mut self, span: Span) {
        if self.spans.last_mut().is_some_and(|last| last.join(span)) {
            return;
        }
        if let Some((spans, _)) = &mut self.tally {
            *spans += 1;
            self.spans.clear();
        }
        self.spans.push(span);
    }

    /// The total length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a range of the input, written later straight from it.
    pub(crate) fn input(&mut self, range: std::ops::Range<usize>) {
        self.len += range.len() as u64;
        let mut start = range.start;
        for len in span_lens(range.len() as u64) {
            self.push(Span::Input { start, len });
            start += len as usize;
        }
    }

    /// Appends a slice that borrows from the input.
    fn input_slice(&mut self, bytes: &[u8]) {
        let start = offset_in(self.input, bytes).expect("payload bytes borrow from the input");
        self.input(start..start + bytes.len());
    }

    /// Appends small bytes that the plan made.
    pub(crate) fn owned(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        match &mut self.tally {
            Some((_, owned)) => *owned += bytes.len(),
            None => self.owned.extend_from_slice(bytes),
        }
        for len in span_lens(bytes.len() as u64) {
            self.push(Span::Owned(len));
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
        self.len += n;
        for len in span_lens(n) {
            self.push(Span::Zeros(len));
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
        for chunk in other.chunks() {
            match chunk {
                Chunk::Input(r) => self.input(r.start as usize..r.end as usize),
                Chunk::Bytes(bytes) => self.owned(bytes),
                Chunk::Zeros(n) => self.zeros(n),
            }
        }
    }

    /// A [`Cursor`] at the first byte.
    pub(crate) fn cursor(&self) -> Cursor<'_, 'a> {
        Cursor {
            output: self,
            span: 0,
            passed: 0,
            owned: 0,
        }
    }

    /// The output as [`Chunk`]s, in order.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = Chunk<'_>> + '_ {
        let mut cursor = self.cursor();
        std::iter::from_fn(move || cursor.next())
    }

    /// Writes every byte, in order.
    pub(crate) fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        for chunk in self.chunks() {
            match chunk {
                Chunk::Input(r) => out.write_all(&self.input[r.start as usize..r.end as usize])?,
                Chunk::Bytes(bytes) => out.write_all(bytes)?,
                Chunk::Zeros(n) => {
                    let mut left = n;
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

/// The output's chunks in order, as [`Output::chunks`] gives them, but
/// able to skip any number of bytes without handing them out: a walk that
/// needs a few stretches of a long output (`optimize`'s samples) passes
/// the rest a span at a time.
pub(crate) struct Cursor<'o, 'a> {
    output: &'o Output<'a>,
    /// The current span.
    span: usize,
    /// Bytes of it already handed out or skipped.
    passed: u64,
    /// Where its owned bytes start in `Output::owned`.
    owned: usize,
}

impl<'o> Cursor<'o, '_> {
    /// The rest of the current span (its owned bytes first, for an
    /// `OwnedInput`), or `None` at the end.
    pub(crate) fn next(&mut self) -> Option<Chunk<'o>> {
        let span = *self.output.spans.get(self.span)?;
        let passed = self.passed as usize;
        let owned = |len: usize| {
            let at = self.owned + passed;
            Chunk::Bytes(&self.output.owned[at..self.owned + len])
        };
        let input = |start: usize, len: u32, from: usize| {
            Chunk::Input((start + from) as u64..start as u64 + u64::from(len))
        };
        let chunk = match span {
            Span::Input { start, len } => input(start, len, passed),
            Span::Owned(len) => owned(len as usize),
            Span::Zeros(len) => Chunk::Zeros(u64::from(len) - self.passed),
            Span::OwnedInput { owned: n, .. } if passed < usize::from(n) => {
                let chunk = owned(n.into());
                self.passed = n.into();
                return Some(chunk);
            }
            Span::OwnedInput {
                owned: n,
                start,
                len,
            } => input(start, len, passed - usize::from(n)),
        };
        self.next_span();
        Some(chunk)
    }

    /// Passes the next `n` bytes (at most what is left).
    pub(crate) fn skip(&mut self, mut n: u64) {
        while n > 0 {
            let Some(&span) = self.output.spans.get(self.span) else {
                return;
            };
            let left = span_total(span) - self.passed;
            if n < left {
                self.passed += n;
                return;
            }
            n -= left;
            self.next_span();
        }
    }

    fn next_span(&mut self) {
        self.owned += match self.output.spans[self.span] {
            Span::Owned(len) => len as usize,
            Span::OwnedInput { owned, .. } => owned.into(),
            Span::Input { .. } | Span::Zeros(_) => 0,
        };
        self.span += 1;
        self.passed = 0;
    }
}

/// The bytes a span stands for (an `OwnedInput`'s owned bytes and input).
fn span_total(span: Span) -> u64 {
    match span {
        Span::OwnedInput { owned, len, .. } => u64::from(owned) + u64::from(len),
        span => span.len().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Neighbours join into one chunk; a run too long for one span takes
    /// two; a tally counts the same spans.
    #[test]
    fn spans_join_and_split_without_changing_the_bytes() {
        let input = [1, 2, 3, 4, 5, 6];
        let fill = |out: &mut Output<'_>| {
            out.input(0..2);
            out.input(2..4);
            out.owned(&[9]);
            out.uleb(300);
            out.zeros(2);
            out.zeros(u64::from(u32::MAX));
            out.input(5..6);
        };
        let mut out = Output::new(&input);
        fill(&mut out);
        let chunks: Vec<_> = out.chunks().collect();
        assert_eq!(
            chunks,
            [
                Chunk::Input(0..4),
                Chunk::Bytes(&[9, 0xac, 0x02]),
                Chunk::Zeros(2),
                Chunk::Zeros(u64::from(u32::MAX)),
                Chunk::Input(5..6),
            ]
        );
        assert_eq!(out.len(), chunks.iter().map(Chunk::len).sum::<u64>());
        let mut tally = Output::tally(&input);
        fill(&mut tally);
        assert_eq!(tally.tallied(), (chunks.len(), 3));
    }

    /// A cursor hands out the chunks `chunks` does, and after skipping any
    /// number of bytes from any point, the bytes that follow them.
    #[test]
    fn a_cursor_skips_to_the_same_bytes_from_anywhere() {
        let input: Vec<u8> = (1..=40).collect();
        let mut out = Output::new(&input);
        out.input(0..3);
        out.owned(&[100, 101]);
        out.input(10..14);
        out.zeros(5);
        out.owned(&[102; 3]);
        out.input(20..22);
        out.input(30..31);
        out.owned(&[103; 300]);
        out.zeros(2);
        out.input(35..40);
        let bytes = |chunks: &mut dyn Iterator<Item = Chunk<'_>>| {
            let mut bytes = Vec::new();
            for chunk in chunks {
                match chunk {
                    Chunk::Input(r) => {
                        bytes.extend_from_slice(&input[r.start as usize..r.end as usize])
                    }
                    Chunk::Bytes(b) => bytes.extend_from_slice(b),
                    Chunk::Zeros(n) => bytes.resize(bytes.len() + n as usize, 0),
                }
            }
            bytes
        };
        let mut cursor = out.cursor();
        let all: Vec<Chunk<'_>> = std::iter::from_fn(|| cursor.next()).collect();
        assert_eq!(all, out.chunks().collect::<Vec<_>>());
        let whole = bytes(&mut out.chunks());
        assert_eq!(whole.len() as u64, out.len());
        // Read `read` chunks, skip `skip` bytes, read the rest.
        for read in 0..all.len() {
            let before: u64 = all[..read].iter().map(Chunk::len).sum();
            for skip in 0..=out.len() - before {
                let mut cursor = out.cursor();
                for _ in 0..read {
                    cursor.next();
                }
                cursor.skip(skip);
                let rest = bytes(&mut std::iter::from_fn(|| cursor.next()));
                assert_eq!(
                    rest,
                    whole[(before + skip) as usize..],
                    "{read} chunks, {skip} skipped"
                );
            }
        }
    }

    /// A few owned bytes and the input after them (a segment's header and
    /// payload) are one span and two chunks, and input after that joins.
    #[test]
    fn a_header_and_its_payload_are_one_span() {
        let input = [1, 2, 3, 4];
        let fill = |out: &mut Output<'_>| {
            out.owned(&[7, 8]);
            out.input(0..2);
            out.input(2..3);
            out.owned(&[0; 300]);
            out.input(3..4);
        };
        let mut out = Output::new(&input);
        fill(&mut out);
        let chunks: Vec<_> = out.chunks().collect();
        assert_eq!(
            chunks,
            [
                Chunk::Bytes(&[7, 8]),
                Chunk::Input(0..3),
                Chunk::Bytes(&[0; 300]),
                Chunk::Input(3..4),
            ]
        );
        assert_eq!(out.spans.len(), 3);
        let mut tally = Output::tally(&input);
        fill(&mut tally);
        assert_eq!(tally.tallied(), (3, 302));
    }
}
