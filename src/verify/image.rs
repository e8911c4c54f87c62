//! verify's own reading of SPEC §2 and of a memory's image, written apart
//! from packing's (`crate::rules`, `crate::plan::overlay`) on purpose: a
//! wrong rule in packing must not be checked against itself.

use super::{Module, Piece, Placement};

/// SPEC §2 as verify reads it: why memory `m` of `module` may not be
/// re-packed, if it may not.
pub(super) fn not_packable(
    module: &Module<'_>,
    m: usize,
    zero_filled_imports: bool,
) -> Option<&'static str> {
    let imported = module.memories[m].imported;
    if imported && !zero_filled_imports {
        return Some("imported memory");
    }
    let mut dynamic_here = false;
    let mut dynamic_anywhere = false;
    for s in &module.segments {
        match s.placement {
            Placement::Dynamic { memory_index } => {
                dynamic_anywhere = true;
                dynamic_here |= memory_index as usize == m;
            }
            Placement::Constant {
                memory_index,
                offset,
            } if memory_index as usize == m
                && u128::from(offset) + s.data.len() as u128 > u128::from(u64::MAX) =>
            {
                return Some("a segment ends at 2^64");
            }
            _ => {}
        }
    }
    if dynamic_here {
        Some("a segment's offset is not a constant")
    } else if imported && dynamic_anywhere {
        Some("imported memory, and another segment's offset is not a constant")
    } else {
        None
    }
}

/// A memory's image as disjoint pieces in address order: segments painted
/// from the last one back, each byte taken from the last segment that
/// writes it (packing's overlay sweeps forward instead).
pub(super) fn overlay<'a>(segments: &[(u64, &'a [u8])]) -> Vec<Piece<'a>> {
    use std::collections::BTreeMap;
    // Painted ranges, start -> end, disjoint and not touching.
    let mut painted: BTreeMap<u64, u64> = BTreeMap::new();
    let mut pieces = Vec::new();
    for &(offset, data) in segments.iter().rev() {
        let (start, end) = (offset, offset + data.len() as u64);
        if start == end {
            continue;
        }
        // The painted ranges that overlap or touch start..end, merged away.
        let mut from = start;
        let mut to = end;
        let first = painted
            .range(..=start)
            .next_back()
            .filter(|(_, e)| **e >= start)
            .map(|(s, _)| *s);
        let overlapping: Vec<(u64, u64)> = painted
            .range(first.unwrap_or(start)..=end)
            .map(|(s, e)| (*s, *e))
            .collect();
        let mut cursor = start;
        for (s, e) in &overlapping {
            if *s > cursor {
                pieces.push(Piece {
                    offset: cursor,
                    data: &data[(cursor - start) as usize..(*s - start) as usize],
                });
            }
            cursor = cursor.max(*e);
            from = from.min(*s);
            to = to.max(*e);
            painted.remove(s);
        }
        if cursor < end {
            pieces.push(Piece {
                offset: cursor,
                data: &data[(cursor - start) as usize..],
            });
        }
        painted.insert(from, to);
    }
    pieces.sort_unstable_by_key(|p| p.offset);
    pieces
}

