//! The cap (SPEC §4): over `max_segments`, gaps between greedy segments
//! close until the cap is met, in O(cap) state however many runs there are.
//!
//! Three steps, each a type or function below:
//! 1. **Rank** ([`GapKey`]): what keeping a gap open saves before length
//!    LEBs: its zeros, less the fixed header of the segment after it. The
//!    rank depends on the gap alone, not on which other gaps close, so it
//!    never counts one segment's length LEB twice.
//! 2. **Shortlist** ([`Shortlist`]): the `budget` best-ranked closable gaps,
//!    in a bounded buffer. Every other closable gap closes.
//! 3. **Settle** ([`settle`]): the segments between the shortlisted gaps,
//!    the gaps that never close and each memory's end are priced exactly,
//!    length LEBs included. The layout with the fewest bytes
//!    ([`super::exact`]) is the plan when it is within the cap. Else the
//!    gap whose closing adds the fewest bytes closes, its neighbours are
//!    priced again, and so on while the cap is not met or a close makes the
//!    section smaller; or the best-ranked stay open. Wizer's longest gaps
//!    open (a second shortlist, by length) is the plan if smaller still.
//!
//! A report may ask, in the same pass, what a second, higher cap would give
//! (`also`): the shortlist is then the higher cap's, settled for it first,
//! and cut down to the lower cap's before settling that one. The best gaps
//! of the best are the best: the lower cap's plan is the same either way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::exact::{Ties, reopen_free_cuts, settle_exactly};
use super::merge::NEVER_MERGED_GAP;
use super::{MAX_GAP, MAX_SEGMENT_LEN, MEMORY_INDEX_LIMIT, Range, Segments};
use crate::segment::{
    IndexType, MAX_FIXED_HEADER_LEN, fixed_header_len, push_uleb, read_uleb, segment_len, uleb_len,
};

/// A closable gap's rank: gaps that save more when open stay open first;
/// ties by higher (memory, offset). `worth` is the gap's zeros less the
/// fixed header of the segment after it, plus [`MAX_FIXED_HEADER_LEN`] so
/// that it is never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct GapKey {
    worth: u64,
    memory_index: u32,
    gap_start: u64,
}

impl GapKey {
    /// The rank of the closable gap `gap` of memory `memory_index`; a
    /// segment starts at its end.
    pub(super) fn new(memory_index: u32, index_type: IndexType, gap: Range) -> Self {
        GapKey {
            worth: gap.len() + MAX_FIXED_HEADER_LEN
                - fixed_header_len(memory_index, index_type, gap.end),
            memory_index,
            gap_start: gap.start,
        }
    }

    /// What keeping the gap open saves before length LEBs, plus
    /// [`MAX_FIXED_HEADER_LEN`].
    pub(super) fn worth(&self) -> u64 {
        self.worth
    }
}

/// Which gaps a [`Shortlist`] keeps open first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// By [`GapKey`]: what keeping the gap open saves before length LEBs.
    Rank,
    /// By length, Wizer's order ([`super::wizer`]): the longest gaps stay
    /// open, ties by higher (memory, offset).
    Length,
}

impl Order {
    /// Where `gap` stands in this order: higher stays open first.
    fn key(self, gap: &Gap) -> GapKey {
        match self {
            Order::Rank => gap.key(),
            Order::Length => GapKey {
                worth: u64::from(gap.gap_len),
                memory_index: gap.memory_index(),
                gap_start: gap.gap_start,
            },
        }
    }
}

/// Whether the gap between neighbouring greedy segments `a` and `b` may
/// ever close: it is under 4 GiB of zeros, and the merged segment is within
/// 1 GiB.
pub(super) fn may_close(a: Range, b: Range) -> bool {
    b.start - a.end < MAX_GAP && b.end - a.start <= MAX_SEGMENT_LEN
}

/// A gap as the shortlist and [`settle`] hold it: 16 bytes, and the
/// shortlist holds up to 2.25 × budget of them. Its rank is computed again
/// when asked for ([`Gap::key`]), not stored: a third less memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gap {
    /// The memory index, with [`I64_MEMORY`] set for a 64-bit memory.
    memory: u32,
    /// The gap's length (under 1 GiB for a closable gap), or [`FIXED`]: a
    /// gap that never closes, or a memory's end, whose end [`Cuts`] holds.
    gap_len: u32,
    gap_start: u64,
}

/// The bit of [`Gap::memory`] that marks a 64-bit memory. Memory indices
/// stay below it: [`MEMORY_INDEX_LIMIT`], checked where they come in.
const I64_MEMORY: u32 = MEMORY_INDEX_LIMIT;

/// [`Gap::gap_len`] of a cut that never closes.
const FIXED: u32 = u32::MAX;

impl Gap {
    fn new(memory_index: u32, index_type: IndexType, gap: Range, gap_len: u32) -> Self {
        debug_assert!(memory_index < I64_MEMORY);
        let i64_bit = match index_type {
            IndexType::I32 => 0,
            IndexType::I64 => I64_MEMORY,
        };
        Gap {
            memory: memory_index | i64_bit,
            gap_len,
            gap_start: gap.start,
        }
    }

    fn memory_index(&self) -> u32 {
        self.memory & !I64_MEMORY
    }

    fn index_type(&self) -> IndexType {
        if self.memory & I64_MEMORY == 0 {
            IndexType::I32
        } else {
            IndexType::I64
        }
    }

    fn is_fixed(&self) -> bool {
        self.gap_len == FIXED
    }

    /// The gap, for a gap that may close.
    fn range(&self) -> Range {
        Range {
            start: self.gap_start,
            end: self.gap_start + u64::from(self.gap_len),
        }
    }

    fn key(&self) -> GapKey {
        GapKey::new(self.memory_index(), self.index_type(), self.range())
    }

    /// Where it sorts among cuts: by (memory, offset).
    fn place(&self) -> (u32, u64) {
        (self.memory_index(), self.gap_start)
    }

    /// [`place`](Self::place) as one number: a sort compares it in two
    /// instructions, not a tuple's branches.
    fn place_key(&self) -> u128 {
        u128::from(self.memory_index()) << 64 | u128::from(self.gap_start)
    }
}

/// The `places` best closable gaps of everything offered, in its
/// [`Order`], kept in a buffer of at most `1.5 × places` gaps, cut back to
/// the `places` best whenever it fills (counted, linear, in order: see
/// [`Threshold`]): memory is O(budget), not O(runs). Which gaps it ends
/// with does not depend on when it was cut.
#[derive(Debug, Clone)]
pub(super) struct Shortlist {
    order: Order,
    places: u64,
    /// The best gaps offered: all of the `places` best, with at most half as
    /// many others besides.
    gaps: Vec<Gap>,
    /// The worth of the lowest gap kept at the last cut, else 0: `places`
    /// gaps rank above any gap worth less, which never enters.
    floor: u64,
    /// Whether `gaps` is in (memory, offset) order, as the image offers
    /// them: a cut then keeps that order, and ties fall to the first.
    in_order: bool,
    /// The worths of `gaps`, counted as they come.
    counts: WorthCounts,
    /// Closable gaps offered.
    pub(super) offered: u64,
}

