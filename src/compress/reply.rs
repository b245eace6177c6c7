//! Removing envelopes from Redis's replies, so the client gets the reply Redis would
//! have sent had the values been stored as they were written.
//!
//! Only bulk strings that are envelopes change; every other frame (nil, errors,
//! numbers, values that are not envelopes) is passed on as Redis sent it, and a reply
//! with nothing to restore is returned without being copied. A value that starts like
//! an envelope but cannot be opened turns the whole reply into the error
//! [`Opener::refuse`] makes (inside EXEC, that command's element): the client never
//! gets those bytes as its value.

use bytes::{BufMut, Bytes, BytesMut};

use super::{open::OpenError, opener::Opener};
use crate::protocol::reply::split_frames;

/// Where a reply carries stored values, and how it becomes the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// A bulk string: GET, GETEX, GETDEL, GETSET, SET…GET, HGET.
    Value,
    /// An array of bulk strings: HMGET, HVALS.
    Values,
    /// MGET: the elements at these positions, ascending (keys of compressing
    /// namespaces).
    ValuesAt(Vec<usize>),
    /// Field/value pairs: HGETALL (RESP2 flat array, RESP3 map) and HRANDFIELD …
    /// WITHVALUES (RESP2 flat array, RESP3 array of two-element arrays).
    Pairs,
    /// STRLEN / HSTRLEN, sent as GET / HGET: the length of the original value.
    Len,
    /// GETRANGE / SUBSTR `start end`, sent as GET: the range of the original value.
    Range(i64, i64),
    /// A guarded change of a counter answered `{value after}`: the integer reply.
    Integer,
}

impl Restore {
    /// The client's reply for Redis's `frame`, values opened by `opener`.
    pub fn apply(&self, frame: Bytes, opener: &Opener) -> Bytes {
        let restored = match self {
            Restore::Value => value(frame, opener),
            Restore::Values => elements(frame, opener, |_| true),
            Restore::ValuesAt(at) => elements(frame, opener, |i| at.binary_search(&i).is_ok()),
            Restore::Pairs => pairs(frame, opener),
            Restore::Len => len(frame, opener),
            Restore::Range(start, end) => range(frame, *start, *end, opener),
            Restore::Integer => Ok(integer(frame)),
        };
        restored.unwrap_or_else(|e| opener.refuse(&e))
    }
}

