//! The smallest file *after* compression (`--optimize-for`, SPEC §4).
//!
//! Why the raw optimum is not the compressed one: a run of zeros costs
//! almost nothing once compressed (deflate codes 258 zeros in a few bits,
//! zstd and brotli far longer runs), while a segment header (offset and
//! length LEBs, all but unique) costs nearly its full 5 to 10 bytes. So the
//! compressed optimum closes far more gaps than the raw one.
//!
//! The layouts weighed are the planner's own at lower caps: over the cap it
//! closes the cheapest gaps first, and a gap's raw cost is its length, so a
//! cap is the same as "close every gap shorter than T" for some T, with the
//! planner's exact costs and tie-breaks. The steps:
//!
//! 1. Plan at the user's cap (the raw plan, "default"). Its segment count
//!    `n` is where the candidates start.
//! 2. Candidates: caps `n`, `n/4`, `n/16`, ... down to 1, each planned with
//!    the raw-growth check off (a layout may be larger raw), skipping those
//!    whose output would be more than [`MAX_GROWTH`] times the input (and
//!    over 8 MiB); then
//!    the caps at half and twice the best one, then at 1/1.41 and 1.41
//!    times the best of those.
//! 3. Each candidate is ranked by the real codec on its data sections only
//!    (every other byte is the same in all of them): whole when they all fit
//!    in the ranking budget (the input's length in bytes over all
//!    candidates), else [`WINDOWS`] windows at the same relative places of
//!    each candidate's data sections, scaled to its length.
//! 4. The best ranked layout and the input are each compressed whole; the
//!    layout is kept only when strictly smaller, else the output is the
//!    input (never larger compressed than the input).
//!
//! Cost: one compression of the input, one of the output (at most
//! [`MAX_GROWTH`] times longer), and the ranking, at most the input's length:
//! about three compressions of the input, whatever the number of candidates.

use crate::MaxSegments;
use crate::compress::Compression;
use crate::error::Result;
use crate::{Chunk, PackOptions, Plan};

/// A candidate whose output is more than this many times the input's length
/// is not weighed: its compression alone would blow the budget of about
/// three compressions of the input.
pub const MAX_GROWTH: u64 = 2;

/// Outputs up to this length are weighed whatever the input's: compressing
/// 8 MiB, mostly zeros, takes under a second at every codec's usual level.
const GROWTH_FREE: u64 = 8 << 20;

/// Candidates weighed after the grid: two around the best cap, twice.
const REFINEMENTS: u64 = 4;

/// Windows sampled from each candidate's data sections when they do not all
/// fit in the ranking budget.
pub const WINDOWS: u64 = 16;

/// The least a candidate's sample may hold. Data sections up to this size
/// are weighed whole (exact ranking); shorter windows are noisy, a codec's
/// own overhead deciding between close layouts. Past the budget for small
/// inputs only: 256 KiB takes about 0.1 s at gzip 9 and zstd 19, 0.7 s at
/// brotli 11.
const MIN_SHARE: u64 = 256 << 10;

/// A compressed-size function: given the total length and the bytes, one
/// slice after the other, their length once compressed.
pub type CompressedLen<'f> =
    &'f (dyn Fn(u64, &mut dyn Iterator<Item = &[u8]>) -> Result<u64> + Sync);

/// The layout with the smallest compressed file, and what it was weighed
/// against.
#[derive(Debug)]
pub struct Optimized<'a> {
    /// The plan to write: the chosen layout, or the input itself.
    pub plan: Plan<'a>,
    /// The whole input, compressed.
    pub compressed_before: u64,
    /// The whole output, compressed (at most `compressed_before`).
    pub compressed_after: u64,
    /// The cap of the chosen layout; `None` when the input is kept.
    pub max_segments: Option<u32>,
    /// Every candidate weighed: (cap, output length, compressed length of
    /// its sample), in the order weighed.
    pub candidates: Vec<(u32, u64, u64)>,
}

