//! Values stored compressed: the envelope format, the codecs, and byte counters.
//!
//! A value written to a namespace with `compress = "zstd" | "lz4"` is stored as an
//! envelope when it is at least `compress_min_size` long and compressing it saves
//! space. A value that would be taken for an envelope (it starts with [`PREFIX`]) is
//! stored in an envelope too, as it is (codec `raw`), whatever its size; every other
//! value is stored exactly as the client sent it. Reads remove the envelope (see
//! [`reply`]); in-place changes of an enveloped value are refused, or made on the
//! value inside a raw envelope, by a script that checks the header inside Redis (see
//! [`guard`]).
//!
//! # Envelope (format version 1)
//!
//! ```text
//! offset  size  field
//!  0      4     magic            FE 52 53 50   ("\xFERSP")
//!  4      1     format version   01
//!  5      1     codec            00 raw, 01 zstd, 02 lz4 (block format)
//!  6      4     dictionary id    u32 little endian; 0 = none
//! 10      4     original length  u32 little endian
//! 14      2     header check     Fletcher-16 of bytes 0..14 (sum1, then sum2)
//! 16      …     payload          raw: the value itself; zstd: one frame (content
//!                                size and checksum included); lz4: one block
//! ```
//!
//! `0xFE` never starts UTF-8 text, JSON, a pickle (`0x80`), zlib (`0x78`), gzip
//! (`0x1F`), a zstd frame (`0x28`) or an lz4 frame (`0x04`), so values the proxy did
//! not write (data from before compression was enabled, values an application
//! compressed itself) are read back as stored.
//!
//! # Stored bytes are untrusted
//!
//! Anyone who can write to Redis can store anything under a key of a compressing
//! namespace, and the header check is no secret. So a stored value that starts with
//! the magic is the proxy's, and must be a valid envelope: one that is not (damaged,
//! cut short, a newer format version) is read as an error the client sees
//! ([`OpenError`], counted in `respite_compression_decode_errors_total`), never as
//! garbage or as the stored bytes. And opening one allocates no more than its payload
//! can produce (see [`open`]): the original length is capped at `server.max_bulk_len`
//! and checked against the codec's own framing before anything is allocated.

pub mod guard;
pub mod open;
pub mod reply;

use std::{
    cell::RefCell,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use bytes::Bytes;

pub use open::{Envelope, OpenError, open, open_into};
pub use reply::Restore;

/// The first bytes of every envelope: a stored value that starts with them is taken
/// for one.
pub const PREFIX: &[u8; 4] = b"\xFERSP";
/// The first bytes of every envelope this proxy writes: magic and format version.
pub const MAGIC: &[u8; 5] = b"\xFERSP\x01";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;
/// Values shorter than this are never compressed, whatever `compress_min_size` says:
/// numbers and short strings stay as they are, so counters keep working.
pub const MIN_WORTH: usize = 32;
/// zstd level when a namespace sets none: on JSON it stores within 1% of level 3 at
/// about 1.3 times the speed (`compress_load --codecs`).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
/// The zstd levels `compress_level` accepts (above 19 needs far more memory).
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=19;
/// The longest original an envelope may claim when no limit is configured: Redis's
/// default `proto-max-bulk-len`, as `server.max_bulk_len`.
pub const DEFAULT_MAX_LEN: usize = 512 * 1024 * 1024;

/// How an envelope's payload holds the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// The value itself: a value that would otherwise be taken for an envelope.
    Raw,
    Zstd,
    Lz4,
}

impl Codec {
    fn code(self) -> u8 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
            Codec::Lz4 => 2,
        }
    }

    fn of_code(code: u8) -> Option<Codec> {
        [Codec::Raw, Codec::Zstd, Codec::Lz4]
            .into_iter()
            .find(|c| c.code() == code)
    }
}

/// The codec a namespace stores its values with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    #[default]
    None,
    Zstd,
    Lz4,
}

