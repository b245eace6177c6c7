//! Safe to expose beyond loopback: the RESPITE admin commands refused on a listener
//! other hosts can reach unless `[admin] password` is set, `RESPITE AUTH` failures
//! counted and rate-limited per address, `PUT /loglevel` off unless allowed, probes of
//! the HTTP endpoint answered while slow clients hold every connection slot, and no
//! secret in any log line (at trace level), `respite check` output, STATS or
//! `/metrics`.

mod support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use support::{
    Client, RedisServer, Stack, binary::Binary, l1::stats, redis::free_port, show, wait_until,
};

const OK: &[u8] = b"+OK\r\n";
const READY: Duration = Duration::from_secs(10);
/// `RESPITE AUTH` failures from one address before it is refused (admin/throttle.rs).
const MAX_AUTH_FAILURES: usize = 10;

struct Response {
    status: u16,
    body: String,
}

/// One HTTP exchange on a new connection.
fn http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(READY)).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        panic!(
            "no response to {}: {text:?}",
            String::from_utf8_lossy(request)
        );
    };
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    Response {
        status: status.unwrap_or_else(|| panic!("no status in {head:?}")),
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
}

/// `respite check` of `config`: whether it passed, stdout and stderr.
fn try_check(config: &str) -> (bool, String) {
    let (code, text) = support::binary::check(config);
    (code == Some(0), text)
}

/// `respite check` of a valid `config`: stdout and stderr.
fn check(config: &str) -> String {
    let (ok, text) = try_check(config);
    assert!(ok, "{text}");
    text
}

/// A client of the binary listening on `port`, once it accepts.
fn client_of(port: u16) -> Client {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut client = None;
    assert!(wait_until(READY, || {
        client = Client::try_connect(addr).ok();
        client.is_some()
    }));
    client.unwrap()
}

// ---------------------------------------------------------------------------------
// Admin commands: who may run them.

#[test]
fn admin_is_refused_on_an_exposed_listener_without_a_password() {
    let redis = RedisServer::start();
    let port = free_port();
    let config = format!(
        "[server]\nlisten = \"0.0.0.0:{port}\"\n[upstream]\nurl = \"{}\"\n",
        redis.url()
    );
    let binary = Binary::start(&config);
    let mut c = client_of(port);
    for line in [
        "RESPITE STATS",
        "RESPITE FLUSHL1",
        "RESPITE DELPATTERN k:*",
        "RESPITE RELOAD",
        "RESPITE EXPLAIN k",
    ] {
        let reply = c.cmd(line);
        assert!(reply.starts_with(b"-NOPERM"), "{line}: {}", show(&reply));
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.contains("[admin] password") && text.contains("loopback"),
            "the refusal says what to configure: {text}"
        );
    }
    assert!(c.cmd("RESPITE HELP").starts_with(b"*"));
    let auth = c.cmd("RESPITE AUTH guess");
    assert!(auth.starts_with(b"-ERR"), "{}", show(&auth));
    c.assert_cmd("PING", b"+PONG\r\n");
    assert!(
        wait_until(READY, || binary
            .logged("RESPITE admin commands are refused")),
        "no start-up warning: {:?}",
        binary.lines()
    );
    assert!(check(&config).contains("RESPITE commands REFUSED"));
}

#[test]
fn an_exposed_listener_with_a_password_allows_admin_after_auth() {
    let redis = RedisServer::start();
    let port = free_port();
    let binary = Binary::start(&format!(
        "[server]\nlisten = \"0.0.0.0:{port}\"\n[upstream]\nurl = \"{}\"\n[admin]\npassword = \"pw\"\n",
        redis.url()
    ));
    let mut c = client_of(port);
    let locked = c.cmd("RESPITE STATS");
    assert!(locked.starts_with(b"-NOPERM"), "{}", show(&locked));
    c.assert_cmd("RESPITE AUTH pw", OK);
    assert!(c.cmd("RESPITE STATS").starts_with(b"*"));
    let lines = binary.stop();
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("admin commands are refused")),
        "{lines:?}"
    );
}

#[test]
fn check_says_who_may_run_admin_commands() {
    let on = |listen: &str, admin: &str| {
        check(&format!("[server]\nlisten = \"{listen}\"\n{admin}"))
            .lines()
            .find(|l| l.starts_with("admin"))
            .unwrap()
            .to_owned()
    };
    assert!(on("127.0.0.1:6380", "").contains("allowed without a password"));
    assert!(on("[::1]:6380", "").contains("allowed without a password"));
    assert!(on("0.0.0.0:6380", "").contains("REFUSED"));
    let with_password = on("0.0.0.0:6380", "[admin]\npassword = \"pw\"\n");
    assert!(
        with_password.contains("after RESPITE AUTH"),
        "{with_password}"
    );
    let disabled = on("127.0.0.1:6380", "[admin]\nenabled = false\n");
    assert!(disabled.contains("disabled"), "{disabled}");
}

