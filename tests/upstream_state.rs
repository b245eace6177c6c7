//! Redis's own state as respite reports it (`respite_upstream_*`, the
//! `respite_namespace_redis_*` estimates, their `RESPITE STATS` fields, the start-up
//! warnings about Redis's memory settings), checked against what the same Redis says
//! when asked directly (`INFO`, `DBSIZE`, `MEMORY USAGE`).

mod support;

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use support::{
    Client, Proxy, RedisServer, Stack,
    l1::{calls, stats},
    show, wait_until,
};

const WAIT: Duration = Duration::from_secs(20);

/// INFO polled every 100 ms; no namespace sampling.
const POLLED: &str = r#"
[metrics]
listen = "127.0.0.1:0"
upstream_poll = "100ms"
namespace_sizes = "off"
"#;

/// `/metrics` as `name{labels}` -> value (labels as rendered).
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let mut s = TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").expect("a response head");
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// Scrapes until `cond` holds; panics with the last scrape after [`WAIT`].
fn wait_scrape(
    addr: SocketAddr,
    what: &str,
    mut cond: impl FnMut(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let mut last = HashMap::new();
    let ok = wait_until(WAIT, || {
        last = scrape(addr);
        cond(&last)
    });
    assert!(ok, "{what}: not within {WAIT:?}; last scrape: {last:#?}");
    last
}

/// One figure of Redis's `INFO <section>`, asked directly.
fn info(direct: &mut Client, section: &str, field: &str) -> String {
    let reply = direct.call(&["INFO", section]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("INFO {section} has no {field}: {text}"))
        .trim()
        .to_owned()
}

fn info_u64(direct: &mut Client, section: &str, field: &str) -> u64 {
    info(direct, section, field).parse().unwrap()
}

fn int(reply: &[u8]) -> u64 {
    let text = std::str::from_utf8(reply).unwrap();
    text.trim_start_matches(':')
        .trim_end()
        .parse()
        .unwrap_or_else(|_| {
            panic!("not an integer reply: {}", show(reply));
        })
}

/// Polls `RESPITE STATS` until `cond` holds on it.
fn wait_stats(
    c: &mut Client,
    what: &str,
    mut cond: impl FnMut(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let mut last = HashMap::new();
    let ok = wait_until(WAIT, || {
        last = stats(c);
        cond(&last)
    });
    assert!(ok, "{what}: not within {WAIT:?}; STATS: {last:#?}");
    last
}

#[test]
fn memory_figures_follow_info_memory_of_the_same_redis() {
    let stack = Stack::start_with(POLLED);
    let m = stack.proxy.metrics_addr();
    let mut d = stack.direct();
    let s = wait_scrape(m, "first poll", |s| {
        s.contains_key("respite_upstream_used_memory_bytes")
    });
    assert_eq!(s["respite_upstream_info_up"], 1.0);
    assert!(s["respite_upstream_info_age_seconds"] < 5.0, "{s:#?}");
    // used_memory moves with every connection and poll: within 10%.
    let used = info_u64(&mut d, "memory", "used_memory") as f64;
    let reported = s["respite_upstream_used_memory_bytes"];
    assert!(
        (reported - used).abs() <= used * 0.1,
        "respite says {reported}, INFO memory says {used}"
    );
    assert_eq!(s["respite_upstream_maxmemory_bytes"], 0.0);
    let default_policy = info(&mut d, "memory", "maxmemory_policy");
    let series = format!("respite_upstream_maxmemory_policy{{policy=\"{default_policy}\"}}");
    assert_eq!(s.get(&series), Some(&1.0), "{s:#?}");

    d.assert_cmd("CONFIG SET maxmemory 100mb", b"+OK\r\n");
    d.assert_cmd("CONFIG SET maxmemory-policy allkeys-lru", b"+OK\r\n");
    let s = wait_scrape(m, "maxmemory 100mb, allkeys-lru", |s| {
        s.get("respite_upstream_maxmemory_bytes") == Some(&104_857_600.0)
            && s.contains_key(r#"respite_upstream_maxmemory_policy{policy="allkeys-lru"}"#)
    });
    assert_eq!(info_u64(&mut d, "memory", "maxmemory"), 104_857_600);
    let policies: Vec<_> = s
        .keys()
        .filter(|k| k.starts_with("respite_upstream_maxmemory_policy"))
        .collect();
    assert_eq!(policies.len(), 1, "the old policy is gone: {policies:?}");

    let mut c = stack.client();
    let st = stats(&mut c);
    assert_eq!(st["upstream_maxmemory"], "104857600");
    assert_eq!(st["upstream_maxmemory_policy"], "allkeys-lru");
    let used = info_u64(&mut d, "memory", "used_memory") as f64;
    let reported: f64 = st["upstream_used_memory"].parse().unwrap();
    assert!(
        (reported - used).abs() <= used * 0.1,
        "{reported} vs {used}"
    );
    let clients = info_u64(&mut d, "clients", "connected_clients");
    let reported: u64 = st["upstream_connected_clients"].parse().unwrap();
    assert!(reported.abs_diff(clients) <= 2, "{reported} vs {clients}");
}

/// Pipelines `SET prefix:i <len bytes>` for `n` keys on a direct connection.
fn write_values(d: &mut Client, prefix: &str, n: usize, len: usize) {
    let value = "x".repeat(len);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut out = Vec::new();
        for i in chunk {
            let key = format!("{prefix}:{i}");
            out.extend(support::resp::encode_command(&["SET", &key, &value]));
        }
        d.send_raw(&out);
        for _ in chunk {
            let reply = d.read_reply();
            assert_eq!(reply, b"+OK\r\n", "{}", show(&reply));
        }
    }
}

#[test]
fn evictions_expiries_hits_and_keys_per_db_are_redis_own_totals() {
    let stack = Stack::start_with(POLLED);
    let m = stack.proxy.metrics_addr();
    let mut d = stack.direct();
    // An expiry: the key is gone once EXISTS says so (that lookup expires it).
    d.assert_cmd("SET gone v PX 1", b"+OK\r\n");
    assert!(wait_until(WAIT, || d.cmd("EXISTS gone") == b":0\r\n"));
    // Evictions: a limit just above what Redis holds, then 2 MB of writes.
    let used = info_u64(&mut d, "memory", "used_memory");
    d.assert_cmd("CONFIG SET maxmemory-policy allkeys-lru", b"+OK\r\n");
    let limit = (used + 512 * 1024).to_string();
    d.assert_cmd(&format!("CONFIG SET maxmemory {limit}"), b"+OK\r\n");
    write_values(&mut d, "big", 2000, 1000);
    d.assert_cmd("CONFIG SET maxmemory 0", b"+OK\r\n");
    // Keys in db 3, a hit and a miss.
    d.assert_cmd("SELECT 3", b"+OK\r\n");
    d.assert_cmd("MSET x 1 y 2", b"+OK\r\n");
    d.assert_cmd("GET x", b"$1\r\n1\r\n");
    d.assert_cmd("GET nothing", b"$-1\r\n");
    d.assert_cmd("SELECT 0", b"+OK\r\n");

    let stats_fields = [
        ("evicted_keys", "respite_upstream_evicted_keys_total"),
        ("expired_keys", "respite_upstream_expired_keys_total"),
        ("keyspace_hits", "respite_upstream_keyspace_hits_total"),
        ("keyspace_misses", "respite_upstream_keyspace_misses_total"),
    ];
    let truth: Vec<u64> = stats_fields
        .iter()
        .map(|(f, _)| info_u64(&mut d, "stats", f))
        .collect();
    assert!(truth[0] > 0, "nothing was evicted");
    assert!(truth[1] >= 1, "nothing expired");
    let db0 = int(&d.cmd("DBSIZE"));
    let s = wait_scrape(m, "Redis's totals", |s| {
        stats_fields
            .iter()
            .zip(&truth)
            .all(|((_, metric), n)| s.get(*metric) == Some(&(*n as f64)))
            && s.get(r#"respite_upstream_keys{db="0"}"#) == Some(&(db0 as f64))
    });
    assert_eq!(s.get(r#"respite_upstream_keys{db="3"}"#), Some(&2.0));
    assert!(
        !s.contains_key(r#"respite_upstream_keys{db="1"}"#),
        "{s:#?}"
    );

    let mut c = stack.client();
    let st = stats(&mut c);
    for ((field, _), n) in stats_fields.iter().zip(&truth) {
        assert_eq!(st[&format!("upstream_{field}")], n.to_string(), "{field}");
    }
    assert_eq!(st["upstream_keys"], (db0 + 2).to_string());
}

/// 1,000 `a:*` keys of 100-byte values, 10 `b:*` of 1,000 bytes, 5 governed by `rest`.
const SAMPLED: &str = r#"
[metrics]
listen = "127.0.0.1:0"
upstream_poll = "off"
namespace_sizes = "200ms"

[[namespace]]
name = "a"
match = "a:*"

[[namespace]]
name = "b"
match = "b:*"

[[namespace]]
name = "rest"
match = "*"
"#;

/// The sum of `MEMORY USAGE` over `keys`, asked directly.
fn memory_usage(d: &mut Client, keys: impl Iterator<Item = String>) -> u64 {
    keys.map(|k| int(&d.call(&["MEMORY", "USAGE", &k]))).sum()
}

fn stat_u64(st: &HashMap<String, String>, field: &str) -> Option<u64> {
    st.get(field).map(|v| v.parse().unwrap())
}

#[test]
fn namespace_sizes_are_counted_when_the_db_is_small() {
    let stack = Stack::start_with(SAMPLED);
    let mut d = stack.direct();
    d.assert_cmd("DEBUG POPULATE 1000 a 100", b"+OK\r\n");
    d.assert_cmd("DEBUG POPULATE 10 b 1000", b"+OK\r\n");
    d.assert_cmd("MSET a 1 c:1 1 c:2 1 d 1 e 1", b"+OK\r\n");
    let a_bytes = memory_usage(&mut d, (0..1000).map(|i| format!("a:{i}")));
    let b_bytes = memory_usage(&mut d, (0..10).map(|i| format!("b:{i}")));
    let mut c = stack.client();
    // The whole db fits a SCAN: keys are counted; `b` fits the sample: its bytes too.
    // `a` has more keys than the sample: 1,000 × the sample's mean, within 5%.
    let st = wait_stats(&mut c, "sizes counted", |st| {
        stat_u64(st, "ns:a:redis_keys") == Some(1000)
            && stat_u64(st, "ns:b:redis_keys") == Some(10)
            && stat_u64(st, "ns:rest:redis_keys") == Some(5)
            && stat_u64(st, "ns:b:redis_bytes") == Some(b_bytes)
    });
    let a_est = stat_u64(&st, "ns:a:redis_bytes").unwrap() as f64;
    assert!(
        (a_est - a_bytes as f64).abs() <= a_bytes as f64 * 0.05,
        "a: estimated {a_est} bytes, MEMORY USAGE sums to {a_bytes}"
    );
    let s = scrape(stack.proxy.metrics_addr());
    for ns in ["a", "b", "rest"] {
        for what in ["keys", "bytes"] {
            let series = format!("respite_namespace_redis_{what}{{namespace=\"{ns}\"}}");
            let field = format!("ns:{ns}:redis_{what}");
            // Both read the same estimate, which a later cycle may have replaced: the
            // gauge and the field agree with the truth as above.
            let gauge = s[&series];
            let stat = stat_u64(&stats(&mut c), &field).unwrap() as f64;
            assert!(
                (gauge - stat).abs() <= stat * 0.05,
                "{series} {gauge}, {field} {stat}"
            );
        }
    }
    // Sizes follow Redis: the `b` keys deleted, the next cycle counts 0.
    let dels: Vec<String> = (0..10).map(|i| format!("b:{i}")).collect();
    let mut args = vec!["DEL"];
    args.extend(dels.iter().map(String::as_str));
    assert_eq!(int(&d.call(&args)), 10);
    wait_stats(&mut c, "b emptied", |st| {
        stat_u64(st, "ns:b:redis_keys") == Some(0) && stat_u64(st, "ns:b:redis_bytes") == Some(0)
    });
}

#[test]
fn namespace_sizes_are_extrapolated_when_the_db_is_large() {
    // SCAN pages of 10 keys, at most 100 pages: about 1,000 of the 20,000 keys are
    // examined, and the counts scaled up by the part of the table covered.
    // Seeded before respite starts, so that its first estimate is of the whole db.
    let redis = RedisServer::start();
    let mut d = redis.client();
    d.assert_cmd("DEBUG POPULATE 15000 a 100", b"+OK\r\n");
    d.assert_cmd("DEBUG POPULATE 5000 b 1000", b"+OK\r\n");
    let a_mean = memory_usage(&mut d, (0..100).map(|i| format!("a:{i}"))) as f64 / 100.0;
    let b_mean = memory_usage(&mut d, (0..100).map(|i| format!("b:{i}"))) as f64 / 100.0;
    let toml = format!("{SAMPLED}\n[admin]\nbatch = 10\n");
    let proxy = Proxy::start(&redis.url(), &toml);
    let mut c = proxy.client();
    let st = wait_stats(&mut c, "sizes estimated", |st| {
        ["a", "b", "rest"]
            .iter()
            .all(|ns| st.contains_key(&format!("ns:{ns}:redis_bytes")))
    });
    // A sample of ~1,000 keys: within 30% (about four standard deviations for `b`).
    for (ns, keys, mean) in [("a", 15000.0, a_mean), ("b", 5000.0, b_mean)] {
        let est = stat_u64(&st, &format!("ns:{ns}:redis_keys")).unwrap() as f64;
        assert!(
            (est - keys).abs() <= keys * 0.3,
            "{ns}: estimated {est} keys of {keys}"
        );
        let bytes = stat_u64(&st, &format!("ns:{ns}:redis_bytes")).unwrap() as f64;
        let truth = keys * mean;
        assert!(
            (bytes - truth).abs() <= truth * 0.3,
            "{ns}: estimated {bytes} bytes of about {truth}"
        );
    }
    assert_eq!(stat_u64(&st, "ns:rest:redis_keys"), Some(0));
}

#[test]
fn what_redis_refuses_is_left_out_and_the_rest_goes_on() {
    let redis = RedisServer::start();
    let mut d = redis.client();
    d.assert_cmd(
        "ACL SETUSER limited on >pw ~* &* +@all -info -memory",
        b"+OK\r\n",
    );
    d.assert_cmd("DEBUG POPULATE 20 a", b"+OK\r\n");
    let url = format!("redis://limited:pw@127.0.0.1:{}", redis.port());
    let toml = SAMPLED.replace("upstream_poll = \"off\"", "upstream_poll = \"100ms\"");
    let proxy = Proxy::start(&url, &toml);
    let mut c = proxy.client();
    // SCAN is allowed: keys are counted; MEMORY USAGE is not: no bytes.
    let st = wait_stats(&mut c, "keys counted", |st| {
        stat_u64(st, "ns:a:redis_keys") == Some(20)
    });
    assert!(!st.contains_key("ns:a:redis_bytes"), "{st:#?}");
    assert!(!st.contains_key("upstream_used_memory"), "{st:#?}");
    let s = scrape(proxy.metrics_addr());
    assert_eq!(s["respite_upstream_info_up"], 0.0);
    assert!(!s.contains_key("respite_upstream_info_age_seconds"));
    assert!(!s.contains_key(r#"respite_namespace_redis_bytes{namespace="a"}"#));
    // And clients are served as ever.
    c.assert_cmd("GET a:0", b"$7\r\nvalue:0\r\n");
}

// ---------------------------------------------------------------------------------
// Start-up warnings, from the binary's own logs.

/// Runs the binary against `redis` with JSON logs until `done` holds on its log
/// lines; returns them.
fn binary_logs(redis: &RedisServer, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
    let port = support::redis::free_port();
    let binary = support::binary::Binary::start(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\nurl = \"{}\"\n\n\
         [metrics]\nupstream_poll = \"100ms\"\nnamespace_sizes = \"off\"\n\n\
         [log]\nlevel = \"info\"\nformat = \"json\"\n",
        redis.url()
    ));
    let finished = wait_until(WAIT, || done(&binary.lines()));
    let lines = binary.stop();
    assert!(finished, "never done: {lines:#?}");
    lines
}

fn warnings_in(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("\"WARN\""))
        .cloned()
        .collect()
}

/// The warnings the binary logs against `redis` by the time Redis has answered 5
/// polls (20 INFO commands) more than the first one that warned.
fn start_up_warnings(redis: &RedisServer) -> Vec<String> {
    let info_calls = || calls(&mut redis.client(), "info");
    let mut after_warning = None;
    let lines = binary_logs(redis, |lines| {
        if warnings_in(lines).is_empty() {
            return false;
        }
        let since = *after_warning.get_or_insert_with(info_calls);
        info_calls() >= since + 20
    });
    warnings_in(&lines)
}

#[test]
fn start_up_warns_once_of_no_maxmemory() {
    let redis = RedisServer::start();
    let warnings = start_up_warnings(&redis);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let w = &warnings[0];
    assert!(w.contains("maxmemory 0"), "{w}");
    assert!(w.contains("OS kills it"), "{w}");
    assert!(w.contains("\"maxmemory\":0"), "{w}");
}

#[test]
fn start_up_warns_once_of_a_policy_that_evicts_any_key() {
    let redis =
        RedisServer::start_with(&["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]);
    let warnings = start_up_warnings(&redis);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let w = &warnings[0];
    assert!(
        w.contains("allkeys-lru") && w.contains("without a TTL"),
        "{w}"
    );
    assert!(w.contains("104857600 bytes"), "{w}");
}

#[test]
fn start_up_warns_once_that_noeviction_fails_writes() {
    let redis =
        RedisServer::start_with(&["--maxmemory", "100mb", "--maxmemory-policy", "noeviction"]);
    let warnings = start_up_warnings(&redis);
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(warnings[0].contains("-OOM"), "{}", warnings[0]);
}
