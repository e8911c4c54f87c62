//! Packing a whole binary: deciding per memory whether it may be re-packed
//! (SPEC §2), laying out the new segment list (SPEC §3), and planning every
//! output byte before any is written.

use std::ops::Range;
use std::sync::Arc;

use crate::emit::Output;
use crate::error::{Error, Result};
use crate::memo::Memo;
use crate::parse::{self, Binary, DataSegment, Module, Placement};
use crate::plan::{self, MemoryImage};
use crate::report::Figures;
use crate::segment::{IndexType, Part, encode_header, segment_len, uleb_len};
use crate::{MaxSegments, ModuleReport, PackOptions};
use crate::{names, rules};

/// An entry of the output's data section.
enum Entry {
    /// An input segment, kept at its index.
    Keep(usize),
    /// The slot of the re-packed input segment a packed segment replaces, if
    /// any, and the packed segment (memory index, range).
    Packed(Option<usize>, (u32, plan::Range)),
    /// An empty passive segment holding a slot so later indices stay valid.
    EmptyPassive,
}

const EMPTY_PASSIVE: [u8; 2] = [0x01, 0x00];

/// What planning needs besides the input: the options, and who to tell when
/// input bytes have been scanned for good.
pub(crate) struct Context<'c, 'a> {
    pub options: &'c PackOptions,
    pub release: &'c (dyn Fn(&[u8]) + Sync),
    /// Data segment headers copied out by validation; each section's are
    /// taken out (and freed) when it is read.
    pub known: &'c std::cell::RefCell<parse::KnownHeaders>,
    /// Lay out the capped plan even when its data section is larger than
    /// the input's (`optimize`: raw bytes may buy compressed ones; the
    /// compressed size is checked against the input's afterwards).
    pub allow_growth: bool,
    /// Parses and scans kept for planning the same input again at other
    /// caps (`optimize`).
    pub memo: Option<&'c Memo<'a>>,
}

impl<'a> Context<'_, 'a> {
    /// The binary at `range` of `input`, parsed (once, with a memo).
    fn parse(&self, input: &'a [u8], range: Range<usize>) -> Result<Arc<Binary<'a>>> {
        let parse = || parse::parse_with(input, range.clone(), self.release, self.known);
        match self.memo {
            Some(memo) => memo.binary(range.start, parse),
            None => parse().map(Arc::new),
        }
    }
}

/// Plans the binary at `range` of `input` into `out`, adding one report per
/// core module to `reports`. `path` names the binary inside a component.
pub(crate) fn plan_binary<'a>(
    input: &'a [u8],
    range: Range<usize>,
    cx: &Context<'_, 'a>,
    path: &str,
    out: &mut Output<'a>,
    reports: &mut Vec<ModuleReport>,
) -> Result<()> {
    let depth = if path.is_empty() {
        0
    } else {
        path.matches(" / ").count() + 1
    };
    if depth > parse::MAX_NESTING {
        return Err(Error::malformed(
            format!(
                "components nested more than {} deep ({}) are not supported",
                parse::MAX_NESTING,
                parse::short_path(path)
            ),
            range.start as u64,
        ));
    }
    match &*cx.parse(input, range.clone())? {
        Binary::Module(module) => {
            let (mut report, module_out) = plan_module(input, range, module, cx, !path.is_empty())
                .map_err(|e| e.in_context(path))?;
            out.append(module_out);
            if engine_limit_asked(cx.options) {
                // A module no higher cap packs (none of its memories is
                // packable) has the same figures there.
                report.at_engine_limit.get_or_insert(Figures {
                    segments: report.segments_after,
                    data_bytes: report.data_bytes_after,
                });
            }
            reports.push(ModuleReport {
                path: path.to_string(),
                ..report
            });
        }
        Binary::Component(sections) => {
            // The 8-byte preamble: magic, version, layer.
            out.input(range.start..range.start + 8);
            let mut names = parse::NestedNames::default();
            for section in sections {
                let Some(nested) = section.nested.clone() else {
                    out.input(section.range.clone());
                    continue;
                };
                let nested_path = names.next(path, section.id == parse::COMPONENT_MODULE_SECTION);
                let mut nested_out = Output::new(input);
                plan_binary(input, nested, cx, &nested_path, &mut nested_out, reports)?;
                out.owned(&[section.id]);
                out.uleb(nested_out.len());
                out.append(nested_out);
            }
        }
    }
    Ok(())
}

