//! The metrics endpoint: `/metrics` scraped and parsed as Prometheus text while a
//! scripted sequence runs (L1 hits and misses, coalesced misses, Redis errors, Redis
//! down and back), `/readyz` following Redis, the HTTP responder's limits, and the
//! binary's `--list-metrics`, JSON logs and runtime log level.

mod support;

use std::{
    collections::{BTreeMap, HashMap},
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use support::{Client, FaultProxy, Proxy, RedisServer, Stack, l1::stat_int, wait_until};

/// `c:*` cached in L1 with tracking; `plain:*` not cached; metrics on a free port.
const CACHED: &str = r#"
[metrics]
listen = "127.0.0.1:0"

[l1]
max_memory = "64MiB"
coherence = "tracking"

[[namespace]]
name = "plain"
match = "plain:*"

[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "10s"
"#;

const READY: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------
// A minimal HTTP client and Prometheus text parser.

struct Response {
    status: u16,
    head: String,
    body: String,
}

fn http(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    http(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

/// One parsed scrape: every sample by `name{sorted labels}`, and each family's type.
#[derive(Debug)]
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        let mut types = HashMap::new();
        for line in text.lines() {
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                assert!(
                    types.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "two TYPE lines for {name}"
                );
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = parse_sample(line);
            let family = series.split('{').next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| family.strip_suffix(s))
                .filter(|b| types.get(*b).is_some_and(|t| t == "histogram"))
                .unwrap_or(family);
            assert!(types.contains_key(base), "sample before its TYPE: {line}");
            assert!(
                samples.insert(series.clone(), value).is_none(),
                "duplicate series {series}"
            );
        }
        Scrape { samples, types }
    }

    fn of(addr: SocketAddr) -> Scrape {
        let r = get(addr, "/metrics");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{}",
            r.head
        );
        Scrape::parse(&r.body)
    }

    /// The value of `name` with exactly these labels (0 if absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .get(&key(name, labels))
            .copied()
            .unwrap_or_default()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.contains_key(&key(name, labels))
    }

    /// The sum of `name` over every label set.
    fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .map(|(_, v)| v)
            .sum()
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return name.to_owned();
    }
    let mut labels: Vec<_> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

/// `name{k="v",…} value`, checked against the text format's grammar.
fn parse_sample(line: &str) -> (String, f64) {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    assert!(
        !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()),
        "bad metric name in {line:?}"
    );
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let close = body
            .find('}')
            .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
        for pair in body[..close].split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("bad label {pair:?}"));
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unquoted label value {pair:?}"));
            labels.push((k, v));
        }
        rest = &body[close + 1..];
    }
    let value = rest
        .trim()
        .split(' ')
        .next()
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value {v:?} in {line:?}")),
    };
    (key(name, &labels), value)
}

/// Polls `/metrics` until `cond` holds.
fn wait_scrape(addr: SocketAddr, what: &str, mut cond: impl FnMut(&Scrape) -> bool) -> Scrape {
    let mut last = None;
    let ok = wait_until(READY, || {
        let s = Scrape::of(addr);
        let ok = cond(&s);
        last = Some(s);
        ok
    });
    let last = last.unwrap();
    assert!(
        ok,
        "{what}: not reached within {READY:?}; last scrape: {last:#?}"
    );
    last
}

fn wait_ready(addr: SocketAddr, status: u16) -> Response {
    let mut last = None;
    let ok = wait_until(READY, || {
        let r = get(addr, "/readyz");
        let ok = r.status == status;
        last = Some(r);
        ok
    });
    let last = last.unwrap();
    assert!(
        ok,
        "/readyz did not answer {status} within {READY:?}: {} {}",
        last.status, last.body
    );
    last
}

/// `after - before` for one series.
fn delta(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.get(name, labels) - before.get(name, labels)
}

fn requests(s: &Scrape, kind: &str, outcome: &str) -> f64 {
    s.get(
        "respite_requests_total",
        &[("kind", kind), ("outcome", outcome)],
    )
}

