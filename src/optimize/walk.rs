//! A walk over a plan's output that finds its data segments.

use crate::segment::{read_leb, read_uleb};
use crate::{Chunk, Plan};

/// The output of `plan` as byte slices (zeros from a shared buffer).
pub(super) fn bytes_of<'p>(plan: &'p Plan<'_>) -> impl Iterator<Item = &'p [u8]> + 'p {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let input = plan.input();
    plan.chunks().flat_map(move |chunk| {
        let (slice, zeros): (&[u8], u64) = match chunk {
            Chunk::Input(r) => (&input[r.start as usize..r.end as usize], 0),
            Chunk::Bytes(b) => (b, 0),
            Chunk::Zeros(n) => (&[], n),
        };
        let full = zeros / ZEROS.len() as u64;
        let rest = (zeros % ZEROS.len() as u64) as usize;
        std::iter::once(slice)
            .chain(std::iter::repeat_n(&ZEROS[..], full as usize))
            .chain(std::iter::once(&ZEROS[..rest]))
            .filter(|s| !s.is_empty())
    })
}

/// A stretch of a plan's output as the walk sees it: bytes, or a run of
/// zeros, counted and never made (a closed gap can be megabytes, and a
/// walk passes tens of thousands of them).
#[derive(Debug, Clone, Copy)]
pub(super) enum Piece<'b> {
    Bytes(&'b [u8]),
    Zeros(u64),
}

impl<'b> Piece<'b> {
    pub(super) fn len(self) -> u64 {
        match self {
            Piece::Bytes(b) => b.len() as u64,
            Piece::Zeros(n) => n,
        }
    }

    /// Its first byte (it is not empty).
    fn first(self) -> u8 {
        match self {
            Piece::Bytes(b) => b[0],
            Piece::Zeros(_) => 0,
        }
    }

    /// Its first `n` bytes (at most its length), and the rest.
    fn split_at(self, n: u64) -> (Piece<'b>, Piece<'b>) {
        match self {
            Piece::Bytes(b) => {
                let (head, tail) = b.split_at(n as usize);
                (Piece::Bytes(head), Piece::Bytes(tail))
            }
            Piece::Zeros(z) => (Piece::Zeros(n), Piece::Zeros(z - n)),
        }
    }

    /// Appends its bytes `from..to` to `out`; returns those it read (none
    /// of zeros).
    pub(super) fn extend(self, out: &mut Vec<u8>, from: u64, to: u64) -> &'b [u8] {
        match self {
            Piece::Bytes(b) => {
                let bytes = &b[from as usize..to as usize];
                out.extend_from_slice(bytes);
                bytes
            }
            Piece::Zeros(_) => {
                out.resize(out.len() + (to - from) as usize, 0);
                &[]
            }
        }
    }
}

/// What [`for_each_segment`] hands out.
pub(super) enum Item<'b> {
    /// An active segment with a constant offset: where its payload goes
    /// (memory, offset), its header (flags, memory, offset expression,
    /// length), and its payload's length.
    Header(u32, u64, &'b [u8], u64),
    /// Payload of such a segment, and where its first byte goes.
    Payload(u32, u64, Piece<'b>),
}

/// Calls `f` with every active segment with a constant offset in the data
/// sections of `plan`'s output, in order: its header, then its payload,
/// piece by piece. After each item, `f` says how many of the segment's
/// payload bytes that follow it need not be handed out (`u64::MAX`: none
/// of them); the walk passes those without reading them, so a walk that
/// needs a few stretches of a long output costs what it needs.
pub(super) fn for_each_segment(plan: &Plan<'_>, mut f: impl FnMut(Item<'_>) -> u64) {
    let input = plan.input();
    let mut walker = DataSections::default();
    let mut segments = Segments::default();
    let mut cursor = plan.cursor();
    while let Some(chunk) = cursor.next() {
        let piece = match chunk {
            Chunk::Input(r) => Piece::Bytes(&input[r.start as usize..r.end as usize]),
            Chunk::Bytes(b) => Piece::Bytes(b),
            Chunk::Zeros(n) => Piece::Zeros(n),
        };
        walker.feed(piece, &mut |body| match body {
            None => segments = Segments::default(),
            Some(piece) => segments.feed(piece, &mut f),
        });
        // A payload's bytes to pass lie in the section's body, past this
        // chunk: taken from all three at once.
        let skip = segments.skippable();
        if skip > 0 {
            cursor.skip(skip);
            walker.skip_body(skip);
            segments.skipped(skip);
        }
    }
}

