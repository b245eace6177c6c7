//! The `RESPITE` admin commands against a real Redis: pattern deletes that reach every
//! respite's L1 (through tracking, or the pub/sub invalidation channel in ttl-only
//! mode), the client-side SCAN + DEL way, warming, and access control.
//!
//! What reached Redis is read from Redis (`DBSIZE`, `SCAN`, `INFO commandstats`); what
//! a proxy serves, through it.

mod support;

use std::time::{Duration, Instant};

use support::{
    Client, Proxy, RedisServer, Stack,
    admin::{assert_populated, dbsize, keys, mget_all, populate, scan_all, wait_stat},
    l1::{calls, calls_of, stat, stat_int, stats},
    resp::{self, show},
    wait_until,
};

const OK: &[u8] = b"+OK\r\n";
const READY: Duration = Duration::from_secs(5);
/// How long another respite may keep serving a deleted key after the delete replied.
const FAN_OUT_BOUND: Duration = Duration::from_secs(2);

/// Every `c:*` key cached for an hour: only an invalidation can make a proxy forget.
fn cached(coherence: &str) -> String {
    format!(
        r#"
[upstream]
request_timeout = "10s"

[l1]
max_memory = "256MiB"
coherence = "{coherence}"

[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "1h"
"#
    )
}

/// A client through `proxy` once its L1 is coherent (tracking established, or the
/// invalidation channel subscribed in ttl-only mode).
fn ready(proxy: &Proxy, coherence: &str) -> Client {
    let mut c = proxy.client();
    let field = match coherence {
        "tracking" => "tracking",
        _ => "invalidation_channel",
    };
    wait_stat(&mut c, field, "up", READY);
    c
}

/// 200,000 keys: 50,000 `c:del:N`, 149,997 `c:keep:N` and three that only look alike.
fn load(direct: &mut Client) {
    populate(direct, 50_000, "c:del");
    populate(direct, 149_997, "c:keep");
    for near in ["c:del", "c:delx:1", "C:del:1"] {
        assert_eq!(direct.call(&["SET", near, "near"]), OK);
    }
    assert_eq!(dbsize(direct), 200_000);
}

/// Two respites in front of one Redis holding [`load`]'s keys; the second has every
/// `c:del:*` key and 5,000 others in L1, the first a few.
struct FanOut {
    redis: RedisServer,
    /// The respites (kept running; tests talk to them through clients).
    _proxies: (Proxy, Proxy),
    del: Vec<String>,
    keep: Vec<String>,
    /// Last: released once Redis and the proxies are gone.
    _heavy: std::sync::MutexGuard<'static, ()>,
}

/// The 200,000-key tests run one at a time: together they starve a small machine.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl FanOut {
    fn start(coherence: &str) -> (FanOut, Client, Client) {
        let heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
        let redis = RedisServer::start();
        load(&mut redis.client());
        let toml = cached(coherence);
        let a = Proxy::start(&redis.url(), &toml);
        let b = Proxy::start(&redis.url(), &toml);
        let (mut ca, mut cb) = (ready(&a, coherence), ready(&b, coherence));
        let del = keys("c:del", 0..50_000);
        let keep = keys("c:keep", 0..5_000);
        let mut d = redis.client();
        // Read until a pass is served from L1 entirely (a tracking blip on a busy
        // machine makes entries stale, and they are read again).
        let cached = wait_until(Duration::from_secs(20), || {
            if coherence == "tracking" {
                wait_stat(&mut cb, "tracking", "up", READY);
            }
            let before = calls(&mut d, "mget");
            assert_populated(&del, &mget_all(&mut cb, &del));
            assert_populated(&keep, &mget_all(&mut cb, &keep));
            assert_populated(&del[..100], &mget_all(&mut ca, &del[..100]));
            calls(&mut d, "mget") == before
        });
        assert!(cached, "setup: keys never all in L1");
        let fan = FanOut {
            redis,
            _proxies: (a, b),
            del,
            keep,
            _heavy: heavy,
        };
        (fan, ca, cb)
    }

    /// Redis lost exactly the `c:del:*` keys; no respite serves them any more; the
    /// others are untouched and still served from L1.
    fn assert_deleted(&self, ca: &mut Client, cb: &mut Client) {
        let mut d = self.redis.client();
        assert_eq!(dbsize(&mut d), 150_000);
        assert_eq!(scan_all(&mut d, "c:del:*"), Vec::<String>::new());
        for near in ["c:del", "c:delx:1", "C:del:1"] {
            assert_eq!(d.call(&["GET", near]), b"$4\r\nnear\r\n", "{near} deleted");
        }
        assert_eq!(scan_all(&mut d, "c:keep:*").len(), 149_997);
        // The proxy that deleted answers at once.
        let values = mget_all(ca, &self.del[..100]);
        assert!(
            values.iter().all(Option::is_none),
            "deleting proxy serves deleted keys"
        );
        // The other within the invalidation delay (watched on a sample: reading
        // all 50,000 takes a while in a debug build), then all of them.
        let sample: Vec<String> = self.del.iter().step_by(50).cloned().collect();
        let started = Instant::now();
        let mut served = 0;
        let forgot = wait_until(FAN_OUT_BOUND, || {
            served = mget_all(cb, &sample).iter().filter(|v| v.is_some()).count();
            served == 0
        });
        assert!(
            forgot,
            "the other respite still serves {served} of {} deleted keys after {FAN_OUT_BOUND:?}",
            sample.len()
        );
        eprintln!(
            "other respite forgot the deleted keys within {:?}",
            started.elapsed()
        );
        let values = mget_all(cb, &self.del);
        let served = values.iter().filter(|v| v.is_some()).count();
        assert_eq!(served, 0, "the other respite still serves deleted keys");
        // Kept keys keep their values and stay in L1. (Some share a generation
        // counter with a deleted key, and an invalidation may still be on its way:
        // those few are read again.)
        // (A tracking blip on a busy machine makes every entry stale: then they are
        // read again, and served from L1 on the next pass.)
        let mut hit = 0;
        let kept = wait_until(Duration::from_secs(20), || {
            assert_populated(&self.keep, &mget_all(cb, &self.keep));
            let hits = stat_int(cb, "l1_hits");
            assert_populated(&self.keep, &mget_all(cb, &self.keep));
            hit = stat_int(cb, "l1_hits") - hits;
            hit >= self.keep.len() as i64 * 9 / 10
        });
        assert!(
            kept,
            "only {hit} of {} kept keys served from L1",
            self.keep.len()
        );
    }
}