impl Compress {
    pub fn as_str(self) -> &'static str {
        match self {
            Compress::None => "none",
            Compress::Zstd => "zstd",
            Compress::Lz4 => "lz4",
        }
    }

    /// The codec named as in `proxy.toml`.
    pub fn parse(name: &str) -> Option<Compress> {
        [Compress::None, Compress::Zstd, Compress::Lz4]
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

/// A consistent envelope header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub codec: Codec,
    pub dict_id: u32,
    pub original_len: usize,
}

/// Fletcher-16 over `bytes`: (sum1, sum2). The guard script computes the same.
fn fletcher16(bytes: &[u8]) -> (u8, u8) {
    let (mut s1, mut s2) = (0u32, 0u32);
    for &b in bytes {
        s1 = (s1 + u32::from(b)) % 255;
        s2 = (s2 + s1) % 255;
    }
    (s1 as u8, s2 as u8)
}

/// The header of `stored`: `Ok(None)` when it does not start with [`PREFIX`] (not an
/// envelope), an error when it does but the header is not one this proxy reads.
pub fn header(stored: &[u8]) -> Result<Option<Header>, OpenError> {
    if !stored.starts_with(PREFIX) {
        return Ok(None);
    }
    if stored.len() < HEADER_LEN {
        return Err(OpenError::Truncated(stored.len()));
    }
    let (s1, s2) = fletcher16(&stored[..14]);
    if stored[14] != s1 || stored[15] != s2 {
        return Err(OpenError::Check);
    }
    if stored[4] != MAGIC[4] {
        return Err(OpenError::Version(stored[4]));
    }
    let codec = Codec::of_code(stored[5]).ok_or(OpenError::Codec(stored[5]))?;
    let word = |at: usize| {
        u32::from_le_bytes([stored[at], stored[at + 1], stored[at + 2], stored[at + 3]])
    };
    Ok(Some(Header {
        codec,
        dict_id: word(6),
        original_len: word(10) as usize,
    }))
}

fn write_header(out: &mut [u8], codec: Codec, original_len: u32) {
    out[..5].copy_from_slice(MAGIC);
    out[5] = codec.code();
    out[6..10].copy_from_slice(&0u32.to_le_bytes());
    out[10..14].copy_from_slice(&original_len.to_le_bytes());
    let (s1, s2) = fletcher16(&out[..14]);
    out[14] = s1;
    out[15] = s2;
}

thread_local! {
    /// Contexts are reused: making one per value costs several times the compression
    /// of a small value. (level, context)
    static ZSTD_C: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// How `value` is stored in a namespace compressing with `codec`: its envelope, or
/// `None` when it is stored as it is (too short, too long for the format, or it does
/// not shrink, and it cannot be taken for an envelope).
pub fn pack(value: &[u8], codec: Compress, zstd_level: i32) -> Option<Vec<u8>> {
    compress(value, codec, zstd_level).or_else(|| protect(value))
}

/// The compressed envelope of `value`, when that is shorter.
fn compress(value: &[u8], codec: Compress, zstd_level: i32) -> Option<Vec<u8>> {
    if value.len() < MIN_WORTH {
        return None;
    }
    let original_len = u32::try_from(value.len()).ok()?;
    let (codec, payload_len, mut out) = match codec {
        Compress::None => return None,
        Compress::Zstd => {
            let mut out = vec![0u8; HEADER_LEN + zstd::zstd_safe::compress_bound(value.len())];
            let n = zstd_compress(value, zstd_level, &mut out[HEADER_LEN..])?;
            (Codec::Zstd, n, out)
        }
        Compress::Lz4 => {
            let bound = lz4_flex::block::get_maximum_output_size(value.len());
            let mut out = vec![0u8; HEADER_LEN + bound];
            let n = lz4_flex::block::compress_into(value, &mut out[HEADER_LEN..]).ok()?;
            (Codec::Lz4, n, out)
        }
    };
    if HEADER_LEN + payload_len >= value.len() {
        return None;
    }
    out.truncate(HEADER_LEN + payload_len);
    write_header(&mut out, codec, original_len);
    Some(out)
}

/// `value` in a raw envelope when a read would take it for an envelope (it starts
/// with [`PREFIX`]); `None` for any other value, stored as it is. Values of 4 GiB or
/// more do not fit the format and are stored as they are.
pub fn protect(value: &[u8]) -> Option<Vec<u8>> {
    if !value.starts_with(PREFIX) {
        return None;
    }
    let original_len = u32::try_from(value.len()).ok()?;
    let mut out = vec![0u8; HEADER_LEN];
    write_header(&mut out, Codec::Raw, original_len);
    out.extend_from_slice(value);
    Some(out)
}

fn zstd_compress(value: &[u8], level: i32, out: &mut [u8]) -> Option<usize> {
    ZSTD_C.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(l, _)| *l != level) {
            let mut c = zstd::bulk::Compressor::new(level).ok()?;
            c.include_checksum(true).ok()?;
            *cell = Some((level, c));
        }
        let (_, c) = cell.as_mut()?;
        c.compress_to_buffer(value, out).ok()
    })
}