/// Plans `input` for the smallest file once compressed with `compression`
/// (features `gzip`, `brotli`, `zstd`). See [`optimize_with`] for any other
/// compressed-size function.
///
/// # Errors
/// As [`Plan::new`]; [`ErrorKind::InvalidCompression`](crate::ErrorKind::InvalidCompression)
/// when this build has no such codec.
///
/// ```
/// # #[cfg(feature = "gzip")] {
/// use segpack::{Codec, Compression};
/// // Forty 4-byte objects 40 bytes apart: packing for the raw size keeps
/// // them apart, gzip prefers one segment with the zeros in it.
/// let mut data = String::new();
/// for i in 0..40 {
///     data.push_str(&format!("(data (i32.const {}) \"obj{}\")", i * 44, i % 10));
/// }
/// let input = wat::parse_str(format!("(module (memory 1) {data})")).unwrap();
/// let optimized = segpack::optimize(&input, &Default::default(), Compression::new(Codec::Gzip))?;
/// assert!(optimized.compressed_after <= optimized.compressed_before);
/// let mut output = Vec::new();
/// optimized.plan.write_to(&mut output, None).unwrap();
/// wasmparser::validate(&output).unwrap();
/// # }
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn optimize<'a>(
    input: &'a [u8],
    options: &PackOptions,
    compression: Compression,
) -> Result<Optimized<'a>> {
    // Fail on a missing codec before any planning.
    compression.compressed_len(0, &mut std::iter::empty())?;
    optimize_with(input, options, &|len, bytes| {
        compression.compressed_len(len, bytes)
    })
}