fn delpattern_fans_out(coherence: &str) {
    let (fan, mut ca, mut cb) = FanOut::start(coherence);
    let started = Instant::now();
    ca.assert_cmd("RESPITE DELPATTERN c:del:*", b":50000\r\n");
    eprintln!(
        "DELPATTERN of 50,000 among 200,000 keys: {:?}",
        started.elapsed()
    );
    fan.assert_deleted(&mut ca, &mut cb);
    // A second run finds nothing.
    ca.assert_cmd("RESPITE DELPATTERN c:del:* COUNT 5000", b":0\r\n");
}

#[test]
fn delpattern_deletes_the_matching_keys_everywhere_with_tracking() {
    delpattern_fans_out("tracking");
}

#[test]
fn delpattern_deletes_the_matching_keys_everywhere_in_ttl_only_mode() {
    delpattern_fans_out("ttl-only");
}

/// django-redis's `delete_pattern`: `scan_iter(match=…)`, then one pipeline (MULTI) of
/// DELs, sent through the proxy.
#[test]
fn client_side_scan_and_del_in_multi_behaves_the_same() {
    let (fan, mut ca, mut cb) = FanOut::start("tracking");
    // SCAN … MATCH … COUNT 1000 through the proxy, as the client would.
    let found = scan_all(&mut ca, "c:del:*");
    assert_eq!(found.len(), 50_000);
    ca.assert_cmd("MULTI", OK);
    for chunk in found.chunks(1000) {
        for k in chunk {
            ca.send(&["DEL", k]);
        }
        for _ in chunk {
            ca.assert_reply(b"+QUEUED\r\n");
        }
    }
    let exec = resp::decode(&ca.call(&["EXEC"]));
    assert_eq!(exec.children().len(), 50_000);
    assert!(exec.children().iter().all(|r| r.encode() == b":1\r\n"));
    fan.assert_deleted(&mut ca, &mut cb);
}

