//! How each reply is compared: byte for byte, or normalised where Redis itself is
//! nondeterministic (ids, random members, remaining TTLs, hash-table order) or where a
//! namespace rule makes a documented difference (TTLs under `ttl`/`max_ttl` rules), or
//! not at all but checked by the read-your-writes model (shared keys).

use crate::support::resp::{self, Frame};

/// A register of the read-your-writes model: a shared string key, or one field of a
/// shared hash (the runner adds the db).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg {
    pub key: String,
    pub field: Option<String>,
}

/// What a command on shared keys does to the model's registers.
#[derive(Debug, Clone)]
pub enum Access {
    /// The reply (`at: None`) or element `at` of the array reply is the value read.
    Read { reg: Reg, at: Option<usize> },
    /// Sets the register (`None`: deletes it).
    Write { reg: Reg, value: Option<Vec<u8>> },
    /// A message published on a shared channel (the payload is unique).
    Publish { channel: String, payload: Vec<u8> },
}

#[derive(Debug, Clone, Default)]
pub enum Check {
    #[default]
    Exact,
    /// Aggregates sorted (recursively; maps by pair): sets and hash tables, whose order
    /// depends on each server's hash seed.
    Sorted,
    /// Only the shape: aggregate types and lengths, error texts; values and integers
    /// masked (random members, replies that depend on other clients).
    Shape,
    /// An integer that names a connection (CLIENT ID).
    Id,
    /// HELLO: the `id` field names a connection.
    Hello,
    /// TTL/PTTL/EXPIRETIME/PEXPIRETIME: -1 and -2 exact, a positive time masked (it
    /// counts down between the two runs).
    Ttl,
    /// The same under a `ttl`/`max_ttl` rule, where -1 and a time are both allowed
    /// (the rule gives keys TTLs Redis alone does not): only -2 (no key) is exact.
    TtlRuled,
    /// Shared keys and channels: shape compared, values checked by the model.
    Shared(Vec<Access>),
    /// DUMP: exact, but masked for hash-table sets and hashes (RDB types 2 and 4),
    /// serialised in the order of each server's hash seed. (A key's name does not fix
    /// its type: RENAME and COPY move values between names.)
    Dump,
}

/// One element of an EXEC reply, with the check of the command queued there.
pub fn norm_frame(check: &Check, frame: &Frame) -> Frame {
    if is_error(frame) {
        return frame.clone();
    }
    match check {
        Check::Exact => frame.clone(),
        Check::Sorted => frame.sorted(),
        Check::Shape | Check::Shared(_) => shape(frame),
        Check::Id => mask_int(frame, |_| true),
        Check::Hello => frame.masked("id"),
        Check::Ttl => mask_int(frame, |n| n >= 0),
        Check::TtlRuled => mask_int(frame, |n| n != -2),
        Check::Dump => match frame {
            Frame::Blob(t, Some(payload)) if matches!(payload.first(), Some(2 | 4)) => {
                Frame::Blob(*t, Some(b"<hash table>".to_vec()))
            }
            other => other.clone(),
        },
    }
}

pub fn is_error(frame: &Frame) -> bool {
    matches!(frame, Frame::Line(b'-', _) | Frame::Blob(b'!', _))
}

fn mask_int(frame: &Frame, mask: impl Fn(i64) -> bool) -> Frame {
    match frame {
        Frame::Line(b':', text) => {
            let n: i64 = std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            if mask(n) {
                Frame::Line(b':', b"<masked>".to_vec())
            } else {
                frame.clone()
            }
        }
        other => other.clone(),
    }
}

/// Values, nils and numbers masked; types, lengths, simple strings and errors kept.
fn shape(frame: &Frame) -> Frame {
    match frame {
        Frame::Line(b':' | b',' | b'(' | b'#' | b'_', _) | Frame::Blob(_, _) => {
            Frame::Line(b'$', b"<value>".to_vec())
        }
        Frame::Agg(t, Some(children)) => Frame::Agg(*t, Some(children.iter().map(shape).collect())),
        other => other.clone(),
    }
}

/// The value a read found: `Some(bytes)` for a bulk string, `None` for a nil; `Err`
/// for anything else (an error, a wrong type).
pub fn read_value(frame: &Frame, at: Option<usize>) -> Result<Option<Vec<u8>>, String> {
    let frame = match at {
        None => frame,
        Some(i) => frame
            .children()
            .get(i)
            .ok_or_else(|| format!("no element {i} in {}", resp::show(&frame.encode())))?,
    };
    match frame {
        Frame::Blob(b'$', data) => Ok(data.clone()),
        Frame::Line(b'_', _) => Ok(None),
        other => Err(format!("not a value: {}", resp::show(&other.encode()))),
    }
}

/// The confirmations of an UNSUBSCRIBE (PUNSUBSCRIBE, SUNSUBSCRIBE) of every channel
/// come in the order of Redis's hash table, which differs from server to server: the
/// names are compared sorted, the counts (which only go down) where they are.
pub fn sort_unsubscribes(frames: &mut [Frame]) {
    let mut names: Vec<Frame> = frames
        .iter()
        .filter_map(|f| f.children().get(1).cloned())
        .collect();
    if names.len() != frames.len() {
        return;
    }
    names.sort_by_key(Frame::encode);
    for (frame, name) in frames.iter_mut().zip(names) {
        if let Frame::Agg(_, Some(items)) = frame {
            items[1] = name;
        }
    }
}
