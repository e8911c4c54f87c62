//! Validation: the whole input through wasmparser's validator (every
//! feature), data sections as their headers only, and the headers kept so
//! that reading does not walk the input again.

use std::ops::Range;

use wasmparser::{
    BinaryReader, FuncToValidate, FuncValidatorAllocations, FunctionBody, Parser, Payload,
    ValidPayload, Validator, ValidatorResources, WasmFeatures,
};

use std::collections::HashMap;

use super::slots::slots_named_by;
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
/// Function bodies are validated on `threads` workers ([`crate::pool`]),
/// those before a data section while this thread validates its headers
/// ([`crate::pool::join`]). Any error of the sections is reported before
/// any of the bodies, and of those the first in the input's order, on any
/// number of threads.
///
/// An error inside a component names the nested binary it is in
/// ("in component 0 / core module 1: …").
pub(crate) fn validate(
    input: &[u8],
    release: &(dyn Fn(&[u8]) + Sync),
    read_at: Option<ReadAt<'_>>,
    threads: usize,
) -> Result<KnownHeaders> {
    crate::sniff::check(input)?;
    validate_all(input, release, read_at, threads).map_err(|e| match e.offset() {
        Some(offset) => {
            let path = short_path(&nested_path_at(input, offset as usize));
            e.in_context(&path)
        }
        None => e,
    })
}

/// A read of the input at an offset that leaves its map alone (`pread` of
/// the file it maps): how many bytes it read into the buffer.
pub(crate) type ReadAt<'r> = &'r (dyn Fn(u64, &mut [u8]) -> std::io::Result<usize> + Sync);

fn validate_all(
    input: &[u8],
    release: &(dyn Fn(&[u8]) + Sync),
    read_at: Option<ReadAt<'_>>,
    threads: usize,
) -> Result<KnownHeaders> {
    let mut validator = Validator::new_with_features(WasmFeatures::all());
    let mut functions = Bodies::default();
    let mut known = KnownHeaders::default();
    // Per binary being read (components nest): whether it is a core module
    // with a data count section, whose code the slot rule reads.
    let mut has_data_count: Vec<bool> = Vec::new();
    // The code section whose bodies come next, if the slot rule reads them.
    let mut code_read = None;
    // The first invalid body of those validated beside a data section.
    let mut bodies_error = None;
    for payload in Parser::new(0).parse_all(input) {
        let payload = payload?;
        check_count(&payload)?;
        match &payload {
            Payload::Version { .. } => has_data_count.push(false),
            Payload::DataCountSection { .. } => {
                *has_data_count.last_mut().expect("a binary") = true
            }
            Payload::End(_) => drop(has_data_count.pop()),
            Payload::CodeSectionStart {
                unchecked_range, ..
            } => {
                let start = unchecked_range.start as usize;
                code_read = has_data_count
                    .last()
                    .copied()
                    .unwrap_or(false)
                    .then_some(start);
                if let Some(start) = code_read {
                    known.code_slots.insert(start, 0);
                }
            }
            _ => {}
        }
        let valid = match &payload {
            Payload::DataSection(reader) => {
                // The bodies so far are validated beside the headers (the
                // code section comes just before): esbuild.wasm's 98,450
                // headers take as long as its bodies on one thread.
                let bodies = std::mem::take(&mut functions);
                let code_slots = &mut known.code_slots;
                // (No thread started for no bodies.)
                let beside = if bodies.batches.is_empty() {
                    1
                } else {
                    threads
                };
                let (data, bodies) = crate::pool::join(
                    beside,
                    || validate_data_section(&mut validator, input, reader, release, read_at),
                    || bodies.validate(threads, code_slots),
                );
                let (valid, headers) = data?;
                // Reported after any error of the rest of the input's
                // sections, as when every body is validated at the end.
                bodies_error = bodies_error.or(bodies.err());
                known
                    .sections
                    .insert(reader.range().start as usize, headers);
                valid
            }
            _ => validator.payload(&payload)?,
        };
        if let ValidPayload::Func(func, body) = valid {
            functions.push(func, body, code_read);
        }
    }
    if let Some(e) = bodies_error {
        return Err(e);
    }
    functions.validate(threads, &mut known.code_slots)?;
    Ok(known)
}

/// The function bodies to validate, in batches of about [`Bodies::BATCH`]
/// bytes of code: one job for a worker each, so that a module of many
/// small functions is not sent over the pool's channel one at a time. With
/// each, the code section it is in when the slot rule reads that code.
#[derive(Default)]
struct Bodies<'a> {
    batches: Vec<Vec<Body<'a>>>,
    /// Code bytes in the last batch.
    last_len: usize,
}

