//! The codecs `optimize` can weigh layouts with (`--optimize-for`): names,
//! levels, and the compressed length of a byte stream.
//!
//! Each codec is its own cargo feature (`gzip`, `brotli`, `zstd`, all three
//! with `compress`), none on by default; without a codec's feature,
//! [`Compression::compressed_len`] says so in its error. The names and
//! levels are always there, so a command line can parse `zstd:3` and then
//! say that this build has no zstd.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};

/// A compression format a module is shipped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// gzip (deflate), as HTTP `Content-Encoding: gzip` and npm tarballs use
    /// it; levels 0 to 9, default 9. Feature `gzip` (flate2 with
    /// miniz_oxide, pure Rust).
    Gzip,
    /// Brotli, as HTTP `Content-Encoding: br`; levels (quality) 0 to 11,
    /// default 11, the window fitted to the input's size (as the `brotli`
    /// tool does, up to 2^24). Feature `brotli` (the pure-Rust `brotli`
    /// crate).
    Brotli,
    /// Zstandard, as OCI layers and HTTP `zstd` use it; levels 1 to 22,
    /// default 19. Feature `zstd` (the `zstd` crate, zstd's C sources).
    Zstd,
}

impl Codec {
    /// The level tools use when asked for their best ordinary effort: gzip 9,
    /// brotli 11, zstd 19.
    pub fn default_level(self) -> u32 {
        match self {
            Codec::Gzip => 9,
            Codec::Brotli => 11,
            Codec::Zstd => 19,
        }
    }

    /// The levels the codec accepts.
    pub fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Codec::Gzip => 0..=9,
            Codec::Brotli => 0..=11,
            Codec::Zstd => 1..=22,
        }
    }

    /// The codec's name: `gzip`, `brotli`, `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Brotli => "brotli",
            Codec::Zstd => "zstd",
        }
    }

    /// Whether this build of the library can compress with it (its cargo
    /// feature is on).
    pub fn is_available(self) -> bool {
        match self {
            Codec::Gzip => cfg!(feature = "gzip"),
            Codec::Brotli => cfg!(feature = "brotli"),
            Codec::Zstd => cfg!(feature = "zstd"),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A codec at a level: what `--optimize-for gzip` or `zstd:3` names.
///
/// ```
/// use segpack::{Codec, Compression};
/// let c: Compression = "zstd:3".parse()?;
/// assert_eq!((c.codec, c.level), (Codec::Zstd, 3));
/// assert_eq!("brotli".parse::<Compression>()?.level, 11);
/// assert!("gzip:10".parse::<Compression>().is_err());
/// assert_eq!(c.to_string(), "zstd:3");
/// # Ok::<(), segpack::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Compression {
    /// The format.
    pub codec: Codec,
    /// The level, within [`Codec::levels`].
    pub level: u32,
}

impl Compression {
    /// `codec` at its [`default_level`](Codec::default_level).
    pub fn new(codec: Codec) -> Self {
        Compression {
            codec,
            level: codec.default_level(),
        }
    }

    /// `codec` at `level`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidCompression`] when the codec has no such level.
    pub fn with_level(codec: Codec, level: u32) -> Result<Self> {
        if !codec.levels().contains(&level) {
            return Err(Error::new(
                ErrorKind::InvalidCompression,
                format!(
                    "{codec} levels go from {} to {}, not {level}",
                    codec.levels().start(),
                    codec.levels().end()
                ),
                None,
            ));
        }
        Ok(Compression { codec, level })
    }

    /// The length of `bytes`, all its slices one after the other (`len`
    /// bytes in all), once compressed: a whole stream, headers and trailer
    /// included. `len` tunes the codec as its command-line tool tunes it to
    /// a file's size (zstd's tables, brotli's window), so the result is what
    /// `zstd -19 FILE` or `brotli -q 11 FILE` would write.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidCompression`] when this build has no such codec (see
    /// [`Codec::is_available`]).
    ///
    /// ```
    /// # #[cfg(feature = "gzip")] {
    /// let gzip = segpack::Compression::new(segpack::Codec::Gzip);
    /// let zeros = [0u8; 4096];
    /// let n = gzip.compressed_len(8192, &mut [&zeros[..], &zeros[..]].into_iter())?;
    /// assert!(n < 100);
    /// # }
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn compressed_len(&self, len: u64, bytes: &mut dyn Iterator<Item = &[u8]>) -> Result<u64> {
        let failed = |e: std::io::Error| Error::io("compressing", e);
        let _ = (&failed, &bytes, len);
        // Codecs may compress differently when writes are cut differently
        // (miniz_oxide's fastest level does): they always get writes of
        // WRITE bytes, so the size depends on the bytes only, never on the
        // slices they come in.
        #[allow(unused_mut, unused_variables)] // (Unused without a codec feature.)
        let mut bytes = Rechunk::new(bytes);
        match self.codec {
            #[cfg(feature = "gzip")]
            Codec::Gzip => {
                use std::io::Write;
                let level = flate2::Compression::new(self.level);
                let mut z = flate2::write::GzEncoder::new(Count(0), level);
                while let Some(b) = bytes.next() {
                    z.write_all(b).map_err(failed)?;
                }
                Ok(z.finish().map_err(failed)?.0)
            }
            #[cfg(feature = "brotli")]
            Codec::Brotli => {
                use std::io::Write;
                // The window the brotli tool picks for a file of `len`
                // bytes: the smallest power of two that holds it, from
                // 2^10 to its default 2^24.
                let lgwin = (64 - len.saturating_sub(1).leading_zeros()).clamp(10, 24);
                let params = brotli::enc::BrotliEncoderParams {
                    quality: self.level as i32,
                    lgwin: lgwin as i32,
                    // As the tool, which knows the file's size: the hash
                    // tables fit it. Streamed without it, the first write
                    // stands for the size, and at level 5 the 64 MiB bench
                    // snapshot came out 44% larger than `brotli -q 5`.
                    size_hint: usize::try_from(len).unwrap_or(usize::MAX),
                    ..Default::default()
                };
                let mut z = brotli::CompressorWriter::with_params(Count(0), 64 << 10, &params);
                while let Some(b) = bytes.next() {
                    z.write_all(b).map_err(failed)?;
                }
                z.flush().map_err(failed)?;
                Ok(z.into_inner().0)
            }
            #[cfg(feature = "zstd")]
            Codec::Zstd => {
                use std::io::Write;
                let mut z = zstd::stream::write::Encoder::new(Count(0), self.level as i32)
                    .map_err(failed)?;
                // As `zstd FILE`: the size is known, so tables fit it.
                z.set_pledged_src_size(Some(len)).map_err(failed)?;
                z.include_contentsize(true).map_err(failed)?;
                while let Some(b) = bytes.next() {
                    z.write_all(b).map_err(failed)?;
                }
                Ok(z.finish().map_err(failed)?.0)
            }
            #[allow(unreachable_patterns)]
            codec => Err(Error::new(
                ErrorKind::InvalidCompression,
                format!(
                    "this build of segpack has no {codec} (cargo feature `{codec}`){}",
                    if codec == Codec::Zstd && cfg!(target_family = "wasm") {
                        "; the zstd codec is zstd's C library, not built for WebAssembly: use the native segpack for zstd"
                    } else {
                        ""
                    }
                ),
                None,
            )),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.codec, self.level)
    }
}

impl FromStr for Compression {
    type Err = Error;

    /// `gzip`, `brotli`, `zstd`, each optionally with `:LEVEL`.
    fn from_str(s: &str) -> Result<Self> {
        let (name, level) = match s.split_once(':') {
            Some((name, level)) => (name, Some(level)),
            None => (s, None),
        };
        let codec = match name {
            "gzip" => Codec::Gzip,
            "brotli" => Codec::Brotli,
            "zstd" => Codec::Zstd,
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidCompression,
                    format!(
                        "unknown codec `{name}`: expected gzip, brotli or zstd, optionally with :LEVEL (zstd:3)"
                    ),
                    None,
                ));
            }
        };
        match level {
            None => Ok(Compression::new(codec)),
            Some(level) => {
                let level = level.parse().map_err(|_| {
                    Error::new(
                        ErrorKind::InvalidCompression,
                        format!(
                            "`{level}` is not a {codec} level (a number, e.g. {codec}:{})",
                            codec.default_level()
                        ),
                        None,
                    )
                })?;
                Compression::with_level(codec, level)
            }
        }
    }
}

