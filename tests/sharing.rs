//! One client can never hurt another: every client state (pooled, pinned for
//! MULTI/WATCH, blocking, subscribed, tracking, monitor, reply-off) keeps every rule,
//! and nothing one client sends stalls, desyncs or grows the proxy for the others.
//!
//! Each test reproduces one way this broke (issue 12) and failed before the fix.

mod support;

use std::time::{Duration, Instant};

use support::{
    Client, Proxy, RedisServer, Stack, contains,
    l1::{stat_int, wait_tracking},
    pseudo_random_bytes,
    resp::show,
    wait_until,
};

const COMPRESSED: &str = r#"
[[namespace]]
name = "docs"
match = "doc:*"
compress = "zstd"
compress_min_size = "16B"
max_ttl = "1h"
"#;

fn bulk(v: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", v.len()).into_bytes();
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
    out
}

fn doc() -> Vec<u8> {
    b"{\"text\": \"a value long enough to be compressed\"}, ".repeat(40)
}

/// Puts `c` in each stateful mode that used to relay raw bytes.
fn enter_relay(c: &mut Client, how: &str) {
    match how {
        "client-id" => {
            let id = c.cmd("CLIENT ID");
            assert_eq!(id[0], b':', "{}", show(&id));
        }
        "tracking" => {
            assert_eq!(c.cmd("HELLO 3")[0], b'%');
            c.assert_cmd("CLIENT TRACKING ON", b"+OK\r\n");
        }
        "tracking-bcast" => {
            assert_eq!(c.cmd("HELLO 3")[0], b'%');
            // NOLOOP: no invalidation of its own writes in between its replies.
            c.assert_cmd("CLIENT TRACKING ON BCAST PREFIX doc: NOLOOP", b"+OK\r\n");
        }
        other => unreachable!("{other}"),
    }
}

#[test]
fn every_client_state_restores_compressed_values() {
    let stack = Stack::start_with(COMPRESSED);
    for how in ["client-id", "tracking", "tracking-bcast"] {
        let mut c = stack.client();
        enter_relay(&mut c, how);
        let v = doc();
        c.call(&[&b"SET"[..], b"doc:1", &v]);
        let stored = stack.direct().call(&["GET", "doc:1"]);
        assert_ne!(stored, bulk(&v), "{how}: stored uncompressed");
        assert_eq!(c.call(&["GET", "doc:1"]), bulk(&v), "{how}: GET");
        assert_eq!(
            c.call(&["STRLEN", "doc:1"]),
            format!(":{}\r\n", v.len()).into_bytes(),
            "{how}: STRLEN"
        );
    }
}

#[test]
fn every_client_state_applies_ttl_rules() {
    let stack = Stack::start_with(COMPRESSED);
    for how in ["client-id", "tracking"] {
        let mut c = stack.client();
        enter_relay(&mut c, how);
        c.assert_cmd("SET doc:t v EX 999999", b"+OK\r\n");
        let ttl = stack.direct().cmd("TTL doc:t");
        assert!(
            ttl.as_slice() <= b":3600\r\n".as_slice() && ttl.len() == b":3600\r\n".len(),
            "{how}: max_ttl not applied, TTL {}",
            show(&ttl)
        );
        let refused = c.cmd("PERSIST doc:t");
        assert!(
            refused.starts_with(b"-"),
            "{how}: PERSIST {}",
            show(&refused)
        );
    }
}

#[test]
fn writes_in_every_client_state_invalidate_l1() {
    // ttl-only: only the proxy's own bookkeeping keeps L1 right.
    let stack = Stack::start_with(
        "[l1]\ncoherence = \"ttl-only\"\n[[namespace]]\nname = \"c\"\nmatch = \"c:*\"\nl1 = true\nl1_ttl = \"1h\"\n",
    );
    let mut reader = stack.client();
    let mut direct = stack.direct();
    for how in ["client-id", "tracking"] {
        reader.assert_cmd("SET c:k old", b"+OK\r\n");
        let mut c = stack.client();
        enter_relay(&mut c, how);
        // Redis holds the write while another client's read fills L1 with the old
        // value: the write's acknowledgement must drop that entry.
        direct.assert_cmd("CLIENT PAUSE 500 WRITE", b"+OK\r\n");
        c.send(&["SET", "c:k", "new"]);
        reader.assert_cmd("GET c:k", b"$3\r\nold\r\n");
        c.assert_reply(b"+OK\r\n");
        reader.assert_cmd("GET c:k", b"$3\r\nnew\r\n");
    }
}

