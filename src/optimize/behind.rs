//! The input released behind what reads it (`optimize_with_mapped`): each
//! candidate is compressed whole, and its samples are read across the whole
//! file, so without this a mapped input stays mapped in whole.

use std::ops::Range;

use super::Release;

/// The most input bytes handed to the codec at once, and the stretch of
/// the input read after which it is released.
const STEP: usize = 4 << 20;

/// What a walk of the input has read for good, released in stretches: the
/// pages it maps in (and those the kernel maps around each, 64 KiB by
/// default) leave the resident set behind it, and the caller is told of
/// few stretches however far apart the reads are.
pub(super) struct Behind<'i, 'r> {
    input: &'i [u8],
    release: Release<'r>,
    /// The stretch read since the last release, the bytes between its
    /// reads included.
    stretch: Option<Range<usize>>,
    /// The bytes read in it.
    read: usize,
}

impl<'i, 'r> Behind<'i, 'r> {
    pub(super) fn new(input: &'i [u8], release: Release<'r>) -> Self {
        Behind {
            input,
            release,
            stretch: None,
            read: 0,
        }
    }

    /// `bytes` were read for good, if they lie in the input. The stretch
    /// is released once it spans [`STEP`] bytes and holds a sixteenth of
    /// that in reads, or spans four times that: reads far apart are not
    /// released one at a time, nor do they map in much before a release.
    pub(super) fn read(&mut self, bytes: &[u8]) {
        let Some(at) = crate::emit::offset_in(self.input, bytes).filter(|_| !bytes.is_empty())
        else {
            return;
        };
        let stretch = self.stretch.get_or_insert(at..at);
        stretch.start = stretch.start.min(at);
        stretch.end = stretch.end.max(at + bytes.len());
        self.read += bytes.len();
        let span = stretch.len();
        if span >= STEP && (self.read >= STEP / 16 || span >= 4 * STEP) {
            self.flush();
        }
    }

    /// Releases what was read since the last release.
    pub(super) fn flush(&mut self) {
        if let Some(stretch) = self.stretch.take() {
            (self.release)(&self.input[stretch]);
        }
        self.read = 0;
    }
}

impl Drop for Behind<'_, '_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `slices` as the codec is to take them, those of `input` cut into steps
/// of at most [`STEP`] bytes, each counted as read ([`Behind`]) when the
/// codec asks for the next (it has taken it by then), the last when it
/// asks past the end. The same bytes in the same order: a codec's size does not
/// depend on the slices ([`Compression::compressed_len`](crate::Compression::compressed_len)).
pub(super) fn released_behind<'b>(
    mut slices: impl Iterator<Item = &'b [u8]>,
    input: &[u8],
    release: Release<'_>,
) -> impl Iterator<Item = &'b [u8]> {
    let mut behind = Behind::new(input, release);
    let mut pending: &[u8] = &[];
    let mut handed: &[u8] = &[];
    std::iter::from_fn(move || {
        behind.read(std::mem::take(&mut handed));
        while pending.is_empty() {
            let Some(next) = slices.next() else {
                // Asked past the end: the codec has taken every byte.
                behind.flush();
                return None;
            };
            pending = next;
        }
        let step = match crate::emit::offset_in(input, pending) {
            Some(_) => STEP,
            None => usize::MAX,
        };
        let (next, rest) = pending.split_at(pending.len().min(step));
        pending = rest;
        handed = next;
        Some(next)
    })
}

#[cfg(test)]
mod tests {
    use super::{Behind, STEP, released_behind};
    use std::sync::Mutex;

    /// The stretches released, as ranges of `input`.
    fn releases(input: &[u8], walk: impl FnOnce(&(dyn Fn(&[u8]) + Sync))) -> Vec<(usize, usize)> {
        let released = Mutex::new(Vec::new());
        walk(&|bytes: &[u8]| {
            let at = crate::emit::offset_in(input, bytes).expect("input bytes");
            released.lock().unwrap().push((at, at + bytes.len()));
        });
        released.into_inner().unwrap()
    }

    /// Reads in order are released a step at a time, each stretch once
    /// read, the rest at the end; bytes not of the input are never told.
    #[test]
    fn reads_in_order_are_released_a_step_at_a_time() {
        let input = vec![1u8; 3 * STEP + 100];
        let other = vec![2u8; 1000];
        let released = releases(&input, |release| {
            let mut behind = Behind::new(&input, release);
            for chunk in input.chunks(STEP / 4) {
                behind.read(chunk);
                behind.read(&other);
            }
        });
        assert_eq!(
            released,
            [
                (0, STEP),
                (STEP, 2 * STEP),
                (2 * STEP, 3 * STEP),
                (3 * STEP, 3 * STEP + 100)
            ]
        );
    }

    /// Small reads far apart (a sample's windows) are released in a few
    /// long stretches, one for four steps of the input, not one at a time;
    /// and every one of them is.
    #[test]
    fn small_reads_far_apart_are_released_in_few_stretches() {
        let input = vec![0u8; 12 * STEP];
        // (No product past 32 bits: this runs on wasm32 too.)
        let at: Vec<usize> = (0..500).map(|i| i * (12 * STEP / 500) + 7).collect();
        let released = releases(&input, |release| {
            let mut behind = Behind::new(&input, release);
            for &a in &at {
                behind.read(&input[a..a + 100]);
            }
        });
        // 500 reads over 12 steps.
        assert_eq!(released.len(), 3);
        for a in at {
            assert!(released.iter().any(|r| r.0 <= a && a + 100 <= r.1), "{a}");
        }
        assert!(released.iter().all(|r| r.1 - r.0 <= 5 * STEP));
    }

    /// The codec gets the same bytes in the same order, the input's cut
    /// into steps; each step is released only once the codec has asked for
    /// what comes after it.
    #[test]
    fn the_codec_gets_the_same_bytes_and_takes_each_before_it_is_released() {
        let input: Vec<u8> = (0..2 * STEP + 5000).map(|i| i as u8).collect();
        let owned = vec![9u8; 300];
        let slices = [&input[..10], &owned[..], &input[100..], &owned[..5]];
        let released = Mutex::new(Vec::new());
        let release = |bytes: &[u8]| {
            let at = crate::emit::offset_in(&input, bytes).expect("input bytes");
            released.lock().unwrap().push(at + bytes.len());
        };
        let mut handed = Vec::new();
        for slice in released_behind(slices.into_iter(), &input, &release) {
            // Nothing handed out so far is past what is released.
            let end = crate::emit::offset_in(&input, slice).map(|at| at + slice.len());
            assert!(
                released
                    .lock()
                    .unwrap()
                    .iter()
                    .all(|&r| end.is_none_or(|e| r < e))
            );
            assert!(slice.len() <= STEP);
            handed.extend_from_slice(slice);
        }
        assert_eq!(handed, slices.concat());
        assert_eq!(released.lock().unwrap().last(), Some(&input.len()));
    }
}