/// Plans one core module, as MemoryPacking reads: decide what may be
/// re-packed, pack it, lay out the new data section by the slot rule, keep
/// whichever section is smallest, then write every section.
fn plan_module<'a>(
    input: &'a [u8],
    range: Range<usize>,
    module: &Module<'a>,
    cx: &Context<'_, 'a>,
    nested: bool,
) -> Result<(ModuleReport, Output<'a>)> {
    let mut report = report_of_input(module);
    let unchanged = |report: ModuleReport| {
        let mut out = Output::new(input);
        out.input(range.clone());
        Ok((report, out))
    };
    if let Some(warning) = reason_to_leave(module, nested)? {
        report.warnings.push(warning);
        return unchanged(report);
    }
    let packable = packable_memories(module, cx.options, &mut report);
    let Some(mut layout) = Layout::new(module, packable, range.start, cx.memo) else {
        return unchanged(report);
    };
    layout.pack(cx, &mut report);
    if !layout.keep_smallest(cx, &mut report) {
        return unchanged(report);
    }
    layout.report(&mut report);
    let keeps_name = layout.names_kept(input);
    Ok((report, layout.write(input, range, &keeps_name)))
}

/// Whether the report is to say what packing would give at the engine
/// limit: asked for, and the cap is below it.
fn engine_limit_asked(options: &PackOptions) -> bool {
    options.report_engine_limit && options.max_segments < MaxSegments::ENGINE_LIMIT
}

/// The report of a module left as it is.
fn report_of_input(module: &Module<'_>) -> ModuleReport {
    let data_section_len = module
        .data_section
        .map(|i| module.sections[i].range.len() as u64)
        .unwrap_or(0);
    ModuleReport {
        path: String::new(),
        segments_before: module.segments.len() as u64,
        segments_after: module.segments.len() as u64,
        data_bytes_before: data_section_len,
        data_bytes_after: data_section_len,
        changed: false,
        warnings: Vec::new(),
        unpacked_memories: Vec::new(),
        packed_memories: Vec::new(),
        at_engine_limit: None,
    }
}

/// Why a module's data section is left exactly as it is, if it is: a
/// relocatable object file (an error at the top level; inside a component,
/// one module that may not be packed must not stop the others), or a
/// segment out of bounds (SPEC §2: instantiation traps; keep it so).
fn reason_to_leave(module: &Module<'_>, nested: bool) -> Result<Option<String>> {
    match module.relocatable_error() {
        Some(err) if !nested => Err(err),
        Some(err) => Ok(Some(format!("{}: left as is", err.message()))),
        None => Ok(rules::out_of_bounds(module)),
    }
}

/// SPEC §2 per memory: whether its active segments may be re-packed. Why a
/// memory with segments may not goes into the report.
fn packable_memories(
    module: &Module<'_>,
    options: &PackOptions,
    report: &mut ModuleReport,
) -> Vec<bool> {
    (0..module.memories.len())
        .map(|m| {
            if rules::segments_of(module, m).next().is_none() {
                return false;
            }
            let reason = rules::not_packable(module, m, options);
            let packable = reason.is_none();
            report
                .unpacked_memories
                .extend(reason.map(|r| (m as u32, r)));
            packable
        })
        .collect()
}

