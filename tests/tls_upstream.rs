//! TLS to the upstream (`rediss://`): every connection respite opens to Redis (pooled
//! and dedicated ones, the liveness check, tracking, the invalidation listener, the
//! poll of Redis's state, operations) speaks TLS to a real `redis-server`'s TLS port,
//! whose plain port stays for direct checks. Mutual TLS, the certificate and name
//! checks, certificates re-read by a reload, and `respite check`.

mod support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use support::{
    Client, Proxy, RedisServer,
    admin::{populate, scan_all},
    l1::{bulk, stat, stat_int, stats, wait_tracking},
    pseudo_random_bytes,
    resp::encode_command,
    show,
    tls::Certs,
    wait_until,
};

const OK: &[u8] = b"+OK\r\n";
const NIL: &[u8] = b"$-1\r\n";
/// How long respite may take to connect, establish tracking, or notice a change.
const READY: Duration = Duration::from_secs(10);

/// `c:*` is kept in L1; the poll of Redis's INFO runs often.
const CACHED: &str = r#"
[l1]
max_memory = "16MiB"
coherence = "tracking"

[metrics]
upstream_poll = "200ms"

[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "60s"
"#;

/// redis-server arguments for TLS with `certs`' server certificate; `auth_clients`:
/// `no`, `yes` or `optional`.
fn tls_args(certs: &Certs, auth_clients: &str) -> Vec<String> {
    let path = |p: &Path| p.display().to_string();
    vec![
        "--tls-cert-file".into(),
        path(&certs.server_cert()),
        "--tls-key-file".into(),
        path(&certs.server_key()),
        "--tls-ca-cert-file".into(),
        path(&certs.ca()),
        "--tls-auth-clients".into(),
        auth_clients.into(),
    ]
}

fn tls_redis(certs: &Certs, auth_clients: &str) -> RedisServer {
    let args = tls_args(certs, auth_clients);
    RedisServer::start_tls(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The URL of `redis`'s TLS port, by the name its certificate carries.
fn rediss(redis: &RedisServer) -> String {
    format!("rediss://localhost:{}", redis.tls_port())
}

/// `[upstream]` TLS keys (and `more` keys of that section) as TOML.
fn upstream(ca: &Path, more: &str) -> String {
    format!("[upstream]\ntls_ca = \"{}\"\n{more}\n", ca.display())
}

/// The client certificate of `certs` as `[upstream]` keys.
fn client_cert(certs: &Certs) -> String {
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        certs.client_cert().display(),
        certs.client_key().display()
    )
}

/// The local port of each connection `CLIENT LIST` shows under `name`.
fn local_ports(direct: &mut Client, name: &str) -> Vec<u16> {
    let list = String::from_utf8_lossy(&direct.call(&["CLIENT", "LIST"])).into_owned();
    list.lines()
        .filter(|l| l.split(' ').any(|f| f == format!("name={name}")))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("laddr=")))
        .filter_map(|a| a.rsplit(':').next()?.parse().ok())
        .collect()
}

/// Sends `lines` at once and reads as many replies, concatenated.
fn pipeline(c: &mut Client, lines: &[Vec<Vec<u8>>]) -> Vec<u8> {
    let out: Vec<u8> = lines.iter().flat_map(|a| encode_command(a)).collect();
    c.send_raw(&out);
    lines.iter().flat_map(|_| c.read_reply()).collect()
}

fn args(line: &str) -> Vec<Vec<u8>> {
    line.split(' ').map(|a| a.as_bytes().to_vec()).collect()
}

fn is_error(reply: &[u8]) -> bool {
    reply.starts_with(b"-")
}

/// Asserts that a request through `c` fails with an error reply soon, mentioning
/// `needle`.
fn assert_fails(c: &mut Client, needle: &str) {
    c.set_read_timeout(READY);
    let mut last = Vec::new();
    let failed = wait_until(READY, || {
        last = c.cmd("GET k");
        is_error(&last) && String::from_utf8_lossy(&last).contains(needle)
    });
    assert!(
        failed,
        "expected an error mentioning {needle:?}, got {}",
        show(&last)
    );
}

/// `GET path` on the proxy's metrics endpoint: status and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(READY)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("an HTTP response");
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status.expect("a status"), body.to_owned())
}