/// Walks two images (sorted, disjoint pieces, zeros elsewhere) in address
/// order and returns the first address where they differ, with the expected
/// and found bytes. Memory is O(1): slices of the pieces are compared in
/// place.
pub(super) fn compare_images(a: &[Piece<'_>], b: &[Piece<'_>]) -> Option<(u64, u8, u8)> {
    let end = |p: &Piece<'_>| p.offset + p.data.len() as u64;
    // Where each side is at `pos`: the rest of the piece covering it, and
    // where that state ends.
    let at = |pieces: &[Piece<'_>], i: usize, pos: u64| -> (bool, u64) {
        match pieces.get(i) {
            Some(p) if p.offset <= pos => (true, end(p)),
            Some(p) => (false, p.offset),
            None => (false, u64::MAX),
        }
    };
    fn slice<'p>(p: &Piece<'p>, from: u64, to: u64) -> &'p [u8] {
        &p.data[(from - p.offset) as usize..(to - p.offset) as usize]
    }
    let (mut i, mut j, mut pos) = (0, 0, 0u64);
    loop {
        while a.get(i).is_some_and(|p| end(p) <= pos) {
            i += 1;
        }
        while b.get(j).is_some_and(|p| end(p) <= pos) {
            j += 1;
        }
        if i == a.len() && j == b.len() {
            return None;
        }
        let (in_a, a_next) = at(a, i, pos);
        let (in_b, b_next) = at(b, j, pos);
        let next = a_next.min(b_next);
        match (in_a, in_b) {
            (false, false) => {}
            (true, false) => {
                let x = slice(&a[i], pos, next);
                if let Some(k) = x.iter().position(|&v| v != 0) {
                    return Some((pos + k as u64, x[k], 0));
                }
            }
            (false, true) => {
                let y = slice(&b[j], pos, next);
                if let Some(k) = y.iter().position(|&v| v != 0) {
                    return Some((pos + k as u64, 0, y[k]));
                }
            }
            (true, true) => {
                let (x, y) = (slice(&a[i], pos, next), slice(&b[j], pos, next));
                if x != y {
                    let k = x.iter().zip(y).position(|(p, q)| p != q).expect("differ");
                    return Some((pos + k as u64, x[k], y[k]));
                }
            }
        }
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(segs: &[(u64, &'static [u8])]) -> Vec<Piece<'static>> {
        overlay(segs)
    }

    /// The image as bytes, the plain definition: zeros, then each segment
    /// written in order.
    fn image_bytewise(segs: &[(u64, Vec<u8>)], len: usize) -> Vec<u8> {
        let mut image = vec![0u8; len];
        for (offset, data) in segs {
            image[*offset as usize..*offset as usize + data.len()].copy_from_slice(data);
        }
        image
    }

    proptest::proptest! {
        /// verify's overlay (painted from the back) and packing's (swept
        /// forward) are written apart; both must give the plain image.
        #[test]
        fn both_overlays_give_the_plain_image(
            segs in proptest::collection::vec(
                (0u64..200, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)),
                0..12,
            )
        ) {
            let plain = image_bytewise(&segs, 300);
            let borrowed: Vec<(u64, &[u8])> = segs.iter().map(|(o, d)| (*o, d.as_slice())).collect();
            for pieces in [overlay(&borrowed), crate::plan::overlay(&borrowed)] {
                let mut image = vec![0u8; 300];
                let mut last_end = 0;
                for p in &pieces {
                    proptest::prop_assert!(p.offset >= last_end, "pieces overlap or are out of order");
                    last_end = p.offset + p.data.len() as u64;
                    image[p.offset as usize..last_end as usize].copy_from_slice(p.data);
                }
                proptest::prop_assert_eq!(&image, &plain);
            }
        }
    }

    #[test]
    fn images_equal_when_only_zeros_move() {
        let a = pieces(&[(0, b"a\0\0b"), (10, b"\0\0\0")]);
        let b = pieces(&[(0, b"a"), (3, b"b")]);
        assert_eq!(compare_images(&a, &b), None);
        assert_eq!(compare_images(&b, &a), None);
    }

    #[test]
    fn the_first_differing_byte_is_named() {
        let a = pieces(&[(0, b"abc"), (100, b"x")]);
        let b = pieces(&[(0, b"abd"), (100, b"x")]);
        assert_eq!(compare_images(&a, &b), Some((2, b'c', b'd')));
        let c = pieces(&[(0, b"abc")]);
        assert_eq!(compare_images(&a, &c), Some((100, b'x', 0)));
        assert_eq!(compare_images(&c, &a), Some((100, 0, b'x')));
    }

    #[test]
    fn later_writers_win_in_both_images() {
        let a = pieces(&[(0, b"aaaa"), (1, b"\0\0")]);
        let b = pieces(&[(0, b"a"), (3, b"a")]);
        assert_eq!(compare_images(&a, &b), None);
    }
}
