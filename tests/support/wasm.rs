//! Just enough of the binary format to take a core module apart into its
//! sections and put it back together: LEBs (the tests' only LEB reader and
//! writers), section framing, section order.
//!
//! The harness rewrites modules (an export per memory, a reshuffled data
//! section) by splicing raw sections, so that everything it does not mean to
//! change stays byte for byte what it was.

/// The preamble of a core module: magic and version 1.
pub const MODULE_PREAMBLE: [u8; 8] = *b"\0asm\x01\0\0\0";

pub const SECTION_CUSTOM: u8 = 0;
pub const SECTION_IMPORT: u8 = 2;
pub const SECTION_MEMORY: u8 = 5;
pub const SECTION_GLOBAL: u8 = 6;
pub const SECTION_EXPORT: u8 = 7;
pub const SECTION_DATA: u8 = 11;
pub const SECTION_DATA_COUNT: u8 = 12;

/// Whether `bytes` starts like a core module (as opposed to a component).
pub fn is_core_module(bytes: &[u8]) -> bool {
    bytes.starts_with(&MODULE_PREAMBLE)
}

/// Reads an unsigned LEB128 at `*pos`, advancing it.
pub fn read_uleb(bytes: &[u8], pos: &mut usize) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = bytes[*pos];
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
        shift += 7;
        assert!(shift < 64, "LEB128 too long at offset {}", *pos);
    }
}

/// Appends `value` as an unsigned LEB128.
pub fn write_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `value` as a signed LEB128.
pub fn write_sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        let done = (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0);
        if done {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Appends `value` as an unsigned LEB128 of exactly `width` bytes (overlong
/// when the value needs fewer; bits past `7 * width` are dropped).
pub fn write_uleb_padded(out: &mut Vec<u8>, mut value: u64, width: usize) {
    for i in 0..width {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        out.push(if i + 1 < width { byte | 0x80 } else { byte });
    }
}

/// Appends `value` as a signed LEB128 of exactly `width` bytes (5 for an
/// `i32`, 10 for an `i64`, at most).
pub fn write_sleb_padded(out: &mut Vec<u8>, mut value: i64, width: usize) {
    for i in 0..width {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        out.push(if i + 1 < width { byte | 0x80 } else { byte });
    }
}

/// `value` as an unsigned LEB128.
pub fn uleb(value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write_uleb(&mut out, value);
    out
}

/// `value` as an unsigned LEB128 of exactly `width` bytes
/// ([`write_uleb_padded`]).
pub fn uleb_padded(value: u64, width: usize) -> Vec<u8> {
    let mut out = Vec::new();
    write_uleb_padded(&mut out, value, width);
    out
}

/// How many bytes [`write_uleb`] writes for `value`.
pub fn uleb_len(value: u64) -> usize {
    uleb(value).len()
}

/// How many bytes [`write_sleb`] writes for `value`.
pub fn sleb_len(value: i64) -> usize {
    let mut out = Vec::new();
    write_sleb(&mut out, value);
    out.len()
}

/// Appends a name (or any byte vector): its length, then its bytes.
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_uleb(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One section of a core module.
#[derive(Debug, Clone)]
pub struct Section<'a> {
    pub id: u8,
    pub content: &'a [u8],
}

/// Splits a core module into its sections, in file order.
///
/// # Panics
/// When `module` is not a well-framed core module.
pub fn sections(module: &[u8]) -> Vec<Section<'_>> {
    assert!(is_core_module(module), "not a core module");
    let mut pos = MODULE_PREAMBLE.len();
    let mut sections = Vec::new();
    while pos < module.len() {
        let id = module[pos];
        pos += 1;
        let size = read_uleb(module, &mut pos) as usize;
        sections.push(Section {
            id,
            content: &module[pos..pos + size],
        });
        pos += size;
    }
    sections
}

/// Builds a core module from `(id, content)` pairs.
pub fn assemble<'a>(sections: impl IntoIterator<Item = (u8, &'a [u8])>) -> Vec<u8> {
    let mut out = MODULE_PREAMBLE.to_vec();
    for (id, content) in sections {
        out.push(id);
        write_bytes(&mut out, content);
    }
    out
}

/// Where a known section sits in the order the spec requires (custom
/// sections may go anywhere and have no rank).
pub fn section_rank(id: u8) -> Option<u8> {
    // type, import, function, table, memory, tag, global, export, start,
    // element, data count, code, data.
    const ORDER: [u8; 13] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
    ORDER.iter().position(|&o| o == id).map(|p| p as u8)
}