/// `after - before` of `respite_requests_total{kind, outcome}`.
fn req_delta(before: &Scrape, after: &Scrape, kind: &str, outcome: &str) -> f64 {
    requests(after, kind, outcome) - requests(before, kind, outcome)
}

// ---------------------------------------------------------------------------------

#[test]
fn counters_follow_a_scripted_sequence() {
    let stack = Stack::start_with(CACHED);
    let m = stack.proxy.metrics_addr();
    wait_ready(m, 200);
    let mut d = stack.direct();
    d.assert_cmd("SET c:1 one", b"+OK\r\n");
    d.assert_cmd("SET notanumber x", b"+OK\r\n");
    let mut c = stack.client();
    c.assert_cmd("PING", b"+PONG\r\n");
    // The seeding SET's invalidation is in before the first read of c:1: arriving
    // after that read's fill, it would evict the entry and turn a hit into a miss.
    let tracked = [("source", "tracking")];
    let before = wait_scrape(m, "one client connected, c:1's SET reported", |s| {
        s.get("respite_clients_connected", &[]) == 1.0
            && s.get("respite_invalidations_total", &tracked) >= 1.0
    });

    // A miss, then two hits.
    for _ in 0..3 {
        c.assert_cmd("GET c:1", b"$3\r\none\r\n");
    }
    // Not cached: read from Redis.
    c.assert_cmd("GET plain:1", b"$-1\r\n");
    // Redis replies with an error.
    let err = c.cmd("INCR notanumber");
    assert!(err.starts_with(b"-ERR"), "{err:?}");
    // Answered by the proxy.
    c.assert_cmd("CLIENT SETNAME metrics-test", b"+OK\r\n");
    // A write through the proxy invalidates its key.
    c.assert_cmd("SET c:1 uno", b"+OK\r\n");
    // Ten GETs of a cold key in one write: the first reads, the others wait for it.
    let mut pipeline = Vec::new();
    for _ in 0..10 {
        pipeline.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$6\r\nc:cold\r\n");
    }
    c.send_raw(&pipeline);
    for _ in 0..10 {
        c.assert_reply(b"$-1\r\n");
    }

    let after = Scrape::of(m);
    let ns = [("namespace", "c")];
    assert_eq!(delta(&before, &after, "respite_l1_hits_total", &ns), 2.0);
    assert_eq!(delta(&before, &after, "respite_l1_misses_total", &ns), 11.0);
    let coalesced = delta(&before, &after, "respite_l1_coalesced_total", &[]);
    assert!(
        (1.0..=9.0).contains(&coalesced),
        "coalesced waiters: {coalesced}"
    );
    assert_eq!(req_delta(&before, &after, "read", "l1_hit"), 2.0);
    // 1 miss of c:1, plain:1, the 10 GETs of c:cold (answered by the one read).
    assert_eq!(req_delta(&before, &after, "read", "ok"), 12.0);
    assert_eq!(req_delta(&before, &after, "write", "redis_error"), 1.0);
    assert_eq!(req_delta(&before, &after, "write", "ok"), 1.0);
    assert_eq!(req_delta(&before, &after, "connection", "local"), 1.0);
    // Every key a write through the proxy touches, cached or not: INCR, SET.
    let local_writes = [("source", "local_write")];
    assert_eq!(
        delta(
            &before,
            &after,
            "respite_invalidations_total",
            &local_writes
        ),
        2.0
    );
    // Every upstream read and write was timed: c:1, plain:1, INCR, SET, c:cold.
    let timed = delta(
        &before,
        &after,
        "respite_upstream_request_duration_seconds_count",
        &[],
    );
    assert!(timed >= 5.0, "upstream requests timed: {timed}");
    assert_eq!(
        after.get(
            "respite_upstream_request_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        after.get("respite_upstream_request_duration_seconds_count", &[])
    );
    assert_eq!(after.get("respite_l1_entries", &ns), 2.0, "c:1 and c:cold");
    assert!(after.get("respite_l1_bytes", &ns) > 0.0);
    assert_eq!(
        after.get("respite_l1_bytes", &ns),
        after.get("respite_l1_memory_bytes", &[])
    );
    assert_eq!(
        after.get("respite_l1_max_bytes", &[]),
        64.0 * 1024.0 * 1024.0
    );
    assert_eq!(after.get("respite_upstream_up", &[]), 1.0);
    assert_eq!(after.get("respite_tracking_up", &[]), 1.0);
    assert_eq!(after.get("respite_clients_max", &[]), 10_000.0);

    // Tracking reports every write under the prefix, the proxy's own SET too; one
    // that bypasses the proxy is counted as it arrives.
    let seen = wait_scrape(m, "the proxy's own write reported by tracking", |s| {
        delta(&before, s, "respite_invalidations_total", &tracked) >= 1.0
    });
    d.assert_cmd("SET c:1 eins", b"+OK\r\n");
    wait_scrape(m, "tracking invalidation counted", |s| {
        delta(&seen, s, "respite_invalidations_total", &tracked) >= 1.0
    });
    c.assert_cmd("GET c:1", b"$4\r\neins\r\n");
    // Flushes count once each.
    c.assert_cmd("RESPITE FLUSHL1", b"+OK\r\n");
    let flushed = Scrape::of(m);
    assert_eq!(
        delta(
            &before,
            &flushed,
            "respite_invalidations_total",
            &[("source", "flush")]
        ),
        1.0
    );
    assert_eq!(req_delta(&before, &flushed, "admin", "local"), 1.0);

    // Clients: connected now, accepted in total.
    let extra = stack.client();
    let s = wait_scrape(m, "a second client counted", |s| {
        s.get("respite_clients_connected", &[]) == 2.0
    });
    assert!(delta(&before, &s, "respite_clients_connections_total", &[]) >= 1.0);
    drop(extra);
    wait_scrape(m, "the closed client counted out", |s| {
        s.get("respite_clients_connected", &[]) == 1.0
    });

    // Reloads are counted in `reloads_are_counted_by_outcome` (a file-backed proxy).
    let s = Scrape::of(m);
    assert_eq!(
        s.get("respite_config_reloads_total", &[("outcome", "ok")]),
        0.0
    );
    assert_eq!(s.get("respite_config_last_reload_successful", &[]), 1.0);
}

#[test]
fn redis_down_counts_upstream_errors_and_readyz_follows() {
    let mut stack = Stack::start_with(CACHED);
    let m = stack.proxy.metrics_addr();
    let r = wait_ready(m, 200);
    assert_eq!(r.body, "ready\n");
    assert_eq!(get(m, "/healthz").body, "ok\n");
    let mut c = stack.client();
    let before = Scrape::of(m);

    stack.redis.stop();
    let r = wait_ready(m, 503);
    assert!(r.body.starts_with("not ready: "), "{}", r.body);
    assert_eq!(get(m, "/healthz").status, 200, "alive while Redis is down");
    let down = wait_scrape(m, "upstream down", |s| {
        s.get("respite_upstream_up", &[]) == 0.0 && s.get("respite_tracking_up", &[]) == 0.0
    });
    assert!(
        down.sum("respite_upstream_errors_total") > before.sum("respite_upstream_errors_total"),
        "no upstream error counted: {down:#?}"
    );
    let failed = c.cmd("GET plain:1");
    assert!(failed.starts_with(b"-ERR upstream"), "{failed:?}");
    let failed = c.cmd("SET plain:1 x");
    assert!(failed.starts_with(b"-ERR upstream"), "{failed:?}");
    let s = Scrape::of(m);
    assert_eq!(req_delta(&before, &s, "read", "upstream_error"), 1.0);
    assert_eq!(req_delta(&before, &s, "write", "upstream_error"), 1.0);

    stack.redis.restart();
    let r = wait_ready(m, 200);
    assert_eq!(r.body, "ready\n");
    let up = wait_scrape(m, "upstream back", |s| {
        s.get("respite_upstream_up", &[]) == 1.0 && s.get("respite_tracking_up", &[]) == 1.0
    });
    assert!(up.get("respite_upstream_reconnects_total", &[]) >= 1.0);
    c.assert_cmd("SET plain:1 x", b"+OK\r\n");
}

#[test]
fn readyz_waits_for_tracking() {
    let stack = Stack::start_with(CACHED);
    let m = stack.proxy.metrics_addr();
    wait_ready(m, 200);
    // Redis refuses CLIENT TRACKING: the tracking connection cannot come back.
    let mut d = stack.direct();
    d.assert_cmd("ACL SETUSER default -client|tracking", b"+OK\r\n");
    for id in support::l1::tracking_ids(&mut d) {
        d.call(&["CLIENT", "KILL", "ID", &id.to_string()]);
    }
    let r = wait_ready(m, 503);
    assert_eq!(r.body, "not ready: l1 tracking not established\n");
    let s = Scrape::of(m);
    assert_eq!(s.get("respite_upstream_up", &[]), 1.0);
    assert_eq!(s.get("respite_tracking_up", &[]), 0.0);
    d.assert_cmd("ACL SETUSER default +client|tracking", b"+OK\r\n");
    wait_ready(m, 200);
}

#[test]
fn readyz_follows_a_network_partition() {
    let redis = RedisServer::start();
    let fault = FaultProxy::start(redis.addr());
    let proxy = Proxy::start(&fault.url(), CACHED);
    let m = proxy.metrics_addr();
    wait_ready(m, 200);
    // Cut everything and refuse reconnects: the pool and tracking are both down.
    fault.block();
    fault.cut();
    let r = wait_ready(m, 503);
    assert!(r.body.starts_with("not ready: "), "{}", r.body);
    fault.unblock();
    wait_ready(m, 200);
}

#[test]
fn request_timeouts_are_counted() {
    let redis = RedisServer::start();
    let fault = FaultProxy::start(redis.addr());
    // Silent for 200 ms, then a liveness check that gets no answer within 300 ms.
    let toml = format!(
        "{CACHED}\n[upstream]\nrequest_timeout = \"200ms\"\nliveness_timeout = \"300ms\"\n"
    );
    let proxy = Proxy::start(&fault.url(), &toml);
    let m = proxy.metrics_addr();
    wait_ready(m, 200);
    let mut c = proxy.client();
    let before = Scrape::of(m);
    fault.delay(Duration::from_millis(1500));
    let reply = c.cmd("GET plain:slow");
    assert!(reply.starts_with(b"-ERR upstream timeout"), "{reply:?}");
    let s = Scrape::of(m);
    let timeouts = [("reason", "timeout")];
    assert_eq!(
        delta(&before, &s, "respite_upstream_errors_total", &timeouts),
        1.0
    );
    assert_eq!(req_delta(&before, &s, "read", "upstream_error"), 1.0);
    fault.delay(Duration::ZERO);
}

#[test]
fn l1_memory_and_evictions_per_namespace() {
    let toml = CACHED.replace("64MiB", "256KiB");
    let stack = Stack::start_with(&toml);
    let m = stack.proxy.metrics_addr();
    wait_ready(m, 200);
    let mut d = stack.direct();
    let value = "x".repeat(4000);
    for i in 0..200 {
        d.call(&["SET", &format!("c:big:{i}"), &value]);
    }
    let mut c = stack.client();
    for i in 0..200 {
        let reply = c.call(&["GET", &format!("c:big:{i}")]);
        assert_eq!(reply.len(), 4000 + 9, "GET c:big:{i}");
    }
    let s = wait_scrape(m, "evictions counted", |s| {
        s.get(
            "respite_l1_evictions_total",
            &[("namespace", "c"), ("cause", "size")],
        ) > 0.0
    });
    let ns = [("namespace", "c")];
    let bytes = s.get("respite_l1_bytes", &ns);
    let max = s.get("respite_l1_max_bytes", &[]);
    assert_eq!(max, 256.0 * 1024.0);
    assert!(bytes > 0.0 && bytes <= max, "{bytes} of {max}");
    assert_eq!(bytes, s.get("respite_l1_memory_bytes", &[]));
    let entries = s.get("respite_l1_entries", &ns);
    let evicted = s.get(
        "respite_l1_evictions_total",
        &[("namespace", "c"), ("cause", "size")],
    );
    assert!(
        entries >= 1.0 && entries + evicted >= 200.0,
        "entries {entries}, evicted {evicted}"
    );
    // Every namespace has its compression counters (bumped by the compression stage).
    assert!(s.has(
        "respite_compression_bytes_in_total",
        &[("namespace", "plain")]
    ));
}

#[test]
fn each_proxy_counts_its_own() {
    let a = Stack::start_with(CACHED);
    let b = Proxy::start(&a.redis.url(), CACHED);
    let (ma, mb) = (a.proxy.metrics_addr(), b.metrics_addr());
    assert_ne!(ma, mb);
    let mut c = a.client();
    for _ in 0..5 {
        c.assert_cmd("PING", b"+PONG\r\n");
    }
    let (sa, sb) = (Scrape::of(ma), Scrape::of(mb));
    assert_eq!(requests(&sa, "connection", "ok"), 5.0);
    assert_eq!(requests(&sb, "connection", "ok"), 0.0);
}

#[test]
fn max_clients_rejections_are_counted() {
    let stack = Stack::start_with(&format!("{CACHED}\n[server]\nmax_clients = 1\n"));
    let m = stack.proxy.metrics_addr();
    // The connection that asked for the address is gone before the test's own.
    wait_scrape(m, "no client connected", |s| {
        s.get("respite_clients_connected", &[]) == 0.0
    });
    let mut first = stack.client();
    first.assert_cmd("PING", b"+PONG\r\n");
    let mut second = stack.client();
    assert_eq!(
        second.read_reply(),
        b"-ERR max number of clients reached\r\n"
    );
    let s = wait_scrape(m, "rejection counted", |s| {
        s.get("respite_clients_rejected_total", &[]) == 1.0
    });
    assert_eq!(s.get("respite_clients_connected", &[]), 1.0);
    assert_eq!(s.get("respite_clients_max", &[]), 1.0);
}

#[test]
fn exposition_passes_promtool() {
    let stack = Stack::start_with(CACHED);
    let m = stack.proxy.metrics_addr();
    wait_ready(m, 200);
    let mut c = stack.client();
    c.assert_cmd("GET c:x", b"$-1\r\n");
    let body = get(m, "/metrics").body;
    // Every declared metric is there (with an L1 and tracking, all are).
    let scrape = Scrape::parse(&body);
    for name in listed_metrics() {
        assert!(scrape.types.contains_key(&name), "{name} missing:\n{body}");
    }
    assert_eq!(scrape.types.len(), listed_metrics().len());
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`; scripts/deps installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn http_responder_refuses_what_it_does_not_serve() {
    let stack = Stack::start_with(CACHED);
    let m = stack.proxy.metrics_addr();
    assert_eq!(get(m, "/nope").status, 404);
    let r = http(m, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 405);
    assert!(r.head.contains("Allow: GET, HEAD"), "{}", r.head);
    let r = http(m, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    assert_eq!(http(m, b"garbage\r\n\r\n").status, 400);
    assert_eq!(http(m, b"GET /metrics SPDY/3\r\n\r\n").status, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(http(m, huge.as_bytes()).status, 431);
    let r = http(m, b"PUT /loglevel HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
    assert_eq!(r.status, 413);
    // Changing the log level over HTTP is off unless allowed.
    let r = http(
        m,
        b"PUT /loglevel HTTP/1.1\r\nContent-Length: 5\r\n\r\ndebug",
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("allow_loglevel = true"), "{}", r.body);
    // A connection that sends nothing does not hold up the others.
    let _silent = TcpStream::connect(m).unwrap();
    let _half = {
        let mut s = TcpStream::connect(m).unwrap();
        s.write_all(b"GET /metr").unwrap();
        s
    };
    assert_eq!(get(m, "/healthz").status, 200);
    // And the proxy itself is unaffected.
    stack.client().assert_cmd("PING", b"+PONG\r\n");
}

// ---------------------------------------------------------------------------------
// The binary: --list-metrics, JSON logs, the log level changed at runtime.

fn respite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_respite"))
}

/// Metric names as `respite --list-metrics` prints them.
fn listed_metrics() -> Vec<String> {
    let out = respite().arg("--list-metrics").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 4, "name, type, labels, help: {l:?}");
            cols[0].to_owned()
        })
        .collect()
}

#[test]
fn list_metrics_names_each_once_and_the_readme_documents_them() {
    let names = listed_metrics();
    assert!(names.len() >= 20, "{names:?}");
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a name repeats: {names:?}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for name in &names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not document {name}"
        );
    }
}

#[test]
fn binary_logs_json_and_changes_level_at_runtime() {
    let redis = RedisServer::start();
    let port = support::redis::free_port();
    let binary = support::binary::Binary::start(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\nurl = \"{}\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\nallow_loglevel = true\n\n\
         [log]\nlevel = \"info\"\nformat = \"json\"\n",
        redis.url()
    ));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut client = None;
    assert!(wait_until(READY, || {
        client = Client::try_connect(addr).ok();
        client.is_some()
    }));
    let mut client = client.unwrap();
    let m: SocketAddr = support::l1::stat(&mut client, "metrics_listen")
        .parse()
        .unwrap();
    let logged = |needle: &str| binary.logged(needle);

    assert!(wait_until(READY, || logged("respite listening")));
    assert_eq!(get(m, "/loglevel").body, "info\n");
    // At info, a client connecting is not logged. The same client then reloads the
    // configuration, which is logged at info: once that line is there, anything its
    // connecting logged would be there too.
    let mut quiet = Client::connect(addr);
    quiet.assert_cmd("PING", b"+PONG\r\n");
    let reload = quiet.cmd("RESPITE RELOAD");
    assert!(reload.starts_with(b"$"), "{}", support::show(&reload));
    assert!(
        wait_until(READY, || logged("configuration reloaded")),
        "info event not logged: {:?}",
        binary.lines()
    );
    assert!(
        !logged("\"connected\""),
        "debug event logged at info: {:?}",
        binary.lines()
    );

    let r = http(
        m,
        b"PUT /loglevel HTTP/1.1\r\nContent-Length: 14\r\n\r\nrespite=debug\n",
    );
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(get(m, "/loglevel").body, "respite=debug\n");
    Client::connect(addr).assert_cmd("PING", b"+PONG\r\n");
    assert!(
        wait_until(READY, || logged("\"connected\"")),
        "debug event not logged after PUT /loglevel: {:?}",
        binary.lines()
    );
    let r = http(
        m,
        b"PUT /loglevel HTTP/1.1\r\nContent-Length: 9\r\n\r\nrespite=[",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(get(m, "/loglevel").body, "respite=debug\n");

    let lines = binary.stop();
    assert!(!lines.is_empty());
    for line in lines.iter() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }
}

#[test]
fn reloads_are_counted_by_outcome_and_namespace_counters_survive_them() {
    let redis = RedisServer::start();
    let proxy = Proxy::start_from_file(&redis.url(), CACHED);
    let m = proxy.metrics_addr();
    wait_ready(m, 200);
    let mut c = proxy.client();
    c.assert_cmd("GET c:1", b"$-1\r\n");
    c.assert_cmd("GET c:1", b"$-1\r\n");
    let hits = |s: &Scrape| s.get("respite_l1_hits_total", &[("namespace", "c")]);
    let before = wait_scrape(m, "one hit", |s| hits(s) == 1.0);

    // A valid edit (the `c` rule's l1_ttl changes): ok +1.
    let edited = CACHED.replace("l1_ttl = \"10s\"", "l1_ttl = \"20s\"");
    let text = support::proxy::config_text(proxy.addr(), &redis.url(), &edited);
    std::fs::write(proxy.config_path(), text).unwrap();
    assert!(c.cmd("RESPITE RELOAD").starts_with(b"$"));
    // The file watcher may reload the edit too: the metric counts what STATS does.
    let mut admin = proxy.client();
    let s = wait_scrape(m, "a successful reload, as RESPITE STATS counts it", |s| {
        let ok = s.get("respite_config_reloads_total", &[("outcome", "ok")]);
        ok >= 1.0 && ok == stat_int(&mut admin, "config_reloads_ok") as f64
    });
    assert_eq!(s.get("respite_config_last_reload_successful", &[]), 1.0);
    // The namespace keeps its counters across the reload.
    c.assert_cmd("GET c:1", b"$-1\r\n"); // its entry was dropped: a miss
    c.assert_cmd("GET c:1", b"$-1\r\n"); // then a hit
    wait_scrape(m, "hits counted on across the reload", |s| {
        hits(s) == hits(&before) + 1.0
    });

    // An invalid file: error +1, last 0.
    std::fs::write(proxy.config_path(), "[[namespace]]\nname = 1\n").unwrap();
    assert!(c.cmd("RESPITE RELOAD").starts_with(b"-ERR reload refused"));
    let s = wait_scrape(m, "a failed reload, as RESPITE STATS counts it", |s| {
        let failed = s.get("respite_config_reloads_total", &[("outcome", "error")]);
        failed >= 1.0 && failed == stat_int(&mut admin, "config_reloads_failed") as f64
    });
    assert_eq!(s.get("respite_config_last_reload_successful", &[]), 0.0);
}

#[test]
fn readyz_says_warming_until_warm_on_start_is_done() {
    let redis = RedisServer::start();
    let mut d = redis.client();
    for chunk in 0..10 {
        let mut mset = vec!["MSET".to_owned()];
        for i in chunk * 200..(chunk + 1) * 200 {
            mset.push(format!("c:w:{i}"));
            mset.push(format!("value:{i}"));
        }
        assert_eq!(d.call(&mset), b"+OK\r\n");
    }
    // Every chunk between Redis and the proxy waits, so warming takes a while.
    let fault = FaultProxy::start(redis.addr());
    fault.delay(Duration::from_millis(30));
    let proxy = Proxy::start(
        &fault.url(),
        &CACHED.replace("l1 = true", "l1 = true\nwarm = true"),
    );
    let m = proxy.metrics_addr();
    let mut reasons = Vec::new();
    let ready = wait_until(Duration::from_secs(60), || {
        let r = get(m, "/readyz");
        if reasons.last() != Some(&r.body) {
            reasons.push(r.body.clone());
        }
        r.status == 200
    });
    assert!(ready, "never ready: {reasons:?}");
    assert!(
        reasons.iter().any(|b| b.contains("warming")),
        "readiness never said warming: {reasons:?}"
    );
    let mut c = proxy.client();
    assert_eq!(support::l1::stat(&mut c, "warming"), "0");
    assert!(support::l1::stat_int(&mut c, "ns:c:l1_entries") >= 2000);
}

const TWO_NAMESPACES: &str = r#"
[metrics]
listen = "127.0.0.1:0"

[l1]
max_memory = "64MiB"
coherence = "tracking"

[[namespace]]
name = "a"
match = "a:*"
l1 = true
l1_ttl = "1h"

[[namespace]]
name = "b"
match = "b:*"
"#;

#[test]
fn cache_requests_and_latency_per_namespace_count_every_level() {
    let stack = Stack::start_with(TWO_NAMESPACES);
    let m = stack.proxy.metrics_addr();
    wait_ready(m, 200);
    let mut d = stack.direct();
    d.assert_cmd("SET a:1 x", b"+OK\r\n");
    d.assert_cmd("SET b:1 y", b"+OK\r\n");
    let mut c = stack.client();
    c.assert_cmd("GET a:1", b"$1\r\nx\r\n"); // a: from Redis
    c.assert_cmd("GET a:1", b"$1\r\nx\r\n"); // a: from L1
    c.assert_cmd("GET a:none", b"$-1\r\n"); // a: nowhere
    c.assert_cmd("GET a:none", b"$-1\r\n"); // a: nowhere (L1 keeps the nil)
    c.assert_cmd("GET b:1", b"$1\r\ny\r\n"); // b (no L1): from Redis
    c.assert_cmd("GET b:none", b"$-1\r\n"); // b: nowhere
    // Per key: a:1 from L1, b:1 from Redis, two misses, c:1 in no namespace.
    let mget = c.cmd("MGET a:1 b:1 a:none b:none c:1");
    assert_eq!(mget, b"*5\r\n$1\r\nx\r\n$1\r\ny\r\n$-1\r\n$-1\r\n$-1\r\n");
    c.assert_cmd("SET a:2 v", b"+OK\r\n"); // a write: latency only
    c.assert_cmd("HSET b:h f v", b":1\r\n");
    c.assert_cmd("PING", b"+PONG\r\n"); // no key: "(none)"

    let s = Scrape::of(m);
    let cache = |ns: &str, result: &str| {
        s.get(
            "respite_cache_requests_total",
            &[("namespace", ns), ("result", result)],
        )
    };
    assert_eq!(
        [
            cache("a", "l1_hit"),
            cache("a", "l2_hit"),
            cache("a", "miss")
        ],
        [2.0, 1.0, 3.0],
        "namespace a"
    );
    assert_eq!(
        [
            cache("b", "l1_hit"),
            cache("b", "l2_hit"),
            cache("b", "miss")
        ],
        [0.0, 2.0, 2.0],
        "namespace b"
    );
    let count = |ns: &str, kind: &str| {
        s.get(
            "respite_request_duration_seconds_count",
            &[("namespace", ns), ("kind", kind)],
        )
    };
    assert_eq!(
        count("a", "read"),
        5.0,
        "GET ×4 and the MGET (first key a:1)"
    );
    assert_eq!(count("a", "write"), 1.0);
    assert_eq!(count("b", "read"), 2.0);
    assert_eq!(count("b", "write"), 1.0);
    assert!(count("(none)", "connection") >= 1.0, "PING");
    let inf = [("namespace", "a"), ("kind", "read"), ("le", "+Inf")];
    assert_eq!(s.get("respite_request_duration_seconds_bucket", &inf), 5.0);
    let le_1s = [("namespace", "a"), ("kind", "read"), ("le", "1")];
    assert_eq!(
        s.get("respite_request_duration_seconds_bucket", &le_1s),
        5.0
    );

    // The same figures in RESPITE STATS, for `respite top`.
    let mut stats = |f: &str| stat_int(&mut c, f);
    assert_eq!(stats("ns:a:cache_l1_hit"), 2);
    assert_eq!(stats("ns:a:cache_l2_hit"), 1);
    assert_eq!(stats("ns:a:cache_miss"), 3);
    assert_eq!(stats("ns:b:cache_l2_hit"), 2);
    assert_eq!(stats("ns:a:requests"), 6);
    assert!(stats("ns:b:p95_us") >= 50, "p95 is a bucket bound");
}
