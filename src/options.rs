//! The options every entry point takes, and the segment caps they check.

use crate::error::{Error, ErrorKind, Result};

/// Wizer's cap on the number of data segments, segpack's default.
///
/// ```
/// assert_eq!(segpack::PackOptions::default().max_segments, segpack::DEFAULT_MAX_SEGMENTS);
/// ```
pub const DEFAULT_MAX_SEGMENTS: u32 = 10_000;

/// Engines reject modules with more data segments than this, so it is the
/// largest `max_segments` accepted.
///
/// ```
/// let options = segpack::PackOptions::default().with_max_segments(segpack::ENGINE_MAX_SEGMENTS + 1);
/// let error = segpack::Packer::new(&options).unwrap_err();
/// assert_eq!(error.kind(), segpack::ErrorKind::InvalidOptions);
/// ```
pub const ENGINE_MAX_SEGMENTS: u32 = 100_000;

/// How to pack. Built from [`Default`] with the `with_` methods, so that a
/// new option is not a breaking change.
///
/// ```
/// let options = segpack::PackOptions::default().with_max_segments(100_000).with_threads(2);
/// assert_eq!(options.max_segments, 100_000);
/// assert!(!options.zero_filled_imports);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackOptions {
    /// The most active segments a module may have after packing (1 to
    /// [`ENGINE_MAX_SEGMENTS`]). Over it, the cheapest gaps are closed first.
    pub max_segments: u32,
    /// Treat imported memories as zero-filled at instantiation, so they can be
    /// packed. Only sound when the host really hands in fresh zeroed memory.
    pub zero_filled_imports: bool,
    /// Worker threads for scanning; 0 means one per core. The default is 1:
    /// a producer usually runs inside its own thread pool (or on wasm32
    /// without threads), and segpack must not start threads it was not
    /// asked for. The output does not depend on it.
    pub threads: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            max_segments: DEFAULT_MAX_SEGMENTS,
            zero_filled_imports: false,
            threads: 1,
        }
    }
}

impl PackOptions {
    /// Sets [`max_segments`](Self::max_segments).
    pub fn with_max_segments(mut self, max_segments: u32) -> Self {
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

    pub(crate) fn check(&self) -> Result<()> {
        if self.max_segments == 0 || self.max_segments > ENGINE_MAX_SEGMENTS {
            return Err(Error::new(
                ErrorKind::InvalidOptions,
                format!(
                    "max_segments must be between 1 and {ENGINE_MAX_SEGMENTS} (engines reject more), not {}",
                    self.max_segments
                ),
                None,
            ));
        }
        Ok(())
    }
}
