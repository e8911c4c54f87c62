//! What an input that is not WebAssembly looks like, from its first bytes.
//!
//! wasmparser's answer to a file without the `\0asm` magic is `magic header
//! not detected: bad magic number - expected=[0x0, 0x61, 0x73, 0x6d]
//! actual=[…]`, which tells a user nothing they can act on. The usual
//! mistakes are the text format, a compressed download, or the JavaScript
//! that loads the module; each is recognised here by its first bytes and
//! named with the next step. The library knows no file names and no flags of
//! the command line: the caller adds those.
#![cfg(feature = "module")]

use crate::error::{Error, Result};

/// Every binary module and component starts with these four bytes.
const MAGIC: &[u8; 4] = b"\0asm";

/// How much of the input is looked at to tell text from binary data.
const WINDOW: usize = 512;

/// Fails, at offset 0, with a one-line description of what `input` looks
/// like when it does not start with `\0asm`, e.g. `not a WebAssembly binary
/// (it starts with "(mod"): it looks like WebAssembly text; convert it with
/// `wasm-tools parse``. A short prefix of the magic (a truncated module) is
/// left to the parser, which says where the input ends.
pub(crate) fn check(input: &[u8]) -> Result<()> {
    match describe(input) {
        None => Ok(()),
        Some(description) => Err(Error::malformed(description, 0)),
    }
}

/// The description [`check`] fails with, or `None` for a WebAssembly
/// binary (or a truncated one).
fn describe(input: &[u8]) -> Option<String> {
    if input.is_empty() {
        return Some("not a WebAssembly binary (it is empty)".into());
    }
    let head = &input[..input.len().min(MAGIC.len())];
    if MAGIC.starts_with(head) {
        return None;
    }
    let start = format!(
        "not a WebAssembly binary (it starts with \"{}\")",
        quoted(head)
    );
    Some(match hint(input) {
        Some(hint) => format!("{start}: {hint}"),
        None => start,
    })
}

/// What to do about the input, from its first bytes.
fn hint(input: &[u8]) -> Option<&'static str> {
    // Formats with a signature: compressed data and native executables.
    const SIGNATURES: &[(&[u8], &str)] = &[
        (
            b"\x1f\x8b",
            "it is gzip-compressed; decompress it first (`gzip -d`)",
        ),
        (
            b"\x28\xb5\x2f\xfd",
            "it is zstd-compressed; decompress it first (`zstd -d`)",
        ),
        (
            b"PK\x03\x04",
            "it is a zip archive; extract the .wasm file from it first",
        ),
        (b"\x7fELF", "it is a native executable (ELF)"),
        (b"\xcf\xfa\xed\xfe", "it is a native executable (Mach-O)"),
        (b"\xca\xfe\xba\xbe", "it is a native executable (Mach-O)"),
    ];
    if let Some((_, hint)) = SIGNATURES.iter().find(|(s, _)| input.starts_with(s)) {
        return Some(hint);
    }
    if let Some(text) = as_text(&input[..input.len().min(WINDOW)]) {
        return text_hint(text);
    }
    // Two letters, so only once the input is known not to be text.
    if input.starts_with(b"MZ") {
        return Some("it is a native executable (Windows)");
    }
    // A WebAssembly version after four damaged bytes: a damaged module, not
    // some other format.
    if matches!(input.get(4..8), Some([1, 0, 0, 0] | [0x0d, 0, 1, 0])) {
        return None;
    }
    // Brotli, the usual compression of .wasm on the web, has no signature:
    // random-looking bytes are the best sign of it there is.
    Some("if it is brotli-compressed, decompress it first (`brotli -d`)")
}

