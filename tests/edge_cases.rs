//! Hand-written edge cases, one rule of SPEC.md each, asserting the exact
//! outcome: the output's segment list (offsets and payloads), or the output
//! being the input byte for byte, or a specific error.
//!
//! Segment sizes in comments follow SPEC §4's exact cost: flag (1, or 1 + LEB
//! memory index), const opcode (1), signed LEB offset, `end` (1), LEB length,
//! payload. At offsets below 64 the offset LEB is 1 byte, so a header is 5
//! bytes; from 8192 to 2^20 it is 3 bytes, so a header is 7 bytes.

use segpack::{ErrorKind, IndexType, PackOptions, Part, Segment};
use support::read::*;

mod support;

use support::Comparison;

/// Packs with the default options; the output must validate and instantiate
/// (in wasmi, through `support::assert_equivalent`) to the same memories, or
/// trap the same way, or be something wasmi cannot run.
fn pack(input: &[u8]) -> Vec<u8> {
    let output = support::read::pack(input);
    support::assert_equivalent(input, &output);
    output
}

/// [`pack`] with options.
fn pack_with(input: &[u8], options: &PackOptions) -> (Vec<u8>, segpack::PackReport) {
    let (output, report) = support::read::pack_with(input, options);
    support::assert_equivalent(input, &output);
    (output, report)
}

/// Original and packed give the same memories at instantiation, and wasmi
/// did run both (the comparison was not skipped). Also compares the first
/// `len` bytes of the exported memory `mem` with this file's own reader.
fn equivalent(input: &[u8], output: &[u8], len: usize) {
    assert_eq!(
        support::assert_equivalent(input, output),
        Comparison::SameMemories
    );
    assert_eq!(
        run_and_read(input, None, "mem", 0..len),
        run_and_read(output, None, "mem", 0..len),
        "packed module's memory differs from the original's"
    );
}

/// A WAT string literal holding `bytes`.
fn wat_str(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// An image with non-zero single bytes `b'a' + i` at `offsets`, from 0 to the
/// last one.
fn image(offsets: &[usize]) -> Vec<u8> {
    let mut v = vec![0u8; offsets.last().unwrap() + 1];
    for (i, &o) in offsets.iter().enumerate() {
        v[o] = b'a' + i as u8;
    }
    v
}

fn options(max_segments: u32) -> PackOptions {
    PackOptions::default().with_max_segments(segpack::MaxSegments::new(max_segments).unwrap())
}

fn assert_unchanged(input: &[u8], options: &PackOptions) -> segpack::PackReport {
    let (output, report) = pack_with(input, options);
    assert!(!report.changed(), "report says changed: {report:?}");
    assert_eq!(output, input, "output should be the input byte for byte");
    report
}

// ---------------------------------------------------------------- §1 copying

#[test]
fn sections_other_than_data_are_copied_byte_for_byte() {
    let input = wat(r#"(module
        (@producers (language "wat" "1.0") (processed-by "segpack-tests" "0.1"))
        (@custom "before-data" (before data) "hello")
        (@custom "at-the-end" "bye")
        (type $t (func (param i32) (result i32)))
        (import "env" "f" (func $f (type $t)))
        (table 2 funcref)
        (memory 1 2)
        (global $g (mut i32) (i32.const 7))
        (export "mem" (memory 0))
        (export "run" (func $run))
        (elem (i32.const 0) $run)
        (func $run (param $x i32) (result i32) (call $f (local.get $x)))
        (data (i32.const 0) "\00\00\00a")
        (data (i32.const 5) "b"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 3, b"a\0b")]);

    let (before, after) = (sections(&input), sections(&output));
    // Same sections, same order; only the data section's bytes differ.
    assert_eq!(
        before
            .iter()
            .map(|s| (s.id, s.name.clone()))
            .collect::<Vec<_>>(),
        after
            .iter()
            .map(|s| (s.id, s.name.clone()))
            .collect::<Vec<_>>()
    );
    for (b, a) in before.iter().zip(&after) {
        if b.id != 11 {
            assert_eq!(b.bytes, a.bytes, "section {} {:?} changed", b.id, b.name);
        }
    }
    let names: Vec<_> = before.iter().filter_map(|s| s.name.as_deref()).collect();
    assert!(names.contains(&"producers") && names.contains(&"before-data"));
    assert!(names.contains(&"at-the-end") && names.contains(&"name"));
    // The custom section placed before data stays before data.
    let pos = |name: &str| after.iter().position(|s| s.name.as_deref() == Some(name));
    let data = after.iter().position(|s| s.id == 11).unwrap();
    assert!(pos("before-data").unwrap() < data && pos("at-the-end").unwrap() > data);
}

#[test]
fn no_gain_leaves_the_output_identical_to_the_input() {
    let cases = [
        // Already minimal.
        r#"(module (memory 1) (data (i32.const 0) "abc"))"#,
        // A 5-byte gap inside one segment costs what a second header costs.
        r#"(module (memory 1) (data (i32.const 0) "a\00\00\00\00\00b"))"#,
        // Two segments across a 5-byte gap: merging them would not be smaller.
        r#"(module (memory 1) (data (i32.const 0) "a") (data (i32.const 6) "b"))"#,
        // Passive and active, nothing to trim.
        r#"(module (memory 1) (data "\00\00xyz\00") (data (i32.const 8) "q"))"#,
        // No data at all.
        r#"(module (memory 1))"#,
        r#"(module (func))"#,
    ];
    for case in cases {
        let input = wat(case);
        assert_unchanged(&input, &PackOptions::default());
    }
}

#[test]
fn packing_twice_is_packing_once() {
    let cases = [
        r#"(module (memory 1) (data (i32.const 0) "\00\00a") (data (i32.const 5) "b"))"#,
        r#"(module (memory 1) (data (i32.const 0) "\00a\00\00\00\00\00b"))"#,
        r#"(module (memory 1) (data (i32.const 8190) "\00\00a\00\00\00\00\00\00\00b"))"#,
        r#"(module (memory 1) (data (i32.const 0) "abcdefghij") (data (i32.const 2) "\00\00\00\00\00\00"))"#,
        r#"(module (memory 1) (data (i32.const 0) "a") (data (i32.const 1) "b") (data (i32.const 2) "c")
             (data $p "P") (func (memory.init $p (i32.const 9) (i32.const 0) (i32.const 1))))"#,
        r#"(module (memory 1) (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00b")
             (data $p "P") (data $q (i32.const 100) "\00\00z") (func (data.drop $p)))"#,
        r#"(module (memory 1) (memory i64 1) (data (memory 1) (i64.const 4) "\00\00ab")
             (data (memory 0) (i32.const 3) "\00x"))"#,
    ];
    for case in cases {
        let input = wat(case);
        let once = pack(&input);
        assert_ne!(once, input, "test case should gain something: {case}");
        let twice = pack(&once);
        assert_eq!(twice, once, "pack(pack(x)) != pack(x) for {case}");
    }
}

#[test]
fn output_does_not_depend_on_thread_count() {
    // A few hundred runs over a 64 KiB image, enough for several scan chunks.
    let mut img = vec![0u8; 65536];
    for i in (0..img.len()).step_by(97) {
        img[i] = (i % 251) as u8 | 1;
        if i % 3 == 0 && i + 1 < img.len() {
            img[i + 1] = 7;
        }
    }
    let input = wat(&format!(
        r#"(module (memory (export "mem") 1) (data (i32.const 0) "{}"))"#,
        wat_str(&img)
    ));
    let outputs: Vec<Vec<u8>> = [1, 2, 3, 8]
        .iter()
        .map(|&threads| pack_with(&input, &PackOptions::default().with_threads(threads)).0)
        .collect();
    for o in &outputs[1..] {
        assert_eq!(o, &outputs[0]);
    }
    equivalent(&input, &outputs[0], 65536);
}

