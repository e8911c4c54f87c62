//! What the command prints: the summary line, per-module lines, the JSON
//! objects of `--json` and `inspect`, and the numbers in them.

use segpack::{Figures, Inspection, MaxSegments, PackReport};

/// The largest cap, as the messages name it.
const ENGINE_MAX_SEGMENTS: u32 = MaxSegments::ENGINE_LIMIT.get();

/// `inspect`'s text: one line per module (its memories after a `;`), its
/// warnings, what a higher cap would give when the cap held packing back
/// (see [`cap_text`]), then the total.
pub fn inspect_text(inspection: &Inspection, capped: Option<&Capped>, elapsed: f64) -> String {
    let report = &inspection.report;
    let mut text = String::new();
    let mut without_data = 0;
    for (m, memories) in report.modules.iter().zip(&inspection.memories) {
        if is_without_data(m) {
            without_data += 1;
            continue;
        }
        let name = if m.path.is_empty() { "module" } else { &m.path };
        let mut line = format!("{name}: {}", module_change(m));
        for memory in memories.iter().filter(|r| r.segments > 0) {
            line.push_str("; ");
            line.push_str(&memory_line(memory));
        }
        text.push_str(&line);
        text.push('\n');
        for w in &m.warnings {
            text.push_str(&format!("  warning: {}\n", warning(w)));
        }
    }
    text.push_str(&without_data_line(without_data, ""));
    text + &closing_lines(report, capped, elapsed)
}

/// The last lines of `inspect` and `pack --stats`: what a higher cap would
/// give, when the cap held packing back, then the totals.
fn closing_lines(report: &PackReport, capped: Option<&Capped>, elapsed: f64) -> String {
    let mut text = String::new();
    if let Some(capped) = capped {
        text.push_str(&cap_text(report, capped));
        text.push('\n');
    }
    text.push_str(&stats_line(report, elapsed));
    text.push('\n');
    text
}

/// `segments 1,204 -> 37, data section 4.1 MiB -> 1.3 MiB (-68%)`
fn change(segments: (u64, u64), data_bytes: (u64, u64)) -> String {
    format!(
        "segments {} -> {}, data section {} -> {} ({})",
        group(segments.0),
        group(segments.1),
        bytes(data_bytes.0),
        bytes(data_bytes.1),
        percent(data_bytes.0, data_bytes.1)
    )
}

/// [`change`] for one core module.
fn module_change(m: &segpack::ModuleReport) -> String {
    change(
        (m.segments_before, m.segments_after),
        (m.data_bytes_before, m.data_bytes_after),
    )
}

/// `inspect --json`: the report's JSON with each module's memories in it.
pub fn inspect_json(
    inspection: &Inspection,
    capped: Option<&Capped>,
    elapsed: f64,
) -> serde_json::Value {
    let report = &inspection.report;
    let modules = report
        .modules
        .iter()
        .zip(&inspection.memories)
        .map(|(m, memories)| {
            let mut json = module_json(m);
            json["memories"] = memories.iter().map(memory_json).collect();
            json
        })
        .collect();
    totals_json(report, capped, elapsed, modules)
}

/// `pack --stats`: for a component, one line per nested core module, what a
/// higher cap would give when the cap held packing back, then the totals.
pub fn stats_text(report: &PackReport, capped: Option<&Capped>, elapsed: f64) -> String {
    let mut text = String::new();
    if report.modules.len() > 1 || report.modules.iter().any(|m| !m.path.is_empty()) {
        let mut without_data = 0;
        for m in &report.modules {
            if is_without_data(m) {
                without_data += 1;
                continue;
            }
            text.push_str(&format!("  {}: {}\n", m.path, module_change(m)));
        }
        text.push_str(&without_data_line(without_data, "  "));
    }
    text + &closing_lines(report, capped, elapsed)
}

/// A core module with no data segment and nothing to say: text reports
/// count such modules on one line (13 of the 14 in a componentize-py
/// component) instead of a line each.
fn is_without_data(m: &segpack::ModuleReport) -> bool {
    m.segments_before == 0 && m.warnings.is_empty() && !m.changed
}

/// `13 core modules without data segments`, or nothing for none.
fn without_data_line(n: u64, indent: &str) -> String {
    match n {
        0 => String::new(),
        1 => format!("{indent}1 core module without data segments\n"),
        n => format!("{indent}{} core modules without data segments\n", group(n)),
    }
}