#[test]
fn unsubscribe_when_not_subscribed_answers_like_redis_and_hurts_nobody() {
    let stack = Stack::start_with("[server]\nthreads = 1\n[upstream]\npool_size = 1\n");
    let mut other = stack.client();
    let mut c = stack.client();
    // Another client's request in flight on the same shared connection.
    other.send(&["BLPOP", "nothing", "0.3"]);
    c.send(&["UNSUBSCRIBE", "x", "y"]);
    c.assert_reply(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:0\r\n");
    c.assert_reply(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\ny\r\n:0\r\n");
    c.assert_cmd(
        "PUNSUBSCRIBE",
        b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n",
    );
    c.assert_cmd("PING", b"+PONG\r\n");
    other.assert_reply(b"*-1\r\n");
    for _ in 0..3 {
        let mut third = stack.client();
        third.send(&["SET", "k", "v"]);
        c.send(&["SUNSUBSCRIBE", "a", "b"]);
        third.assert_reply(b"+OK\r\n");
        c.assert_reply(b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:0\r\n");
        c.assert_reply(b"*3\r\n$12\r\nsunsubscribe\r\n$1\r\nb\r\n:0\r\n");
        third.assert_cmd("GET k", b"$1\r\nv\r\n");
    }
}

/// The same from a client on a connection of its own (tracking on, RESP2): Redis's
/// nil channel is understood (found by the fuzzer: the connection's task panicked).
#[test]
fn unsubscribe_when_not_subscribed_on_an_own_connection() {
    let stack = Stack::start();
    let mut c = stack.client();
    c.assert_cmd("CLIENT TRACKING ON", b"+OK\r\n");
    c.assert_cmd(
        "PUNSUBSCRIBE",
        b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n",
    );
    c.send(&["UNSUBSCRIBE", "x", "y"]);
    c.assert_reply(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:0\r\n");
    c.assert_reply(b"*3\r\n$11\r\nunsubscribe\r\n$1\r\ny\r\n:0\r\n");
    c.assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn resp3_unsubscribe_push_arrives_without_another_command() {
    let stack = Stack::start();
    let mut c = stack.client();
    assert_eq!(c.cmd("HELLO 3")[0], b'%');
    c.send(&["UNSUBSCRIBE"]);
    c.assert_reply(b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n");
    c.assert_cmd("PING", b"+PONG\r\n");
}

/// Redis's busy-reply-threshold, lowered so the tests are quick.
const BUSY_MS: &str = "300";

#[test]
fn a_busy_script_stalls_nobody_longer_than_redis_and_can_be_killed() {
    let redis = RedisServer::start_with(&["--busy-reply-threshold", BUSY_MS]);
    let proxy = Proxy::start(
        &redis.url(),
        "[server]\nthreads = 1\n[upstream]\npool_size = 1\nrequest_timeout = \"200ms\"\n",
    );
    let mut script = proxy.client();
    let mut other = proxy.client();
    other.assert_cmd("SET k v", b"+OK\r\n");
    script.send(&["EVAL", "while true do end", "0"]);
    let mut direct = redis.client();
    assert!(
        wait_until(Duration::from_secs(5), || direct
            .cmd("PING")
            .starts_with(b"-BUSY")),
        "the script never ran"
    );
    // Like Redis: the others get BUSY while the script runs.
    let busy = other.cmd("GET k");
    assert!(busy.starts_with(b"-BUSY"), "{}", show(&busy));
    let mut killer = proxy.client();
    killer.assert_cmd("SCRIPT KILL", b"+OK\r\n");
    let killed = script.read_reply();
    assert!(contains(&killed, b"killed"), "{}", show(&killed));
    other.assert_cmd("GET k", b"$1\r\nv\r\n");
    script.assert_cmd("GET k", b"$1\r\nv\r\n");
}

#[test]
fn a_slow_command_completes_although_it_outlasts_request_timeout() {
    let redis = RedisServer::start_with(&["--busy-reply-threshold", BUSY_MS]);
    let proxy = Proxy::start(&redis.url(), "[upstream]\nrequest_timeout = \"200ms\"\n");
    let mut c = proxy.client();
    // One second of work: five times request_timeout; Redis answers BUSY to others.
    let reply = c.call(&[
        "EVAL",
        "local t = redis.call('TIME') local s = t[1] * 1000000 + t[2] \
         while true do local n = redis.call('TIME') \
         if n[1] * 1000000 + n[2] - s > 1000000 then return 'done' end end",
        "0",
    ]);
    assert_eq!(reply, b"$4\r\ndone\r\n", "{}", show(&reply));
    let slow = c.cmd("DEBUG SLEEP 1");
    assert_eq!(slow, b"+OK\r\n", "{}", show(&slow));
}

#[test]
fn a_long_pipeline_is_not_cut_off_while_redis_answers() {
    let stack = Stack::start_with("[upstream]\nrequest_timeout = \"100ms\"\n");
    let mut c = stack.client();
    let value = pseudo_random_bytes(1 << 20, 7);
    c.call(&[&b"SET"[..], b"big", &value]);
    let n = 600;
    let mut batch = Vec::new();
    for _ in 0..n {
        batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    c.send_raw(&batch);
    let want = bulk(&value);
    for i in 0..n {
        let got = c.read_reply();
        assert!(
            got == want,
            "reply {i}: {}",
            show(&got[..got.len().min(80)])
        );
    }
}

/// Resident memory of this test process (the proxy runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_client_that_never_reads_l1_hits_is_bounded() {
    let stack = Stack::start_with(
        "[server]\nthreads = 1\nmax_output_buffer = \"4MiB\"\n[[namespace]]\nname = \"c\"\nmatch = \"c:*\"\nl1 = true\n",
    );
    let mut c = stack.client();
    wait_tracking(&mut c, "up", Duration::from_secs(5));
    let value = pseudo_random_bytes(1 << 20, 3);
    c.call(&[&b"SET"[..], b"c:big", &value]);
    assert_eq!(c.call(&["GET", "c:big"]), bulk(&value));
    let hits = stat_int(&mut c, "l1_hits");
    assert_eq!(c.call(&["GET", "c:big"]), bulk(&value));
    assert_eq!(stat_int(&mut c, "l1_hits"), hits + 1, "served from L1");
    let before = rss();
    let mut hog = stack.client();
    // 2,000 hits of 1 MiB each, never read.
    let _ = hog.try_send_raw(&b"GET c:big\r\n".repeat(2000));
    let mut other = stack.client();
    assert!(
        wait_until(Duration::from_secs(5), || stat_int(&mut other, "l1_hits")
            > hits + 2),
        "the proxy never served the hog"
    );
    assert_eq!(other.call(&["GET", "c:big"]), bulk(&value));
    let grown = rss().saturating_sub(before);
    assert!(grown < 256 << 20, "RSS grew by {} MiB", grown >> 20);
}

#[test]
fn a_pipelined_read_after_an_unacknowledged_write_sees_the_write() {
    // Two event loops: the two clients use different upstream connections.
    let stack = Stack::start_with(
        "[server]\nthreads = 2\n[[namespace]]\nname = \"c\"\nmatch = \"c:*\"\nl1 = true\n",
    );
    let mut writer = stack.client();
    let mut reader = stack.client();
    wait_tracking(&mut reader, "up", Duration::from_secs(5));
    writer.assert_cmd("SET c:k old", b"+OK\r\n");
    let mut direct = stack.direct();
    // Redis holds writes (reads go on): the writer's SET waits in Redis.
    direct.assert_cmd("CLIENT PAUSE 1500 WRITE", b"+OK\r\n");
    writer.send(&["SET", "c:k", "new"]);
    // Another client's read of the key fills L1 with the value before the write.
    reader.assert_cmd("GET c:k", b"$3\r\nold\r\n");
    writer.send(&["GET", "c:k"]);
    writer.assert_reply(b"+OK\r\n");
    writer.assert_reply(b"$3\r\nnew\r\n");
}

#[test]
fn commands_the_table_does_not_know_still_invalidate_l1() {
    let redis = RedisServer::start_with(&["--rename-command", "HDEL", "XHDEL"]);
    let proxy = Proxy::start(
        &redis.url(),
        "[l1]\ncoherence = \"ttl-only\"\n[[namespace]]\nname = \"c\"\nmatch = \"c:*\"\nl1 = true\nl1_ttl = \"1h\"\n",
    );
    let mut c = proxy.client();
    for round in 0..2 {
        c.assert_cmd("HSET c:h f v", b":1\r\n");
        c.assert_cmd("HGET c:h f", b"$1\r\nv\r\n");
        c.assert_cmd("HGET c:h f", b"$1\r\nv\r\n");
        c.assert_cmd("XHDEL c:h f", b":1\r\n");
        assert_eq!(c.cmd("HGET c:h f"), b"$-1\r\n", "round {round}");
    }
}

/// Issue 12 item 7: once Redis's `COMMAND INFO` describes a command the table does not
/// know, its writes invalidate exactly its keys, no longer the whole db.
#[test]
fn commands_the_table_does_not_know_are_learned_from_redis() {
    let redis = RedisServer::start_with(&["--rename-command", "LTRIM", "LEARNTRIM"]);
    let proxy = Proxy::start(
        &redis.url(),
        "[l1]\ncoherence = \"ttl-only\"\n[[namespace]]\nname = \"c\"\nmatch = \"c:*\"\nl1 = true\nl1_ttl = \"1h\"\n",
    );
    let mut c = proxy.client();
    c.assert_cmd("SET c:other v", b"+OK\r\n");
    // The first LEARNTRIM flushes the db's entries and asks Redis; a later one leaves
    // the entry of another key alone.
    let precise = wait_until(Duration::from_secs(10), || {
        c.assert_cmd("GET c:other", b"$1\r\nv\r\n");
        let hits = stat_int(&mut c, "l1_hits");
        c.assert_cmd("LEARNTRIM c:l 0 -1", b"+OK\r\n");
        c.assert_cmd("GET c:other", b"$1\r\nv\r\n");
        stat_int(&mut c, "l1_hits") > hits
    });
    assert!(precise, "every LEARNTRIM still flushed the L1");
    assert!(stat_int(&mut c, "learned_commands") >= 1);
    // Its own key is still invalidated.
    c.assert_cmd("RPUSH c:l a b", b":2\r\n");
    c.assert_cmd("LRANGE c:l 0 -1", b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    c.assert_cmd("LRANGE c:l 0 -1", b"*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    c.assert_cmd("LEARNTRIM c:l 0 0", b"+OK\r\n");
    c.assert_cmd("LRANGE c:l 0 -1", b"*1\r\n$1\r\na\r\n");
}

#[test]
fn a_client_that_leaves_while_blocked_runs_nothing_more() {
    let stack = Stack::start();
    let mut direct = stack.direct();
    let mut c = stack.client();
    c.send_raw(
        b"*3\r\n$5\r\nBLPOP\r\n$1\r\nl\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$3\r\nfoo\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$3\r\nfoo\r\n",
    );
    let blocked = |d: &mut Client| {
        String::from_utf8_lossy(&d.cmd("INFO clients")).contains("blocked_clients:1")
    };
    assert!(wait_until(Duration::from_secs(5), || blocked(&mut direct)));
    drop(c);
    let unblocked = |d: &mut Client| {
        String::from_utf8_lossy(&d.cmd("INFO clients")).contains("blocked_clients:0")
    };
    assert!(
        wait_until(Duration::from_secs(5), || unblocked(&mut direct)),
        "the departed client's BLPOP is still blocked in Redis"
    );
    direct.assert_cmd("LPUSH l x", b":1\r\n");
    direct.assert_cmd("LLEN l", b":1\r\n");
    let mut via = stack.client();
    via.assert_cmd("PING", b"+PONG\r\n");
    direct.assert_cmd("EXISTS foo", b":0\r\n");
}

#[test]
fn keepttl_on_a_new_key_still_gets_the_namespace_ttl() {
    let stack = Stack::start_with(COMPRESSED);
    let mut c = stack.client();
    c.assert_cmd("SET doc:new v KEEPTTL", b"+OK\r\n");
    let ttl = stack.direct().cmd("TTL doc:new");
    assert!(ttl != b":-1\r\n" && ttl.starts_with(b":"), "{}", show(&ttl));
}

#[test]
fn exec_without_multi_keeps_the_watch_and_its_connection() {
    let stack = Stack::start_with("[server]\nthreads = 1\n");
    let mut a = stack.client();
    let mut b = stack.client();
    let mut direct = stack.direct();
    a.assert_cmd("WATCH w", b"+OK\r\n");
    assert!(a.cmd("EXEC").starts_with(b"-ERR EXEC without MULTI"));
    assert!(a.cmd("DISCARD").starts_with(b"-ERR DISCARD without MULTI"));
    // B's transaction must not run on A's connection, whose WATCH is still live.
    b.assert_cmd("MULTI", b"+OK\r\n");
    b.assert_cmd("SET b 1", b"+QUEUED\r\n");
    direct.assert_cmd("SET w changed", b"+OK\r\n");
    b.assert_cmd("EXEC", b"*1\r\n+OK\r\n");
    // A's WATCH is still in force, as in Redis.
    a.assert_cmd("MULTI", b"+OK\r\n");
    a.assert_cmd("SET a 1", b"+QUEUED\r\n");
    a.assert_cmd("EXEC", b"*-1\r\n");
}

/// What the three clients of `unpause_reaches_redis_…` got: A's read sent just before
/// its UNPAUSE, C's read, and how long after the pause B's write was acknowledged.
#[derive(Debug)]
struct Unpaused {
    a_read: Vec<u8>,
    c_read: Vec<u8>,
    write_done: Duration,
}

/// A pauses writes for 10 s; B's write is held by Redis; C and then A read the key;
/// A unpauses. `[a, b, c]` connect to Redis directly or through respite.
fn pause_then_unpause(redis: &RedisServer, [mut a, mut b, mut c]: [Client; 3]) -> Unpaused {
    a.assert_cmd("CLIENT PAUSE 10000 WRITE", b"+OK\r\n");
    let paused = Instant::now();
    b.send(&["SET", "k", "v"]);
    redis.wait_blocked_clients(1, Duration::from_secs(5));
    c.send(&["GET", "k"]);
    a.send(&["GET", "k"]);
    a.send(&["CLIENT", "UNPAUSE"]);
    let a_read = a.read_reply();
    a.assert_reply(b"+OK\r\n");
    b.assert_reply(b"+OK\r\n");
    let write_done = paused.elapsed();
    let c_read = c.read_reply();
    redis.wait_blocked_clients(0, Duration::from_secs(5));
    Unpaused {
        a_read,
        c_read,
        write_done,
    }
}

/// CLIENT UNPAUSE reaches Redis at once, although the write the pause holds stalls
/// the one shared connection, with the reads queued behind it (A's own read just
/// before its UNPAUSE included): B's write is acknowledged long before the pause would
/// end, as with Redis directly. Redis answers the reads at once; through respite a
/// read queued behind the held write waits for it and sees it (see the README).
#[test]
fn unpause_reaches_redis_while_a_paused_write_holds_the_shared_connection() {
    let stack = Stack::start_with("[server]\nthreads = 1\n[upstream]\npool_size = 1\n");
    let redis = &stack.redis;
    let direct = pause_then_unpause(redis, [(); 3].map(|()| stack.direct()));
    assert_eq!(show(&direct.a_read), show(b"$-1\r\n"), "Redis: A's read");
    assert_eq!(show(&direct.c_read), show(b"$-1\r\n"), "Redis: C's read");
    assert!(
        direct.write_done < Duration::from_secs(3),
        "Redis: {direct:?}"
    );
    stack.direct().assert_cmd("DEL k", b":1\r\n");
    let proxied = pause_then_unpause(redis, [(); 3].map(|()| stack.client()));
    assert!(
        proxied.write_done < Duration::from_secs(3),
        "B's write was held {:?}: the UNPAUSE waited",
        proxied.write_done
    );
    assert_eq!(
        show(&proxied.a_read),
        show(b"$1\r\nv\r\n"),
        "respite: A's read"
    );
    assert_eq!(
        show(&proxied.c_read),
        show(b"$1\r\nv\r\n"),
        "respite: C's read"
    );
}