// ------------------------------------------------------- §4 merge threshold

#[test]
fn four_byte_zero_gap_is_merged_at_low_offsets() {
    // Apart: 5+1 and 5+1 bytes; merged: 5 + 1+4+1 bytes. 4 < 5: merge.
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "a") (data (i32.const 5) "b"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 0, b"a\0\0\0\0b")]);
    equivalent(&input, &output, 16);
}

#[test]
fn five_byte_zero_gap_is_split_at_low_offsets() {
    // Merged would be 5 + 1+5+1 = 12 bytes, apart 6 + 6 = 12: not smaller.
    // The leading zero makes splitting a gain (one segment of 5+8 before).
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "\00a\00\00\00\00\00b"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 1, b"a"), seg(0, 7, b"b")]);
    equivalent(&input, &output, 16);
}

#[test]
fn six_byte_gap_is_merged_where_offsets_take_three_leb_bytes() {
    // 8192 = 0x2000 is `80 c0 00` as a signed LEB: headers are 7 bytes.
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 8192) "a") (data (i32.const 8199) "b"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 8192, b"a\0\0\0\0\0\0b")]);
    assert_eq!(
        data_segments(&output)[0].raw,
        [
            &[0x00, 0x41, 0x80, 0xc0, 0x00, 0x0b, 0x08][..],
            b"a\0\0\0\0\0\0b"
        ]
        .concat()
    );
    equivalent(&input, &output, 8300);
}

#[test]
fn seven_byte_gap_is_split_where_offsets_take_three_leb_bytes() {
    // Merged: 7 + 1+7+1 = 16 bytes, apart: 8 + 8 = 16. Not smaller: split.
    // The input (6 + 11 bytes at 8190) is bigger than either.
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 8190) "\00\00a\00\00\00\00\00\00\00b"))"#);
    let output = pack(&input);
    assert_eq!(
        active_segments(&output),
        [seg(0, 8192, b"a"), seg(0, 8200, b"b")]
    );
    equivalent(&input, &output, 8300);
}

#[test]
fn gap_threshold_follows_the_width_of_the_next_header() {
    // "b" at 64 would need a 6-byte header (64 is `c0 00`), so a 5-byte gap
    // is cheaper: merged (5 + 7) < apart (6 + 7).
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 58) "a") (data (i32.const 64) "b"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 58, b"a\0\0\0\0\0b")]);
    equivalent(&input, &output, 128);
}

#[test]
fn merged_length_leb_growth_counts_against_merging() {
    // At 8192 headers are 7 bytes. 120 bytes + 6 zeros + 1 byte = 127: the
    // length still fits one LEB byte, so the 6-byte gap merges (7+127 < 127+8).
    let a120 = vec![b'x'; 120];
    let input = wat(&format!(
        r#"(module (memory (export "mem") 1)
            (data (i32.const 8192) "{}") (data (i32.const 8318) "b"))"#,
        wat_str(&a120)
    ));
    let output = pack(&input);
    assert_eq!(
        active_segments(&output),
        [(0, 8192, [&a120[..], &[0; 6], b"b"].concat())]
    );
    equivalent(&input, &output, 8400);

    // One byte more and the merged length (128) needs a 2-byte LEB:
    // 8 + 128 = 136 is not smaller than (7 + 121) + (7 + 1) = 136. Split.
    let a121 = vec![b'x'; 121];
    let img = [&[0, 0][..], &a121, &[0; 6], b"b"].concat();
    let input = wat(&format!(
        r#"(module (memory (export "mem") 1) (data (i32.const 8190) "{}"))"#,
        wat_str(&img)
    ));
    let output = pack(&input);
    assert_eq!(
        active_segments(&output),
        [(0, 8192, a121), seg(0, 8192 + 121 + 6, b"b")]
    );
    equivalent(&input, &output, 8400);
}

#[test]
fn merging_looks_past_a_length_leb_boundary() {
    // Runs "a" at 0, 123 bytes at 5, "c" at 132. Pairwise, a+b does not
    // pay (merged length 128 takes a 2-byte LEB: 134 vs 6 + 128), so the
    // greedy rule keeps "a" apart and then joins b+c: 6 + 134 = 140 bytes.
    // Settling prices closing the gap after "a" exactly: one segment of 133
    // bytes costs 6 + 133 = 139, smaller, so it closes.
    let b = vec![b'b'; 123];
    let input = wat(&format!(
        r#"(module (memory (export "mem") 1)
            (data (i32.const 0) "a") (data (i32.const 5) "{}") (data (i32.const 132) "c"))"#,
        wat_str(&b)
    ));
    let output = pack(&input);
    assert_eq!(
        active_segments(&output),
        [(0, 0, [&b"a"[..], &[0; 4], &b, &[0; 4], b"c"].concat())]
    );
    assert_eq!(data_section_len(&output), 143);
}

#[test]
fn leading_and_trailing_zeros_are_trimmed() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 16) "\00\00\00hello\00\00"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 19, b"hello")]);
    equivalent(&input, &output, 64);
}

#[test]
fn empty_active_segment_disappears() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "a") (data (i32.const 9) ""))"#);
    let output = pack(&input);
    assert_eq!(data_segments(&output).len(), 1);
    assert_eq!(active_segments(&output), [seg(0, 0, b"a")]);
    equivalent(&input, &output, 16);
}

#[test]
fn all_zero_segment_disappears() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "a") (data (i32.const 100) "\00\00\00\00\00\00"))"#);
    let output = pack(&input);
    assert_eq!(data_segments(&output).len(), 1);
    assert_eq!(active_segments(&output), [seg(0, 0, b"a")]);
    equivalent(&input, &output, 200);
}

#[test]
fn only_zero_segments_leave_an_empty_data_section() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "\00\00\00\00\00\00") (data (i32.const 9) "\00"))"#);
    let (output, report) = pack_with(&input, &PackOptions::default());
    assert!(data_segments(&output).is_empty());
    assert_eq!(report.segments_after(), 0);
    equivalent(&input, &output, 16);
}

// ------------------------------------------------------------ §2 packability

#[test]
fn imported_memory_is_untouched_without_zero_filled_imports() {
    let input = wat(r#"(module (import "env" "mem" (memory 1))
        (data (i32.const 0) "\00\00a") (data (i32.const 3) "b"))"#);
    let report = assert_unchanged(&input, &PackOptions::default());
    assert_eq!(report.modules[0].unpacked_memories.len(), 1);
    assert_eq!(report.modules[0].unpacked_memories[0].0, 0);
}

#[test]
fn imported_memory_is_packed_with_zero_filled_imports() {
    let input = wat(r#"(module (import "env" "mem" (memory 1))
        (data (i32.const 0) "\00\00a") (data (i32.const 3) "b"))"#);
    let (output, report) = pack_with(
        &input,
        &PackOptions::default().with_zero_filled_imports(true),
    );
    assert!(report.changed());
    assert!(report.modules[0].unpacked_memories.is_empty());
    assert_eq!(active_segments(&output), [seg(0, 2, b"ab")]);
}

