//! Opening an envelope read from Redis, without trusting it.
//!
//! Whoever wrote the stored bytes chose the header's original length, so it proves
//! nothing: allocating it up front let a 16-byte value claiming 4 GiB make every read
//! allocate and zero 4 GiB. Before anything is allocated, [`parse`] checks:
//! - the original length is at most the limit (`server.max_bulk_len`);
//! - raw: the payload is exactly that long;
//! - zstd: the payload is exactly one frame, its header states the same content
//!   size, and its blocks can produce at least that much (a raw or RLE block exactly
//!   its size, a compressed block at most the frame's block size), which bounds what
//!   a short payload can claim by what the format allows it to hold;
//! - lz4: walking the block's sequences (their lengths are in the clear) gives
//!   exactly the length the header states.
//!
//! Only then is the output reserved, and decoding checks the rest: zstd its content
//! checksum, lz4 its match offsets, both that exactly the stated length came out.
//!
//! [`header`] reads and checks the 16-byte header; [`Failure`] is how an [`OpenError`]
//! is counted.

use std::cell::RefCell;

use super::envelope::{Codec, HEADER_LEN, Header, MAGIC, PREFIX, fletcher16};

/// Why a stored value that starts like an envelope cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("envelope of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    Truncated(usize),
    #[error("envelope header check does not match")]
    Check,
    #[error("envelope format version {0} is not one this respite reads (1)")]
    Version(u8),
    #[error("envelope codec {0} is not one this respite knows")]
    Codec(u8),
    #[error("envelope uses dictionary {0}, which this respite does not have")]
    Dictionary(u32),
    #[error("envelope claims {len} bytes, more than server.max_bulk_len ({max})")]
    TooLarge { len: usize, max: usize },
    #[error("{codec} payload framing is wrong: {what}")]
    Frame { codec: &'static str, what: String },
    #[error("{codec} payload does not decode: {what}")]
    Corrupt { codec: &'static str, what: String },
    #[error("payload holds {got} bytes, header says {want}")]
    WrongLength { want: usize, got: usize },
}

impl OpenError {
    pub fn failure(&self) -> Failure {
        match self {
            OpenError::TooLarge { .. } => Failure::TooLarge,
            OpenError::Version(_) | OpenError::Codec(_) | OpenError::Dictionary(_) => {
                Failure::Unsupported
            }
            _ => Failure::Corrupt,
        }
    }
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

fn frame(codec: &'static str, what: impl Into<String>) -> OpenError {
    OpenError::Frame {
        codec,
        what: what.into(),
    }
}

/// An envelope whose header and codec framing agree on a length within the limit:
/// it may be allocated.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub header: Header,
    payload: &'a [u8],
}

/// The envelope `stored` holds: `Ok(None)` when it is not one (it does not start with
/// [`super::PREFIX`]), an error when it starts like one but is not valid or claims
/// more than `max_len` bytes. Allocates nothing.
pub fn parse(stored: &[u8], max_len: usize) -> Result<Option<Envelope<'_>>, OpenError> {
    let Some(header) = header(stored)? else {
        return Ok(None);
    };
    if header.dict_id != 0 {
        return Err(OpenError::Dictionary(header.dict_id));
    }
    let len = header.original_len;
    if len > max_len {
        return Err(OpenError::TooLarge { len, max: max_len });
    }
    let payload = &stored[HEADER_LEN..];
    match header.codec {
        Codec::Raw if payload.len() != len => {
            return Err(OpenError::WrongLength {
                want: len,
                got: payload.len(),
            });
        }
        Codec::Raw => {}
        Codec::Zstd => {
            let (content, bound) = zstd_frame(payload).map_err(|e| frame("zstd", e))?;
            if content != len as u64 {
                return Err(frame(
                    "zstd",
                    format!("frame content size {content}, header says {len}"),
                ));
            }
            if bound < content {
                return Err(frame(
                    "zstd",
                    format!("frame says {content} bytes but its blocks hold at most {bound}"),
                ));
            }
        }
        Codec::Lz4 => {
            let n = lz4_len(payload).map_err(|e| frame("lz4", e))?;
            if n != len as u64 {
                return Err(frame(
                    "lz4",
                    format!("block's sequences make {n} bytes, header says {len}"),
                ));
            }
        }
    }
    Ok(Some(Envelope { header, payload }))
}

