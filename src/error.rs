//! The one error type of the library: what went wrong, and where in the input.

use std::fmt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of problem an [`Error`] reports.
///
/// New kinds may be added; match with a wildcard arm.
///
/// `Send` and `Sync`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input is not a well-formed, valid WebAssembly module or component.
    Malformed,
    /// The input is a relocatable object file (`linking` or `reloc.*` custom
    /// sections): its relocations point into data segments, so moving them
    /// would break the link.
    Relocatable,
    /// A segment handed to [`pack_segments`](crate::pack_segments) does not fit
    /// its memory's address space, or names a memory that was not described.
    InvalidSegment,
    /// Reading the input or writing the output failed.
    Io,
    /// A compression codec for `optimize` is unknown, has no such level, or
    /// is not in this build (its cargo feature is off).
    InvalidCompression,
}

/// An error with a message and, when it comes from the input, the byte offset
/// at which the problem was found.
///
/// Displayed as `message (at offset 0x…)`.
///
/// `Send` and `Sync`.
#[derive(Debug)]
pub struct Error {
    // Boxed so that `Result<T>` stays one word wide on the happy path.
    inner: Box<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    offset: Option<u64>,
    source: Option<std::io::Error>,
}

impl Error {
    #[cold]
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>, offset: Option<u64>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                offset,
                source: None,
            }),
        }
    }

    #[cold]
    #[cfg(feature = "module")]
    pub(crate) fn malformed(message: impl Into<String>, offset: u64) -> Self {
        Self::new(ErrorKind::Malformed, message, Some(offset))
    }

    /// Wraps an I/O error, keeping it as the [`source`](std::error::Error::source).
    #[cold]
    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        let mut e = Self::new(ErrorKind::Io, format!("{}: {err}", context.into()), None);
        e.inner.source = Some(err);
        e
    }

    /// The kind of problem.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The message, without the offset.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The byte offset in the input where the problem was found, if the
    /// problem is in the input.
    pub fn offset(&self) -> Option<u64> {
        self.inner.offset
    }

    /// Prefixes the message with where in a component the problem is, e.g.
    /// `core module 2 of component 0`.
    #[cfg(feature = "module")]
    pub(crate) fn in_context(mut self, context: &str) -> Self {
        if !context.is_empty() {
            self.inner.message = format!("in {context}: {}", self.inner.message);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.offset {
            Some(offset) => write!(f, "{} (at offset {offset:#x})", self.inner.message),
            None => f.write_str(&self.inner.message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source.as_ref().map(|e| e as _)
    }
}

#[cfg(feature = "module")]
impl From<wasmparser::BinaryReaderError> for Error {
    #[cold]
    fn from(err: wasmparser::BinaryReaderError) -> Self {
        Error::malformed(one_line(err.message()), err.offset())
    }
}

/// wasmparser pretty-prints some messages over several lines (the bad magic
/// number's byte arrays); errors here are one line.
#[cfg(feature = "module")]
fn one_line(message: &str) -> String {
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.replace("[ ", "[").replace(", ]", "]")
}

#[cfg(all(test, feature = "module"))]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_offset_in_hex() {
        let e = Error::malformed("unexpected end-of-file", 0x1f);
        assert_eq!(e.to_string(), "unexpected end-of-file (at offset 0x1f)");
        assert_eq!(e.kind(), ErrorKind::Malformed);
    }

    #[test]
    fn wasmparser_messages_become_one_line() {
        let err = wasmparser::Parser::new(0)
            .parse_all(b"hello world wasm")
            .next()
            .unwrap()
            .unwrap_err();
        let e = Error::from(err);
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(
            e.to_string().contains("actual=[0x68, 0x65, 0x6c, 0x6c]"),
            "{e}"
        );
    }

    #[test]
    fn result_stays_small() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