/// A function body to validate, and its code section's start when the slot
/// rule reads it ([`KnownHeaders::code_slots`]).
type Body<'a> = (
    FuncToValidate<ValidatorResources>,
    FunctionBody<'a>,
    Option<usize>,
);

impl<'a> Bodies<'a> {
    /// Big enough to make a job's overhead nothing; small enough that two
    /// workers share esbuild.wasm's 9 MB of code evenly.
    const BATCH: usize = 256 << 10;

    fn push(
        &mut self,
        func: FuncToValidate<ValidatorResources>,
        body: FunctionBody<'a>,
        code_read: Option<usize>,
    ) {
        if self.batches.is_empty() || self.last_len >= Self::BATCH {
            self.batches.push(Vec::new());
            self.last_len = 0;
        }
        self.last_len += body.as_bytes().len();
        self.batches
            .last_mut()
            .expect("just pushed")
            .push((func, body, code_read));
    }

    /// Every body validated, the batches on `threads` workers; the first
    /// error in order, if any. The bodies the slot rule reads are read for
    /// it too, each right after it is validated (while its bytes are in the
    /// cache): `code_slots` gets each code section's highest.
    fn validate(self, threads: usize, code_slots: &mut HashMap<usize, u32>) -> Result<()> {
        let threads = crate::pool::thread_count(threads);
        let mut first_error = None;
        crate::pool::map_ordered(
            &self.batches,
            threads,
            |batch| -> Result<Vec<(usize, u32)>> {
                let mut allocations = FuncValidatorAllocations::default();
                // (code section, slots its bodies here name), in order.
                let mut slots: Vec<(usize, u32)> = Vec::new();
                for (func, body, code_read) in batch {
                    // (`FuncToValidate` is not `Clone`; its parts are.)
                    let func = FuncToValidate {
                        resources: func.resources.clone(),
                        ..*func
                    };
                    let mut validator = func.into_validator(allocations);
                    validator.validate(body)?;
                    allocations = validator.into_allocations();
                    if let Some(code) = *code_read {
                        if slots.last().is_none_or(|s| s.0 != code) {
                            slots.push((code, 0));
                        }
                        let last = slots.last_mut().expect("just pushed");
                        last.1 = slots_named_by(body.get_operators_reader()?, last.1)?;
                    }
                }
                Ok(slots)
            },
            |_, result| match result {
                Ok(slots) => {
                    for (code, used) in slots {
                        let known = code_slots.entry(code).or_default();
                        *known = (*known).max(used);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            },
        );
        first_error.map_or(Ok(()), Err)
    }
}

/// The segment headers of every data section, copied out by validation, so
/// that planning reads them without touching the input again: each header
/// sits on its own page of a snapshot, and a second walk would fault every
/// one of them in again.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct KnownHeaders {
    /// By the offset of the section's contents.
    pub(super) sections: HashMap<usize, DataHeaders>,
    /// For each code section the slot rule reads (its module has a data
    /// count section), by the offset of its contents: one more than the
    /// highest data index its bodies name, 0 when none. Read by the
    /// validation workers, so that reading the module walks no code.
    pub(super) code_slots: HashMap<usize, u32>,
}

impl KnownHeaders {
    /// Every data segment's payload in the input, of every module, in
    /// input order (payloads never overlap).
    pub(crate) fn payloads(&self) -> Vec<Range<usize>> {
        let mut payloads: Vec<Range<usize>> = self
            .sections
            .values()
            .flat_map(|section| section.ranges().map(|(_, payload)| payload))
            .collect();
        payloads.sort_unstable_by_key(|p| p.start);
        payloads
    }
}

/// One data section's headers: a valid data section of the same count whose
/// payloads are all empty, and where each segment and its payload are in
/// the input.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DataHeaders {
    pub(super) headers: Vec<u8>,
    /// Where the first segment starts; each of the others starts where the
    /// one before ends.
    first: usize,
    /// Per segment: (end, payload start); the payload ends with the
    /// segment. Two offsets, not two ranges: half the memory.
    segments: Vec<(usize, usize)>,
}

impl DataHeaders {
    pub(super) fn len(&self) -> usize {
        self.segments.len()
    }

