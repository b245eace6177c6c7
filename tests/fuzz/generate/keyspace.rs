//! Expiry, whole-key commands, DUMP/OBJECT, Lua scripts and functions, and blocking
//! commands, on the client's own keys.

use rand::Rng;

use super::{Cmd, Gen, Step};
use crate::{
    args,
    check::Check,
    keys::{Kind, Ns},
};

/// The Lua bodies EVAL and EVALSHA run, with their SHA1 (the runner loads them into
/// both Redis servers first, so that EVALSHA never depends on another client's EVAL).
pub const SCRIPTS: &[(&str, &str)] = &[
    (
        "return redis.call('GET', KEYS[1])",
        "d3c21d0c2b9ca22f82737626a27bcaf5d288f99f",
    ),
    (
        "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('INCR', KEYS[2])",
        "e3e9e68d0b7de7ede1daa4e9be7f11cb10f973c4",
    ),
    (
        "return {redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]), redis.call('HGET', KEYS[1], ARGV[1])}",
        "6f486e3bd35ae734253e1fc78cb2cd60a92db10b",
    ),
    (
        "return redis.call('LPUSH', KEYS[1], ARGV[1])",
        "f53bb015f589d5503bcd8963563f2f5cf8783350",
    ),
    (
        "return redis.error_reply('fuzz error')",
        "9908d4ade9d53dfe100ecb4e9e84659cd2e2de9d",
    ),
    (
        "return {1, 'two', {3, 'four'}, false, true, 2.5}",
        "206bc563db466a443a0f21a6f318969e6e911639",
    ),
    (
        "return redis.call('nosuchcommand')",
        "60e6252e19199d82f2bea24345497fd1b735ed32",
    ),
    (
        "redis.call('DEL', KEYS[1]) return redis.status_reply('DONE')",
        "3814269b0524997fc3c002c1e849f1a701c605cb",
    ),
    (
        "return redis.call('EXISTS', KEYS[1], KEYS[2])",
        "5edba5c4d3fbfde407efcb42c0ae6305aaca8cc8",
    ),
];

/// The function library FCALL calls (loaded by the runner).
pub const LIBRARY: &str = "#!lua name=fuzzlib
redis.register_function('fz_get', function(keys, args) return redis.call('GET', keys[1]) end)
redis.register_function{function_name='fz_get_ro', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}}
redis.register_function('fz_set', function(keys, args) return redis.call('SET', keys[1], args[1]) end)
redis.register_function('fz_incr', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)
";