impl Shortlist {
    /// The best-ranked gaps for a cap of `budget` segments: [`places_for`]
    /// it.
    pub(super) fn by_rank(budget: u64) -> Self {
        Self::new(Order::Rank, places_for(budget))
    }

    /// The longest gaps for a cap of `budget` segments: Wizer keeps at most
    /// `budget - 1` open.
    pub(super) fn by_length(budget: u64) -> Self {
        Self::new(Order::Length, budget)
    }

    fn new(order: Order, places: u64) -> Self {
        Shortlist {
            order,
            places,
            gaps: Vec::new(),
            floor: 0,
            in_order: true,
            counts: WorthCounts::new(),
            offered: 0,
        }
    }

    /// How many gaps it ends with, at most.
    pub(super) fn places(&self) -> u64 {
        self.places
    }

    /// Ends with at most `places` gaps from now on (never more than before):
    /// for a caller that knows as many better gaps besides.
    pub(super) fn narrow(&mut self, places: u64) {
        self.places = self.places.min(places);
    }

    /// Makes room at once for `gaps` gaps (as far as the buffer may hold
    /// them): a buffer grown step by step needs the old one and the new one
    /// at once, each time.
    pub(super) fn expect(&mut self, gaps: usize) {
        let room = gaps.min(self.limit());
        self.gaps
            .reserve_exact(room.saturating_sub(self.gaps.len()));
    }

    /// Offers the closable gap `gap` of memory `memory_index`.
    pub(super) fn offer(&mut self, memory_index: u32, index_type: IndexType, gap: Range) {
        self.offer_gap(Gap::new(memory_index, index_type, gap, gap.len() as u32));
    }

    /// Takes in the gaps of `other`, of the same order: keeps the `places`
    /// best of both. They go into whichever buffer has room for both (the
    /// other's is usually the larger), so that a third is never made: at
    /// that moment both lists are at their largest. There, two lists in
    /// order are merged; else the gaps are offered again, one by one, as
    /// the buffer allows.
    fn absorb(&mut self, mut other: Shortlist) {
        debug_assert_eq!(self.order, other.order);
        other.keep_best(other.places);
        if other.gaps.capacity() - other.gaps.len() >= self.gaps.len() {
            std::mem::swap(&mut self.gaps, &mut other.gaps);
            std::mem::swap(&mut self.in_order, &mut other.in_order);
            std::mem::swap(&mut self.counts, &mut other.counts);
        }
        // (What each list held was cut at its own floor: no floor is safe
        // until the two are cut together.)
        self.floor = 0;
        let room = self.gaps.capacity() - self.gaps.len() >= other.gaps.len();
        if !(room && self.in_order && other.in_order) {
            for gap in other.gaps {
                self.offer_gap(gap);
            }
            return;
        }
        merge_in_order(&mut self.gaps, other.gaps.iter().copied());
        for (count, more) in self.counts.counts.iter_mut().zip(other.counts.counts) {
            *count += more;
        }
        self.counts.highest = self.counts.highest.max(other.counts.highest);
        self.offered += other.gaps.len() as u64;
        if self.gaps.len() >= self.limit() {
            self.floor = self.keep_best(self.places);
        }
    }

    /// The worth (by length: the length) of the lowest gap kept at the last
    /// cut, else 0: a gap worth less never enters.
    pub(super) fn floor(&self) -> u64 {
        self.floor
    }

    fn offer_gap(&mut self, gap: Gap) {
        self.offered += 1;
        // Most gaps rank below every kept one: settled by `floor`.
        let worth = self.order.key(&gap).worth;
        if self.places == 0 || worth < self.floor {
            return;
        }
        let limit = self.limit();
        if self.gaps.len() == self.gaps.capacity() {
            // Grow towards the limit, never past it: the buffer is the
            // cap's whole memory. By half, not double: less room unused at
            // the end, and the old buffers, freed side by side, add up to
            // more than a later one needs (a growth below the golden ratio),
            // so a Wasm memory, which never shrinks, can reuse them.
            let capacity = self.gaps.capacity();
            let want = (capacity + capacity / 2).clamp(1024, limit.max(1024));
            self.gaps
                .reserve_exact(want.saturating_sub(self.gaps.len()).max(1));
        }
        if let Some(last) = self.gaps.last() {
            self.in_order &= last.place_key() < gap.place_key();
        }
        self.gaps.push(gap);
        self.counts.add(worth);
        if self.gaps.len() >= limit {
            self.floor = self.keep_best(self.places);
        }
    }

    /// The buffer is cut back when it holds this many gaps: `places` and
    /// half as many again (at least one more).
    fn limit(&self) -> usize {
        let places = usize::try_from(self.places).unwrap_or(usize::MAX);
        places.saturating_add((places / 2).max(1))
    }

    /// Keeps only the `n` best gaps (keys are distinct), in (memory,
    /// offset) order. Returns the worth of the lowest kept, or 0 if none is
    /// dropped.
    fn keep_best(&mut self, n: u64) -> u64 {
        let len = self.gaps.len() as u64;
        if n == 0 {
            self.gaps.clear();
            self.counts = WorthCounts::new();
            return 0;
        }
        if len <= n {
            return 0;
        }
        self.put_in_order();
        let threshold = self.threshold((len - n) as usize);
        threshold.drop_below(&mut self.gaps, self.order);
        self.counts.drop_below(threshold, self.gaps.len());
        threshold.worth
    }

    /// The [`Threshold`] of the `cut` lowest gaps kept (fewer than kept).
    fn threshold(&self, cut: usize) -> Threshold {
        let counts = &self.counts;
        counts.threshold(cut).unwrap_or_else(|below| {
            Threshold::among_long(&self.gaps, cut, below, counts.highest, self.order)
        })
    }

    /// The worth (by length: the length) of the `k`-th best gap kept
    /// (k ≥ 1), or 0 when fewer are kept.
    pub(super) fn kth_best_worth(&self, k: u64) -> u64 {
        let k = usize::try_from(k).unwrap_or(usize::MAX);
        if k == 0 || self.gaps.len() < k {
            return 0;
        }
        self.threshold(self.gaps.len() - k).worth
    }

    /// The `places` best gaps offered (all of them if fewer), in (memory,
    /// offset) order.
    pub(super) fn into_best(mut self) -> Vec<Gap> {
        self.keep_best(self.places);
        self.put_in_order();
        self.gaps
    }

    /// Sorts the buffer by (memory, offset) if gaps came out of order
    /// (another memory first, or a second list absorbed): once, after
    /// which it stays in order.
    fn put_in_order(&mut self) {
        if !self.in_order {
            self.gaps.sort_unstable_by_key(Gap::place_key);
            self.in_order = true;
        }
    }
}

