//! Where the ranking samples: windows of the memories' address space.

use super::behind::Behind;
use super::walk::{Item, for_each_segment};
use super::{CUT_CONTEXT, MIN_WINDOW, Release, WINDOWS};
use crate::Plan;

/// Where the ranking samples: windows of the memories' address space, the
/// same for every candidate, so that two candidates differ in the sample
/// exactly as they differ there (headers, and zeros in or out of segments).
pub(super) struct Windows {
    /// Per memory index: the lowest and highest address a segment covers
    /// in the raw plan (empty for a memory without).
    spans: Vec<(u64, u64)>,
    /// The windows, on the line of all spans one after the other:
    /// (start, end), sorted.
    windows: Vec<(u64, u64)>,
}

impl Windows {
    /// Windows over the address space of `plan`'s active segments (the raw
    /// plan: every candidate's cuts are some of its cuts) such that a
    /// candidate's sample holds about `share` bytes: its bytes in the
    /// windows, at most their length, and the headers of its segments that
    /// start in them, at most the raw plan's there. The whole space when
    /// `whole` (every candidate's data sections fit in the share).
    pub(super) fn new(plan: &Plan<'_>, share: u64, whole: bool) -> Windows {
        let mut spans: Vec<(u64, u64)> = Vec::new();
        let mut headers = 0u64;
        for_each_segment(plan, |item| {
            if let Item::Header(memory, offset, header, len) = item {
                headers += header.len() as u64;
                let memory = memory as usize;
                if len > 0 {
                    if spans.len() <= memory {
                        spans.resize(memory + 1, (u64::MAX, 0));
                    }
                    let span = &mut spans[memory];
                    span.0 = span.0.min(offset);
                    span.1 = span.1.max(offset + len);
                }
            }
            u64::MAX
        });
        for span in &mut spans {
            if span.0 > span.1 {
                *span = (0, 0);
            }
        }
        let line = line_len(&spans);
        let windows = if whole || line + headers <= share {
            vec![(0, line)]
        } else {
            // A fraction `share / (line + headers)` of the line, so that its
            // bytes and the headers in it make about `share`: in windows of
            // MIN_WINDOW at least where the share allows, at most WINDOWS,
            // spread evenly.
            let length = (line as u128 * share as u128 / (line + headers) as u128) as u64;
            let count = (length / MIN_WINDOW).clamp(1, WINDOWS);
            let each = (length / count).max(1);
            (0..count)
                .map(|i| {
                    let start = (i as u128 * line as u128 / count as u128) as u64;
                    (start, (start + each).min(line))
                })
                .collect()
        };
        Windows { spans, windows }
    }