    /// Each segment's range and its payload's range in the input.
    pub(super) fn ranges(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + '_ {
        let mut start = self.first;
        self.segments.iter().map(move |&(end, payload)| {
            let range = std::mem::replace(&mut start, end)..end;
            (range, payload..end)
        })
    }

    /// Where segment `i` starts in the input.
    fn start(&self, i: usize) -> usize {
        match i {
            0 => self.first,
            _ => self.segments[i - 1].0,
        }
    }
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

/// Validates a data section through a copy of its segment headers, read
/// with `read_at` when given (see [`headers_by_reads`]), else from the map.
fn validate_data_section<'a>(
    validator: &mut Validator,
    input: &[u8],
    reader: &wasmparser::DataSectionReader<'a>,
    release: &(dyn Fn(&[u8]) + Sync),
    read_at: Option<ReadAt<'_>>,
) -> Result<(ValidPayload<'a>, DataHeaders)> {
    let section_start = reader.range().start as usize;
    let mut headers = Vec::new();
    wasm_encoder::Encode::encode(&reader.count(), &mut headers);
    let count_len = headers.len();
    let mut known = match read_at.and_then(|read_at| headers_by_reads(read_at, input, reader)) {
        Some((read, known)) => {
            headers.extend_from_slice(&read);
            known
        }
        None => headers_from_map(input, reader, release, &mut headers)?,
    };
    let synthetic = wasmparser::DataSectionReader::new(BinaryReader::new(&headers, 0))?;
    validator
        .payload(&Payload::DataSection(synthetic.clone()))
        .map_err(|e| {
            // The error's offset is in `headers`: the same place of the
            // segment header it falls in, in the input. Where each header
            // starts in `headers` is found again by reading them (errors
            // only: a list of them would take a word per segment).
            let at = e.offset();
            let mut found = None;
            let mut next = count_len as u64;
            for (i, data) in synthetic.into_iter().enumerate() {
                let start = match &data {
                    Ok(data) => data.range.start,
                    Err(_) => next,
                };
                if start > at {
                    break;
                }
                found = Some((i, start));
                match data {
                    Ok(data) => next = data.range.end,
                    Err(_) => break,
                }
            }
            let original = match found {
                None => section_start as u64,
                Some((i, start)) => known.start(i) as u64 + (at - start),
            };
            Error::malformed(e.message().to_string(), original)
        })?;
    known.headers = headers;
    Ok((ValidPayload::Ok, known))
}

/// The most bytes a segment header takes in the common case: flag, memory
/// index and an `i32.const`/`i64.const` offset, or a short extended constant
/// expression, and the payload length. A longer one is read from the map.
const HEADER_READ: usize = 64;

/// A segment shorter than this (a page) is "short": its next header is
/// most likely in the same page, already read.
const SHORT_SEGMENT: usize = 4 << 10;

/// Bytes read at once after a short segment: the headers of the short
/// segments that follow come out of one read. esbuild.wasm's 98,450
/// segments of 40 bytes took a read each, 30 ms of system calls.
const HEADERS_BLOCK: usize = 64 << 10;

/// The segment headers of a data section, read with `read_at`: in a
/// snapshot each header sits on a page of its own, and reading it in the
/// map would fault in the pages around it (the kernel's fault-around) only
/// to release them again. So after a long segment the next header is read
/// alone ([`HEADER_READ`] bytes); after a short one, [`HEADERS_BLOCK`] bytes,
/// which hold the headers of the short segments that follow. `None` when
/// anything is out of the ordinary (a read fails, a header is longer than
/// [`HEADER_READ`] or malformed, the segments do not end with the section):
/// the map is read then, and its errors are the ones reported.
fn headers_by_reads(
    read_at: ReadAt<'_>,
    input: &[u8],
    reader: &wasmparser::DataSectionReader<'_>,
) -> Option<(Vec<u8>, DataHeaders)> {
    let (section_start, end) = (reader.range().start as usize, reader.range().end as usize);
    // The count as written (its LEB may be padded), from the map: the
    // section's first page.
    let mut count = BinaryReader::new(&input[section_start..end], section_start as u64);
    count.read_var_u32().ok()?;
    let mut at = section_start + count.current_position();
    let mut known = DataHeaders::for_section(reader);
    known.first = at;
    let mut headers = Vec::new();
    let mut buffer = vec![0u8; HEADERS_BLOCK];
    // The input's bytes in `buffer`.
    let mut buffered = at..at;
    // The first header: as if after a segment of the section's average length.
    let mut short = (end - at) / (reader.count() as usize).max(1) < SHORT_SEGMENT;
    for _ in 0..reader.count() {
        let wanted = HEADER_READ.min(end - at);
        if at < buffered.start || at + wanted > buffered.end {
            let block = if short { HEADERS_BLOCK } else { HEADER_READ };
            let read = read_at(at as u64, &mut buffer[..block]).ok()?;
            buffered = at..at + read;
        }
        let from = at - buffered.start;
        let held = wanted.min(buffered.end - at);
        let mut r = BinaryReader::new(&buffer[from..from + held], at as u64);
        if read_fixed_header(&mut r).ok()? > 2 {
            return None;
        }
        let header = r.current_position();
        let len = r.read_var_u32().ok()? as usize;
        let payload = at + r.current_position();
        let segment_end = payload.checked_add(len).filter(|&e| e <= end)?;
        headers.extend_from_slice(&buffer[from..from + header]);
        headers.push(0); // payload length 0
        known.segments.push((segment_end, payload));
        short = segment_end - at < SHORT_SEGMENT;
        at = segment_end;
    }
    (at == end).then_some((headers, known))
}

