//! What the command prints: the summary line, per-module lines, the JSON
//! objects of `--json` and `inspect`, and the numbers in them.

use segpack::{Inspection, PackReport};

/// `inspect`'s text: one line per module (its memories after a `;`), its
/// warnings, then the total.
pub fn inspect_text(inspection: &Inspection, elapsed: f64) -> String {
    let report = &inspection.report;
    let mut text = String::new();
    for (m, memories) in report.modules.iter().zip(&inspection.memories) {
        let name = if m.path.is_empty() { "module" } else { &m.path };
        let mut line = format!(
            "{name}: segments {} -> {}, data {} -> {} ({})",
            group(m.segments_before),
            group(m.segments_after),
            bytes(m.data_bytes_before),
            bytes(m.data_bytes_after),
            percent(m.data_bytes_before, m.data_bytes_after)
        );
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
    text.push_str(&stats_line(report, elapsed));
    text.push('\n');
    text
}

/// `inspect --json`: the report's JSON with each module's memories in it.
pub fn inspect_json(inspection: &Inspection, elapsed: f64) -> serde_json::Value {
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
    totals_json(report, elapsed, modules)
}

/// `pack --stats`: for a component, one line per nested core module, then
/// the totals.
pub fn stats_text(report: &PackReport, elapsed: f64) -> String {
    let mut text = String::new();
    if report.modules.len() > 1 || report.modules.iter().any(|m| !m.path.is_empty()) {
        for m in &report.modules {
            text.push_str(&format!(
                "  {}: segments {} -> {}, data {} -> {} ({})\n",
                m.path,
                group(m.segments_before),
                group(m.segments_after),
                bytes(m.data_bytes_before),
                bytes(m.data_bytes_after),
                percent(m.data_bytes_before, m.data_bytes_after)
            ));
        }
    }
    text.push_str(&stats_line(report, elapsed));
    text.push('\n');
    text
}

/// `memory 0 (32-bit): 1,204 segments, 4.1 MiB of data (2.8 MiB zeros,
/// 1.3 MiB non-zero) -> 37 segments, 1.3 MiB (-68%)`, sizes with headers.
fn memory_line(m: &segpack::MemoryReport) -> String {
    let kind = match (m.index_type, m.imported) {
        (segpack::IndexType::I32, false) => "32-bit",
        (segpack::IndexType::I32, true) => "32-bit, imported",
        (segpack::IndexType::I64, false) => "64-bit",
        (segpack::IndexType::I64, true) => "64-bit, imported",
    };
    let before = format!(
        "memory {} ({kind}): {}, {} of data ({} zeros, {} non-zero)",
        m.memory_index,
        plural(m.segments, "segment"),
        bytes(m.data_bytes),
        bytes(m.zero_bytes),
        bytes(m.non_zero_bytes),
    );
    match &m.not_packable {
        Some(why) => format!("{before}, not packable: {}", not_packable(*why)),
        None => format!(
            "{before} -> {}, {} ({})",
            plural(m.packed_segments, "segment"),
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

/// `segments 1,204 -> 37, data 4.1 MiB -> 1.3 MiB (-68%), 0.21 s`
pub fn stats_line(r: &PackReport, seconds: f64) -> String {
    format!(
        "segments {} -> {}, data {} -> {} ({}), {seconds:.2} s",
        group(r.segments_before()),
        group(r.segments_after()),
        bytes(r.data_bytes_before()),
        bytes(r.data_bytes_after()),
        percent(r.data_bytes_before(), r.data_bytes_after())
    )
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

/// A library warning with the command line's names for what it mentions.
pub fn warning(text: &str) -> String {
    text.replace("the cap of ", "--max-segments ")
}

/// `pack --json`: the totals and one object per core module.
pub fn report_json(r: &PackReport, seconds: f64) -> serde_json::Value {
    totals_json(r, seconds, r.modules.iter().map(module_json).collect())
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

fn totals_json(r: &PackReport, seconds: f64, modules: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({
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

fn group(n: u64) -> String {
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

fn bytes(n: u64) -> String {
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

/// The change from `before` to `after`, signed: `-68%`, `+0%`, and one
/// decimal when it is under 1% either way (`-0.4%`).
fn percent(before: u64, after: u64) -> String {
    if before == after {
        return "+0%".into();
    }
    if before == 0 {
        return "+100%".into();
    }
    let change = (after as f64 - before as f64) / before as f64 * 100.0;
    if change.abs() < 0.1 {
        format!("{change:+.2}%")
    } else if change.abs() < 1.0 {
        format!("{change:+.1}%")
    } else {
        format!("{change:+.0}%")
    }
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
        assert_eq!(percent(0, 0), "+0%");
        assert_eq!(percent(1000, 996), "-0.4%");
        assert_eq!(plural(1, "segment"), "1 segment");
        assert_eq!(plural(1204, "segment"), "1,204 segments");
    }
}