    /// Windows on the same line around the cuts where `plans` differ: the
    /// segment starts that some of them have and others do not. Each window
    /// holds the zeros before such a start (where a plan that closed the
    /// gap writes them, whole: a window that cut a long run of zeros short
    /// would make closing it look cheaper than it is) and as many bytes
    /// either side as `share` leaves ([`CUT_CONTEXT`]); every k-th such
    /// cut when their windows would hold more than `share` in all. Near
    /// caps differ in few of their cuts: windows spread evenly mostly miss
    /// them, and the candidates then tie (on the sample snapshot, caps 3 to
    /// 14 all tied for zstd).
    pub(super) fn around<'p, 'a: 'p>(
        &self,
        plans: impl Iterator<Item = &'p Plan<'a>>,
        share: u64,
    ) -> Windows {
        // Every plan's segment starts on the line, each with the zeros
        // before it (none for a memory's first).
        let mut count = 0;
        let mut starts: Vec<(u64, u64)> = Vec::new();
        for plan in plans {
            count += 1;
            let mut end: Option<(u32, u64)> = None;
            for_each_segment(plan, |item| {
                if let Item::Header(memory, offset, _, len) = item {
                    let zeros = match end {
                        Some((m, e)) if m == memory && e <= offset => offset - e,
                        _ => 0,
                    };
                    starts.extend(self.position(memory, offset).map(|p| (p, zeros)));
                    if len > 0 {
                        end = Some((memory, offset + len));
                    }
                }
                u64::MAX
            });
        }
        starts.sort_unstable();
        let differing: Vec<(u64, u64)> = starts
            .chunk_by(|a, b| a.0 == b.0)
            .filter(|same| same.len() < count)
            .map(|same| same[0])
            .collect();
        // The context the share leaves either side of each cut's zeros.
        let (least, most) = CUT_CONTEXT;
        let zeros: u64 = differing.iter().map(|d| d.1).sum();
        let sides = 2 * (differing.len() as u64).max(1);
        let context = (share.saturating_sub(zeros) / sides).clamp(least, most);
        // A window, at most a share long.
        let window = |&(p, zeros): &(u64, u64)| {
            let zeros = zeros.min(share.saturating_sub(2 * context));
            (p.saturating_sub(zeros + context), p + context)
        };
        let total: u64 = differing.iter().map(&window).map(|w| w.1 - w.0).sum();
        let step = usize::try_from(total.div_ceil(share.max(1)))
            .unwrap_or(usize::MAX)
            .max(1);
        let line = line_len(&self.spans);
        let mut windows: Vec<(u64, u64)> = Vec::new();
        for d in differing.iter().step_by(step) {
            let w = window(d);
            let w = (w.0, w.1.min(line));
            match windows.last_mut() {
                Some(last) if w.0 <= last.1 => last.1 = last.1.max(w.1),
                _ => windows.push(w),
            }
        }
        Windows {
            spans: self.spans.clone(),
            windows,
        }
    }

    /// Whether position `p` on the line is in a window.
    fn inside(&self, p: u64) -> bool {
        let i = self.windows.partition_point(|w| w.1 <= p);
        self.windows.get(i).is_some_and(|w| w.0 <= p)
    }

    /// The position of `(memory, offset)` on the line, if in a span.
    fn position(&self, memory: u32, offset: u64) -> Option<u64> {
        let memory = memory as usize;
        let span = *self.spans.get(memory)?;
        if offset < span.0 || offset >= span.1 {
            return None;
        }
        Some(line_len(&self.spans[..memory]) + offset - span.0)
    }

    /// `plan`'s data sections inside the windows: the header of each active
    /// segment that starts in one, and its payload bytes that lie in one.
    /// `release` is told of the input read, as it goes ([`Behind`]).
    pub(super) fn sample(&self, plan: &Plan<'_>, release: Release<'_>) -> Vec<u8> {
        let mut behind = Behind::new(plan.input(), release);
        let mut sample = Vec::new();
        for_each_segment(plan, |item| match item {
            Item::Header(memory, offset, header, _) => {
                if self
                    .position(memory, offset)
                    .is_some_and(|p| self.inside(p))
                {
                    sample.extend_from_slice(header);
                }
                self.to_next_window(memory, offset)
            }
            Item::Payload(memory, offset, payload) => {
                // Positions are linear within a memory's span.
                let Some(first) = self.position(memory, offset) else {
                    return u64::MAX;
                };
                let last = first + payload.len();
                let from = self.windows.partition_point(|w| w.1 <= first);
                for w in self.windows[from..].iter().take_while(|w| w.0 < last) {
                    let (lo, hi) = (w.0.max(first), w.1.min(last));
                    if lo < hi {
                        behind.read(payload.extend(&mut sample, lo - first, hi - first));
                    }
                }
                self.to_next_window(memory, offset + payload.len())
            }
        });
        sample
    }

    /// The bytes from `(memory, offset)` to the next window on the line: a
    /// payload's bytes the sample need not read (`u64::MAX` past the last).
    fn to_next_window(&self, memory: u32, offset: u64) -> u64 {
        let Some(p) = self.position(memory, offset) else {
            return u64::MAX;
        };
        let i = self.windows.partition_point(|w| w.1 <= p);
        self.windows
            .get(i)
            .map_or(u64::MAX, |w| w.0.saturating_sub(p))
    }
}

/// The length of `spans` laid one after the other: a stretch of the line.
fn line_len(spans: &[(u64, u64)]) -> u64 {
    spans.iter().map(|s| s.1 - s.0).sum()
}

#[cfg(test)]
mod tests {
    use super::{CUT_CONTEXT, Plan, Windows};
    use crate::{MaxSegments, PackOptions};

