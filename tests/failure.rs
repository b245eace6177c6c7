//! Failure handling: Redis going away and coming back, a flaky network between proxy
//! and Redis, malformed and oversized client input, connection limits, and clients
//! that never read their replies. Errors must be Redis-style replies, fast, and never
//! a hang, a crash or unbounded buffering.

mod support;

use std::{
    io::Write,
    net::TcpStream,
    time::{Duration, Instant},
};

use support::{
    Client, FaultProxy, Proxy, RedisServer, Stack,
    client::is_timeout,
    pseudo_random_bytes,
    resp::{self, encode_command},
    show, wait_until,
};

/// An error reply during an outage must come at least this fast.
const FAST: Duration = Duration::from_secs(2);
/// How long a recovery may take once Redis is back.
const RECOVERY: Duration = Duration::from_secs(10);

/// Sends `line` and asserts an `-ERR…` reply arrives within `FAST`.
fn assert_fast_error(c: &mut Client, line: &str) {
    let started = Instant::now();
    let reply = c.cmd(line);
    let took = started.elapsed();
    assert!(
        reply.starts_with(b"-ERR"),
        "{line} while Redis is unreachable: {}",
        show(&reply)
    );
    assert!(
        took < FAST,
        "{line} took {took:?} to fail (reply {})",
        show(&reply)
    );
}

/// Polls `line` on the same connection until the reply is not an error, then
/// asserts it is `expected`.
fn assert_recovers(c: &mut Client, line: &str, expected: &[u8]) {
    let mut last = Vec::new();
    let recovered = wait_until(RECOVERY, || {
        last = c.cmd(line);
        !last.starts_with(b"-")
    });
    assert!(
        recovered,
        "{line} still failing after {RECOVERY:?}: {}",
        show(&last)
    );
    assert!(last == expected, "{line} after recovery: {}", show(&last));
}

#[test]
fn redis_outage_fails_fast_and_the_same_connection_recovers() {
    let mut redis = RedisServer::start();
    let proxy = Proxy::start(&redis.url(), "");
    let mut c = proxy.client();
    c.assert_cmd("SET k before", b"+OK\r\n");

    redis.stop();
    for line in ["GET k", "SET k during", "PING", "INCR n"] {
        assert_fast_error(&mut c, line);
    }
    let mut during = proxy.client();
    assert_fast_error(&mut during, "GET k");
    assert_fast_error(&mut c, "GET k");

    redis.restart();
    assert_recovers(&mut c, "PING", b"+PONG\r\n");
    assert_recovers(&mut during, "PING", b"+PONG\r\n");
    // The restarted Redis is empty; writes go through again.
    c.assert_cmd("GET k", b"$-1\r\n");
    c.assert_cmd("SET k after", b"+OK\r\n");
    during.assert_cmd("GET k", b"$5\r\nafter\r\n");
    let mut fresh = proxy.client();
    fresh.assert_cmd("GET k", b"$5\r\nafter\r\n");
}

#[test]
fn proxy_started_before_redis_fails_fast_then_connects() {
    let mut redis = RedisServer::start();
    redis.stop();
    let proxy = Proxy::start(&redis.url(), "");
    let mut c = proxy.client();
    assert_fast_error(&mut c, "GET k");
    assert_fast_error(&mut c, "SET k v");
    redis.restart();
    assert_recovers(&mut c, "SET k v", b"+OK\r\n");
    c.assert_cmd("GET k", b"$1\r\nv\r\n");
}

#[test]
fn blocked_client_gets_an_error_when_redis_dies() {
    let mut redis = RedisServer::start();
    let proxy = Proxy::start(&redis.url(), "");
    let mut waiter = proxy.client();
    waiter.send(&["BLPOP", "never", "0"]);
    redis.wait_blocked_clients(1, Duration::from_secs(5));
    redis.stop();
    let started = Instant::now();
    let reply = waiter.read_reply();
    assert!(
        reply.starts_with(b"-ERR"),
        "BLPOP when Redis died: {}",
        show(&reply)
    );
    assert!(
        started.elapsed() < FAST,
        "BLPOP error took {:?}",
        started.elapsed()
    );
    redis.restart();
    assert_recovers(&mut waiter, "PING", b"+PONG\r\n");
}