/// A module's new data section: which input segments are re-packed, the
/// packed segments that replace them, and the slot rule over both.
struct Layout<'m, 'a> {
    module: &'m Module<'a>,
    /// Per memory: whether its active segments are re-packed.
    packable: Vec<bool>,
    /// The images of the packable memories, in memory order. Shared with
    /// the memo, which keeps them for every other cap: never copied.
    images: Arc<[MemoryImage<'a>]>,
    /// The packed segments, in (memory, offset) order.
    packed: plan::Segments,
    /// The last input segment kept at its index.
    last_kept: Option<usize>,
    /// Every input segment kept as it is (`packed` is then empty).
    keep_all: bool,
    /// The data section's entry count and payload length, once chosen.
    size: Size,
    /// Where the module starts in the input: its key in `memo`.
    start: usize,
    memo: Option<&'m Memo<'a>>,
}

/// A data section's entry count and payload length (the count's LEB and
/// the entries).
#[derive(Clone, Copy, Default)]
struct Size {
    entries: u64,
    payload: u64,
}

impl Size {
    /// The whole section: its id, its size's LEB, its payload.
    fn section_len(&self) -> u64 {
        1 + uleb_len(self.payload) + self.payload
    }
}

impl<'m, 'a> Layout<'m, 'a> {
    /// The layout before packing, or `None` when no segment is re-packed.
    fn new(
        module: &'m Module<'a>,
        packable: Vec<bool>,
        start: usize,
        memo: Option<&'m Memo<'a>>,
    ) -> Option<Self> {
        let mut layout = Layout {
            module,
            packable,
            images: Arc::new([]),
            packed: plan::Segments::default(),
            last_kept: None,
            keep_all: false,
            size: Size::default(),
            start,
            memo,
        };
        if !module.segments.iter().any(|s| layout.repacked(s)) {
            return None;
        }
        layout.last_kept = module.segments.iter().rposition(|s| !layout.repacked(s));
        layout.images = layout.make_images();
        Some(layout)
    }

    /// The images of the packable memories (the memo's, once it has them).
    fn make_images(&self) -> Arc<[MemoryImage<'a>]> {
        if let Some(images) = self.memo.and_then(|memo| memo.images(self.start)) {
            return images;
        }
        (0..self.module.memories.len())
            .filter(|&m| self.packable[m])
            .map(|m| rules::image(self.module, m))
            .collect::<Vec<_>>()
            .into()
    }

    fn repacked(&self, segment: &DataSegment<'_>) -> bool {
        match segment.placement {
            Placement::Constant { memory_index, .. } => self.packable[memory_index as usize],
            _ => false,
        }
    }

    fn index_type(&self, memory_index: u32) -> IndexType {
        self.module.memories[memory_index as usize].index_type
    }

    /// Packs the images within what the cap leaves after the active
    /// segments that are kept; and, in the same pass, works out the figures
    /// at the engine limit when the report asks for them.
    fn pack(&mut self, cx: &Context<'_, 'a>, report: &mut ModuleReport) {
        let max_segments = u64::from(cx.options.max_segments.get());
        let kept_active = self
            .module
            .segments
            .iter()
            .filter(|s| !matches!(s.placement, Placement::Passive) && !self.repacked(s))
            .count() as u64;
        let budget = max_segments.saturating_sub(kept_active);
        let also = engine_limit_asked(cx.options)
            .then(|| u64::from(MaxSegments::ENGINE_LIMIT.get()).saturating_sub(kept_active));
        let scan = || plan::scan_gaps(&self.images, budget, also, cx.options.threads, cx.release);
        let scanned = match self.memo {
            Some(memo) => memo.scanned(self.start, budget, also, &self.images, scan),
            None => scan(),
        };
        // The pieces (16 bytes an input segment) are made again after the
        // cap settles, which reads none: the npm build's peak is there.
        // (A memo keeps them for the next cap: then they are shared.)
        self.images = Arc::new([]);
        let finals = scanned.settle();
        self.images = self.make_images();
        let packed = finals.split(&self.images);
        if let Some(also) = packed.also {
            report.at_engine_limit = Some(self.figures_of(also, report.data_bytes_before));
        }
        if !packed.cap_met {
            report.warnings.push(format!(
                "could not get under the cap of {max_segments}: {} segments (gaps of 4 GiB or more and segments of 1 GiB are never merged)",
                packed.segments.len() as u64 + kept_active
            ));
        }
        self.packed = packed.segments;
    }