/// Where the `cut` lowest closable gaps of a list end, in an [`Order`]:
/// the worth of the next one up, and how many of the `cut` are worth as
/// much. Of gaps worth the same, the first in (memory, offset) order rank
/// lowest, so in a list in that order the `cut` lowest are those worth
/// less and the first `ties_below` worth `worth`: a cut keeps the list's
/// order, and needs no sort after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Threshold {
    worth: u64,
    ties_below: usize,
}

/// Buckets of [`WorthCounts`]: one per worth below the last, and the last
/// for every worth from there up.
const WORTH_BUCKETS: usize = 1024;

/// How many gaps of a list are worth each worth below `WORTH_BUCKETS - 1`,
/// how many more, and the highest worth: most cuts fall among short gaps,
/// where this alone tells the [`Threshold`].
#[derive(Debug, Clone)]
struct WorthCounts {
    counts: [usize; WORTH_BUCKETS],
    highest: u64,
}

impl WorthCounts {
    fn new() -> Self {
        WorthCounts {
            counts: [0; WORTH_BUCKETS],
            highest: 0,
        }
    }

    /// The closable gaps of `gaps`, counted.
    fn of(gaps: &[Gap], order: Order) -> Self {
        let mut counts = WorthCounts::new();
        for g in gaps.iter().filter(|g| !g.is_fixed()) {
            counts.add(order.key(g).worth());
        }
        counts
    }

    fn add(&mut self, worth: u64) {
        self.counts[worth.min(WORTH_BUCKETS as u64 - 1) as usize] += 1;
        self.highest = self.highest.max(worth);
    }

    /// The threshold of the `cut` lowest gaps counted (fewer than there
    /// are), or, when it is among the longest, how many are shorter.
    fn threshold(&self, cut: usize) -> Result<Threshold, usize> {
        let mut below = 0;
        match bucket_of(&self.counts[..WORTH_BUCKETS - 1], cut, &mut below) {
            Some(worth) => Ok(Threshold {
                worth: worth as u64,
                ties_below: cut - below,
            }),
            None => Err(below),
        }
    }

    /// What is left of the counts once the gaps below `threshold` are
    /// dropped, `kept` of them left.
    fn drop_below(&mut self, threshold: Threshold, kept: usize) {
        if threshold.worth < WORTH_BUCKETS as u64 - 1 {
            let at = threshold.worth as usize;
            self.counts[..at].fill(0);
            self.counts[at] -= threshold.ties_below;
        } else {
            self.counts.fill(0);
            self.counts[WORTH_BUCKETS - 1] = kept;
        }
    }
}

impl Threshold {
    /// The threshold of the `cut` lowest closable gaps of `gaps` (fewer than
    /// there are), found by counting, without moving a gap: one pass when
    /// it lies among short gaps, else one more for each ten bits of the
    /// longest ([`Threshold::among_long`]).
    fn of(gaps: &[Gap], cut: usize, order: Order) -> Self {
        let counts = WorthCounts::of(gaps, order);
        counts
            .threshold(cut)
            .unwrap_or_else(|below| Threshold::among_long(gaps, cut, below, counts.highest, order))
    }

    /// The threshold of the `cut` lowest closable gaps of `gaps`, when
    /// `below` of them are worth less than `WORTH_BUCKETS - 1` and the
    /// highest is worth `highest`: each pass counts the worths in
    /// `low..=high` in buckets of `1 << shift`, and narrows to one bucket.
    fn among_long(gaps: &[Gap], cut: usize, mut below: usize, highest: u64, order: Order) -> Self {
        let mut low = WORTH_BUCKETS as u64 - 1;
        let mut high = highest;
        loop {
            let shift =
                (u64::BITS - (high - low).leading_zeros()).saturating_sub(WORTH_BUCKETS.ilog2());
            let mut counts = [0usize; WORTH_BUCKETS];
            for g in gaps.iter().filter(|g| !g.is_fixed()) {
                let worth = order.key(g).worth();
                if (low..=high).contains(&worth) {
                    counts[((worth - low) >> shift) as usize] += 1;
                }
            }
            let at = bucket_of(&counts, cut, &mut below).expect("the cut is within `low..=high`");
            low += (at as u64) << shift;
            if shift == 0 {
                return Threshold {
                    worth: low,
                    ties_below: cut - below,
                };
            }
            high = high.min(low + ((1 << shift) - 1));
        }
    }

    /// The threshold that keeps the `places` best closable gaps of `gaps`
    /// in `order`, or `None` when there are no more than that.
    fn keeping(gaps: &[Gap], places: usize, order: Order) -> Option<Self> {
        let closable = gaps.iter().filter(|g| !g.is_fixed()).count();
        if closable <= places {
            None
        } else if places == 0 {
            // Above every worth a gap can have (under 1 GiB of zeros and a
            // header): all go.
            Some(Threshold {
                worth: u64::MAX,
                ties_below: 0,
            })
        } else {
            Some(Threshold::of(gaps, closable - places, order))
        }
    }

    /// Drops from `gaps`, in (memory, offset) order, the closable gaps below
    /// the threshold; the rest keep their order.
    fn drop_below(self, gaps: &mut Vec<Gap>, order: Order) {
        let mut below = self.below(order);
        gaps.retain(|g| !below(g));
    }

    /// Tells, for each gap of a list in (memory, offset) order, in turn,
    /// whether it is a closable gap below the threshold.
    fn below(self, order: Order) -> impl FnMut(&Gap) -> bool {
        let mut ties = self.ties_below;
        move |g| {
            if g.is_fixed() {
                return false;
            }
            let worth = order.key(g).worth();
            if worth == self.worth && ties > 0 {
                ties -= 1;
                return true;
            }
            worth < self.worth
        }
    }
}

/// The bucket of `counts` (gaps counted by worth, lowest first) where the
/// `cut`-th lowest gap lies, `below` gaps lying below `counts` already;
/// `below` becomes the count below that bucket, or below the end if none.
fn bucket_of(counts: &[usize], cut: usize, below: &mut usize) -> Option<usize> {
    for (at, &count) in counts.iter().enumerate() {
        if *below + count > cut {
            return Some(at);
        }
        *below += count;
    }
    None
}

/// Merges `from` into `into`, both in (memory, offset) order, a cut that
/// never closes before a closable one at the same place: from the back, in
/// `into`'s buffer, with none beside it.
fn merge_in_order(
    into: &mut Vec<Gap>,
    from: impl DoubleEndedIterator<Item = Gap> + ExactSizeIterator + Clone,
) {
    let order = |c: &Gap| c.place_key() << 1 | u128::from(!c.is_fixed());
    let mut unmerged = into.len();
    into.reserve_exact(from.len());
    into.extend(from.clone());
    let mut free = into.len();
    for gap in from.rev() {
        while unmerged > 0 && order(&into[unmerged - 1]) > order(&gap) {
            unmerged -= 1;
            free -= 1;
            into[free] = into[unmerged];
        }
        free -= 1;
        into[free] = gap;
    }
}