#[test]
fn reject_packing_memory_with_imported_global_offset() {
    let input = wat(r#"(module
        (import "env" "g" (global $g i32))
        (memory 1)
        (data (i32.const 0) "\00\00a")
        (data (global.get $g) "\00b\00")
        (data (i32.const 100) "\00\00c"))"#);
    let report = assert_unchanged(&input, &PackOptions::default());
    assert_eq!(
        report.modules[0]
            .unpacked_memories
            .iter()
            .map(|m| m.0)
            .collect::<Vec<_>>(),
        [0]
    );
}

#[test]
fn reject_packing_memory_with_offset_from_global_derived_from_an_import() {
    let input = wat(r#"(module
        (import "env" "g" (global $g i32))
        (global $d i32 (i32.add (global.get $g) (i32.const 16)))
        (memory 1)
        (data (i32.const 0) "\00\00a")
        (data (global.get $d) "\00b\00"))"#);
    let report = assert_unchanged(&input, &PackOptions::default());
    assert_eq!(report.modules[0].unpacked_memories.len(), 1);
}

#[test]
fn imported_memory_stays_unpacked_when_another_memory_has_a_dynamic_offset() {
    // SPEC §2 would call memory 0 packable with --zero-filled-imports (its
    // own offsets are constant). segpack leaves it alone: if memory 1's
    // dynamic segment traps, the writes made to the imported memory before
    // the trap stay visible to the host, and packing changes which writes
    // those are. Safer than the letter of the spec; reported as a spec gap.
    let input = wat(r#"(module
        (import "env" "mem" (memory 1))
        (import "env" "g" (global $g i32))
        (memory 1)
        (data (memory 0) (i32.const 0) "\00\00a")
        (data (memory 1) (global.get $g) "b")
        (data (memory 0) (i32.const 3) "c"))"#);
    let report = assert_unchanged(
        &input,
        &PackOptions::default().with_zero_filled_imports(true),
    );
    let unpacked: Vec<u32> = report.modules[0]
        .unpacked_memories
        .iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(unpacked, [0, 1]);
}

#[test]
fn unpackable_memory_keeps_its_segments_in_order_beside_a_packed_one() {
    let input = wat(r#"(module
        (import "env" "g" (global $g i32))
        (memory $m0 1)
        (memory $m1 1)
        (data (memory $m0) (i32.const 0) "\00\00a")
        (data (memory $m1) (i32.const 0) "\00\00x")
        (data (memory $m0) (global.get $g) "\00b\00")
        (data (memory $m1) (i32.const 1) "y")
        (data (memory $m0) (i32.const 100) "\00\00c"))"#);
    let output = pack(&input);
    let (before, after) = (data_segments(&input), data_segments(&output));
    assert_eq!(after.len(), 5);
    // Memory 0's segments: byte for byte, same indices, same order.
    for i in [0, 2, 4] {
        assert_eq!(after[i].raw, before[i].raw, "segment {i}");
    }
    // Memory 1's image "yx" at 1 takes the first re-packed slot; the second
    // re-packed slot comes before a kept segment, so it is an empty passive.
    assert_eq!(
        after[1].raw,
        [0x02, 0x01, 0x41, 0x01, 0x0b, 0x02, b'y', b'x']
    );
    assert_eq!(after[3].raw, [0x01, 0x00]);
}

#[test]
fn offset_from_constant_defined_global_is_evaluated() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (global $base i32 (i32.const 1000))
        (global $derived i32 (i32.add (global.get $base) (i32.const 24)))
        (data (global.get $base) "\00\00ab")
        (data (global.get $derived) "\00cd"))"#);
    let output = pack(&input);
    assert_eq!(
        active_segments(&output),
        [seg(0, 1002, b"ab"), seg(0, 1025, b"cd")]
    );
    // Re-packed offsets are plain `i32.const`s.
    assert_eq!(
        data_segments(&output)[0].kind,
        Kind::Active {
            memory: 0,
            offset_expr: vec![0x41, 0xea, 0x07, 0x0b],
            offset: Some(1002)
        }
    );
    // Not run in wasmi: it rejects `global.get` of a defined global in a
    // constant expression (allowed since Wasm 3.0 / GC).
}

#[test]
fn extended_const_offsets_are_evaluated() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.add (i32.const 100) (i32.const 20)) "\00x")
        (data (i32.sub (i32.const 300) (i32.const 100)) "\00\00y")
        (data (i32.mul (i32.const 16) (i32.const 64)) "\00z")
        (data (i32.add (i32.mul (i32.const 3) (i32.const 1000)) (i32.const 1)) "\00w"))"#);
    let output = pack(&input);
    assert_eq!(
        active_segments(&output),
        [
            seg(0, 121, b"x"),
            seg(0, 202, b"y"),
            seg(0, 1025, b"z"),
            seg(0, 3002, b"w")
        ]
    );
    equivalent(&input, &output, 4096);
}

#[test]
fn i32_extended_const_wraps_like_instantiation() {
    // 0x7fffffff + 2 wraps to 0x80000001 in i32 arithmetic.
    let input = wat(r#"(module (memory 65536)
        (data (i32.add (i32.const 0x7fffffff) (i32.const 2)) "\00\00ab"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 0x8000_0003, b"ab")]);
}

#[test]
fn memory64_extended_const_offsets_use_i64_const() {
    let input = wat(r#"(module (memory i64 1)
        (data (i64.add (i64.const 4096) (i64.const 1)) "\00y")
        (data (i64.mul (i64.const 2) (i64.const 8)) "\00\00q")
        (data (i64.sub (i64.const 50) (i64.const 10)) "\00r"))"#);
    let output = pack(&input);
    let raws: Vec<_> = data_segments(&output).into_iter().map(|s| s.raw).collect();
    assert_eq!(
        raws,
        [
            vec![0x00, 0x42, 0x12, 0x0b, 0x01, b'q'],
            vec![0x00, 0x42, 0x29, 0x0b, 0x01, b'r'],
            vec![0x00, 0x42, 0x82, 0x20, 0x0b, 0x01, b'y'],
        ]
    );
}

// ------------------------------------------------------------- §2 overlaps

#[test]
fn later_segment_overwrites_earlier_one() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "abcdef") (data (i32.const 2) "XY"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 0, b"abXYef")]);
    equivalent(&input, &output, 16);
}

#[test]
fn later_segment_of_zeros_erases_earlier_bytes() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "abcdefghij") (data (i32.const 2) "\00\00\00\00\00\00"))"#);
    let output = pack(&input);
    assert_eq!(
        active_segments(&output),
        [seg(0, 0, b"ab"), seg(0, 8, b"ij")]
    );
    equivalent(&input, &output, 16);
}

#[test]
fn later_segment_below_an_earlier_one_wins_where_they_overlap() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 4) "wxyz") (data (i32.const 2) "AB\00"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 2, b"AB\0xyz")]);
    equivalent(&input, &output, 16);
}

#[test]
fn earlier_bytes_fully_covered_by_later_zeros_vanish() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 40) "k")
        (data (i32.const 10) "abc")
        (data (i32.const 0) "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 40, b"k")]);
    equivalent(&input, &output, 64);
}

// ------------------------------------------------------- §3 the slot rule

