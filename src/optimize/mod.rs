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
//!    the raw-growth check off (a layout may be larger raw), up to the
//!    first whose output is longer than the growth limit (half as long
//!    again as the input, plus half of [`BUDGET_SLACK`]).
//! 3. Each candidate is ranked by the real codec on its data sections only
//!    (every other byte is the same in all of them): whole when they fit in
//!    its share of the ranking budget, else up to [`WINDOWS`] windows at the
//!    same places of every candidate's address space. Then two rounds of
//!    refinement: the best so far and the caps twice and half of it, then
//!    1.41 times and 1/1.41 of the best of those, each round ranked on
//!    windows around the cuts where its candidates differ (near caps
//!    differ in few cuts, which evenly spread windows mostly miss).
//! 4. The codec decides: the input is compressed whole, then the
//!    best-ranked layouts whole, each round's best in turn (the last
//!    round's first), as many as the budget still allows; the smallest is
//!    kept only when strictly smaller than the input, else the output is
//!    the input (never larger compressed than the input).
//!
//! Cost, in bytes handed to the codec: at most [`BUDGET`] times the input's
//! length plus [`BUDGET_SLACK`] ([`Optimized::bytes_compressed`] counts
//! them), whatever the input's size: the input once (1x); the ranking, half
//! of what the input and the grid's longest candidate leave (at least 0.25x
//! of the input), shared evenly by the samples before any is taken;
//! and the whole-file compressions, the rest (at least the grid's longest
//! candidate, so the best-ranked one on the grid always fits).
//!
//! Time: the compressions of each ranking round, and step 4's, run at once
//! on the workers ([`PackOptions::threads`]), one codec call each. What is
//! measured is chosen from lengths and the budget alone, before any result
//! is in, so the search comes out the same on any number of threads.
//!
//! Memory: from a mapped input ([`optimize_with_mapped`]) longer than
//! [`KEEP_MAPPED`], what every compression and sample reads of it is
//! released behind it ([`behind`]), so a 1 GiB snapshot is not left mapped
//! in whole.

use crate::MaxSegments;
use crate::compress::Compression;
use crate::error::Result;
use crate::memo::Memo;
use crate::{PackOptions, Plan};

mod behind;
mod walk;
mod windows;

use behind::released_behind;
use walk::bytes_of;
use windows::Windows;

/// The most bytes [`optimize`] hands to the codec, in all, as a multiple of
/// the input's length (plus [`BUDGET_SLACK`]): about three compressions of
/// the input, the issue's budget.
pub const BUDGET: u64 = 3;

/// Bytes the budget allows beyond [`BUDGET`] times the input's, so that a
/// module of a few kilobytes can still weigh its candidates whole: 64 KiB
/// takes well under half a second at every codec's usual level (the
/// pure-Rust brotli at 11, the slowest, about 0.3 s).
pub const BUDGET_SLACK: u64 = 64 << 10;

/// The refinement rounds after the grid: each weighs the best cap so far
/// and the caps this factor above and below it.
const REFINEMENT_FACTORS: [f64; 2] = [2.0, std::f64::consts::SQRT_2];

/// The room the refinement rounds take in the ranking, in shares (of
/// which the grid's candidates take one each): two a round, for three
/// samples, so that each is two thirds of a share.
const REFINEMENT_SHARES: u64 = 2 * REFINEMENT_FACTORS.len() as u64;

/// The bytes a window around a cut ([`Windows::around`]) holds on either
/// side of the cut's zeros and header, at least and at most: the codec's
/// context there. A window of a few hundred bytes prices a header alone,
/// without the matches a codec finds around it in the whole file.
const CUT_CONTEXT: (u64, u64) = (128, MIN_WINDOW);

/// The most windows sampled from each candidate's data sections when they do
/// not fit in its share of the ranking budget. Few and long: a window cuts
/// the zero runs and the match distances the codec would see in the whole
/// file. On the 64 MiB bench snapshot, 16 windows ranked zstd 19's layouts
/// so that the whole file came out 2.0% under the input, 4 windows 3.2%
/// (gzip 9: 1.3% either way).
pub const WINDOWS: u64 = 4;

/// The least a window holds when the share allows: shorter windows cut most
/// closed gaps short, and a codec's own overhead on each then decides
/// between close layouts.
const MIN_WINDOW: u64 = 16 << 10;