// ---------------------------------------------------------------------------------
// RESPITE AUTH failures.

#[test]
fn auth_failures_are_counted_and_rate_limited_per_address() {
    let metrics_port = free_port();
    let stack = Stack::start_with(&format!(
        "[admin]\npassword = \"right-pw\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ));
    let m: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let mut admin = stack.client();
    admin.assert_cmd("RESPITE AUTH right-pw", OK);

    let mut c = stack.client();
    for i in 0..MAX_AUTH_FAILURES {
        let reply = c.cmd(&format!("RESPITE AUTH wrong-{i}"));
        assert!(reply.starts_with(b"-WRONGPASS"), "{i}: {}", show(&reply));
    }
    // Refused without comparing: the right password too, from any connection of that
    // address, until the window passes.
    for mut who in [c, stack.client()] {
        let reply = who.cmd("RESPITE AUTH right-pw");
        let text = String::from_utf8_lossy(&reply).into_owned();
        assert!(
            text.starts_with("-ERR too many failed RESPITE AUTH attempts"),
            "{text}"
        );
        assert!(who.cmd("RESPITE STATS").starts_with(b"-NOPERM"));
    }
    // Counted in STATS (the connection that authenticated first still may) …
    let s = stats(&mut admin);
    assert_eq!(
        s["admin_auth_wrong_password"],
        MAX_AUTH_FAILURES.to_string()
    );
    assert_eq!(s["admin_auth_rate_limited"], "2");
    // … and in /metrics.
    let body = get(m, "/metrics").body;
    let wrong = format!(
        "respite_admin_auth_failures_total{{reason=\"wrong_password\"}} {MAX_AUTH_FAILURES}"
    );
    assert!(body.contains(&wrong), "{body}");
    assert!(
        body.contains("respite_admin_auth_failures_total{reason=\"rate_limited\"} 2"),
        "{body}"
    );
    // Ordinary commands never needed it.
    stack.client().assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn another_address_is_not_rate_limited_by_this_ones_failures() {
    let stack = Stack::start_with("[admin]\npassword = \"right-pw\"\n");
    let mut c = stack.client();
    for _ in 0..MAX_AUTH_FAILURES {
        assert!(c.cmd("RESPITE AUTH wrong").starts_with(b"-WRONGPASS"));
    }
    assert!(c.cmd("RESPITE AUTH right-pw").starts_with(b"-ERR too many"));
    let Ok(mut other) = Client::connect_from("127.0.0.2".parse().unwrap(), stack.proxy.addr())
    else {
        eprintln!("skipped: cannot connect from 127.0.0.2 here");
        return;
    };
    other.assert_cmd("RESPITE AUTH right-pw", OK);
}

// ---------------------------------------------------------------------------------
// The HTTP endpoint.

#[test]
fn put_loglevel_is_refused_unless_allowed() {
    let put = b"PUT /loglevel HTTP/1.1\r\nContent-Length: 5\r\n\r\ndebug";
    let stack = Stack::start_with("[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let r = http(stack.proxy.metrics_addr(), put);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("[metrics] allow_loglevel = true"),
        "{}",
        r.body
    );

    let allowed = Stack::start_with("[metrics]\nlisten = \"127.0.0.1:0\"\nallow_loglevel = true\n");
    // Allowed: the in-process proxy does not own the log subscriber, so it says so.
    let r = http(allowed.proxy.metrics_addr(), put);
    assert_eq!(r.status, 501, "{}", r.body);
}

/// Connections that send part of a request head and trickle the rest.
struct Slowloris(Vec<TcpStream>);

impl Slowloris {
    fn open(&mut self, addr: SocketAddr, n: usize) {
        for _ in 0..n {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").unwrap();
            self.0.push(s);
        }
    }

    /// One more byte on each (those the endpoint closed fail, unseen).
    fn trickle(&mut self) {
        for s in &mut self.0 {
            let _ = s.write_all(b"a");
        }
    }
}

#[test]
fn probes_are_answered_while_slow_clients_hold_every_slot() {
    const SLOTS: usize = 32; // the endpoint's connection limit (observe/http.rs)
    // Well under the 2 s a request head may take: only admission can explain an answer.
    const BOUND: Duration = Duration::from_secs(1);
    let stack = Stack::start_with("[metrics]\nlisten = \"127.0.0.1:0\"\n");
    let m = stack.proxy.metrics_addr();
    assert!(wait_until(READY, || get(m, "/readyz").status == 200));
    let mut slow = Slowloris(Vec::new());
    slow.open(m, SLOTS + 8);
    for round in 0..3 {
        slow.trickle();
        for path in ["/healthz", "/readyz", "/metrics"] {
            let started = Instant::now();
            let r = get(m, path);
            let took = started.elapsed();
            assert_eq!(r.status, 200, "round {round}, {path}: {}", r.body);
            assert!(took < BOUND, "round {round}, {path} took {took:?}");
        }
        slow.open(m, 4);
    }
    stack.client().assert_cmd("PING", b"+PONG\r\n");
}

// ---------------------------------------------------------------------------------
// No secret anywhere.

const UPSTREAM_PW: &str = "upstream-s3cret-1";
const ADMIN_PW: &str = "admin-s3cret-2";
const WRONG_PW: &str = "wrong-guess-3";
const ACL_PW: &str = "acl-s3cret-4";
const MIGRATE_PW: &str = "migrate-s3cret-5";
const SECRETS: [&str; 5] = [UPSTREAM_PW, ADMIN_PW, WRONG_PW, ACL_PW, MIGRATE_PW];

/// Every command that carries a password, right and wrong, through `c`.
fn send_every_password(c: &mut Client) {
    let replies = [
        c.cmd(&format!("AUTH {WRONG_PW}")),
        c.cmd(&format!("AUTH {UPSTREAM_PW}")),
        c.cmd(&format!("AUTH default {UPSTREAM_PW}")),
        c.cmd(&format!("HELLO 2 AUTH default {WRONG_PW}")),
        c.cmd(&format!("HELLO 2 AUTH default {UPSTREAM_PW}")),
        c.cmd(&format!("ACL SETUSER bob on >{ACL_PW} ~* +@all")),
        c.cmd(&format!("AUTH bob {ACL_PW}")),
        c.cmd(&format!("AUTH bob {WRONG_PW}")),
        c.cmd("SET k v"),
        c.cmd(&format!("MIGRATE 127.0.0.1 1 k 0 100 AUTH {MIGRATE_PW}")),
        c.cmd(&format!("MIGRATE 127.0.0.1 1 k 0 100 AUTH2 bob {ACL_PW}")),
        c.cmd(&format!("RESPITE AUTH {WRONG_PW}")),
        c.cmd(&format!("RESPITE AUTH {ADMIN_PW}")),
    ];
    let shown: Vec<String> = replies.iter().map(|r| show(r)).collect();
    assert_eq!(&replies[1], OK, "{shown:?}");
    assert_eq!(&replies[6], OK, "{shown:?}");
    assert!(replies[7].starts_with(b"-WRONGPASS"), "{shown:?}");
    assert!(replies[9].starts_with(b"-IOERR"), "{shown:?}");
    assert!(replies[11].starts_with(b"-WRONGPASS"), "{shown:?}");
    assert_eq!(&replies[12], OK, "{shown:?}");
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
}

#[test]
fn no_secret_in_logs_check_stats_client_list_or_metrics() {
    let redis = RedisServer::start_with(&["--requirepass", UPSTREAM_PW]);
    let (port, metrics_port) = (free_port(), free_port());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\
         [upstream]\nurl = \"redis://:{UPSTREAM_PW}@127.0.0.1:{}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [admin]\npassword = \"{ADMIN_PW}\"\n\
         [log]\nlevel = \"trace\"\n",
        redis.port()
    );
    let binary = Binary::start(&config);
    let mut c = client_of(port);
    send_every_password(&mut c);
    let stats = c.cmd("RESPITE STATS");
    assert!(stats.starts_with(b"*"), "{}", show(&stats));
    assert_no_secret("RESPITE STATS", &String::from_utf8_lossy(&stats));
    let list = c.cmd("CLIENT LIST");
    assert_no_secret("CLIENT LIST", &String::from_utf8_lossy(&list));
    let m: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    assert_no_secret("/metrics", &get(m, "/metrics").body);
    assert_no_secret("respite check", &check(&config));
    // A file that does not parse on the password's line: the error names the line and
    // key, not what is written there.
    let broken = config.replace(&format!("\"{ADMIN_PW}\""), &format!("\"{ADMIN_PW}"));
    let (ok, refused) = try_check(&broken);
    assert!(!ok && refused.contains("`password`"), "{refused}");
    assert_no_secret("respite check of a broken file", &refused);
    drop(c);
    // Trace level is on: the client's coming and going is there.
    assert!(wait_until(READY, || binary.logged("disconnected")));
    let lines = binary.stop();
    assert!(
        lines.iter().any(|l| l.contains("respite listening")),
        "{lines:?}"
    );
    assert_no_secret("the log", &lines.join("\n"));
}
