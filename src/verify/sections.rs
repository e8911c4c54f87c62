//! Rule 1 of verify: sections other than data and data count compare byte
//! for byte; what to call a section in a message; the `name` section may
//! only have lost data segment names.

use wasmparser::BinaryReader;

use super::Section;
use crate::{names, parse};

/// ", first at byte k (0x.. expected, 0x.. found)" for two slices, or "".
pub(super) fn first_difference_note(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(k) => format!(" with byte {k} = {:#04x} (found {:#04x})", a[k], b[k]),
        None => String::new(),
    }
}

/// A section's name for messages: "code section", "custom section `name`".
pub(super) fn section_name(input: &[u8], s: &Section) -> String {
    const NAMES: [&str; 14] = [
        "custom",
        "type",
        "import",
        "function",
        "table",
        "memory",
        "global",
        "export",
        "start",
        "element",
        "code",
        "data",
        "data count",
        "tag",
    ];
    if s.id == parse::CUSTOM_SECTION {
        let mut r = BinaryReader::new(&input[s.range.clone()], 0);
        let name = (|| {
            r.read_u8().ok()?;
            r.read_var_u32().ok()?;
            r.read_string().ok().map(str::to_string)
        })();
        if let Some(name) = name {
            return format!("custom section `{name}`");
        }
    }
    match NAMES.get(s.id as usize) {
        Some(n) => format!("{n} section"),
        None => format!("section with id {}", s.id),
    }
}

/// Whether `packed`'s name section is `original`'s with some data segment
/// names (subsection 9) dropped, as SPEC §1.1 allows.
pub(super) fn names_compatible(original: &[u8], packed: &[u8]) -> bool {
    let (Some((name_a, a)), Some((name_b, b))) = (names::read(original), names::read(packed))
    else {
        return false;
    };
    let others = |s: &[names::Subsection<'_>]| -> Vec<(u8, Vec<u8>)> {
        s.iter()
            .filter(|sub| sub.id != names::DATA_SEGMENT_NAMES)
            .map(|sub| (sub.id, sub.body.to_vec()))
            .collect()
    };
    if name_a != name_b || others(&a) != others(&b) {
        return false;
    }
    let data_names = |s: &[names::Subsection<'_>]| -> Option<Vec<Vec<u8>>> {
        let mut all = Vec::new();
        for sub in s.iter().filter(|sub| sub.id == names::DATA_SEGMENT_NAMES) {
            all.extend(
                names::map_entries(sub.body)?
                    .into_iter()
                    .map(|(_, raw)| raw.to_vec()),
            );
        }
        Some(all)
    };
    let (Some(kept), Some(original_names)) = (data_names(&b), data_names(&a)) else {
        return false;
    };
    // The kept names are a subsequence of the original's.
    let mut rest = original_names.iter();
    kept.iter().all(|k| rest.any(|o| o == k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_only_lose_data_segment_names() {
        fn section(subsections: &[(u8, Vec<u8>)]) -> Vec<u8> {
            let mut content = vec![4, b'n', b'a', b'm', b'e'];
            for (id, body) in subsections {
                content.push(*id);
                content.push(body.len() as u8);
                content.extend_from_slice(body);
            }
            let mut s = vec![0, content.len() as u8];
            s.extend(content);
            s
        }
        let module_name = (0u8, vec![1, b'm']);
        let two = (9u8, vec![2, 0, 1, b'x', 1, 1, b'y']);
        let second = (9u8, vec![1, 1, 1, b'y']);
        let renamed = (9u8, vec![1, 1, 1, b'z']);
        let original = section(&[module_name.clone(), two]);
        assert!(names_compatible(
            &original,
            &section(&[module_name.clone(), second])
        ));
        assert!(names_compatible(
            &original,
            &section(std::slice::from_ref(&module_name))
        ));
        assert!(!names_compatible(
            &original,
            &section(&[module_name, renamed])
        ));
        assert!(!names_compatible(&original, &section(&[])));
    }
}