#[test]
fn passive_segments_keep_their_index() {
    let input = wat(r#"(module
        (memory (export "mem") 1)
        (data (i32.const 0) "\00\00a")
        (data $p1 "P1")
        (data (i32.const 100) "b")
        (data $p3 "P3")
        (data (i32.const 200) "\00c")
        (func (export "init")
            (memory.init $p1 (i32.const 500) (i32.const 0) (i32.const 2))
            (memory.init $p3 (i32.const 510) (i32.const 0) (i32.const 2))
            (data.drop $p1)))"#);
    let output = pack(&input);
    let (before, after) = (data_segments(&input), data_segments(&output));
    assert_eq!(after.len(), 5);
    assert_eq!(after[1], before[1]);
    assert_eq!(after[3], before[3]);
    assert_eq!(
        (after[1].kind.clone(), after[1].data.clone()),
        (Kind::Passive, b"P1".to_vec())
    );
    assert_eq!(
        (after[3].kind.clone(), after[3].data.clone()),
        (Kind::Passive, b"P3".to_vec())
    );
    assert_eq!(
        active_segments(&output),
        [seg(0, 2, b"a"), seg(0, 100, b"b"), seg(0, 201, b"c")]
    );
    assert_eq!(data_count(&output), Some((5, vec![5])));
    // The code section (with its memory.init/data.drop indices) is untouched.
    assert_eq!(untouched_sections(&input), untouched_sections(&output));
    // And memory.init still copies the same passive bytes.
    let mut expected = b"P1".to_vec();
    expected.extend([0; 8]);
    expected.extend(b"P3");
    for module in [&input, &output] {
        assert_eq!(
            run_and_read(module, Some("init"), "mem", 500..512),
            expected
        );
    }
    assert_eq!(
        run_and_read(&input, Some("init"), "mem", 0..1024),
        run_and_read(&output, Some("init"), "mem", 0..1024)
    );
}

#[test]
fn slots_left_when_packed_segments_run_out_become_empty_passive_segments() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "a") (data (i32.const 1) "b") (data (i32.const 2) "c")
        (data $p "P")
        (func (export "init") (memory.init $p (i32.const 9) (i32.const 0) (i32.const 1))))"#);
    let output = pack(&input);
    let raws: Vec<_> = data_segments(&output).into_iter().map(|s| s.raw).collect();
    assert_eq!(
        raws,
        [
            vec![0x00, 0x41, 0x00, 0x0b, 0x03, b'a', b'b', b'c'],
            vec![0x01, 0x00],
            vec![0x01, 0x00],
            vec![0x01, 0x01, b'P'],
        ]
    );
    assert_eq!(data_count(&output), Some((4, vec![4])));
    assert_eq!(
        run_and_read(&output, Some("init"), "mem", 0..16),
        b"abc\0\0\0\0\0\0P\0\0\0\0\0\0"
    );
}

#[test]
fn repacked_slots_after_the_last_kept_segment_are_dropped() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data $p "P")
        (data (i32.const 0) "a") (data (i32.const 1) "b")
        (func (export "init") (memory.init $p (i32.const 9) (i32.const 0) (i32.const 1))))"#);
    let output = pack(&input);
    let segs = data_segments(&output);
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].raw, [0x01, 0x01, b'P']);
    assert_eq!(active_segments(&output), [seg(0, 0, b"ab")]);
    assert_eq!(data_count(&output), Some((2, vec![2])));
    assert_eq!(
        run_and_read(&input, Some("init"), "mem", 0..16),
        run_and_read(&output, Some("init"), "mem", 0..16)
    );
}

#[test]
fn extra_packed_segments_are_appended() {
    let mut img = image(&[0, 21, 42]);
    img.truncate(43);
    let input = wat(&format!(
        r#"(module (memory (export "mem") 1)
            (data (i32.const 0) "{}")
            (data $p "P")
            (func (export "init") (memory.init $p (i32.const 60) (i32.const 0) (i32.const 1))))"#,
        wat_str(&img)
    ));
    let output = pack(&input);
    let segs = data_segments(&output);
    assert_eq!(segs.len(), 4);
    assert_eq!(segs[1].raw, [0x01, 0x01, b'P']);
    assert_eq!(
        active_segments(&output),
        [seg(0, 0, b"a"), seg(0, 21, b"b"), seg(0, 42, b"c")]
    );
    assert_eq!(data_count(&output), Some((4, vec![4])));
    assert_eq!(
        run_and_read(&input, Some("init"), "mem", 0..128),
        run_and_read(&output, Some("init"), "mem", 0..128)
    );
}

// ------------------------------------------------------- §3 offset encoding

#[test]
fn second_memory_uses_flag_two() {
    let input = wat(r#"(module (memory 1) (memory 1)
        (data (memory 1) (i32.const 0) "\00\00ab")
        (data (memory 0) (i32.const 0) "\00z"))"#);
    let output = pack(&input);
    let raws: Vec<_> = data_segments(&output).into_iter().map(|s| s.raw).collect();
    // Sorted by (memory, offset): memory 0 first, with flag 0.
    assert_eq!(
        raws,
        [
            vec![0x00, 0x41, 0x01, 0x0b, 0x01, b'z'],
            vec![0x02, 0x01, 0x41, 0x02, 0x0b, 0x02, b'a', b'b'],
        ]
    );
}

#[test]
fn memory64_offsets_past_four_gib_are_i64_const() {
    let input = wat(r#"(module (memory i64 65537)
        (data (i64.const 0x100000000) "\00\00ab"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 0x1_0000_0002, b"ab")]);
    assert_eq!(
        data_segments(&output)[0].raw,
        [
            0x00, 0x42, 0x82, 0x80, 0x80, 0x80, 0x10, 0x0b, 0x02, b'a', b'b'
        ]
    );
}

#[test]
fn i32_offsets_from_two_gib_are_negative_leb() {
    // 65536 pages: the whole 4 GiB. 0x80000002 as an i32 is -2147483646.
    let input = wat(r#"(module (memory 65536)
        (data (i32.const 0x80000000) "\00\00ab"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 0x8000_0002, b"ab")]);
    assert_eq!(
        data_segments(&output)[0].raw,
        [
            0x00, 0x41, 0x82, 0x80, 0x80, 0x80, 0x78, 0x0b, 0x02, b'a', b'b'
        ]
    );
    // Not instantiated in wasmi: that would allocate 4 GiB.
}

#[test]
fn data_segment_at_end_of_memory() {
    let input = wat(r#"(module (memory 65536)
        (data (i32.const 0xfffffffa) "\00\00\00\00ab"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 0xffff_fffe, b"ab")]);
    // -2 is the one byte 0x7e.
    assert_eq!(
        data_segments(&output)[0].raw,
        [0x00, 0x41, 0x7e, 0x0b, 0x02, b'a', b'b']
    );

    let small = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 65530) "\00\00\00\00ab"))"#);
    let output = pack(&small);
    assert_eq!(active_segments(&output), [seg(0, 65534, b"ab")]);
    equivalent(&small, &output, 65536);
}

// ---------------------------------------------------------- §2 bounds

#[test]
fn custom_page_size_segment_ending_at_the_last_byte_is_packed() {
    // 10 pages of 1 byte: 10 bytes. "ab" at 8..10 fits exactly.
    let input = wat(r#"(module (memory (export "mem") 10 (pagesize 1))
        (data (i32.const 6) "\00\00ab"))"#);
    let (output, report) = pack_with(&input, &PackOptions::default());
    assert_eq!(active_segments(&output), [seg(0, 8, b"ab")]);
    assert_eq!(report.warnings().count(), 0);
    equivalent(&input, &output, 10);
}

