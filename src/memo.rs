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

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::parse::Binary;
use crate::plan::{self, MemoryImage, ScannedGaps};

/// Parses, images and scans, by where their binary or module starts in the
/// input. Held while one input is planned several times with the same
/// options but the cap (what may be packed, and so the images, depends on
/// the others); freed with it.
#[derive(Default)]
pub(crate) struct Memo<'a> {
    binaries: RefCell<HashMap<usize, Rc<Binary<'a>>>>,
    modules: RefCell<HashMap<usize, Scan<'a>>>,
}

/// One module's images and its scan, settled at any budget up to the one
/// it was made for.
struct Scan<'a> {
    images: Vec<MemoryImage<'a>>,
    scanned: ScannedGaps,
}

impl<'a> Memo<'a> {
    /// The binary starting at `start`, parsed by `parse` the first time.
    pub(crate) fn binary<E>(
        &self,
        start: usize,
        parse: impl FnOnce() -> Result<Binary<'a>, E>,
    ) -> Result<Rc<Binary<'a>>, E> {
        if let Some(binary) = self.binaries.borrow().get(&start) {
            return Ok(Rc::clone(binary));
        }
        let binary = Rc::new(parse()?);
        self.binaries.borrow_mut().insert(start, Rc::clone(&binary));
        Ok(binary)
    }

    /// The images of the module starting at `start`, if scanned before.
    pub(crate) fn images(&self, start: usize) -> Option<Vec<MemoryImage<'a>>> {
        self.modules.borrow().get(&start).map(|m| m.images.clone())
    }

    /// The scan of the module starting at `start` within `budget` (and
    /// `also`): the one made before, narrowed, when it was made for as
    /// much; else `scan`'s, kept with `images` for the next time.
    pub(crate) fn scanned(
        &self,
        start: usize,
        budget: u64,
        also: Option<u64>,
        images: &[MemoryImage<'a>],
        scan: impl FnOnce() -> ScannedGaps,
    ) -> ScannedGaps {
        if let Some(module) = self.modules.borrow().get(&start)
            && module.scanned.widest() >= plan::widest(budget, also)
        {
            return module.scanned.narrowed(budget, also);
        }
        let scanned = scan();
        let kept = Scan {
            images: images.to_vec(),
            scanned: scanned.clone(),
        };
        self.modules.borrow_mut().insert(start, kept);
        scanned
    }
}