thread_local! {
    /// Reused, like the compression context.
    static ZSTD_D: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

impl Envelope<'_> {
    /// The length of the value inside.
    pub fn original_len(&self) -> usize {
        self.header.original_len
    }

    /// Appends the value to `out` (reserving what `out` lacks for it). On error `out`
    /// is left as it was.
    pub fn decode_into(&self, out: &mut Vec<u8>) -> Result<(), OpenError> {
        let (start, want) = (out.len(), self.original_len());
        let decoded = match self.header.codec {
            Codec::Raw => {
                out.extend_from_slice(self.payload);
                Ok(want)
            }
            Codec::Zstd => self.zstd_into(out),
            Codec::Lz4 => {
                // The walk in `parse` proved the block makes exactly `want` bytes.
                out.resize(start + want, 0);
                lz4_flex::block::decompress_into(self.payload, &mut out[start..]).map_err(|e| {
                    OpenError::Corrupt {
                        codec: "lz4",
                        what: e.to_string(),
                    }
                })
            }
        };
        match decoded {
            Ok(got) if got == want && out.len() == start + want => Ok(()),
            Ok(got) => {
                out.truncate(start);
                Err(OpenError::WrongLength { want, got })
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Decodes into `out`'s spare capacity: the pages of what is reserved and never
    /// written are never touched.
    fn zstd_into(&self, out: &mut Vec<u8>) -> Result<usize, OpenError> {
        let corrupt = |e: std::io::Error| OpenError::Corrupt {
            codec: "zstd",
            what: e.to_string(),
        };
        let start = out.len();
        out.reserve_exact(self.original_len());
        ZSTD_D.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(zstd::bulk::Decompressor::new().map_err(corrupt)?);
            }
            let Some(d) = cell.as_mut() else {
                unreachable!("just made")
            };
            let mut at = std::io::Cursor::new(&mut *out);
            at.set_position(start as u64);
            d.decompress_to_buffer(self.payload, &mut at)
                .map_err(corrupt)
        })
    }
}

/// Opens `stored` into `out` (appended) under the limit `max_len`. `Ok(false)`: it is
/// not an envelope (the caller keeps the stored bytes). On error `out` is left as it
/// was.
pub fn open_into(stored: &[u8], out: &mut Vec<u8>, max_len: usize) -> Result<bool, OpenError> {
    match parse(stored, max_len)? {
        Some(envelope) => envelope.decode_into(out).map(|()| true),
        None => Ok(false),
    }
}

/// The value inside `stored`, `None` when it is not an envelope.
pub fn open(stored: &[u8], max_len: usize) -> Result<Option<Vec<u8>>, OpenError> {
    let Some(envelope) = parse(stored, max_len)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(envelope.original_len());
    envelope.decode_into(&mut out)?;
    Ok(Some(out))
}

/// The largest block of a zstd frame (the format's `Block_Maximum_Size` cap).
const ZSTD_BLOCK_MAX: u64 = 128 * 1024;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The little-endian number in `bytes` (at most 8).
fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |n, &b| (n << 8) | u64::from(b))
}