/// A streaming reader of a data section's body: the count, then each
/// segment's header and payload.
#[derive(Default)]
struct Segments {
    /// Whether the count has been read.
    counted: bool,
    /// The header read so far.
    header: Vec<u8>,
    /// Payload bytes left of the current segment, and where the next goes
    /// (`None`: passive, or an offset that is not one constant).
    payload: Option<(u64, Option<(u32, u64)>)>,
    /// How many of the payload bytes to come are not handed out.
    skip: u64,
}

impl Segments {
    fn feed(&mut self, mut piece: Piece<'_>, f: &mut impl FnMut(Item<'_>) -> u64) {
        while piece.len() > 0 {
            if let Some((left, at)) = self.payload {
                let n = left.min(piece.len());
                let (payload, rest) = piece.split_at(n);
                let passed = self.skip.min(n);
                self.skip -= passed;
                if let Some((memory, offset)) = at
                    && passed < n
                {
                    let payload = payload.split_at(passed).1;
                    self.skip = f(Item::Payload(memory, offset + passed, payload));
                }
                self.advance(n);
                piece = rest;
                continue;
            }
            self.header.push(piece.first());
            piece = piece.split_at(1).1;
            if !self.counted {
                if self.header.last().is_some_and(|b| b & 0x80 == 0) {
                    self.counted = true;
                    self.header.clear();
                }
                continue;
            }
            if let Some((len, at)) = parse_header(&self.header) {
                // Passive segments' payloads are never handed out.
                self.skip = match at {
                    Some((memory, offset)) => f(Item::Header(memory, offset, &self.header, len)),
                    None => u64::MAX,
                };
                self.header.clear();
                self.payload = (len > 0).then_some((len, at));
            }
        }
    }

    /// Payload bytes the walk may pass unread: those not handed out, up to
    /// the segment's end.
    fn skippable(&self) -> u64 {
        self.payload.map_or(0, |(left, _)| left.min(self.skip))
    }

    /// `n` bytes of the payload passed (at most [`Segments::skippable`]).
    fn skipped(&mut self, n: u64) {
        self.skip -= n;
        self.advance(n);
    }

    /// `n` more bytes of the current payload read or passed.
    fn advance(&mut self, n: u64) {
        let Some((left, at)) = self.payload else {
            return;
        };
        self.payload = (left > n).then(|| (left - n, at.map(|(m, o)| (m, o + n))));
    }
}

/// A whole segment header: its payload length and, for an active segment
/// whose offset is one `i32.const` or `i64.const`, (memory, offset). `None`
/// while `h` is not a whole header yet.
fn parse_header(h: &[u8]) -> Option<(u64, Option<(u32, u64)>)> {
    let mut at = 0;
    let flags = read_uleb(h, &mut at)?;
    let memory = match flags {
        0 => Some(0),
        1 => None,
        2 => Some(read_uleb(h, &mut at)? as u32),
        // Other flags are element-style; not in a valid data section.
        _ => return Some((0, None)),
    };
    let mut offset = None;
    if memory.is_some() {
        // The expression: constants, global.get, arithmetic, then `end`.
        let mut ops = 0;
        loop {
            let op = *h.get(at)?;
            at += 1;
            match op {
                0x0b => break,
                0x41 => offset = Some(sleb(h, &mut at)? as i32 as u32 as u64),
                0x42 => offset = Some(sleb(h, &mut at)? as u64),
                0x23 => {
                    read_uleb(h, &mut at)?;
                }
                _ => {}
            }
            ops += 1;
        }
        if ops != 1 {
            offset = None;
        }
    }
    let len = read_uleb(h, &mut at)?;
    if at != h.len() {
        return None;
    }
    Some((len, memory.zip(offset)))
}

fn sleb(h: &[u8], at: &mut usize) -> Option<i64> {
    let (value, shift) = read_leb(h, at)?;
    // The last byte's bit 6, the highest bit read, is the sign.
    let negative = shift < 64 && (value >> (shift - 1)) & 1 != 0;
    Some(if negative {
        value | (u64::MAX << shift)
    } else {
        value
    } as i64)
}

/// A streaming walk over a binary's sections that hands out the bodies of
/// core modules' data sections (`None` where one starts), recursing into a component's nested core
/// modules and components (sections 1 and 4). The binary is valid (it is a
/// plan's output), so the walk trusts its lengths.
#[derive(Default)]
struct DataSections {
    /// Bytes left in each open binary, outermost first; the top level has
    /// no end.
    open: Vec<Frame>,
    state: State,
}

#[derive(Clone, Copy)]
struct Frame {
    left: u64,
    component: bool,
}

