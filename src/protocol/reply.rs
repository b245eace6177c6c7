//! Replies: finding frame boundaries in the upstream byte stream, and building the
//! few replies the proxy writes itself.
//!
//! The proxy never re-encodes what Redis sends: it only needs to know where each
//! reply ends, so the bytes can be handed to the client untouched. [`ReplyScanner`]
//! does that without allocating and resumes where it stopped, so a large aggregate
//! arriving in many reads is scanned once (a full decoder would rebuild it on every
//! read). Tests check it against redis-protocol's decoder.

use bytes::{BufMut, Bytes, BytesMut};

use super::{ProtocolError, find_crlf, parse_int};

/// Longest header line accepted from upstream.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Resumable scanner of one RESP2/RESP3 frame at the front of a buffer.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    /// Where the next element header starts.
    pos: usize,
    /// Elements still expected by each open aggregate, innermost last.
    stack: Vec<u64>,
}

impl ReplyScanner {
    /// Returns the length of the complete frame at the front of `buf`, or None if more
    /// bytes are needed. Between calls `buf` may only grow (the frame's prefix is kept).
    /// After `Some`, the scanner is ready for the next frame (at offset 0 of whatever
    /// buffer remains once the caller has removed the frame).
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        loop {
            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            let Some(end) = find_crlf(buf, self.pos + 1) else {
                if buf.len() - self.pos > MAX_LINE {
                    return Err(ProtocolError::new("reply header too long"));
                }
                return Ok(None);
            };
            let next = end + 2;
            match kind {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => self.pos = next,
                b'$' | b'!' | b'=' => {
                    let len = header(buf, self.pos, end)?;
                    if len < 0 {
                        self.pos = next;
                    } else {
                        let total = next + len as usize + 2;
                        if buf.len() < total {
                            return Ok(None);
                        }
                        self.pos = total;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = header(buf, self.pos, end)?;
                    self.pos = next;
                    if n > 0 {
                        let n = n as u64;
                        // A map holds pairs; an attribute is a map followed by the
                        // element it annotates.
                        self.stack.push(match kind {
                            b'%' => n * 2,
                            b'|' => n * 2 + 1,
                            _ => n,
                        });
                        continue;
                    }
                }
                other => {
                    return Err(ProtocolError(format!(
                        "unexpected reply type byte {other:#04x}"
                    )));
                }
            }
            if let Some(len) = self.element_done() {
                return Ok(Some(len));
            }
        }
    }

    /// Counts one finished element; returns the frame length when the frame is complete.
    fn element_done(&mut self) -> Option<usize> {
        while let Some(top) = self.stack.last_mut() {
            *top -= 1;
            if *top > 0 {
                return None;
            }
            self.stack.pop();
        }
        Some(std::mem::take(&mut self.pos))
    }
}

fn header(buf: &[u8], start: usize, end: usize) -> Result<i64, ProtocolError> {
    parse_int(&buf[start + 1..end])
        .filter(|&n| n >= -1)
        .ok_or_else(|| ProtocolError::new("invalid length in reply"))
}

/// The top-level frames of concatenated replies.
pub fn split_frames(buf: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = ReplyScanner::default().scan(&buf[at..]).ok()??;
        let frame = buf.slice(at..at + len);
        at += len;
        Some(frame)
    })
}

/// The elements of an array reply (`*n`), each as its own frame bytes.
pub fn array_elements(frame: &Bytes) -> Option<Vec<Bytes>> {
    if frame.first() != Some(&b'*') {
        return None;
    }
    let header = frame.iter().position(|&b| b == b'\n')? + 1;
    Some(split_frames(&frame.slice(header..)).collect())
}

/// True if the frame is a RESP3 push (`>`): out-of-band data, not a reply.
pub fn is_push(frame: &[u8]) -> bool {
    frame.first() == Some(&b'>')
}

/// The value of an integer reply (`:n`).
pub fn integer_value(frame: &[u8]) -> Option<i64> {
    let body = frame.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(body).ok()?.parse().ok()
}