/// The gaps a shortlist keeps for a cap of `budget` segments: `budget` and
/// half as many again, so that [`settle`] weighs the closes near the cut
/// exactly.
fn places_for(budget: u64) -> u64 {
    budget.saturating_add(budget / 2)
}

/// A memory with at least one greedy segment: from `first` to `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Extent {
    pub memory_index: u32,
    pub index_type: IndexType,
    pub first: u64,
    pub last: u64,
}

/// Everything the final layout needs of the greedy segments, in O(budget):
/// each memory's extent, the gaps that never close, the shortlist of gaps
/// that may stay open, and the longest gaps, for Wizer's rule. Filled by
/// [`GapTracker`] from the greedy pass, or by the coarse route from long
/// gaps alone.
#[derive(Debug, Clone)]
pub(super) struct Gaps {
    pub budget: u64,
    /// A higher budget planned from the same shortlist, for a report.
    pub also: Option<u64>,
    pub shortlist: Shortlist,
    /// The longest of Wizer's gaps ([`super::wizer`]): every gap offered of
    /// at least [`NEVER_MERGED_GAP`], and the shorter ones when asked for.
    pub longest: Shortlist,
    /// Whether `longest` holds every short gap that can count.
    short_gaps_known: bool,
    /// Gaps that never close, as (memory index, gap).
    pub never_closed: Vec<(u32, Range)>,
    pub extents: Vec<Extent>,
}

impl Gaps {
    /// Gaps for a plan within `budget` segments, and one within `also` too
    /// when asked and higher.
    pub(super) fn new(budget: u64, also: Option<u64>) -> Self {
        let widest = super::widest(budget, also);
        let also = also.filter(|&also| also > budget);
        Gaps {
            budget,
            also,
            shortlist: Shortlist::by_rank(widest),
            longest: Shortlist::by_length(widest),
            short_gaps_known: false,
            never_closed: Vec::new(),
            extents: Vec::new(),
        }
    }

    /// The higher of the budgets planned for.
    pub(super) fn widest(&self) -> u64 {
        self.also.unwrap_or(self.budget)
    }

    /// A copy to settle within `budget`, and `also` when asked and higher,
    /// both within [`widest`](Self::widest): the best gaps of the best are
    /// the best, so the plans are those of gaps gathered for these budgets
    /// alone (`optimize` plans one input at several caps from one scan).
    #[cfg_attr(not(feature = "module"), allow(dead_code))]
    pub(super) fn narrowed(&self, budget: u64, also: Option<u64>) -> Self {
        debug_assert!(super::widest(budget, also) <= self.widest());
        Gaps {
            budget,
            also: also.filter(|&also| also > budget),
            ..self.clone()
        }
    }

    /// Offers the closable gap `gap` between two greedy segments of memory
    /// `memory_index`.
    pub(super) fn offer(&mut self, memory_index: u32, index_type: IndexType, gap: Range) {
        self.shortlist.offer(memory_index, index_type, gap);
        // The greedy pass never closes a gap this long: it is one of
        // Wizer's. Shorter ones it may have closed come from a scan of their
        // own ([`Gaps::needs_short_gaps`]).
        if gap.len() >= NEVER_MERGED_GAP {
            self.longest.offer(memory_index, index_type, gap);
        }
    }

    /// Offers the closable gap `gap`, a whole stretch of zeros between two
    /// greedy segments, to Wizer's gaps too, whatever its length: the
    /// coarse route, which sees every stretch of some length or more
    /// ([`Gaps::see_short_gaps_from`]).
    pub(super) fn offer_stretch(&mut self, memory_index: u32, index_type: IndexType, gap: Range) {
        self.shortlist.offer(memory_index, index_type, gap);
        self.longest.offer(memory_index, index_type, gap);
    }

    /// Every stretch of zeros of `seen` zeros or more has been offered as a
    /// gap ([`Gaps::offer_stretch`], or never closes): when Wizer's longest
    /// gaps are all that long, no shorter one counts, and they are known.
    pub(super) fn see_short_gaps_from(&mut self, seen: u64) {
        let places = self.longest.places();
        if self.longest.kth_best_worth(places) >= seen {
            self.short_gaps_known = true;
        }
    }

    /// Whether Wizer's rule keeps a gap open that is shorter than
    /// [`NEVER_MERGED_GAP`], once every memory is in, and the short gaps
    /// are not known yet: then it may be one the greedy pass closed, and
    /// the gaps between the runs must be offered too
    /// ([`super::wizer::offer_short_gaps`]). (Rare when the cap binds hard:
    /// a large snapshot has more long gaps than the cap.)
    pub(super) fn needs_short_gaps(&self) -> bool {
        let places = self.longest.places();
        !self.short_gaps_known
            && places > 0
            && self.longest.kth_best_worth(places) < NEVER_MERGED_GAP
    }

    /// Takes every short gap that can count, as the workers found them
    /// ([`super::wizer::ShortGaps`]).
    pub(super) fn take_short_gaps(&mut self, short: Shortlist) {
        self.longest.absorb(short);
        self.short_gaps_known = true;
    }

    /// The final segments of each memory, in (memory, offset) order, before
    /// the 1 GiB re-split: every closable gap off the shortlist closes, then
    /// [`settle`] decides the shortlist. Then, when asked, those within
    /// `also`.
    pub(super) fn finish(self) -> (Segments, Option<Segments>) {
        let Gaps {
            budget,
            also,
            shortlist,
            longest,
            never_closed,
            mut extents,
            ..
        } = self;
        // Memories may have come in any order (the streaming planner); a
        // stable sort leaves those that came in order as they are.
        extents.sort_by_key(|e| e.memory_index);
        let fixed = fixed_cuts(never_closed, &extents);
        let mut ranked = Cuts::new(shortlist.into_best(), fixed.clone(), extents.clone());
        let mut longest = Cuts::new(longest.into_best(), fixed, extents);
        let also = also.map(|also| {
            // The shortlist may have been gathered for more than `also`
            // (a narrowed scan): its best, as for `budget` below.
            ranked.keep_best(places_for(also), Order::Rank);
            longest.keep_best(longest.places_left(also), Order::Length);
            match settle(&ranked, longest.section_bytes(&longest.all_open()), also) {
                Settled::Shortlist(open) => ranked.segments(&open),
                Settled::Longest => longest.segments(&longest.all_open()),
            }
        });
        ranked.keep_best(places_for(budget), Order::Rank);
        longest.keep_best(longest.places_left(budget), Order::Length);
        let wizer = longest.section_bytes(&longest.all_open());
        // Packed while the shortlist settles, whose lists take its room.
        let longest = longest.pack();
        let segments = match settle(&ranked, wizer, budget) {
            Settled::Shortlist(open) => ranked.into_segments(&open),
            Settled::Longest => {
                drop(ranked);
                let longest = longest.unpack();
                let open = longest.all_open();
                longest.into_segments(&open)
            }
        };
        (segments, also)
    }
}