/// A zstd frame's stated content size, and the most its blocks can produce; the
/// frame must fill `p` exactly, state its content size and need no dictionary
/// (RFC 8878, 3.1.1).
fn zstd_frame(p: &[u8]) -> Result<(u64, u64), String> {
    let short = || "frame cut short".to_owned();
    if p.get(..4) != Some(&ZSTD_MAGIC[..]) {
        return Err("not a zstd frame".into());
    }
    let descriptor = *p.get(4).ok_or_else(short)?;
    if descriptor & 0x08 != 0 {
        return Err("reserved bit set".into());
    }
    let single_segment = descriptor & 0x20 != 0;
    let mut at = 5;
    let mut window = 0;
    if !single_segment {
        let w = *p.get(at).ok_or_else(short)?;
        let log = 10 + u32::from(w >> 3);
        let base = 1u64 << log;
        window = base + (base / 8) * u64::from(w & 7);
        at += 1;
    }
    let dict_len = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let dict = le(p.get(at..at + dict_len).ok_or_else(short)?);
    if dict != 0 {
        return Err(format!("frame needs dictionary {dict}"));
    }
    at += dict_len;
    let size_len = match descriptor >> 6 {
        0 if single_segment => 1,
        0 => return Err("frame does not state its content size".into()),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let mut content = le(p.get(at..at + size_len).ok_or_else(short)?);
    if size_len == 2 {
        content += 256;
    }
    at += size_len;
    if single_segment {
        window = content;
    }
    let bound = zstd_blocks(p, &mut at, window.min(ZSTD_BLOCK_MAX))?;
    if descriptor & 0x04 != 0 {
        at += 4; // content checksum
    }
    match at.cmp(&p.len()) {
        std::cmp::Ordering::Equal => Ok((content, bound)),
        std::cmp::Ordering::Greater => Err(short()),
        std::cmp::Ordering::Less => Err(format!("{} bytes after the frame", p.len() - at)),
    }
}

/// Walks a zstd frame's blocks from `at` (left past the last one): the most they
/// can produce, each at most `block_max`.
fn zstd_blocks(p: &[u8], at: &mut usize, block_max: u64) -> Result<u64, String> {
    let short = || "frame cut short".to_owned();
    let mut bound = 0u64;
    loop {
        let h = le(p.get(*at..*at + 3).ok_or_else(short)?);
        *at += 3;
        let size = h >> 3;
        if size > block_max {
            return Err(format!("block of {size} bytes, more than {block_max}"));
        }
        let (takes, makes) = match (h >> 1) & 3 {
            0 => (size, size),      // raw
            1 => (1, size),         // RLE: one byte, repeated
            2 => (size, block_max), // compressed
            _ => return Err("reserved block type".into()),
        };
        *at = at
            .checked_add(takes as usize)
            .filter(|&end| end <= p.len())
            .ok_or_else(short)?;
        bound = bound.saturating_add(makes);
        if h & 1 == 1 {
            return Ok(bound);
        }
    }
}

/// The length an lz4 block decodes to, from its sequences' literal and match lengths
/// (the lz4 block format); an error when the block is cut short or a match would
/// reach before the start.
fn lz4_len(p: &[u8]) -> Result<u64, String> {
    let short = || "block cut short".to_owned();
    // A length continued in bytes of 255, ended by one below.
    let more = |at: &mut usize| -> Result<u64, String> {
        let mut n = 0u64;
        loop {
            let b = *p.get(*at).ok_or_else(short)?;
            *at += 1;
            n += u64::from(b);
            if b != 255 {
                return Ok(n);
            }
        }
    };
    let (mut at, mut len) = (0usize, 0u64);
    loop {
        let token = *p.get(at).ok_or_else(short)?;
        at += 1;
        let mut literals = u64::from(token >> 4);
        if literals == 15 {
            literals += more(&mut at)?;
        }
        at = usize::try_from(literals)
            .ok()
            .and_then(|n| at.checked_add(n))
            .filter(|&end| end <= p.len())
            .ok_or_else(short)?;
        len += literals;
        if at == p.len() {
            return Ok(len); // the last sequence has literals only
        }
        let offset = le(p.get(at..at + 2).ok_or_else(short)?);
        at += 2;
        if offset == 0 || offset > len {
            return Err(format!("match offset {offset} at output byte {len}"));
        }
        let mut matched = u64::from(token & 15);
        if matched == 15 {
            matched += more(&mut at)?;
        }
        len += matched + 4;
    }
}

#[cfg(test)]
mod tests;
