//! Reading the `name` custom section: its subsections, and the entries of a
//! name map (subsection 9 names data segments). Packing drops the names of
//! re-packed segments (SPEC §1.1); verify checks that nothing else changed.

use wasmparser::BinaryReader;

/// A subsection of a `name` section: its id, and its whole encoding and
/// body as slices of the section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subsection<'a> {
    pub id: u8,
    /// Id, size and body, as in the file.
    pub raw: &'a [u8],
    pub body: &'a [u8],
}

/// The id of the subsection that names data segments.
pub(crate) const DATA_SEGMENT_NAMES: u8 = 9;

/// The `name` section at `section` (a whole custom section, header
/// included): its name field (the section's contents up to the first
/// subsection), and its subsections. `None` when it cannot be read or its
/// size field disagrees with its length.
pub(crate) fn read(section: &[u8]) -> Option<(&[u8], Vec<Subsection<'_>>)> {
    let mut r = BinaryReader::new(section, 0);
    r.read_u8().ok()?;
    let size = r.read_var_u32().ok()? as usize;
    let contents = r.current_position();
    if contents + size != section.len() {
        return None;
    }
    r.read_string().ok()?;
    let name = &section[contents..r.current_position()];
    let mut out = Vec::new();
    while !r.eof() {
        let start = r.current_position();
        let id = r.read_u8().ok()?;
        let len = r.read_var_u32().ok()? as usize;
        let body = r.read_bytes(len).ok()?;
        out.push(Subsection {
            id,
            raw: &section[start..r.current_position()],
            body,
        });
    }
    Some((name, out))
}

/// The entries of a name map, as (index, the entry's raw bytes); `None`
/// when it cannot be read.
pub(crate) fn map_entries(body: &[u8]) -> Option<Vec<(u32, &[u8])>> {
    let mut r = BinaryReader::new(body, 0);
    let count = r.read_var_u32().ok()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let start = r.current_position();
        let index = r.read_var_u32().ok()?;
        r.read_string().ok()?;
        out.push((index, &body[start..r.current_position()]));
    }
    r.eof().then_some(out)
}