    /// SPEC §3, the slot rule: the entries of the output's data section, the
    /// packed segments taken in order. Walked again each time the entries
    /// are needed: a list of them would hold 12 to 24 bytes per segment.
    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        let mut slots = self.module.segments.iter().enumerate();
        let mut packed = self.packed.iter();
        std::iter::from_fn(move || {
            for (i, segment) in slots.by_ref() {
                if self.keep_all || !self.repacked(segment) {
                    return Some(Entry::Keep(i));
                } else if let Some(s) = packed.next() {
                    return Some(Entry::Packed(Some(i), s));
                } else if self.last_kept.is_some_and(|k| i < k)
                    || i < self.module.data_slots_used as usize
                {
                    // A later kept segment, or code, names this index or a later one.
                    return Some(Entry::EmptyPassive);
                }
            }
            packed.next().map(|s| Entry::Packed(None, s))
        })
    }

    fn entry_len(&self, entry: &Entry) -> u64 {
        match *entry {
            Entry::Keep(i) => self.module.segments[i].range.len() as u64,
            Entry::Packed(_, (memory_index, r)) => segment_len(
                memory_index,
                self.index_type(memory_index),
                r.start,
                r.len(),
            ),
            Entry::EmptyPassive => EMPTY_PASSIVE.len() as u64,
        }
    }

    /// The size of the data section the entries make.
    fn measure(&self) -> Size {
        let (entries, bytes) = self
            .entries()
            .fold((0, 0), |(n, b), e| (n + 1, b + self.entry_len(&e)));
        Size {
            entries,
            payload: uleb_len(entries) + bytes,
        }
    }

    /// The figures the module would have with `packed` as its packed
    /// segments, the section kept as [`keep_smallest`](Self::keep_smallest)
    /// keeps it (input `before` bytes).
    fn figures_of(&mut self, packed: plan::Segments, before: u64) -> Figures {
        let chosen = std::mem::replace(&mut self.packed, packed);
        let (segments, data_bytes) = match self.smallest(before, false).0 {
            Some(size) => (size.entries, size.section_len()),
            None => (self.module.segments.len() as u64, before),
        };
        self.packed = chosen;
        self.keep_all = false;
        Figures {
            segments,
            data_bytes,
        }
    }

    /// SPEC §1.3: keeps the packed section when it is smaller than the
    /// input's; else the input's own segments, each byte for byte, under a
    /// header of minimal width (as wasm-opt writes them when it finds
    /// nothing to merge) when that is smaller; else returns false: the
    /// input is kept. A cap that this leaves unmet is reported. With
    /// `allow_growth`, the packed section is always kept.
    fn keep_smallest(&mut self, cx: &Context<'_, '_>, report: &mut ModuleReport) -> bool {
        let options = cx.options;
        let before = report.data_bytes_before;
        let (chosen, packed_len) = self.smallest(before, cx.allow_growth);
        if let Some(size) = chosen {
            self.size = size;
        }
        let active = self
            .module
            .segments
            .iter()
            .filter(|s| !matches!(s.placement, Placement::Passive))
            .count() as u64;
        let over_cap = active > u64::from(options.max_segments.get());
        // (`keep_all` is set whenever the packed section lost.)
        if self.keep_all && over_cap {
            let (larger, outcome) = match chosen {
                Some(kept) => (packed_len - kept.section_len(), "segments kept as they are"),
                None => (packed_len - before, "data section left as is"),
            };
            report.warnings.push(format!(
                "the input has {active} active segments, over the cap of {}, and meeting the cap would make the data section {larger} bytes larger: {outcome}",
                options.max_segments,
            ));
        }
        chosen.is_some()
    }