    /// The plan of `input` at `cap`, larger raw if need be, as the
    /// candidates are planned.
    fn plan_at(input: &[u8], cap: u32) -> Plan<'_> {
        let options = PackOptions::default().with_max_segments(MaxSegments::new(cap).unwrap());
        let known = crate::parse::validate(input, &|_| {}, None, 1).unwrap();
        Plan::build_valid(input, &options, &|_| {}, true, known, None).unwrap()
    }

    /// A sample holds, of every active segment with a constant offset,
    /// its header when it starts in a window and each payload byte that
    /// lies in one, read here from the written output by wasmparser, byte
    /// by byte: the walk passes the rest unread, and passes no byte it
    /// needs. Two nested modules (one with two memories), a passive
    /// segment, caps that merge into long segments, and windows that start
    /// and end inside payloads, gaps and headers.
    #[test]
    fn a_sample_holds_what_its_windows_cover_and_nothing_else() {
        let data = |memory: u32, step: u32, tag: &str| -> String {
            (0..30)
                .map(|i| {
                    let offset = 64 + i * (step + i * 7);
                    format!(
                        r#"(data (memory {memory}) (i32.const {offset}) "{tag}{i:02}-{}")"#,
                        "x".repeat(i as usize % 5)
                    )
                })
                .collect()
        };
        let input = wat::parse_str(format!(
            r#"(component
                (core module (memory 1) (memory 1) {} {} (data "passive"))
                (core module (memory 1) {}))"#,
            data(0, 40, "a"),
            data(1, 90, "b"),
            data(0, 300, "c"),
        ))
        .unwrap();
        let raw = plan_at(&input, 10_000);
        let spans = Windows::new(&raw, 0, true).spans;
        let line = super::line_len(&spans);
        let edges = [0, 1, 5, 63, 64, 70, 100, 777, 1000, 1500, 2900, 3100, 5000];
        let mut window_sets: Vec<Vec<(u64, u64)>> = vec![vec![(0, line)], vec![]];
        for (i, &a) in edges.iter().enumerate() {
            for &b in &edges[i + 1..] {
                window_sets.push(vec![(a, b.min(line))]);
                if a + 3 < b {
                    window_sets.push(vec![(a, a + 3), (b, b + 40)]);
                }
            }
        }
        for cap in [1, 3, 10, 40, 10_000] {
            let plan = plan_at(&input, cap);
            let mut output = Vec::new();
            plan.write_to(&mut output, None).unwrap();
            for set in &window_sets {
                let windows = Windows {
                    spans: spans.clone(),
                    windows: set.iter().copied().filter(|w| w.0 < w.1).collect(),
                };
                assert_eq!(
                    windows.sample(&plan, &|_| {}),
                    read_sample(&windows, &output),
                    "cap {cap}, windows {set:?}"
                );
            }
        }
    }

    /// What a sample should hold, from the output's bytes.
    fn read_sample(windows: &Windows, output: &[u8]) -> Vec<u8> {
        let mut sample = Vec::new();
        let inside = |memory: u32, offset: u64| {
            windows
                .position(memory, offset)
                .is_some_and(|p| windows.inside(p))
        };
        for payload in wasmparser::Parser::new(0).parse_all(output) {
            let wasmparser::Payload::DataSection(reader) = payload.unwrap() else {
                continue;
            };
            for segment in reader {
                let segment = segment.unwrap();
                let wasmparser::DataKind::Active {
                    memory_index,
                    offset_expr,
                } = segment.kind
                else {
                    continue;
                };
                let ops: Vec<_> = offset_expr
                    .get_operators_reader()
                    .into_iter()
                    .map(Result::unwrap)
                    .collect();
                let offset = match ops[..] {
                    [
                        wasmparser::Operator::I32Const { value },
                        wasmparser::Operator::End,
                    ] => value as u32 as u64,
                    _ => continue,
                };
                let payload_at = segment.data.as_ptr() as usize - output.as_ptr() as usize;
                if inside(memory_index, offset) {
                    sample.extend_from_slice(&output[segment.range.start as usize..payload_at]);
                }
                for (i, &byte) in segment.data.iter().enumerate() {
                    if inside(memory_index, offset + i as u64) {
                        sample.push(byte);
                    }
                }
            }
        }
        sample
    }

    /// Windows around the cuts where two plans differ hold each such cut's
    /// header and its zeros whole, with context either side, and nothing
    /// around the cuts the plans share; within a share, every other cut.
    #[test]
    fn windows_around_the_cuts_that_differ_hold_their_zeros_whole() {
        // Objects of 8 bytes with gaps of 3,000, 1,000, 2,000 and 4,000
        // zeros: at a cap of 4 only the shortest gap closes.
        let input = wat::parse_str(
            r#"(module (memory 1)
                (data (i32.const 100) "objectA1")
                (data (i32.const 3108) "objectB2")
                (data (i32.const 4116) "objectC3")
                (data (i32.const 6124) "objectD4")
                (data (i32.const 10132) "objectE5"))"#,
        )
        .unwrap();
        let raw = plan_at(&input, 10_000);
        let (five, four) = (plan_at(&input, 5), plan_at(&input, 4));
        let count = |p: &Plan<'_>| p.report().segments_after();
        assert_eq!((count(&five), count(&four)), (5, 4));
        let line = Windows::new(&raw, 0, true);
        // The one cut they differ in: where "objectC3" starts, 1,000 zeros
        // after "objectB2" ends (the line starts at offset 100). A share
        // of 1,600 bytes leaves 300 either side.
        let windows = line.around([&five, &four].into_iter(), 1600);
        let c = 4116 - 100;
        assert_eq!(windows.windows, [(c - 1000 - 300, c + 300)]);
        // Four cuts' windows (10,000 zeros and the least context, 11,024
        // bytes) and a share for about half: every other cut, its zeros
        // whole.
        let one = plan_at(&input, 1);
        let windows = line.around([&five, &one].into_iter(), 5600);
        let (b, d, least) = (3108 - 100, 6124 - 100, CUT_CONTEXT.0);
        assert_eq!(
            windows.windows,
            [(0, b + least), (d - 2000 - least, d + least)]
        );
    }
}
