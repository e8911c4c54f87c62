//! What planning one input at several caps shares (`optimize`): each binary
//! parsed once, and each module's images and scan made once, at the
//! highest cap asked for, then settled at every cap.
//!
//! Planning a module is a parse (every segment header), its images (the
//! pieces, sorted when the segments are out of order) and a scan of every
//! image byte, then settling the cap over O(cap) gaps. Only the settle
//! depends on the cap: a scan gathered for the highest cap holds the best
//! gaps for every lower one (`plan::cap`), so settling it lower gives what
//! a scan for the lower cap alone would give, byte for byte.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::parse::Binary;
use crate::plan::{self, MemoryImage, ScannedGaps};

/// Parses, images and scans, by where their binary or module starts in the
/// input. Held while one input is planned several times with the same
/// options but the cap (what may be packed, and so the images, depends on
/// the others); freed with it. `Sync`: `optimize` plans several caps at
/// once from one memo.
#[derive(Default)]
pub(crate) struct Memo<'a> {
    binaries: RwLock<HashMap<usize, Arc<Binary<'a>>>>,
    modules: RwLock<HashMap<usize, Scan<'a>>>,
    /// Parses only, no scans (`inspect`, which plans once and reads the
    /// modules again).
    parses_only: bool,
}

/// One module's images and its scan, settled at any budget up to the one
/// it was made for.
struct Scan<'a> {
    images: Arc<[MemoryImage<'a>]>,
    scanned: ScannedGaps,
}

impl<'a> Memo<'a> {
    /// A memo that keeps each binary's parse, and no scan.
    pub(crate) fn parses_only() -> Self {
        Memo {
            parses_only: true,
            ..Memo::default()
        }
    }

    /// The binary starting at `start`, parsed by `parse` the first time.
    pub(crate) fn binary<E>(
        &self,
        start: usize,
        parse: impl FnOnce() -> Result<Binary<'a>, E>,
    ) -> Result<Arc<Binary<'a>>, E> {
        if let Some(binary) = read(&self.binaries).get(&start) {
            return Ok(Arc::clone(binary));
        }
        let binary = Arc::new(parse()?);
        write(&self.binaries).insert(start, Arc::clone(&binary));
        Ok(binary)
    }

    /// The images of the module starting at `start`, if scanned before.
    pub(crate) fn images(&self, start: usize) -> Option<Arc<[MemoryImage<'a>]>> {
        read(&self.modules)
            .get(&start)
            .map(|m| Arc::clone(&m.images))
    }

    /// The scan of the module starting at `start` within `budget` (and
    /// `also`): the one made before, narrowed, when it was made for as
    /// much; else `scan`'s, kept with `images` for the next time.
    pub(crate) fn scanned(
        &self,
        start: usize,
        budget: u64,
        also: Option<u64>,
        images: &Arc<[MemoryImage<'a>]>,
        scan: impl FnOnce() -> ScannedGaps,
    ) -> ScannedGaps {
        if let Some(module) = read(&self.modules).get(&start)
            && module.scanned.widest() >= plan::widest(budget, also)
        {
            return module.scanned.narrowed(budget, also);
        }
        let scanned = scan();
        if self.parses_only {
            return scanned;
        }
        let kept = Scan {
            images: Arc::clone(images),
            scanned: scanned.clone(),
        };
        write(&self.modules).insert(start, kept);
        scanned
    }
}

/// Read access to one of the memo's maps. A panic while it was held (the
/// memo's own code does not panic) leaves nothing half-written: each map
/// only gains whole entries.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write access to one of the memo's maps (as [`read`]).
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
