//! Finding the non-zero runs of an image, a machine word at a time.
//!
//! A run is a maximal range of non-zero bytes. Zero bytes between runs are
//! what packing removes, so every zero byte must be seen, but no byte is
//! looked at on its own except at the ragged ends of a slice.

/// Bytes looked at together: one 64-bit mask of their zero bytes.
const BLOCK: usize = 64;

/// Bit `i` is set when `block[i]` is zero.
///
/// Safe code, a word at a time (the library has no `unsafe`): eight 64-bit
/// words, each turned into the high bits of its zero bytes and gathered into
/// one byte of the mask. It replaced SSE2 `movemask` intrinsics (issue 24):
/// the full scan costs 4% more CPU, the coarse route none
/// (docs/benchmarks.md).
#[inline(always)]
fn zero_mask(block: &[u8; BLOCK]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Multiplying the 0/1 flags at bits 0, 8, .., 56 by this gathers flag j
    // at bit 56 + j with no carries (each product is a distinct power of 2).
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let (words, _) = block.as_chunks::<8>();
    let mut mask = 0;
    for (k, word) in words.iter().enumerate() {
        let w = u64::from_le_bytes(*word);
        // High bit of each byte set exactly when that byte is zero: adding
        // 0x7f to the low seven bits carries into bit 7 unless they are all
        // zero, and `| w` covers a set bit 7.
        let zero_high = !(((w & LOW7) + LOW7) | w | LOW7);
        mask |= ((zero_high >> 7).wrapping_mul(GATHER) >> 56) << (8 * k);
    }
    mask
}

/// Zero gaps this short never pay for a segment header (at least 5 bytes,
/// and joining grows the length LEB by at most 2), so the scanner joins the
/// runs on either side of them itself: fewer, longer runs to merge.
pub(crate) const JOINED_GAP: usize = 2;

/// Calls `f(start, end)` for each run of `data`, in order. A run starts and
/// ends with a non-zero byte and holds no more than [`JOINED_GAP`] zero bytes
/// in a row; runs are separated by longer stretches of zeros.
///
/// Works on 64-byte blocks. Each block's zero mask is turned into a mask of
/// the zeros that separate runs (those in a stretch of more than
/// [`JOINED_GAP`] zeros; the data is taken to be surrounded by zeros), which
/// needs the next block's mask and the previous block's stretches. Run
/// boundaries are then the changes in that mask, found with
/// `trailing_zeros`: all-zero blocks outside a run and blocks with no
/// separating zeros inside one cost a mask and a few shifts.
#[inline]
pub(crate) fn for_each_run(data: &[u8], mut f: impl FnMut(usize, usize)) {
    const _: () = assert!(
        JOINED_GAP == 2,
        "the stretch test below looks 3 bytes ahead"
    );
    /// Bit `i` is set when bytes `i`, `i + 1` and `i + 2` are all zero,
    /// `next` being the zero mask of the bytes after the block.
    #[inline(always)]
    fn stretch_starts(zeros: u64, next: u64) -> u64 {
        zeros & ((zeros >> 1) | (next << 63)) & ((zeros >> 2) | (next << 62))
    }
    let mut blocks = data.chunks_exact(BLOCK);
    let rest = blocks.remainder();
    let full = data.len() / BLOCK;
    let mask_of = |i: usize, blocks: &mut std::slice::ChunksExact<'_, u8>| -> u64 {
        if i < full {
            zero_mask(blocks.next().unwrap().try_into().unwrap())
        } else if i == full && !rest.is_empty() {
            let mut padded = [0u8; BLOCK];
            padded[..rest.len()].copy_from_slice(rest);
            // Padding bytes are zeros: a run reaching the end stops at `data.len()`.
            zero_mask(&padded)
        } else {
            u64::MAX
        }
    };
    let count = full + usize::from(!rest.is_empty());
    if count == 0 {
        return;
    }
    let mut zeros = mask_of(0, &mut blocks);
    // Stretches starting in the (all-zero) block before the data.
    let mut prev_starts = stretch_starts(u64::MAX, zeros);
    // Whether the last byte of the previous block is in a run.
    let mut prev_in_run = 0u64;
    let mut in_run = false;
    let mut run_start = 0;
    for i in 0..count {
        let next = mask_of(i + 1, &mut blocks);
        let starts = stretch_starts(zeros, next);
        let separating =
            starts | (starts << 1) | (starts << 2) | (prev_starts >> 63) | (prev_starts >> 62);
        let run = !separating;
        let mut edges = run ^ ((run << 1) | prev_in_run);
        let base = i * BLOCK;
        while edges != 0 {
            let at = base + edges.trailing_zeros() as usize;
            edges &= edges - 1;
            if in_run {
                f(run_start, at);
            } else {
                run_start = at;
            }
            in_run = !in_run;
        }
        prev_in_run = run >> 63;
        prev_starts = starts;
        zeros = next;
    }
    if in_run {
        // Only when the last byte is non-zero and the data fills its last block.
        f(run_start, data.len());
    }
}