/// The data of a bulk string frame (`$n\r\n…\r\n`), None for anything else.
fn bulk_data(frame: &[u8]) -> Option<&[u8]> {
    let rest = frame.strip_prefix(b"$")?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let n: usize = std::str::from_utf8(rest.get(..nl.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    rest.get(nl + 1..nl + 1 + n)
}

/// `data` as a bulk string frame; `data` written by `fill` into a buffer of `len`.
fn bulk_frame(len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut out = Vec::with_capacity(len + 16);
    out.put_slice(format!("${len}\r\n").as_bytes());
    fill(&mut out);
    out.put_slice(b"\r\n");
    Bytes::from(out)
}

/// The original value of an envelope in a bulk frame, decoded straight into the new
/// frame (allocated once its envelope is checked); None when the frame is not an
/// envelope.
fn opened(frame: &[u8], opener: &Opener) -> Result<Option<Bytes>, OpenError> {
    let Some(data) = bulk_data(frame) else {
        return Ok(None);
    };
    let Some(envelope) = opener.parse(data)? else {
        return Ok(None);
    };
    let len = envelope.original_len();
    let mut out = Vec::with_capacity(len + 16);
    out.put_slice(format!("${len}\r\n").as_bytes());
    envelope.decode_into(&mut out)?;
    out.put_slice(b"\r\n");
    Ok(Some(Bytes::from(out)))
}

fn value(frame: Bytes, opener: &Opener) -> Result<Bytes, OpenError> {
    Ok(opened(&frame, opener)?.unwrap_or(frame))
}

/// An aggregate header (`*n\r\n`, `%n\r\n`) and its element frames.
fn split_aggregate(frame: &Bytes) -> Option<(Bytes, Vec<Bytes>)> {
    if !matches!(frame.first(), Some(b'*' | b'%' | b'~')) {
        return None;
    }
    let header = frame.iter().position(|&b| b == b'\n')? + 1;
    let body = frame.slice(header..);
    Some((frame.slice(..header), split_frames(&body).collect()))
}

/// Rebuilds an aggregate with some elements replaced; the frame itself when none was.
fn rebuild(frame: Bytes, header: Bytes, parts: Vec<Bytes>, changed: bool) -> Bytes {
    if !changed {
        return frame;
    }
    let mut out =
        BytesMut::with_capacity(header.len() + parts.iter().map(Bytes::len).sum::<usize>());
    out.put_slice(&header);
    parts.iter().for_each(|p| out.put_slice(p));
    out.freeze()
}

/// Restores the elements `pick` selects (by position).
fn elements(
    frame: Bytes,
    opener: &Opener,
    pick: impl Fn(usize) -> bool,
) -> Result<Bytes, OpenError> {
    let Some((header, mut parts)) = split_aggregate(&frame) else {
        return Ok(frame);
    };
    let mut changed = false;
    for (i, part) in parts.iter_mut().enumerate() {
        if pick(i)
            && let Some(restored) = opened(part, opener)?
        {
            *part = restored;
            changed = true;
        }
    }
    Ok(rebuild(frame, header, parts, changed))
}

fn pairs(frame: Bytes, opener: &Opener) -> Result<Bytes, OpenError> {
    let Some((header, mut parts)) = split_aggregate(&frame) else {
        return Ok(frame);
    };
    let nested = parts.first().is_some_and(|p| p.first() == Some(&b'*'));
    if !nested {
        // Flat (RESP2) or a map (RESP3): every second element is a value.
        return elements(frame, opener, |i| i % 2 == 1);
    }
    let mut changed = false;
    for part in &mut parts {
        let restored = elements(part.clone(), opener, |i| i == 1)?;
        changed |= restored != *part;
        *part = restored;
    }
    Ok(rebuild(frame, header, parts, changed))
}

fn is_nil(frame: &[u8]) -> bool {
    matches!(frame, b"$-1\r\n" | b"_\r\n")
}

/// The value in a bulk frame, opened when it is an envelope.
fn original<'a>(data: &'a [u8], opener: &Opener) -> Result<std::borrow::Cow<'a, [u8]>, OpenError> {
    Ok(match super::open::open(data, opener.max_len())? {
        Some(original) => std::borrow::Cow::Owned(original),
        None => std::borrow::Cow::Borrowed(data),
    })
}

fn len(frame: Bytes, opener: &Opener) -> Result<Bytes, OpenError> {
    if is_nil(&frame) {
        return Ok(Bytes::from_static(b":0\r\n"));
    }
    let Some(data) = bulk_data(&frame) else {
        return Ok(frame); // an error (WRONGTYPE): the same for STRLEN
    };
    let n = original(data, opener)?.len();
    Ok(Bytes::from(format!(":{n}\r\n")))
}

fn range(frame: Bytes, start: i64, end: i64, opener: &Opener) -> Result<Bytes, OpenError> {
    if is_nil(&frame) {
        return Ok(Bytes::from_static(b"$0\r\n\r\n")); // GETRANGE of a missing key
    }
    let Some(data) = bulk_data(&frame) else {
        return Ok(frame);
    };
    let value = original(data, opener)?;
    let slice = getrange(&value, start, end);
    Ok(bulk_frame(slice.len(), |out| out.put_slice(slice)))
}

/// Redis's GETRANGE on `value` (t_string.c, getrangeCommand).
pub fn getrange(value: &[u8], mut start: i64, mut end: i64) -> &[u8] {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return &[];
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return &[];
    }
    &value[start as usize..=end as usize]
}

fn integer(frame: Bytes) -> Bytes {
    let Some(rest) = frame.strip_prefix(b"*1\r\n") else {
        return frame;
    };
    match bulk_data(rest) {
        Some(digits) if !digits.is_empty() && !digits.contains(&b'\r') => {
            let mut out = Vec::with_capacity(digits.len() + 3);
            out.put_u8(b':');
            out.put_slice(digits);
            out.put_slice(b"\r\n");
            Bytes::from(out)
        }
        _ => frame,
    }
}