#[cfg(test)]
impl Gaps {
    /// The layout Wizer's rule gives within the budget: the candidate
    /// [`settle`] weighs, packed and unpacked as [`Gaps::finish`] does.
    pub(super) fn wizer_layout(self) -> Segments {
        let mut extents = self.extents;
        extents.sort_by_key(|e| e.memory_index);
        let fixed = fixed_cuts(self.never_closed, &extents);
        let mut longest = Cuts::new(self.longest.into_best(), fixed, extents);
        longest.keep_best(longest.places_left(self.budget), Order::Length);
        let longest = longest.pack().unpack();
        longest.segments(&longest.all_open())
    }
}

/// The cuts that are always there, sorted by (memory, offset): the gaps
/// that never close, and each memory's end (an empty gap there).
fn fixed_cuts(mut never_closed: Vec<(u32, Range)>, extents: &[Extent]) -> Vec<(u32, Range)> {
    never_closed.extend(extents.iter().map(|e| {
        let end = Range {
            start: e.last,
            end: e.last,
        };
        (e.memory_index, end)
    }));
    never_closed.sort_unstable_by_key(|&(memory_index, gap)| (memory_index, gap.start));
    never_closed
}

/// Follows the greedy segments of every memory, in (memory, offset) order,
/// into [`Gaps`].
#[derive(Debug)]
pub(super) struct GapTracker {
    pub(super) gaps: Gaps,
    previous: Option<Range>,
}

impl GapTracker {
    pub(super) fn new(budget: u64, also: Option<u64>) -> Self {
        GapTracker {
            gaps: Gaps::new(budget, also),
            previous: None,
        }
    }

    pub(super) fn start_memory(&mut self) {
        self.previous = None;
    }

    pub(super) fn segment(&mut self, memory_index: u32, index_type: IndexType, r: Range) {
        let Some(prev) = self.previous.replace(r) else {
            self.gaps.extents.push(Extent {
                memory_index,
                index_type,
                first: r.start,
                last: r.end,
            });
            return;
        };
        self.gaps
            .extents
            .last_mut()
            .expect("extent of this memory")
            .last = r.end;
        let gap = Range {
            start: prev.end,
            end: r.start,
        };
        if may_close(prev, r) {
            self.gaps.offer(memory_index, index_type, gap);
        } else {
            self.gaps.never_closed.push((memory_index, gap));
        }
    }

    pub(super) fn finish(self) -> (Segments, Option<Segments>) {
        self.gaps.finish()
    }
}

/// The cuts [`settle`] starts from, in (memory, offset) order: each ends one
/// segment, which starts where the cut before it in the same memory ends, or
/// at the memory's first byte.
pub(super) struct Cuts {
    cuts: Vec<Gap>,
    /// The gaps of the cuts that never close, in the same order.
    fixed: Vec<(u32, Range)>,
    /// Sorted by memory index.
    extents: Vec<Extent>,
}

impl Cuts {
    /// The cuts `closable` and `fixed` (see [`fixed_cuts`]), both in
    /// (memory, offset) order, merged into `closable`'s buffer from the back.
    fn new(mut closable: Vec<Gap>, fixed: Vec<(u32, Range)>, extents: Vec<Extent>) -> Self {
        debug_assert!(closable.is_sorted_by_key(Gap::place_key));
        // (The index type of a cut that never closes is never asked for.)
        let fixed_cut = |&(memory_index, gap): &(u32, Range)| {
            Gap::new(memory_index, IndexType::I32, gap, FIXED)
        };
        merge_in_order(&mut closable, fixed.iter().map(fixed_cut));
        // A short gap Wizer's rule keeps may also be one that never closes
        // (two greedy segments too long to merge): one cut, the fixed one.
        closable.dedup_by_key(|c| c.place());
        Cuts {
            cuts: closable,
            fixed,
            extents,
        }
    }

    /// Cuts of one 32-bit memory 0 from `first` to `last`, closable at
    /// `gaps` (sorted): for tests that need no image.
    #[cfg(test)]
    pub(super) fn of_gaps(first: u64, last: u64, gaps: &[Range]) -> Self {
        let closable = gaps
            .iter()
            .map(|&g| Gap::new(0, IndexType::I32, g, g.len() as u32))
            .collect();
        let extent = Extent {
            memory_index: 0,
            index_type: IndexType::I32,
            first,
            last,
        };
        Cuts::new(closable, fixed_cuts(Vec::new(), &[extent]), vec![extent])
    }

    /// Whether more than `budget` cuts are open in every layout with the
    /// fewest bytes ([`Cuts::stays_open`]): then so many are in the exact
    /// settle's layout, which need not be made. Counted only as far as
    /// the answer is open.
    fn always_open_over(&self, budget: u64) -> bool {
        let mut open = 0;
        for i in 0..self.cuts.len() {
            let left = (self.cuts.len() - i) as u64;
            if open + left <= budget {
                return false;
            }
            open += u64::from(self.stays_open(i));
            if open > budget {
                return true;
            }
        }
        false
    }

    /// Whether cut `i` is open in every layout with the fewest bytes: a
    /// cut that never closes, or one whose gap is longer than the header
    /// after it and a length LEB as wide as its memory's span. Splitting a
    /// segment at such a gap saves the gap's zeros and costs that header
    /// and at most that LEB (the two parts' LEBs together exceed the
    /// whole's by at most the narrower one's), so a layout that closes it
    /// is never the smallest.
    fn stays_open(&self, i: usize) -> bool {
        let Extent {
            memory_index,
            index_type,
            first,
            last,
        } = self.extent(i);
        let gap = self.gap(i);
        self.is_fixed(i)
            || gap.len()
                > fixed_header_len(memory_index, index_type, gap.end) + uleb_len(last - first)
    }

    /// How many closable cuts may stay open within `budget` segments, after
    /// the cuts that never close.
    fn places_left(&self, budget: u64) -> u64 {
        budget.saturating_sub(self.fixed.len() as u64)
    }

    /// Every cut open.
    fn all_open(&self) -> Vec<bool> {
        vec![true; self.cuts.len()]
    }

    /// How many cuts there are, open or not.
    pub(super) fn len(&self) -> usize {
        self.cuts.len()
    }

    /// The gap of cut `i`: a segment ends where it starts.
    pub(super) fn gap(&self, i: usize) -> Range {
        cut_gap(&self.fixed, &self.cuts[i])
    }

    pub(super) fn memory_index(&self, i: usize) -> u32 {
        self.cuts[i].memory_index()
    }

    /// Whether cut `i` never closes.
    pub(super) fn is_fixed(&self, i: usize) -> bool {
        self.cuts[i].is_fixed()
    }