/// The unit of [`for_each_coarse_run`], tested for all-zero at once: a
/// 16-byte chunk (`u128`) or an 8-byte word (`u64`), read little-endian, so
/// that byte `k` is bits `8k..8k + 8`.
pub(crate) trait Chunk: Copy + Eq + std::ops::BitOr<Output = Self> {
    /// Its length in bytes.
    const BYTES: usize;
    /// All zeros.
    const ZERO: Self;
    /// The shortest stretch of zeros that always holds a whole aligned
    /// chunk of zeros: `2 × BYTES − 1`.
    const MIN_GAP: usize = 2 * Self::BYTES - 1;
    /// The chunk at the start of `bytes` (at least [`BYTES`](Self::BYTES) long).
    fn load(bytes: &[u8]) -> Self;
    fn trailing_zeros(self) -> u32;
    fn leading_zeros(self) -> u32;
}

macro_rules! chunk {
    ($t:ty) => {
        impl Chunk for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            const ZERO: Self = 0;
            #[inline(always)]
            fn load(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes[..Self::BYTES].try_into().unwrap())
            }
            #[inline(always)]
            fn trailing_zeros(self) -> u32 {
                <$t>::trailing_zeros(self)
            }
            #[inline(always)]
            fn leading_zeros(self) -> u32 {
                <$t>::leading_zeros(self)
            }
        }
    };
}
chunk!(u128);
chunk!(u64);

/// Calls `f(start, end)` for each stretch of `data` from a non-zero byte to
/// a non-zero byte that holds no `min_gap` zeros in a row, in order:
/// stretches are separated by `min_gap` or more zeros.
///
/// For `min_gap >= C::MIN_GAP`, that is exact while looking at most bytes
/// only as part of a chunk `C` tested for all-zero: such a stretch of zeros
/// holds a whole chunk of zeros, so only chunks next to an all-zero chunk
/// are looked into, to find where the non-zero bytes start or end. Much
/// cheaper than [`for_each_run`] when only longer gaps matter; 16-byte
/// chunks when the gaps that matter allow, 8-byte words for shorter ones.
///
/// A shorter `min_gap`, down to `C::BYTES - 1`, is exact too: a stretch of
/// zeros that holds no whole chunk lies across the border of two non-zero
/// chunks (inside one there is room for `C::BYTES - 2` at most), so those
/// borders are looked at as well, a few more instructions per chunk.
#[inline]
pub(crate) fn for_each_coarse_run<C: Chunk>(
    data: &[u8],
    min_gap: usize,
    f: impl FnMut(usize, usize),
) {
    debug_assert!(min_gap >= C::BYTES - 1);
    if min_gap >= C::MIN_GAP {
        coarse_runs::<C, false>(data, min_gap, f)
    } else {
        coarse_runs::<C, true>(data, min_gap, f)
    }
}

