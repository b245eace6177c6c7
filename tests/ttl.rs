//! Namespace TTL rules, end to end: every family of write goes through the proxy
//! into db 0 and, unchanged, straight to Redis into db 1. The client's replies must be
//! byte-identical; the TTL Redis then reports in db 0 must be the one the rule
//! implies (default added, long clamped, explicit shorter kept, KEEPTTL kept).

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use support::{Client, ServerKind, Stack, script::args};

/// `t:*` gets 100 s by default and at most 200 s; `o:*` has no rule.
const RULES: &str = r#"
[[namespace]]
name = "timed"
match = "t:*"
ttl = "100s"
max_ttl = "200s"
"#;

const DEFAULT_MS: i64 = 100_000;
const MAX_MS: i64 = 200_000;

/// What PTTL must say afterwards.
#[derive(Debug, Clone, Copy)]
enum Ttl {
    /// The rule's `ttl`.
    Default,
    /// Clamped to `max_ttl`.
    Max,
    /// Explicitly set by the command (ms), shorter than the max.
    Kept(i64),
    /// No TTL (-1).
    Persistent,
    /// No such key (-2).
    Missing,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Proxy and direct clients, the direct one in db 1 for the reference run.
struct Pair {
    proxy: Client,
    reference: Client,
    check: Client,
}

impl Pair {
    fn new(stack: &Stack) -> Pair {
        let mut reference = stack.direct();
        assert_eq!(reference.cmd("SELECT 1"), b"+OK\r\n");
        Pair {
            proxy: stack.client(),
            reference,
            check: stack.direct(),
        }
    }

    /// Runs `setup` directly in both dbs (no rule applies), then `command` through
    /// the proxy (db 0) and directly (db 1); the replies must be equal.
    fn case(&mut self, setup: &[&str], command: &str, key: &str, expect: Ttl) {
        for db in ["0", "1"] {
            self.check.call(&["SELECT", db]);
            self.check.call(&["FLUSHDB"]);
            for line in setup {
                let reply = self.check.cmd(line);
                assert!(!reply.starts_with(b"-"), "setup {line}: {reply:?}");
            }
        }
        self.check.call(&["SELECT", "0"]);
        let through = self.proxy.call(&args(command));
        let direct = self.reference.call(&args(command));
        assert_eq!(
            String::from_utf8_lossy(&through),
            String::from_utf8_lossy(&direct),
            "reply to `{command}` through the proxy differs from Redis's"
        );
        self.assert_ttl(command, key, expect);
    }