/// True if the frame is an error reply (`-` or RESP3 `!`).
pub fn is_error(frame: &[u8]) -> bool {
    matches!(frame.first(), Some(b'-' | b'!'))
}

/// `-ERR <msg>` (or another prefix when `msg` starts with an upper-case code).
pub fn error(msg: &str) -> Bytes {
    let msg = msg.replace(['\r', '\n'], " ");
    let code_given = msg
        .split(' ')
        .next()
        .is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase()));
    if code_given {
        Bytes::from(format!("-{msg}\r\n"))
    } else {
        Bytes::from(format!("-ERR {msg}\r\n"))
    }
}

pub fn simple(s: &str) -> Bytes {
    Bytes::from(format!("+{s}\r\n"))
}

pub fn integer(n: i64) -> Bytes {
    Bytes::from(format!(":{n}\r\n"))
}

pub fn bulk(b: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(b.len() + 16);
    out.put_slice(format!("${}\r\n", b.len()).as_bytes());
    out.put_slice(b);
    out.put_slice(b"\r\n");
    out.freeze()
}

/// The null reply of the protocol in use.
pub fn null(resp3: bool) -> Bytes {
    Bytes::from_static(if resp3 { b"_\r\n" } else { b"$-1\r\n" })
}

pub const OK: &[u8] = b"+OK\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use redis_protocol::resp3::decode::complete::decode;

    fn scan_all(buf: &[u8]) -> Option<usize> {
        ReplyScanner::default().scan(buf).unwrap()
    }

    const FRAMES: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR wrong\r\n",
        b":42\r\n",
        b"$5\r\nhello\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
        b"%2\r\n+a\r\n:1\r\n+b\r\n*2\r\n:1\r\n:2\r\n",
        b"~2\r\n+a\r\n+b\r\n",
        b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
        b"_\r\n",
        b",3.14\r\n",
        b"#t\r\n",
        b"(12345678901234567890\r\n",
        b"!5\r\nerror\r\n",
        b"=7\r\ntxt:abc\r\n",
        b"|1\r\n+key\r\n+val\r\n:5\r\n",
        b"*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n",
    ];

    #[test]
    fn finds_whole_frames() {
        for f in FRAMES {
            assert_eq!(scan_all(f), Some(f.len()), "{}", String::from_utf8_lossy(f));
        }
    }

    #[test]
    fn agrees_with_redis_protocol_decoder() {
        // The attribute type is left out: redis-protocol attaches it differently.
        for f in FRAMES.iter().filter(|f| !f.contains(&b'|')) {
            // RESP2 nulls are not RESP3 frames; the RESP2 decoder takes them.
            let len = if f.ends_with(b"-1\r\n") {
                redis_protocol::resp2::decode::decode(f).unwrap().unwrap().1
            } else {
                decode(f).unwrap().unwrap().1
            };
            assert_eq!(scan_all(f), Some(len), "{}", String::from_utf8_lossy(f));
        }
    }

    #[test]
    fn every_prefix_is_incomplete_and_resumes() {
        for f in FRAMES {
            let mut s = ReplyScanner::default();
            for cut in 0..f.len() {
                assert_eq!(s.scan(&f[..cut]).unwrap(), None);
            }
            assert_eq!(s.scan(f).unwrap(), Some(f.len()));
        }
    }

    #[test]
    fn back_to_back_frames() {
        let mut s = ReplyScanner::default();
        let buf = b"+OK\r\n:1\r\n";
        assert_eq!(s.scan(buf).unwrap(), Some(5));
        assert_eq!(s.scan(&buf[5..]).unwrap(), Some(4));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(ReplyScanner::default().scan(b"?x\r\n").is_err());
        assert!(ReplyScanner::default().scan(b"$-7\r\n").is_err());
        assert!(ReplyScanner::default().scan(b"*x\r\n").is_err());
    }

    #[test]
    fn error_builder() {
        assert_eq!(&error("boom")[..], b"-ERR boom\r\n");
        assert_eq!(&error("NOPERM no")[..], b"-NOPERM no\r\n");
        assert_eq!(&error("a\r\nb")[..], b"-ERR a  b\r\n");
    }
}