/// [`for_each_coarse_run`], looking at the borders of non-zero chunks when
/// `BORDERS` (a gap shorter than `C::MIN_GAP` may lie there).
#[inline(always)]
fn coarse_runs<C: Chunk, const BORDERS: bool>(
    data: &[u8],
    min_gap: usize,
    mut f: impl FnMut(usize, usize),
) {
    let width = C::BYTES;
    let full = data.len() / width;
    let chunk = |i: usize| chunk_at::<C>(data, i);
    let mut open: Option<(usize, usize)> = None;
    let mut push = |start: usize, end: usize| match &mut open {
        Some(o) if start - o.1 < min_gap => o.1 = end,
        _ => {
            if let Some((s, e)) = open.replace((start, end)) {
                f(s, e);
            }
        }
    };
    // Whether `min_gap` zeros or more lie across the border of the non-zero
    // chunks `a` and `b` (in that order).
    let splits = |a: C, b: C| {
        BORDERS && (a.leading_zeros() / 8 + b.trailing_zeros() / 8) as usize >= min_gap
    };
    let group = |i: usize| group_at::<C>(data, i);
    let mut i = 0;
    while i < full {
        if i.is_multiple_of(4) && i + 4 <= full && group(i).0 {
            i += 4;
            continue;
        }
        let first = chunk(i);
        if first == C::ZERO {
            i += 1;
            continue;
        }
        // Chunks `i..j` hold non-zero bytes; only their outer edges matter
        // (and, with `BORDERS`, the borders between them).
        let mut start = i * width + first.trailing_zeros() as usize / 8;
        let mut last = first;
        let mut j = i + 1;
        while j < full {
            if j.is_multiple_of(4) && j + 4 <= full {
                let (_, dense, fourth) = group(j);
                if dense && !(BORDERS && group_splits(data, j, last, &splits)) {
                    last = fourth;
                    j += 4;
                    continue;
                }
            }
            let c = chunk(j);
            if c == C::ZERO {
                break;
            }
            if splits(last, c) {
                push(start, j * width - last.leading_zeros() as usize / 8);
                start = j * width + c.trailing_zeros() as usize / 8;
            }
            last = c;
            j += 1;
        }
        push(start, j * width - last.leading_zeros() as usize / 8);
        i = j + 1;
    }
    let rest = &data[full * width..];
    if !rest.is_empty() {
        // (Room for the widest chunk.)
        let mut padded = [0u8; 16];
        padded[..rest.len()].copy_from_slice(rest);
        let c = C::load(&padded);
        if c != C::ZERO {
            let base = full * width;
            push(
                base + c.trailing_zeros() as usize / 8,
                base + width - c.leading_zeros() as usize / 8,
            );
        }
    }
    if let Some((s, e)) = open {
        f(s, e);
    }
}

/// Whether any border of the non-zero chunks `before`, `i`, .., `i + 3`
/// splits a stretch (`splits`).
#[inline(always)]
fn group_splits<C: Chunk>(
    data: &[u8],
    i: usize,
    before: C,
    splits: &impl Fn(C, C) -> bool,
) -> bool {
    let c: [C; 4] = std::array::from_fn(|k| chunk_at(data, i + k));
    splits(before, c[0]) | splits(c[0], c[1]) | splits(c[1], c[2]) | splits(c[2], c[3])
}

/// Chunk `i` of `data`. (Functions, not closures, so that they are inlined
/// into each instantiation: as closures of the generic scan they were not,
/// and the scan at the default cap took 6% more CPU.)
#[inline(always)]
fn chunk_at<C: Chunk>(data: &[u8], i: usize) -> C {
    C::load(&data[i * C::BYTES..])
}

/// Whether chunks `i..i + 4` of `data` are all zero / all hold a non-zero
/// byte, and the fourth: most of the time four chunks are settled at once.
#[inline(always)]
fn group_at<C: Chunk>(data: &[u8], i: usize) -> (bool, bool, C) {
    let c: [C; 4] = std::array::from_fn(|k| chunk_at(data, i + k));
    let zero = (c[0] | c[1] | c[2] | c[3]) == C::ZERO;
    let dense = (c[0] != C::ZERO) & (c[1] != C::ZERO) & (c[2] != C::ZERO) & (c[3] != C::ZERO);
    (zero, dense, c[3])
}

/// A slice of an image with the address of its first byte: what jobs are
/// cut from (a tuple, or the planner's own pieces, which are not copied).
pub(crate) trait Slice<'a>: Sync {
    fn get(&self) -> (u64, &'a [u8]);
}

impl<'a> Slice<'a> for (u64, &'a [u8]) {
    fn get(&self) -> (u64, &'a [u8]) {
        *self
    }
}

/// A unit of scanning work: consecutive slices of one image's pieces, from
/// byte `from.1` of piece `from.0` to byte `to.1` of piece `to.0`
/// (exclusive; `to.0` may be one past the last piece). A position, not a
/// copy: a Go module has a hundred thousand pieces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    from: (usize, usize),
    to: (usize, usize),
}