#[test]
fn transaction_open_when_redis_restarts_is_not_half_applied() {
    let mut redis = RedisServer::start();
    let proxy = Proxy::start(&redis.url(), "");
    let mut c = proxy.client();
    c.assert_cmd("MULTI", b"+OK\r\n");
    c.assert_cmd("SET tx-key 1", b"+QUEUED\r\n");
    redis.restart();
    // The queued SET died with the old connection; EXEC must not report success.
    c.send(&["EXEC"]);
    match c.try_read_reply() {
        Ok(reply) => assert!(
            reply.starts_with(b"-"),
            "EXEC after Redis restarted mid-transaction: {}",
            show(&reply)
        ),
        Err(e) => eprintln!("EXEC after restart: the proxy closed the client ({e})"),
    }
    redis.client().assert_cmd("EXISTS tx-key", b":0\r\n");
}

#[test]
fn subscriber_is_told_when_redis_dies() {
    let mut redis = RedisServer::start();
    let proxy = Proxy::start(&redis.url(), "");
    let mut sub = proxy.client();
    sub.assert_cmd(
        "SUBSCRIBE ch",
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    redis.stop();
    // Like a direct Redis client, the subscriber must learn its subscription is gone
    // (an error or a closed connection), not wait forever for messages.
    let (got, closed) = sub.read_available(FAST);
    assert!(
        closed || got.starts_with(b"-"),
        "subscriber not told within {FAST:?} that Redis went away (received {}, closed {closed})",
        show(&got)
    );
}

#[test]
fn upstream_connections_killed_by_redis_are_replaced() {
    let stack = Stack::start();
    let mut c = stack.client();
    let mut pinned = stack.client();
    c.assert_cmd("SET k v", b"+OK\r\n");
    pinned.assert_cmd(
        "SUBSCRIBE news",
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    );
    // An operator (or maxclients, or a timeout) closes every client connection.
    let killed = stack.direct().cmd("CLIENT KILL TYPE normal SKIPME yes");
    assert!(killed.starts_with(b":"), "CLIENT KILL: {}", show(&killed));
    let killed_pubsub = stack.direct().cmd("CLIENT KILL TYPE pubsub");
    // At least the subscriber's upstream connection (the proxy may have its own).
    assert!(
        killed_pubsub.starts_with(b":") && killed_pubsub != b":0\r\n",
        "CLIENT KILL TYPE pubsub: {}",
        show(&killed_pubsub)
    );
    assert_recovers(&mut c, "GET k", b"$1\r\nv\r\n");
    // The subscriber lost its subscription: it must be told (error or close).
    let (got, closed) = pinned.read_available(FAST);
    assert!(
        closed || got.starts_with(b"-"),
        "subscriber not told its upstream connection was killed (received {}, closed {closed})",
        show(&got)
    );
}

#[test]
fn cut_connection_fails_the_request_in_flight_then_reconnects() {
    let redis = RedisServer::start();
    let fault = FaultProxy::start(redis.addr());
    let proxy = Proxy::start(&fault.url(), "");
    let mut c = proxy.client();
    c.assert_cmd("SET kept value", b"+OK\r\n");

    fault.delay(Duration::from_secs(3));
    c.send(&["GET", "inflight-marker"]);
    assert!(
        fault.wait_seen(b"inflight-marker", Duration::from_secs(5)),
        "the request never left the proxy"
    );
    let started = Instant::now();
    fault.cut();
    fault.delay(Duration::ZERO);
    let reply = c.read_reply();
    assert!(
        reply.starts_with(b"-ERR"),
        "request in flight during the cut: {}",
        show(&reply)
    );
    assert!(
        started.elapsed() < FAST,
        "error took {:?}",
        started.elapsed()
    );

    assert_recovers(&mut c, "GET kept", b"$5\r\nvalue\r\n");
    c.assert_cmd("SET kept again", b"+OK\r\n");
    c.assert_cmd("GET kept", b"$5\r\nagain\r\n");
}

#[test]
fn refused_reconnects_fail_fast_until_the_network_heals() {
    let redis = RedisServer::start();
    let fault = FaultProxy::start(redis.addr());
    let proxy = Proxy::start(&fault.url(), "");
    let mut c = proxy.client();
    c.assert_cmd("SET k v", b"+OK\r\n");

    fault.block();
    fault.cut();
    for _ in 0..5 {
        assert_fast_error(&mut c, "GET k");
    }
    fault.unblock();
    assert_recovers(&mut c, "GET k", b"$1\r\nv\r\n");
}

#[test]
fn unresponsive_redis_hits_the_request_timeout() {
    let redis = RedisServer::start();
    let fault = FaultProxy::start(redis.addr());
    let proxy = Proxy::start(
        &fault.url(),
        "[upstream]\nrequest_timeout = \"500ms\"\nconnect_timeout = \"500ms\"",
    );
    let mut c = proxy.client();
    c.assert_cmd("SET k v", b"+OK\r\n");

    // A partition: connections are accepted, nothing ever comes back.
    fault.blackhole();
    fault.cut();
    assert_fast_error(&mut c, "GET k");
    assert_fast_error(&mut c, "SET k w");
    fault.unblock();
    fault.cut();
    assert_recovers(&mut c, "GET k", b"$1\r\nv\r\n");
}

#[test]
fn late_reply_after_a_timeout_is_not_given_to_the_next_request() {
    let redis = RedisServer::start();
    let fault = FaultProxy::start(redis.addr());
    // Silent for 500 ms, and no answer to the liveness check within 300 ms: the
    // connection is given up (a slow but live Redis is waited for instead).
    let proxy = Proxy::start(
        &fault.url(),
        "[upstream]\nrequest_timeout = \"500ms\"\nliveness_timeout = \"300ms\"",
    );
    let mut direct = redis.client();
    direct.assert_cmd("SET k1 one", b"+OK\r\n");
    direct.assert_cmd("SET k2 two", b"+OK\r\n");
    let mut c = proxy.client();
    c.assert_cmd("GET k1", b"$3\r\none\r\n");

    fault.delay(Duration::from_millis(1500));
    assert_fast_error(&mut c, "GET k1");
    fault.delay(Duration::ZERO);
    // The reply to the timed-out GET k1 still arrives later on that upstream
    // connection; it must not be taken for the reply to GET k2.
    assert_recovers(&mut c, "GET k2", b"$3\r\ntwo\r\n");
    for _ in 0..20 {
        c.assert_cmd("GET k2", b"$3\r\ntwo\r\n");
        c.assert_cmd("GET k1", b"$3\r\none\r\n");
    }
}

/// Asserts `bytes` get a protocol error and the connection is closed.
fn assert_protocol_error(stack: &Stack, bytes: &[u8]) {
    let redis_says = {
        let mut d = stack.direct();
        d.send_raw(bytes);
        d.try_read_reply()
            .map(|r| show(&r))
            .unwrap_or_else(|e| e.to_string())
    };
    let mut c = stack.client();
    c.send_raw(bytes);
    let reply = c.try_read_reply();
    assert!(
        reply
            .as_ref()
            .is_ok_and(|r| r.starts_with(b"-ERR Protocol error")),
        "{} got {:?}, expected a protocol error (Redis replies {redis_says})",
        show(bytes),
        reply.as_ref().map(|r| show(r))
    );
    assert!(
        c.closed_within(FAST),
        "{}: connection left open after a protocol error",
        show(bytes)
    );
}

#[test]
fn garbage_gets_a_protocol_error_and_the_connection_is_closed() {
    let stack = Stack::start();
    let mut random_star = b"*".to_vec();
    // No digit or sign (that would be a valid count) and no NUL (Redis stops looking
    // for the CR there and waits for more).
    random_star.extend(pseudo_random_bytes(512, 7).iter().map(|&b| {
        if b.is_ascii_digit() || b == b'-' || b == 0 {
            b'x'
        } else {
            b
        }
    }));
    random_star.extend_from_slice(b"\r\n");
    let cases: Vec<Vec<u8>> = vec![
        b"*abc\r\n".to_vec(),
        b"*1\r\n$-5\r\n".to_vec(),
        b"*1\r\n$abc\r\n".to_vec(),
        b"*1\r\nfoo\r\n".to_vec(),
        b"*2\r\n$3\r\nGET\r\n:1\r\n".to_vec(),
        b"*99999999999\r\n".to_vec(),
        random_star,
    ];
    for bytes in &cases {
        assert_protocol_error(&stack, bytes);
    }
    // Commands before the garbage are answered first.
    let mut c = stack.client();
    c.send_raw(b"*1\r\n$4\r\nPING\r\n*x\r\n");
    c.assert_reply(b"+PONG\r\n");
    let reply = c.read_reply();
    assert!(
        reply.starts_with(b"-ERR Protocol error"),
        "after PING: {}",
        show(&reply)
    );
    assert!(
        c.closed_within(FAST),
        "connection left open after a protocol error"
    );
    let mut other = stack.client();
    other.assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn random_bytes_get_only_error_replies_and_do_not_hurt_the_proxy() {
    let stack = Stack::start();
    let mut healthy = stack.client();
    for seed in 1..=25u64 {
        let bytes = pseudo_random_bytes(4096, seed);
        let mut c = stack.client();
        let _ = c.try_send_raw(&bytes);
        let (got, _closed) = c.read_available(Duration::from_millis(300));
        let mut rest = got.as_slice();
        while let Ok(Some(n)) = resp::reply_len(rest) {
            assert!(
                rest[0] == b'-',
                "seed {seed}: random input got a non-error reply {}",
                show(&rest[..n])
            );
            rest = &rest[n..];
        }
        assert!(
            rest.is_empty() || rest[0] == b'-',
            "seed {seed}: unparsable reply {}",
            show(rest)
        );
        healthy.assert_cmd("PING", b"+PONG\r\n");
    }
    assert!(
        !stack.proxy.has_exited(),
        "respite::run returned after random input"
    );
}

#[test]
fn half_frames_wait_for_the_rest() {
    let stack = Stack::start();
    let mut a = stack.client();
    let mut b = stack.client();
    b.assert_cmd("SET abc value", b"+OK\r\n");

    a.send_raw(b"*2\r\n$3\r\nGET\r\n$3\r\nab");
    assert!(
        a.silent_for(Duration::from_millis(300)),
        "a partial command got a reply or a close"
    );
    // Other clients are not held up by it.
    b.assert_cmd("PING", b"+PONG\r\n");
    b.assert_cmd("GET abc", b"$5\r\nvalue\r\n");
    a.send_raw(b"c\r\n");
    a.assert_reply(b"$5\r\nvalue\r\n");

    // A header cut in the middle of its length line.
    a.send_raw(b"*1\r\n$4");
    assert!(
        a.silent_for(Duration::from_millis(200)),
        "a partial header got a reply or a close"
    );
    a.send_raw(b"\r\nPING\r\n");
    a.assert_reply(b"+PONG\r\n");

    // A whole command one byte per write.
    for byte in encode_command(&["SET", "slow", "byte-by-byte"]) {
        a.send_raw(&[byte]);
    }
    a.assert_reply(b"+OK\r\n");
    b.assert_cmd("GET slow", b"$12\r\nbyte-by-byte\r\n");
}

#[test]
fn huge_bulk_header_is_refused_without_waiting_for_the_body() {
    let stack = Stack::start();
    for bytes in [
        b"*1\r\n$1000000000\r\n".as_slice(),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$600000000\r\n".as_slice(),
    ] {
        let mut c = stack.client();
        let started = Instant::now();
        c.send_raw(bytes);
        let reply = c.read_reply();
        assert!(
            reply == b"-ERR Protocol error: invalid bulk length\r\n",
            "{}: {}",
            show(bytes),
            show(&reply)
        );
        assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
        assert!(c.closed_within(FAST), "connection left open");
    }
    stack.client().assert_cmd("GET k", b"$-1\r\n");
}

#[test]
fn max_bulk_len_is_enforced() {
    let stack = Stack::start_with("[server]\nmax_bulk_len = \"1KiB\"");
    let mut ok = stack.client();
    ok.assert_cmd(&format!("SET small {}", "x".repeat(1000)), b"+OK\r\n");
    let mut c = stack.client();
    c.send(&["SET", "large", &"y".repeat(2000)]);
    let reply = c.read_reply();
    assert!(
        reply.starts_with(b"-ERR Protocol error"),
        "2000-byte bulk with max_bulk_len 1KiB: {}",
        show(&reply)
    );
    assert!(c.closed_within(FAST));
    stack.direct().assert_cmd("EXISTS large", b":0\r\n");
}

#[test]
fn more_than_max_args_is_refused() {
    let stack = Stack::start_with("[server]\nmax_args = 8");
    let mut c = stack.client();
    c.assert_cmd("MSET a 1 b 2 c 3", b"+OK\r\n");
    c.assert_cmd("DEL x1 x2 x3 x4 x5 x6 x7", b":0\r\n");
    let mut over = stack.client();
    let reply = over.cmd("DEL a b c x1 x2 x3 x4 x5");
    assert!(
        reply.starts_with(b"-ERR"),
        "9 arguments with max_args 8: {}",
        show(&reply)
    );
    let mut direct = stack.direct();
    direct.assert_cmd("EXISTS a b c", b":3\r\n");
    let reply = stack.client().cmd("MSET k1 1 k2 2 k3 3 k4 4 k5 5");
    assert!(
        reply.starts_with(b"-ERR"),
        "11 arguments with max_args 8: {}",
        show(&reply)
    );
    direct.assert_cmd("EXISTS k1", b":0\r\n");
    c.assert_cmd("PING", b"+PONG\r\n");
}

fn soft_nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

#[test]
fn two_thousand_idle_connections_then_one_more_is_served() {
    // The clients and the proxy share this process: each connection costs two fds.
    match soft_nofile_limit() {
        Some(limit) if limit >= 4500 => {}
        other => {
            eprintln!(
                "SKIPPED two_thousand_idle_connections: open-file soft limit {other:?} < 4500"
            );
            return;
        }
    }
    let stack = Stack::start();
    let mut idle: Vec<Client> = (0..2000).map(|_| stack.client()).collect();
    let mut one_more = stack.client();
    one_more.set_read_timeout(Duration::from_secs(5));
    one_more.assert_cmd("PING", b"+PONG\r\n");
    one_more.assert_cmd("SET k v", b"+OK\r\n");
    // The idle ones were really accepted, not left in the backlog.
    for i in [0, 999, 1999] {
        idle[i].assert_cmd("GET k", b"$1\r\nv\r\n");
    }
}

#[test]
fn max_clients_refuses_the_extra_connection() {
    let stack = Stack::start_with("[server]\nmax_clients = 5");
    let mut held: Vec<Client> = (0..5)
        .map(|_| {
            let mut c = stack.client();
            c.assert_cmd("PING", b"+PONG\r\n");
            c
        })
        .collect();
    let mut sixth = stack.client();
    let reply = sixth.read_reply();
    assert!(
        reply == b"-ERR max number of clients reached\r\n",
        "{}",
        show(&reply)
    );
    assert!(sixth.closed_within(FAST), "refused connection left open");
    for c in &mut held {
        c.assert_cmd("PING", b"+PONG\r\n");
    }
    // A slot freed by a client that leaves is given to the next one.
    drop(held.pop());
    let addr = stack.proxy.addr();
    let served = wait_until(Duration::from_secs(5), || {
        Client::try_connect(addr).is_ok_and(|mut c| {
            c.try_send_raw(b"*1\r\n$4\r\nPING\r\n").is_ok()
                && c.try_read_reply().is_ok_and(|r| r == b"+PONG\r\n")
        })
    });
    assert!(served, "no new client served after one of the 5 left");
}

#[test]
fn client_that_never_reads_is_not_buffered_without_bound() {
    let stack = Stack::start();
    stack
        .direct()
        .call(&[b"SET".as_slice(), b"big", &vec![b'v'; 10 * 1024]]);

    let slow = TcpStream::connect(stack.proxy.addr()).unwrap();
    // Keep the kernel's share small so what we measure is what the proxy took in.
    socket2::SockRef::from(&slow)
        .set_send_buffer_size(64 * 1024)
        .unwrap();
    slow.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let command = encode_command(&["GET", "big"]);
    let total = command.len() * 100_000;
    let batch = command.repeat(1000);
    let mut written = 0;
    let started = Instant::now();
    let mut writer = &slow;
    while written < total && started.elapsed() < Duration::from_secs(30) {
        let n = batch.len().min(total - written);
        match writer.write(&batch[..n]) {
            Ok(n) => written += n,
            Err(e) if is_timeout(&e) => break,
            Err(e) => panic!("write failed after {written} bytes: {e}"),
        }
    }
    eprintln!(
        "slow client: wrote {written} of {total} request bytes ({} of 100000 GETs) before writes blocked",
        written / command.len()
    );
    assert!(
        written < total / 2,
        "the proxy kept reading from a client that reads no replies: {written} of {total} \
         request bytes accepted (~{} MB of replies buffered somewhere)",
        written / command.len() * 10 / 1024
    );

    // Everyone else is still served promptly.
    let mut other = stack.client();
    other.set_read_timeout(Duration::from_secs(1));
    other.assert_cmd("PING", b"+PONG\r\n");
    other.assert_cmd("STRLEN big", b":10240\r\n");
    drop(slow);
    other.assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn graceful_shutdown_closes_clients_and_returns() {
    let redis = RedisServer::start();
    let mut proxy = Proxy::start(&redis.url(), "");
    let mut idle = proxy.client();
    idle.assert_cmd("PING", b"+PONG\r\n");
    let result = proxy.stop_within(Duration::from_secs(10));
    assert!(
        matches!(result, Ok(Ok(()))),
        "respite::run after shutdown: {result:?}"
    );
    assert!(
        idle.closed_within(FAST),
        "client connection left open after shutdown"
    );
}