    fn assert_ttl(&mut self, command: &str, key: &str, expect: Ttl) {
        let pttl = pttl(&mut self.check, key);
        let ok = match expect {
            Ttl::Default => pttl > DEFAULT_MS - 5_000 && pttl <= DEFAULT_MS,
            Ttl::Max => pttl > MAX_MS - 5_000 && pttl <= MAX_MS,
            Ttl::Kept(ms) => pttl > 0 && pttl > ms - 5_000 && pttl <= ms,
            Ttl::Persistent => pttl == -1,
            Ttl::Missing => pttl == -2,
        };
        assert!(ok, "`{command}`: PTTL {key} is {pttl}, expected {expect:?}");
    }
}

fn pttl(c: &mut Client, key: &str) -> i64 {
    let reply = c.call(&["PTTL", key]);
    let text = String::from_utf8_lossy(&reply);
    text.trim_start_matches(':').trim().parse().unwrap()
}

#[test]
fn string_writes_get_the_default_ttl_or_keep_theirs() {
    let stack = Stack::start_with(RULES);
    let mut p = Pair::new(&stack);
    let old = ["SET t:k old"];
    let old_30s = ["SET t:k old EX 30"];
    p.case(&[], "SET t:k v", "t:k", Ttl::Default);
    p.case(&old_30s, "SET t:k v", "t:k", Ttl::Default);
    p.case(&old, "SET t:k v NX", "t:k", Ttl::Persistent);
    p.case(&old, "SET t:k v XX GET", "t:k", Ttl::Default);
    p.case(&[], "SET t:k v EX 50", "t:k", Ttl::Kept(50_000));
    p.case(&[], "SET t:k v PX 1500", "t:k", Ttl::Kept(1_500));
    p.case(&old_30s, "SET t:k v KEEPTTL", "t:k", Ttl::Kept(30_000));
    // A key without a TTL keeps none under KEEPTTL in Redis; under a max_ttl rule that
    // would outlive the max, so the rule's default applies (issue 12, item 9).
    p.case(&old, "SET t:k v KEEPTTL", "t:k", Ttl::Default);
    p.case(&[], "SET t:k v", "t:k", Ttl::Default);
    p.case(&[], "SETNX t:k v", "t:k", Ttl::Default);
    p.case(&old, "GETSET t:k v", "t:k", Ttl::Default);
    p.case(&[], "MSET t:k v t:j w o:k x", "t:j", Ttl::Default);
    p.case(&[], "MSET t:k v t:j w o:k x", "o:k", Ttl::Persistent);
    p.case(&[], "MSETNX t:k v t:j w", "t:k", Ttl::Default);
    p.case(&[], "APPEND t:k abc", "t:k", Ttl::Default);
    p.case(&[], "INCR t:k", "t:k", Ttl::Default);
    p.case(&[], "INCRBY t:k 5", "t:k", Ttl::Default);
    p.case(&[], "DECRBY t:k 5", "t:k", Ttl::Default);
    p.case(&[], "INCRBYFLOAT t:k 1.5", "t:k", Ttl::Default);
    p.case(&[], "SETRANGE t:k 3 abc", "t:k", Ttl::Default);
    p.case(&[], "SETBIT t:k 7 1", "t:k", Ttl::Default);
    p.case(&["SET t:k 1 EX 30"], "INCR t:k", "t:k", Ttl::Kept(30_000));
    p.case(&[], "SET o:k v", "o:k", Ttl::Persistent);
    p.case(&["SET t:src v"], "COPY t:src t:dst", "t:dst", Ttl::Default);
    p.case(
        &["SET t:src v"],
        "RENAME t:src t:dst",
        "t:dst",
        Ttl::Default,
    );
    p.case(
        &["SET t:src v EX 40"],
        "RENAME t:src t:dst",
        "t:dst",
        Ttl::Kept(40_000),
    );
}

#[test]
fn collection_writes_get_the_default_ttl() {
    let stack = Stack::start_with(RULES);
    let mut p = Pair::new(&stack);
    p.case(&[], "HSET t:h f v g w", "t:h", Ttl::Default);
    p.case(&[], "HMSET t:h f v", "t:h", Ttl::Default);
    p.case(&[], "HSETNX t:h f v", "t:h", Ttl::Default);
    p.case(&[], "HINCRBY t:h f 2", "t:h", Ttl::Default);
    p.case(&[], "HINCRBYFLOAT t:h f 2.5", "t:h", Ttl::Default);
    p.case(&[], "LPUSH t:l a b", "t:l", Ttl::Default);
    p.case(&[], "RPUSH t:l a b", "t:l", Ttl::Default);
    p.case(
        &["RPUSH t:l a"],
        "LINSERT t:l BEFORE a z",
        "t:l",
        Ttl::Default,
    );
    p.case(
        &["RPUSH t:s a"],
        "LMOVE t:s t:l LEFT RIGHT",
        "t:l",
        Ttl::Default,
    );
    p.case(&[], "SADD t:s a b", "t:s", Ttl::Default);
    p.case(&["SADD t:a x"], "SUNIONSTORE t:s t:a", "t:s", Ttl::Default);
    p.case(&[], "ZADD t:z 1 a", "t:z", Ttl::Default);
    p.case(&[], "ZINCRBY t:z 1 a", "t:z", Ttl::Default);
    p.case(&[], "XADD t:x 1-1 f v", "t:x", Ttl::Default);
    p.case(&[], "PFADD t:p a b c", "t:p", Ttl::Default);
    p.case(&[], "GEOADD t:g 13.36 38.11 palermo", "t:g", Ttl::Default);
    p.case(&["HSET t:h f v"], "HSET t:h f w", "t:h", Ttl::Default);
    p.case(&["HSET t:h f v"], "HDEL t:h f", "t:h", Ttl::Missing);
    // A write Redis refuses creates nothing.
    p.case(&[], "HSET t:h f", "t:h", Ttl::Missing);
}

#[test]
fn explicit_ttls_are_clamped_to_max_ttl() {
    let stack = Stack::start_with(RULES);
    let mut p = Pair::new(&stack);
    let v = ["SET t:k v"];
    let far = (now_s() + 100_000).to_string();
    let far_ms = ((now_s() + 100_000) * 1000).to_string();
    let near = (now_s() + 60).to_string();
    p.case(&[], "SET t:k v EX 100000", "t:k", Ttl::Max);
    p.case(&[], "SET t:k v PX 100000000", "t:k", Ttl::Max);
    p.case(&[], &format!("SET t:k v EXAT {far}"), "t:k", Ttl::Max);
    p.case(&[], &format!("SET t:k v PXAT {far_ms}"), "t:k", Ttl::Max);
    p.case(
        &[],
        &format!("SET t:k v EXAT {near}"),
        "t:k",
        Ttl::Kept(60_000),
    );
    p.case(&[], "SETEX t:k 100000 v", "t:k", Ttl::Max);
    p.case(&[], "SETEX t:k 50 v", "t:k", Ttl::Kept(50_000));
    p.case(&[], "PSETEX t:k 100000000 v", "t:k", Ttl::Max);
    p.case(&v, "GETEX t:k EX 100000", "t:k", Ttl::Max);
    p.case(&v, "GETEX t:k PX 1500", "t:k", Ttl::Kept(1_500));
    p.case(&v, &format!("GETEX t:k EXAT {far}"), "t:k", Ttl::Max);
    p.case(&v, "EXPIRE t:k 100000", "t:k", Ttl::Max);
    p.case(&v, "EXPIRE t:k 50", "t:k", Ttl::Kept(50_000));
    p.case(&v, "PEXPIRE t:k 100000000 NX", "t:k", Ttl::Max);
    p.case(
        &["SET t:k v EX 10"],
        "EXPIRE t:k 100000 GT",
        "t:k",
        Ttl::Max,
    );
    p.case(&v, &format!("EXPIREAT t:k {far}"), "t:k", Ttl::Max);
    p.case(&v, &format!("PEXPIREAT t:k {far_ms}"), "t:k", Ttl::Max);
    // Unparsable values are Redis's to reject, with its own error.
    p.case(&v, "EXPIRE t:k soon", "t:k", Ttl::Persistent);
    p.case(&[], "SET t:k v EX soon", "t:k", Ttl::Missing);
    // A refused SET leaves the key as it was, without a TTL it did not have.
    p.case(&["SET t:k old"], "SET t:k v EX", "t:k", Ttl::Persistent);
}

/// Valkey 8.1's `SET key value IFEQ old` (write only if the key holds `old`) is a SET
/// like any other: the rule's default TTL is added, a long one clamped, KEEPTTL kept.
#[test]
fn set_ifeq_gets_the_default_ttl_or_a_clamp() {
    if support::skip_unless(ServerKind::Valkey, (8, 1), "SET … IFEQ") {
        return;
    }
    let stack = Stack::start_with(RULES);
    let mut p = Pair::new(&stack);
    let old = ["SET t:k old"];
    let old_30s = ["SET t:k old EX 30"];
    p.case(&old, "SET t:k new IFEQ old", "t:k", Ttl::Default);
    p.case(&old_30s, "SET t:k new IFEQ old", "t:k", Ttl::Default);
    p.case(&old, "SET t:k new IFEQ old GET", "t:k", Ttl::Default);
    p.case(
        &old,
        "SET t:k new ifeq old px 1500",
        "t:k",
        Ttl::Kept(1_500),
    );
    p.case(&old, "SET t:k new IFEQ old EX 100000", "t:k", Ttl::Max);
    p.case(&old, "SET t:k new EX 100000 IFEQ old", "t:k", Ttl::Max);
    p.case(
        &old_30s,
        "SET t:k new IFEQ old KEEPTTL",
        "t:k",
        Ttl::Kept(30_000),
    );
    // IFEQ on a missing key writes nothing.
    p.case(&[], "SET t:k new IFEQ old", "t:k", Ttl::Missing);
    // Valkey's syntax errors stay Valkey's.
    p.case(&old, "SET t:k new IFEQ old NX", "t:k", Ttl::Persistent);
    p.case(&old, "SET t:k new IFEQ", "t:k", Ttl::Persistent);
}

#[test]
fn restore_gets_the_default_or_a_clamp() {
    let stack = Stack::start_with(RULES);
    let mut direct = stack.direct();
    let mut client = stack.client();
    direct.cmd("SET o:orig value");
    let dump = direct.call(&["DUMP", "o:orig"]);
    // $<len>\r\n<payload>\r\n
    let start = dump.iter().position(|&b| b == b'\n').unwrap() + 1;
    let payload = dump[start..dump.len() - 2].to_vec();
    let restore = |client: &mut Client, key: &str, ttl: &str| {
        let mut cmd: Vec<Vec<u8>> = vec![b"RESTORE".to_vec(), key.into(), ttl.into()];
        cmd.push(payload.clone());
        client.call(&cmd)
    };
    assert_eq!(restore(&mut client, "t:r1", "0"), b"+OK\r\n");
    let ttl = pttl(&mut direct, "t:r1");
    assert!(ttl > DEFAULT_MS - 5_000 && ttl <= DEFAULT_MS, "{ttl}");
    assert_eq!(restore(&mut client, "t:r2", "999999999"), b"+OK\r\n");
    let ttl = pttl(&mut direct, "t:r2");
    assert!(ttl > MAX_MS - 5_000 && ttl <= MAX_MS, "{ttl}");
    assert_eq!(restore(&mut client, "o:r3", "0"), b"+OK\r\n");
    assert_eq!(pttl(&mut direct, "o:r3"), -1);
    assert_eq!(direct.call(&["GET", "t:r2"]), b"$5\r\nvalue\r\n");
}

#[test]
fn persist_is_refused_where_max_ttl_applies() {
    let stack = Stack::start_with(
        r#"
[[namespace]]
name = "capped"
match = "t:*"
max_ttl = "200s"

[[namespace]]
name = "loose"
match = "l:*"
ttl = "100s"
"#,
    );
    let mut client = stack.client();
    let mut direct = stack.direct();
    // max_ttl alone is also the default for writes that set none.
    assert_eq!(client.cmd("SET t:k v"), b"+OK\r\n");
    let ttl = pttl(&mut direct, "t:k");
    assert!(ttl > MAX_MS - 5_000 && ttl <= MAX_MS, "{ttl}");
    let refused = String::from_utf8(client.cmd("PERSIST t:k")).unwrap();
    assert!(
        refused.starts_with("-ERR PERSIST refused") && refused.contains("'capped' (rule 1"),
        "{refused}"
    );
    let refused = String::from_utf8(client.cmd("GETEX t:k PERSIST")).unwrap();
    assert!(
        refused.starts_with("-ERR GETEX PERSIST refused"),
        "{refused}"
    );
    assert!(pttl(&mut direct, "t:k") > 0, "the TTL stays");
    // Without max_ttl, PERSIST does what it says.
    client.cmd("SET l:k v");
    assert_eq!(client.cmd("PERSIST l:k"), b":1\r\n");
    assert_eq!(pttl(&mut direct, "l:k"), -1);
    // Inside MULTI the refusal aborts the transaction, as Redis does for any command
    // refused while queueing.
    assert_eq!(client.cmd("MULTI"), b"+OK\r\n");
    assert_eq!(client.cmd("SET t:other v"), b"+QUEUED\r\n");
    assert!(
        client
            .cmd("PERSIST t:k")
            .starts_with(b"-ERR PERSIST refused")
    );
    assert!(client.cmd("EXEC").starts_with(b"-EXECABORT"));
    assert_eq!(direct.cmd("EXISTS t:other"), b":0\r\n");
    assert_eq!(client.cmd("PING"), b"+PONG\r\n");
}

/// The script of `transactions_and_pipelines_see_only_their_own_replies`.
const SCRIPT: &[&str] = &[
    "SET t:a v",
    "HSET t:h f v",
    "INCR t:n",
    "MSET t:m1 1 o:m2 2",
    "SADD t:s x",
    "GET t:a",
    "EXPIRE t:a 100000",
    "ZADD t:z 1 a",
    "HGETALL t:h",
];

#[test]
fn transactions_and_pipelines_see_only_their_own_replies() {
    let stack = Stack::start_with(RULES);
    let mut p = Pair::new(&stack);
    let mut through = Vec::new();
    let mut direct = Vec::new();
    // MULTI/EXEC: the PEXPIREs go inside the transaction, EXEC's array hides them.
    for (client, out) in [
        (&mut p.proxy, &mut through),
        (&mut p.reference, &mut direct),
    ] {
        out.push(client.cmd("MULTI"));
        for line in SCRIPT {
            out.push(client.cmd(line));
        }
        out.push(client.cmd("EXEC"));
    }
    assert_eq!(show(&through), show(&direct));
    assert!(through.last().unwrap().starts_with(b"*9\r\n"));
    for key in ["t:h", "t:n", "t:m1", "t:s", "t:z"] {
        p.assert_ttl("MULTI", key, Ttl::Default);
    }
    p.assert_ttl("MULTI", "t:a", Ttl::Max);
    p.assert_ttl("MULTI", "o:m2", Ttl::Persistent);

    // A WATCHed transaction that fails still hides nothing it should not.
    for client in [&mut p.proxy, &mut p.reference] {
        client.cmd("WATCH t:a");
    }
    p.check.cmd("SET t:a changed");
    p.check.cmd("SELECT 1");
    p.check.cmd("SET t:a changed");
    p.check.cmd("SELECT 0");
    let mut aborted = Vec::new();
    for client in [&mut p.proxy, &mut p.reference] {
        client.cmd("MULTI");
        client.cmd("HSET t:w f v");
        aborted.push(client.cmd("EXEC"));
    }
    assert_eq!(aborted[0], aborted[1]);
    assert_eq!(pttl(&mut p.check, "t:w"), -2);

    // A long pipeline: every reply in order, none of the proxy's own.
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(encode(&format!("HSET t:p{} f {i}", i % 50)));
        batch.extend(encode(&format!("INCR t:c{}", i % 7)));
        batch.extend(encode(&format!("HGET t:p{} f", i % 50)));
    }
    let mut replies = Vec::new();
    for client in [&mut p.proxy, &mut p.reference] {
        client.send_raw(&batch);
        replies.push((0..3000).map(|_| client.read_reply()).collect::<Vec<_>>());
    }
    assert_eq!(show(&replies[0]), show(&replies[1]));
    p.assert_ttl("pipeline", "t:p7", Ttl::Default);
    p.assert_ttl("pipeline", "t:c3", Ttl::Default);
    // An extra reply left over would be read here instead of the PONG.
    p.proxy.assert_cmd("PING", b"+PONG\r\n");
}

