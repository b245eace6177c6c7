//! Client requests: RESP arrays of bulk strings and inline commands, with Redis's
//! limits and error texts.
//!
//! Redis accepts a narrower grammar from clients than RESP allows in replies (only
//! arrays of bulk strings, or an inline line), and answers violations with specific
//! errors; redis-protocol's general decoder would accept frames Redis refuses, so the
//! request side is parsed here. Parsing resumes where it stopped, so a large command
//! arriving in many reads is scanned once, and arguments are zero-copy slices of the
//! bytes read.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::{ProtocolError, find_crlf, parse_int};

/// One command as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `args[0]` is the command name, as sent.
    pub args: Vec<Bytes>,
    /// The command as a RESP array: the client's exact bytes, or the encoding of an
    /// inline command.
    pub raw: Bytes,
}

impl Request {
    /// Builds a request from arguments (proxy-generated commands).
    pub fn from_args<I, A>(args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Bytes>,
    {
        let args: Vec<Bytes> = args.into_iter().map(Into::into).collect();
        let raw = encode_command(&args);
        Self { args, raw }
    }

    pub fn name(&self) -> &[u8] {
        self.args.first().map_or(&[][..], |a| &a[..])
    }
}

/// Encodes arguments as a RESP array of bulk strings.
pub fn encode_command(args: &[Bytes]) -> Bytes {
    let len: usize = args.iter().map(|a| a.len() + 16).sum::<usize>() + 16;
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.put_slice(format!("${}\r\n", a.len()).as_bytes());
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
    out.freeze()
}

/// Size limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bulk_len: usize,
    pub max_args: usize,
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// Longest `*<n>` or `$<n>` header line Redis accepts before giving up.
const MAX_HEADER_LINE: usize = 64 * 1024;

/// Incremental request parser; keep one per connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    limits: Limits,
    /// Bytes of the current frame already scanned.
    pos: usize,
    /// Arguments still expected in the current array (None before its header).
    remaining: Option<usize>,
    ranges: Vec<Range<usize>>,
    /// How far the line being read (an inline command, a `*` or `$` header) was
    /// searched for its end: the next read resumes there, so a line arriving in many
    /// small reads is scanned once, not once per read (which let a client that
    /// sends 64 KiB one byte at a time hold its event loop for a second or more).
    scanned: usize,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Takes the next complete request off the front of `buf`. `Ok(None)`: more bytes
    /// are needed (and `buf` is kept as is). Empty commands (`*0`, blank lines) are
    /// skipped, as Redis does.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            let parsed = if buf[0] == b'*' {
                self.multibulk(buf)?
            } else {
                self.inline(buf)?
            };
            match parsed {
                Parsed::Incomplete => return Ok(None),
                Parsed::Skip(n) => {
                    let _ = buf.split_to(n);
                }
                Parsed::Done(req) => return Ok(Some(req)),
            }
        }
    }

    fn multibulk(&mut self, buf: &mut BytesMut) -> Result<Parsed, ProtocolError> {
        if self.remaining.is_none() {
            let Some(end) = self.line_end(buf, 1) else {
                if buf.len() > MAX_HEADER_LINE {
                    return Err(ProtocolError::new("too big mbulk count string"));
                }
                return Ok(Parsed::Incomplete);
            };
            let n = parse_int(&buf[1..end])
                .filter(|&n| n <= self.limits.max_args as i64)
                .ok_or_else(|| ProtocolError::new("invalid multibulk length"))?;
            if n <= 0 {
                return Ok(Parsed::Skip(end + 2));
            }
            self.pos = end + 2;
            self.remaining = Some(n as usize);
            self.ranges.clear();
            self.ranges.reserve((n as usize).min(1024));
        }
        while self.remaining != Some(0) {
            let Some(arg) = self.bulk(buf)? else {
                return Ok(Parsed::Incomplete);
            };
            self.ranges.push(arg);
            self.remaining = self.remaining.map(|r| r - 1);
        }
        let raw = buf.split_to(self.pos).freeze();
        let args = self.ranges.iter().map(|r| raw.slice(r.clone())).collect();
        self.pos = 0;
        self.remaining = None;
        Ok(Parsed::Done(Request { args, raw }))
    }

    /// One `$<len>\r\n<data>\r\n` at `self.pos`; advances past it when complete.
    fn bulk(&mut self, buf: &[u8]) -> Result<Option<Range<usize>>, ProtocolError> {
        let Some(&first) = buf.get(self.pos) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtocolError(format!(
                "expected '$', got '{}'",
                char::from(first)
            )));
        }
        let Some(end) = self.line_end(buf, self.pos + 1) else {
            if buf.len() - self.pos > MAX_HEADER_LINE {
                return Err(ProtocolError::new("too big bulk count string"));
            }
            return Ok(None);
        };
        let len = parse_int(&buf[self.pos + 1..end])
            .filter(|&n| n >= 0 && n as u64 <= self.limits.max_bulk_len as u64)
            .ok_or_else(|| ProtocolError::new("invalid bulk length"))? as usize;
        let start = end + 2;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        // Byte by byte: a slice compare would call memcmp (see `protocol::same`).
        if buf[start + len] != b'\r' || buf[start + len + 1] != b'\n' {
            // Redis trusts the length and would misparse; refusing is safer.
            return Err(ProtocolError::new("bulk string not terminated by CRLF"));
        }
        self.pos = start + len + 2;
        Ok(Some(start..start + len))
    }

    /// The `\r` of the CRLF ending the line whose content starts at `from`, resuming
    /// the search where the previous read of this line stopped.
    fn line_end(&mut self, buf: &[u8], from: usize) -> Option<usize> {
        // One byte back: a `\r` that ended the previous read may start the CRLF.
        let end = find_crlf(buf, from.max(self.scanned.saturating_sub(1)));
        self.scanned = if end.is_some() { 0 } else { buf.len() };
        end
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Parsed, ProtocolError> {
        let from = self.scanned.min(buf.len());
        let nl = buf[from..].iter().position(|&b| b == b'\n');
        self.scanned = if nl.is_some() { 0 } else { buf.len() };
        let Some(nl) = nl.map(|i| from + i) else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::new("too big inline request"));
            }
            return Ok(Parsed::Incomplete);
        };
        if nl > self.limits.max_inline_len {
            return Err(ProtocolError::new("too big inline request"));
        }
        let line = buf.split_to(nl + 1);
        let line = line.strip_suffix(b"\n").unwrap_or(&line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let args =
            split_inline(line).ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
        if args.is_empty() {
            return Ok(Parsed::Skip(0));
        }
        if args.len() > self.limits.max_args {
            return Err(ProtocolError::new("invalid multibulk length"));
        }
        Ok(Parsed::Done(Request::from_args(args)))
    }
}

