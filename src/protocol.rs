//! The wire: client requests in ([`request`]), replies framed and built ([`reply`]).

#[cfg(test)]
mod proptests;
pub mod reply;
pub mod request;

/// A framing violation. Redis answers `-ERR Protocol error: …` and closes the connection;
/// so does the proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Finds `\r\n` at or after `from`; returns the index of `\r`.
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let nl = i + buf[i..].iter().position(|&b| b == b'\n')?;
        if nl > from && buf[nl - 1] == b'\r' {
            return Some(nl - 1);
        }
        i = nl + 1;
    }
    None
}

/// Parses a signed decimal as RESP headers carry it (no `+`, no spaces).
pub(crate) fn parse_int(digits: &[u8]) -> Option<i64> {
    let (neg, digits) = match digits.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_search_skips_bare_newlines() {
        assert_eq!(find_crlf(b"ab\ncd\r\n", 0), Some(5));
        assert_eq!(find_crlf(b"\r\n", 0), Some(0));
        assert_eq!(find_crlf(b"abc", 0), None);
        assert_eq!(find_crlf(b"x\r\ny\r\n", 3), Some(4));
    }

    #[test]
    fn ints() {
        assert_eq!(parse_int(b"123"), Some(123));
        assert_eq!(parse_int(b"-1"), Some(-1));
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"-"), None);
        assert_eq!(parse_int(b"1a"), None);
        assert_eq!(parse_int(b"9999999999999999999999"), None);
    }
}