/// A RESP3 client with tracking on: Redis sends the invalidation of a key it read
/// between the reply to a write and the reply to the proxy's PEXPIRE after it. The
/// push is the client's, the PEXPIRE's reply is not (found by the fuzzer: the next
/// command's reply was the PEXPIRE's `:1`).
#[test]
fn a_tracking_push_between_a_write_and_its_ttl_is_the_clients() {
    let stack = Stack::start_with(RULES);
    let mut c = stack.client();
    c.assert_cmd("CLIENT TRACKING ON", b"+OK\r\n");
    assert!(c.cmd("HELLO 3").starts_with(b"%"));
    c.assert_cmd("SADD t:set a", b":1\r\n");
    c.assert_cmd("SMEMBERS t:set", b"~1\r\n$1\r\na\r\n"); // now tracked
    let mut batch = encode("SADD t:set b");
    batch.extend(encode("SCARD t:set"));
    c.send_raw(&batch);
    let replies: Vec<Vec<u8>> = (0..3).map(|_| c.read_reply()).collect();
    let text = show(&replies);
    assert!(text.contains(&":1\r\n".to_owned()), "{text:?}");
    assert!(
        text.iter()
            .any(|r| r.starts_with(">2\r\n$10\r\ninvalidate")),
        "{text:?}"
    );
    assert_eq!(text.last().unwrap(), ":2\r\n", "SCARD's reply: {text:?}");
    c.assert_cmd("PING", b"+PONG\r\n");
}