/// Why stored values could not be opened, as the `reason` label of
/// `respite_compression_decode_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The envelope claims more than `server.max_bulk_len`.
    TooLarge,
    /// A format version, codec or dictionary this proxy does not have.
    Unsupported,
    /// Damaged: the header check, the codec's framing or the payload is wrong.
    Corrupt,
}

impl Failure {
    pub const ALL: [Failure; 3] = [Failure::TooLarge, Failure::Unsupported, Failure::Corrupt];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::TooLarge => "too_large",
            Failure::Unsupported => "unsupported",
            Failure::Corrupt => "corrupt",
        }
    }
}

/// Stored values that could not be opened, by [`Failure`].
#[derive(Debug, Default)]
pub struct Failures([AtomicU64; 3]);

impl Failures {
    pub fn get(&self, failure: Failure) -> u64 {
        self.0[failure as usize].load(Relaxed)
    }

    /// Counts one; returns how many values failed so far, all reasons.
    fn add(&self, failure: Failure) -> u64 {
        self.0[failure as usize].fetch_add(1, Relaxed);
        Failure::ALL.iter().map(|&f| self.get(f)).sum()
    }
}

/// Opens stored values for one proxy: the longest original an envelope may claim
/// (`server.max_bulk_len`), and where values that fail to open are counted.
#[derive(Debug, Clone)]
pub struct Opener {
    max_len: usize,
    failures: Arc<Failures>,
}

impl Default for Opener {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LEN, Arc::default())
    }
}

impl Opener {
    pub fn new(max_len: usize, failures: Arc<Failures>) -> Self {
        Self { max_len, failures }
    }

    /// Where values that failed to open are counted.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// [`open::parse`] under this opener's limit.
    pub fn parse<'a>(&self, stored: &'a [u8]) -> Result<Option<Envelope<'a>>, OpenError> {
        open::parse(stored, self.max_len)
    }

    /// The error reply for a stored value that failed to open, counted (and logged
    /// at 1, 2, 4, 8… failures, so damaged data shows in the log without flooding it).
    pub fn refuse(&self, e: &OpenError) -> Bytes {
        let n = self.failures.add(e.failure());
        if n.is_power_of_two() {
            tracing::warn!(error = %e, failures = n, "a stored value starts like a compression envelope but cannot be opened: the client got an error");
        }
        // The codec's message is the only text not ours: keep the frame one line.
        let text = format!("respite: stored value could not be decoded: {e}");
        Bytes::from(format!("-ERR {}\r\n", text.replace(['\r', '\n'], " ")))
    }
}

#[cfg(test)]
mod tests;