impl Gen<'_> {
    fn ttl_check(ns: &Ns) -> Check {
        if ns.ttl_ruled() {
            Check::TtlRuled
        } else {
            Check::Ttl
        }
    }

    fn any_key(&mut self, ns: &Ns) -> String {
        let kind = self.pick(&[
            Kind::Str,
            Kind::Doc,
            Kind::Hash,
            Kind::List,
            Kind::Set,
            Kind::Zset,
            Kind::HashDoc,
        ]);
        self.key(ns, kind)
    }

    pub fn expiry(&mut self) -> Cmd {
        let (ns, k) = match self.recent_key() {
            Some(recent) if self.chance(0.5) => recent,
            _ => {
                let ns = self.ns();
                (ns, self.any_key(&ns))
            }
        };
        match self.rng.random_range(0..9) {
            0 | 1 => Cmd::new(args![self.pick(&["TTL", "PTTL"]), k], Self::ttl_check(&ns)),
            2 => Cmd::new(
                args![self.pick(&["EXPIRETIME", "PEXPIRETIME"]), k],
                Self::ttl_check(&ns),
            ),
            3 | 4 => {
                let mut a = args![
                    "EXPIRE",
                    k,
                    self.pick(&["1000", "5000", "100000000", "0", "-1", "x"])
                ];
                // NX/XX/GT/LT look at the TTL a rule may have added: not in ruled namespaces.
                if !ns.ttl_ruled() && self.chance(0.4) {
                    a.push(self.pick(&["NX", "XX", "GT", "LT"]).into());
                }
                Cmd::exact(a)
            }
            5 => Cmd::exact(args!["PEXPIRE", k, self.pick(&[3_000_000, 100_000_000, 0])]),
            6 => Cmd::exact(args!["EXPIREAT", k, self.pick(&[4_102_444_800u64, 1])]),
            7 => Cmd::exact(args!["PEXPIREAT", k, 4_102_444_800_123u64]),
            // PERSIST is refused under max_ttl and finds a rule's TTL under ttl.
            _ if !ns.ttl_ruled() => Cmd::exact(args!["PERSIST", k]),
            _ => Cmd::new(args!["TTL", k], Check::TtlRuled),
        }
    }

    /// A write, then the key's TTL, mostly in namespaces with TTL rules (the runner
    /// checks the `max_ttl` invariant on the proxy's TTL replies, `runner/rules.rs`);
    /// half the time on a key deleted first, so that the write creates it.
    pub fn ttl_probe(&mut self) -> Step {
        let ns = self.ns_preferring(|ns| ns.max_ttl);
        let kind = self.pick(&[Kind::Str, Kind::Hash, Kind::List, Kind::Set, Kind::Zset]);
        let k = self.key(&ns, kind);
        let v = crate::keys::short_value(&mut self.rng);
        let write = match kind {
            Kind::Str => {
                let mut a = args!["SET", &k, v];
                a.extend(self.set_expiry(&ns));
                a
            }
            Kind::Hash => args!["HSET", &k, "f1", v],
            Kind::List => args![self.pick(&["LPUSH", "RPUSH"]), &k, v],
            Kind::Set => args!["SADD", &k, v],
            _ => args!["ZADD", &k, 1, v],
        };
        let mut cmds = Vec::new();
        if self.chance(0.5) {
            cmds.push(Cmd::exact(args!["DEL", &k]));
        }
        cmds.push(Cmd::exact(write));
        cmds.push(Cmd::new(
            args![self.pick(&["TTL", "PTTL"]), k],
            Self::ttl_check(&ns),
        ));
        let mut steps = cmds.into_iter().map(Step::one);
        let first = steps.next().expect("two at least");
        self.enqueue(steps);
        first
    }

    /// A destination for RENAME/COPY: in compressing namespaces a key with long values
    /// only moves to another such key (an envelope must not reach a key whose values
    /// are changed in place).
    fn dest_for(&mut self, ns: &Ns, src: Kind) -> String {
        let kind = if ns.compress && src.long_values() {
            self.pick(&[Kind::Doc, Kind::HashDoc])
        } else if ns.compress {
            self.pick(&[Kind::Str, Kind::Hash, Kind::List, Kind::Set, Kind::Zset])
        } else {
            self.pick(&[Kind::Str, Kind::Doc, Kind::Hash, Kind::List, Kind::Set])
        };
        self.key(ns, kind)
    }

    pub fn keyspace(&mut self) -> Cmd {
        let ns = self.ns();
        let other_ns = self.ns();
        let (k, k2) = (self.any_key(&ns), self.any_key(&other_ns));
        let src = self.pick(&[Kind::Str, Kind::Doc, Kind::List, Kind::Set, Kind::HashDoc]);
        let s = self.key(&ns, src);
        let d = self.dest_for(&ns, src);
        match self.rng.random_range(0..14) {
            0 => Cmd::exact(args![self.pick(&["DEL", "UNLINK"]), k, k2]),
            1 => Cmd::exact(args!["EXISTS", &k, k2, &k]),
            2 => Cmd::exact(args!["TOUCH", k, k2]),
            3 | 4 => Cmd::exact(args!["TYPE", k]),
            5 => Cmd::exact(args![self.pick(&["RENAME", "RENAMENX"]), s, d]),
            6 => {
                let mut a = args!["COPY", s, d];
                if self.chance(0.3) {
                    a.extend(args!["DB", self.rng.random_range(0..crate::keys::DBS)]);
                }
                if self.chance(0.5) {
                    a.push(b"REPLACE".to_vec());
                }
                Cmd::exact(a)
            }
            7 => Cmd::exact(args!["MOVE", k, self.rng.random_range(0..crate::keys::DBS)]),
            8 => Cmd::new(
                args!["KEYS", format!("{}:c{}:*", ns.prefix, self.client)],
                Check::Sorted,
            ),
            9 => {
                let list = self.key(&ns, Kind::List);
                Cmd::exact(args![
                    self.pick(&["SORT", "SORT_RO"]),
                    list,
                    "ALPHA",
                    "LIMIT",
                    0,
                    5
                ])
            }
            10 => {
                let set = self.key(&ns, Kind::Set);
                Cmd::exact(args!["SORT", set, "ALPHA", "DESC"])
            }
            11 => {
                let (list, dest) = (self.key(&ns, Kind::List), self.key(&ns, Kind::List));
                Cmd::exact(args!["SORT", list, "ALPHA", "STORE", dest])
            }
            12 => Cmd::exact(args!["MGET", k, k2]),
            _ => Cmd::exact(args!["DEL", k]),
        }
    }

    /// Commands that show how a value is stored: exact where the namespace stores
    /// values as sent (never on keys with long values in compressing namespaces).
    pub fn dump(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.raw_safe_key(&ns);
        match self.rng.random_range(0..4) {
            0 => {
                let kind = self.pick(&[Kind::Str, Kind::List, Kind::Set, Kind::Hash]);
                Cmd::new(args!["DUMP", self.key(&ns, kind)], Check::Dump)
            }
            1 | 2 => Cmd::exact(args!["OBJECT", "ENCODING", k]),
            _ => Cmd::exact(args!["OBJECT", "FREQ", k]),
        }
    }

    /// EVAL, EVALSHA (known and unknown), EVAL_RO. Keys never hold long values in
    /// compressing namespaces: scripts see stored bytes.
    pub fn scripts(&mut self) -> Cmd {
        let ns = self.ns();
        let i = self.rng.random_range(0..SCRIPTS.len());
        let (body, sha) = SCRIPTS[i];
        let (k1, k2) = match i {
            2 => (self.key(&ns, Kind::Hash), self.key(&ns, Kind::Hash)),
            3 => (self.key(&ns, Kind::List), self.key(&ns, Kind::List)),
            _ => (self.key(&ns, Kind::Str), self.raw_safe_key(&ns)),
        };
        let argv = args![
            crate::keys::short_value(&mut self.rng),
            self.pick(&["f1", "n"])
        ];
        let (name, code) = match self.rng.random_range(0..6) {
            0..=2 => ("EVAL", body.to_string()),
            3 | 4 => ("EVALSHA", sha.to_string()),
            _ if i == 0 => (self.pick(&["EVAL_RO", "EVALSHA_RO"]), body.to_string()),
            _ => (
                "EVALSHA",
                "0123456789abcdef0123456789abcdef01234567".to_string(),
            ),
        };
        let code = if name == "EVALSHA_RO" {
            sha.to_string()
        } else {
            code
        };
        let mut a = args![name, code, 2, k1, k2];
        a.extend(argv);
        Cmd::exact(a)
    }

    pub fn functions(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.key(&ns, Kind::Str);
        match self.rng.random_range(0..6) {
            0 => Cmd::exact(args!["FCALL", "fz_get", 1, k]),
            1 => Cmd::exact(args!["FCALL_RO", "fz_get_ro", 1, k]),
            2 => Cmd::exact(args![
                "FCALL",
                "fz_set",
                1,
                k,
                crate::keys::short_value(&mut self.rng)
            ]),
            3 => Cmd::exact(args!["FCALL", "fz_incr", 1, k, self.pick(&["1", "-4"])]),
            4 => Cmd::exact(args!["FCALL_RO", "fz_set", 1, k, "v"]),
            _ => Cmd::exact(args!["FCALL", "fz_nosuch", 0]),
        }
    }

    /// Blocking commands on own keys with 10 ms timeouts: they answer at once when
    /// there is data, nil after the timeout otherwise, the same both ways.
    pub fn blocking(&mut self) -> Cmd {
        let ns = self.ns();
        let (k, other) = (self.key(&ns, Kind::List), self.key(&ns, Kind::List));
        match self.rng.random_range(0..6) {
            0 => Cmd::exact(args![self.pick(&["BLPOP", "BRPOP"]), k, other, "0.01"]),
            1 => Cmd::exact(args!["BLMOVE", k, other, "LEFT", "RIGHT", "0.01"]),
            2 => Cmd::exact(args!["BZPOPMIN", self.key(&ns, Kind::Zset), "0.01"]),
            3 => Cmd::exact(args!["BLMPOP", "0.01", 1, k, "LEFT"]),
            4 => Cmd::exact(args![
                "XREAD",
                "BLOCK",
                10,
                "STREAMS",
                self.key(&ns, Kind::Stream),
                "0"
            ]),
            _ => Cmd::exact(args!["WAIT", 0, 0]),
        }
    }
}
