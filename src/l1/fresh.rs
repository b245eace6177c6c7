//! How long a filled entry stays fresh: the namespace's `l1_ttl`, cut short by the
//! key's own TTL in Redis.

use std::time::Duration;

/// The entry lifetime for a reply: min(l1_ttl, the key's remaining TTL in Redis).
/// `pttl` is Redis's PTTL reply: -1 no expiry, -2 no such key.
pub fn fresh_for(l1_ttl: Duration, pttl: i64, reply: &[u8]) -> Duration {
    match pttl {
        -1 => l1_ttl,
        // The key is absent: a reply that says so (nil, empty, 0, `none`) is true for
        // as long as nobody writes the key (tracking reports that); a value read just
        // before the key expired is not.
        -2 if describes_missing_key(reply) => l1_ttl,
        p if p > 0 => l1_ttl.min(Duration::from_millis(p as u64)),
        _ => Duration::ZERO,
    }
}

/// Replies a read of a missing key gets: nil, empty aggregates, 0, `none`, "", or an
/// array of nils or zeros (HMGET, SMISMEMBER, ZMSCORE).
pub fn describes_missing_key(reply: &[u8]) -> bool {
    const ATOMS: [&[u8]; 9] = [
        b"$-1\r\n",
        b"*-1\r\n",
        b"_\r\n",
        b"*0\r\n",
        b"%0\r\n",
        b"~0\r\n",
        b":0\r\n",
        b"+none\r\n",
        b"$0\r\n\r\n",
    ];
    if ATOMS.iter().any(|a| crate::protocol::same(a, reply)) {
        return true;
    }
    let Some(body) = reply
        .strip_prefix(b"*")
        .and_then(|r| r.iter().position(|&b| b == b'\n').map(|i| &r[i + 1..]))
    else {
        return false;
    };
    let mut rest = body;
    while !rest.is_empty() {
        match [&b"$-1\r\n"[..], b"_\r\n", b":0\r\n"]
            .into_iter()
            .find(|a| rest.starts_with(a))
        {
            Some(a) => rest = &rest[a.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_lifetime() {
        let s = Duration::from_secs(10);
        let v = b"$1\r\nv\r\n";
        assert_eq!(fresh_for(s, -1, v), s);
        assert_eq!(fresh_for(s, 2000, v), Duration::from_secs(2));
        assert_eq!(fresh_for(s, 60_000, v), s);
        assert_eq!(fresh_for(s, -2, b"$-1\r\n"), s);
        assert_eq!(fresh_for(s, -2, b"*0\r\n"), s);
        assert_eq!(fresh_for(s, -2, b"+none\r\n"), s);
        assert_eq!(fresh_for(s, -2, b"*2\r\n$-1\r\n$-1\r\n"), s);
        assert_eq!(
            fresh_for(s, -2, b"*2\r\n$-1\r\n$1\r\nx\r\n"),
            Duration::ZERO
        );
        assert_eq!(fresh_for(s, -2, v), Duration::ZERO);
        assert_eq!(fresh_for(s, 0, v), Duration::ZERO);
    }
}