/// A compressed-size function: given the total length and the bytes, one
/// slice after the other, their length once compressed.
pub type CompressedLen<'f> =
    &'f (dyn Fn(u64, &mut dyn Iterator<Item = &[u8]>) -> Result<u64> + Sync);

/// Told which bytes of the input were read for good ([`Plan::with_release`]).
pub(crate) type Release<'r> = &'r (dyn Fn(&[u8]) + Sync);

/// An input this long or shorter stays mapped in while the compressions and
/// samples read it again and again (it is released behind them only when
/// longer, [`behind`]): each later reading would fault its pages back in,
/// 2 to 3% of the time on esbuild.wasm and the 64 MiB bench snapshot.
const KEEP_MAPPED: usize = 64 << 20;

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
    /// its sample), round by round (the grid, then each refinement), in
    /// the order weighed. Samples are compared only within a round, whose
    /// candidates share windows; a round's best is listed in the next
    /// round, where it is weighed again.
    pub candidates: Vec<(u32, u64, u64)>,
    /// The candidates then compressed whole, best-ranked first: (cap,
    /// compressed length of the whole output). The codec's choice is the
    /// smallest of these, when smaller than the input's.
    pub measured: Vec<(u32, u64)>,
    /// The bytes handed to the codec in all, the cost: at most [`BUDGET`]
    /// times the input's length plus [`BUDGET_SLACK`].
    pub bytes_compressed: u64,
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
    search(input, options, compressed_len, &|_| {}, None, usize::MAX)
}

/// [`optimize`] for an input mapped from a file, as
/// [`Plan::with_mapped`] plans it: `mapped` serves the segment headers,
/// and is told what was read for good, in stretches, as the compressions
/// and samples go. Resident memory then stays flat however large the
/// input: each candidate is compressed whole, and without this the whole
/// file stays mapped in.
///
/// # Errors
/// As [`optimize`].
///
/// See [`MappedInput`](crate::MappedInput) for a mapped input.
pub fn optimize_with_mapped<'a>(
    input: &'a [u8],
    options: &PackOptions,
    compression: Compression,
    mapped: &dyn crate::MappedInput,
) -> Result<Optimized<'a>> {
    compression.compressed_len(0, &mut std::iter::empty())?;
    let release = |bytes: &[u8]| mapped.release(bytes);
    let read_at = |offset, buf: &mut [u8]| mapped.read_at(offset, buf);
    search(
        input,
        options,
        &|len, bytes| compression.compressed_len(len, bytes),
        &release,
        Some(&read_at),
        KEEP_MAPPED,
    )
}

/// Steps 1 to 4, telling `release` what was read for good: what planning
/// reads, and, for an input longer than `keep_mapped`, what the
/// compressions and samples read.
fn search<'a>(
    input: &'a [u8],
    options: &PackOptions,
    compressed_len: CompressedLen<'_>,
    release: Release<'_>,
    read_at: Option<crate::parse::ReadAt<'_>>,
    keep_mapped: usize,
) -> Result<Optimized<'a>> {
    // Kept for every cap planned after the raw plan: none is above it.
    let memo = Memo::default();
    let raw = Plan::build(input, options, release, read_at, Some(&memo))?;
    let behind: Release<'_> = if input.len() > keep_mapped {
        release
    } else {
        &|_| {}
    };
    let mut search = Search::new(input, options, &raw, compressed_len, behind, memo);
    let grid = search.grid()?;
    let mut ranking = Ranking::new(&search, &raw, &grid);
    let mut rounds = vec![ranking.weigh_grid(&mut search, grid)?];
    ranking.refine(&mut search, &mut rounds)?;
    let candidates = rounds
        .iter()
        .flat_map(|r| &r.weighed)
        .map(|(cap, estimate, plan)| (*cap, plan.len(), *estimate))
        .collect();
    let decided = search.decide(rounds)?;
    let (plan, compressed_after, max_segments) = match decided.chosen {
        Some((plan, after, cap)) => (plan, after, Some(cap)),
        None => (
            Plan::keep_input(input, raw.report().clone()),
            decided.compressed_before,
            None,
        ),
    };
    Ok(Optimized {
        plan,
        compressed_before: decided.compressed_before,
        compressed_after,
        max_segments,
        candidates,
        measured: decided.measured,
        bytes_compressed: search.spent,
    })
}