fn encode(line: &str) -> Vec<u8> {
    support::resp::encode_command(&args(line))
}

fn show(replies: &[Vec<u8>]) -> Vec<String> {
    replies
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

#[test]
fn ttl_rules_compose_with_compression() {
    let stack = Stack::start_with(
        r#"
[[namespace]]
name = "zipped"
match = "z:*"
ttl = "100s"
compress = "zstd"
compress_min_size = "1KiB"
"#,
    );
    let mut client = stack.client();
    let mut direct = stack.direct();
    let value = "json ".repeat(1000);
    assert_eq!(client.call(&["SET", "z:big", &value]), b"+OK\r\n");
    let stored = direct.call(&["STRLEN", "z:big"]);
    let stored: usize = String::from_utf8_lossy(&stored[1..])
        .trim()
        .parse()
        .unwrap();
    assert!(stored < 1000, "stored compressed ({stored} bytes)");
    let ttl = pttl(&mut direct, "z:big");
    assert!(ttl > DEFAULT_MS - 5_000 && ttl <= DEFAULT_MS, "{ttl}");
    assert_eq!(
        client.call(&["GET", "z:big"]),
        format!("${}\r\n{value}\r\n", value.len()).into_bytes()
    );
    // An in-place change runs through the compression guard and still gets the TTL.
    assert_eq!(client.call(&["APPEND", "z:small", "abc"]), b":3\r\n");
    let ttl = pttl(&mut direct, "z:small");
    assert!(ttl > DEFAULT_MS - 5_000 && ttl <= DEFAULT_MS, "{ttl}");
    assert_eq!(client.call(&["INCR", "z:n"]), b":1\r\n");
    assert!(pttl(&mut direct, "z:n") > 0);
}
