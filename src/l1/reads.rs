//! Which reads are cached, and what an entry is keyed by.

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::Cache;

/// A read the L1 may answer: the position of its key and the entry signature.
pub struct CacheableRead {
    pub key_index: usize,
    pub sig: Bytes,
}

/// The commands the table marks cacheable ([`Cache`]), sorted by name: their position
/// indexes the prebuilt signatures.
fn cached() -> &'static [(&'static str, Cache)] {
    static CACHED: std::sync::OnceLock<Vec<(&'static str, Cache)>> = std::sync::OnceLock::new();
    CACHED.get_or_init(|| {
        crate::command::commands()
            .iter()
            .filter(|spec| spec.cache != Cache::No)
            .map(|spec| (spec.name, spec.cache))
            .collect()
    })
}

/// Returns how to cache `args` if it is a cacheable read.
pub fn cacheable(args: &[Bytes], resp3: bool) -> Option<CacheableRead> {
    let name = args.first()?;
    if args.len() < 2 || name.len() > 16 {
        return None;
    }
    let mut lower = [0u8; 16];
    let lower = &mut lower[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let cached = cached();
    let found = cached
        .binary_search_by(|(c, _)| crate::protocol::compare(c.as_bytes(), lower))
        .ok()?;
    if cached[found].1 == Cache::OneKey && args.len() != 2 {
        return None;
    }
    let sig = if args.len() == 2 {
        bare_signatures()[found][usize::from(resp3)].clone()
    } else {
        signature(lower, &args[2..], resp3)
    };
    Some(CacheableRead { key_index: 1, sig })
}

/// The signature of `GET key` (also what MGET's per-key entries are stored under).
pub fn get_signature(resp3: bool) -> Bytes {
    let get = cached()
        .binary_search_by(|(c, _)| c.cmp(&"get"))
        .expect("get is cached");
    bare_signatures()[get][usize::from(resp3)].clone()
}

/// Signatures of the key-only forms (GET k, HGETALL k…), built once: the hot path
/// then allocates nothing for them.
fn bare_signatures() -> &'static [[Bytes; 2]] {
    static SIGS: std::sync::OnceLock<Vec<[Bytes; 2]>> = std::sync::OnceLock::new();
    SIGS.get_or_init(|| {
        cached()
            .iter()
            .map(|(c, _)| {
                [
                    signature(c.as_bytes(), &[], false),
                    signature(c.as_bytes(), &[], true),
                ]
            })
            .collect()
    })
}

/// Protocol, command and the non-key arguments, length-prefixed so no two differ only
/// in where one argument ends.
pub fn signature(lower_name: &[u8], rest: &[Bytes], resp3: bool) -> Bytes {
    let mut sig = BytesMut::with_capacity(
        1 + lower_name.len() + rest.iter().map(|a| a.len() + 4).sum::<usize>(),
    );
    sig.put_u8(if resp3 { b'3' } else { b'2' });
    sig.put_slice(lower_name);
    for a in rest {
        sig.put_u32(a.len() as u32);
        sig.put_slice(a);
    }
    sig.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_owned())).collect()
    }

    #[test]
    fn the_table_marks_these_reads_cacheable() {
        let names: Vec<&str> = cached().iter().map(|(name, _)| *name).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        let expected = "bitcount bitpos exists get getbit getrange hexists hget hgetall \
            hkeys hlen hmget hstrlen hvals lindex llen lpos lrange scard sismember smembers \
            smismember strlen substr type xlen xrange xrevrange zcard zcount zlexcount \
            zmscore zrange zrangebylex zrangebyscore zrank zrevrange zrevrangebylex \
            zrevrangebyscore zrevrank zscore";
        assert_eq!(names, expected.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn which_reads() {
        assert!(cacheable(&args("GET k"), false).is_some());
        assert!(cacheable(&args("hGetAll k"), false).is_some());
        assert!(cacheable(&args("EXISTS k"), false).is_some());
        assert!(cacheable(&args("EXISTS a b"), false).is_none());
        assert!(cacheable(&args("TTL k"), false).is_none());
        assert!(cacheable(&args("SET k v"), false).is_none());
        assert!(cacheable(&args("GET"), false).is_none());
        assert!(cacheable(&args("SRANDMEMBER k"), false).is_none());
    }

    #[test]
    fn bare_signatures_match_built_ones() {
        let fast = cacheable(&args("GET k"), true).unwrap().sig;
        assert_eq!(fast, signature(b"get", &[], true));
    }

    #[test]
    fn signatures_separate_protocols_and_args() {
        let a = cacheable(&args("LRANGE k 0 1"), false).unwrap().sig;
        let b = cacheable(&args("LRANGE k 0 1"), true).unwrap().sig;
        let c = cacheable(&args("LRANGE k 01 "), false).unwrap().sig;
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}