/// The same input planned with `--max-segments` at the engine limit, for
/// when the user's lower cap is what kept packing from gaining (more).
pub struct Capped {
    /// The cap the user gave.
    pub cap: u32,
    /// What packing gives at [`ENGINE_MAX_SEGMENTS`].
    pub at_engine_limit: Figures,
}

/// One line on what the cap costs: `capped at 10,000 segments;
/// --max-segments 100000 would give 32,815 segments, data section 2.5 MiB
/// (-2.1%)` (the change from the input, as on the total line); or that no
/// cap gains anything, or nothing more than the user's.
pub fn cap_text(report: &PackReport, capped: &Capped) -> String {
    let best = &capped.at_engine_limit;
    if best.data_bytes < report.data_bytes_after() {
        format!(
            "capped at {} segments; --max-segments {ENGINE_MAX_SEGMENTS} would give {}, data section {} ({})",
            group(capped.cap.into()),
            plural(best.segments, "segment"),
            bytes(best.data_bytes),
            percent(report.data_bytes_before(), best.data_bytes),
        )
    } else if best.data_bytes >= report.data_bytes_before() {
        format!(
            "no cap gains anything: at --max-segments {ENGINE_MAX_SEGMENTS} too, packing leaves the data section as it is"
        )
    } else {
        format!(
            "a higher cap gains nothing more: --max-segments {ENGINE_MAX_SEGMENTS} gives the same data section"
        )
    }
}

/// `memory 0 (32-bit): payload 4.1 MiB (2.8 MiB zeros, 1.3 MiB non-zero),
/// segments 1,204 -> 37, with headers 4.1 MiB -> 1.3 MiB (-68%)`: the
/// payload is what the segments carry, the sizes after it are the segments'
/// in the data section.
fn memory_line(m: &segpack::MemoryReport) -> String {
    let kind = match (m.index_type, m.imported) {
        (segpack::IndexType::I32, false) => "32-bit",
        (segpack::IndexType::I32, true) => "32-bit, imported",
        (segpack::IndexType::I64, false) => "64-bit",
        (segpack::IndexType::I64, true) => "64-bit, imported",
    };
    let payload = format!(
        "memory {} ({kind}): payload {} ({} zeros, {} non-zero)",
        m.memory_index,
        bytes(m.data_bytes),
        bytes(m.zero_bytes),
        bytes(m.non_zero_bytes),
    );
    match &m.not_packable {
        Some(why) => format!(
            "{payload}, {}, not packable: {}",
            plural(m.segments, "segment"),
            not_packable(*why)
        ),
        None => format!(
            "{payload}, segments {} -> {}, with headers {} -> {} ({})",
            group(m.segments),
            group(m.packed_segments),
            bytes(m.segment_bytes),
            bytes(m.packed_segment_bytes),
            percent(m.segment_bytes, m.packed_segment_bytes)
        ),
    }
}

fn plural(n: u64, what: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {what}{s}", group(n))
}

fn memory_json(m: &segpack::MemoryReport) -> serde_json::Value {
    serde_json::json!({
        "memory": m.memory_index,
        "index_type": match m.index_type {
            segpack::IndexType::I32 => "i32",
            segpack::IndexType::I64 => "i64",
        },
        "imported": m.imported,
        "segments": m.segments,
        "data_bytes": m.data_bytes,
        "zero_bytes": m.zero_bytes,
        "non_zero_bytes": m.non_zero_bytes,
        "segment_bytes": m.segment_bytes,
        "packed_segments": m.packed_segments,
        "packed_segment_bytes": m.packed_segment_bytes,
        "packable": m.not_packable.is_none(),
        "not_packable_reason": m.not_packable.map(not_packable),
    })
}

/// `segments 1,204 -> 37, data section 4.1 MiB -> 1.3 MiB (-68%), 0.21 s`
pub fn stats_line(r: &PackReport, seconds: f64) -> String {
    let change = change(
        (r.segments_before(), r.segments_after()),
        (r.data_bytes_before(), r.data_bytes_after()),
    );
    format!("{change}, {seconds:.2} s")
}

/// Why a memory is not packed, with what the user can do about it.
pub fn not_packable(why: segpack::NotPackable) -> String {
    match why {
        segpack::NotPackable::ImportedMemory => {
            format!("{why} (pass --zero-filled-imports if the host zeroes it)")
        }
        _ => why.to_string(),
    }
}

