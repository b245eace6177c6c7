//! The wire: client requests in ([`request`]), replies framed and built ([`reply`]).

#[cfg(test)]
mod proptests;
pub mod reply;
pub mod request;
#[cfg(test)]
pub mod test_redis;

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

/// `a == b` without calling libc's `memcmp`: for the short keys and prefixes compared
/// on hot paths the call costs more than the compare, and glibc's AVX-512 `memcmp` is
/// pathologically slow (100+ ns for a few bytes) on some virtual machines, including
/// the development one.
#[inline]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8-byte chunk"));
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    if (&mut wa).zip(&mut wb).any(|(x, y)| word(x) != word(y)) {
        return false;
    }
    wa.remainder()
        .iter()
        .zip(wb.remainder())
        .all(|(x, y)| x == y)
}

/// `a.cmp(b)` without memcmp, for binary searches over short names.
#[inline]
pub fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
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
    fn same_bytes() {
        assert!(same(b"", b""));
        assert!(same(b"abcdefghij", b"abcdefghij"));
        assert!(!same(b"abcdefghij", b"abcdefghiJ"));
        assert!(!same(b"abcdefgh", b"abcdefgX"));
        assert!(!same(b"abc", b"abcd"));
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