    /// Keeps the `places` best closable cuts in `order`, as a shortlist of
    /// that many would have, and every cut that never closes, in order.
    fn keep_best(&mut self, places: u64, order: Order) {
        let places = usize::try_from(places).unwrap_or(usize::MAX);
        if let Some(threshold) = Threshold::keeping(&self.cuts, places, order) {
            threshold.drop_below(&mut self.cuts, order);
        }
    }

    /// The segments the cuts that stay `open` end, in (memory, offset) order.
    pub(super) fn open_segments<'s>(
        &'s self,
        open: &'s [bool],
    ) -> impl Iterator<Item = (u32, Range)> + 's {
        let mut previous: Option<usize> = None;
        (0..self.cuts.len()).filter(|&i| open[i]).map(move |i| {
            let start = self.start(i, previous.replace(i));
            let end = self.gap(i).start;
            (self.memory_index(i), Range { start, end })
        })
    }

    /// Where the segment ending at cut `i` starts, `previous` being the open
    /// cut before it: where that cut's gap ends, or the memory's first byte
    /// when it is of another memory (or there is none).
    pub(super) fn start(&self, i: usize, previous: Option<usize>) -> u64 {
        match previous {
            Some(p) if self.memory_index(p) == self.memory_index(i) => self.gap(p).end,
            _ => self.extent(i).first,
        }
    }

    /// What the segments they end add to a data section: their bytes and
    /// the count's LEB, or `u64::MAX` when one is past 1 GiB (as closing by
    /// rank, or Wizer's rule, may make).
    fn section_bytes(&self, open: &[bool]) -> u64 {
        let count = open.iter().filter(|&&o| o).count() as u64;
        self.open_segments(open)
            .map(|(memory_index, r)| {
                if r.len() > MAX_SEGMENT_LEN {
                    return u64::MAX;
                }
                let index_type = self.extents[extent_at(&self.extents, memory_index)].index_type;
                segment_len(memory_index, index_type, r.start, r.len())
            })
            .fold(uleb_len(count), u64::saturating_add)
    }

    /// The segments the cuts that stay `open` end, as a list of their own.
    fn segments(&self, open: &[bool]) -> Segments {
        let mut segments = Segments::default();
        segments
            .ranges
            .reserve_exact(open.iter().filter(|&&o| o).count());
        for (memory_index, r) in self.open_segments(open) {
            segments.push(memory_index, r);
        }
        segments
    }

    /// The segments the cuts that stay `open` end, written over the cuts'
    /// own buffer (a 16-byte range over each 16-byte cut, collected in place
    /// by `std`, checked in debug builds): at the end of planning, a second
    /// list of up to a cap's worth is never made.
    fn into_segments(self, open: &[bool]) -> Segments {
        let Cuts {
            cuts,
            fixed,
            extents,
        } = self;
        let buffer = cuts.as_ptr() as usize;
        let mut memories: Vec<(u32, usize)> = Vec::with_capacity(extents.len());
        // The previous open cut: its memory and where its gap ends.
        let mut previous: Option<(u32, u64)> = None;
        let mut ranges: Vec<Range> = cuts
            .into_iter()
            .enumerate()
            .filter(|&(i, _)| open[i])
            .map(|(_, cut)| {
                let memory_index = cut.memory_index();
                let gap = cut_gap(&fixed, &cut);
                let start = match previous.replace((memory_index, gap.end)) {
                    Some((m, end)) if m == memory_index => end,
                    _ => extents[extent_at(&extents, memory_index)].first,
                };
                match memories.last_mut() {
                    Some((m, n)) if *m == memory_index => *n += 1,
                    _ => memories.push((memory_index, 1)),
                }
                Range {
                    start,
                    end: gap.start,
                }
            })
            .collect();
        // `std` does not promise the in-place collect: if it ever stopped,
        // only memory would grow (never the output), and the tests say so.
        debug_assert_eq!(
            ranges.as_ptr() as usize,
            buffer,
            "the final segments are no longer written over the cuts' buffer"
        );
        ranges.shrink_to_fit();
        Segments { ranges, memories }
    }

    /// What closing cut `i` adds to the data section (negative: saves),
    /// when the segments on either side of its gap span `merged`.
    pub(super) fn close_price(&self, i: usize, merged: Range) -> i64 {
        let Extent {
            memory_index,
            index_type,
            ..
        } = self.extent(i);
        let cost =
            |start: u64, end: u64| segment_len(memory_index, index_type, start, end - start) as i64;
        let gap = self.gap(i);
        cost(merged.start, merged.end) - cost(merged.start, gap.start) - cost(gap.end, merged.end)
    }

    /// The memory of cut `i`.
    pub(super) fn extent(&self, i: usize) -> Extent {
        self.extents[extent_at(&self.extents, self.memory_index(i))]
    }

    /// Gives `f` each cut as three numbers: its memory, its gap's length,
    /// and where its gap starts, past the start of the cut before when of
    /// the same memory (cuts are in order, a few bytes apart).
    fn numbers(&self, mut f: impl FnMut(u64)) {
        let mut last: Option<&Gap> = None;
        for c in &self.cuts {
            let start = match last.replace(c) {
                Some(p) if p.memory == c.memory => c.gap_start - p.gap_start,
                _ => c.gap_start,
            };
            f(u64::from(c.memory));
            f(u64::from(c.gap_len));
            f(start);
        }
    }

    /// The cuts in LEB128, as few bytes as that takes.
    fn pack(self) -> PackedCuts {
        let mut len = 0;
        self.numbers(|v| len += uleb_len(v));
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(usize::MAX));
        self.numbers(|v| push_uleb(&mut bytes, v));
        PackedCuts {
            bytes,
            cuts: self.cuts.len(),
            fixed: self.fixed,
            extents: self.extents,
        }
    }
}

/// [`Cuts`] in LEB128 ([`Cuts::pack`]): a few bytes a cut, not 16. Wizer's
/// cuts are held so while the shortlist's settle, and made again only when
/// their layout is the smallest.
struct PackedCuts {
    bytes: Vec<u8>,
    cuts: usize,
    fixed: Vec<(u32, Range)>,
    extents: Vec<Extent>,
}

impl PackedCuts {
    fn unpack(self) -> Cuts {
        let mut at = 0;
        let mut next = || read_uleb(&self.bytes, &mut at).expect("as many numbers as packed");
        let mut cuts: Vec<Gap> = Vec::with_capacity(self.cuts);
        for _ in 0..self.cuts {
            let memory = next() as u32;
            let gap_len = next() as u32;
            let start = next();
            let gap_start = match cuts.last() {
                Some(p) if p.memory == memory => p.gap_start + start,
                _ => start,
            };
            cuts.push(Gap {
                memory,
                gap_len,
                gap_start,
            });
        }
        Cuts {
            cuts,
            fixed: self.fixed,
            extents: self.extents,
        }
    }
}

