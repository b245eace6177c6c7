//! Values stored compressed: the envelope format, the codecs, and byte counters.
//!
//! A value written to a namespace with `compress = "zstd" | "lz4"` is stored as an
//! envelope when it is at least `compress_min_size` long and compressing it saves
//! space; every other value is stored exactly as the client sent it. Reads remove the
//! envelope (see [`reply`]); in-place changes of an enveloped value are refused by a
//! script that checks the header inside Redis (see [`guard`]).
//!
//! # Envelope (format version 1)
//!
//! ```text
//! offset  size  field
//!  0      4     magic            FE 52 53 50   ("\xFERSP")
//!  4      1     format version   01
//!  5      1     codec            01 zstd, 02 lz4 (block format)
//!  6      4     dictionary id    u32 little endian; 0 = none
//! 10      4     original length  u32 little endian
//! 14      2     header check     Fletcher-16 of bytes 0..14 (sum1, then sum2)
//! 16      …     payload          a zstd frame (content size and checksum included)
//!                                or an lz4 block
//! ```
//!
//! `0xFE` never starts UTF-8 text, JSON, a pickle (`0x80`), zlib (`0x78`), gzip
//! (`0x1F`), a zstd frame (`0x28`) or an lz4 frame (`0x04`). A stored value is taken
//! for an envelope only if its header is consistent (magic, version, codec, check)
//! and its payload decodes to exactly the original length; anything else (data
//! written before compression was enabled, by other clients, or that happens to
//! start with the magic) is "not ours" and read back as stored.

pub mod guard;
pub mod reply;

use std::cell::RefCell;

pub use reply::Restore;

/// The first bytes of every envelope: magic and format version.
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

const CODEC_ZSTD: u8 = 1;
const CODEC_LZ4: u8 = 2;

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
    pub codec: Compress,
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

/// The header of `stored` if it starts like an envelope and the header is consistent.
pub fn header(stored: &[u8]) -> Option<Header> {
    if stored.len() < HEADER_LEN || !stored.starts_with(MAGIC) {
        return None;
    }
    let (s1, s2) = fletcher16(&stored[..14]);
    if stored[14] != s1 || stored[15] != s2 {
        return None;
    }
    let codec = match stored[5] {
        CODEC_ZSTD => Compress::Zstd,
        CODEC_LZ4 => Compress::Lz4,
        _ => return None,
    };
    let word = |at: usize| u32::from_le_bytes(stored[at..at + 4].try_into().expect("4 bytes"));
    Some(Header {
        codec,
        dict_id: word(6),
        original_len: word(10) as usize,
    })
}

fn write_header(out: &mut [u8], codec: u8, original_len: u32) {
    out[..5].copy_from_slice(MAGIC);
    out[5] = codec;
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
    static ZSTD_D: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// The envelope for `value`, or `None` when it must be stored as it is (too short,
/// too long for the format, or it does not shrink).
pub fn pack(value: &[u8], codec: Compress, zstd_level: i32) -> Option<Vec<u8>> {
    if value.len() < MIN_WORTH {
        return None;
    }
    let original_len = u32::try_from(value.len()).ok()?;
    let (code, payload_len, mut out) = match codec {
        Compress::None => return None,
        Compress::Zstd => {
            let mut out = vec![0u8; HEADER_LEN + zstd::zstd_safe::compress_bound(value.len())];
            let n = zstd_compress(value, zstd_level, &mut out[HEADER_LEN..])?;
            (CODEC_ZSTD, n, out)
        }
        Compress::Lz4 => {
            let bound = lz4_flex::block::get_maximum_output_size(value.len());
            let mut out = vec![0u8; HEADER_LEN + bound];
            let n = lz4_flex::block::compress_into(value, &mut out[HEADER_LEN..]).ok()?;
            (CODEC_LZ4, n, out)
        }
    };
    if HEADER_LEN + payload_len >= value.len() {
        return None;
    }
    out.truncate(HEADER_LEN + payload_len);
    write_header(&mut out, code, original_len);
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

/// Why a value that starts like an envelope was still read back as stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("envelope uses dictionary {0}, which this proxy does not have")]
    UnknownDictionary(u32),
    #[error("envelope payload does not decode: {0}")]
    Corrupt(String),
    #[error("envelope payload decodes to {got} bytes, header says {want}")]
    WrongLength { want: usize, got: usize },
}

/// Decodes the envelope `stored` into `out` (appended). `Ok(false)`: `stored` is not
/// an envelope. `Err`: its header looked right but the payload is not ours; `out` is
/// then left as it was and the caller keeps the stored bytes.
pub fn open_into(stored: &[u8], out: &mut Vec<u8>) -> Result<bool, OpenError> {
    let Some(h) = header(stored) else {
        return Ok(false);
    };
    if h.dict_id != 0 {
        return Err(OpenError::UnknownDictionary(h.dict_id));
    }
    let payload = &stored[HEADER_LEN..];
    let start = out.len();
    out.resize(start + h.original_len, 0);
    let decoded = match h.codec {
        Compress::Zstd => ZSTD_D.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(
                    zstd::bulk::Decompressor::new()
                        .map_err(|e| OpenError::Corrupt(e.to_string()))?,
                );
            }
            let d = cell.as_mut().expect("just made");
            d.decompress_to_buffer(payload, &mut out[start..])
                .map_err(|e| OpenError::Corrupt(e.to_string()))
        }),
        Compress::Lz4 => lz4_flex::block::decompress_into(payload, &mut out[start..])
            .map_err(|e| OpenError::Corrupt(e.to_string())),
        Compress::None => Ok(0),
    };
    match decoded {
        Ok(n) if n == h.original_len => Ok(true),
        Ok(n) => {
            out.truncate(start);
            Err(OpenError::WrongLength {
                want: h.original_len,
                got: n,
            })
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// The original bytes of `stored`, or `None` when it is not an envelope of ours
/// (logged when it looked like one).
pub fn open(stored: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match open_into(stored, &mut out) {
        Ok(true) => Some(out),
        Ok(false) => None,
        Err(e) => {
            warn_not_ours(&e);
            None
        }
    }
}

pub(crate) fn warn_not_ours(e: &OpenError) {
    tracing::warn!(error = %e, "value starts like a compression envelope but is not one: returned as stored");
}

#[cfg(test)]
mod tests;
