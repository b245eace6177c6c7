//! The envelope format: its constants and header, the codecs, and packing a value
//! into an envelope (see the module docs of [`super`] for the layout).

use std::cell::RefCell;

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

    pub(super) fn of_code(code: u8) -> Option<Codec> {
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
pub fn fletcher16(bytes: &[u8]) -> (u8, u8) {
    let (mut s1, mut s2) = (0u32, 0u32);
    for &b in bytes {
        s1 = (s1 + u32::from(b)) % 255;
        s2 = (s2 + s1) % 255;
    }
    (s1 as u8, s2 as u8)
}

pub(super) fn write_header(out: &mut [u8], codec: Codec, original_len: u32) {
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
