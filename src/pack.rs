//! Packing a whole binary: deciding per memory whether it may be re-packed
//! (SPEC §2), laying out the new segment list (SPEC §3), and planning every
//! output byte before any is written.

use std::ops::Range;

use crate::emit::Output;
use crate::error::{Error, Result};
use crate::parse::{self, Binary, DataSegment, Module, Placement};
use crate::plan::{self, MemoryImage};
use crate::segment::{IndexType, Part, encode_header, header_len, segment_len, uleb_len};
use crate::{ModuleReport, PackOptions};
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
pub(crate) struct Context<'c> {
    pub options: &'c PackOptions,
    pub release: &'c (dyn Fn(&[u8]) + Sync),
    /// Data segment headers copied out by validation; each section's are
    /// taken out (and freed) when it is read.
    pub known: &'c std::cell::RefCell<parse::KnownHeaders>,
    /// Lay out the capped plan even when its data section is larger than
    /// the input's (`optimize`: raw bytes may buy compressed ones; the
    /// compressed size is checked against the input's afterwards).
    pub allow_growth: bool,
}

/// Plans the binary at `range` of `input` into `out`, adding one report per
/// core module to `reports`. `path` names the binary inside a component.
pub(crate) fn plan_binary<'a>(
    input: &'a [u8],
    range: Range<usize>,
    cx: &Context<'_>,
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
    match parse::parse_with(input, range.clone(), cx.release, cx.known)? {
        Binary::Module(module) => {
            let (report, module_out) = plan_module(input, range, &module, cx, !path.is_empty())
                .map_err(|e| e.in_context(path))?;
            out.append(module_out);
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
                let Some(nested) = section.nested else {
                    out.input(section.range);
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

fn plan_module<'a>(
    input: &'a [u8],
    range: Range<usize>,
    module: &Module<'a>,
    cx: &Context<'_>,
    nested: bool,
) -> Result<(ModuleReport, Output<'a>)> {
    let options = cx.options;
    let relocatable = match module.relocatable_error() {
        Some(err) if !nested => return Err(err),
        other => other,
    };
    let data_section_len = module
        .data_section
        .map(|i| module.sections[i].range.len() as u64)
        .unwrap_or(0);
    let mut report = ModuleReport {
        path: String::new(),
        segments_before: module.segments.len() as u64,
        segments_after: module.segments.len() as u64,
        data_bytes_before: data_section_len,
        data_bytes_after: data_section_len,
        changed: false,
        warnings: Vec::new(),
        unpacked_memories: Vec::new(),
        packed_memories: Vec::new(),
    };
    let unchanged = |report: ModuleReport| {
        let mut out = Output::new(input);
        out.input(range.clone());
        (report, out)
    };
    // Inside a component, one module that may not be packed must not stop
    // the others from being packed.
    if let Some(err) = relocatable {
        report
            .warnings
            .push(format!("{}: left as is", err.message()));
        return Ok(unchanged(report));
    }

    // SPEC §2: a segment out of bounds makes instantiation trap; keep it so.
    if let Some(warning) = rules::out_of_bounds(module) {
        report.warnings.push(warning);
        return Ok(unchanged(report));
    }

    let mut packable = vec![false; module.memories.len()];
    for (m, p) in packable.iter_mut().enumerate() {
        if rules::segments_of(module, m).next().is_none() {
            continue;
        }
        match rules::not_packable(module, m, options) {
            None => *p = true,
            Some(reason) => report.unpacked_memories.push((m as u32, reason)),
        }
    }
    let repacked = |s: &DataSegment<'_>| match s.placement {
        Placement::Constant { memory_index, .. } => packable[memory_index as usize],
        _ => false,
    };
    if !module.segments.iter().any(repacked) {
        return Ok(unchanged(report));
    }

    // Images of the packable memories, in memory order.
    let images: Vec<MemoryImage<'_>> = (0..module.memories.len())
        .filter(|&m| packable[m])
        .map(|m| rules::image(module, m))
        .collect();
    let kept_active = module
        .segments
        .iter()
        .filter(|s| !matches!(s.placement, Placement::Passive) && !repacked(s))
        .count() as u64;
    let budget = (options.max_segments as u64).saturating_sub(kept_active);
    let packed = plan::pack_ranges(&images, budget, options.threads, cx.release);
    if !packed.cap_met {
        report.warnings.push(format!(
            "could not get under the cap of {}: {} segments (gaps of 4 GiB or more and segments of 1 GiB are never merged)",
            options.max_segments,
            packed.segments.len() as u64 + kept_active
        ));
    }
    let mut packed = packed.segments;

    // SPEC §3, the slot rule, walked again each time the entries are needed
    // (a list of them would hold 12 to 24 bytes per segment).
    let last_kept = module.segments.iter().rposition(|s| !repacked(s));
    let mut keep_all = false;
    let mut entry_count = slot_rule(module, &repacked, last_kept, keep_all, packed.iter()).count();

    let index_type = |m: u32| module.memories[m as usize].index_type;
    let entry_len = |e: Entry| match e {
        Entry::Keep(i) => module.segments[i].range.len() as u64,
        Entry::Packed(_, (memory_index, r)) => {
            let len = r.end - r.start;
            header_len(memory_index, index_type(memory_index), r.start, len) + len
        }
        Entry::EmptyPassive => EMPTY_PASSIVE.len() as u64,
    };
    let mut payload_len = uleb_len(entry_count as u64)
        + slot_rule(module, &repacked, last_kept, keep_all, packed.iter())
            .map(entry_len)
            .sum::<u64>();
    let mut section_len = 1 + uleb_len(payload_len) + payload_len;
    if section_len >= data_section_len && !cx.allow_growth {
        let active_before = module
            .segments
            .iter()
            .filter(|s| !matches!(s.placement, Placement::Passive))
            .count();
        // The input's own segments may still be the smallest, but written
        // with padded LEBs (the section size, the count): then they are
        // kept, each byte for byte, under a header of minimal width, as
        // wasm-opt writes them when it finds nothing to merge.
        let kept_payload = uleb_len(module.segments.len() as u64)
            + module
                .segments
                .iter()
                .map(|s| s.range.len() as u64)
                .sum::<u64>();
        let kept_len = 1 + uleb_len(kept_payload) + kept_payload;
        if kept_len >= data_section_len {
            // Meeting the cap would make the module larger; SPEC §1.3 keeps
            // the input then, but a user who asked for the cap must hear it
            // was not met.
            if active_before as u64 > options.max_segments as u64 {
                report.warnings.push(format!(
                    "the input has {active_before} active segments, over the cap of {}, and meeting the cap would make the data section {} bytes larger: data section left as is",
                    options.max_segments,
                    section_len - data_section_len
                ));
            }
            return Ok(unchanged(report));
        }
        if active_before as u64 > options.max_segments as u64 {
            report.warnings.push(format!(
                "the input has {active_before} active segments, over the cap of {}, and meeting the cap would make the data section {} bytes larger: segments kept as they are",
                options.max_segments,
                section_len - kept_len
            ));
        }
        keep_all = true;
        packed = plan::Segments::default();
        entry_count = module.segments.len();
        payload_len = kept_payload;
        section_len = kept_len;
    }
    report.changed = true;
    report.segments_after = entry_count as u64;
    for (memory_index, r) in packed.iter() {
        let bytes = segment_len(
            memory_index,
            index_type(memory_index),
            r.start,
            r.end - r.start,
        );
        match report.packed_memories.last_mut() {
            Some((m, n, b)) if *m == memory_index => {
                *n += 1;
                *b += bytes;
            }
            _ => report.packed_memories.push((memory_index, 1, bytes)),
        }
    }
    report.data_bytes_after = section_len;

    // Which slots keep their name: kept segments, and packed ones that came
    // out byte-identical to the segment that held the slot before. Parts
    // are made one segment at a time, in order (`cursor`), and only for
    // segments whose header and length match.
    let mut cursor = plan::PartsCursor::new(&images);
    let mut parts = Vec::new();
    let mut same_bytes = |slot: usize, (memory_index, r): (u32, plan::Range)| {
        let original = &module.segments[slot];
        let header = || encoded_header(memory_index, index_type(memory_index), r);
        matches!(original.placement, Placement::Constant { memory_index: m, offset } if m == memory_index && offset == r.start)
            && r.end - r.start == original.data.len() as u64
            && header().len() + original.data.len() == original.range.len()
            && input[original.range.clone()].starts_with(&header())
            && {
                cursor.parts(memory_index, r, &mut parts);
                parts_equal(&parts, original.data)
            }
    };
    // Only a name section reads it.
    let keeps_name: Vec<bool> = if module.name_sections.is_empty() {
        Vec::new()
    } else {
        slot_rule(module, &repacked, last_kept, keep_all, packed.iter())
            .map(|e| match e {
                Entry::Keep(_) => true,
                Entry::Packed(slot, s) => slot.is_some_and(|slot| same_bytes(slot, s)),
                Entry::EmptyPassive => false,
            })
            .collect()
    };

    // The data section, written once to count its spans and owned bytes
    // (nothing kept), then for real into room made for exactly that: a list
    // that doubles as it grows would leave its old copy behind (for good in
    // a Wasm memory) and up to twice the room it needs.
    let data_section = |out: &mut Output<'a>, parts: &mut Vec<Part<'a>>| {
        let mut cursor = plan::PartsCursor::new(&images);
        out.owned(&[parse::DATA_SECTION]);
        out.uleb(payload_len);
        out.uleb(entry_count as u64);
        for entry in slot_rule(module, &repacked, last_kept, keep_all, packed.iter()) {
            match entry {
                Entry::Keep(i) => out.input(module.segments[i].range.clone()),
                Entry::Packed(_, (memory_index, r)) => {
                    out.owned(&encoded_header(memory_index, index_type(memory_index), r));
                    cursor.parts(memory_index, r, parts);
                    out.parts(parts);
                }
                Entry::EmptyPassive => out.owned(&EMPTY_PASSIVE),
            }
        }
    };
    let mut tally = Output::tally(input);
    data_section(&mut tally, &mut parts);
    let (spans, owned) = tally.tallied();
    let mut out = Output::with_capacity(input, spans + 2 * module.sections.len() + 16, owned + 64);
    out.input(range.start..range.start + 8);
    for (i, section) in module.sections.iter().enumerate() {
        if Some(i) == module.data_section {
            data_section(&mut out, &mut parts);
        } else if let Some((_, count)) = module.data_count.as_ref().filter(|(s, _)| *s == i) {
            data_count_section(
                &mut out,
                input,
                section.range.clone(),
                count.clone(),
                entry_count as u64,
            );
        } else if module.name_sections.contains(&i) {
            match rewrite_names(input, section.range.clone(), &keeps_name) {
                Some(bytes) => out.owned(&bytes),
                None => out.input(section.range.clone()),
            }
        } else {
            out.input(section.range.clone());
        }
    }
    Ok((report, out))
}

/// SPEC §3, the slot rule: the entries of the output's data section, the
/// packed segments taken in order from `packed`. With `keep_all`, every
/// input segment is kept (and `packed` is empty).
fn slot_rule<'m, 'a>(
    module: &'m Module<'a>,
    repacked: &'m impl Fn(&DataSegment<'a>) -> bool,
    last_kept: Option<usize>,
    keep_all: bool,
    mut packed: impl Iterator<Item = (u32, plan::Range)> + 'm,
) -> impl Iterator<Item = Entry> + 'm {
    let mut slots = module.segments.iter().enumerate();
    std::iter::from_fn(move || {
        for (i, seg) in slots.by_ref() {
            if keep_all || !repacked(seg) {
                return Some(Entry::Keep(i));
            } else if let Some(s) = packed.next() {
                return Some(Entry::Packed(Some(i), s));
            } else if last_kept.is_some_and(|k| i < k) || i < module.data_slots_used as usize {
                // A later kept segment, or code, names this index or a later one.
                return Some(Entry::EmptyPassive);
            }
        }
        packed.next().map(|s| Entry::Packed(None, s))
    })
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
    input: &[u8],
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
        let _ = input;
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
