//! Strings, documents (long values that compressing namespaces store as envelopes),
//! hashes, bitmaps and HyperLogLogs on the client's own keys.

use rand::Rng;

use super::{Cmd, Gen};
use crate::{
    args,
    check::Check,
    keys::{self, Kind, Ns},
};

impl Gen<'_> {
    /// An expiry option of SET/GETEX: none, or a time far enough away that nothing
    /// expires during a run (both runs must see the same keys).
    pub(super) fn set_expiry(&mut self, ns: &Ns) -> Vec<Vec<u8>> {
        match self.rng.random_range(0..10) {
            0 => args!["EX", self.pick(&[1000, 5000, 10000])],
            1 => args!["PX", self.pick(&[1_000_000, 3_000_000])],
            2 => args!["EXAT", 4_102_444_800u64],
            3 => args!["PXAT", 4_102_444_800_123u64],
            // KEEPTTL on a new key under max_ttl: the `keepttl` family (issue 12 item 9).
            4 if !ns.max_ttl || self.on("keepttl") => args!["KEEPTTL"],
            5 => args!["EX", self.pick(&["0", "-5", "abc"])],
            _ => Vec::new(),
        }
    }

    fn set_command(&mut self, ns: &Ns, key: String, value: Vec<u8>) -> Cmd {
        let mut a = args!["SET", key, value];
        a.extend(self.set_expiry(ns));
        match self.rng.random_range(0..6) {
            0 => a.push(b"NX".to_vec()),
            1 => a.push(b"XX".to_vec()),
            _ => {}
        }
        if self.chance(0.2) {
            a.push(b"GET".to_vec());
        }
        Cmd::exact(a)
    }

    /// Reads and whole-value writes that every namespace restores and compresses.
    fn string_common(&mut self, ns: &Ns, kind: Kind) -> Cmd {
        let k = self.key(ns, kind);
        let lookalikes = self.on("lookalike");
        let v = keys::value_for(&mut self.rng, kind, &k, lookalikes);
        let other = self.key(ns, kind);
        let v2 = keys::value_for(&mut self.rng, kind, &other, lookalikes);
        match self.rng.random_range(0..16) {
            0..=3 => self.set_command(ns, k, v),
            4..=6 => Cmd::exact(args!["GET", k]),
            7 => Cmd::exact(args!["GETSET", k, v]),
            8 => Cmd::exact(args!["GETDEL", k]),
            9 => {
                let mut a = args!["GETEX", k];
                match self.rng.random_range(0..4) {
                    0 => a.extend(args!["EX", 1000]),
                    1 => a.extend(args!["PXAT", 4_102_444_800_000u64]),
                    2 if !ns.max_ttl => a.push(b"PERSIST".to_vec()),
                    _ => {}
                }
                Cmd::exact(a)
            }
            10 => Cmd::exact(args!["SETNX", k, v]),
            11 => Cmd::exact(args!["SETEX", k, self.pick(&[1000, 5000]), v]),
            12 => Cmd::exact(args!["PSETEX", k, 2_000_000, v]),
            13 => Cmd::exact(args!["MSET", k, v, other, v2]),
            14 => Cmd::exact(args!["MGET", k, other, self.key(ns, Kind::Str)]),
            _ => Cmd::exact(args!["MSETNX", k, v, other, v2]),
        }
    }

    pub fn strings(&mut self) -> Cmd {
        let ns = self.ns();
        if self.chance(0.4) {
            return self.string_common(&ns, Kind::Str);
        }
        let k = self.key(&ns, Kind::Str);
        let v = keys::short_value(&mut self.rng);
        let n = self.pick(&["1", "5", "-2", "0", "x", "9223372036854775807"]);
        match self.rng.random_range(0..13) {
            0 => Cmd::exact(args!["APPEND", k, v]),
            1 => Cmd::exact(args!["SETRANGE", k, self.rng.random_range(0..12), v]),
            2 => Cmd::exact(args![
                "GETRANGE",
                k,
                self.pick(&[0, 2, -3]),
                self.pick(&[-1, 3, 100])
            ]),
            3 => Cmd::exact(args!["SUBSTR", k, 0, self.pick(&[1, -1])]),
            4 => Cmd::exact(args!["STRLEN", k]),
            5 => Cmd::exact(args!["INCR", k]),
            6 => Cmd::exact(args!["INCRBY", k, n]),
            7 => Cmd::exact(args!["DECR", k]),
            8 => Cmd::exact(args!["DECRBY", k, n]),
            9 => Cmd::exact(args![
                "INCRBYFLOAT",
                k,
                self.pick(&["1.5", "-0.25", "1e3", "x"])
            ]),
            10 => {
                let other = self.key(&ns, Kind::Str);
                Cmd::exact(args!["LCS", k, other])
            }
            11 => Cmd::exact(args!["GET", k]),
            _ => self.string_common(&ns, Kind::Str),
        }
    }

    /// Long values (envelopes where the namespace compresses) and the commands that
    /// restore them; never in-place changes or raw-byte reads.
    pub fn docs(&mut self) -> Cmd {
        let ns = self.ns_preferring(|ns| ns.compress);
        if self.chance(0.5) {
            let cmd = self.string_common(&ns, Kind::Doc);
            if self.chance(0.3) {
                return cmd;
            }
            let k = self.key(&ns, Kind::Doc);
            return match self.rng.random_range(0..4) {
                0 => Cmd::exact(args!["STRLEN", k]),
                1 => Cmd::exact(args![
                    "GETRANGE",
                    k,
                    self.pick(&[0, 5, -10]),
                    self.pick(&[-1, 20])
                ]),
                2 => Cmd::exact(args!["SUBSTR", k, 2, 9]),
                _ => cmd,
            };
        }
        let k = self.key(&ns, Kind::HashDoc);
        let f = self.pick(&["f1", "f2", "f3"]);
        let lookalikes = self.on("lookalike");
        let v = keys::value_for(&mut self.rng, Kind::HashDoc, &k, lookalikes);
        match self.rng.random_range(0..12) {
            0..=2 => Cmd::exact(args!["HSET", k, f, v]),
            3 => Cmd::exact(args!["HMSET", k, f, v, "f4", "short"]),
            4 => Cmd::exact(args!["HSETNX", k, f, v]),
            5 | 6 => Cmd::exact(args!["HGET", k, f]),
            7 => Cmd::exact(args!["HMGET", k, f, "f2", "nope"]),
            8 => Cmd::new(args!["HGETALL", k], Check::Sorted),
            9 => Cmd::new(args!["HVALS", k], Check::Sorted),
            10 => Cmd::exact(args!["HSTRLEN", k, f]),
            _ => Cmd::new(
                args!["HRANDFIELD", k, self.pick(&[-3, 2]), "WITHVALUES"],
                Check::Shape,
            ),
        }
    }

    pub fn hashes(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.key(&ns, Kind::Hash);
        let f = self.pick(&["f1", "f2", "f3", "n"]);
        let v = keys::short_value(&mut self.rng);
        let hdel = self.renamed_if_on("HDEL");
        match self.rng.random_range(0..17) {
            0..=2 => Cmd::exact(args!["HSET", k, f, v, "f4", "x"]),
            3 | 4 => Cmd::exact(args!["HGET", k, f]),
            5 => Cmd::exact(args!["HMGET", k, f, "f4", "nope"]),
            6 => Cmd::new(args!["HGETALL", k], Check::Sorted),
            7 => Cmd::exact(args![hdel, k, f]),
            8 => Cmd::exact(args!["HINCRBY", k, "n", self.pick(&["1", "-7", "x"])]),
            9 => Cmd::exact(args!["HINCRBYFLOAT", k, "n", "0.5"]),
            10 => Cmd::exact(args!["HEXISTS", k, f]),
            11 => Cmd::exact(args!["HLEN", k]),
            12 => Cmd::exact(args!["HSTRLEN", k, f]),
            13 => Cmd::new(args![self.pick(&["HKEYS", "HVALS"]), k], Check::Sorted),
            14 => Cmd::exact(args!["HSETNX", k, f, v]),
            15 => Cmd::new(args!["HRANDFIELD", k], Check::Shape),
            _ => Cmd::new(args!["HSCAN", k, 0, "COUNT", 1000], Check::Sorted),
        }
    }

    /// Bit commands read and change the stored bytes: only keys whose values are
    /// never compressed (README "Limits of compression").
    pub fn bitmaps(&mut self) -> Cmd {
        let ns = self.ns();
        let k = if self.chance(0.8) {
            self.key(&ns, Kind::Bits)
        } else {
            self.raw_safe_key(&ns)
        };
        let off = self.rng.random_range(0..64);
        match self.rng.random_range(0..8) {
            0 | 1 => Cmd::exact(args!["SETBIT", k, off, self.pick(&[0, 1])]),
            2 => Cmd::exact(args!["GETBIT", k, off]),
            3 => Cmd::exact(args!["BITCOUNT", k, 0, self.pick(&[-1, 2])]),
            4 => Cmd::exact(args!["BITPOS", k, self.pick(&[0, 1])]),
            5 => {
                let op = self.pick(&["AND", "OR", "XOR"]);
                let (dest, other) = (self.key(&ns, Kind::Bits), self.key(&ns, Kind::Bits));
                Cmd::exact(args!["BITOP", op, dest, k, other])
            }
            6 => Cmd::exact(args!["BITFIELD", k, "INCRBY", "i8", 0, 7, "GET", "u4", 4]),
            _ => Cmd::exact(args!["BITFIELD_RO", k, "GET", "u8", 0]),
        }
    }

    pub fn hll(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.key(&ns, Kind::Hll);
        match self.rng.random_range(0..4) {
            0 | 1 => {
                let mut a = args!["PFADD", k];
                for _ in 0..self.rng.random_range(0..4) {
                    a.push(format!("e{}", self.rng.random_range(0..40)).into_bytes());
                }
                Cmd::exact(a)
            }
            2 => Cmd::exact(args!["PFCOUNT", k, self.key(&ns, Kind::Hll)]),
            _ => {
                let (dest, other) = (self.key(&ns, Kind::Hll), self.key(&ns, Kind::Hll));
                Cmd::exact(args!["PFMERGE", dest, k, other])
            }
        }
    }

    /// `name` as renamed in this target's Redis when the `unknown-writes` family is on
    /// (a write the proxy's command table does not know, issue 12 item 7); otherwise
    /// the plain name (which such a Redis refuses as unknown, the same both ways).
    pub fn renamed_if_on(&self, name: &'static str) -> String {
        if self.on("unknown-writes") {
            self.name(name)
        } else {
            name.to_string()
        }
    }
}