/// The gap of `cut`: its own, or for a cut that never closes, the one
/// `fixed` (sorted by memory and offset) lists for it.
#[inline]
fn cut_gap(fixed: &[(u32, Range)], cut: &Gap) -> Range {
    if cut.is_fixed() {
        fixed_gap(fixed, cut)
    } else {
        cut.range()
    }
}

/// The gap of `cut`, a cut that never closes: the rare case of
/// [`cut_gap`], out of line so that the common one is inlined.
#[inline(never)]
fn fixed_gap(fixed: &[(u32, Range)], cut: &Gap) -> Range {
    let at = fixed
        .binary_search_by_key(&cut.place(), |&(m, gap)| (m, gap.start))
        .expect("a cut that never closes is listed");
    fixed[at].1
}

/// Where memory `memory_index` is in `extents` (sorted by memory index).
fn extent_at(extents: &[Extent], memory_index: u32) -> usize {
    extents
        .binary_search_by_key(&memory_index, |e| e.memory_index)
        .expect("an extent per memory with cuts")
}

/// No cut: either end of the list.
const NONE: u32 = u32::MAX;

/// The `next` of a cut that has closed.
const CLOSED: u32 = u32::MAX - 1;

/// Which cuts a plan keeps open: of the shortlist, or of the longest gaps.
enum Settled {
    /// The shortlist's cuts that stay open.
    Shortlist(Vec<bool>),
    /// Every cut of the longest gaps: Wizer's rule.
    Longest,
}

/// Step 3: the layout of the shortlist's cuts that adds the fewest bytes to
/// the data section ([`settle_exactly`]) when its count is within the cap;
/// else the smaller of two ways to close gaps until the cap is met (ties:
/// the first):
/// * [`settle_by_price`]: the shortlist's cheapest exact close first,
///   neighbours priced again after each;
/// * [`settle_by_rank`]: the shortlist's best-ranked gaps stay open, the
///   rest close.
///
/// Then Wizer's rule ([`super::wizer`]), the longest gaps open, adding
/// `wizer` bytes, if it is smaller still: so that the plan is never larger
/// than Wizer's, whatever the others miss (its gaps need not be on the
/// shortlist).
///
/// Neither of the two ways over the cap is always the smaller (closing the
/// cheapest first is myopic: closes can cost more together than ranks
/// foresee, or less); all of it is O(shortlist).
fn settle(ranked: &Cuts, wizer: u64, budget: u64) -> Settled {
    // One way at a time, each leaving only which cuts stay open (a byte a
    // cut): their working lists are never held together.
    let (open, bytes) = match settle_exactly_within(ranked, budget) {
        Some(open) => {
            let bytes = ranked.section_bytes(&open);
            (open, bytes)
        }
        None => smaller_within(ranked, budget),
    };
    if wizer < bytes {
        Settled::Longest
    } else {
        Settled::Shortlist(open)
    }
}

/// The exact layout ([`settle_exactly`]) if one is within `budget`
/// segments: of those with as few bytes, the one with the most segments;
/// if that one is over the cap, the one with the fewest, with the cuts
/// that cost nothing opened again, in order, up to the cap. (The fewest
/// first: when the cap binds, one pass tells.)
fn settle_exactly_within(ranked: &Cuts, budget: u64) -> Option<Vec<bool>> {
    if ranked.always_open_over(budget) {
        return None;
    }
    let (mut fewest, count) = settle_exactly(ranked, Ties::FewerSegments);
    if count > budget {
        return None;
    }
    let (most, most_count) = settle_exactly(ranked, Ties::MoreSegments);
    if most_count <= budget {
        return Some(most);
    }
    drop(most);
    reopen_free_cuts(ranked, &mut fewest, count, budget);
    Some(fewest)
}

/// Of [`settle_by_price`] and [`settle_by_rank`], the layout that adds fewer
/// bytes (ties: by price), and its bytes.
fn smaller_within(ranked: &Cuts, budget: u64) -> (Vec<bool>, u64) {
    let by_price = settle_by_price(ranked, budget);
    let by_rank = settle_by_rank(ranked, budget);
    let by_price_bytes = ranked.section_bytes(&by_price);
    let by_rank_bytes = ranked.section_bytes(&by_rank);
    if by_rank_bytes < by_price_bytes {
        (by_rank, by_rank_bytes)
    } else {
        (by_price, by_price_bytes)
    }
}

/// Closes shortlisted gaps, cheapest first, while over `budget` or while a
/// close makes the section smaller. Each close is priced exactly (the
/// merged segment against the two apart, length LEBs included), and the
/// gaps on either side are priced again after it. Ties close the lower
/// (memory, offset) first. Returns which cuts stay open.
fn settle_by_price(cuts: &Cuts, budget: u64) -> Vec<bool> {
    let mut list = OpenCuts::new(cuts);
    // (bytes added, cut): a cut's entry is stale once it has closed or been
    // priced again (a fresher entry is queued then). A close adds less than
    // the 1 GiB its merged segment may hold: 32 bits.
    // Room for a quarter more entries than cuts, taken at once, and made
    // again by dropping stale entries (`close_and_price`): a queue that
    // doubles as it goes leaves its old buffers behind in a Wasm memory.
    let n = cuts.cuts.len();
    let mut entries = Vec::with_capacity(n + n / 4 + 2);
    entries.extend((0..n).filter_map(|i| Some(Reverse((list.price(i)?, i as u32)))));
    let mut queue = BinaryHeap::from(entries);
    let mut segments = n as u64;
    while let Some(Reverse((added, i))) = queue.pop() {
        let i = i as usize;
        if !list.is_fresh(added, i) {
            continue;
        }
        if segments <= budget && added >= 0 {
            break;
        }
        list.close_and_price(i, &mut queue);
        segments -= 1;
    }
    (0..n).map(|i| !list.is_closed(i)).collect()
}

/// Keeps the best-ranked shortlisted gaps open, as many as the budget
/// leaves after the cuts that never close, and closes the rest. Returns
/// which cuts stay open.
fn settle_by_rank(cuts: &Cuts, budget: u64) -> Vec<bool> {
    let stay_open = usize::try_from(cuts.places_left(budget)).unwrap_or(usize::MAX);
    match Threshold::keeping(&cuts.cuts, stay_open, Order::Rank) {
        None => cuts.all_open(),
        Some(threshold) => {
            let mut below = threshold.below(Order::Rank);
            cuts.cuts.iter().map(|c| !below(c)).collect()
        }
    }
}

/// The cuts still open, as a list linked both ways: each open cut ends one
/// segment.
struct OpenCuts<'c> {
    cuts: &'c Cuts,
    prev: Vec<u32>,
    next: Vec<u32>,
}