#[test]
fn reject_packing_segment_out_of_bounds_of_custom_page_size_memory() {
    // In bounds with 64 KiB pages, past the end with 1-byte pages.
    let input = wat(r#"(module (memory 10 (pagesize 1))
        (data (i32.const 0) "\00\00a") (data (i32.const 9) "ab"))"#);
    let report = assert_unchanged(&input, &PackOptions::default());
    assert_eq!(report.warnings().count(), 1);
}

#[test]
fn reject_packing_segment_out_of_bounds() {
    let input = wat(r#"(module (memory 1)
        (data (i32.const 0) "\00\00a") (data (i32.const 65535) "ab"))"#);
    let report = assert_unchanged(&input, &PackOptions::default());
    let warnings: Vec<_> = report.warnings().collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("out of bounds"), "{warnings:?}");
}

#[test]
fn reject_packing_empty_segment_past_the_end() {
    let input = wat(r#"(module (memory 1)
        (data (i32.const 0) "\00\00a") (data (i32.const 65537) ""))"#);
    let report = assert_unchanged(&input, &PackOptions::default());
    assert_eq!(report.warnings().count(), 1);
}

#[test]
fn empty_segment_exactly_at_the_end_is_in_bounds() {
    let input = wat(r#"(module (memory (export "mem") 1)
        (data (i32.const 0) "\00\00a") (data (i32.const 65536) ""))"#);
    let (output, report) = pack_with(&input, &PackOptions::default());
    assert_eq!(report.warnings().count(), 0);
    assert_eq!(data_segments(&output).len(), 1);
    assert_eq!(active_segments(&output), [seg(0, 2, b"a")]);
    equivalent(&input, &output, 16);
}

#[test]
fn reject_packing_when_a_segment_of_another_memory_is_out_of_bounds() {
    let input = wat(r#"(module (memory 1) (memory 1)
        (data (memory 0) (i32.const 0) "\00\00a")
        (data (memory 1) (i32.const 65536) "z"))"#);
    let report = assert_unchanged(&input, &PackOptions::default());
    assert_eq!(report.warnings().count(), 1);
}

// ------------------------------------------------------ §1 the name section

#[test]
fn data_segment_names_are_kept_for_unchanged_segments_only() {
    let input = wat(r#"(module $m (memory 1)
        (data $p "P")
        (data $a (i32.const 0) "\00\00a")
        (data $same (i32.const 100) "bc")
        (func $f (local $l i32)))"#);
    assert_eq!(
        data_segment_names(&input),
        [(0, "p".into()), (1, "a".into()), (2, "same".into())]
    );
    let output = pack(&input);
    let segs = data_segments(&output);
    assert_eq!(segs[0].raw, [0x01, 0x01, b'P']);
    assert_eq!(
        active_segments(&output),
        [seg(0, 2, b"a"), seg(0, 100, b"bc")]
    );
    // $a's bytes changed: its name goes. $same lands in its own slot with
    // the same bytes: its name stays, as does the passive $p's.
    assert_eq!(
        data_segment_names(&output),
        [(0, "p".into()), (2, "same".into())]
    );
    // Every other subsection (module, function, local names) is unchanged.
    let others = |w: &[u8]| {
        name_subsections(w)
            .unwrap()
            .into_iter()
            .filter(|(id, _)| *id != 9)
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&input), others(&output));
    assert_eq!(others(&input).len(), 3);
}

#[test]
fn data_segment_names_never_follow_bytes_to_another_index() {
    // $z vanishes (all zeros), so $x's unchanged bytes move to index 0.
    // Neither name may stay: index 0 holds other bytes than $z's, and there
    // is no index 1 any more.
    let input = wat(r#"(module (memory 1)
        (data $z (i32.const 0) "\00\00\00\00")
        (data $x (i32.const 100) "bc"))"#);
    let output = pack(&input);
    assert_eq!(data_segments(&output).len(), 1);
    assert_eq!(active_segments(&output), [seg(0, 100, b"bc")]);
    assert!(data_segment_names(&output).is_empty());
}

#[test]
fn data_segment_names_subsection_goes_when_no_name_is_left() {
    let input = wat(r#"(module (memory 1)
        (data $a (i32.const 0) "\00\00a")
        (data $b (i32.const 3) "b")
        (func $f))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 2, b"ab")]);
    assert!(data_segment_names(&output).is_empty());
    let ids: Vec<u8> = name_subsections(&output)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, [1]);
}

#[test]

fn data_segment_names_are_dropped_from_every_name_section() {
    // Two `name` sections (the appendix says "should appear once", but
    // nothing rejects a second); the second names segment 0, re-packed.
    let input = wat(r#"(module (memory 1)
        (data (i32.const 0) "\00\00a") (data (i32.const 3) "b")
        (@custom "name" "\01\01\00")
        (@custom "name" "\09\04\01\00\01a"))"#);
    let output = pack(&input);
    assert_eq!(active_segments(&output), [seg(0, 2, b"ab")]);
    for s in sections(&output) {
        if s.name.as_deref() == Some("name") {
            assert!(
                !s.contents
                    .windows(5)
                    .any(|w| w == [0x09, 0x04, 0x01, 0x00, 0x01]),
                "a stale data segment name survives: {:02x?}",
                s.contents
            );
        }
    }
}

// ------------------------------------------------------- §3 data count

/// Replaces the contents of the data count section with `leb` (same count,
/// other encoding) and fixes the section size.
fn with_data_count_leb(input: &[u8], leb: &[u8]) -> Vec<u8> {
    let s = sections(input).into_iter().find(|s| s.id == 12).unwrap();
    let mut out = input[..s.start].to_vec();
    out.push(12);
    out.push(leb.len() as u8);
    out.extend_from_slice(leb);
    out.extend_from_slice(&input[s.start + s.bytes.len()..]);
    out
}

const DATA_COUNT_WAT: &str = r#"(module (memory (export "mem") 1)
    (data $p "P")
    (data (i32.const 0) "a")
    (data (i32.const 1) "b")
    (func (export "init") (memory.init $p (i32.const 9) (i32.const 0) (i32.const 1))))"#;

#[test]
fn data_count_is_updated() {
    let input = wat(DATA_COUNT_WAT);
    assert_eq!(data_count(&input), Some((3, vec![3])));
    let output = pack(&input);
    assert_eq!(data_count(&output), Some((2, vec![2])));
    assert_eq!(data_segments(&output).len(), 2);
}

#[test]
fn data_count_keeps_a_padded_leb_width() {
    let input = with_data_count_leb(&wat(DATA_COUNT_WAT), &[0x83, 0x80, 0x80, 0x80, 0x00]);
    validate(&input);
    assert_eq!(data_count(&input).unwrap().0, 3);
    let output = pack(&input);
    assert_eq!(
        data_count(&output),
        Some((2, vec![0x82, 0x80, 0x80, 0x80, 0x00]))
    );
    // The code section did not move.
    let code_start = |w: &[u8]| sections(w).into_iter().find(|s| s.id == 10).unwrap().start;
    assert_eq!(code_start(&input), code_start(&output));
    assert_eq!(untouched_sections(&input), untouched_sections(&output));
    assert_eq!(
        run_and_read(&input, Some("init"), "mem", 0..16),
        run_and_read(&output, Some("init"), "mem", 0..16)
    );
}