#[test]
fn every_connection_to_a_rediss_upstream_speaks_tls() {
    let certs = Certs::new();
    let redis = tls_redis(&certs, "no");
    let extra = upstream(&certs.ca(), "request_timeout = \"300ms\"") + CACHED;
    let proxy = Proxy::start(&rediss(&redis), &extra);
    let (mut c, mut d) = (proxy.client(), redis.client());
    wait_tracking(&mut c, "up", READY);

    // Pooled connection: replies byte for byte as from Redis, large values included
    // (several MiB in one pipeline: TLS records wait in the session until flushed).
    c.assert_cmd("SET k v", OK);
    assert_eq!(c.cmd("GET k"), d.cmd("GET k"));
    let big = pseudo_random_bytes(3 << 20, 7);
    let mut lines: Vec<_> = ["SET p:1 a", "APPEND p:1 bc", "GET p:1", "LPUSH l x y"]
        .iter()
        .chain(&["LRANGE l 0 -1", "GET missing", "INCRBY n 5"])
        .map(|l| args(l))
        .collect();
    lines.push(vec![b"SET".to_vec(), b"big".to_vec(), big.clone()]);
    lines.push(args("GET big"));
    lines.push(args("DEL p:1 l n big"));
    let through = pipeline(&mut c, &lines);
    assert_eq!(
        through,
        pipeline(&mut d, &lines),
        "pipeline differs from Redis"
    );
    assert!(support::contains(&through, &big));

    // L1: a hit, then a write on Redis's plain port invalidates it (the tracking
    // connection, on the TLS port, told respite).
    // (The invalidation of this SET may reach respite after the first fill started,
    // which then stores nothing: reads go on until one is a hit.)
    d.assert_cmd("SET c:k old", OK);
    let hits = stat_int(&mut c, "l1_hits");
    let hit = wait_until(READY, || {
        assert_eq!(c.cmd("GET c:k"), bulk("old"));
        stat_int(&mut c, "l1_hits") > hits
    });
    assert!(hit, "no GET of c:k was an L1 hit");
    d.assert_cmd("SET c:k new", OK);
    assert!(
        wait_until(READY, || c.cmd("GET c:k") == bulk("new")),
        "the direct write did not invalidate L1"
    );
    let port = redis.tls_port();
    assert_eq!(local_ports(&mut d, "respite-tracking"), [port]);

    // Dedicated connections: pub/sub and a blocking command.
    let mut sub = proxy.client();
    assert_eq!(
        sub.cmd("SUBSCRIBE ch"),
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    );
    d.assert_cmd("PUBLISH ch hello", b":1\r\n");
    assert_eq!(
        sub.read_reply(),
        b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n"
    );
    let mut blocked = proxy.client();
    blocked.send(&["BLPOP", "q", "10"]);
    redis.wait_blocked_clients(1, READY);
    d.assert_cmd("RPUSH q x", b":1\r\n");
    assert_eq!(blocked.read_reply(), b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n");

    // Operations.
    populate(&mut d, 500, "del");
    c.assert_cmd("RESPITE DELPATTERN del:*", b":500\r\n");
    assert!(scan_all(&mut d, "del:*").is_empty());

    // The poll of Redis's own state, on a connection of its own.
    assert!(
        wait_until(READY, || stats(&mut c).contains_key("upstream_used_memory")),
        "Redis's INFO was never polled"
    );
    assert_eq!(local_ports(&mut d, "respite-stats"), [port]);

    // The liveness check: a connection silent past request_timeout (300ms) asks
    // whether Redis is alive with a PING over TLS; it is, so the command that blocks
    // for a second is not cut off.
    c.assert_cmd("BLPOP none 1", b"*-1\r\n");
}

#[test]
fn the_invalidation_listener_speaks_tls() {
    let certs = Certs::new();
    let redis = tls_redis(&certs, "no");
    let ttl_only = CACHED.replace("\"tracking\"", "\"ttl-only\"");
    let deleter = Proxy::start(&rediss(&redis), &(upstream(&certs.ca(), "") + CACHED));
    let listener = Proxy::start(&rediss(&redis), &(upstream(&certs.ca(), "") + &ttl_only));
    let (mut c, mut d) = (listener.client(), redis.client());
    assert!(wait_until(READY, || stat(&mut c, "invalidation_channel") == "up"));
    d.assert_cmd("SET c:gone v", OK);
    assert_eq!(c.cmd("GET c:gone"), bulk("v"));
    let hits = stat_int(&mut c, "l1_hits");
    assert_eq!(c.cmd("GET c:gone"), bulk("v"));
    assert_eq!(stat_int(&mut c, "l1_hits"), hits + 1, "c:gone is not in L1");
    deleter
        .client()
        .assert_cmd("RESPITE DELPATTERN c:gone*", b":1\r\n");
    assert!(
        wait_until(READY, || c.cmd("GET c:gone") == NIL),
        "the listener's L1 kept a deleted key"
    );
    let port = redis.tls_port();
    assert_eq!(local_ports(&mut d, "respite-invalidations"), [port]);
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let certs = Certs::new();
    let redis = tls_redis(&certs, "yes");
    let metrics = "[metrics]\nlisten = \"127.0.0.1:0\"\n";

    let without = Proxy::start(&rediss(&redis), &(upstream(&certs.ca(), "") + metrics));
    let mut c = without.client();
    assert_fails(&mut c, "upstream");
    let (status, body) = http_get(without.metrics_addr(), "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("upstream"), "{body}");

    let keys = upstream(&certs.ca(), &client_cert(&certs)) + metrics;
    let with = Proxy::start(&rediss(&redis), &keys);
    let mut c = with.client();
    c.assert_cmd("SET k v", OK);
    assert_eq!(c.cmd("GET k"), bulk("v"));
    let addr = with.metrics_addr();
    assert!(wait_until(READY, || http_get(addr, "/readyz").0 == 200));
}

#[test]
fn a_certificate_from_another_ca_or_for_another_name_is_refused() {
    let certs = Certs::new();
    let redis = tls_redis(&certs, "no");
    let other = Certs::named("other");

    let wrong_ca = Proxy::start(&rediss(&redis), &upstream(&other.ca(), ""));
    assert_fails(&mut wrong_ca.client(), "certificate");

    let url = format!("rediss://127.0.0.1:{}", redis.tls_port());
    let name = "tls_server_name = \"redis.example\"";
    let wrong_name = Proxy::start(&url, &upstream(&certs.ca(), name));
    assert_fails(&mut wrong_name.client(), "certificate");

    let name = "tls_server_name = \"localhost\"";
    let right_name = Proxy::start(&url, &upstream(&certs.ca(), name));
    right_name.client().assert_cmd("PING", b"+PONG\r\n");
    assert_eq!(right_name.client().cmd("SET k v"), OK);
}

/// Puts `certs`' server certificate and CA where Redis reads them.
fn install_server_certs(certs: &Certs, dir: &Path) {
    for name in ["server.pem", "server.key", "ca.pem"] {
        std::fs::copy(certs.dir().join(name), dir.join(name)).unwrap();
    }
}

#[test]
fn a_reload_rereads_the_certificates_for_new_connections() {
    let first = Certs::new();
    let live = tempfile::tempdir().unwrap();
    install_server_certs(&first, live.path());
    let mut redis = tls_redis_from(live.path());
    // respite's CA file, replaced in place as a renewal would.
    let ca = live.path().join("respite-ca.pem");
    std::fs::copy(first.ca(), &ca).unwrap();
    let proxy = Proxy::start_from_file(&rediss(&redis), &upstream(&ca, ""));
    let mut c = proxy.client();
    c.assert_cmd("SET k v", OK);

    // Redis moves to a new CA: respite's connections, still trusting the old one, fail.
    let second = Certs::named("second CA");
    install_server_certs(&second, live.path());
    redis.restart();
    assert_fails(&mut c, "certificate");

    // A reload that cannot read the new file is refused and changes nothing.
    std::fs::write(&ca, "garbage\n").unwrap();
    let refused = c.cmd("RESPITE RELOAD");
    let text = String::from_utf8_lossy(&refused).into_owned();
    assert!(
        is_error(&refused) && text.contains("respite-ca.pem"),
        "{text}"
    );
    assert_fails(&mut c, "certificate");

    std::fs::copy(second.ca(), &ca).unwrap();
    let reloaded = c.cmd("RESPITE RELOAD");
    assert!(
        support::contains(&reloaded, b"upstream TLS certificates re-read"),
        "{}",
        show(&reloaded)
    );
    assert!(
        wait_until(READY, || c.cmd("GET k") == NIL),
        "requests still fail after the reload"
    );
    c.assert_cmd("SET k v2", OK);
    assert_eq!(c.cmd("GET k"), bulk("v2"));
}

/// A TLS Redis reading its certificate files from `dir` (again at each restart).
fn tls_redis_from(dir: &Path) -> RedisServer {
    let path = |n: &str| dir.join(n).display().to_string();
    let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    RedisServer::start_tls(&[
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ])
}

fn respite_check(config: &str) -> (bool, Option<i32>, String) {
    let (code, text) = support::binary::check(config);
    (code == Some(0), code, text)
}

#[test]
fn check_reads_the_upstream_certificate_files() {
    let certs = Certs::new();
    let url = "rediss://app:s3cret-pw@redis.internal:6380/2";
    let keys = upstream(&certs.ca(), &client_cert(&certs));
    let (ok, _, text) = respite_check(&format!("{}url = \"{url}\"\n", keys));
    assert!(ok, "{text}");
    assert!(
        text.contains("rediss://app:***@redis.internal:6380/2") && text.contains("TLS"),
        "{text}"
    );
    assert!(
        !text.contains("s3cret-pw"),
        "check printed the password: {text}"
    );

    let missing = certs.dir().join("nowhere.pem");
    let keys = upstream(&missing, "");
    let (ok, code, text) = respite_check(&format!("{keys}url = \"{url}\"\n"));
    assert!(!ok && code == Some(64), "{text}");
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(!text.contains("s3cret-pw"), "{text}");
}
