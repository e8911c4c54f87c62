//! The memory map of `inspect --svg`, also what the web page shows: for each
//! memory with data, three rows along its address space (the non-zero
//! bytes, the segments before packing, the segments after), one column of
//! pixels per [`MemoryMap`] column, so a 4 GiB image reads
//! as well as a 1 MiB one.

use segpack::{MapColumn, MemoryMap, ModuleMap};

use crate::render::{bytes, group, not_packable};

/// Columns of the picture: one pixel each, the width of its plot area.
pub const COLUMNS: usize = 780;

/// Width of the whole picture, in pixels.
const WIDTH: usize = 960;
/// Where the plot area starts: the row labels are left of it.
const PLOT_X: usize = 160;
/// Height of a row, and the space between rows.
const ROW: usize = 16;
const ROW_GAP: usize = 5;
/// Height of one memory's block: title, three rows, axis.
const BLOCK: usize = 24 + 3 * (ROW + ROW_GAP) + 30;
/// Height of the header (file name, legend).
const HEADER: usize = 46;

/// Shades of a row: a column with anything in it is drawn in one of
/// `LEVELS` opacities, so one byte in a column of 5 MiB still shows.
const LEVELS: u64 = 8;

/// A row of a memory: label, colour, and what a column holds.
type Row = (&'static str, &'static str, fn(&MapColumn) -> u64);

/// The rows of a memory.
const ROWS: [Row; 3] = [
    ("non-zero bytes", "#c0392b", |c| c.non_zero),
    ("segments before", "#7f8c8d", |c| c.before),
    ("segments after", "#1f6fb2", |c| c.after),
];

/// The memory map of a binary named `name`, as one SVG document.
pub fn memory_map(name: &str, modules: &[ModuleMap]) -> String {
    let shown: Vec<(&str, &MemoryMap)> = modules
        .iter()
        .flat_map(|m| {
            m.memories
                .iter()
                .map(move |memory| (m.path.as_str(), memory))
        })
        .filter(|(_, m)| m.segments_before > 0 || m.segments_after > 0)
        .collect();
    let height = HEADER + BLOCK * shown.len().max(1);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title>memory map of {}</title>\n\
         <rect width=\"{WIDTH}\" height=\"{height}\" fill=\"#fff\"/>\n\
         <text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n\
         <text x=\"8\" y=\"36\" fill=\"#555\">Each memory from address 0 (left) to the end of its data (right). \
         The darker a column, the more of it is non-zero, or written by segments.</text>\n",
        escape(name),
        escape(name),
    );
    if shown.is_empty() {
        svg.push_str(&format!(
            "<text x=\"8\" y=\"{}\">no memory has data segments</text>\n",
            HEADER + 20
        ));
    }
    for (i, (path, memory)) in shown.iter().enumerate() {
        svg.push_str(&block(path, memory, HEADER + i * BLOCK));
    }
    svg.push_str("</svg>\n");
    svg
}