#[test]
fn data_count_keeps_a_two_byte_leb_width() {
    let input = with_data_count_leb(&wat(DATA_COUNT_WAT), &[0x83, 0x00]);
    let output = pack(&input);
    assert_eq!(data_count(&output), Some((2, vec![0x82, 0x00])));
}

#[test]
fn data_count_is_never_added() {
    let input =
        wat(r#"(module (memory 1) (data (i32.const 0) "\00\00a") (data (i32.const 3) "b"))"#);
    assert_eq!(data_count(&input), None);
    let output = pack(&input);
    assert_eq!(data_count(&output), None);
}

#[test]
fn data_count_grows_when_the_new_count_does_not_fit_its_width() {
    // One segment holding 130 runs 10 bytes apart: 130 segments out.
    let offsets: Vec<usize> = (0..130).map(|i| 10 * i + 1).collect();
    let mut img = vec![0u8; 1301];
    for &o in &offsets {
        img[o] = 0x55;
    }
    let input = wat(&format!(
        r#"(module (memory (export "mem") 1)
            (data $p "P")
            (data (i32.const 0) "{}")
            (func (export "init") (data.drop $p)))"#,
        wat_str(&img)
    ));
    assert_eq!(data_count(&input), Some((2, vec![2])));
    let output = pack(&input);
    assert_eq!(data_segments(&output).len(), 131);
    assert_eq!(data_count(&output), Some((131, vec![0x83, 0x01])));
    let expected: Vec<Seg> = offsets.iter().map(|&o| seg(0, o as u64, &[0x55])).collect();
    assert_eq!(active_segments(&output), expected);
    equivalent(&input, &output, 2048);
}

// ------------------------------------------------------------- §5 inputs

#[test]
fn reject_relocatable_object_with_linking_section() {
    let input = wat(r#"(module (memory 1) (data (i32.const 0) "\00\00a")
        (@custom "linking" "\02"))"#);
    let err = segpack::pack_module(&input, &mut Vec::new(), &PackOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Relocatable);
    assert!(err.offset().is_some());
}

#[test]
fn reject_relocatable_object_with_reloc_data_section() {
    let input = wat(r#"(module (memory 1) (data (i32.const 0) "\00\00a")
        (@custom "reloc.DATA" "\00\00"))"#);
    let mut out = Vec::new();
    let err = segpack::pack_module(&input, &mut out, &PackOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Relocatable);
    assert!(out.is_empty(), "nothing is written on error");
}

#[test]
fn component_nested_modules_are_each_packed() {
    let input = wat(r#"(component
        (core module $a (memory 1) (data (i32.const 0) "\00\00a") (data (i32.const 3) "b"))
        (core module $b (memory 1) (data (i32.const 0) "xyz")))"#);
    let (output, report) = pack_with(&input, &PackOptions::default());
    assert_eq!(report.modules.len(), 2);
    assert!(report.modules[0].changed && !report.modules[1].changed);
    let nested = |w: &[u8]| -> Vec<Vec<u8>> {
        wasmparser::Parser::new(0)
            .parse_all(w)
            .filter_map(|p| match p.unwrap() {
                wasmparser::Payload::ModuleSection {
                    unchecked_range, ..
                } => Some(w[unchecked_range.start as usize..unchecked_range.end as usize].to_vec()),
                _ => None,
            })
            .collect()
    };
    let (before, after) = (nested(&input), nested(&output));
    assert_eq!(after.len(), 2);
    assert_eq!(active_segments(&after[0]), [seg(0, 2, b"ab")]);
    assert_eq!(after[1], before[1]);
}

#[test]
fn component_nested_in_a_component_is_packed() {
    let input = wat(r#"(component
        (component
            (core module (memory 1) (data (i32.const 0) "\00\00a") (data (i32.const 3) "b"))))"#);
    let (output, report) = pack_with(&input, &PackOptions::default());
    assert_eq!(report.modules.len(), 1);
    assert!(report.changed());
    assert!(output.len() < input.len());
    let modules: Vec<Vec<u8>> = wasmparser::Parser::new(0)
        .parse_all(&output)
        .filter_map(|p| match p.unwrap() {
            wasmparser::Payload::ModuleSection {
                unchecked_range, ..
            } => {
                Some(output[unchecked_range.start as usize..unchecked_range.end as usize].to_vec())
            }
            _ => None,
        })
        .collect();
    assert_eq!(modules.len(), 1);
    assert_eq!(active_segments(&modules[0]), [seg(0, 2, b"ab")]);
}

#[test]
fn component_with_nothing_to_gain_is_left_as_is() {
    let input = wat(r#"(component
        (core module (memory 1) (data (i32.const 0) "xyz"))
        (component (core module (memory 1) (data (i32.const 9) "q"))))"#);
    let report = assert_unchanged(&input, &PackOptions::default());
    assert_eq!(report.modules.len(), 2);
}

#[test]
fn component_packs_its_modules_and_passes_the_unpackable_ones_through() {
    // Issue 7: two packable modules, a nested component holding a third, a
    // relocatable module, one whose segment is out of bounds, one with
    // nothing to gain. The packable ones shrink; the others come out byte
    // for byte, with a warning where there is something to say.
    let input = wat(r#"(component
        (core module (memory 1) (data (i32.const 0) "\00\00a") (data (i32.const 3) "b"))
        (core module (memory 1) (data (i32.const 16) "\00\00\00\00x\00\00\00"))
        (component
            (core module (memory 1) (data (i32.const 100) "\00y\00") (data (i32.const 102) "z")))
        (core module (memory 1) (data (i32.const 0) "\00\00r")
            (@custom "linking" "\02"))
        (core module (memory 1) (data (i32.const 65535) "\00\00oob"))
        (core module (memory 1) (data (i32.const 0) "xyz")))"#);
    let (output, report) = pack_with(&input, &PackOptions::default());
    let paths: Vec<&str> = report.modules.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "core module 0",
            "core module 1",
            "component 0 / core module 0",
            "core module 2",
            "core module 3",
            "core module 4"
        ]
    );
    let changed: Vec<bool> = report.modules.iter().map(|m| m.changed).collect();
    assert_eq!(changed, [true, true, true, false, false, false]);
    assert!(
        report.modules[3]
            .warnings
            .iter()
            .any(|w| w.contains("relocatable"))
    );
    assert!(
        report.modules[4]
            .warnings
            .iter()
            .any(|w| w.contains("out of bounds"))
    );
    let before = support::statics::core_modules(&input);
    let after = support::statics::core_modules(&output);
    assert_eq!(after.len(), 6);
    assert_eq!(active_segments(after[0]), [seg(0, 2, b"ab")]);
    assert_eq!(active_segments(after[1]), [seg(0, 20, b"x")]);
    assert_eq!(active_segments(after[2]), [seg(0, 101, b"yz")]);
    for i in 3..6 {
        assert_eq!(after[i], before[i], "core module {i} must pass through");
    }
    validate(&output);
    support::statics::assert_same_static_images(&input, &output, false);
}

