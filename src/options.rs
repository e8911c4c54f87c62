//! The options every entry point takes, and the segment cap they carry.

use std::fmt;

/// A cap on the number of active data segments: a whole number from 1 to
/// [`MaxSegments::ENGINE_LIMIT`], checked where it is made, so every
/// [`PackOptions`] is valid and the entry points that take one need no
/// error for it. `Send` and `Sync`.
///
/// ```
/// use segpack::MaxSegments;
/// assert_eq!(MaxSegments::default(), MaxSegments::DEFAULT);
/// assert_eq!(MaxSegments::new(100_000), Some(MaxSegments::ENGINE_LIMIT));
/// assert_eq!(MaxSegments::new(0), None);
/// assert_eq!(MaxSegments::new(100_001), None);
/// // A constant cap other than the two above, checked at compile time:
/// const CAP: MaxSegments = match MaxSegments::new(5_000) {
///     Some(cap) => cap,
///     None => panic!("5,000 is a valid cap"),
/// };
/// assert_eq!(CAP.get(), 5_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MaxSegments(u32);

impl MaxSegments {
    /// Wizer's cap, 10,000 (weval copied it), and segpack's default.
    pub const DEFAULT: MaxSegments = MaxSegments(10_000);

    /// 100,000: engines reject modules with more data segments than this, so
    /// it is the largest cap (and wasm-opt's).
    pub const ENGINE_LIMIT: MaxSegments = MaxSegments(100_000);

    /// `max_segments` as a cap, or `None` when it is 0 or over
    /// [`ENGINE_LIMIT`](Self::ENGINE_LIMIT).
    pub const fn new(max_segments: u32) -> Option<MaxSegments> {
        if max_segments == 0 || max_segments > Self::ENGINE_LIMIT.0 {
            None
        } else {
            Some(MaxSegments(max_segments))
        }
    }

    /// The cap as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for MaxSegments {
    fn default() -> Self {
        MaxSegments::DEFAULT
    }
}

impl fmt::Display for MaxSegments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How to pack. Built from [`Default`] with the `with_` methods, so that a
/// new option is not a breaking change; every value it can hold is valid.
/// `Send` and `Sync`.
///
/// ```
/// use segpack::{MaxSegments, PackOptions};
/// let options = PackOptions::default().with_max_segments(MaxSegments::ENGINE_LIMIT).with_threads(2);
/// assert_eq!(options.max_segments.get(), 100_000);
/// assert!(!options.zero_filled_imports);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackOptions {
    /// The most active segments a module may have after packing. Over it,
    /// the cheapest gaps are closed first.
    pub max_segments: MaxSegments,
    /// Treat imported memories as zero-filled at instantiation, so they can be
    /// packed. Only sound when the host really hands in fresh zeroed memory.
    pub zero_filled_imports: bool,
    /// Worker threads for validating function bodies, for scanning, and
    /// for `optimize`'s compressions; 0 (the default) means one per core,
    /// 1 does everything
    /// on the calling thread. With the `rayon` feature the scan runs
    /// on the rayon pool the call is made from, and this caps how many of
    /// its threads it keeps busy (0: all of them). Without `parallel` and
    /// `rayon` everything runs on the calling thread. The output does not
    /// depend on it.
    pub threads: usize,
    /// Also work out, in the same planning pass, what packing would give at
    /// [`MaxSegments::ENGINE_LIMIT`] when `max_segments` is below it:
    /// [`PackReport::at_engine_limit`](crate::PackReport::at_engine_limit).
    /// The output does not change. Costs the planning of the higher cap
    /// (its shortlist of gaps, and often a full scan where the lower cap
    /// needed only the long gaps): for reports, not for producers.
    pub report_engine_limit: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            max_segments: MaxSegments::DEFAULT,
            zero_filled_imports: false,
            threads: 0,
            report_engine_limit: false,
        }
    }
}

impl PackOptions {
    /// Sets [`max_segments`](Self::max_segments).
    pub fn with_max_segments(mut self, max_segments: MaxSegments) -> Self {
        self.max_segments = max_segments;
        self
    }

    /// Sets [`zero_filled_imports`](Self::zero_filled_imports).
    pub fn with_zero_filled_imports(mut self, zero_filled_imports: bool) -> Self {
        self.zero_filled_imports = zero_filled_imports;
        self
    }

    /// Sets [`threads`](Self::threads).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Sets [`report_engine_limit`](Self::report_engine_limit).
    pub fn with_report_engine_limit(mut self, report_engine_limit: bool) -> Self {
        self.report_engine_limit = report_engine_limit;
        self
    }
}
