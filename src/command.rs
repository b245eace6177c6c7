//! The command table: what each Redis command is, how the session routes it, and which
//! of its arguments are keys.
//!
//! Every command a client sends is classified here before anything else looks at it:
//!
//! - [`Kind`] says what the command does (read, write, admin, …). It drives metrics
//!   labels and tells the cache and policy layers whether a command may change data.
//! - [`Route`] says how the session must carry it: most commands are pipelined on a
//!   shared upstream connection ([`Route::Forward`]); blocking commands, transactions,
//!   pub/sub and connection-state commands need special handling.
//! - [`Keys`] says where the keys are, so the cache can invalidate what a write
//!   touches and the policy layer can find each key's namespace rule.
//!
//! The table itself lives in `command/table.rs` ([`commands`]): one static slice per
//! level, sorted by name, the top level covering every command of Redis 7.2 (Sentinel
//! excepted). Container commands (CLIENT, CONFIG, OBJECT, XGROUP, …) carry a second
//! sorted slice of subcommands ([`Spec::subcommands`]) whose kind, route, writes and
//! keys override the container's; [`classify`] reports both. [`Writes`] says which keys
//! a command may modify, for [`write_keys`]. Key positions
//! follow Redis's own conventions (`COMMAND INFO` first/last/step, `numkeys`
//! arguments, keyword searches) and are checked against a real `redis-server`'s
//! `COMMAND GETKEYS` in the tests.
//!
//! Lookups never allocate: a binary search over the sorted slice compares the name as
//! sent, lowered one byte at a time. A command missing from the table still classifies,
//! as [`Kind::Unknown`] and [`Route::Forward`]: the proxy forwards what it does not know
//! and never refuses it.
//!
//! Shard channels (SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE) are not keys and are not
//! reported as such, matching `COMMAND GETKEYS`. Commands newer than 7.2 (such as the
//! 7.4 hash-field expiry family) are unknown here: forwarded, with no known keys.

pub mod learned;
mod spec;
mod table;

use bytes::Bytes;

pub use spec::{Cache, Keys, Kind, Route, Spec, Writes};
pub use table::{commands, lookup};

/// Result of classifying one command as sent by a client.
#[derive(Debug, Clone, Copy)]
pub struct Classified {
    /// The top-level command (the container for CLIENT SETNAME); `None` if unknown.
    pub spec: Option<&'static Spec>,
    /// The subcommand, for a container command with a known subcommand.
    pub sub: Option<&'static Spec>,
    pub kind: Kind,
    pub route: Route,
}

impl Classified {
    const UNKNOWN: Classified = Classified {
        spec: None,
        sub: None,
        kind: Kind::Unknown,
        route: Route::Forward,
    };

    /// The most specific spec: the subcommand if known, else the command.
    pub fn effective(&self) -> Option<&'static Spec> {
        self.sub.or(self.spec)
    }

    /// [`write_keys`] of `args`, which this classifies: no second table lookup.
    pub fn write_keys(&self, args: &[Bytes]) -> Vec<usize> {
        self.effective().map_or_else(Vec::new, |spec| {
            spec.writes.select(spec.keys.positions(args))
        })
    }
}

/// A command as sent by a client: `args[0]` is the name, in any case.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    pub args: &'a [Bytes],
}

impl<'a> Command<'a> {
    pub fn new(args: &'a [Bytes]) -> Self {
        Command { args }
    }

    pub fn classify(&self) -> Classified {
        classify(self.args)
    }

    pub fn key_positions(&self) -> Vec<usize> {
        key_positions(self.args)
    }

    pub fn write_keys(&self) -> Vec<usize> {
        write_keys(self.args)
    }

    /// The keys themselves, in argument order.
    pub fn keys(&self) -> impl Iterator<Item = &'a Bytes> + use<'a> {
        let args = self.args;
        key_positions(args).into_iter().map(move |i| &args[i])
    }
}