/// A difference `verify` found, with the hint [`not_packable`] gives when
/// the memory is not packable because it is imported.
pub fn difference(text: &str) -> String {
    const IMPORTED: &str = "must stay as they are: imported memory";
    match text.strip_suffix(IMPORTED) {
        Some(rest) => format!(
            "{rest}must stay as they are: {}",
            not_packable(segpack::NotPackable::ImportedMemory)
        ),
        None => text.to_string(),
    }
}

/// A library warning with the command line's names for what it mentions.
pub fn warning(text: &str) -> String {
    text.replace("the cap of ", "--max-segments ")
}

/// The library's message that the input is not WebAssembly at all, with the
/// input's name in front: `t.txt is not a WebAssembly binary (it starts with
/// "hell") (at offset 0x0)`. `None` for any other message.
pub fn not_wasm(message: &str, offset: Option<u64>, name: &str) -> Option<String> {
    if !message.starts_with("not a WebAssembly binary (") {
        return None;
    }
    // Brotli has no signature; the library can only guess, the name tells.
    let message = if name.to_ascii_lowercase().ends_with(".br") {
        message.replace(
            "if it is brotli-compressed, decompress it first",
            "its name says brotli-compressed; decompress it first",
        )
    } else {
        message.to_string()
    };
    Some(match offset {
        Some(offset) => format!("{name} is {message} (at offset {offset:#x})"),
        None => format!("{name} is {message}"),
    })
}

/// `pack --json`: the totals and one object per core module.
pub fn report_json(r: &PackReport, capped: Option<&Capped>, seconds: f64) -> serde_json::Value {
    totals_json(
        r,
        capped,
        seconds,
        r.modules.iter().map(module_json).collect(),
    )
}

fn module_json(m: &segpack::ModuleReport) -> serde_json::Value {
    serde_json::json!({
        "path": m.path,
        "segments_before": m.segments_before,
        "segments_after": m.segments_after,
        "data_bytes_before": m.data_bytes_before,
        "data_bytes_after": m.data_bytes_after,
        "changed": m.changed,
        "unpacked_memories": m.unpacked_memories.iter().map(|(i, why)| serde_json::json!({"memory": i, "reason": not_packable(*why)})).collect::<Vec<_>>(),
        "warnings": m.warnings.iter().map(|w| warning(w)).collect::<Vec<_>>(),
    })
}

/// The totals; `at_engine_limit` is what `--max-segments 100000` would give
/// when the user's cap held packing back, `null` otherwise.
fn totals_json(
    r: &PackReport,
    capped: Option<&Capped>,
    seconds: f64,
    modules: Vec<serde_json::Value>,
) -> serde_json::Value {
    let at_engine_limit = capped.map(|c| {
        serde_json::json!({
            "max_segments": ENGINE_MAX_SEGMENTS,
            "segments": c.at_engine_limit.segments,
            "data_bytes": c.at_engine_limit.data_bytes,
        })
    });
    serde_json::json!({
        "at_engine_limit": at_engine_limit,
        "segments_before": r.segments_before(),
        "segments_after": r.segments_after(),
        "data_bytes_before": r.data_bytes_before(),
        "data_bytes_after": r.data_bytes_after(),
        "input_bytes": r.input_len,
        "output_bytes": r.output_len,
        "changed": r.changed(),
        "seconds": seconds,
        "modules": modules,
    })
}

/// `1,204`: thousands separated.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `4.1 MiB`: binary units, one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The change from `before` to `after`, one rule everywhere: `unchanged`
/// when the sizes are equal; whole percents from 10% (`-68%`); one decimal
/// under 10% (`-2.1%`, `-0.4%`); and `-<0.1%` / `+<0.1%` for a change that
/// would round to 0.0%, so that a change never reads as none.
fn percent(before: u64, after: u64) -> String {
    if before == after {
        return "unchanged".into();
    }
    if before == 0 {
        return "+100%".into();
    }
    let change = (after as f64 - before as f64) / before as f64 * 100.0;
    let sign = if change < 0.0 { '-' } else { '+' };
    let size = change.abs();
    let tenths = format!("{size:.1}");
    if size >= 10.0 {
        format!("{sign}{size:.0}%")
    } else if tenths != "0.0" {
        format!("{sign}{tenths}%")
    } else {
        format!("{sign}<0.1%")
    }
}