/// What one search may spend and has spent, and how it plans a candidate.
struct Search<'a, 'o, 'f> {
    input: &'a [u8],
    options: &'o PackOptions,
    /// The raw plan's segment count, within the user's cap: the highest cap
    /// weighed (step 1).
    n: u32,
    /// The most bytes handed to the codec in all ([`BUDGET`]).
    budget: u64,
    /// No candidate longer: its own compression, if chosen, must leave room
    /// for the input's and the ranking.
    growth_limit: u64,
    compressed_len: CompressedLen<'f>,
    /// Told of the input that compressions and samples have read
    /// ([`behind`]).
    release: Release<'f>,
    /// How many compressions run at once ([`Search::measure_all`]).
    threads: usize,
    /// The raw plan's parse and scan, for every other cap ([`Memo`]).
    memo: Memo<'a>,
    /// The bytes handed to the codec so far: every one goes through
    /// [`Search::measure_all`], and is counted.
    spent: u64,
}

/// Step 4's outcome: the input compressed, the candidates compressed whole,
/// and the smallest of them when smaller than the input.
struct Decided<'a> {
    compressed_before: u64,
    measured: Vec<(u32, u64)>,
    chosen: Option<(Plan<'a>, u64, u32)>,
}

impl<'a, 'o, 'f> Search<'a, 'o, 'f> {
    fn new(
        input: &'a [u8],
        options: &'o PackOptions,
        raw: &Plan<'_>,
        compressed_len: CompressedLen<'f>,
        release: Release<'f>,
        memo: Memo<'a>,
    ) -> Self {
        let len = input.len() as u64;
        Search {
            input,
            options,
            n: u32::try_from(raw.report().segments_after())
                .unwrap_or(u32::MAX)
                .clamp(1, options.max_segments.get()),
            budget: BUDGET.saturating_mul(len).saturating_add(BUDGET_SLACK),
            growth_limit: len.saturating_add(len / 2).saturating_add(BUDGET_SLACK / 2),
            compressed_len,
            release,
            threads: crate::pool::thread_count(options.threads),
            memo,
            spent: 0,
        }
    }