#[test]
fn other_clients_are_served_while_a_delete_runs() {
    let stack = Stack::start_with(&format!(
        "{}\n[admin]\npause = \"50ms\"\n",
        cached("tracking")
    ));
    let mut d = stack.direct();
    populate(&mut d, 400, "c:slow");
    let mut c1 = ready(&stack.proxy, "tracking");
    c1.assert_cmd("CLIENT SETNAME deleter", OK);
    // 20 batches of 20 keys, 50 ms apart: about a second.
    c1.send(&["RESPITE", "DELPATTERN", "c:slow:*", "COUNT", "20"]);
    c1.send(&["PING"]);
    let mut c2 = stack.client();
    let mut progress = Vec::new();
    assert!(
        wait_until(READY, || {
            progress = c2.cmd("RESPITE PROGRESS");
            support::contains(&progress, b"deleter")
        }),
        "the running delete is not in RESPITE PROGRESS: {}",
        show(&progress)
    );
    let fields = resp::decode(&progress).children()[0].clone();
    let text: Vec<String> = fields
        .children()
        .iter()
        .map(|f| String::from_utf8_lossy(f.text().unwrap()).into_owned())
        .collect();
    for field in [
        "kind",
        "delpattern",
        "pattern",
        "c:slow:*",
        "scanned",
        "done",
    ] {
        assert!(text.iter().any(|t| t == field), "{field} not in {text:?}");
    }
    let started = Instant::now();
    c2.assert_cmd("SET other 1", OK);
    c2.assert_cmd("GET other", b"$1\r\n1\r\n");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        support::contains(&c2.cmd("RESPITE PROGRESS"), b"deleter"),
        "the delete ended before the other client was answered: the test proves nothing"
    );
    // The deleting client gets its replies in order.
    c1.assert_reply(b":400\r\n");
    c1.assert_reply(b"+PONG\r\n");
    assert_eq!(scan_all(&mut d, "c:slow:*"), Vec::<String>::new());
    c2.assert_cmd("RESPITE PROGRESS", b"*0\r\n");
}

#[test]
fn delpattern_argument_errors() {
    let stack = Stack::start();
    let mut c = stack.client();
    for (line, error) in [
        ("RESPITE DELPATTERN", "-ERR unknown subcommand"),
        ("RESPITE DELPATTERN a:* COUNT 0", "-ERR COUNT must be"),
        (
            "RESPITE DELPATTERN a:* COUNT x",
            "-ERR value is not an integer",
        ),
        ("RESPITE DELPATTERN a:* MATCH b", "-ERR syntax error"),
        ("RESPITE WARM a:* COUNT", "-ERR syntax error"),
    ] {
        let reply = c.cmd(line);
        assert!(
            reply.starts_with(error.as_bytes()),
            "{line}: {}",
            show(&reply)
        );
    }
}

#[test]
fn delpattern_without_l1_still_deletes() {
    let stack = Stack::start();
    let mut d = stack.direct();
    populate(&mut d, 3000, "x");
    populate(&mut d, 10, "y");
    stack
        .client()
        .assert_cmd("RESPITE DELPATTERN x:*", b":3000\r\n");
    assert_eq!(dbsize(&mut d), 10);
}

/// `c:*` cached; a string, a hash and a set to warm, a list that is skipped, and a key
/// outside every namespace.
const WARM: &str = r#"
[l1]
max_memory = "64MiB"

