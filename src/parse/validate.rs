//! Validation: the whole input through wasmparser's validator (every
//! feature), data sections as their headers only, and the headers kept so
//! that reading does not walk the input again.

use std::ops::Range;

use wasmparser::{
    BinaryReader, FuncValidatorAllocations, Parser, Payload, ValidPayload, Validator, WasmFeatures,
};

use super::{ReleaseBehind, nested_path_at, short_path};
use crate::error::{Error, Result};

/// Validates the whole input (core modules and components, every feature
/// wasmparser knows), so planning can trust its structure.
///
/// Data sections are handed to the validator as their headers only (each
/// payload cut to length 0): the validator never looks at payload bytes, and
/// reading just the headers lets `release` drop the pages behind us as we go,
/// where touching one header per page would otherwise map the whole file.
///
/// An error inside a component names the nested binary it is in
/// ("in component 0 / core module 1: …").
pub(crate) fn validate(input: &[u8], release: &(dyn Fn(&[u8]) + Sync)) -> Result<KnownHeaders> {
    crate::sniff::check(input)?;
    validate_all(input, release).map_err(|e| match e.offset() {
        Some(offset) => {
            let path = short_path(&nested_path_at(input, offset as usize));
            e.in_context(&path)
        }
        None => e,
    })
}

fn validate_all(input: &[u8], release: &(dyn Fn(&[u8]) + Sync)) -> Result<KnownHeaders> {
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut functions = Vec::new();
    let mut known = KnownHeaders::default();
    for payload in Parser::new(0).parse_all(input) {
        let payload = payload?;
        check_count(&payload)?;
        let valid = match &payload {
            Payload::DataSection(reader) => {
                let (valid, headers) =
                    validate_data_section(&mut validator, input, reader, release)?;
                known
                    .sections
                    .insert(reader.range().start as usize, headers);
                valid
            }
            _ => validator.payload(&payload)?,
        };
        if let ValidPayload::Func(func, body) = valid {
            functions.push((func, body));
        }
    }
    let mut allocations = FuncValidatorAllocations::default();
    for (func, body) in functions {
        let mut validator = func.into_validator(allocations);
        validator.validate(&body)?;
        allocations = validator.into_allocations();
    }
    Ok(known)
}

/// The segment headers of every data section, copied out by validation, so
/// that planning reads them without touching the input again: each header
/// sits on its own page of a snapshot, and a second walk would fault every
/// one of them in again.
#[derive(Debug, Default)]
pub(crate) struct KnownHeaders {
    /// By the offset of the section's contents.
    pub(super) sections: std::collections::HashMap<usize, DataHeaders>,
}

/// One data section's headers: a valid data section of the same count whose
/// payloads are all empty, and each segment's range and payload range in the
/// input.
#[derive(Debug)]
pub(super) struct DataHeaders {
    pub(super) headers: Vec<u8>,
    pub(super) segments: Vec<(Range<usize>, Range<usize>)>,
}

/// Refuses a section whose entry count cannot fit its size (every entry
/// takes at least one byte). The validator reserves room for the claimed
/// count before reading an entry, so a lying count would otherwise cost an
/// allocation far bigger than the input (SPEC §5).
fn check_count(payload: &Payload<'_>) -> Result<()> {
    macro_rules! counts {
        ($($variant:ident),* $(,)?) => {
            match payload {
                $(Payload::$variant(r) => (r.count(), r.range()),)*
                _ => return Ok(()),
            }
        };
    }
    let (count, range) = counts!(
        TypeSection,
        ImportSection,
        FunctionSection,
        TableSection,
        MemorySection,
        TagSection,
        GlobalSection,
        ExportSection,
        ElementSection,
        DataSection,
        InstanceSection,
        CoreTypeSection,
        ComponentInstanceSection,
        ComponentAliasSection,
        ComponentTypeSection,
        ComponentCanonicalSection,
        ComponentImportSection,
        ComponentExportSection,
    );
    if u64::from(count) > range.end - range.start {
        return Err(Error::malformed(
            format!(
                "section claims {count} entries in {} bytes",
                range.end - range.start
            ),
            range.start,
        ));
    }
    Ok(())
}

/// Validates a data section through a copy of its segment headers.
fn validate_data_section<'a>(
    validator: &mut Validator,
    input: &[u8],
    reader: &wasmparser::DataSectionReader<'a>,
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<(ValidPayload<'a>, DataHeaders)> {
    let section_start = reader.range().start as usize;
    let mut headers = Vec::new();
    wasm_encoder::Encode::encode(&reader.count(), &mut headers);
    // Where each segment's header starts in `headers` (its input offset is
    // `segments[i].0.start`), to report errors at the input's offsets.
    // The count is the file's claim: never reserve for more segments than
    // the section's bytes could hold (each takes at least 3 bytes).
    let most = (reader.range().end - reader.range().start) as usize / 3;
    let mut starts: Vec<usize> = Vec::with_capacity((reader.count() as usize).min(most));
    let mut segments: Vec<(Range<usize>, Range<usize>)> = Vec::with_capacity(starts.capacity());
    let mut behind = ReleaseBehind::new(release, section_start);
    for data in reader.clone() {
        let data = data?;
        let start = data.range.start as usize;
        let payload = data.data.as_ptr() as usize - input.as_ptr() as usize;
        segments.push((
            start..data.range.end as usize,
            payload..payload + data.data.len(),
        ));
        behind.advance(input, start);
        let mut r = BinaryReader::new(&input[start..], start as u64);
        let flags = r.read_var_u32()?;
        if flags == 2 {
            r.read_var_u32()?;
        }
        if flags != 1 {
            r.read::<wasmparser::ConstExpr<'_>>()?;
        }
        starts.push(headers.len());
        headers.extend_from_slice(&input[start..start + r.current_position()]);
        headers.push(0); // payload length 0
    }
    behind.finish(input, reader.range().end as usize);
    let synthetic = wasmparser::DataSectionReader::new(BinaryReader::new(&headers, 0))?;
    validator
        .payload(&Payload::DataSection(synthetic))
        .map_err(|e| {
            let at = e.offset();
            let i = starts.partition_point(|&h| h as u64 <= at);
            let original = match i {
                0 => section_start as u64,
                _ => (segments[i - 1].0.start + (at as usize - starts[i - 1])) as u64,
            };
            Error::malformed(e.message().to_string(), original)
        })?;
    Ok((ValidPayload::Ok, DataHeaders { headers, segments }))
}