/// [`optimize`] with the producer's own compressed-size function, e.g. its
/// own codec, or a model of one.
///
/// # Errors
/// As [`Plan::new`], and whatever `compressed_len` returns.
///
/// ```
/// // A toy "codec" that counts non-zero bytes and zero runs: one segment wins.
/// let runs = |_len: u64, bytes: &mut dyn Iterator<Item = &[u8]>| -> segpack::Result<u64> {
///     let (mut n, mut last) = (0, 1u8);
///     for b in bytes.flatten() {
///         n += u64::from(*b != 0 || last != 0);
///         last = *b;
///     }
///     Ok(n)
/// };
/// let input = wat::parse_str(r#"(module (memory 1)
///     (data (i32.const 0) "a") (data (i32.const 100) "b") (data (i32.const 200) "c"))"#).unwrap();
/// let optimized = segpack::optimize_with(&input, &Default::default(), &runs)?;
/// assert_eq!(optimized.max_segments, Some(1));
/// assert_eq!(optimized.plan.report().segments_after(), 1);
/// assert!(optimized.compressed_after < optimized.compressed_before);
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn optimize_with<'a>(
    input: &'a [u8],
    options: &PackOptions,
    compressed_len: CompressedLen<'_>,
) -> Result<Optimized<'a>> {
    let raw = Plan::new(input, options)?;
    let n = u32::try_from(raw.report().segments_after())
        .unwrap_or(u32::MAX)
        .clamp(1, options.max_segments.get());
    let budget = input.len() as u64;
    let plan_at = |cap: u32| {
        Plan::build(
            input,
            // `cap` is between 1 and the user's cap: a valid cap.
            &options
                .clone()
                .with_max_segments(MaxSegments::new(cap).unwrap_or_default()),
            &|_| {},
            true,
        )
    };

    // Step 2: the candidates' plans, kept only long enough to measure.
    let mut caps = Vec::new();
    let mut cap = n;
    loop {
        caps.push(cap);
        if cap == 1 {
            break;
        }
        cap = (cap / 4).max(1);
    }
    let mut candidates: Vec<(u32, u64, u64)> = Vec::new();
    let mut best: Option<(u64, u32, Plan<'a>)> = None;
    // Each candidate's share of the ranking budget: fixed up front for the
    // grid, so that a larger set cannot starve the later ones.
    let share = (budget / (caps.len() as u64 + REFINEMENTS)).max(MIN_SHARE);
    let windows = Windows::new(&raw, share);
    let weigh = |cap: u32,
                 candidates: &mut Vec<(u32, u64, u64)>,
                 best: &mut Option<(u64, u32, Plan<'a>)>|
     -> Result<bool> {
        if candidates.iter().any(|c| c.0 == cap) {
            return Ok(true);
        }
        let plan = plan_at(cap)?;
        if plan.len() > MAX_GROWTH.saturating_mul(budget).max(GROWTH_FREE) {
            return Ok(false);
        }
        let sample = windows.sample(&plan);
        let estimate = compressed_len(sample.len() as u64, &mut std::iter::once(&sample[..]))?;
        candidates.push((cap, plan.len(), estimate));
        // Ties go to the higher cap (fewer raw bytes), weighed first.
        if best.as_ref().is_none_or(|b| estimate < b.0) {
            *best = Some((estimate, cap, plan));
        }
        Ok(true)
    };
    for &cap in &caps {
        if !weigh(cap, &mut candidates, &mut best)? {
            // Lower caps only grow more.
            break;
        }
    }
    // Step 2's refinement: half and twice the best cap, then the same
    // again with a factor of 1.41 around the best of those.
    for factor in [2.0f64, std::f64::consts::SQRT_2] {
        let Some(best_cap) = best.as_ref().map(|b| b.1) else {
            break;
        };
        let up = ((best_cap as f64 * factor).round() as u32).min(n);
        let down = ((best_cap as f64 / factor).round() as u32).max(1);
        for cap in [up, down] {
            weigh(cap, &mut candidates, &mut best)?;
        }
    }

    // Step 4: the whole files.
    let compressed_before = compressed_len(input.len() as u64, &mut std::iter::once(input))?;
    if let Some((_, cap, plan)) = best
        && plan.report().changed()
    {
        let after = compressed_len(plan.len(), &mut bytes_of(&plan))?;
        if after < compressed_before {
            return Ok(Optimized {
                plan,
                compressed_before,
                compressed_after: after,
                max_segments: Some(cap),
                candidates,
            });
        }
    }
    Ok(Optimized {
        plan: Plan::keep_input(input, raw.report().clone()),
        compressed_before,
        compressed_after: compressed_before,
        max_segments: None,
        candidates,
    })
}

/// Where the ranking samples: windows of the memories' address space, the
/// same for every candidate, so that two candidates differ in the sample
/// exactly as they differ there (headers, and zeros in or out of segments).
struct Windows {
    /// Per memory index: the lowest and highest address a segment covers
    /// in the raw plan (empty for a memory without).
    spans: Vec<(u64, u64)>,
    /// The windows, on the line of all spans one after the other:
    /// (start, end), sorted.
    windows: Vec<(u64, u64)>,
}

impl Windows {
    /// Windows over `plan`'s active segments that hold about `share` of its
    /// data section bytes in all (every byte when they fit).
    fn new(plan: &Plan<'_>, share: u64) -> Windows {
        let mut spans: Vec<(u64, u64)> = Vec::new();
        let mut payload = 0u64;
        for_each_segment(plan, &mut |item| {
            if let Item::Payload(memory, offset, bytes) = item {
                let memory = memory as usize;
                if spans.len() <= memory {
                    spans.resize(memory + 1, (u64::MAX, 0));
                }
                let span = &mut spans[memory];
                span.0 = span.0.min(offset);
                span.1 = span.1.max(offset + bytes.len() as u64);
                payload += bytes.len() as u64;
            }
        });
        for span in &mut spans {
            if span.0 > span.1 {
                *span = (0, 0);
            }
        }
        let line: u64 = spans.iter().map(|s| s.1 - s.0).sum();
        let windows = if payload <= share {
            vec![(0, line)]
        } else {
            // `share / payload` of the line, in WINDOWS windows spread evenly.
            let each = ((line as u128 * share as u128 / payload as u128) as u64 / WINDOWS).max(1);
            (0..WINDOWS)
                .map(|i| {
                    let start = (i as u128 * line as u128 / WINDOWS as u128) as u64;
                    (start, (start + each).min(line))
                })
                .collect()
        };
        Windows { spans, windows }
    }

    /// The position of `(memory, offset)` on the line, if in a span.
    fn position(&self, memory: u32, offset: u64) -> Option<u64> {
        let memory = memory as usize;
        let span = *self.spans.get(memory)?;
        if offset < span.0 || offset >= span.1 {
            return None;
        }
        let before: u64 = self.spans[..memory].iter().map(|s| s.1 - s.0).sum();
        Some(before + offset - span.0)
    }

    /// `plan`'s data sections inside the windows: the header of each active
    /// segment that starts in one, and its payload bytes that lie in one.
    fn sample(&self, plan: &Plan<'_>) -> Vec<u8> {
        let mut sample = Vec::new();
        let inside = |p: u64| self.windows.iter().any(|w| w.0 <= p && p < w.1);
        for_each_segment(plan, &mut |item| match item {
            Item::Header(memory, offset, header) => {
                if self.position(memory, offset).is_some_and(inside) {
                    sample.extend_from_slice(header);
                }
            }
            Item::Payload(memory, offset, bytes) => {
                // Positions are linear within a memory's span.
                let Some(first) = self.position(memory, offset) else {
                    return;
                };
                let last = first + bytes.len() as u64;
                for w in &self.windows {
                    let (lo, hi) = (w.0.max(first), w.1.min(last));
                    if lo < hi {
                        sample.extend_from_slice(
                            &bytes[(lo - first) as usize..(hi - first) as usize],
                        );
                    }
                }
            }
        });
        sample
    }
}

/// The output of `plan` as byte slices (zeros from a shared buffer).
fn bytes_of<'p>(plan: &'p Plan<'_>) -> impl Iterator<Item = &'p [u8]> + 'p {
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

/// What [`for_each_segment`] hands out.
enum Item<'b> {
    /// An active segment with a constant offset: its header (flags, memory,
    /// offset expression, length).
    Header(u32, u64, &'b [u8]),
    /// Payload bytes of such a segment, and where the first one goes.
    Payload(u32, u64, &'b [u8]),
}

/// Calls `f` with every active segment with a constant offset in the data
/// sections of `plan`'s output, in order.
fn for_each_segment(plan: &Plan<'_>, f: &mut dyn FnMut(Item<'_>)) {
    let mut walker = DataSections::default();
    let mut segments = Segments::default();
    for slice in bytes_of(plan) {
        walker.feed(slice, &mut |body| match body {
            None => segments = Segments::default(),
            Some(bytes) => segments.feed(bytes, f),
        });
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
}

impl Segments {
    fn feed(&mut self, mut bytes: &[u8], f: &mut dyn FnMut(Item<'_>)) {
        while !bytes.is_empty() {
            if let Some((left, at)) = self.payload {
                let n = left.min(bytes.len() as u64) as usize;
                if let Some((memory, offset)) = at {
                    f(Item::Payload(memory, offset, &bytes[..n]));
                }
                self.payload = (left > n as u64)
                    .then(|| (left - n as u64, at.map(|(m, o)| (m, o + n as u64))));
                bytes = &bytes[n..];
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            if !self.counted {
                if self.header.last().is_some_and(|b| b & 0x80 == 0) {
                    self.counted = true;
                    self.header.clear();
                }
                continue;
            }
            if let Some((len, at)) = parse_header(&self.header) {
                if let Some((memory, offset)) = at {
                    f(Item::Header(memory, offset, &self.header));
                }
                self.header.clear();
                self.payload = (len > 0).then_some((len, at));
            }
        }
    }
}

/// A whole segment header: its payload length and, for an active segment
/// whose offset is one `i32.const` or `i64.const`, (memory, offset). `None`
/// while `h` is not a whole header yet.
fn parse_header(h: &[u8]) -> Option<(u64, Option<(u32, u64)>)> {
    let mut at = 0;
    let flags = uleb(h, &mut at)?;
    let memory = match flags {
        0 => Some(0),
        1 => None,
        2 => Some(uleb(h, &mut at)? as u32),
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
                    uleb(h, &mut at)?;
                }
                _ => {}
            }
            ops += 1;
        }
        if ops != 1 {
            offset = None;
        }
    }
    let len = uleb(h, &mut at)?;
    if at != h.len() {
        return None;
    }
    Some((len, memory.zip(offset)))
}

fn uleb(h: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let b = *h.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        shift += 7;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
}

fn sleb(h: &[u8], at: &mut usize) -> Option<i64> {
    let mut value = 0i64;
    let mut shift = 0;
    loop {
        let b = *h.get(*at)?;
        *at += 1;
        value |= i64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        shift += 7;
        if b & 0x80 == 0 {
            if shift < 64 && b & 0x40 != 0 {
                value |= -1i64 << shift;
            }
            return Some(value);
        }
    }
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

impl DataSections {
    fn feed(&mut self, mut bytes: &[u8], f: &mut dyn FnMut(Option<&[u8]>)) {
        while !bytes.is_empty() {
            let taken = match self.state {
                State::Body { left, data } => {
                    let n = left.min(bytes.len() as u64) as usize;
                    if data {
                        f(Some(&bytes[..n]));
                    }
                    self.state = if n as u64 == left {
                        State::Id
                    } else {
                        State::Body {
                            left: left - n as u64,
                            data,
                        }
                    };
                    n
                }
                state => {
                    let b = bytes[0];
                    self.byte(state, b, f);
                    1
                }
            };
            bytes = &bytes[taken..];
            self.consumed(taken as u64);
        }
    }

    fn byte(&mut self, state: State, b: u8, f: &mut dyn FnMut(Option<&[u8]>)) {
        let in_component = self.open.last().is_some_and(|fr| fr.component);
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
                    if data {
                        f(None);
                    }
                    State::Body { left: value, data }
                }
            }
            State::Body { .. } => unreachable!("bodies are taken whole"),
        };
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
