//! The key space: every client owns the keys and channels named after it (so its
//! replies do not depend on the others), and a few shared keys and channels are
//! written and read by all (checked by the model, not byte for byte).
//!
//! Own keys: `<ns>:c<client>:<kind><n>`; shared string registers `<ns>:sh:<n>`, shared
//! hash registers `<ns>:shh:<n>`; own channels `c<client>:ch<n>`, shard channels
//! `c<client>:sch<n>`; shared channels `sh:ch<n>`.

use rand::{Rng, rngs::StdRng, seq::IndexedRandom};

/// A namespace of the proxy configuration under test, as the generator sees it: the
/// rules decide which commands it may send there (see the module docs of `main.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Ns {
    pub prefix: &'static str,
    /// A `ttl` rule: keys get a TTL Redis alone would not give them.
    pub ttl: bool,
    /// A `max_ttl` rule: TTLs are clamped, PERSIST is refused.
    pub max_ttl: bool,
    /// `compress = "zstd"`: long values are stored as envelopes.
    pub compress: bool,
    pub l1: bool,
}

impl Ns {
    pub const fn plain(prefix: &'static str) -> Ns {
        Ns {
            prefix,
            ttl: false,
            max_ttl: false,
            compress: false,
            l1: false,
        }
    }

    /// TTL replies differ from Redis's here (a documented rule difference).
    pub fn ttl_ruled(&self) -> bool {
        self.ttl || self.max_ttl
    }
}

/// What a key holds. `Doc` and `HashDoc` keys are the only ones given long values, so
/// that in compressing namespaces in-place changes and raw-byte reads only meet keys
/// whose values are never stored as envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Doc,
    Hash,
    HashDoc,
    List,
    Set,
    Zset,
    Stream,
    Bits,
    Hll,
    Geo,
}

impl Kind {
    pub fn tag(self) -> &'static str {
        match self {
            Kind::Str => "s",
            Kind::Doc => "d",
            Kind::Hash => "h",
            Kind::HashDoc => "hd",
            Kind::List => "l",
            Kind::Set => "set",
            Kind::Zset => "z",
            Kind::Stream => "x",
            Kind::Bits => "b",
            Kind::Hll => "hll",
            Kind::Geo => "geo",
        }
    }

    /// Values of this kind may be long enough to be stored compressed.
    pub fn long_values(self) -> bool {
        matches!(self, Kind::Doc | Kind::HashDoc)
    }
}

/// Own keys per kind and namespace: few, so that commands meet existing keys.
pub const PER_KIND: usize = 3;
/// Shared registers per namespace (strings and hash fields each);
/// `RESPITE_FUZZ_SHARED_KEYS` changes it (1: every client on one hot key).
pub fn shared_keys() -> usize {
    crate::config::env("RESPITE_FUZZ_SHARED_KEYS")
        .unwrap_or(3)
        .max(1)
}
/// Dbs the generator selects among (SELECT, MOVE, COPY … DB).
pub const DBS: u32 = 3;

pub fn own_key(ns: &Ns, client: usize, kind: Kind, n: usize) -> String {
    format!("{}:c{client}:{}{n}", ns.prefix, kind.tag())
}

pub fn shared_key(ns: &Ns, n: usize) -> String {
    format!("{}:sh:{n}", ns.prefix)
}

pub fn shared_hash(ns: &Ns, n: usize) -> String {
    format!("{}:shh:{n}", ns.prefix)
}

/// Shared keys are invalidated (client tracking) by other clients' writes, at times
/// no run can reproduce: their invalidation pushes are not compared.
pub fn is_shared_key(key: &[u8]) -> bool {
    key.windows(4).any(|w| w == b":sh:") || key.windows(5).any(|w| w == b":shh:")
}

pub fn own_channel(client: usize, n: usize) -> String {
    format!("c{client}:ch{n}")
}

pub fn own_shard_channel(client: usize, n: usize) -> String {
    format!("c{client}:sch{n}")
}

/// Patterns that match only this client's own channels.
pub fn own_pattern(client: usize, n: usize) -> String {
    match n % 3 {
        0 => format!("c{client}:ch*"),
        1 => format!("c{client}:?h1"),
        _ => format!("c{client}:ch[02]"),
    }
}

pub const SHARED_CHANNELS: usize = 2;

pub fn shared_channel(n: usize) -> String {
    format!("sh:ch{n}")
}

/// The one shared pattern (matches every shared channel and no own one).
pub const SHARED_PATTERN: &str = "sh:ch*";

pub fn is_shared_channel(name: &[u8]) -> bool {
    name.starts_with(b"sh:")
}

/// A short value: numbers (so counters work), words, empty, binary, spaces. No value
/// starts with a NUL byte: SORT ALPHA compares with strcoll, which stops there, and
/// ties would come out in each server's hash-table order.
pub fn short_value(rng: &mut StdRng) -> Vec<u8> {
    const POOL: &[&[u8]] = &[
        b"0",
        b"1",
        b"7",
        b"-3",
        b"42",
        b"3.5",
        b"1e3",
        b"a",
        b"b",
        b"hello",
        b"",
        b"x y",
        b"\xfe\x00\xff\r\n",
        b"12345678901234567890",
        b"caf\xc3\xa9",
    ];
    POOL.choose(rng).expect("pool").to_vec()
}

/// A value long enough to be compressed (text that shrinks) or, one time in four,
/// bytes that do not shrink and so are stored as sent.
pub fn long_value(rng: &mut StdRng, tag: &str) -> Vec<u8> {
    if rng.random_ratio(1, 4) {
        let len = rng.random_range(40..120);
        return (0..len).map(|_| rng.random::<u8>()).collect();
    }
    let words = ["lorem", "ipsum", "dolor", "sit", "amet", "respite", "cache"];
    let mut text = format!("{tag}:");
    for _ in 0..rng.random_range(8..60) {
        text.push_str(words.choose(rng).expect("words"));
        text.push(' ');
    }
    text.into_bytes()
}

/// A value that starts like a compression envelope: a valid one (what the proxy would
/// store for some other value) or a broken header. Clients may write any bytes, and
/// must read back what they wrote.
pub fn envelope_lookalike(rng: &mut StdRng) -> Vec<u8> {
    // Repetitive, so that it shrinks and `pack` makes an envelope of it.
    let inner = format!(
        "inner {} {}",
        rng.random::<u32>(),
        "lorem ipsum ".repeat(20)
    )
    .into_bytes();
    if rng.random_bool(0.7)
        && let Some(packed) = respite::compress::pack(&inner, respite::policy::Compress::Zstd, 1)
    {
        return packed;
    }
    let mut v = b"\xFERSP\x01\x01\x00\x00\x00\x00\xff\xff\xff\xff\x00\x00".to_vec();
    v.extend_from_slice(&inner);
    v
}

/// Any value for a key of this kind.
pub fn value_for(rng: &mut StdRng, kind: Kind, tag: &str, lookalikes: bool) -> Vec<u8> {
    if kind.long_values() && rng.random_bool(0.6) {
        if lookalikes && rng.random_ratio(1, 4) {
            return envelope_lookalike(rng);
        }
        return long_value(rng, tag);
    }
    short_value(rng)
}

/// Redis's glob for the patterns used here (`*`, `?`, `[..]` without ranges).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            !text.is_empty()
                && rest[..close].contains(&text[0])
                && glob_match(&rest[close + 1..], &text[1..])
        }
        Some((&c, rest)) => text.first() == Some(&c) && glob_match(rest, &text[1..]),
    }
}