    /// The input planned at `cap` (between 1 and the user's cap), the
    /// raw-growth check off. Not validated, parsed or scanned again: the
    /// raw plan was, at a cap as high ([`Memo`]).
    fn plan_at(&self, cap: u32) -> Result<Plan<'a>> {
        let options = self
            .options
            .clone()
            .with_max_segments(MaxSegments::new(cap).unwrap_or_default());
        let memo = Some(&self.memo);
        Plan::build_valid(
            self.input,
            &options,
            &|_| {},
            true,
            Default::default(),
            memo,
        )
    }

    /// Each of `items` compressed: their lengths, counted. Several at once
    /// on the workers: a codec's result depends on its bytes alone, so it
    /// is the same in any order, and what is measured was chosen before
    /// (from lengths and the budget only). Steps 3 and 4 are mostly these
    /// compressions, one thread each.
    fn measure_all(&mut self, items: &[Measured<'_, '_>]) -> Result<Vec<u64>> {
        self.spent += items.iter().map(Measured::len).sum::<u64>();
        let (compressed_len, input, release) = (self.compressed_len, self.input, self.release);
        let mut sizes = Vec::with_capacity(items.len());
        crate::pool::map_ordered(
            items,
            self.threads,
            |item| item.compressed(compressed_len, input, release),
            |_, size| sizes.push(size),
        );
        sizes.into_iter().collect()
    }

    /// Step 2: the grid's plans, caps `n`, `n/4`, ... down to the first
    /// over the growth limit (lower caps only grow more).
    fn grid(&self) -> Result<Vec<(u32, Plan<'a>)>> {
        let caps: Vec<u32> =
            std::iter::successors(Some(self.n), |&cap| (cap > 1).then(|| (cap / 4).max(1)))
                .collect();
        let mut grid = Vec::new();
        // As many caps at a time as there are workers: past the first plan
        // over the limit, the rest of its batch is dropped.
        for batch in caps.chunks(self.threads) {
            for (&cap, plan) in batch.iter().zip(self.plans_at(batch)?) {
                if plan.len() > self.growth_limit {
                    return Ok(grid);
                }
                grid.push((cap, plan));
            }
        }
        Ok(grid)
    }

    /// The plans at `caps` ([`Search::plan_at`]), several at once on the
    /// workers, in order; the first error in that order.
    fn plans_at(&self, caps: &[u32]) -> Result<Vec<Plan<'a>>> {
        let mut plans = Vec::with_capacity(caps.len());
        crate::pool::map_ordered(
            caps,
            self.threads,
            |&cap| self.plan_at(cap),
            |_, plan| plans.push(plan),
        );
        plans.into_iter().collect()
    }

    /// Step 4: the codec decides. The input whole, then the best-ranked
    /// layouts whole ([`rank_order`]), as many as the budget still allows
    /// (the ranking left room for any on the grid).
    fn decide(&mut self, rounds: Vec<Ranked<'a>>) -> Result<Decided<'a>> {
        let input = self.input;
        let mut spent = self.spent + input.len() as u64;
        let mut picked: Vec<(u32, Plan<'a>)> = Vec::new();
        for (cap, _, plan) in rank_order(rounds) {
            if !plan.report().changed() || picked.iter().any(|p| p.0 == cap) {
                continue;
            }
            // A refinement may be longer than the grid's longest, which the
            // ranking left room for: then the next one.
            if spent + plan.len() > self.budget {
                continue;
            }
            spent += plan.len();
            picked.push((cap, plan));
        }
        let items: Vec<Measured<'_, 'a>> = std::iter::once(Measured::Bytes(input))
            .chain(picked.iter().map(|p| Measured::Plan(&p.1)))
            .collect();
        let sizes = self.measure_all(&items)?;
        drop(items);
        let compressed_before = sizes[0];
        let mut measured: Vec<(u32, u64)> = Vec::new();
        let mut chosen: Option<(Plan<'a>, u64, u32)> = None;
        for ((cap, plan), &after) in picked.into_iter().zip(&sizes[1..]) {
            measured.push((cap, after));
            if after < chosen.as_ref().map_or(compressed_before, |c| c.1) {
                chosen = Some((plan, after, cap));
            }
        }
        debug_assert!(
            self.spent <= self.budget,
            "{} > {}",
            self.spent,
            self.budget
        );
        Ok(Decided {
            compressed_before,
            measured,
            chosen,
        })
    }
}

/// Step 3: candidates ranked on samples of their data sections, within the
/// ranking's share of the budget.
struct Ranking {
    samples: Samples,
    /// What one candidate's sample should hold.
    share: u64,
    /// The grid's windows, spread evenly.
    windows: Windows,
}

/// The bytes the ranking may hand to the codec, and has.
struct Samples {
    budget: u64,
    used: u64,
}

impl Ranking {
    /// The ranking's budget, fixed up front: half of what the input's
    /// compression and the grid's longest candidate leave (so that it can
    /// be compressed whole), evenly over every sample that may be taken.
    /// The other half goes to step 4.
    fn new(search: &Search<'_, '_, '_>, raw: &Plan<'_>, grid: &[(u32, Plan<'_>)]) -> Self {
        let len = search.input.len() as u64;
        let longest = grid.iter().map(|g| g.1.len()).max().unwrap_or(0);
        let budget = search.budget.saturating_sub(len).saturating_sub(longest) / 2;
        let share = budget / (grid.len() as u64 + REFINEMENT_SHARES);
        Ranking {
            samples: Samples { budget, used: 0 },
            share,
            windows: Windows::new(raw, share, longest <= share),
        }
    }

    /// Step 3: the grid, on windows spread evenly.
    fn weigh_grid<'a>(
        &mut self,
        search: &mut Search<'a, '_, '_>,
        grid: Vec<(u32, Plan<'a>)>,
    ) -> Result<Ranked<'a>> {
        self.samples.round(search, &self.windows, grid)
    }

    /// Step 3's refinement: the best so far and the caps a factor either
    /// side of it, on windows around the cuts where those three differ.
    fn refine<'a>(
        &mut self,
        search: &mut Search<'a, '_, '_>,
        rounds: &mut Vec<Ranked<'a>>,
    ) -> Result<()> {
        for factor in REFINEMENT_FACTORS {
            let last = rounds.last_mut().expect("the grid's round");
            let Some(at) = last.best() else {
                break;
            };
            let best = last.weighed.remove(at);
            let up = ((best.0 as f64 * factor).round() as u32).min(search.n);
            let down = ((best.0 as f64 / factor).round() as u32).max(1);
            let mut caps = vec![up];
            if down != up {
                caps.push(down);
            }
            caps.retain(|&cap| cap != best.0);
            let mut plans = vec![(best.0, best.2)];
            for (cap, plan) in caps.iter().zip(search.plans_at(&caps)?) {
                if plan.len() <= search.growth_limit {
                    plans.push((*cap, plan));
                }
            }
            if plans.len() == 1 {
                let (cap, plan) = plans.pop().expect("the best");
                last.weighed.insert(at, (cap, best.1, plan));
                break;
            }
            let around = self
                .windows
                .around(plans.iter().map(|p| &p.1), self.share * 2 / 3);
            let round = self.samples.round(search, &around, plans)?;
            rounds.push(round);
        }
        Ok(())
    }
}

impl Samples {
    /// One round: `plans` weighed on the same `windows`, in order. A
    /// candidate whose sample would take the ranking past its budget is
    /// not weighed (the raw plan's headers in the windows bound a
    /// candidate's, give or take the bytes of a longer length LEB).
    fn round<'a>(
        &mut self,
        search: &mut Search<'a, '_, '_>,
        windows: &Windows,
        plans: Vec<(u32, Plan<'a>)>,
    ) -> Result<Ranked<'a>> {
        let mut round = Ranked::default();
        // As many samples at a time as there are workers to compress them.
        let mut pending: Vec<Sampled<'a>> = Vec::with_capacity(search.threads);
        for (cap, plan) in plans {
            let sample = windows.sample(&plan, search.release);
            if self.used + sample.len() as u64 <= self.budget {
                self.used += sample.len() as u64;
                pending.push((cap, plan, sample));
            }
            if pending.len() == search.threads {
                weigh(search, &mut pending, &mut round)?;
            }
        }
        weigh(search, &mut pending, &mut round)?;
        Ok(round)
    }
}

/// A candidate and its sample, not yet weighed.
type Sampled<'a> = (u32, Plan<'a>, Vec<u8>);

