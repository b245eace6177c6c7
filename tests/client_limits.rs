//! `[server] max_clients_per_ip` and `[server] timeout`, against a real Redis. The idle
//! timeout is compared with Redis's own `timeout`: the same clients (idle, blocked in
//! BLPOP, subscribed, MONITOR, waiting for a paused write) connect to a
//! `redis-server --timeout 1` directly and to a respite with `timeout = "1s"`, and the
//! same ones must be closed.

mod support;

use std::time::{Duration, Instant};

use support::{Client, RedisServer, Stack, redis::free_port, show, wait_until};

const OK: &[u8] = b"+OK\r\n";
const REJECTED: &[u8] = b"-ERR max number of clients reached\r\n";
/// Longer than any idle client may live: the timeout, the once-a-second check, and slack.
const CLOSED_WITHIN: Duration = Duration::from_secs(6);

// ---------------------------------------------------------------------------------
// max_clients_per_ip

/// `respite_clients_rejected_total` in the proxy's `/metrics` on `port`.
fn rejected(metrics_port: u16) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix("respite_clients_rejected_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no rejection counter in {body}"))
}

#[test]
fn connections_beyond_the_limit_per_address_are_refused_and_counted() {
    let metrics_port = free_port();
    let stack = Stack::start_with(&format!(
        "[server]\nmax_clients_per_ip = 2\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ));
    let mut first = stack.client();
    first.assert_cmd("PING", b"+PONG\r\n");
    let mut second = stack.client();
    second.assert_cmd("PING", b"+PONG\r\n");
    let mut third = stack.client();
    assert_eq!(third.read_reply(), REJECTED, "as the global limit answers");
    assert!(third.closed_within(Duration::from_secs(5)));
    assert!(wait_until(CLOSED_WITHIN, || rejected(metrics_port) == 1.0));

    // Another address has its own count.
    let other = Client::connect_from("127.0.0.2".parse().unwrap(), stack.proxy.addr());
    match other {
        Ok(mut other) => other.assert_cmd("PING", b"+PONG\r\n"),
        Err(e) => eprintln!("not checked from 127.0.0.2: {e}"),
    }
    // A connection that leaves frees its place.
    drop(first);
    let mut replaced = None;
    assert!(wait_until(CLOSED_WITHIN, || {
        let mut c = stack.client();
        let pong = c.cmd("PING") == b"+PONG\r\n";
        replaced = pong.then_some(c);
        pong
    }));
    second.assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn no_limit_per_address_by_default() {
    let stack = Stack::start();
    let mut clients: Vec<Client> = (0..20).map(|_| stack.client()).collect();
    for c in &mut clients {
        c.assert_cmd("PING", b"+PONG\r\n");
    }
}

// ---------------------------------------------------------------------------------
// timeout

/// Which of the clients of [`idle_scenario`] were closed.
#[derive(Debug, PartialEq, Eq)]
struct Closed {
    idle: bool,
    blocked: bool,
    subscriber: bool,
    monitor: bool,
}

/// Connects an idle client, one blocked in `BLPOP`, a subscriber and a MONITOR through
/// `connect`; once the idle one is closed (it must be), waits more than another
/// timeout and checks which of the others still work. `direct` opens a connection to
/// Redis that its timeout does not touch while it is used.
fn idle_scenario(connect: impl Fn() -> Client, direct: impl Fn() -> Client) -> Closed {
    let mut idle = connect();
    idle.assert_cmd("PING", b"+PONG\r\n");
    let mut blocked = connect();
    blocked.send(&["BLPOP", "q", "0"]);
    let mut subscriber = connect();
    subscriber.send(&["SUBSCRIBE", "ch"]);
    assert!(show(&subscriber.read_reply()).contains("subscribe"));
    let mut monitor = connect();
    monitor.assert_cmd("MONITOR", OK);
    let started = Instant::now();
    assert!(
        idle.closed_within(CLOSED_WITHIN),
        "an idle client was not closed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
    // A whole timeout more: the others would be closed by now if they were idle.
    let quiet = blocked.silent_for(Duration::from_millis(1500));
    let mut d = direct();
    d.call(&["LPUSH", "q", "x"]);
    d.call(&["PUBLISH", "ch", "m"]);
    let blocked_closed = !quiet || blocked.try_read_reply().is_err();
    let subscriber_closed = subscriber.try_read_reply().is_err();
    let (_, monitor_closed) = monitor.read_available(Duration::from_millis(200));
    if !blocked_closed {
        blocked.assert_cmd("PING", b"+PONG\r\n");
    }
    Closed {
        idle: true,
        blocked: blocked_closed,
        subscriber: subscriber_closed,
        monitor: monitor_closed,
    }
}

#[test]
fn idle_clients_are_closed_as_redis_timeout_closes_them() {
    let expected = Closed {
        idle: true,
        blocked: false,
        subscriber: false,
        monitor: false,
    };
    let redis = RedisServer::start_with(&["--timeout", "1"]);
    let by_redis = idle_scenario(|| redis.client(), || redis.client());
    assert_eq!(by_redis, expected, "Redis's own timeout");

    let stack = Stack::start_with("[server]\ntimeout = \"1s\"\n");
    let by_respite = idle_scenario(|| stack.client(), || stack.direct());
    assert_eq!(by_respite, by_redis);
}

/// A client whose write waits out a `CLIENT PAUSE` longer than the timeout gets its
/// reply, and is idle (and closed) only from then on.
fn paused_write(connect: impl Fn() -> Client, direct: impl Fn() -> Client) -> Duration {
    direct().assert_cmd("CLIENT PAUSE 2500 WRITE", OK);
    let mut c = connect();
    let sent = Instant::now();
    c.send(&["SET", "k", "v"]);
    assert_eq!(c.read_reply(), OK, "closed while its write was paused");
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "the pause held the write"
    );
    let answered = Instant::now();
    assert!(
        c.closed_within(CLOSED_WITHIN),
        "idle after its reply, never closed"
    );
    answered.elapsed()
}

#[test]
fn a_client_waiting_for_its_reply_is_not_idle() {
    let redis = RedisServer::start_with(&["--timeout", "1"]);
    let by_redis = paused_write(|| redis.client(), || redis.client());
    assert!(by_redis >= Duration::from_millis(900), "{by_redis:?}");

    let stack = Stack::start_with("[server]\ntimeout = \"1s\"\n");
    let by_respite = paused_write(|| stack.client(), || stack.direct());
    assert!(by_respite >= Duration::from_millis(900), "{by_respite:?}");
}

#[test]
fn active_clients_and_the_default_are_never_closed() {
    let stack = Stack::start_with("[server]\ntimeout = \"1s\"\n");
    let mut active = stack.client();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        active.assert_cmd("PING", b"+PONG\r\n");
        // One command every 300 ms: never idle for a whole second.
        assert!(active.silent_for(Duration::from_millis(300)));
    }
    // RESPITE commands count as activity too (`respite top` sends only STATS).
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        assert!(active.cmd("RESPITE STATS").starts_with(b"*"));
        assert!(active.silent_for(Duration::from_millis(300)));
    }

    let default = Stack::start();
    let mut idle = default.client();
    idle.assert_cmd("PING", b"+PONG\r\n");
    assert!(
        idle.silent_for(Duration::from_millis(2500)),
        "timeout is off by default"
    );
    idle.assert_cmd("PING", b"+PONG\r\n");
}