    /// The choice [`keep_smallest`](Self::keep_smallest) makes, for an input
    /// section of `before` bytes: the size of the section kept (the input's
    /// own segments when `keep_all` is set), or `None` when the input is
    /// kept; and the packed section's length.
    fn smallest(&mut self, before: u64, allow_growth: bool) -> (Option<Size>, u64) {
        let packed = self.measure();
        let packed_len = packed.section_len();
        // (`optimize` weighs compressed sizes instead, and checks them.)
        if packed_len < before || allow_growth {
            return (Some(packed), packed_len);
        }
        self.keep_all = true;
        self.packed = plan::Segments::default();
        let kept = self.measure();
        ((kept.section_len() < before).then_some(kept), packed_len)
    }

    /// The figures of the chosen layout.
    fn report(&self, report: &mut ModuleReport) {
        report.changed = true;
        report.segments_after = self.size.entries;
        report.data_bytes_after = self.size.section_len();
        for (memory_index, r) in self.packed.iter() {
            let bytes = segment_len(
                memory_index,
                self.index_type(memory_index),
                r.start,
                r.len(),
            );
            match report.packed_memories.last_mut() {
                Some((m, n, b)) if *m == memory_index => {
                    *n += 1;
                    *b += bytes;
                }
                _ => report.packed_memories.push((memory_index, 1, bytes)),
            }
        }
    }

    /// Which slots keep their name: kept segments, and packed ones that came
    /// out byte-identical to the segment that held the slot before. Only a
    /// name section reads it.
    fn names_kept(&self, input: &[u8]) -> Vec<bool> {
        if self.module.name_sections.is_empty() {
            return Vec::new();
        }
        // Parts are made one segment at a time, in order, and only for
        // segments whose header and length match.
        let mut cursor = plan::PartsCursor::new(&self.images);
        let mut parts = Vec::new();
        let mut same_bytes = |slot: usize, (memory_index, r): (u32, plan::Range)| {
            let original = &self.module.segments[slot];
            let placed = matches!(original.placement, Placement::Constant { memory_index: m, offset } if m == memory_index && offset == r.start);
            if !placed || r.len() != original.data.len() as u64 {
                return false;
            }
            let header = encoded_header(memory_index, self.index_type(memory_index), r);
            header.len() + original.data.len() == original.range.len()
                && input[original.range.clone()].starts_with(&header)
                && {
                    cursor.parts(memory_index, r, &mut parts);
                    parts_equal(&parts, original.data)
                }
        };
        self.entries()
            .map(|e| match e {
                Entry::Keep(_) => true,
                Entry::Packed(slot, s) => slot.is_some_and(|slot| same_bytes(slot, s)),
                Entry::EmptyPassive => false,
            })
            .collect()
    }

    /// The data section's bytes into `out`.
    fn write_data_section(&self, out: &mut Output<'a>, parts: &mut Vec<Part<'a>>) {
        let mut cursor = plan::PartsCursor::new(&self.images);
        // One buffer for every header: one allocation, not one a segment.
        let mut header = Vec::with_capacity(32);
        out.owned(&[parse::DATA_SECTION]);
        out.uleb(self.size.payload);
        out.uleb(self.size.entries);
        for entry in self.entries() {
            match entry {
                Entry::Keep(i) => out.input(self.module.segments[i].range.clone()),
                Entry::Packed(_, (memory_index, r)) => {
                    let index_type = self.index_type(memory_index);
                    header.clear();
                    encode_header(&mut header, memory_index, index_type, r.start, r.len());
                    out.owned(&header);
                    cursor.parts(memory_index, r, parts);
                    out.parts(parts);
                }
                Entry::EmptyPassive => out.owned(&EMPTY_PASSIVE),
            }
        }
    }

