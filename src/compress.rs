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

mod envelope;
mod opener;

pub use envelope::{
    Codec, Compress, DEFAULT_MAX_LEN, DEFAULT_ZSTD_LEVEL, HEADER_LEN, Header, MAGIC, MIN_WORTH,
    PREFIX, ZSTD_LEVELS, fletcher16, pack, protect,
};
pub use open::{Envelope, Failure, OpenError, header, open, open_into};
pub use opener::{Failures, Opener};
pub use reply::Restore;

#[cfg(test)]
mod tests;
