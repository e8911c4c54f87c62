//! The slot rule's input (SPEC §3): the highest data segment index that
//! any instruction names, in function bodies and in constant expressions.
//! Which instructions name one is [`named_data_index`].

use std::ops::Range;

use wasmparser::{BinaryReader, DataKind, Operator};

use crate::error::Result;

/// SPEC §3: the data segment index an instruction names, if it names one.
/// The slot rule keeps every such index valid. An instruction the spec adds
/// later is one more line here (and in the test's list, which checks this
/// one against every operator of wasmparser that carries a data index).
pub(crate) fn named_data_index(op: &Operator<'_>) -> Option<u32> {
    match *op {
        Operator::MemoryInit { data_index, .. } => Some(data_index),
        Operator::DataDrop { data_index } => Some(data_index),
        Operator::ArrayNewData {
            array_data_index, ..
        } => Some(array_data_index),
        Operator::ArrayInitData {
            array_data_index, ..
        } => Some(array_data_index),
        _ => None,
    }
}

/// One more than the highest data segment index named in `ops`, or `used`
/// if that is higher.
pub(super) fn slots_named_by(
    mut ops: wasmparser::OperatorsReader<'_>,
    mut used: u32,
) -> Result<u32> {
    while !ops.eof() {
        if let Some(index) = named_data_index(&ops.read()?) {
            used = used.max(index.saturating_add(1));
        }
    }
    Ok(used)
}

/// One more than the highest data segment index that the function bodies
/// in the code section at `code` name, 0 when they name none.
pub(super) fn data_slots_used(input: &[u8], code: Range<usize>) -> Result<u32> {
    let reader = wasmparser::CodeSectionReader::new(BinaryReader::new(
        &input[code.clone()],
        code.start as u64,
    ))?;
    let mut used = 0;
    for body in reader {
        used = slots_named_by(body?.get_operators_reader()?, used)?;
    }
    Ok(used)
}

/// As [`data_slots_used`], for the constant expressions of an element
/// section (offsets and items).
pub(super) fn element_slots_used(reader: &wasmparser::ElementSectionReader<'_>) -> Result<u32> {
    let mut used = 0;
    for element in reader.clone() {
        let element = element?;
        if let wasmparser::ElementKind::Active { offset_expr, .. } = &element.kind {
            used = slots_named_by(offset_expr.get_operators_reader(), used)?;
        }
        if let wasmparser::ElementItems::Expressions(_, items) = element.items {
            for item in items {
                used = slots_named_by(item?.get_operators_reader(), used)?;
            }
        }
    }
    Ok(used)
}

/// As [`data_slots_used`], for a data segment's offset expression.
pub(super) fn offset_slots_used(data: &wasmparser::Data<'_>, used: u32) -> Result<u32> {
    match &data.kind {
        // A single constant names no segment.
        DataKind::Active { offset_expr, .. } if super::single_const(offset_expr).is_some() => {
            Ok(used)
        }
        DataKind::Active { offset_expr, .. } => {
            slots_named_by(offset_expr.get_operators_reader(), used)
        }
        DataKind::Passive => Ok(used),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Binary, parse};

    /// Every instruction that names a data segment, as the test knows them:
    /// its wasmparser name and its text form naming segment 3.
    const NAMING: [(&str, &str); 4] = [
        (
            "MemoryInit",
            "(memory.init 3 (i32.const 0) (i32.const 0) (i32.const 0))",
        ),
        ("DataDrop", "(data.drop 3)"),
        (
            "ArrayNewData",
            "(drop (array.new_data $a 3 (i32.const 0) (i32.const 0)))",
        ),
        (
            "ArrayInitData",
            "(array.init_data $a 3 (array.new_default $a (i32.const 0)) (i32.const 0) (i32.const 0) (i32.const 0))",
        ),
    ];

    /// wasmparser's operators with a field that holds a data segment index.
    fn operators_with_a_data_index() -> Vec<&'static str> {
        macro_rules! collect {
            ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {{
                let mut found = Vec::new();
                $(
                    let fields: &[&str] = &[$($(stringify!($arg)),*)?];
                    if fields.iter().any(|f| f.ends_with("data_index")) {
                        found.push(stringify!($op));
                    }
                )*
                found
            }};
        }
        wasmparser::for_each_operator!(collect)
    }

    /// The list here, wasmparser's operators and `named_data_index` agree: a
    /// new instruction that names data segments fails this test until it is
    /// added to both.
    #[test]
    fn every_instruction_that_names_a_data_segment_is_known() {
        let mut ours: Vec<&str> = NAMING.iter().map(|(name, _)| *name).collect();
        let mut theirs = operators_with_a_data_index();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
        for (name, instruction) in NAMING {
            let module = wat::parse_str(format!(
                r#"(module (type $a (array (mut i8))) (memory 1)
                     (data "0") (data "1") (data "2") (data "3") (data "4")
                     (func {instruction}))"#
            ))
            .unwrap();
            let parsed = parse(&module, 0..module.len(), &|_| {}).unwrap();
            let Binary::Module(m) = parsed else {
                panic!("not a module")
            };
            assert_eq!(m.data_slots_used, 4, "{name}");
        }
    }
}