#[derive(Default, Clone, Copy)]
enum State {
    /// At the 8-byte preamble of a binary (`seen` bytes of it so far; the
    /// layer byte, 5th and 6th, tells a component).
    #[default]
    Preamble,
    PreambleAt(u8, bool),
    /// At a section id.
    Id,
    /// In a section's size LEB.
    Size {
        id: u8,
        value: u64,
        shift: u32,
    },
    /// In a section's body that is not walked into: `data` says whether it
    /// is handed out.
    Body {
        left: u64,
        data: bool,
    },
}

impl State {
    /// A body of `left` bytes (handed out when `data`), `n` of them read
    /// or passed (at most `left`).
    fn body_after(left: u64, data: bool, n: u64) -> State {
        if n == left {
            State::Id
        } else {
            State::Body {
                left: left - n,
                data,
            }
        }
    }
}

impl DataSections {
    fn feed<'b>(&mut self, mut piece: Piece<'b>, f: &mut impl FnMut(Option<Piece<'b>>)) {
        while piece.len() > 0 {
            let taken = match self.state {
                State::Body { left, data } => {
                    let n = left.min(piece.len());
                    if data {
                        f(Some(piece.split_at(n).0));
                    }
                    self.state = State::body_after(left, data, n);
                    n
                }
                state => {
                    if self.byte(state, piece.first()) {
                        f(None);
                    }
                    1
                }
            };
            piece = piece.split_at(taken).1;
            self.consumed(taken);
        }
    }

    /// Takes byte `b` in `state`; whether a data section's body starts.
    fn byte(&mut self, state: State, b: u8) -> bool {
        let in_component = self.open.last().is_some_and(|fr| fr.component);
        let mut data_starts = false;
        self.state = match state {
            State::Preamble => State::PreambleAt(1, false),
            State::PreambleAt(seen, component) => {
                // Bytes 6 and 7 (0-based) are the layer: 1 for a component.
                let component = component || (seen == 6 && b == 1);
                if seen == 7 {
                    if let Some(top) = self.open.last_mut() {
                        top.component = component;
                    } else {
                        self.open.push(Frame {
                            left: u64::MAX,
                            component,
                        });
                    }
                    State::Id
                } else {
                    State::PreambleAt(seen + 1, component)
                }
            }
            State::Id => State::Size {
                id: b,
                value: 0,
                shift: 0,
            },
            State::Size { id, value, shift } => {
                let value = value | (u64::from(b & 0x7f) << shift);
                if b & 0x80 != 0 {
                    State::Size {
                        id,
                        value,
                        shift: shift + 7,
                    }
                } else if value == 0 {
                    State::Id
                } else if in_component && (id == 1 || id == 4) {
                    // A nested binary: its own preamble and sections. The
                    // frame's length counts from after this size byte.
                    self.open.push(Frame {
                        left: value + 1,
                        component: false,
                    });
                    State::Preamble
                } else {
                    let data = !in_component && id == 11;
                    data_starts = data;
                    State::Body { left: value, data }
                }
            }
            State::Body { .. } => unreachable!("bodies are taken whole"),
        };
        data_starts
    }

    /// Passes `n` bytes of the data section's body being handed out (at
    /// most what is left of it).
    fn skip_body(&mut self, n: u64) {
        if let State::Body { left, data } = self.state {
            debug_assert!(data && n <= left);
            self.state = State::body_after(left, data, n);
            self.consumed(n);
        }
    }

    /// Counts `n` bytes against every open nested binary, closing those
    /// that end.
    fn consumed(&mut self, n: u64) {
        for frame in &mut self.open {
            frame.left = frame.left.saturating_sub(n);
        }
        while self.open.len() > 1 && self.open.last().is_some_and(|fr| fr.left == 0) {
            self.open.pop();
            self.state = State::Id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{read_uleb, sleb};

    #[test]
    fn lebs_read_as_the_encoder_writes_them() {
        let mut bytes = Vec::new();
        for v in [
            0i64,
            1,
            -1,
            63,
            64,
            -64,
            -65,
            127,
            -128,
            i32::MIN.into(),
            i64::MIN,
            i64::MAX,
        ] {
            bytes.clear();
            wasm_encoder::Encode::encode(&v, &mut bytes);
            assert_eq!(sleb(&bytes, &mut 0), Some(v), "{v} as {bytes:02x?}");
        }
        for v in [0u64, 1, 127, 128, 1 << 32, u64::MAX] {
            bytes.clear();
            wasm_encoder::Encode::encode(&v, &mut bytes);
            assert_eq!(read_uleb(&bytes, &mut 0), Some(v), "{v} as {bytes:02x?}");
        }
        // Cut short: not a number yet.
        assert_eq!(read_uleb(&[0x80], &mut 0), None);
    }
}