/// Weighs the `pending` samples at once and moves them into `round`, in order.
fn weigh<'a>(
    search: &mut Search<'a, '_, '_>,
    pending: &mut Vec<Sampled<'a>>,
    round: &mut Ranked<'a>,
) -> Result<()> {
    let items: Vec<Measured<'_, 'a>> = pending.iter().map(|p| Measured::Bytes(&p.2)).collect();
    let estimates = search.measure_all(&items)?;
    drop(items);
    for ((cap, plan, _), estimate) in pending.drain(..).zip(estimates) {
        round.weighed.push((cap, estimate, plan));
    }
    Ok(())
}

/// What steps 3 and 4 hand to the codec: a sample, the input, or a
/// candidate's whole output.
enum Measured<'p, 'a> {
    Bytes(&'p [u8]),
    Plan(&'p Plan<'a>),
}

impl Measured<'_, '_> {
    fn len(&self) -> u64 {
        match self {
            Measured::Bytes(bytes) => bytes.len() as u64,
            Measured::Plan(plan) => plan.len(),
        }
    }

    /// Its compressed length; the bytes of `input` in it are released
    /// behind the codec ([`released_behind`]).
    fn compressed(
        &self,
        compressed_len: CompressedLen<'_>,
        input: &[u8],
        release: Release<'_>,
    ) -> Result<u64> {
        let len = self.len();
        match self {
            Measured::Bytes(bytes) => compressed_len(
                len,
                &mut released_behind(std::iter::once(*bytes), input, release),
            ),
            Measured::Plan(plan) => {
                compressed_len(len, &mut released_behind(bytes_of(plan), input, release))
            }
        }
    }
}

impl Plan<'_> {
    /// The output's length once compressed with `compression`, the output
    /// walked as the codec takes it, never written. `release` is told of
    /// the input's bytes, in stretches, once the codec has taken them (as
    /// [`Plan::with_release`]'s; `&|_| {}` for none).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidCompression`](crate::ErrorKind::InvalidCompression)
    /// when this build has no such codec.
    ///
    /// ```
    /// # #[cfg(feature = "gzip")] {
    /// use segpack::{Codec, Compression, Plan};
    /// let input = wat::parse_str(r#"(module (memory 1) (data (i32.const 8) "\00\00hi"))"#).unwrap();
    /// let plan = Plan::new(&input, &Default::default())?;
    /// let mut output = Vec::new();
    /// plan.write_to(&mut output, None).unwrap();
    /// let gzip = Compression::new(Codec::Gzip);
    /// let whole = gzip.compressed_len(output.len() as u64, &mut std::iter::once(&output[..]))?;
    /// assert_eq!(plan.compressed_len(gzip, &|_| {})?, whole);
    /// # }
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn compressed_len(
        &self,
        compression: Compression,
        release: &(dyn Fn(&[u8]) + Sync),
    ) -> Result<u64> {
        Measured::Plan(self).compressed(
            &|len, bytes| compression.compressed_len(len, bytes),
            self.input(),
            release,
        )
    }
}