enum Parsed {
    Incomplete,
    /// Drop this many bytes: an empty command.
    Skip(usize),
    Done(Request),
}

/// Splits an inline command line like Redis's `sdssplitargs`: whitespace separates,
/// `"…"` takes escapes (`\n`, `\xHH`…), `'…'` takes only `\'`. None on bad quoting.
pub fn split_inline(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == line.len() {
            return Some(args);
        }
        let mut cur = Vec::new();
        match line[i] {
            b'"' => i = double_quoted(line, i + 1, &mut cur)?,
            b'\'' => i = single_quoted(line, i + 1, &mut cur)?,
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    cur.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(cur));
    }
}

/// Parses after an opening `"`; returns the index after the closing quote.
fn double_quoted(line: &[u8], mut i: usize, cur: &mut Vec<u8>) -> Option<usize> {
    loop {
        let &c = line.get(i)?;
        match c {
            b'"' => return closing(line, i),
            b'\\'
                if line.get(i + 1) == Some(&b'x')
                    && line.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                    && line.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
            {
                let hex = std::str::from_utf8(&line[i + 2..i + 4]).ok()?;
                cur.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            b'\\' if i + 1 < line.len() => {
                cur.push(match line[i + 1] {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
                i += 2;
            }
            _ => {
                cur.push(c);
                i += 1;
            }
        }
    }
}

fn single_quoted(line: &[u8], mut i: usize, cur: &mut Vec<u8>) -> Option<usize> {
    loop {
        let &c = line.get(i)?;
        match c {
            b'\'' => return closing(line, i),
            b'\\' if line.get(i + 1) == Some(&b'\'') => {
                cur.push(b'\'');
                i += 2;
            }
            _ => {
                cur.push(c);
                i += 1;
            }
        }
    }
}

/// A closing quote must be followed by whitespace or the end of the line.
fn closing(line: &[u8], i: usize) -> Option<usize> {
    match line.get(i + 1) {
        None => Some(i + 1),
        Some(c) if c.is_ascii_whitespace() => Some(i + 1),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = p.next(&mut buf)? {
            out.push(req.args.iter().map(|a| a.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_pipeline() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(
            cmds,
            vec![vec![b"GET".to_vec(), b"a".to_vec()], vec![b"PING".to_vec()]]
        );
    }

    #[test]
    fn raw_is_exact_client_bytes() {
        let mut p = RequestParser::new(Limits::default());
        let input = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
        let mut buf = BytesMut::from(&input[..]);
        let req = p.next(&mut buf).unwrap().unwrap();
        assert_eq!(&req.raw[..], &input[..]);
        assert!(buf.is_empty());
    }

    #[test]
    fn resumes_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in input.iter() {
            assert!(got.is_none());
            buf.put_u8(b);
            got = p.next(&mut buf).unwrap();
        }
        assert_eq!(got.unwrap().args[2], Bytes::from_static(b"hello"));
    }

    #[test]
    fn lines_arriving_in_small_reads_are_scanned_once() {
        // Found by fuzzing (scripts/fuzz request_parser): each read rescanned the line
        // from its start, so 64 KiB sent one byte at a time cost over a second of the
        // event loop. The search now resumes where it stopped.
        let inline = vec![b'a'; 60_000];
        let star = [&b"*"[..], &[b'1'; 60_000][..]].concat();
        let dollar = [&b"*1\r\n$"[..], &[b'1'; 60_000][..]].concat();
        for line in [inline, star, dollar] {
            let mut p = RequestParser::new(Limits::default());
            let mut buf = BytesMut::new();
            for (i, &b) in line.iter().enumerate() {
                buf.put_u8(b);
                assert!(p.next(&mut buf).unwrap().is_none());
                if i >= 5 {
                    assert_eq!(p.scanned, i + 1, "searched up to the end of what arrived");
                }
            }
        }
        // A CRLF split across reads is still found, and the next line starts afresh.
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nECHO x\n".iter() {
            buf.put_u8(b);
            while let Some(req) = p.next(&mut buf).unwrap() {
                got.push(req.args.concat());
            }
        }
        assert_eq!(
            got,
            vec![b"GETk".to_vec(), b"PING".to_vec(), b"ECHOx".to_vec()]
        );
    }

    #[test]
    fn binary_values_with_crlf() {
        let cmds = parse_all(b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\r\n\r\n").unwrap();
        assert_eq!(cmds[0][1], b"\r\n\r\n".to_vec());
    }

    #[test]
    fn empty_commands_skipped() {
        let cmds = parse_all(b"*0\r\n*-1\r\n\r\n\n  \r\nPING\r\n").unwrap();
        assert_eq!(cmds, vec![vec![b"PING".to_vec()]]);
    }

    #[test]
    fn redis_error_texts() {
        let err = |input: &[u8]| parse_all(input).unwrap_err().to_string();
        assert_eq!(err(b"*abc\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(
            err(b"*1\r\n:5\r\n"),
            "Protocol error: expected '$', got ':'"
        );
        assert_eq!(err(b"*1\r\n$-5\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(
            err(b"*1\r\n$1000000000\r\n"),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            err(b"SET k \"abc\r\n"),
            "Protocol error: unbalanced quotes in request"
        );
    }

    #[test]
    fn limits_apply_before_buffering() {
        let limits = Limits {
            max_bulk_len: 10,
            max_args: 2,
            max_inline_len: 8,
        };
        let mut p = RequestParser::new(limits);
        let mut buf = BytesMut::from(&b"*3\r\n"[..]);
        assert!(p.next(&mut buf).is_err());
        let mut p = RequestParser::new(limits);
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert!(p.next(&mut buf).is_err());
        let mut p = RequestParser::new(limits);
        let mut buf = BytesMut::from(&b"PINGPINGPING"[..]);
        assert_eq!(
            p.next(&mut buf).unwrap_err().to_string(),
            "Protocol error: too big inline request"
        );
    }

    #[test]
    fn inline_quoting_like_redis() {
        let cmds = parse_all(b"SET k \"a b\\n\\x41\" 'it\\'s'\r\n").unwrap();
        assert_eq!(
            cmds[0],
            vec![
                b"SET".to_vec(),
                b"k".to_vec(),
                b"a b\nA".to_vec(),
                b"it's".to_vec()
            ]
        );
        assert!(split_inline(b"\"ab\"c").is_none());
        assert_eq!(split_inline(b"").unwrap().len(), 0);
    }

    #[test]
    fn inline_is_reencoded_as_resp() {
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"GET a\n"[..]);
        let req = p.next(&mut buf).unwrap().unwrap();
        assert_eq!(&req.raw[..], b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n");
    }
}