    /// The module's output: every section as it is, but the data section,
    /// the data count and the name sections.
    fn write(&self, input: &'a [u8], range: Range<usize>, keeps_name: &[bool]) -> Output<'a> {
        // The data section, written once to count its spans and owned bytes
        // (nothing kept), then for real into room made for exactly that: a
        // list that doubles as it grows would leave its old copy behind (for
        // good in a Wasm memory) and up to twice the room it needs.
        let mut parts = Vec::new();
        let mut tally = Output::tally(input);
        self.write_data_section(&mut tally, &mut parts);
        let (spans, owned) = tally.tallied();
        let sections = &self.module.sections;
        let mut out = Output::with_capacity(input, spans + 2 * sections.len() + 16, owned + 64);
        out.input(range.start..range.start + 8);
        for (i, section) in sections.iter().enumerate() {
            let data_count = self.module.data_count.as_ref().filter(|(s, _)| *s == i);
            if Some(i) == self.module.data_section {
                self.write_data_section(&mut out, &mut parts);
            } else if let Some((_, count)) = data_count {
                let entries = self.size.entries;
                data_count_section(&mut out, section.range.clone(), count.clone(), entries);
            } else if self.module.name_sections.contains(&i) {
                match rewrite_names(input, section.range.clone(), keeps_name) {
                    Some(bytes) => out.owned(&bytes),
                    None => out.input(section.range.clone()),
                }
            } else {
                out.input(section.range.clone());
            }
        }
        out
    }
}

fn encoded_header(memory_index: u32, index_type: IndexType, r: plan::Range) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    encode_header(&mut h, memory_index, index_type, r.start, r.end - r.start);
    h
}

fn parts_equal(parts: &[Part<'_>], mut data: &[u8]) -> bool {
    for part in parts {
        let n = part.len() as usize;
        if n > data.len() {
            return false;
        }
        let (head, rest) = data.split_at(n);
        let same = match part {
            Part::Bytes(b) => *b == head,
            Part::Zeros(_) => head.iter().all(|&b| b == 0),
        };
        if !same {
            return false;
        }
        data = rest;
    }
    data.is_empty()
}

/// The data count section with the new count. Its LEB keeps the original
/// width when the count fits, so the code section after it does not move.
fn data_count_section(
    out: &mut Output<'_>,
    section: Range<usize>,
    count_range: Range<usize>,
    count: u64,
) {
    let width = count_range.len();
    if width < 10 && count < 1u64 << (7 * width) {
        out.input(section.start..count_range.start);
        let mut bytes = Vec::with_capacity(width);
        for k in 0..width {
            let more = if k + 1 < width { 0x80 } else { 0 };
            bytes.push(((count >> (7 * k)) & 0x7f) as u8 | more);
        }
        out.owned(&bytes);
        out.input(count_range.end..section.end);
    } else {
        out.owned(&[parse::DATA_COUNT_SECTION]);
        out.uleb(uleb_len(count));
        out.uleb(count);
    }
}

/// The `name` custom section with data segment names (subsection 9) kept only
/// for the slots in `keeps_name`. `None` when the section cannot be read (it
/// is then copied as is: engines ignore malformed name sections) or nothing
/// in it changes.
fn rewrite_names(input: &[u8], section: Range<usize>, keeps_name: &[bool]) -> Option<Vec<u8>> {
    let (name, subsections) = names::read(&input[section])?;
    let mut content = name.to_vec();
    let mut changed = false;
    for sub in subsections {
        if sub.id != names::DATA_SEGMENT_NAMES {
            content.extend_from_slice(sub.raw);
            continue;
        }
        let entries = names::map_entries(sub.body)?;
        let kept: Vec<&[u8]> = entries
            .iter()
            .filter(|(index, _)| keeps_name.get(*index as usize).copied().unwrap_or(false))
            .map(|(_, raw)| *raw)
            .collect();
        if kept.len() == entries.len() {
            content.extend_from_slice(sub.raw);
            continue;
        }
        changed = true;
        if kept.is_empty() {
            continue;
        }
        let mut map = Vec::new();
        wasm_encoder::Encode::encode(&(kept.len() as u64), &mut map);
        kept.iter().for_each(|raw| map.extend_from_slice(raw));
        content.push(names::DATA_SEGMENT_NAMES);
        wasm_encoder::Encode::encode(&(map.len() as u64), &mut content);
        content.extend_from_slice(&map);
    }
    if !changed {
        return None;
    }
    let mut out = vec![parse::CUSTOM_SECTION];
    wasm_encoder::Encode::encode(&(content.len() as u64), &mut out);
    out.extend_from_slice(&content);
    Some(out)
}