/// Reads a segment header up to its payload length (flag, memory index,
/// offset expression): what the synthetic section copies of it. Returns
/// the flag.
fn read_fixed_header(r: &mut BinaryReader<'_>) -> wasmparser::Result<u32> {
    let flags = r.read_var_u32()?;
    if flags == 2 {
        r.read_var_u32()?;
    }
    if flags != 1 {
        r.read::<wasmparser::ConstExpr<'_>>()?;
    }
    Ok(flags)
}

impl DataHeaders {
    /// Empty, for the segments of the section `reader` reads, the room for
    /// them made: as many as the section claims, never more than its bytes
    /// could hold (each takes at least 3 bytes).
    fn for_section(reader: &wasmparser::DataSectionReader<'_>) -> Self {
        let most = (reader.range().end - reader.range().start) as usize / 3;
        DataHeaders {
            headers: Vec::new(),
            first: reader.range().start as usize,
            segments: Vec::with_capacity((reader.count() as usize).min(most)),
        }
    }
}

/// The segment headers of a data section, read from the map: appended to
/// `headers` (the synthetic section's), `release` told of the pages behind.
fn headers_from_map(
    input: &[u8],
    reader: &wasmparser::DataSectionReader<'_>,
    release: &(dyn Fn(&[u8]) + Sync),
    headers: &mut Vec<u8>,
) -> Result<DataHeaders> {
    let section_start = reader.range().start as usize;
    let mut known = DataHeaders::for_section(reader);
    let mut behind = ReleaseBehind::new(release, section_start);
    for data in reader.clone() {
        let data = data?;
        let start = data.range.start as usize;
        let payload = data.data.as_ptr() as usize - input.as_ptr() as usize;
        if known.segments.is_empty() {
            known.first = start;
        }
        debug_assert_eq!(start, known.start(known.segments.len()));
        debug_assert_eq!(payload + data.data.len(), data.range.end as usize);
        known.segments.push((data.range.end as usize, payload));
        behind.advance(input, start);
        let mut r = BinaryReader::new(&input[start..], start as u64);
        read_fixed_header(&mut r)?;
        headers.extend_from_slice(&input[start..start + r.current_position()]);
        headers.push(0); // payload length 0
    }
    behind.finish(input, reader.range().end as usize);
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::{HEADER_READ, HEADERS_BLOCK, validate};
    use crate::Error;
    use crate::parse::{Binary, parse_with};

    /// The validation workers read what the slot rule needs of the code
    /// (the highest data index named, over bodies in different batches),
    /// on any number of threads, as reading the module alone does; and only
    /// for a module with a data count section.
    #[test]
    fn the_workers_read_the_slots_as_the_module_reader_does() {
        let body = "(drop (i32.add (i32.const 1000000) (i32.const 2000000)))".repeat(20);
        let funcs: String = (0..3000)
            .map(|i| match i {
                10 => "(func (data.drop 3))".to_string(),
                2900 => "(func (data.drop 1))".to_string(),
                _ => format!("(func {body})"),
            })
            .collect();
        let data = r#"(data "a") (data "b") (data "c") (data "d") (data "e")"#;
        let with_count = format!("(core module (memory 1) {data} {funcs})");
        let without = format!("(core module (memory 1) {data} (func {body}))");
        let input = wat::parse_str(format!("(component {with_count} {without})")).unwrap();
        let slots_read = |known| {
            let known = std::cell::RefCell::new(known);
            let Binary::Component(sections) =
                parse_with(&input, 0..input.len(), &|_| {}, &known).unwrap()
            else {
                panic!("a component")
            };
            let nested = sections.iter().filter_map(|s| s.nested.clone());
            nested
                .map(
                    |range| match parse_with(&input, range, &|_| {}, &known).unwrap() {
                        Binary::Module(m) => (m.data_count.is_some(), m.data_slots_used),
                        Binary::Component(_) => panic!("a module"),
                    },
                )
                .collect::<Vec<_>>()
        };
        // Read from the code, without validation's figures.
        assert_eq!(slots_read(Default::default()), [(true, 4), (false, 0)]);
        for threads in [1, 2, 3] {
            let known = validate(&input, &|_| {}, None, threads).unwrap();
            assert_eq!(known.code_slots.values().copied().collect::<Vec<_>>(), [4]);
            assert_eq!(
                slots_read(known),
                [(true, 4), (false, 0)],
                "{threads} threads"
            );
        }
    }

    /// Headers read through the file (`read_at`) are those read from the
    /// map, whatever the module: several memories, passive segments, a
    /// `global.get` and an extended constant offset, a count LEB padded to
    /// 4 bytes, a header longer than one read (read from the map). A read
    /// that fails falls back to the map; a malformed section gives the
    /// map's error either way.
    #[test]
    fn headers_read_through_the_file_are_those_in_the_map() {
        let long_offset = "(i32.add ".repeat(30) + "(i32.const 1)" + &" (i32.const 1))".repeat(30);
        let wat = format!(
            r#"(module (memory 1) (memory 2) (global i32 (i32.const 64))
                (data (i32.const 0) "a") (data "passive")
                (data (memory 1) (i32.const 8) "cc") (data (global.get 0) "d")
                (data (i32.add (i32.const 1) (i32.const 2)) "e")
                (data {long_offset} "f") (data (i32.const 100) "g"))"#
        );
        let module = wat::parse_str(wat).unwrap();
        let mut padded = b"\0asm\x01\0\0\0\x05\x03\x01\0\x01\x0b\x11".to_vec();
        padded.extend([0x82, 0x80, 0x80, 0x00]); // 2 segments
        padded.extend([0x00, 0x41, 0x00, 0x0b, 0x01, b'a']);
        padded.extend([0x00, 0x41, 0x10, 0x0b, 0x02, b'b', b'c']);
        let mut too_long = padded.clone();
        let at = too_long.len() - 3;
        too_long[at] = 0x03; // the last payload runs past the section
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let by_file = |input: &[u8], fails: bool| {
            let read_at = |offset: u64, buf: &mut [u8]| {
                reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if fails {
                    return Err(std::io::ErrorKind::Other.into());
                }
                let rest = &input[(offset as usize).min(input.len())..];
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                Ok(n)
            };
            validate(input, &|_| {}, Some(&read_at), 1)
        };
        for input in [&module, &padded] {
            let from_map = validate(input, &|_| {}, None, 1).unwrap();
            assert_eq!(by_file(input, false).unwrap(), from_map);
            assert_eq!(by_file(input, true).unwrap(), from_map);
        }
        // One read (a block) per input, one that fails per input.
        assert!(reads.load(std::sync::atomic::Ordering::Relaxed) >= 4);
        let error = |e: Error| (e.offset(), e.to_string());
        let from_map = error(validate(&too_long, &|_| {}, None, 1).unwrap_err());
        assert_eq!(error(by_file(&too_long, false).unwrap_err()), from_map);
    }

    /// Short segments' headers come out of one read; the header after a
    /// long segment is read alone, its payload not copied: 300 segments of
    /// 3 bytes, 5 of 100 KB, 300 of 3 bytes again.
    #[test]
    fn headers_are_read_a_block_at_a_time_after_short_segments_alone_after_long() {
        let short = |from: usize| {
            (from..from + 300)
                .map(|i| format!(r#"(data (i32.const {}) "abc")"#, i * 8))
                .collect::<String>()
        };
        let long: String = (0..5)
            .map(|i| {
                format!(
                    r#"(data (i32.const {}) "{}")"#,
                    10_000 + i * 200_000,
                    "x".repeat(100_000)
                )
            })
            .collect();
        let module = wat::parse_str(format!(
            "(module (memory 20) {} {long} {})",
            short(0),
            short(300)
        ))
        .unwrap();
        let reads = std::sync::Mutex::new(Vec::new());
        let read_at = |offset: u64, buf: &mut [u8]| {
            reads.lock().unwrap().push(buf.len());
            let rest = &module[(offset as usize).min(module.len())..];
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        };
        let by_file = validate(&module, &|_| {}, Some(&read_at), 1).unwrap();
        assert_eq!(by_file, validate(&module, &|_| {}, None, 1).unwrap());
        let reads = reads.into_inner().unwrap();
        // A block for the first 300 (and the first long header), a header
        // alone after each long segment, then a block for the rest.
        assert_eq!(
            reads,
            [
                vec![HEADERS_BLOCK],
                vec![HEADER_READ; 5],
                vec![HEADERS_BLOCK]
            ]
            .concat()
        );
    }

    /// Bodies validated beside a data section ([`crate::pool::join`]) give
    /// the errors of bodies validated at the end, on any number of threads:
    /// an invalid body is reported when the data section is valid, and any
    /// error of the data section, or of a section after it, is reported
    /// before it.
    #[test]
    fn bodies_beside_a_data_section_report_as_at_the_end() {
        let body = "(drop (i32.add (i32.const 1000000) (i32.const 2000000)))".repeat(20);
        let module = |invalid_body: bool, data: &str| {
            let funcs: String = (0..3000)
                .map(|i| match invalid_body && i == 2000 {
                    true => "(func (i32.const 1))".to_string(),
                    false => format!("(func {body})"),
                })
                .collect();
            wat::parse_str(format!("(module (memory 1) {funcs} {data})")).unwrap()
        };
        let valid_data = r#"(data (i32.const 0) "a") (data (i32.const 9) "b")"#;
        let invalid_data = r#"(data (i32.const 0) "a") (data (memory 3) (i32.const 9) "b")"#;
        let error = |input: &[u8], threads| {
            let e = validate(input, &|_| {}, None, threads).unwrap_err();
            (e.offset(), e.to_string())
        };
        let with_trailing = |mut input: Vec<u8>| {
            input.extend([0x00, 0x09, 0x04]); // a custom section cut short
            input
        };
        let body_error = error(&module(true, valid_data), 1);
        assert!(body_error.1.contains("type mismatch"), "{}", body_error.1);
        // (The offsets differ from those of the modules with no invalid
        // body: that body is shorter.)
        let data_error = error(&module(true, invalid_data), 1);
        assert!(
            data_error.1.starts_with("unknown memory 3"),
            "{}",
            data_error.1
        );
        let trailing_error = error(&with_trailing(module(true, valid_data)), 1);
        assert!(
            trailing_error.1.contains("unexpected end"),
            "{}",
            trailing_error.1
        );
        for threads in [1, 2, 3] {
            assert_eq!(error(&module(true, valid_data), threads), body_error);
            assert_eq!(error(&module(true, invalid_data), threads), data_error);
            let trailing = with_trailing(module(true, valid_data));
            assert_eq!(error(&trailing, threads), trailing_error);
            assert!(validate(&module(false, valid_data), &|_| {}, None, threads).is_ok());
        }
    }

    /// On any number of threads, the error is the first invalid body's, as
    /// one thread finds it: two invalid bodies (`i32.const 1` left on the
    /// stack of a function that returns nothing), 400 KB of code apart, so
    /// in different batches.
    #[test]
    fn the_first_invalid_body_is_reported_on_any_number_of_threads() {
        let body = "(drop (i32.add (i32.const 1000000) (i32.const 2000000)))".repeat(20);
        let module = |invalid: &[usize]| {
            let funcs: String = (0..3000)
                .map(|i| match invalid.contains(&i) {
                    true => "(func (i32.const 1))".to_string(),
                    false => format!("(func {body})"),
                })
                .collect();
            wat::parse_str(format!("(module {funcs})")).unwrap()
        };
        let (both, first, second) = (module(&[1500, 2900]), module(&[1500]), module(&[2900]));
        let error = |input: &[u8], threads| {
            let e = validate(input, &|_| {}, None, threads).unwrap_err();
            (e.offset(), e.to_string())
        };
        let expected = error(&first, 1);
        assert!(expected.1.contains("type mismatch"), "{}", expected.1);
        assert_ne!(error(&second, 1).0, expected.0);
        for threads in [1, 2, 3, 8] {
            assert_eq!(error(&both, threads), expected, "{threads} threads");
        }
    }
}