#[test]
fn a_top_level_relocatable_module_is_still_refused() {
    let input =
        wat(r#"(module (memory 1) (data (i32.const 0) "\00\00r") (@custom "linking" "\02"))"#);
    let err = segpack::pack_module(&input, &mut Vec::new(), &PackOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Relocatable);
}

#[test]
fn a_malformed_nested_module_is_an_error_naming_its_path() {
    // The second module of the nested component calls a function that does
    // not exist: invalid. The error names where it is and its byte offset.
    let input = wat(r#"(component
        (core module (memory 1) (data (i32.const 0) "\00\00a"))
        (component
            (core module (memory 1))
            (core module (func (call 7)))))"#);
    let err = segpack::pack_module(&input, &mut Vec::new(), &PackOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    let message = err.to_string();
    assert!(
        message.starts_with("in component 0 / core module 1: "),
        "{message}"
    );
    let offset = err.offset().expect("an offset") as usize;
    // The offset is inside that module's bytes, at the `call`.
    let nested = support::statics::core_modules(&input)[2];
    let start = nested.as_ptr() as usize - input.as_ptr() as usize;
    assert!((start..start + nested.len()).contains(&offset), "{message}");
    assert_eq!(input[offset], 0x10, "{message}: not at the call opcode");
}

// ------------------------------------------------------ §4 --max-segments

/// Runs at 10, 21, 30, 43 and 50: gaps of 10, 8, 12 and 6 bytes. All
/// offsets are below 64 and all lengths below 128, so closing a gap of g
/// bytes costs g - 5 bytes (a header saved, g zeros written).
fn five_runs() -> Vec<u8> {
    let img = image(&[10, 21, 30, 43, 50]);
    wat(&format!(
        r#"(module (memory (export "mem") 1) (data (i32.const 0) "{}"))"#,
        wat_str(&img)
    ))
}

#[test]
fn max_segments_closes_the_cheapest_gaps_first() {
    let input = five_runs();
    let z = |n: usize| vec![0u8; n];
    let cat = |parts: &[&[u8]]| parts.concat();
    let cases: [(u32, Vec<Seg>); 5] = [
        (
            5,
            vec![
                seg(0, 10, b"a"),
                seg(0, 21, b"b"),
                seg(0, 30, b"c"),
                seg(0, 43, b"d"),
                seg(0, 50, b"e"),
            ],
        ),
        // The 6-byte gap (d-e) is cheapest.
        (
            4,
            vec![
                seg(0, 10, b"a"),
                seg(0, 21, b"b"),
                seg(0, 30, b"c"),
                (0, 43, cat(&[b"d", &z(6), b"e"])),
            ],
        ),
        // Then the 8-byte gap (b-c).
        (
            3,
            vec![
                seg(0, 10, b"a"),
                (0, 21, cat(&[b"b", &z(8), b"c"])),
                (0, 43, cat(&[b"d", &z(6), b"e"])),
            ],
        ),
        // Then the 10-byte gap (a-b); the 12-byte one (c-d) stays open.
        (
            2,
            vec![
                (0, 10, cat(&[b"a", &z(10), b"b", &z(8), b"c"])),
                (0, 43, cat(&[b"d", &z(6), b"e"])),
            ],
        ),
        (1, vec![(0, 10, image(&[0, 11, 20, 33, 40]))]),
    ];
    for (cap, expected) in cases {
        let (output, report) = pack_with(&input, &options(cap));
        assert_eq!(active_segments(&output), expected, "--max-segments {cap}");
        assert_eq!(report.warnings().count(), 0);
        equivalent(&input, &output, 64);
    }
}

#[test]
fn max_segments_ties_close_the_lower_offset_first() {
    // Runs at 10, 18, 26, 34: three gaps of 7 bytes, each costing 2 to close.
    let img = image(&[10, 18, 26, 34]);
    let input = wat(&format!(
        r#"(module (memory 1) (data (i32.const 0) "{}"))"#,
        wat_str(&img)
    ));
    let z7 = [0u8; 7];
    let (output, _) = pack_with(&input, &options(3));
    assert_eq!(
        active_segments(&output),
        [
            (0, 10, [&b"a"[..], &z7, b"b"].concat()),
            seg(0, 26, b"c"),
            seg(0, 34, b"d")
        ]
    );
    let (output, _) = pack_with(&input, &options(2));
    assert_eq!(
        active_segments(&output),
        [
            (0, 10, [&b"a"[..], &z7, b"b", &z7, b"c"].concat()),
            seg(0, 34, b"d")
        ]
    );
}

#[test]
fn max_segments_closes_the_cheapest_gap_of_any_memory() {
    // Memory 0: a 12-byte gap (costs 7 to close); memory 1: a 6-byte gap
    // (costs 1). With a cap of 3, memory 1's gap closes.
    let input = wat(r#"(module (memory 1) (memory 1)
        (data (memory 0) (i32.const 0) "\00a\00\00\00\00\00\00\00\00\00\00\00\00b")
        (data (memory 1) (i32.const 0) "\00c\00\00\00\00\00\00d"))"#);
    let (output, _) = pack_with(&input, &options(3));
    assert_eq!(
        active_segments(&output),
        [
            seg(0, 1, b"a"),
            seg(0, 14, b"b"),
            (1, 1, [&b"c"[..], &[0; 6], b"d"].concat())
        ]
    );
}

#[test]
fn max_segments_one_merges_everything_per_memory() {
    let input = five_runs();
    let (output, _) = pack_with(&input, &options(1));
    assert_eq!(active_segments(&output).len(), 1);

    // Two memories cannot share a segment: one each, and a warning.
    let two = wat(r#"(module (memory 1) (memory 1)
        (data (memory 0) (i32.const 0) "\00a\00\00\00\00\00\00\00\00\00\00\00\00b")
        (data (memory 1) (i32.const 0) "\00c\00\00\00\00\00\00\00\00\00\00\00\00d"))"#);
    let (output, report) = pack_with(&two, &options(1));
    let z12 = [0u8; 12];
    assert_eq!(
        active_segments(&output),
        [
            (0, 1, [&b"a"[..], &z12, b"b"].concat()),
            (1, 1, [&b"c"[..], &z12, b"d"].concat())
        ]
    );
    assert_eq!(report.warnings().count(), 1);
}

#[test]

fn max_segments_is_honoured_or_warned_about_when_merging_costs_bytes() {
    // Two segments 99 bytes apart; with a cap of 1 they must merge, which
    // costs 94 bytes. SPEC §4 caps the count; §1.3 returns the input when
    // nothing is gained. At the least the user must hear that the cap was
    // not met.
    let input = wat(r#"(module (memory 1) (data (i32.const 0) "a") (data (i32.const 100) "b"))"#);
    let (output, report) = pack_with(&input, &options(1));
    let count = active_segments(&output).len();
    assert!(
        count <= 1 || report.warnings().count() > 0,
        "{count} segments over a cap of 1, and no warning"
    );
}

#[test]
fn max_segments_counts_kept_active_segments_but_not_passive_ones() {
    // Memory 0 cannot be packed (imported global): its 2 segments are kept
    // and count against the cap of 4, leaving 2 for memory 1's five runs.
    let img = image(&[10, 21, 30, 43, 50]);
    let input = wat(&format!(
        r#"(module
            (import "env" "g" (global $g i32))
            (memory 1) (memory 1)
            (data (memory 0) (global.get $g) "x")
            (data (memory 0) (i32.const 0) "y")
            (data $p "P")
            (data (memory 1) (i32.const 0) "{}")
            (func (data.drop $p)))"#,
        wat_str(&img)
    ));
    let (output, report) = pack_with(&input, &options(4));
    let z = |n: usize| vec![0u8; n];
    let segs = data_segments(&output);
    let before = data_segments(&input);
    assert_eq!(segs.len(), 5);
    assert_eq!(&segs[..3], &before[..3]);
    let packed: Vec<_> = segs[3..]
        .iter()
        .map(|s| match &s.kind {
            Kind::Active { memory, offset, .. } => (*memory, offset.unwrap(), s.data.clone()),
            Kind::Passive => panic!("passive"),
        })
        .collect();
    assert_eq!(
        packed,
        [
            (1, 10, [&b"a"[..], &z(10), b"b", &z(8), b"c"].concat()),
            (1, 43, [&b"d"[..], &z(6), b"e"].concat())
        ]
    );
    assert_eq!(report.warnings().count(), 0);
}

// ---------------------------------------------------- §7 pack_segments

#[test]
fn pack_segments_borrows_the_callers_bytes() {
    let mut page = vec![0u8; 4096];
    page[10..14].copy_from_slice(b"heap");
    page[3000] = 9;
    let segments = [Segment {
        memory_index: 0,
        offset: 65536,
        data: &page,
    }];
    let packed = segpack::pack_segments(&segments, &[IndexType::I32], &Default::default()).unwrap();
    let packed = packed.memory(0).unwrap().segments();
    assert_eq!(packed.len(), 2);
    assert_eq!(
        (packed[0].offset, packed[0].to_vec()),
        (65546, b"heap".to_vec())
    );
    assert_eq!(
        (packed[1].offset, packed[1].to_vec()),
        (65536 + 3000, vec![9])
    );
    let range = page.as_ptr_range();
    for s in packed {
        for part in &s.parts {
            if let Part::Bytes(b) = part {
                let r = b.as_ptr_range();
                assert!(range.start <= r.start && r.end <= range.end, "part copied");
            }
        }
    }
    // The bytes are the caller's very bytes, not copies.
    let Part::Bytes(heap) = packed[0].parts[0] else {
        panic!("{:?}", packed[0].parts)
    };
    assert_eq!(heap.as_ptr(), page[10..].as_ptr());
}

#[test]
fn pack_segments_output_is_sorted_by_memory_then_offset() {
    let segments = [
        Segment {
            memory_index: 1,
            offset: 50,
            data: b"\0q",
        },
        Segment {
            memory_index: 0,
            offset: 300,
            data: b"zz",
        },
        Segment {
            memory_index: 0,
            offset: 0,
            data: b"a",
        },
    ];
    let packed = segpack::pack_segments(
        &segments,
        &[IndexType::I32, IndexType::I64],
        &Default::default(),
    )
    .unwrap();
    let got: Vec<_> = packed
        .segments()
        .map(|s| (s.memory_index, s.offset, s.to_vec()))
        .collect();
    assert_eq!(got, [seg(0, 0, b"a"), seg(0, 300, b"zz"), seg(1, 51, b"q")]);
    // Grouped by memory, each memory with its index type.
    let memories: Vec<_> = packed
        .memories()
        .iter()
        .map(|m| (m.memory_index(), m.index_type(), m.segments().len()))
        .collect();
    assert_eq!(memories, [(0, IndexType::I32, 2), (1, IndexType::I64, 1)]);
}

#[test]
fn pack_segments_later_segment_wins_overlap() {
    let segments = [
        Segment {
            memory_index: 0,
            offset: 0,
            data: b"abcdefghij",
        },
        Segment {
            memory_index: 0,
            offset: 2,
            data: &[0; 6],
        },
        Segment {
            memory_index: 0,
            offset: 9,
            data: b"J",
        },
    ];
    let packed = segpack::pack_segments(&segments, &[IndexType::I32], &Default::default()).unwrap();
    let got: Vec<_> = packed.segments().map(|s| (s.offset, s.to_vec())).collect();
    assert_eq!(got, [(0, b"ab".to_vec()), (8, b"iJ".to_vec())]);
}

#[test]
fn pack_segments_rejects_bad_input() {
    let seg0 = |offset, data| Segment {
        memory_index: 0,
        offset,
        data,
    };
    let unknown = [Segment {
        memory_index: 1,
        offset: 0,
        data: b"a",
    }];
    let err = segpack::pack_segments(&unknown, &[IndexType::I32], &Default::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSegment);

    let past = [seg0(0xffff_ffff, &b"ab"[..])];
    let err = segpack::pack_segments(&past, &[IndexType::I32], &Default::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSegment);
    // The same segment fits a 64-bit memory.
    assert!(segpack::pack_segments(&past, &[IndexType::I64], &Default::default()).is_ok());
}

#[test]
fn pack_segments_never_grows_a_segment_past_one_gib() {
    let gib = 1u64 << 30;
    let segs = |second: u64| {
        [
            Segment {
                memory_index: 0,
                offset: 0,
                data: b"a",
            },
            Segment {
                memory_index: 0,
                offset: second,
                data: b"b",
            },
        ]
    };
    // Merged, these would be exactly 1 GiB: allowed.
    let packed = segpack::pack_segments(&segs(gib - 1), &[IndexType::I64], &options(1)).unwrap();
    let packed = packed.memory(0).unwrap().segments();
    assert_eq!(packed.len(), 1);
    assert_eq!(packed[0].len(), gib);
    assert_eq!(
        packed[0].parts,
        [Part::Bytes(b"a"), Part::Zeros(gib - 2), Part::Bytes(b"b")]
    );
    // One byte more: never merged, whatever the cap.
    let packed = segpack::pack_segments(&segs(gib), &[IndexType::I64], &options(1)).unwrap();
    assert_eq!(packed.len(), 2);
    // A gap of 4 GiB is never closed either.
    let packed =
        segpack::pack_segments(&segs((1 << 32) + 1), &[IndexType::I64], &options(1)).unwrap();
    assert_eq!(packed.len(), 2);
    assert_eq!(packed.segments().nth(1).unwrap().offset, (1 << 32) + 1);
}

/// Over the cap, when meeting it would grow the data section, the input's
/// own segments are kept; if the producer padded the section's size LEB (as
/// LLVM does), they are kept under a header of minimal width, which is what
/// wasm-opt writes too (esbuild.wasm at 100,000: one byte smaller than the
/// input, and than segpack's output before this rule).
#[test]
fn padded_lebs_are_tightened_when_the_segments_stay() {
    let mut payload = vec![3u8];
    for (offset, byte) in [(0i64, b'a'), (1000, b'b'), (2000, b'c')] {
        payload.extend([0x00, 0x41]);
        support::wasm::write_sleb(&mut payload, offset);
        payload.extend([0x0b, 0x01, byte]);
    }
    let mut padded = vec![0x0b];
    // The payload's size as a 5-byte LEB.
    support::wasm::write_uleb_padded(&mut padded, payload.len() as u64, 5);
    padded.extend(&payload);
    let mut input = b"\0asm\x01\0\0\0".to_vec();
    input.extend([0x05, 0x03, 0x01, 0x00, 0x01]); // memory 1 page
    input.extend(&padded);
    validate(&input);

    let (output, report) = pack_with(&input, &options(2));
    assert!(report.changed());
    assert_eq!(output.len(), input.len() - 4, "only the 4 padding bytes go");
    assert_eq!(active_segments(&output), active_segments(&input));
    let warnings: Vec<String> = report.warnings().collect();
    assert!(
        warnings.len() == 1 && warnings[0].contains("segments kept as they are"),
        "{warnings:?}"
    );
    // Idempotent: nothing more to gain.
    assert_unchanged(&output, &options(2));
    assert_eq!(
        segpack::verify(&input, &output, &Default::default()).unwrap(),
        None
    );
}