/// A candidate weighed: its cap, the compressed length of its sample, and
/// its plan.
type Weighed<'a> = (u32, u64, Plan<'a>);

/// One round of the ranking: the candidates weighed on the same windows,
/// in order.
#[derive(Default)]
struct Ranked<'a> {
    weighed: Vec<Weighed<'a>>,
}

impl Ranked<'_> {
    /// Where the best-ranked candidate is; ties go to the one weighed first
    /// (the higher cap, on the grid).
    fn best(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, w) in self.weighed.iter().enumerate() {
            if best.is_none_or(|b| w.1 < self.weighed[b].1) {
                best = Some(i);
            }
        }
        best
    }
}

/// Every candidate of `rounds` in the order step 4 measures them: each
/// round's best, the last round's first, then each round's second best,
/// and so on. Estimates compare only within a round, whose candidates
/// share windows, and each round's windows see something the others miss:
/// the refinement's, the few cuts its candidates differ in; the grid's,
/// longer stretches, with the match distances a codec sees in the whole
/// file (on the 64 MiB snapshot, zstd 3's last round ranked cap 221 first,
/// the round before it cap 625, and 625 was 0.2% smaller once whole).
fn rank_order<'a>(rounds: Vec<Ranked<'a>>) -> impl Iterator<Item = Weighed<'a>> {
    let mut rounds: Vec<std::vec::IntoIter<Weighed<'a>>> = rounds
        .into_iter()
        .rev()
        .map(|round| {
            let mut weighed = round.weighed;
            // Stable: ties stay in the order weighed.
            weighed.sort_by_key(|w| w.1);
            weighed.into_iter()
        })
        .collect();
    let mut at = 0;
    std::iter::from_fn(move || {
        for _ in 0..rounds.len() {
            let next = rounds[at].next();
            at = (at + 1) % rounds.len();
            if next.is_some() {
                return next;
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::{Memo, Plan};
    use crate::{MaxSegments, PackOptions};

    /// A module of 300 objects of 4 bytes 44 bytes apart, where closing the
    /// gaps wins once compressed.
    fn objects() -> Vec<u8> {
        let data: String = (0..300)
            .map(|i| format!(r#"(data (i32.const {}) "obj{}")"#, i * 44, i % 10))
            .collect();
        wat::parse_str(format!("(module (memory 2) {data})")).unwrap()
    }

    /// Released behind the compressions, the search comes out as without
    /// (the same output, sizes and candidates), and every byte of the input
    /// is released while a codec is taking it (the input's own
    /// compression, at least).
    #[test]
    fn released_behind_the_codec_the_search_comes_out_the_same() {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};
        // A toy codec: non-zero bytes and zero runs.
        let runs = |bytes: &mut dyn Iterator<Item = &[u8]>| {
            let (mut n, mut last) = (0, 1u8);
            for b in bytes.flatten() {
                n += u64::from(*b != 0 || last != 0);
                last = *b;
            }
            n
        };
        let input = objects();
        let compressing = AtomicUsize::new(0);
        let counted = |_: u64, bytes: &mut dyn Iterator<Item = &[u8]>| {
            compressing.fetch_add(1, Ordering::SeqCst);
            let n = runs(bytes);
            compressing.fetch_sub(1, Ordering::SeqCst);
            Ok(n)
        };
        let released = Mutex::new(Vec::new());
        let release = |bytes: &[u8]| {
            if compressing.load(Ordering::SeqCst) > 0 {
                let at = crate::emit::offset_in(&input, bytes).expect("input bytes");
                released.lock().unwrap().push((at, at + bytes.len()));
            }
        };
        // One thread: a release counts only while a compression runs.
        let options = PackOptions::default().with_threads(1);
        let plain = super::optimize_with(&input, &options, &|_, b| Ok(runs(b))).unwrap();
        let behind = super::search(&input, &options, &counted, &release, None, 0).unwrap();
        assert!(plain.max_segments.is_some());
        assert_eq!(bytes(&behind.plan), bytes(&plain.plan));
        assert_eq!(format!("{behind:?}"), format!("{plain:?}"));
        let mut released = released.into_inner().unwrap();
        released.sort_unstable();
        let covered = released
            .iter()
            .fold(0, |end, r| if r.0 <= end { end.max(r.1) } else { end });
        assert_eq!(covered, input.len(), "{released:?}");
    }

    /// From a mapped input, `optimize` comes out as from its bytes, the
    /// segment headers read through the file.
    #[test]
    #[cfg_attr(not(feature = "gzip"), ignore = "needs the gzip feature")]
    fn a_mapped_input_is_optimized_the_same() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Mapped<'a> {
            bytes: &'a [u8],
            reads: AtomicUsize,
        }
        impl crate::MappedInput for Mapped<'_> {
            fn release(&self, _: &[u8]) {}
            fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
                self.reads.fetch_add(1, Ordering::Relaxed);
                let rest = self.bytes.get(offset as usize..).unwrap_or(&[]);
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                Ok(n)
            }
        }
        let input = objects();
        let gzip = crate::Compression::new(crate::Codec::Gzip);
        let options = PackOptions::default();
        let plain = crate::optimize(&input, &options, gzip).unwrap();
        let mapped = Mapped {
            bytes: &input,
            reads: AtomicUsize::new(0),
        };
        let via_map = crate::optimize_with_mapped(&input, &options, gzip, &mapped).unwrap();
        assert!(plain.max_segments.is_some());
        assert_eq!(bytes(&via_map.plan), bytes(&plain.plan));
        assert_eq!(format!("{via_map:?}"), format!("{plain:?}"));
        assert!(mapped.reads.into_inner() > 0);
    }

    /// The output's bytes.
    fn bytes(plan: &Plan<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        plan.write_to(&mut out, None).unwrap();
        out
    }

    /// Planned again from a memo (parsed and scanned once, at the highest
    /// cap so far), every cap gives the plan planned from scratch gives:
    /// the same bytes and report. Caps in any order, so that a scan made
    /// for a lower cap is made again, and two modules with one memo each.
    #[test]
    fn a_memo_plans_any_cap_as_planning_from_scratch_does() {
        let module = |tag: &str| {
            let data: String = (0..40)
                .map(|i| format!(r#"(data (i32.const {}) "{tag}{i:02}")"#, i * (97 + i * 13)))
                .collect();
            format!("(core module (memory 1) {data})")
        };
        let input = wat::parse_str(format!("(component {} {})", module("a"), module("b"))).unwrap();
        let known = || crate::parse::validate(&input, &|_| {}, None, 1).unwrap();
        let options =
            |cap| PackOptions::default().with_max_segments(MaxSegments::new(cap).unwrap());
        let bytes = |plan: &Plan<'_>| {
            let mut out = Vec::new();
            plan.write_to(&mut out, None).unwrap();
            out
        };
        let memo = Memo::default();
        for cap in [4, 40, 1, 17, 30, 2] {
            let fresh = Plan::build_valid(&input, &options(cap), &|_| {}, true, known(), None);
            let memoized =
                Plan::build_valid(&input, &options(cap), &|_| {}, true, known(), Some(&memo));
            let (fresh, memoized) = (fresh.unwrap(), memoized.unwrap());
            assert_eq!(bytes(&memoized), bytes(&fresh), "cap {cap}");
            assert_eq!(
                format!("{:?}", memoized.report()),
                format!("{:?}", fresh.report())
            );
            assert!(fresh.report().segments_after() <= 2 * u64::from(cap).max(1));
        }
    }
}