/// Classifies a command: its spec, kind and route, looking at the subcommand of
/// containers and at XREAD/XREADGROUP's BLOCK option. Empty or unknown commands are
/// [`Kind::Unknown`] and [`Route::Forward`].
pub fn classify(args: &[Bytes]) -> Classified {
    let Some(spec) = args
        .first()
        .and_then(|name| lookup(name).or_else(|| learned::spec(name)))
    else {
        return Classified::UNKNOWN;
    };
    let sub = args.get(1).and_then(|name| spec.subcommand(name));
    let base = sub.unwrap_or(spec);
    let (kind, route) = if table::is_xread(spec) && table::xread_scan(args).block {
        (Kind::Blocking, Route::Blocking)
    } else {
        (base.kind, base.route)
    };
    Classified {
        spec: Some(spec),
        sub,
        kind,
        route,
    }
}

/// Indexes into `args` of every key the command touches, in argument order. Empty for
/// unknown commands; tolerant of short or malformed ones.
pub fn key_positions(args: &[Bytes]) -> Vec<usize> {
    classify(args)
        .effective()
        .map_or_else(Vec::new, |spec| spec.keys.positions(args))
}

/// The subset of [`key_positions`] the command may modify. Empty for read-only
/// commands and for unknown ones (which have no known keys).
pub fn write_keys(args: &[Bytes]) -> Vec<usize> {
    classify(args).write_keys(args)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Splits a command line on spaces; `""` stands for an empty argument.
    fn args(line: &str) -> Vec<Bytes> {
        let word = |w: &str| {
            if w == "\"\"" {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(w.as_bytes())
            }
        };
        line.split_whitespace().map(word).collect()
    }

    fn all_specs() -> impl Iterator<Item = &'static Spec> {
        commands()
            .iter()
            .flat_map(|spec| std::iter::once(spec).chain(spec.subcommands))
    }

    #[test]
    fn lookup_ignores_case_and_rejects_garbage() {
        for name in ["get", "GET", "GeT", "gEt"] {
            assert_eq!(lookup(name.as_bytes()).map(|s| s.name), Some("get"));
        }
        assert_eq!(
            lookup(b"GEORADIUSBYMEMBER_RO").map(|s| s.name),
            Some("georadiusbymember_ro")
        );
        assert_eq!(
            lookup(b"Restore-Asking").map(|s| s.name),
            Some("restore-asking")
        );
        let garbage: [&[u8]; 8] = [
            b"",
            b"\xff\xfe",
            b"g\xc3\xa9t",
            b"get ",
            b" get",
            b"client|setname",
            b"getx",
            &[0u8; 64],
        ];
        for name in garbage {
            assert!(lookup(name).is_none(), "{name:?}");
        }
    }

    #[test]
    fn subcommands_ignore_case() {
        let client = lookup(b"client").unwrap();
        assert_eq!(
            client.subcommand(b"SetName").map(|s| s.name),
            Some("client|setname")
        );
        assert_eq!(
            client.subcommand(b"NO-EVICT").map(|s| s.name),
            Some("client|no-evict")
        );
        assert!(client.subcommand(b"\xff").is_none());
        assert!(client.subcommand(b"").is_none());
    }

    #[test]
    fn classify_cases() {
        use Kind::*;
        let cases: &[(&str, Kind, Route)] = &[
            ("", Unknown, Route::Forward),
            ("NOSUCHCOMMAND a b", Unknown, Route::Forward),
            ("GET k", Read, Route::Forward),
            ("get k", Read, Route::Forward),
            ("SET k v", Write, Route::Forward),
            ("BLPOP a b 0", Blocking, Route::Blocking),
            ("brpop a 0", Blocking, Route::Blocking),
            ("BRPOPLPUSH a b 0", Blocking, Route::Blocking),
            ("BLMOVE a b LEFT RIGHT 0", Blocking, Route::Blocking),
            ("BLMPOP 0 1 a LEFT", Blocking, Route::Blocking),
            ("BZPOPMIN a 0", Blocking, Route::Blocking),
            ("BZPOPMAX a 0", Blocking, Route::Blocking),
            ("BZMPOP 0 1 a MIN", Blocking, Route::Blocking),
            ("WAIT 1 0", Blocking, Route::Blocking),
            ("WAITAOF 1 0 0", Blocking, Route::Blocking),
            (
                "XREAD COUNT 1 BLOCK 0 STREAMS a 0",
                Blocking,
                Route::Blocking,
            ),
            ("xread block 10 streams a $", Blocking, Route::Blocking),
            ("XREAD STREAMS a 0", Read, Route::Forward),
            ("XREAD COUNT 5 STREAMS block 0", Read, Route::Forward),
            ("XREAD STREAMS BLOCK 0", Read, Route::Forward),
            (
                "XREADGROUP GROUP g c BLOCK 0 STREAMS a >",
                Blocking,
                Route::Blocking,
            ),
            ("XREADGROUP GROUP g c STREAMS a >", Write, Route::Forward),
            (
                "XREADGROUP GROUP block c NOACK STREAMS a >",
                Write,
                Route::Forward,
            ),
            ("MULTI", Stateful, Route::Multi),
            ("EXEC", Stateful, Route::Exec),
            ("DISCARD", Stateful, Route::Discard),
            ("WATCH a b", Stateful, Route::Watch),
            ("UNWATCH", Stateful, Route::Unwatch),
            ("SUBSCRIBE c", PubSub, Route::Subscribe),
            ("PSUBSCRIBE c*", PubSub, Route::Subscribe),
            ("SSUBSCRIBE c", PubSub, Route::Subscribe),
            ("UNSUBSCRIBE", PubSub, Route::Unsubscribe),
            ("PUNSUBSCRIBE", PubSub, Route::Unsubscribe),
            ("SUNSUBSCRIBE c", PubSub, Route::Unsubscribe),
            ("PUBLISH c m", PubSub, Route::Forward),
            ("SPUBLISH c m", PubSub, Route::Forward),
            ("PUBSUB CHANNELS", PubSub, Route::Forward),
            ("MONITOR", Admin, Route::Sticky),
            ("SELECT 1", Connection, Route::Select),
            ("AUTH user pass", Connection, Route::Auth),
            ("HELLO 3", Connection, Route::Hello),
            ("RESET", Connection, Route::Reset),
            ("QUIT", Connection, Route::Quit),
            ("PING", Connection, Route::Forward),
            ("ECHO x", Connection, Route::Forward),
            ("READONLY", Connection, Route::Forward),
            ("READWRITE", Connection, Route::Forward),
            ("ASKING", Connection, Route::Forward),
            ("CLIENT ID", Connection, Route::ClientId),
            ("client setname app", Connection, Route::ClientSetName),
            ("CLIENT GetName", Connection, Route::ClientGetName),
            (
                "CLIENT SETINFO LIB-NAME x",
                Connection,
                Route::ClientSetInfo,
            ),
            ("CLIENT NO-EVICT on", Connection, Route::ClientNoop),
            ("CLIENT no-touch on", Connection, Route::Sticky),
            ("CLIENT TRACKING on", Connection, Route::Sticky),
            ("CLIENT REPLY OFF", Connection, Route::ClientReply),
            ("CLIENT CACHING yes", Connection, Route::Forward),
            ("CLIENT LIST", Admin, Route::ClientList),
            ("CLIENT KILL ID 7", Admin, Route::ClientKill),
            ("CLIENT PAUSE 10", Admin, Route::Own),
            ("CLIENT UNPAUSE", Admin, Route::Unpause),
            ("CLIENT TRACKINGINFO", Admin, Route::Forward),
            ("CLIENT NOSUCHSUB", Admin, Route::Forward),
            ("CLIENT", Admin, Route::Forward),
            ("SYNC", Admin, Route::Refuse),
            ("PSYNC ? -1", Admin, Route::Refuse),
            ("REPLCONF listening-port 1", Admin, Route::Refuse),
            ("CONFIG SET a b", Admin, Route::Forward),
            ("config get *", Admin, Route::Forward),
            ("INFO", Admin, Route::Forward),
            ("TIME", Admin, Route::Forward),
            ("LOLWUT", Admin, Route::Forward),
            ("SHUTDOWN", Admin, Route::Own),
            ("OBJECT ENCODING k", Read, Route::Forward),
            ("OBJECT HELP", Read, Route::Forward),
            ("MEMORY USAGE k", Read, Route::Forward),
            ("MEMORY STATS", Admin, Route::Forward),
            ("SCRIPT FLUSH", Admin, Route::Forward),
            ("SCRIPT LOAD x", Admin, Route::Forward),
            ("FUNCTION LOAD x", Write, Route::Forward),
            ("FUNCTION DELETE lib", Write, Route::Forward),
            ("FUNCTION FLUSH", Write, Route::Forward),
            ("FUNCTION RESTORE x", Write, Route::Forward),
            ("FUNCTION LIST", Admin, Route::Forward),
            ("XINFO STREAM k", Read, Route::Forward),
            ("XGROUP CREATE k g $", Write, Route::Forward),
            ("EVAL s 0", Write, Route::Own),
            ("EVAL_RO s 0", Read, Route::Own),
            ("EVALSHA h 0", Write, Route::Own),
            ("EVALSHA_RO h 0", Read, Route::Own),
            ("FCALL f 0", Write, Route::Own),
            ("FCALL_RO f 0", Read, Route::Own),
            ("SORT k", Write, Route::Forward),
            ("SORT_RO k", Read, Route::Forward),
            ("PFCOUNT a", Write, Route::Forward),
            ("TOUCH a", Read, Route::Forward),
            ("DBSIZE", Read, Route::Forward),
            ("KEYS *", Read, Route::Forward),
            ("SCAN 0", Read, Route::Forward),
            ("FLUSHDB", Write, Route::Forward),
            ("SWAPDB 0 1", Write, Route::Forward),
            ("GEORADIUS k 0 0 1 m", Write, Route::Forward),
            ("GEORADIUS_RO k 0 0 1 m", Read, Route::Forward),
            ("BITFIELD_RO k GET u8 0", Read, Route::Forward),
            ("BITFIELD k INCRBY u8 0 1", Write, Route::Forward),
            ("LCS a b", Read, Route::Forward),
            ("DUMP k", Read, Route::Forward),
        ];
        for &(line, kind, route) in cases {
            let c = classify(&args(line));
            assert_eq!((c.kind, c.route), (kind, route), "{line}");
        }
    }

    #[test]
    fn classify_non_utf8_and_reports_specs() {
        let c = classify(&[Bytes::from_static(b"\xff\x00")]);
        assert!(c.spec.is_none() && c.kind == Kind::Unknown);
        let c = classify(&args("CLIENT SETNAME x"));
        assert_eq!(c.spec.map(|s| s.name), Some("client"));
        assert_eq!(c.sub.map(|s| s.name), Some("client|setname"));
        assert_eq!(c.effective().map(|s| s.name), Some("client|setname"));
    }

    #[test]
    fn key_positions_cases() {
        let cases: &[(&str, &[usize])] = &[
            ("GET k", &[1]),
            ("SET k v EX 10", &[1]),
            ("GETEX k PERSIST", &[1]),
            ("MSET k v k2 v2", &[1, 3]),
            ("MGET a b c", &[1, 2, 3]),
            ("DEL a b", &[1, 2]),
            ("EVAL s 2 a b x", &[3, 4]),
            ("EVAL s 0 x", &[]),
            ("EVALSHA_RO h 1 a", &[3]),
            ("FCALL f 1 k a", &[3]),
            ("ZUNIONSTORE dst 2 a b WEIGHTS 1 2", &[1, 3, 4]),
            ("ZUNION 2 a b", &[2, 3]),
            ("SINTERCARD 2 a b LIMIT 1", &[2, 3]),
            ("LMPOP 2 a b LEFT", &[2, 3]),
            ("BLMPOP 0 2 a b LEFT", &[3, 4]),
            ("BZMPOP 0 2 a b MIN", &[3, 4]),
            ("XREAD COUNT 1 BLOCK 0 STREAMS a b 0 0", &[6, 7]),
            ("XREADGROUP GROUP g c STREAMS a >", &[5]),
            ("XREADGROUP GROUP streams c COUNT 1 STREAMS a >", &[7]),
            ("SORT k BY x STORE d", &[1, 5]),
            ("SORT k STORE d1 STORE d2", &[1, 5]),
            ("SORT_RO k BY x", &[1]),
            ("MIGRATE host 6379 \"\" 0 5000 KEYS a b", &[7, 8]),
            (
                "MIGRATE host 6379 \"\" 0 5000 COPY AUTH2 keys pw KEYS a",
                &[11],
            ),
            ("MIGRATE host 6379 key 0 5000", &[3]),
            ("MIGRATE host 6379 key 0 5000 KEYS a", &[]),
            ("GEORADIUS k 0 0 10 m STORE d", &[1, 7]),
            ("GEORADIUS k 0 0 10 m STORE d STOREDIST e", &[1, 7, 9]),
            ("GEORADIUSBYMEMBER k m 10 km STOREDIST d", &[1, 6]),
            ("OBJECT ENCODING k", &[2]),
            ("OBJECT HELP", &[]),
            ("MEMORY USAGE k SAMPLES 5", &[2]),
            ("XINFO STREAM k", &[2]),
            ("XGROUP CREATE k g $", &[2]),
            ("BITOP AND dst a b", &[2, 3, 4]),
            ("RENAME a b", &[1, 2]),
            ("COPY a b DB 1", &[1, 2]),
            ("SMOVE a b m", &[1, 2]),
            ("LMOVE a b LEFT RIGHT", &[1, 2]),
            ("BRPOPLPUSH a b 0", &[1, 2]),
            ("BLPOP a b 0", &[1, 2]),
            ("PFMERGE d a b", &[1, 2, 3]),
            ("WATCH a b", &[1, 2]),
            ("LCS a b", &[1, 2]),
            ("SPUBLISH ch msg", &[]),
            ("PUBLISH ch msg", &[]),
            ("NOSUCHCOMMAND a b", &[]),
        ];
        for &(line, want) in cases {
            assert_eq!(key_positions(&args(line)), want, "{line}");
        }
    }

    #[test]
    fn key_positions_tolerate_malformed_commands() {
        let cases: &[(&str, &[usize])] = &[
            ("", &[]),
            ("GET", &[]),
            ("MSET", &[]),
            ("MSET k v k", &[1, 3]),
            ("BLPOP a", &[]),
            ("LCS a", &[1]),
            ("EVAL", &[]),
            ("EVAL s", &[]),
            ("EVAL s 5 a", &[3]), // too few keys: Redis refuses it; we report what is there
            ("EVAL s -1 a", &[]),
            ("EVAL s +1 a", &[]),
            ("EVAL s x a", &[]),
            ("EVAL s 99999999999999999999999999 a", &[]),
            ("ZUNIONSTORE", &[]),
            ("ZUNIONSTORE d", &[1]),
            ("XREAD STREAMS", &[]),
            ("XREAD STREAMS a", &[]),
            ("XREAD COUNT", &[]),
            ("XREAD BLOCK", &[]),
            ("SORT", &[]),
            ("SORT k STORE", &[1]),
            ("MIGRATE", &[]),
            ("MIGRATE h p \"\" 0 5 KEYS", &[]),
            ("GEORADIUS k", &[1]),
            ("GEORADIUS k 0 0 1 m STORE", &[1]),
            ("OBJECT", &[]),
            ("OBJECT ENCODING", &[]),
            ("XGROUP", &[]),
        ];
        for &(line, want) in cases {
            assert_eq!(key_positions(&args(line)), want, "{line}");
        }
    }

    #[test]
    fn write_keys_cases() {
        let cases: &[(&str, &[usize])] = &[
            ("", &[]),
            ("GET k", &[]),
            ("MGET a b", &[]),
            ("SET k v", &[1]),
            ("MSET a 1 b 2", &[1, 3]),
            ("DEL a b", &[1, 2]),
            ("SORT k", &[]),
            ("SORT k STORE d", &[3]),
            ("SORT_RO k", &[]),
            ("COPY a b", &[1, 2]),
            ("RENAME a b", &[1, 2]),
            ("SMOVE a b m", &[1, 2]),
            ("LMOVE a b LEFT RIGHT", &[1, 2]),
            ("BLPOP a b 0", &[1, 2]),
            ("EVAL s 2 a b x", &[3, 4]),
            ("EVAL_RO s 1 a", &[]),
            ("FCALL f 1 k", &[3]),
            ("FCALL_RO f 1 k", &[]),
            ("SINTERSTORE d a b", &[1]),
            ("SUNIONSTORE d a b", &[1]),
            ("SDIFFSTORE d a b", &[1]),
            ("ZUNIONSTORE d 2 a b", &[1]),
            ("ZINTERSTORE d 2 a b", &[1]),
            ("ZDIFFSTORE d 2 a b", &[1]),
            ("ZRANGESTORE d s 0 1", &[1]),
            ("GEOSEARCHSTORE d s FROMMEMBER m BYRADIUS 1 m", &[1]),
            ("BITOP AND d a b", &[2]),
            ("PFMERGE d a b", &[1]),
            ("PFCOUNT a b", &[1, 2]),
            ("GEORADIUS k 0 0 1 m", &[]),
            ("GEORADIUS k 0 0 1 m STORE d", &[7]),
            ("GEORADIUS_RO k 0 0 1 m", &[]),
            ("XREADGROUP GROUP g c STREAMS a >", &[5]),
            ("XREAD BLOCK 0 STREAMS a 0", &[]),
            ("XGROUP CREATE k g $", &[2]),
            ("XINFO STREAM k", &[]),
            ("OBJECT ENCODING k", &[]),
            ("MEMORY USAGE k", &[]),
            ("WATCH a", &[]),
            ("TOUCH a", &[]),
            ("MIGRATE h p k 0 5", &[3]),
            ("NOSUCHCOMMAND a", &[]),
        ];
        for &(line, want) in cases {
            assert_eq!(write_keys(&args(line)), want, "{line}");
        }
    }

    #[test]
    fn command_helper_returns_the_keys() {
        let a = args("MSET a 1 b 2");
        let cmd = Command::new(&a);
        let keys: Vec<&Bytes> = cmd.keys().collect();
        assert_eq!(keys, [&a[1], &a[3]]);
        assert_eq!(cmd.write_keys(), [1, 3]);
        assert_eq!(cmd.classify().kind, Kind::Write);
    }

    #[test]
    fn arity_follows_redis_convention() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let mset = lookup(b"mset").unwrap();
        assert!(mset.arity_ok(3) && mset.arity_ok(7) && !mset.arity_ok(2));
    }

    #[test]
    fn tables_are_sorted_lowercase_and_without_duplicates() {
        let mut seen = HashSet::new();
        for spec in all_specs() {
            assert!(seen.insert(spec.name), "duplicate {}", spec.name);
            assert!(
                !spec.name.bytes().any(|b| b.is_ascii_uppercase()),
                "{}",
                spec.name
            );
            assert_ne!(spec.arity, 0, "{}", spec.name);
        }
        for level in std::iter::once(commands()).chain(commands().iter().map(|s| s.subcommands)) {
            for pair in level.windows(2) {
                assert!(
                    pair[0].short_name() < pair[1].short_name(),
                    "{} !< {}",
                    pair[0].name,
                    pair[1].name
                );
            }
        }
    }

    #[test]
    fn containers_delegate_keys_to_their_subcommands() {
        for spec in commands().iter().filter(|s| !s.subcommands.is_empty()) {
            assert!(matches!(spec.keys, Keys::Custom(_)), "{}", spec.name);
            for sub in spec.subcommands {
                assert!(
                    sub.name.starts_with(&format!("{}|", spec.name)),
                    "{}",
                    sub.name
                );
                assert!(sub.subcommands.is_empty(), "{}", sub.name);
                assert!(!matches!(sub.keys, Keys::Custom(_)), "{}", sub.name);
            }
        }
        assert!(commands().iter().all(|s| !s.name.contains('|')));
    }

    #[test]
    fn kinds_agree_with_routes() {
        let stateful = [
            Route::Multi,
            Route::Exec,
            Route::Discard,
            Route::Watch,
            Route::Unwatch,
        ];
        for spec in all_specs() {
            assert_eq!(
                spec.kind == Kind::Blocking,
                spec.route == Route::Blocking,
                "{}",
                spec.name
            );
            assert_eq!(
                spec.kind == Kind::Stateful,
                stateful.contains(&spec.route),
                "{}",
                spec.name
            );
            assert_ne!(spec.kind, Kind::Unknown, "{}", spec.name);
            if spec.writes != Writes::None {
                assert!(
                    matches!(spec.kind, Kind::Write | Kind::Blocking),
                    "{}",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn labels_are_distinct() {
        let labels: HashSet<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), Kind::ALL.len());
    }

    /// xorshift64*, so the fuzz test needs no dependency and is reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn random_arg(rng: &mut Rng, names: &[&str]) -> Bytes {
        const WORDS: &[&str] = &[
            "STREAMS",
            "BLOCK",
            "COUNT",
            "GROUP",
            "NOACK",
            "STORE",
            "STOREDIST",
            "KEYS",
            "AUTH",
            "AUTH2",
            "LIMIT",
            "BY",
            "GET",
            "0",
            "1",
            "2",
            "3",
            "-1",
            "",
            "99999999999999999999",
        ];
        match rng.below(4) {
            0 => Bytes::copy_from_slice(
                names[rng.below(names.len())]
                    .to_ascii_uppercase()
                    .as_bytes(),
            ),
            1 => Bytes::from_static(WORDS[rng.below(WORDS.len())].as_bytes()),
            2 => (0..rng.below(4)).map(|_| rng.next() as u8).collect(),
            _ => Bytes::copy_from_slice(names[rng.below(names.len())].as_bytes()),
        }
    }

    #[test]
    fn random_commands_never_panic_and_stay_in_bounds() {
        let names: Vec<&str> = all_specs().map(|s| s.short_name()).collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..50_000 {
            let len = rng.below(12);
            let mut cmd: Vec<Bytes> = (0..len).map(|_| random_arg(&mut rng, &names)).collect();
            if let Some(first) = cmd.first_mut().filter(|_| rng.below(8) != 0) {
                *first = Bytes::copy_from_slice(names[rng.below(names.len())].as_bytes());
            }
            let keys = key_positions(&cmd);
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{cmd:?} -> {keys:?}");
            assert!(
                keys.iter().all(|&k| k >= 1 && k < cmd.len()),
                "{cmd:?} -> {keys:?}"
            );
            let writes = write_keys(&cmd);
            assert!(writes.iter().all(|w| keys.contains(w)), "{cmd:?}");
            let c = classify(&cmd);
            assert_eq!(c.kind == Kind::Unknown, c.spec.is_none());
        }
    }

    #[test]
    fn first_key_is_the_first_of_all_keys() {
        for spec in super::table::COMMANDS {
            for argc in 0..7 {
                let args: Vec<Bytes> = (0..argc).map(|i| Bytes::from(format!("a{i}"))).collect();
                assert_eq!(
                    spec.keys.first(&args),
                    spec.keys.positions(&args).first().copied(),
                    "{} with {argc} args",
                    spec.name
                );
            }
        }
    }
}
