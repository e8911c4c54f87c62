//! Issue 13: the Wasm GC instructions `array.new_data` and `array.init_data`
//! name data segments by index, as `memory.init` and `data.drop` do, so the
//! slot rule (SPEC §3) must keep every index they name valid.
//!
//! An active segment is dropped once instantiation has applied it, so an
//! instruction that names one sees an empty segment: the slot may hold a
//! packed segment or an empty passive one, never nothing. A passive segment is
//! never re-packed, so its bytes reach the array unchanged. Both modules run
//! in wasmtime with GC on (wasmi has no GC), and every call's result or trap,
//! and every memory, must match.

mod support;

use support::python::run_in_wasmtime;
use support::read::{self, Kind, pack, seg, wat};

/// The repro from the issue, with the calls that tell the segment's slot
/// apart: the original call (length 1 of a dropped segment: a trap), a
/// length-0 call (succeeds only if the index exists), and the same from a
/// passive segment, whose bytes the array must carry.
const NEW_DATA: &str = r#"
(module
  (type $a (array (mut i8)))
  (memory (export "memory") 1)
  (data (i32.const 0) "a")
  (data (i32.const 2) "b")
  (data (i32.const 4) "c")
  (data $p "xyz")
  (func (export "f") (result (ref $a))
    (array.new_data $a 1 (i32.const 0) (i32.const 1)))
  (func (export "len") (param i32) (result i32)
    (array.len (array.new_data $a 1 (i32.const 0) (local.get 0))))
  (func (export "passive") (param i32) (result i32)
    (array.get_u $a (array.new_data $a $p (i32.const 0) (i32.const 3)) (local.get 0))))
"#;

/// The `array.init_data` twin: the same shape, copying into an array.
const INIT_DATA: &str = r#"
(module
  (type $a (array (mut i8)))
  (memory (export "memory") 1)
  (data (i32.const 0) "a")
  (data (i32.const 2) "b")
  (data (i32.const 4) "c")
  (data $p "xyz")
  (func (export "f") (param i32)
    (array.init_data $a 1 (array.new_default $a (i32.const 4)) (i32.const 0) (i32.const 0) (local.get 0)))
  (func (export "passive") (param i32) (result i32)
    (local $arr (ref $a))
    (local.set $arr (array.new_default $a (i32.const 4)))
    (array.init_data $a $p (local.get $arr) (i32.const 1) (i32.const 0) (i32.const 3))
    (array.get_u $a (local.get $arr) (local.get 0))))
"#;

/// Checks the exact layout both modules pack to: the three active segments
/// become one at slot 0 (`"a\0b\0c"`), slot 1, which code names, holds an
/// empty passive segment, and the passive segment keeps slot 3 and its bytes.
fn assert_layout(packed: &[u8]) {
    let segments = read::data_segments(packed);
    assert_eq!(segments.len(), 4, "{segments:?}");
    assert_eq!(read::active_segments(packed), [seg(0, 0, b"a\0b\0c")]);
    assert_eq!(
        (&segments[1].kind, segments[1].data.as_slice()),
        (&Kind::Passive, &b""[..])
    );
    assert_eq!(
        (&segments[2].kind, segments[2].data.as_slice()),
        (&Kind::Passive, &b""[..])
    );
    assert_eq!(
        (&segments[3].kind, segments[3].data.as_slice()),
        (&Kind::Passive, &b"xyz"[..])
    );
    assert_eq!(read::data_count(packed).map(|(n, _)| n), Some(4));
}

/// Packs the module `text` (into [`assert_layout`]'s layout), makes
/// `calls` on the original and on the packed module in wasmtime, checks that
/// both answer the same, and returns the answers.
fn same_answers_once_packed(text: &str, calls: &[(&str, &[i32])]) -> Vec<String> {
    let original = wat(text);
    let packed = pack(&original);
    assert_layout(&packed);
    let before = run_in_wasmtime(&original, calls);
    let after = run_in_wasmtime(&packed, calls);
    assert_eq!(before, after);
    before
}

#[test]
fn array_new_data_keeps_the_slot_it_names() {
    let calls: &[(&str, &[i32])] = &[
        ("f", &[]),
        ("len", &[0]),
        ("len", &[1]),
        ("passive", &[0]),
        ("passive", &[2]),
    ];
    let before = same_answers_once_packed(NEW_DATA, calls);
    // What the engine said, so a runner that calls nothing cannot pass.
    assert_eq!(before[0], "instantiate: ok");
    assert!(before[1].starts_with("f: trap"), "{before:?}");
    assert_eq!(before[2], "len: 0");
    assert!(before[3].starts_with("len: trap"), "{before:?}");
    assert_eq!(before[4], format!("passive: {}", b'x'));
    assert_eq!(before[5], format!("passive: {}", b'z'));
    assert!(before[6].starts_with("memory memory: "), "{before:?}");
}

#[test]
fn array_init_data_keeps_the_slot_it_names() {
    let calls: &[(&str, &[i32])] = &[
        ("f", &[0]),
        ("f", &[1]),
        ("passive", &[0]),
        ("passive", &[3]),
    ];
    let before = same_answers_once_packed(INIT_DATA, calls);
    assert_eq!(before[0], "instantiate: ok");
    assert_eq!(before[1], "f: None");
    assert!(before[2].starts_with("f: trap"), "{before:?}");
    assert_eq!(before[3], "passive: 0");
    assert_eq!(before[4], format!("passive: {}", b'z'));
}

/// Before the fix, segment 2 was dropped from the list although code names
/// it: the output did not validate.
#[test]
fn a_gc_instruction_naming_the_last_segment_keeps_every_slot() {
    let original = wat(r#"
        (module
          (type $a (array i8))
          (memory 1)
          (data (i32.const 0) "a")
          (data (i32.const 100) "b")
          (data (i32.const 200) "c")
          (func (export "f") (result (ref $a))
            (array.new_data $a 2 (i32.const 0) (i32.const 0))))
    "#);
    let packed = pack(&original);
    assert_eq!(read::data_segments(&packed).len(), 3);
    assert_eq!(
        run_in_wasmtime(&original, &[("f", &[])])[1..],
        run_in_wasmtime(&packed, &[("f", &[])])[1..]
    );
}