[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "1h"
"#;

fn seed_warm(d: &mut Client) {
    populate(d, 1000, "c:w");
    assert_eq!(d.call(&["HSET", "c:h", "f", "v", "g", "w"]), b":2\r\n");
    assert_eq!(d.call(&["SADD", "c:s", "a", "b"]), b":2\r\n");
    assert_eq!(d.call(&["RPUSH", "c:l", "a"]), b":1\r\n");
    assert_eq!(d.call(&["SET", "x:1", "out"]), OK);
}

/// Reads every warmed key through `c` and asserts none of the reads reached Redis.
fn assert_warm(c: &mut Client, d: &mut Client) {
    let reads = ["get", "mget", "hgetall", "smembers"];
    let before = calls_of(d, &reads);
    let all = keys("c:w", 0..1000);
    for k in &all[..200] {
        let n = k.rsplit(':').next().unwrap();
        let expected = format!("value:{n}");
        c.assert_cmd(
            &format!("GET {k}"),
            format!("${}\r\n{expected}\r\n", expected.len()).as_bytes(),
        );
    }
    assert_populated(&all, &mget_all(c, &all));
    let h = resp::decode(&c.cmd("HGETALL c:h")).sorted();
    assert_eq!(h.children().len(), 4);
    assert_eq!(resp::decode(&c.cmd("SMEMBERS c:s")).children().len(), 2);
    assert_eq!(
        calls_of(d, &reads),
        before,
        "reads after warm-up reached Redis"
    );
}

#[test]
fn warm_fills_l1_so_reads_do_not_reach_redis() {
    let stack = Stack::start_with(WARM);
    let mut d = stack.direct();
    seed_warm(&mut d);
    let mut c = ready(&stack.proxy, "tracking");
    let (hits, misses) = (stat_int(&mut c, "l1_hits"), stat_int(&mut c, "l1_misses"));
    c.assert_cmd("RESPITE WARM c:*", b":1002\r\n");
    assert_eq!(stat_int(&mut c, "ns:c:l1_entries"), 1002);
    // Warming is not the clients' reading: no hit or miss counted.
    assert_eq!(
        (stat_int(&mut c, "l1_hits"), stat_int(&mut c, "l1_misses")),
        (hits, misses)
    );
    assert_warm(&mut c, &mut d);
    // The clients' reads after it are hits.
    assert_eq!(stat_int(&mut c, "l1_misses"), misses);
    assert!(stat_int(&mut c, "l1_hits") >= hits + 1200);
    // A second warm-up finds them all in L1 and reads nothing.
    let before = calls_of(&mut d, &["get", "hgetall", "smembers"]);
    c.assert_cmd("RESPITE WARM c:*", b":1002\r\n");
    assert_eq!(calls_of(&mut d, &["get", "hgetall", "smembers"]), before);
    // Keys outside cached namespaces are not read.
    c.assert_cmd("RESPITE WARM x:*", b":0\r\n");
}

#[test]
fn warm_stops_at_the_namespace_share_of_max_memory() {
    // Two cached namespaces: each may take half of 1 MiB.
    let stack = Stack::start_with(
        r#"
[l1]
max_memory = "1MiB"

[[namespace]]
name = "a"
match = "a:*"
l1 = true
l1_ttl = "1h"

[[namespace]]
name = "b"
match = "b:*"
l1 = true
"#,
    );
    let mut d = stack.direct();
    let value = "x".repeat(1000);
    for chunk in keys("a", 0..2000).chunks(500) {
        let mut args = vec!["MSET"];
        for k in chunk {
            args.extend([k.as_str(), value.as_str()]);
        }
        assert_eq!(d.call(&args), OK);
    }
    let mut c = ready(&stack.proxy, "tracking");
    let reply = c.cmd("RESPITE WARM a:*");
    let warmed: i64 = String::from_utf8_lossy(&reply[1..reply.len() - 2])
        .parse()
        .unwrap_or_else(|_| panic!("WARM replied {}", show(&reply)));
    let bytes = stat_int(&mut c, "ns:a:l1_bytes");
    eprintln!("warmed {warmed} keys, {bytes} bytes");
    let share = 512 * 1024;
    // Checked every 64 reads of about 1.3 KB each.
    assert!(bytes <= share + 64 * 1400, "{bytes} bytes past the share");
    assert!(bytes >= share * 3 / 4, "stopped early at {bytes} bytes");
    assert!((300..1000).contains(&warmed), "warmed {warmed}");
}

#[test]
fn warm_on_start_fills_l1_in_the_background() {
    let redis = RedisServer::start();
    let mut d = redis.client();
    seed_warm(&mut d);
    let proxy = Proxy::start(
        &redis.url(),
        &WARM.replace("l1 = true", "l1 = true\nwarm = true"),
    );
    let mut c = ready(&proxy, "tracking");
    wait_stat(&mut c, "warming", "0", Duration::from_secs(10));
    assert_eq!(stat_int(&mut c, "ns:c:l1_entries"), 1002);
    assert_warm(&mut c, &mut d);
}

#[test]
fn warm_needs_l1() {
    let text = "[[namespace]]\nname = \"a\"\nmatch = \"a:*\"\nwarm = true\n";
    let config = respite::Config::parse(text).unwrap();
    let err = config.validate(text).unwrap_err().to_string();
    assert!(err.contains("warm") && err.contains("line 4"), "{err}");
}

#[test]
fn flushl1_of_one_namespace() {
    let toml = r#"
[[namespace]]
name = "a"
match = "a:*"
l1 = true
l1_ttl = "1h"

[[namespace]]
name = "b"
match = "b:*"
l1 = true
l1_ttl = "1h"
"#;
    let stack = Stack::start_with(toml);
    let mut d = stack.direct();
    populate(&mut d, 100, "a");
    populate(&mut d, 100, "b");
    let mut c = ready(&stack.proxy, "tracking");
    let (a, b) = (keys("a", 0..100), keys("b", 0..100));
    mget_all(&mut c, &a);
    mget_all(&mut c, &b);
    assert_eq!(stat_int(&mut c, "ns:a:l1_entries"), 100);
    c.assert_cmd("RESPITE FLUSHL1 a", OK);
    assert_eq!(stat_int(&mut c, "ns:a:l1_entries"), 0);
    assert_eq!(stat_int(&mut c, "ns:b:l1_entries"), 100);
    // One MGET a key: dropping `a`'s keys moves their generation counters, and a `b`
    // key sharing a counter with one of them (about 100 x 100 / 2^18 pairs) costs
    // one extra read; more than a few means `b` was flushed.
    let before = calls_of(&mut d, &["get", "mget"]);
    for key in &b {
        assert_populated(
            std::slice::from_ref(key),
            &mget_all(&mut c, std::slice::from_ref(key)),
        );
    }
    let reread = calls_of(&mut d, &["get", "mget"]) - before;
    assert!(
        reread <= 3,
        "b left L1: {reread} of 100 keys read from Redis"
    );
    let before = calls(&mut d, "mget");
    assert_populated(&a, &mget_all(&mut c, &a));
    assert_eq!(calls(&mut d, "mget"), before + 1, "a still in L1");
    let reply = c.cmd("RESPITE FLUSHL1 nope");
    assert!(
        reply.starts_with(b"-ERR unknown namespace 'nope'"),
        "{}",
        show(&reply)
    );
    c.assert_cmd("RESPITE FLUSHL1", OK);
    assert_eq!(stat_int(&mut c, "l1_entries"), 0);
}

#[test]
fn stats_explain_and_help() {
    let stack = Stack::start_with(WARM);
    let mut c = ready(&stack.proxy, "tracking");
    let mut other = stack.client();
    other.assert_cmd("PING", b"+PONG\r\n");
    let all = stats(&mut c);
    for field in [
        "upstream",
        "tracking",
        "invalidation_channel",
        "uptime_seconds",
        "clients",
        "warming",
        "operations",
        "l1_hit_ratio",
        "ns:c:l1_entries",
        "ns:c:l1_bytes",
    ] {
        assert!(all.contains_key(field), "STATS lacks {field}: {all:?}");
    }
    assert_eq!(all["clients"], "2");
    assert_eq!(all["invalidation_channel"], "off");
    assert!(c.cmd("HELLO 3").starts_with(b"%"));
    let map = c.cmd("RESPITE STATS");
    assert!(
        map.starts_with(b"%"),
        "RESP3 STATS is not a map: {}",
        show(&map)
    );
    let explain = c.cmd("RESPITE EXPLAIN c:1");
    assert!(
        support::contains(&explain, b"namespace `c`"),
        "{}",
        show(&explain)
    );
    let explain = c.cmd("RESPITE EXPLAIN other");
    assert!(
        support::contains(&explain, b"no rule"),
        "{}",
        show(&explain)
    );
    let help = c.cmd("RESPITE HELP");
    for sub in [
        "DELPATTERN",
        "WARM",
        "EXPLAIN",
        "FLUSHL1",
        "PROGRESS",
        "AUTH",
        "RELOAD",
    ] {
        assert!(support::contains(&help, sub.as_bytes()), "HELP lacks {sub}");
    }
}

/// A proxy with `admin` over 10 keys `k:*`, and a client to which every line of
/// `refused` gets `-NOPERM` without deleting anything, while HELP still answers.
fn refusing_admin(admin: &str, refused: &[&str]) -> (Stack, Client) {
    let stack = Stack::start_with(admin);
    let mut d = stack.direct();
    populate(&mut d, 10, "k");
    let mut c = stack.client();
    for line in refused {
        let reply = c.cmd(line);
        assert!(reply.starts_with(b"-NOPERM"), "{line}: {}", show(&reply));
    }
    assert_eq!(dbsize(&mut d), 10, "a refused command deleted keys");
    assert!(c.cmd("RESPITE HELP").starts_with(b"*"));
    (stack, c)
}

#[test]
fn admin_commands_need_the_password() {
    let (stack, mut c) = refusing_admin(
        "[admin]\npassword = \"s3cret\"\n",
        &[
            "RESPITE STATS",
            "RESPITE DELPATTERN k:*",
            "RESPITE FLUSHL1",
            "RESPITE WARM k:*",
        ],
    );
    let wrong = c.cmd("RESPITE AUTH nope");
    assert!(wrong.starts_with(b"-WRONGPASS"), "{}", show(&wrong));
    assert!(c.cmd("RESPITE STATS").starts_with(b"-NOPERM"));
    c.assert_cmd("RESPITE AUTH s3cret", OK);
    // Every event loop's pool connects at start; on a loaded machine one may still be.
    let up = wait_until(Duration::from_secs(10), || stat(&mut c, "upstream") == "up");
    assert!(up, "RESPITE STATS after AUTH: upstream never up");
    // Per connection.
    assert!(stack.client().cmd("RESPITE STATS").starts_with(b"-NOPERM"));
    c.assert_cmd("RESPITE DELPATTERN k:*", b":10\r\n");
    // Ordinary commands never needed it.
    stack.client().assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn disabled_admin_refuses_every_subcommand_but_help() {
    refusing_admin(
        "[admin]\nenabled = false\npassword = \"s3cret\"\n",
        &[
            "RESPITE STATS",
            "RESPITE AUTH s3cret",
            "RESPITE DELPATTERN k:*",
            "RESPITE EXPLAIN k",
        ],
    );
    let no_password = Stack::start();
    let reply = no_password.client().cmd("RESPITE AUTH x");
    assert!(reply.starts_with(b"-ERR"), "{}", show(&reply));
}

#[test]
fn admin_config_is_validated() {
    for (text, key) in [
        ("[admin]\npassword = \"\"\n", "admin.password"),
        ("[admin]\nbatch = 0\n", "admin.batch"),
        ("[admin]\npause = \"1m\"\n", "admin.pause"),
    ] {
        let config = respite::Config::parse(text).unwrap();
        let err = config.validate(text).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("line 2"), "{err}");
    }
    let err = respite::Config::parse("[admin]\npasword = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("pasword"), "{err}");
}
