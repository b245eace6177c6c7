//! Lists, sets, sorted sets, streams and geo sets on the client's own keys.
//! Sets are compared sorted: in Redis 7.0 a set of strings is a hash table whose
//! order depends on the server's random hash seed.

use rand::Rng;

use super::{Cmd, Gen};
use crate::{args, check::Check, keys::Kind};

const MEMBERS: &[&str] = &["a", "b", "c", "d", "1", "2", "30", "x y", ""];

impl Gen<'_> {
    fn member(&mut self) -> &'static str {
        self.pick(MEMBERS)
    }

    pub fn lists(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.key(&ns, Kind::List);
        let other = self.key(&ns, Kind::List);
        let (m, m2) = (self.member(), self.member());
        let end = || ["LEFT", "RIGHT"];
        let ltrim = self.renamed_if_on("LTRIM");
        match self.rng.random_range(0..18) {
            0..=2 => Cmd::exact(args![self.pick(&["LPUSH", "RPUSH"]), k, m, m2]),
            3 => Cmd::exact(args![self.pick(&["LPUSHX", "RPUSHX"]), k, m]),
            4 => Cmd::exact(args![self.pick(&["LPOP", "RPOP"]), k]),
            5 => Cmd::exact(args!["LPOP", k, self.pick(&[0, 2, 10])]),
            6 | 7 => Cmd::exact(args![
                "LRANGE",
                k,
                self.pick(&[0, 1, -2]),
                self.pick(&[-1, 2])
            ]),
            8 => Cmd::exact(args!["LLEN", k]),
            9 => Cmd::exact(args!["LINDEX", k, self.pick(&[0, -1, 5])]),
            10 => Cmd::exact(args!["LSET", k, self.pick(&[0, -1, 9]), m]),
            11 => Cmd::exact(args!["LINSERT", k, self.pick(&["BEFORE", "AFTER"]), m, m2]),
            12 => Cmd::exact(args!["LREM", k, self.pick(&[0, 1, -1]), m]),
            13 => Cmd::exact(args![ltrim, k, 0, self.pick(&[1, 3, -2])]),
            14 => Cmd::exact(args!["LPOS", k, m, "RANK", self.pick(&[1, -1])]),
            15 => Cmd::exact(args![
                "LMOVE",
                k,
                other,
                self.pick(&end()),
                self.pick(&end())
            ]),
            16 => Cmd::exact(args!["RPOPLPUSH", k, other]),
            _ => Cmd::exact(args!["LMPOP", 2, k, other, self.pick(&end()), "COUNT", 2]),
        }
    }

    pub fn sets(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.key(&ns, Kind::Set);
        let other = self.key(&ns, Kind::Set);
        let (m, m2) = (self.member(), self.member());
        let srem = self.renamed_if_on("SREM");
        match self.rng.random_range(0..15) {
            0..=2 => Cmd::exact(args!["SADD", k, m, m2]),
            3 => Cmd::exact(args![srem, k, m]),
            4 | 5 => Cmd::new(args!["SMEMBERS", k], Check::Sorted),
            6 => Cmd::exact(args!["SISMEMBER", k, m]),
            7 => Cmd::exact(args!["SMISMEMBER", k, m, m2]),
            8 => Cmd::exact(args!["SCARD", k]),
            9 => Cmd::new(
                args![self.pick(&["SINTER", "SUNION", "SDIFF"]), k, other],
                Check::Sorted,
            ),
            10 => {
                let op = self.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]);
                Cmd::exact(args![op, self.key(&ns, Kind::Set), k, other])
            }
            11 => Cmd::exact(args!["SINTERCARD", 2, k, other]),
            12 => Cmd::exact(args!["SMOVE", k, other, m]),
            13 => Cmd::new(
                args!["SRANDMEMBER", k, self.pick(&[1, 3, -2])],
                Check::Shape,
            ),
            _ => Cmd::new(args!["SSCAN", k, 0, "COUNT", 1000], Check::Sorted),
        }
    }

    fn score(&mut self) -> &'static str {
        self.pick(&["1", "2", "2.5", "-1", "0", "+inf", "-inf", "10"])
    }

    pub fn zsets(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.key(&ns, Kind::Zset);
        let other = self.key(&ns, Kind::Zset);
        let (m, s) = (self.member(), self.score());
        let zrem = self.renamed_if_on("ZREM");
        match self.rng.random_range(0..18) {
            0..=2 => {
                let mut a = args!["ZADD", k];
                if self.chance(0.3) {
                    a.push(self.pick(&["NX", "XX", "GT", "LT", "CH"]).into());
                }
                a.extend(args![s, m, self.score(), self.member()]);
                Cmd::exact(a)
            }
            3 => Cmd::exact(args!["ZINCRBY", k, self.pick(&["1", "-2.5"]), m]),
            4 => Cmd::exact(args!["ZSCORE", k, m]),
            5 => Cmd::exact(args!["ZMSCORE", k, m, "nope"]),
            6 | 7 => Cmd::exact(args!["ZRANGE", k, 0, -1, "WITHSCORES"]),
            8 => Cmd::exact(args!["ZRANGE", k, "(0", "+inf", "BYSCORE", "LIMIT", 0, 2]),
            9 => Cmd::exact(args!["ZRANGE", k, "[a", "+", "BYLEX"]),
            10 => Cmd::exact(args![self.pick(&["ZRANK", "ZREVRANK"]), k, m]),
            11 => Cmd::exact(args!["ZCARD", k]),
            12 => Cmd::exact(args!["ZCOUNT", k, "-inf", self.pick(&["1", "(2"])]),
            13 => Cmd::exact(args![zrem, k, m]),
            14 => Cmd::exact(args![self.pick(&["ZPOPMIN", "ZPOPMAX"]), k]),
            15 => {
                let op = self.pick(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]);
                Cmd::exact(args![op, self.key(&ns, Kind::Zset), 2, k, other])
            }
            16 => Cmd::new(args!["ZRANDMEMBER", k, 2], Check::Shape),
            _ => Cmd::exact(args!["ZREMRANGEBYSCORE", k, "-inf", self.pick(&["0", "2"])]),
        }
    }

    /// Entry ids are explicit (`<ms>-*`): `*` would take the server's clock.
    pub fn streams(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.key(&ns, Kind::Stream);
        let g = self.pick(&["g1", "g2"]);
        match self.rng.random_range(0..13) {
            0..=3 => {
                let id = format!("{}-*", self.rng.random_range(1..200));
                Cmd::exact(args!["XADD", k, id, "f", self.member(), "g", "v"])
            }
            4 => Cmd::exact(args!["XLEN", k]),
            5 => Cmd::exact(args!["XRANGE", k, "-", "+", "COUNT", 3]),
            6 => Cmd::exact(args!["XREVRANGE", k, "+", "-"]),
            7 => Cmd::exact(args![
                "XDEL",
                k,
                format!("{}-0", self.rng.random_range(1..200))
            ]),
            8 => Cmd::exact(args!["XTRIM", k, "MAXLEN", self.pick(&[1, 3])]),
            9 => Cmd::exact(args!["XREAD", "COUNT", 2, "STREAMS", k, "0"]),
            10 => Cmd::exact(args!["XGROUP", "CREATE", k, g, "0", "MKSTREAM"]),
            11 => Cmd::exact(args![
                "XREADGROUP",
                "GROUP",
                g,
                "c1",
                "COUNT",
                2,
                "STREAMS",
                k,
                ">"
            ]),
            _ => Cmd::exact(args!["XPENDING", k, g]),
        }
    }

    pub fn geo(&mut self) -> Cmd {
        let ns = self.ns();
        let k = self.key(&ns, Kind::Geo);
        let m = self.member();
        match self.rng.random_range(0..5) {
            0 | 1 => {
                let (lon, lat) = self.pick(&[
                    ("13.361389", "38.115556"),
                    ("15.087269", "37.502669"),
                    ("2.35", "48.85"),
                ]);
                Cmd::exact(args!["GEOADD", k, lon, lat, m])
            }
            2 => Cmd::exact(args!["GEODIST", k, m, self.member(), "km"]),
            3 => Cmd::exact(args!["GEOPOS", k, m]),
            _ => Cmd::exact(args![
                "GEOSEARCH",
                k,
                "FROMLONLAT",
                15,
                37,
                "BYRADIUS",
                300,
                "km",
                "ASC",
                "WITHDIST"
            ]),
        }
    }
}