/// What kind of text `text` (the start of the input) is, with the next step.
fn text_hint(text: &str) -> Option<&'static str> {
    let text = text.trim_start_matches('\u{feff}');
    // WebAssembly text: a comment, or a module field in parentheses.
    if text.starts_with(";;") || text.starts_with("(;") {
        return Some(WAT);
    }
    let text = text.trim_start();
    if let Some(rest) = text.strip_prefix('(') {
        const FIELDS: &[&str] = &[
            "module",
            "component",
            "func",
            "memory",
            "data",
            "type",
            "import",
            "export",
            "global",
            "table",
            "elem",
            "start",
            "rec",
            "tag",
            "assert_",
            "register",
            "invoke",
        ];
        let rest = rest.trim_start();
        if FIELDS.iter().any(|f| rest.starts_with(f)) {
            return Some(WAT);
        }
        if rest.starts_with(';') {
            return Some(WAT);
        }
    }
    const JAVASCRIPT: &[&str] = &[
        "//",
        "/*",
        "'use strict'",
        "\"use strict\"",
        "import ",
        "import{",
        "import(",
        "export ",
        "const ",
        "let ",
        "var ",
        "function",
        "async function",
        "class ",
        "(function",
        "(()",
        "!function",
        "(async",
        "module.exports",
        "exports.",
        "require(",
        "globalThis",
    ];
    let first_line = text.lines().next().unwrap_or_default();
    let node_script = text.starts_with("#!")
        && ["node", "deno", "bun"]
            .iter()
            .any(|n| first_line.contains(n));
    if node_script || JAVASCRIPT.iter().any(|js| text.starts_with(js)) {
        return Some("it looks like JavaScript; pass the .wasm file instead");
    }
    let lower = text.get(..9).unwrap_or(text).to_ascii_lowercase();
    if lower.starts_with("<!doctype") || lower.starts_with("<html") {
        return Some("it looks like HTML, perhaps an error page saved in place of a download");
    }
    None
}

const WAT: &str = "it looks like WebAssembly text; convert it with `wasm-tools parse`";

/// `bytes` as text, if they read as text: UTF-8 (possibly cut in the middle
/// of a character at the end) without control characters but whitespace.
fn as_text(bytes: &[u8]) -> Option<&str> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid up to here")
        }
        Err(_) => return None,
    };
    let printable = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c');
    text.chars().all(printable).then_some(text)
}

/// `bytes` as they would be written in a Rust string: printable ASCII as
/// is, `"` and `\` escaped, everything else as `\n`, `\t`, `\r` or `\xNN`.
fn quoted(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(input: &[u8]) -> String {
        describe(input).expect("not WebAssembly")
    }

    #[test]
    fn webassembly_and_truncated_webassembly_pass() {
        for input in [&b"\0asm\x01\0\0\0"[..], b"\0asm", b"\0as", b"\0"] {
            assert_eq!(describe(input), None, "{input:?}");
            assert!(check(input).is_ok());
        }
    }

    #[test]
    fn the_error_is_malformed_at_offset_0_and_one_line() {
        let e = check(b"hello world\n").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Malformed);
        assert_eq!(e.offset(), Some(0));
        assert_eq!(
            e.message(),
            "not a WebAssembly binary (it starts with \"hell\")"
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn common_mistakes_are_named() {
        assert_eq!(said(b""), "not a WebAssembly binary (it is empty)");
        assert_eq!(
            said(b"(module\n  (memory 1))\n"),
            "not a WebAssembly binary (it starts with \"(mod\"): it looks like WebAssembly text; convert it with `wasm-tools parse`"
        );
        for wat in [
            &b";; a comment\n(module)"[..],
            b"\n\n  (component)",
            b"(; block ;) (module)",
            b"\xef\xbb\xbf(module)",
            b"(func (export \"f\"))",
        ] {
            assert!(said(wat).ends_with("`wasm-tools parse`"), "{}", said(wat));
        }
        assert_eq!(
            said(b"\x1f\x8b\x08\x00junk"),
            "not a WebAssembly binary (it starts with \"\\x1f\\x8b\\x08\\x00\"): it is gzip-compressed; decompress it first (`gzip -d`)"
        );
        assert!(said(b"\x28\xb5\x2f\xfd..").contains("zstd -d"));
        for js in [
            &b"\"use strict\";\nvar Module = {};"[..],
            b"import init from './pkg.js';",
            b"#!/usr/bin/env node\nconsole.log(1)",
            b"  // glue\n",
            b"var Module=typeof Module!=\"undefined\"?Module:{};",
        ] {
            assert!(said(js).contains("JavaScript"), "{}", said(js));
        }
        assert!(said(b"<!DOCTYPE html><html>").contains("HTML"));
        assert!(said(b"\x7fELF\x02\x01").contains("ELF"));
        // Random bytes: perhaps brotli, which has no signature.
        assert!(said(b"\x1b\xd3\x0b\x00\xe4\x9c\xff").contains("brotli -d"));
        // Plain text, and a damaged magic before a real version: no guess.
        assert_eq!(
            said(b"hello\tworld"),
            "not a WebAssembly binary (it starts with \"hell\")"
        );
        assert_eq!(
            said(b"\x01asm\x01\0\0\0"),
            "not a WebAssembly binary (it starts with \"\\x01asm\")"
        );
        assert_eq!(
            said(b"a\"\\"),
            "not a WebAssembly binary (it starts with \"a\\\"\\\\\")"
        );
    }
}
