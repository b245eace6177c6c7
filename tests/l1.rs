//! The L1 cache: reads in `l1 = true` namespaces are served in-process after the first
//! read, byte for byte as Redis would reply, and never outlive a write — whether the
//! write went through this proxy (at once), or bypassed it (within the invalidation
//! delay with tracking, within `l1_ttl` without), nor the key's own TTL.
//!
//! What reached Redis is read from Redis itself (`INFO commandstats`, `MONITOR`,
//! `CLIENT LIST`); what the proxy did, from `RESPITE STATS`. Data a test starts with is
//! written before the proxy starts, so no invalidation of the setup races the first
//! read.

mod support;

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Barrier,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use support::{
    Client, FaultProxy, Proxy, RedisServer, Stack,
    l1::{
        bulk, calls, stat, stat_int, stats, tracking_ids, wait_new_tracking_connection,
        wait_tracking,
    },
    resp::encode_command,
    script::args,
    show, wait_until,
};

/// `c:*` is cached for 10 s, except `c:nocache:*`, which an earlier rule leaves out.
const CACHED: &str = r#"
[l1]
max_memory = "64MiB"
coherence = "tracking"

[[namespace]]
name = "nocache"
match = "c:nocache:*"
l1 = false

[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "10s"
"#;

/// How long the proxy may take to establish tracking after it starts.
const READY: Duration = Duration::from_secs(5);
/// A write that bypasses the proxy must be visible through it this fast (tracking).
const BYPASS_BOUND: Duration = Duration::from_millis(100);
/// Replies during an outage must come at least this fast.
const FAST: Duration = Duration::from_secs(2);
const NIL: &[u8] = b"$-1\r\n";
const OK: &[u8] = b"+OK\r\n";

/// Redis with `lines` applied (on one connection, so `SELECT` carries over), then the
/// proxy in front of it with `toml`.
fn seeded(lines: &[&str], toml: &str) -> Stack {
    let redis = RedisServer::start();
    seed(&redis, lines);
    let proxy = Proxy::start(&redis.url(), toml);
    Stack { proxy, redis }
}

fn seed(redis: &RedisServer, lines: &[&str]) {
    let mut d = redis.client();
    for line in lines {
        let reply = d.call(&args(line));
        assert!(!reply.starts_with(b"-"), "setup {line}: {}", show(&reply));
    }
}

/// A client through the proxy, once the proxy reports tracking up.
fn ready(stack: &Stack) -> Client {
    let mut c = stack.client();
    wait_tracking(&mut c, "up", READY);
    c
}

/// A client through the proxy that has selected `db`.
fn client_in_db(stack: &Stack, db: u32) -> Client {
    let mut c = stack.client();
    c.assert_cmd(&format!("SELECT {db}"), OK);
    c
}

fn command_name(line: &str) -> String {
    line.split_whitespace().next().unwrap().to_ascii_lowercase()
}

/// Asserts `line` through `c` replies `expected` without the command reaching Redis.
fn assert_hit(c: &mut Client, d: &mut Client, line: &str, expected: &[u8]) {
    let name = command_name(line);
    let before = calls(d, &name);
    c.assert_cmd(line, expected);
    let reached = calls(d, &name) - before;
    assert!(
        reached == 0,
        "{line} should be served from L1 but reached Redis {reached} time(s)"
    );
}

/// Reads `line` once (the fill), then asserts the next read is a hit.
fn prime(c: &mut Client, d: &mut Client, line: &str, expected: &[u8]) {
    c.assert_cmd(line, expected);
    assert_hit(c, d, line, expected);
}

/// Polls `line` through `c` until it replies `expected`, then asserts that happened
/// within `bound` of `since` (and prints how long it took).
fn assert_seen_within(
    label: &str,
    c: &mut Client,
    line: &str,
    expected: &[u8],
    since: Instant,
    bound: Duration,
) {
    let give_up = bound + Duration::from_secs(3);
    let mut last;
    loop {
        last = c.cmd(line);
        if last == expected || since.elapsed() > give_up {
            break;
        }
        thread::sleep(Duration::from_micros(200));
    }
    let took = since.elapsed();
    assert!(
        last == expected,
        "{label}: {line} still replies {} after {took:?} (expected {})",
        show(&last),
        show(expected)
    );
    eprintln!("{label}: {line} showed the new state after {took:?}");
    assert!(
        took <= bound,
        "{label}: {line} showed the new state only after {took:?} (bound {bound:?})"
    );
}

// ---------------------------------------------------------------------------------
// Hits

#[test]
fn repeated_gets_are_served_from_l1() {
    let stack = seeded(&["SET c:k v1"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    assert_eq!(
        tracking_ids(&mut d).len(),
        1,
        "one respite-tracking connection"
    );
    let misses = stat_int(&mut c, "l1_misses");
    c.assert_cmd("GET c:k", &bulk("v1"));
    assert!(
        stat_int(&mut c, "l1_misses") > misses,
        "the first GET is a miss"
    );

    let (gets, hits) = (calls(&mut d, "get"), stat_int(&mut c, "l1_hits"));
    for _ in 0..10 {
        c.assert_cmd("GET c:k", &bulk("v1"));
    }
    // Another client of the same proxy shares the cache.
    stack.client().assert_cmd("GET c:k", &bulk("v1"));
    assert_eq!(calls(&mut d, "get") - gets, 0, "cached GETs reached Redis");
    let hits = stat_int(&mut c, "l1_hits") - hits;
    assert!(hits >= 11, "l1_hits rose by {hits}, expected at least 11");
    assert!(stat_int(&mut c, "l1_entries") >= 1);
    assert!(stat_int(&mut c, "l1_bytes") > 0);

    // A missing key is cached too.
    prime(&mut c, &mut d, "GET c:missing", NIL);
    assert_hit(&mut c, &mut d, "GET c:missing", NIL);
}

#[test]
fn keys_outside_l1_namespaces_always_reach_redis() {
    let stack = seeded(&["SET other:k v", "SET c:nocache:k v", "SET c:k v"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    prime(&mut c, &mut d, "GET c:k", &bulk("v"));
    let before = calls(&mut d, "get");
    for _ in 0..5 {
        c.assert_cmd("GET other:k", &bulk("v"));
        // First matching rule wins: c:nocache:* says l1 = false before c:* says true.
        c.assert_cmd("GET c:nocache:k", &bulk("v"));
        c.assert_cmd("GET nocache", NIL);
    }
    assert_eq!(
        calls(&mut d, "get") - before,
        15,
        "every GET outside an L1 namespace must reach Redis"
    );
}

/// Reads compared byte for byte with Redis, in both protocols; the data is written
/// before the proxy starts.
const SHAPES: &[&str] = &[
    "SET c:str hello",
    "SET c:int 12345",
    "HSET c:h a 1 b 2",
    "SADD c:s x y z",
    "SADD c:ints 3 1 2",
    "ZADD c:z 1.5 m 2 n",
    "RPUSH c:l a b c",
];

const READS: &[&str] = &[
    "GET c:str",
    "GET c:int",
    "GET c:none",
    "HGETALL c:h",
    "HGETALL c:none",
    "HGET c:h a",
    "HGET c:h nope",
    "HMGET c:h a nope b",
    "HEXISTS c:h a",
    "HLEN c:h",
    "SMEMBERS c:s",
    "SMEMBERS c:ints",
    "SMEMBERS c:none",
    "SISMEMBER c:s x",
    "SCARD c:s",
    "ZRANGE c:z 0 -1 WITHSCORES",
    "ZRANGE c:z 0 -1",
    "ZSCORE c:z m",
    "ZSCORE c:z nope",
    "ZCARD c:z",
    "EXISTS c:h",
    "EXISTS c:none",
    "TYPE c:h",
    "TYPE c:z",
    "TYPE c:none",
    "LRANGE c:l 0 -1",
    "LRANGE c:l 1 1",
    "LLEN c:l",
    "LINDEX c:l -1",
    "LINDEX c:l 9",
    "STRLEN c:str",
    "GETRANGE c:str 1 3",
    "MGET c:str c:none c:int",
];

#[test]
fn replies_from_l1_are_byte_identical_in_resp2_and_resp3() {
    let stack = seeded(SHAPES, CACHED);
    let mut p2 = ready(&stack);
    let mut p3 = stack.client();
    let mut d2 = stack.direct();
    let mut d3 = stack.direct();
    for c in [&mut p3, &mut d3] {
        assert!(c.cmd("HELLO 3").starts_with(b"%"));
    }
    let expected: Vec<(Vec<u8>, Vec<u8>)> = READS.iter().map(|l| (d2.cmd(l), d3.cmd(l))).collect();
    let mut failures = Vec::new();
    // RESP2 first fills the cache, then RESP3 reads the same keys, then both again.
    for round in 0..3 {
        for (line, (want2, want3)) in READS.iter().zip(&expected) {
            for (proto, c, want) in [(2, &mut p2, want2), (3, &mut p3, want3)] {
                let got = c.cmd(line);
                if &got != want {
                    failures.push(format!(
                        "round {round} RESP{proto} {line}: proxy {} redis {}",
                        show(&got),
                        show(want)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // By now every read of an existing key is cached in both protocols: nothing
    // reaches Redis (missing keys: `reads_of_missing_keys_are_cached`).
    let mut uncached = Vec::new();
    for line in READS.iter().filter(|l| !l.contains("c:none")) {
        for (proto, c) in [(2, &mut p2), (3, &mut p3)] {
            let name = command_name(line);
            let before = calls(&mut d2, &name);
            c.cmd(line);
            if calls(&mut d2, &name) != before {
                uncached.push(format!("RESP{proto} {line}"));
            }
        }
    }
    assert!(
        uncached.is_empty(),
        "reads still reaching Redis after three rounds:\n{}",
        uncached.join("\n")
    );
}

/// Reads of a key that does not exist, each with the reply Redis gives.
const MISSING: &[&str] = &[
    "GET c:none",
    "MGET c:none",
    "HGET c:none f",
    "HGETALL c:none",
    "HMGET c:none f",
    "HEXISTS c:none f",
    "HLEN c:none",
    "SMEMBERS c:none",
    "SISMEMBER c:none x",
    "SCARD c:none",
    "LRANGE c:none 0 -1",
    "LLEN c:none",
    "LINDEX c:none 0",
    "ZRANGE c:none 0 -1",
    "ZSCORE c:none m",
    "ZCARD c:none",
    "STRLEN c:none",
    "EXISTS c:none",
    "TYPE c:none",
    "GETRANGE c:none 0 -1",
];

#[test]
fn reads_of_missing_keys_are_cached() {
    let stack = seeded(&[], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    let mut uncached = Vec::new();
    for line in MISSING {
        let want = d.cmd(line);
        c.assert_cmd(line, &want);
        let name = command_name(line);
        let before = calls(&mut d, &name);
        c.assert_cmd(line, &want);
        if calls(&mut d, &name) != before {
            uncached.push(format!("{line} ({})", show(&want)));
        }
    }
    assert!(
        uncached.is_empty(),
        "reads of a missing key still reaching Redis on the second read:\n{}",
        uncached.join("\n")
    );
}

#[test]
fn wrongtype_errors_are_redis_errors() {
    let stack = seeded(&["HSET c:h f v", "SET c:s str"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    for line in ["GET c:h", "HGET c:s f", "LRANGE c:h 0 -1", "GET c:h"] {
        let want = d.cmd(line);
        assert!(want.starts_with(b"-WRONGTYPE"));
        c.assert_cmd(line, &want);
    }
}

#[test]
fn stats_reply_follows_the_client_protocol() {
    let stack = seeded(&[], CACHED);
    let mut c = ready(&stack);
    let flat = c.cmd("RESPITE STATS");
    assert!(flat.starts_with(b"*"), "RESP2 STATS: {}", show(&flat));
    assert!(c.cmd("HELLO 3").starts_with(b"%"));
    let map = c.cmd("RESPITE STATS");
    assert!(map.starts_with(b"%"), "RESP3 STATS: {}", show(&map));
    let all = stats(&mut c);
    for field in [
        "l1_entries",
        "l1_bytes",
        "l1_max_bytes",
        "l1_hits",
        "l1_misses",
        "l1_coalesced",
        "l1_stale",
        "tracking",
        "upstream",
    ] {
        assert!(
            all.contains_key(field),
            "RESPITE STATS lacks {field}: {all:?}"
        );
    }
    assert_eq!(all["l1_max_bytes"], (64u64 << 20).to_string());
    assert_eq!(all["tracking"], "up");
    assert_eq!(all["upstream"], "up");
}

#[test]
fn db_is_part_of_the_cache_key() {
    let stack = seeded(&["SET c:db zero", "SELECT 1", "SET c:db one"], CACHED);
    let mut c0 = ready(&stack);
    let mut c1 = client_in_db(&stack, 1);
    let mut d = stack.direct();
    for _ in 0..3 {
        c0.assert_cmd("GET c:db", &bulk("zero"));
        c1.assert_cmd("GET c:db", &bulk("one"));
        c1.assert_cmd("MGET c:db", b"*1\r\n$3\r\none\r\n");
    }
    assert_hit(&mut c1, &mut d, "GET c:db", &bulk("one"));
    // The same connection switching db.
    c1.assert_cmd("SELECT 0", OK);
    c1.assert_cmd("GET c:db", &bulk("zero"));
    c1.assert_cmd("SELECT 2", OK);
    c1.assert_cmd("GET c:db", NIL);
}

#[test]
fn flushl1_empties_the_cache() {
    let stack = seeded(&["SET c:k v"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    prime(&mut c, &mut d, "GET c:k", &bulk("v"));
    c.assert_cmd("RESPITE FLUSHL1", OK);
    let emptied = wait_until(Duration::from_secs(2), || {
        stat_int(&mut c, "l1_entries") == 0
    });
    assert!(
        emptied,
        "l1_entries after FLUSHL1: {}",
        stat(&mut c, "l1_entries")
    );
    let before = calls(&mut d, "get");
    c.assert_cmd("GET c:k", &bulk("v"));
    assert_eq!(
        calls(&mut d, "get") - before,
        1,
        "GET after FLUSHL1 is a miss"
    );
    assert_hit(&mut c, &mut d, "GET c:k", &bulk("v"));
}

/// `MONITOR` lines Redis shows until `marker` is echoed by another connection.
fn monitored_until(mon: &mut Client, d: &mut Client, marker: &str) -> Vec<String> {
    d.assert_cmd(&format!("ECHO {marker}"), &bulk(marker));
    let mut lines = Vec::new();
    loop {
        let line = String::from_utf8_lossy(&mon.read_reply()).into_owned();
        if line.contains(marker) {
            return lines;
        }
        lines.push(line);
    }
}

fn mentions(lines: &[String], key: &str) -> bool {
    let quoted = format!("\"{key}\"");
    lines.iter().any(|l| l.contains(&quoted))
}

#[test]
fn partly_cached_mget_fetches_only_the_missing_keys() {
    let stack = seeded(&["MSET c:mg:a A c:mg:b B c:mg:c C other:mg X"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    let mget = "MGET c:mg:a c:mg:b c:mg:c c:mg:none other:mg";
    let expected = d.cmd(mget);
    prime(&mut c, &mut d, "GET c:mg:a", &bulk("A"));
    prime(&mut c, &mut d, "GET c:mg:b", &bulk("B"));

    let mut mon = stack.direct();
    mon.assert_cmd("MONITOR", OK);
    c.assert_cmd(mget, &expected);
    let first = monitored_until(&mut mon, &mut d, "end-of-first-mget");
    eprintln!("first MGET reached Redis as: {first:?}");
    for cached in ["c:mg:a", "c:mg:b"] {
        assert!(
            !mentions(&first, cached),
            "{cached} was cached but reached Redis: {first:?}"
        );
    }
    for missing in ["c:mg:c", "c:mg:none", "other:mg"] {
        assert!(
            mentions(&first, missing),
            "{missing} was not cached yet but did not reach Redis: {first:?}"
        );
    }

    // Now only the key outside the namespace is fetched.
    c.assert_cmd(mget, &expected);
    let second = monitored_until(&mut mon, &mut d, "end-of-second-mget");
    eprintln!("second MGET reached Redis as: {second:?}");
    for cached in ["c:mg:a", "c:mg:b", "c:mg:c", "c:mg:none"] {
        assert!(
            !mentions(&second, cached),
            "{cached} was cached but reached Redis: {second:?}"
        );
    }
    assert!(mentions(&second, "other:mg"), "{second:?}");
}

// ---------------------------------------------------------------------------------
// Read-your-writes

const RYW_THREADS: usize = 16;
const RYW_KEYS: usize = 4;
const RYW_ITERATIONS: usize = 1500;
const RYW_TIME_CAP: Duration = Duration::from_secs(12);

fn ryw_key(t: usize, k: usize) -> String {
    format!("c:ryw:{t}:{k}")
}

/// One thread's keys: SET (or HSET) through `w`, then read back through `r` (another
/// proxy connection) and sometimes through `w`; only this thread writes them, so the
/// read must be exactly the last acknowledged value.
fn ryw_worker(addr: SocketAddr, t: usize, started: Instant) -> Result<usize, String> {
    let mut w = Client::connect(addr);
    let mut r = Client::connect(addr);
    let hash = format!("c:ryw:{t}:h");
    let mut last: Vec<Option<String>> = vec![None; RYW_KEYS];
    let mut done = 0;
    for i in 1..=RYW_ITERATIONS {
        if started.elapsed() > RYW_TIME_CAP {
            break;
        }
        let v = format!("{t}-{i}");
        let k = i % RYW_KEYS;
        let key = ryw_key(t, k);
        let check = |what: &str, got: Vec<u8>, want: Vec<u8>| {
            if got == want {
                Ok(())
            } else {
                Err(format!(
                    "thread {t} iteration {i}: {what} replied {} after the proxy acknowledged {v}; expected {}",
                    show(&got),
                    show(&want)
                ))
            }
        };
        if i % 2 == 0 {
            check("SET", w.call(&["SET", &key, &v]), OK.to_vec())?;
            last[k] = Some(v.clone());
            check("GET (other connection)", r.call(&["GET", &key]), bulk(&v))?;
            if i % 8 == 0 {
                check("GET (same connection)", w.call(&["GET", &key]), bulk(&v))?;
            }
            if i % 8 == 4 {
                let other = (k + 1) % RYW_KEYS;
                let mut want = b"*2\r\n".to_vec();
                want.extend(bulk(&v));
                want.extend(last[other].as_deref().map_or(NIL.to_vec(), bulk));
                let got = r.call(&["MGET", &key, &ryw_key(t, other)]);
                check("MGET", got, want)?;
            }
        } else {
            let got = w.call(&["HSET", &hash, "f", &v]);
            if got != b":0\r\n" && got != b":1\r\n" {
                return Err(format!("thread {t}: HSET replied {}", show(&got)));
            }
            check("HGET", r.call(&["HGET", &hash, "f"]), bulk(&v))?;
        }
        done += 1;
    }
    Ok(done)
}

/// Reads every key of every worker over and over, so L1 is hot and fills race writes.
fn ryw_hammer(addr: SocketAddr, stop: Arc<AtomicBool>) -> Result<usize, String> {
    let mut c = Client::connect(addr);
    let mut batch = Vec::new();
    for t in 0..RYW_THREADS {
        for k in 0..RYW_KEYS {
            batch.extend(encode_command(&["GET", &ryw_key(t, k)]));
        }
        batch.extend(encode_command(&["HGET", &format!("c:ryw:{t}:h"), "f"]));
    }
    let replies = RYW_THREADS * (RYW_KEYS + 1);
    let mut rounds = 0;
    while !stop.load(Ordering::Relaxed) {
        c.send_raw(&batch);
        for _ in 0..replies {
            let r = c.read_reply();
            if !r.starts_with(b"$") {
                return Err(format!("hammer read {}", show(&r)));
            }
        }
        rounds += 1;
    }
    Ok(rounds)
}

#[test]
fn read_your_writes_under_load() {
    let stack = seeded(&[], CACHED);
    let mut c = ready(&stack);
    let addr = stack.proxy.addr();
    let hits = stat_int(&mut c, "l1_hits");
    let stop = Arc::new(AtomicBool::new(false));
    let hammers: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || ryw_hammer(addr, stop))
        })
        .collect();
    let started = Instant::now();
    let workers: Vec<_> = (0..RYW_THREADS)
        .map(|t| thread::spawn(move || ryw_worker(addr, t, started)))
        .collect();
    let results: Vec<Result<usize, String>> = workers
        .into_iter()
        .map(|w| w.join().unwrap_or_else(|_| Err("worker panicked".into())))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let rounds: Vec<Result<usize, String>> = hammers
        .into_iter()
        .map(|h| h.join().unwrap_or_else(|_| Err("hammer panicked".into())))
        .collect();
    let errors: Vec<&String> = results
        .iter()
        .chain(&rounds)
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert!(
        errors.is_empty(),
        "stale reads:\n{}",
        errors
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let done: usize = results.iter().flatten().sum();
    let hits = stat_int(&mut c, "l1_hits") - hits;
    eprintln!(
        "{done} write/read pairs in {:?}, hammer rounds {rounds:?}, l1_hits +{hits}",
        started.elapsed()
    );
    assert!(
        done >= RYW_THREADS * 200,
        "only {done} write/read pairs ran"
    );
    assert!(hits > 0, "no L1 hits: the test did not exercise the cache");
}

// ---------------------------------------------------------------------------------
// Writes that bypass the proxy (tracking)

#[test]
fn direct_write_is_seen_within_the_bound() {
    let stack = seeded(&["SET c:k old", "HSET c:h f old g x"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    prime(&mut c, &mut d, "GET c:k", &bulk("old"));
    prime(&mut c, &mut d, "HGET c:h f", &bulk("old"));
    let hgetall = d.cmd("HGETALL c:h");
    prime(&mut c, &mut d, "HGETALL c:h", &hgetall);

    d.assert_cmd("SET c:k new", OK);
    let since = Instant::now();
    assert_seen_within(
        "direct SET",
        &mut c,
        "GET c:k",
        &bulk("new"),
        since,
        BYPASS_BOUND,
    );

    d.assert_cmd("HSET c:h f new", b":0\r\n");
    let since = Instant::now();
    assert_seen_within(
        "direct HSET",
        &mut c,
        "HGET c:h f",
        &bulk("new"),
        since,
        BYPASS_BOUND,
    );
    let hgetall = d.cmd("HGETALL c:h");
    c.assert_cmd("HGETALL c:h", &hgetall);
}

#[test]
fn write_through_another_respite_is_seen_within_the_bound() {
    let stack = seeded(&["SET c:k old"], CACHED);
    let other = Proxy::start(&stack.redis.url(), CACHED);
    let mut c = ready(&stack);
    let mut o = other.client();
    wait_tracking(&mut o, "up", READY);
    let mut d = stack.direct();
    assert_eq!(
        tracking_ids(&mut d).len(),
        2,
        "one tracking connection per proxy"
    );
    prime(&mut c, &mut d, "GET c:k", &bulk("old"));
    prime(&mut o, &mut d, "GET c:k", &bulk("old"));

    o.assert_cmd("SET c:k from-other", OK);
    let since = Instant::now();
    assert_seen_within(
        "SET through another respite",
        &mut c,
        "GET c:k",
        &bulk("from-other"),
        since,
        BYPASS_BOUND,
    );
    o.assert_cmd("GET c:k", &bulk("from-other"));

    c.assert_cmd("SET c:k from-first", OK);
    let since = Instant::now();
    assert_seen_within(
        "SET through the first respite, seen by the other",
        &mut o,
        "GET c:k",
        &bulk("from-first"),
        since,
        BYPASS_BOUND,
    );
}

#[test]
fn lua_write_is_seen_within_the_bound() {
    let stack = seeded(&["SET c:k old", "SET c:f old"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    prime(&mut c, &mut d, "GET c:k", &bulk("old"));
    prime(&mut c, &mut d, "GET c:f", &bulk("old"));
    let eval = args(r#"EVAL "return redis.call('SET', KEYS[1], ARGV[1])" 1 c:k by-lua"#);
    assert_eq!(d.call(&eval), OK);
    let since = Instant::now();
    assert_seen_within(
        "direct EVAL",
        &mut c,
        "GET c:k",
        &bulk("by-lua"),
        since,
        BYPASS_BOUND,
    );

    let lib = args(
        r##"FUNCTION LOAD "#!lua name=l1test\nredis.register_function('setit', function(keys, args) return redis.call('SET', keys[1], args[1]) end)""##,
    );
    assert_eq!(d.call(&lib), bulk("l1test"));
    assert_eq!(d.call(&args("FCALL setit 1 c:f by-function")), OK);
    let since = Instant::now();
    assert_seen_within(
        "direct FCALL",
        &mut c,
        "GET c:f",
        &bulk("by-function"),
        since,
        BYPASS_BOUND,
    );
}

#[test]
fn expiry_is_seen_within_the_bound() {
    let stack = seeded(&["SET c:e v", "HSET c:eh f v"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    prime(&mut c, &mut d, "GET c:e", &bulk("v"));
    prime(&mut c, &mut d, "HGET c:eh f", &bulk("v"));
    d.assert_cmd("PEXPIRE c:e 50", b":1\r\n");
    d.assert_cmd("PEXPIRE c:eh 50", b":1\r\n");
    let since = Instant::now();
    // The key is gone 50 ms after PEXPIRE; the proxy may lag by the bound after that.
    let bound = Duration::from_millis(50) + BYPASS_BOUND;
    assert_seen_within("PEXPIRE 50", &mut c, "GET c:e", NIL, since, bound);
    assert_seen_within(
        "PEXPIRE 50 (hash)",
        &mut c,
        "HGET c:eh f",
        NIL,
        since,
        bound,
    );
}

#[test]
fn flushall_is_seen_in_every_db() {
    let stack = seeded(&["SET c:f zero", "SELECT 1", "SET c:f one"], CACHED);
    let mut c0 = ready(&stack);
    let mut c1 = client_in_db(&stack, 1);
    let mut d = stack.direct();
    prime(&mut c0, &mut d, "GET c:f", &bulk("zero"));
    prime(&mut c1, &mut d, "GET c:f", &bulk("one"));
    d.assert_cmd("FLUSHALL", OK);
    let since = Instant::now();
    assert_seen_within(
        "FLUSHALL (db 0)",
        &mut c0,
        "GET c:f",
        NIL,
        since,
        BYPASS_BOUND,
    );
    assert_seen_within(
        "FLUSHALL (db 1)",
        &mut c1,
        "GET c:f",
        NIL,
        since,
        BYPASS_BOUND,
    );
}

#[test]
fn flushdb_is_seen() {
    let stack = seeded(&["SET c:f zero", "SELECT 1", "SET c:f one"], CACHED);
    let mut c0 = ready(&stack);
    let mut c1 = client_in_db(&stack, 1);
    let mut d = stack.direct();
    prime(&mut c0, &mut d, "GET c:f", &bulk("zero"));
    prime(&mut c1, &mut d, "GET c:f", &bulk("one"));
    d.assert_cmd("SELECT 1", OK);
    d.assert_cmd("FLUSHDB", OK);
    let since = Instant::now();
    assert_seen_within(
        "FLUSHDB (db 1)",
        &mut c1,
        "GET c:f",
        NIL,
        since,
        BYPASS_BOUND,
    );
    c0.assert_cmd("GET c:f", &bulk("zero"));
}

#[test]
fn writes_in_other_dbs_are_seen() {
    // Invalidation messages carry key names only, not the db.
    let stack = seeded(&["SET c:mv here", "SELECT 1", "SET c:o one"], CACHED);
    let mut c0 = ready(&stack);
    let mut c1 = client_in_db(&stack, 1);
    let mut c2 = client_in_db(&stack, 2);
    let mut d = stack.direct();
    prime(&mut c1, &mut d, "GET c:o", &bulk("one"));
    prime(&mut c0, &mut d, "GET c:mv", &bulk("here"));
    prime(&mut c2, &mut d, "GET c:mv", NIL);

    d.assert_cmd("SELECT 1", OK);
    d.assert_cmd("SET c:o uno", OK);
    let since = Instant::now();
    assert_seen_within(
        "SET in db 1",
        &mut c1,
        "GET c:o",
        &bulk("uno"),
        since,
        BYPASS_BOUND,
    );

    d.assert_cmd("SELECT 0", OK);
    d.assert_cmd("MOVE c:mv 2", b":1\r\n");
    let since = Instant::now();
    assert_seen_within(
        "MOVE to db 2",
        &mut c2,
        "GET c:mv",
        &bulk("here"),
        since,
        BYPASS_BOUND,
    );
    assert_seen_within(
        "MOVE from db 0",
        &mut c0,
        "GET c:mv",
        NIL,
        since,
        BYPASS_BOUND,
    );
}

#[test]
fn swapdb_through_the_proxy_swaps_cached_values_at_once() {
    let stack = seeded(&["SET c:sw zero", "SELECT 1", "SET c:sw one"], CACHED);
    let mut c0 = ready(&stack);
    let mut c1 = client_in_db(&stack, 1);
    let mut d = stack.direct();
    prime(&mut c0, &mut d, "GET c:sw", &bulk("zero"));
    prime(&mut c1, &mut d, "GET c:sw", &bulk("one"));
    stack.client().assert_cmd("SWAPDB 0 1", OK);
    // The proxy acknowledged the swap: reads after it see it.
    c0.assert_cmd("GET c:sw", &bulk("one"));
    c1.assert_cmd("GET c:sw", &bulk("zero"));
}

/// Redis sends no invalidation for SWAPDB (checked against Redis 7.0: a BCAST
/// tracking client receives nothing), so a SWAPDB that bypasses the proxy is bounded
/// by `l1_ttl` only.
#[test]
fn direct_swapdb_is_seen_within_l1_ttl() {
    let toml = format!(
        "{CACHED}\n[[namespace]]\nname = \"sw\"\nmatch = \"sw:*\"\nl1 = true\nl1_ttl = \"500ms\"\n"
    );
    let stack = seeded(&["SET sw:k zero", "SELECT 1", "SET sw:k one"], &toml);
    let mut c0 = ready(&stack);
    let mut c1 = client_in_db(&stack, 1);
    let mut d = stack.direct();
    let filled = Instant::now();
    prime(&mut c0, &mut d, "GET sw:k", &bulk("zero"));
    prime(&mut c1, &mut d, "GET sw:k", &bulk("one"));
    d.assert_cmd("SWAPDB 0 1", OK);
    let bound = Duration::from_millis(500) + BYPASS_BOUND;
    assert_seen_within(
        "direct SWAPDB (db 0)",
        &mut c0,
        "GET sw:k",
        &bulk("one"),
        filled,
        bound,
    );
    assert_seen_within(
        "direct SWAPDB (db 1)",
        &mut c1,
        "GET sw:k",
        &bulk("zero"),
        filled,
        bound,
    );
}

#[test]
fn overlapping_and_inner_glob_namespaces_are_tracked() {
    // Redis refuses overlapping BCAST prefixes (c: and c:user:) on one connection.
    let toml = r#"
[[namespace]]
name = "users"
match = "c:user:*"
l1 = true
l1_ttl = "10s"

[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "10s"

[[namespace]]
name = "bookmarks"
match = "u:*:bm"
l1 = true
l1_ttl = "10s"
"#;
    let stack = seeded(&["SET c:user:1 a", "SET c:x a", "SET u:7:bm a"], toml);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    for key in ["c:user:1", "c:x", "u:7:bm"] {
        let get = format!("GET {key}");
        prime(&mut c, &mut d, &get, &bulk("a"));
        d.assert_cmd(&format!("SET {key} b"), OK);
        let since = Instant::now();
        assert_seen_within("direct SET", &mut c, &get, &bulk("b"), since, BYPASS_BOUND);
    }
}

// ---------------------------------------------------------------------------------
// Losing the tracking connection

#[test]
fn tracking_loss_flushes_l1_and_tracking_comes_back() {
    let stack = seeded(&["SET c:k old", "SET c:other o"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    prime(&mut c, &mut d, "GET c:k", &bulk("old"));
    prime(&mut c, &mut d, "GET c:other", &bulk("o"));
    let ids = tracking_ids(&mut d);
    assert_eq!(ids.len(), 1, "tracking connections: {ids:?}");

    d.assert_cmd(&format!("CLIENT KILL ID {}", ids[0]), b":1\r\n");
    // Nobody will tell the proxy about this write: a kept L1 entry would be stale
    // (until `l1_ttl`). The proxy learns of the loss when the tracking connection's
    // end reaches it, as it learns of an invalidation: within the bypass bound, not
    // before this client's next read can arrive (on a busy machine it may not).
    d.assert_cmd("SET c:k new", OK);
    let since = Instant::now();
    let label = "direct SET after the tracking connection was killed";
    assert_seen_within(label, &mut c, "GET c:k", &bulk("new"), since, BYPASS_BOUND);
    let mut states = HashSet::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        c.assert_cmd("GET c:k", &bulk("new"));
        c.assert_cmd("GET c:other", &bulk("o"));
        let state = stat(&mut c, "tracking");
        assert!(
            state == "down" || state == "up",
            "tracking state {state:?} after the connection was killed"
        );
        states.insert(state.clone());
        if state == "up" && tracking_ids(&mut d).first().is_some_and(|id| *id != ids[0]) {
            break;
        }
    }
    eprintln!("tracking states seen: {states:?}");
    let new_id = wait_new_tracking_connection(&mut d, Some(ids[0]), Duration::from_secs(3));
    assert_ne!(new_id, ids[0]);
    wait_tracking(&mut c, "up", Duration::from_secs(3));

    // Caching resumes, and the new connection really tracks.
    let mut last = Vec::new();
    let resumed = wait_until(Duration::from_secs(3), || {
        c.assert_cmd("GET c:k", &bulk("new"));
        let before = calls(&mut d, "get");
        last = c.cmd("GET c:k");
        calls(&mut d, "get") == before
    });
    assert!(
        resumed,
        "no L1 hits after tracking came back (last {})",
        show(&last)
    );
    d.assert_cmd("SET c:k newer", OK);
    let since = Instant::now();
    assert_seen_within(
        "direct SET after tracking came back",
        &mut c,
        "GET c:k",
        &bulk("newer"),
        since,
        BYPASS_BOUND,
    );
}

// ---------------------------------------------------------------------------------
// Coalescing

/// `GET key` on `n` new proxy connections at once: `threads` threads each connect
/// their share, meet at a barrier, write every request, then read every reply.
fn concurrent_gets(addr: SocketAddr, key: &str, n: usize, threads: usize) -> Vec<Vec<u8>> {
    let barrier = Arc::new(Barrier::new(threads));
    let request = encode_command(&["GET", key]);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let barrier = barrier.clone();
            let request = request.clone();
            let share = n / threads + usize::from(t < n % threads);
            thread::spawn(move || {
                let mut conns: Vec<Client> = (0..share).map(|_| Client::connect(addr)).collect();
                barrier.wait();
                for c in &mut conns {
                    c.send_raw(&request);
                }
                conns.iter_mut().map(|c| c.read_reply()).collect::<Vec<_>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("a GET client failed"))
        .collect()
}

/// Proxy -> fault injector -> Redis, so reads can be held in flight.
struct Delayed {
    proxy: Proxy,
    fault: FaultProxy,
    redis: RedisServer,
}

fn delayed(lines: &[&str]) -> Delayed {
    let redis = RedisServer::start();
    seed(&redis, lines);
    let fault = FaultProxy::start(redis.addr());
    let proxy = Proxy::start(&fault.url(), CACHED);
    Delayed {
        proxy,
        fault,
        redis,
    }
}

#[test]
fn concurrent_misses_share_one_upstream_read() {
    let value = "v".repeat(1000);
    let set = format!("SET c:hot {value}");
    let stack = delayed(&[&set]);
    let mut c = stack.proxy.client();
    wait_tracking(&mut c, "up", READY);
    let mut d = stack.redis.client();
    let (gets, coalesced) = (calls(&mut d, "get"), stat_int(&mut c, "l1_coalesced"));
    // The upstream read is held 300 ms, so every request arrives while it is in flight.
    stack.fault.delay(Duration::from_millis(300));
    let replies = concurrent_gets(stack.proxy.addr(), "c:hot", 1000, 20);
    stack.fault.delay(Duration::ZERO);
    let want = bulk(&value);
    let wrong: Vec<String> = replies
        .iter()
        .filter(|r| **r != want)
        .map(|r| show(r))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} wrong replies, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    assert_eq!(replies.len(), 1000);
    let reached = calls(&mut d, "get") - gets;
    assert_eq!(
        reached, 1,
        "1,000 concurrent GETs of a cold key reached Redis {reached} times"
    );
    let coalesced = stat_int(&mut c, "l1_coalesced") - coalesced;
    eprintln!("l1_coalesced +{coalesced}");
    assert!(coalesced > 0, "no request waited on the in-flight read");
}

#[test]
fn concurrent_misses_without_delay_reach_redis_once() {
    let stack = seeded(&["SET c:hot v"], CACHED);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    let gets = calls(&mut d, "get");
    let replies = concurrent_gets(stack.proxy.addr(), "c:hot", 1000, 20);
    assert!(replies.iter().all(|r| *r == bulk("v")));
    assert_eq!(replies.len(), 1000);
    assert_eq!(calls(&mut d, "get") - gets, 1);
    c.assert_cmd("GET c:hot", &bulk("v"));
}

#[test]
fn own_write_during_a_coalesced_read_is_read_back() {
    let stack = delayed(&["SET c:hot2 old"]);
    let mut c = stack.proxy.client();
    wait_tracking(&mut c, "up", READY);
    stack.fault.delay(Duration::from_millis(300));
    let addr = stack.proxy.addr();
    let others = thread::spawn(move || concurrent_gets(addr, "c:hot2", 200, 10));
    assert!(
        stack.fault.wait_seen(b"c:hot2", Duration::from_secs(5)),
        "the read of c:hot2 never left the proxy"
    );
    // The read of the old value is in flight; this client reads, writes, reads.
    let mut x = stack.proxy.client();
    x.send(&["GET", "c:hot2"]);
    x.send(&["SET", "c:hot2", "mine"]);
    x.send(&["GET", "c:hot2"]);
    x.assert_reply(&bulk("old"));
    x.assert_reply(OK);
    x.assert_reply(&bulk("mine"));
    let replies = others.join().expect("the other readers failed");
    stack.fault.delay(Duration::ZERO);
    for r in &replies {
        assert!(
            *r == bulk("old") || *r == bulk("mine"),
            "concurrent reader got {}",
            show(r)
        );
    }
    // The old value read before the write must not have been kept.
    for _ in 0..3 {
        stack.proxy.client().assert_cmd("GET c:hot2", &bulk("mine"));
        x.assert_cmd("GET c:hot2", &bulk("mine"));
    }
}

// ---------------------------------------------------------------------------------
// Memory bound

#[test]
fn memory_stays_within_max_memory() {
    const KEYS: usize = 4000;
    const SIZE: usize = 10_000;
    let toml = CACHED.replace("64MiB", "4MiB");
    let stack = seeded(&[], &toml);
    let mut c = ready(&stack);
    let mut d = stack.direct();
    let value = |i: usize| format!("{i:08}").repeat(SIZE / 8);
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(200) {
        let batch: Vec<u8> = chunk
            .iter()
            .flat_map(|&i| encode_command(&["SET", &format!("c:mem:{i}"), &value(i)]))
            .collect();
        d.send_raw(&batch);
        for _ in chunk {
            d.assert_reply(OK);
        }
    }
    // 40 MB of distinct values read through a 4 MiB cache.
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(50) {
        let batch: Vec<u8> = chunk
            .iter()
            .flat_map(|&i| encode_command(&["GET", &format!("c:mem:{i}")]))
            .collect();
        c.send_raw(&batch);
        for &i in chunk {
            let got = c.read_reply();
            assert!(got == bulk(&value(i)), "GET c:mem:{i}: {}", show(&got));
        }
    }
    let max = stat_int(&mut c, "l1_max_bytes");
    assert_eq!(max, 4 << 20);
    let mut last = (0, 0);
    let bounded = wait_until(Duration::from_secs(5), || {
        last = (stat_int(&mut c, "l1_bytes"), stat_int(&mut c, "l1_entries"));
        last.0 <= max
    });
    eprintln!("after the fill: l1_bytes {} l1_entries {}", last.0, last.1);
    assert!(
        bounded,
        "l1_bytes {} stays above l1_max_bytes {max}",
        last.0
    );
    assert!(last.0 > 0 && last.1 > 0, "the cache is empty: {last:?}");
    assert!(
        last.1 as usize <= (4 << 20) / SIZE,
        "{} entries of {SIZE} bytes cannot fit in 4 MiB",
        last.1
    );
}

// ---------------------------------------------------------------------------------
// ttl-only coherence and the key's own TTL

const TTL_ONLY: &str = r#"
[l1]
max_memory = "64MiB"
coherence = "ttl-only"

[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "300ms"
"#;

#[test]
fn ttl_only_mode_lags_bypassing_writes_by_at_most_l1_ttl() {
    let stack = seeded(&["SET c:k v1"], TTL_ONLY);
    let mut c = stack.client();
    let mut d = stack.direct();
    assert_eq!(stat(&mut c, "tracking"), "off");
    let filled = Instant::now();
    prime(&mut c, &mut d, "GET c:k", &bulk("v1"));
    d.assert_cmd("SET c:k v2", OK);
    // Documents the mode: nothing tells the proxy, the entry is served until l1_ttl.
    let stale = c.cmd("GET c:k");
    if filled.elapsed() < Duration::from_millis(250) {
        assert!(
            stale == bulk("v1"),
            "ttl-only served {} right after a direct write",
            show(&stale)
        );
    }
    let bound = Duration::from_millis(300) + BYPASS_BOUND;
    assert_seen_within(
        "ttl-only direct SET",
        &mut c,
        "GET c:k",
        &bulk("v2"),
        filled,
        bound,
    );
    assert!(
        tracking_ids(&mut d).is_empty(),
        "ttl-only must not open a tracking connection"
    );

    // A write through the proxy is seen at once, from any of its clients.
    prime(&mut c, &mut d, "GET c:k", &bulk("v2"));
    stack.client().assert_cmd("SET c:k v3", OK);
    c.assert_cmd("GET c:k", &bulk("v3"));
}

/// `SET … PX 300` written directly, read through the proxy until it expires.
fn key_ttl_bounds_the_entry(stack: &Stack, c: &mut Client) {
    let mut d = stack.direct();
    d.assert_cmd("SET c:t v PX 300", OK);
    d.assert_cmd("HSET c:th f v", b":1\r\n");
    d.assert_cmd("PEXPIRE c:th 300", b":1\r\n");
    let since = Instant::now();
    let gets = calls(&mut d, "get");
    let mut polls = 0;
    while c.cmd("GET c:t") == bulk("v") {
        polls += 1;
        assert!(
            since.elapsed() < Duration::from_secs(3),
            "c:t is still served"
        );
        thread::sleep(Duration::from_millis(2));
    }
    let took = since.elapsed();
    let reached = calls(&mut d, "get") - gets;
    eprintln!("c:t served {polls} times ({reached} reached Redis), nil after {took:?}");
    assert!(polls > 0, "c:t was never served");
    assert!(
        reached < polls as u64,
        "every GET reached Redis: the entry was not cached"
    );
    let bound = Duration::from_millis(300) + BYPASS_BOUND;
    assert!(took <= bound, "nil only after {took:?}");
    c.assert_cmd("GET c:t", NIL);
    assert_seen_within("hash key expiry", c, "HGET c:th f", NIL, since, bound);
}

#[test]
fn key_ttl_bounds_the_entry_with_tracking() {
    let stack = seeded(&[], CACHED);
    let mut c = ready(&stack);
    key_ttl_bounds_the_entry(&stack, &mut c);
}

#[test]
fn key_ttl_bounds_the_entry_in_ttl_only_mode() {
    let stack = seeded(&[], &TTL_ONLY.replace("300ms", "10s"));
    let mut c = stack.client();
    key_ttl_bounds_the_entry(&stack, &mut c);
}

// ---------------------------------------------------------------------------------
// stale_if_error

fn stale_config(coherence: &str) -> String {
    format!(
        r#"
[upstream]
connect_timeout = "200ms"
request_timeout = "500ms"

[l1]
coherence = "{coherence}"

[[namespace]]
name = "stale"
match = "c:*"
l1 = true
l1_ttl = "200ms"
stale_if_error = "1m"

[[namespace]]
name = "fresh"
match = "n:*"
l1 = true
l1_ttl = "200ms"
"#
    )
}

/// Sends `line`, asserting the reply comes within `FAST`.
fn timed(c: &mut Client, line: &str) -> Vec<u8> {
    let started = Instant::now();
    let reply = c.cmd(line);
    let took = started.elapsed();
    assert!(
        took < FAST,
        "{line} during the outage took {took:?}: {}",
        show(&reply)
    );
    reply
}

fn stale_if_error_serves_expired_entries(coherence: &str) {
    let mut stack = seeded(&["SET c:s v", "SET n:s v"], &stale_config(coherence));
    let mut c = stack.client();
    if coherence == "tracking" {
        wait_tracking(&mut c, "up", READY);
    }
    c.assert_cmd("GET c:s", &bulk("v"));
    c.assert_cmd("GET n:s", &bulk("v"));
    let stale = stat_int(&mut c, "l1_stale");
    // Past l1_ttl: both entries have expired.
    thread::sleep(Duration::from_millis(400));
    stack.redis.stop();

    for _ in 0..3 {
        let got = timed(&mut c, "GET c:s");
        assert!(
            got == bulk("v"),
            "stale_if_error key during the outage: {}",
            show(&got)
        );
    }
    let got = timed(&mut c, "GET n:s");
    assert!(
        got.starts_with(b"-ERR"),
        "a key without stale_if_error during the outage: {}",
        show(&got)
    );
    let got = timed(&mut c, "GET c:never-cached");
    assert!(got.starts_with(b"-ERR"), "an uncached key: {}", show(&got));
    let stale = stat_int(&mut c, "l1_stale") - stale;
    assert!(stale >= 3, "l1_stale rose by {stale}, expected at least 3");
    let mut state = String::new();
    let down = wait_until(Duration::from_secs(3), || {
        state = stat(&mut c, "upstream");
        state == "down"
    });
    assert!(
        down,
        "RESPITE STATS upstream is {state:?} while Redis is stopped"
    );

    // Redis is back, empty: the stale value is no longer served.
    stack.redis.restart();
    let mut last = Vec::new();
    let fresh = wait_until(Duration::from_secs(10), || {
        last = c.cmd("GET c:s");
        last == NIL
    });
    assert!(
        fresh,
        "GET c:s after Redis came back empty: {}",
        show(&last)
    );
}

#[test]
fn stale_if_error_serves_expired_entries_in_ttl_only_mode() {
    stale_if_error_serves_expired_entries("ttl-only");
}

#[test]
fn stale_if_error_serves_expired_entries_with_tracking() {
    stale_if_error_serves_expired_entries("tracking");
}

#[test]
fn stale_if_error_through_a_partition() {
    let redis = RedisServer::start();
    seed(&redis, &["SET c:s v"]);
    let fault = FaultProxy::start(redis.addr());
    let proxy = Proxy::start(&fault.url(), &stale_config("ttl-only"));
    let mut c = proxy.client();
    c.assert_cmd("GET c:s", &bulk("v"));
    thread::sleep(Duration::from_millis(400));
    fault.block();
    fault.cut();
    let got = timed(&mut c, "GET c:s");
    assert!(
        got == bulk("v"),
        "stale_if_error key with Redis cut off: {}",
        show(&got)
    );
    let got = timed(&mut c, "GET n:s");
    assert!(got.starts_with(b"-ERR"), "{}", show(&got));
    fault.unblock();
    redis.client().assert_cmd("SET c:s w", OK);
    let mut last = Vec::new();
    let back = wait_until(Duration::from_secs(10), || {
        last = c.cmd("GET c:s");
        last == bulk("w")
    });
    assert!(back, "GET c:s after the network healed: {}", show(&last));
}

/// A blocking write sent while WATCH holds a dedicated connection moves the
/// destination's L1 entry like any write (without tracking, nothing else would).
#[test]
fn blocking_write_inside_watch_invalidates_its_destination() {
    let toml = CACHED.replace("coherence = \"tracking\"", "coherence = \"ttl-only\"");
    let stack = seeded(&["RPUSH c:src a", "RPUSH c:dst x"], &toml);
    let mut c = stack.client();
    for _ in 0..2 {
        assert_eq!(c.cmd("LRANGE c:dst 0 -1"), b"*1\r\n$1\r\nx\r\n");
    }
    assert_eq!(c.cmd("WATCH c:other"), OK);
    assert_eq!(c.cmd("BLMOVE c:src c:dst LEFT RIGHT 1"), bulk("a"));
    assert_eq!(c.cmd("UNWATCH"), OK);
    assert_eq!(c.cmd("LRANGE c:dst 0 -1"), b"*2\r\n$1\r\nx\r\n$1\r\na\r\n");
}