/// The size of every write a codec gets but the last.
const WRITE: usize = 64 << 10;

/// Bytes in slices of [`WRITE`] bytes, whatever slices they came in.
struct Rechunk<'i, 'b> {
    inner: &'i mut dyn Iterator<Item = &'b [u8]>,
    pending: &'b [u8],
    buffer: Vec<u8>,
}

impl<'i, 'b> Rechunk<'i, 'b> {
    fn new(inner: &'i mut dyn Iterator<Item = &'b [u8]>) -> Self {
        Rechunk {
            inner,
            pending: &[],
            buffer: Vec::with_capacity(WRITE),
        }
    }

    /// The next write, or `None` at the end.
    #[allow(dead_code)]
    fn next(&mut self) -> Option<&[u8]> {
        self.buffer.clear();
        while self.buffer.len() < WRITE {
            if self.pending.is_empty() {
                match self.inner.next() {
                    Some(slice) => self.pending = slice,
                    None => break,
                }
            }
            // A whole write within one slice (most of a module's input) is
            // handed out as it is, not copied.
            if self.buffer.is_empty() && self.pending.len() >= WRITE {
                let (write, rest) = self.pending.split_at(WRITE);
                self.pending = rest;
                return Some(write);
            }
            let n = self.pending.len().min(WRITE - self.buffer.len());
            self.buffer.extend_from_slice(&self.pending[..n]);
            self.pending = &self.pending[n..];
        }
        (!self.buffer.is_empty()).then_some(&self.buffer[..])
    }
}

/// A writer that only counts what goes through it.
#[allow(dead_code)]
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Rechunk, WRITE};

    /// Whatever slices the bytes come in, the writes are the same: the
    /// bytes in order, `WRITE` at a time, the last one shorter.
    #[test]
    fn writes_are_cut_the_same_whatever_the_slices() {
        let bytes: Vec<u8> = (0..5 * WRITE + 123).map(|i| (i % 251) as u8).collect();
        let cuts: [&[usize]; 5] = [
            &[],
            &[1, 2, 3],
            &[WRITE],
            &[100, 100 + 3 * WRITE, 100 + 3 * WRITE + 1],
            &[WRITE - 1, 2 * WRITE + 7, 4 * WRITE],
        ];
        for cut in cuts {
            let mut slices = Vec::new();
            let mut from = 0;
            for &at in cut.iter().chain([&bytes.len()]) {
                slices.push(&bytes[from..at]);
                from = at;
            }
            let mut iter = slices.into_iter();
            let mut rechunk = Rechunk::new(&mut iter);
            let mut writes = Vec::new();
            while let Some(write) = rechunk.next() {
                writes.push(write.to_vec());
            }
            let lens: Vec<usize> = writes.iter().map(Vec::len).collect();
            assert_eq!(
                lens,
                [WRITE, WRITE, WRITE, WRITE, WRITE, 123],
                "cut at {cut:?}"
            );
            assert_eq!(writes.concat(), bytes, "cut at {cut:?}");
        }
    }
}