impl<'c> OpenCuts<'c> {
    fn new(cuts: &'c Cuts) -> Self {
        let n = cuts.cuts.len() as u32;
        OpenCuts {
            cuts,
            prev: (0..n).map(|i| i.checked_sub(1).unwrap_or(NONE)).collect(),
            next: (1..=n).map(|i| if i == n { NONE } else { i }).collect(),
        }
    }

    fn is_closed(&self, i: usize) -> bool {
        self.next[i] == CLOSED
    }

    /// Where the segment ending at open cut `i` starts.
    fn start(&self, i: usize) -> u64 {
        let p = self.prev[i];
        self.cuts.start(i, (p != NONE).then_some(p as usize))
    }

    /// What closing open cut `i` adds to the file (negative: saves), or
    /// `None` when it never closes or the merged segment would pass 1 GiB.
    fn price(&self, i: usize) -> Option<i32> {
        if self.cuts.cuts[i].is_fixed() {
            return None;
        }
        // A closable gap is followed by a cut of its memory: its end at least.
        let merged = Range {
            start: self.start(i),
            end: self.cuts.gap(self.next[i] as usize).start,
        };
        // Under 1 GiB either way: the difference fits in 32 bits.
        (merged.len() <= MAX_SEGMENT_LEN).then(|| self.cuts.close_price(i, merged) as i32)
    }

    /// Closes open cut `i`; returns the open cuts whose segments changed.
    fn close(&mut self, i: usize) -> impl Iterator<Item = usize> + use<> {
        let (p, n) = (self.prev[i], self.next[i]);
        if p != NONE {
            self.next[p as usize] = n;
        }
        self.prev[n as usize] = p;
        self.next[i] = CLOSED;
        [p, n]
            .into_iter()
            .filter(|&j| j != NONE)
            .map(|j| j as usize)
    }

    /// Whether `added` is what closing cut `i` adds now: a queue entry
    /// that is not stale.
    fn is_fresh(&self, added: i32, i: usize) -> bool {
        !self.is_closed(i) && self.price(i) == Some(added)
    }

    /// Closes open cut `i` and queues the new prices of its neighbours (the
    /// segments on either side of the closed gap grew). A full queue drops
    /// its stale entries first, rather than doubling.
    fn close_and_price(&mut self, i: usize, queue: &mut BinaryHeap<Reverse<(i32, u32)>>) {
        for neighbour in self.close(i) {
            if let Some(added) = self.price(neighbour) {
                if queue.len() == queue.capacity() {
                    queue.retain(|&Reverse((a, j))| self.is_fresh(a, j as usize));
                    // Mostly fresh (re-priced the same): grow after all.
                    queue.reserve_exact(queue.len() / 2);
                }
                queue.push(Reverse((added, neighbour as u32)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cmp::Reverse;

    /// Gap lengths that tie often, that reach past the worths counted one
    /// by one ([`WORTH_BUCKETS`]), and up to 1 GiB.
    fn gap_len() -> impl Strategy<Value = u64> {
        prop_oneof![1u64..8, 1u64..3000, 1u64..(1 << 30)]
    }

    /// Runs and gaps of one memory from `first`: runs around the 1- and
    /// 2-byte length LEB boundaries, gaps about a header long.
    fn cuts_of_runs() -> impl Strategy<Value = (u64, u64, Vec<Range>)> {
        let run = prop_oneof![1u64..6, 120u64..136, 16_376u64..16_392];
        let first = prop_oneof![
            Just(0u64),
            60u64..70,
            8_180u64..8_200,
            (1u64 << 20)..(1 << 20) + 8
        ];
        (first, prop::collection::vec((run, 1u64..40), 1..60)).prop_map(|(first, parts)| {
            let mut at = first;
            let mut gaps = Vec::new();
            for (run, gap) in parts {
                at += run;
                gaps.push(Range {
                    start: at,
                    end: at + gap,
                });
                at += gap;
            }
            let last = gaps.pop().map_or(at, |g| g.start);
            (first, last, gaps)
        })
    }

    proptest! {
        /// The cuts counted as always open are open in the exact settle's
        /// layout with the fewest segments: the count is a bound that
        /// holds.
        #[test]
        fn cuts_counted_always_open_are_open_in_the_exact_layout(
            (first, last, gaps) in cuts_of_runs(),
        ) {
            let cuts = Cuts::of_gaps(first, last, &gaps);
            for ties in [Ties::FewerSegments, Ties::MoreSegments] {
                let (open, _) = settle_exactly(&cuts, ties);
                for (i, &open) in open.iter().enumerate() {
                    prop_assert!(open || !cuts.stays_open(i), "cut {i} of {gaps:?} closed");
                }
            }
        }

        /// However often it was cut on the way, a shortlist ends with the
        /// `places` best gaps offered, as sorting them all would pick, in
        /// (memory, offset) order; and its k-th best worth is theirs. The
        /// memories come in order, or the last first; some gaps may come
        /// through a second shortlist, absorbed.
        #[test]
        fn a_shortlist_keeps_the_best_in_order(
            gaps in prop::collection::vec((0u32..3, gap_len()), 0..3000),
            budget in 0u64..400,
            by_length: bool,
            last_memory_first: bool,
            second_from in prop_oneof![Just(0), 0usize..3000],
        ) {
            let mut ends = [0u64; 3];
            let mut gaps: Vec<(u32, Range)> = gaps
                .into_iter()
                .map(|(memory_index, len)| {
                    let start = ends[memory_index as usize] + 1;
                    ends[memory_index as usize] = start + len;
                    (memory_index, Range { start, end: start + len })
                })
                .collect();
            gaps.sort_by_key(|&(m, _)| if last_memory_first { Reverse(m) } else { Reverse(u32::MAX - m) });
            let (mut shortlist, order) = if by_length {
                (Shortlist::by_length(budget), Order::Length)
            } else {
                (Shortlist::by_rank(budget), Order::Rank)
            };
            let mut second = Shortlist::new(order, shortlist.places());
            for (i, &(m, gap)) in gaps.iter().enumerate() {
                let into = if i < second_from { &mut shortlist } else { &mut second };
                into.offer(m, IndexType::I32, gap);
            }
            shortlist.absorb(second);
            let mut best: Vec<Gap> = gaps
                .iter()
                .map(|&(m, gap)| Gap::new(m, IndexType::I32, gap, gap.len() as u32))
                .collect();
            best.sort_by_key(|g| Reverse(order.key(g)));
            best.truncate(shortlist.places() as usize);
            for k in [1, best.len() / 2, best.len()].into_iter().filter(|&k| k > 0 && k <= best.len()) {
                prop_assert_eq!(shortlist.kth_best_worth(k as u64), order.key(&best[k - 1]).worth());
            }
            let mut expected: Vec<(u32, u64)> = best.iter().map(Gap::place).collect();
            expected.sort_unstable();
            let kept: Vec<(u32, u64)> = shortlist.into_best().iter().map(Gap::place).collect();
            prop_assert_eq!(kept, expected);
        }
    }
}