/// The whole file compressed, before and after `pack --optimize-for`.
pub struct Compressed {
    /// The codec and level.
    pub compression: segpack::Compression,
    /// The input, compressed.
    pub before: u64,
    /// The output, compressed.
    pub after: u64,
    /// The layouts weighed: (cap, output length, estimated compressed
    /// length of the data sections).
    pub candidates: Vec<(u32, u64, u64)>,
    /// The layouts then compressed whole: (cap, compressed length).
    pub measured: Vec<(u32, u64)>,
    /// The bytes handed to the codec in all: the cost of the choice.
    pub bytes_compressed: u64,
}

/// `gzip:9: 1.2 MiB -> 1.1 MiB (-5.0%) compressed`
pub fn compressed_line(c: &Compressed) -> String {
    format!(
        "{} compressed: {} -> {} ({})",
        c.compression,
        bytes(c.before),
        bytes(c.after),
        percent(c.before, c.after)
    )
}

/// The totals' `compressed` object of `pack --json`.
pub fn compressed_json(c: &Compressed) -> serde_json::Value {
    serde_json::json!({
        "codec": c.compression.codec.name(),
        "level": c.compression.level,
        "bytes_before": c.before,
        "bytes_after": c.after,
        "bytes_compressed": c.bytes_compressed,
        "candidates": c.candidates.iter().map(|&(cap, len, estimate)| serde_json::json!({
            "max_segments": cap, "bytes": len, "data_compressed_estimate": estimate,
        })).collect::<Vec<_>>(),
        "measured": c.measured.iter().map(|&(cap, compressed)| serde_json::json!({
            "max_segments": cap, "compressed_bytes": compressed,
        })).collect::<Vec<_>>(),
    })
}

/// What `inspect --compressed` found: (raw length, compressed length) of
/// the default pack and of the optimized one.
pub struct InspectCompressed {
    /// The codec and level.
    pub compression: segpack::Compression,
    /// The input, compressed.
    pub input: u64,
    /// The default pack: raw and compressed lengths.
    pub default: (u64, u64),
    /// The pack `--optimize-for` gives: raw and compressed lengths.
    pub optimized: (u64, u64),
}

/// `inspect --compressed`'s two lines, before the totals.
pub fn inspect_compressed_text(c: &InspectCompressed) -> String {
    format!(
        "{codec} compressed: input {}; default pack {} ({}), raw {}; --optimize-for {codec}: {} ({}), raw {}\n",
        bytes(c.input),
        bytes(c.default.1),
        percent(c.input, c.default.1),
        bytes(c.default.0),
        bytes(c.optimized.1),
        percent(c.input, c.optimized.1),
        bytes(c.optimized.0),
        codec = c.compression,
    )
}

/// `inspect --json`'s `compressed` object.
pub fn inspect_compressed_json(c: &InspectCompressed) -> serde_json::Value {
    serde_json::json!({
        "codec": c.compression.codec.name(),
        "level": c.compression.level,
        "bytes_input": c.input,
        "default": {"bytes": c.default.0, "compressed_bytes": c.default.1},
        "optimized": {"bytes": c.optimized.0, "compressed_bytes": c.optimized.1},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_the_spec() {
        assert_eq!(group(1204), "1,204");
        assert_eq!(group(37), "37");
        assert_eq!(group(1_000_000), "1,000,000");
        assert_eq!(bytes(4_300_000), "4.1 MiB");
        assert_eq!(percent(100, 32), "-68%");
        assert_eq!(percent(0, 0), "unchanged");
        assert_eq!(percent(7, 7), "unchanged");
        assert_eq!(percent(1000, 996), "-0.4%");
        assert_eq!(percent(2_692_500, 2_636_115), "-2.1%");
        assert_eq!(percent(1000, 1090), "+9.0%");
        assert_eq!(percent(1000, 900), "-10%");
        assert_eq!(percent(100_000, 99_940), "-0.1%");
        assert_eq!(percent(100_000, 99_960), "-<0.1%");
        assert_eq!(percent(100_000, 100_001), "+<0.1%");
        assert_eq!(plural(1, "segment"), "1 segment");
        assert_eq!(plural(1204, "segment"), "1,204 segments");
    }
}