impl Job {
    /// The job's slices of `pieces` (those it was cut from), none empty,
    /// each with the address of its first byte.
    pub(crate) fn slices<'p, 'a: 'p, P: Slice<'a>>(
        self,
        pieces: &'p [P],
    ) -> impl Iterator<Item = (u64, &'a [u8])> + 'p {
        let (from, to) = (self.from, self.to);
        let end = (to.0 + 1).min(pieces.len());
        pieces[from.0..end]
            .iter()
            .zip(from.0..)
            .filter_map(move |(p, k)| {
                let (offset, data) = p.get();
                let s = if k == from.0 { from.1 } else { 0 };
                let e = if k == to.0 { to.1 } else { data.len() };
                (s < e).then(|| (offset + s as u64, &data[s..e]))
            })
    }
}

/// Bytes of image per job: large enough that channel traffic is noise, small
/// enough that the results of the jobs in flight stay a few MiB.
pub(crate) const JOB_BYTES: usize = 1 << 20;

/// Bytes of image per job when the calling thread runs every job itself:
/// there is no channel to keep busy, and the one job's finished segments
/// (16 bytes each) are what it holds. Segments a few bytes apart make many
/// of them: esbuild.wasm's 1 MiB jobs held 2 MB; 64 KiB jobs hold 128 KiB.
pub(crate) const SERIAL_JOB_BYTES: usize = 64 << 10;

/// Pieces per job at most. A job holds a segment and one of Wizer's short
/// gaps per piece at most, 16 bytes each: 64 KiB of esbuild.wasm's 2-byte
/// pieces, 20 bytes apart, made 32,768 of each (twice 1 MiB, with the
/// lists' doubling), and a Wasm memory keeps its peak.
pub(crate) const JOB_PIECES: usize = 4096;

/// The job size for `threads` threads (the result never depends on it).
pub(crate) fn job_bytes(threads: usize) -> usize {
    if threads > 1 {
        JOB_BYTES
    } else {
        SERIAL_JOB_BYTES
    }
}

/// Cuts pieces of an image into jobs of `job_bytes` ([`JOB_BYTES`]), and of
/// at most [`JOB_PIECES`] pieces. Pieces longer than `job_bytes` are cut
/// too. Where the cuts fall depends only on the pieces, never on the number
/// of threads, so neither does the result.
pub(crate) fn jobs<'a, P: Slice<'a>>(pieces: &[P], job_bytes: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut from = (0, 0);
    // Bytes in the job being cut.
    let mut size = 0;
    for (k, piece) in pieces.iter().enumerate() {
        let (_, data) = piece.get();
        if size > 0 && k - from.0 >= JOB_PIECES {
            jobs.push(Job { from, to: (k, 0) });
            from = (k, 0);
            size = 0;
        }
        let mut at = 0;
        while at < data.len() {
            let take = (data.len() - at).min(job_bytes - size);
            size += take;
            at += take;
            if size == job_bytes {
                jobs.push(Job { from, to: (k, at) });
                from = (k, at);
                size = 0;
            }
        }
    }
    if size > 0 {
        jobs.push(Job {
            from,
            to: (pieces.len(), 0),
        });
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, byte by byte: maximal non-zero runs, then neighbours
    /// at most `JOINED_GAP` zeros apart joined.
    fn runs_bytewise(data: &[u8]) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < data.len() {
            if data[i] == 0 {
                i += 1;
                continue;
            }
            let s = i;
            while i < data.len() && data[i] != 0 {
                i += 1;
            }
            match out.last_mut() {
                Some(last) if s - last.1 <= JOINED_GAP => last.1 = i,
                _ => out.push((s, i)),
            }
        }
        out
    }

    fn runs(data: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for_each_run(data, |s, e| out.push((s, e)));
        out
    }

    #[test]
    fn edges() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[0; 100]), vec![]);
        assert_eq!(runs(&[1]), vec![(0, 1)]);
        let mut d = vec![0u8; 70];
        d[0] = 1;
        d[69] = 0x80;
        d[33] = 1;
        d[34] = 1;
        assert_eq!(runs(&d), vec![(0, 1), (33, 35), (69, 70)]);
        // Two zeros join, three split.
        assert_eq!(runs(&[1, 0, 0, 1, 0, 0, 0, 1]), vec![(0, 4), (7, 8)]);
        // 0x80 and 0x01 neighbours are the false-positive case of the zero test.
        let d = [0x01, 0x00, 0x80, 0x01, 0x01, 0x00, 0x00, 0x01, 0xff];
        assert_eq!(runs(&d), runs_bytewise(&d));
    }

    /// The definition of [`for_each_coarse_run`], from the exact runs.
    fn coarse_bytewise(data: &[u8], min_gap: usize) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (s, e) in runs_bytewise(data) {
            match out.last_mut() {
                Some(last) if s - last.1 < min_gap => last.1 = e,
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// The coarse runs by 16-byte chunks, checked against 8-byte words
    /// where those apply too.
    fn coarse(data: &[u8], min_gap: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for_each_coarse_run::<u128>(data, min_gap, |s, e| out.push((s, e)));
        assert_eq!(words(data, min_gap), out);
        out
    }

    fn words(data: &[u8], min_gap: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for_each_coarse_run::<u64>(data, min_gap, |s, e| out.push((s, e)));
        out
    }

    #[test]
    fn coarse_edges() {
        assert_eq!(coarse(&[], 31), vec![]);
        assert_eq!(coarse(&[0; 300], 31), vec![]);
        let mut d = vec![0u8; 200];
        d[15] = 1;
        d[15 + 31] = 1; // 30 zeros between: joined
        d[15 + 31 + 32] = 1; // 31 zeros: split
        d[99] = 7; // 20 zeros: joined
        d[199] = 7; // in the ragged tail, after 99 zeros
        assert_eq!(coarse(&d, 31), vec![(15, 47), (78, 100), (199, 200)]);
        // A longer minimum joins more.
        assert_eq!(coarse(&d, 100), vec![(15, 200)]);
        // Words at a minimum of 15: 14 zeros join, 15 split.
        let mut d = vec![0u8; 64];
        d[3] = 1;
        d[3 + 15] = 1;
        d[3 + 15 + 16] = 1;
        assert_eq!(words(&d, 15), vec![(3, 19), (34, 35)]);
        // Shorter gaps are seen across the border of two non-zero words:
        // 14 zeros from byte 1 to byte 14 hold no whole word.
        let mut d = vec![0u8; 64];
        d[0] = 1;
        d[15] = 1;
        d[16] = 1; // 0 zeros: joined
        d[31] = 2; // 14 zeros, bytes 17 to 30: split
        assert_eq!(words(&d, 14), vec![(0, 1), (15, 17), (31, 32)]);
        assert_eq!(words(&d, 15), vec![(0, 32)]);
        // The same in a dense group of four words, and at the ragged tail.
        let mut d = vec![9u8; 72];
        d[33..47].fill(0);
        d[57..71].fill(0);
        assert_eq!(words(&d, 14), vec![(0, 33), (47, 57), (71, 72)]);
        // 16-byte chunks see them from 15 zeros up (14 fit inside one).
        assert_eq!(coarse(&d, 15), vec![(0, 72)]);
        assert_eq!(words(&d, 7), vec![(0, 33), (47, 57), (71, 72)]);
    }

    proptest! {
        #[test]
        fn matches_bytewise(data in proptest::collection::vec(
            prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(0x80u8), 1 => any::<u8>()], 0..600)) {
            prop_assert_eq!(runs(&data), runs_bytewise(&data));
        }

        #[test]
        fn coarse_matches_bytewise(
            parts in proptest::collection::vec((prop_oneof![0usize..40, 40usize..300], 1usize..80, any::<u8>()), 0..20),
            min_gap in prop_oneof![Just(u64::MIN_GAP), Just(u128::MIN_GAP), Just(14), u64::BYTES - 1..200],
        ) {
            // Non-zero stretches (with some zeros inside) between zero gaps
            // of every length around the threshold.
            let mut data = Vec::new();
            for (zeros, len, seed) in parts {
                data.extend(std::iter::repeat_n(0u8, zeros));
                data.extend((0..len).map(|i| if (i as u8).wrapping_mul(seed) % 5 == 0 { 0 } else { 1 + seed % 255 }));
            }
            let expected = coarse_bytewise(&data, min_gap);
            prop_assert_eq!(words(&data, min_gap), expected.clone());
            if min_gap >= u128::BYTES - 1 {
                prop_assert_eq!(coarse(&data, min_gap), expected);
            }
        }
    }
}
