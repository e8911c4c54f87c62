//! Finding the non-zero runs of an image, a machine word at a time.
//!
//! A run is a maximal range of non-zero bytes. Zero bytes between runs are
//! what packing removes, so every zero byte must be seen, but no byte is
//! looked at on its own except at the ragged ends of a slice.

const WORD: usize = 8;
const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

#[inline(always)]
fn load(data: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(data[i..i + WORD].try_into().unwrap())
}

/// Index of the first non-zero byte at or after `i`, or `data.len()`.
#[inline]
pub(crate) fn next_nonzero(data: &[u8], mut i: usize) -> usize {
    // Skip zero pages 32 bytes at a time: snapshots are mostly zeros.
    while i + 4 * WORD <= data.len() {
        let any = load(data, i)
            | load(data, i + WORD)
            | load(data, i + 2 * WORD)
            | load(data, i + 3 * WORD);
        if any != 0 {
            break;
        }
        i += 4 * WORD;
    }
    while i + WORD <= data.len() {
        let w = load(data, i);
        if w != 0 {
            // Little-endian: the lowest set bit belongs to the first non-zero byte.
            return i + (w.trailing_zeros() / 8) as usize;
        }
        i += WORD;
    }
    while i < data.len() && data[i] == 0 {
        i += 1;
    }
    i
}

/// Index of the first zero byte at or after `i`, or `data.len()`.
#[inline]
pub(crate) fn next_zero(data: &[u8], mut i: usize) -> usize {
    while i + WORD <= data.len() {
        let w = load(data, i);
        // The classic "has a zero byte" test. It can flag a byte above a real
        // zero byte falsely, never one below, so the lowest flag is exact.
        let zeros = w.wrapping_sub(LOW_BITS) & !w & HIGH_BITS;
        if zeros != 0 {
            return i + (zeros.trailing_zeros() / 8) as usize;
        }
        i += WORD;
    }
    while i < data.len() && data[i] != 0 {
        i += 1;
    }
    i
}

/// Calls `f(start, end)` for each run of non-zero bytes in `data`, in order.
pub(crate) fn for_each_run(data: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    loop {
        let start = next_nonzero(data, i);
        if start == data.len() {
            return;
        }
        let end = next_zero(data, start + 1);
        f(start, end);
        if end == data.len() {
            return;
        }
        i = end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn runs_bytewise(data: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
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
            out.push((s, i));
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
        // 0x80 and 0x01 neighbours are the false-positive case of the zero test.
        let d = [0x01, 0x00, 0x80, 0x01, 0x01, 0x00, 0x00, 0x01, 0xff];
        assert_eq!(runs(&d), runs_bytewise(&d));
    }

    proptest! {
        #[test]
        fn matches_bytewise(data in proptest::collection::vec(
            prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(0x80u8), 1 => any::<u8>()], 0..300)) {
            prop_assert_eq!(runs(&data), runs_bytewise(&data));
        }
    }
}