/// One memory, its top at `y`.
fn block(path: &str, m: &MemoryMap, y: usize) -> String {
    let kind = match (m.index_type, m.imported) {
        (segpack::IndexType::I32, false) => "32-bit",
        (segpack::IndexType::I32, true) => "32-bit, imported",
        (segpack::IndexType::I64, false) => "64-bit",
        (segpack::IndexType::I64, true) => "64-bit, imported",
    };
    let module = if path.is_empty() {
        String::new()
    } else {
        format!("{path}, ")
    };
    let mut out = format!(
        "<g class=\"memory\" data-memory=\"{}\">\n<text x=\"8\" y=\"{}\" font-weight=\"bold\">{}memory {} ({kind}): {}, one column {}</text>\n",
        m.memory_index,
        y + 16,
        escape(&module),
        m.memory_index,
        extent(m),
        bytes(m.column_bytes),
    );
    let plot_width = (WIDTH - PLOT_X - 20) as f64;
    let x_of = |c: usize| PLOT_X as f64 + plot_width * c as f64 / m.columns.len() as f64;
    for (r, (label, colour, value)) in ROWS.iter().enumerate() {
        let top = y + 24 + r * (ROW + ROW_GAP);
        let total: u64 = m.columns.iter().map(value).sum();
        let label = match r {
            0 => format!("{label}: {}", bytes(total)),
            1 => format!("before: {}", plural(m.segments_before)),
            _ => format!("after: {}", plural(m.segments_after)),
        };
        out.push_str(&format!(
            "<text x=\"8\" y=\"{}\">{}</text>\n<rect x=\"{PLOT_X}\" y=\"{top}\" width=\"{plot_width}\" height=\"{ROW}\" fill=\"#eee\"/>\n",
            top + ROW - 4,
            escape(&label),
        ));
        // Runs of columns in the same shade are one rectangle.
        let mut c = 0;
        while c < m.columns.len() {
            let level = shade(value(&m.columns[c]), column_len(m, c));
            let mut end = c + 1;
            while end < m.columns.len()
                && shade(value(&m.columns[end]), column_len(m, end)) == level
            {
                end += 1;
            }
            if level > 0 {
                let opacity = 0.25 + 0.75 * (level - 1) as f64 / (LEVELS - 1) as f64;
                out.push_str(&format!(
                    "<rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{ROW}\" fill=\"{colour}\" fill-opacity=\"{opacity:.2}\"/>\n",
                    x_of(c),
                    (x_of(end) - x_of(c)).max(1.0),
                ));
            }
            c = end;
        }
    }
    if let Some(why) = m.not_packable {
        let top = y + 24 + 3 * (ROW + ROW_GAP);
        out.push_str(&format!(
            "<text x=\"{PLOT_X}\" y=\"{}\" fill=\"#a04000\">not packable: {}</text>\n",
            top + 12,
            escape(&not_packable(why)),
        ));
    } else {
        let axis = y + 24 + 3 * (ROW + ROW_GAP);
        for q in 0..=4u64 {
            let x = PLOT_X as f64 + plot_width * q as f64 / 4.0;
            let address = (u128::from(m.extent) * u128::from(q) / 4) as u64;
            let anchor = match q {
                0 => "start",
                4 => "end",
                _ => "middle",
            };
            out.push_str(&format!(
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{axis}\" y2=\"{}\" stroke=\"#999\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{anchor}\" fill=\"#555\">{}</text>\n",
                axis + 4,
                axis + 16,
                address_label(address),
            ));
        }
    }
    out.push_str("</g>\n");
    out
}

/// `16.0 MiB, data in the first 320.0 KiB (shown)`, or `1.0 MiB` when the
/// picture shows all of it.
fn extent(m: &MemoryMap) -> String {
    if m.extent >= m.min_bytes {
        bytes(m.extent)
    } else {
        format!(
            "{}, data in the first {} (shown)",
            bytes(m.min_bytes),
            bytes(m.extent)
        )
    }
}

/// Addresses in column `c` of `m`.
fn column_len(m: &MemoryMap, c: usize) -> u64 {
    let start = c as u64 * m.column_bytes;
    m.column_bytes.min(m.extent - start)
}

/// 0 for an empty column, else 1 to [`LEVELS`] by how full it is.
fn shade(value: u64, len: u64) -> u64 {
    if value == 0 || len == 0 {
        return 0;
    }
    1 + (u128::from(value) * u128::from(LEVELS - 1) / u128::from(len)) as u64
}

fn plural(n: u64) -> String {
    format!("{} segment{}", group(n), if n == 1 { "" } else { "s" })
}

/// `0`, `512 B`, `1.0 MiB`.
fn address_label(n: u64) -> String {
    if n == 0 { "0".into() } else { bytes(n) }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shades_show_any_byte_and_a_full_column_darkest() {
        assert_eq!(shade(0, 100), 0);
        assert_eq!(shade(1, 5 << 20), 1);
        assert_eq!(shade(50, 100), 4);
        assert_eq!(shade(100, 100), LEVELS);
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(escape("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
    }
}
