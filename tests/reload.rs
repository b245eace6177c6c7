//! Live reload of proxy.toml: edits reach every connected client within a second
//! without dropping any, an invalid edit changes nothing, L1 entries of changed
//! namespaces go, and tracking follows the cached namespaces.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use support::{
    Client, Proxy, RedisServer,
    l1::{bulk, calls, stat, stat_int, wait_tracking},
    proxy::config_text,
    wait_until,
};

fn rules(ttl: &str) -> String {
    format!("[[namespace]]\nname = \"timed\"\nmatch = \"t:*\"\nttl = \"{ttl}\"\n")
}

fn pttl(c: &mut Client, key: &str) -> i64 {
    let reply = c.call(&["PTTL", key]);
    String::from_utf8_lossy(&reply)
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap()
}

/// Rewrites the proxy's file with `extra` merged over the base settings.
fn edit(proxy: &Proxy, redis: &RedisServer, extra: &str) {
    let text = config_text(proxy.addr(), &redis.url(), extra);
    std::fs::write(proxy.config_path(), text).unwrap();
}

#[test]
fn edits_reach_connected_clients_within_a_second_and_bad_edits_change_nothing() {
    let redis = RedisServer::start();
    let proxy = Proxy::start_from_file(&redis.url(), &rules("100s"));
    let mut direct = redis.client();
    let mut probe = proxy.client();
    assert_eq!(probe.cmd("SET t:probe v"), b"+OK\r\n");
    assert!((95_000..=100_000).contains(&pttl(&mut direct, "t:probe")));

    // Clients keep writing and reading throughout; none may see an error or a drop.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (stop, done, mut c) = (stop.clone(), done.clone(), proxy.client());
            thread::spawn(move || {
                let key = format!("t:w{i}");
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(c.call(&["SET", &key, "v"]), b"+OK\r\n");
                    assert_eq!(c.call(&["GET", &key]), bulk("v"));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    assert!(wait_until(Duration::from_secs(5), || done
        .load(Ordering::Relaxed)
        > 100));

    let edited = Instant::now();
    edit(&proxy, &redis, &rules("300s"));
    let applied = wait_until(Duration::from_secs(1), || {
        probe.cmd("SET t:probe v");
        pttl(&mut direct, "t:probe") > 200_000
    });
    assert!(
        applied,
        "the new ttl did not apply within a second of the edit"
    );
    eprintln!("new rules applied {:?} after the edit", edited.elapsed());
    assert_eq!(stat_int(&mut probe, "config_reloads_ok"), 1);

    // An invalid edit (ttl above max_ttl) is refused; the previous rules stay.
    let invalid = format!("{}max_ttl = \"10s\"\n", rules("50s"));
    edit(&proxy, &redis, &invalid);
    assert!(wait_until(Duration::from_secs(5), || {
        stat_int(&mut probe, "config_reloads_failed") == 1
    }));
    probe.cmd("SET t:probe v");
    assert!(
        pttl(&mut direct, "t:probe") > 200_000,
        "old rules must stay"
    );
    let refused = String::from_utf8(probe.cmd("RESPITE RELOAD")).unwrap();
    assert!(
        refused.starts_with("-ERR reload refused") && refused.contains("max_ttl"),
        "{refused}"
    );

    // A later valid edit applies again; RESPITE RELOAD and SIGHUP reload too.
    edit(&proxy, &redis, &rules("20s"));
    assert!(wait_until(Duration::from_secs(5), || {
        probe.cmd("SET t:probe v");
        (15_000..=20_000).contains(&pttl(&mut direct, "t:probe"))
    }));
    let reloaded = String::from_utf8(probe.cmd("RESPITE RELOAD")).unwrap();
    assert!(
        reloaded.contains("reloaded: 1 namespace rules"),
        "{reloaded}"
    );
    let before = stat_int(&mut probe, "config_reloads_ok");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    assert!(wait_until(Duration::from_secs(5), || {
        stat_int(&mut probe, "config_reloads_ok") > before
    }));

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join()
            .expect("a client saw an error or lost its connection");
    }
}

#[test]
fn l1_entries_of_changed_namespaces_are_dropped() {
    let redis = RedisServer::start();
    let cached = |c_ttl: &str| {
        format!(
            "[l1]\ncoherence = \"ttl-only\"\n\n\
             [[namespace]]\nname = \"c\"\nmatch = \"c:*\"\nl1 = true\nl1_ttl = \"{c_ttl}\"\n\n\
             [[namespace]]\nname = \"d\"\nmatch = \"d:*\"\nl1 = true\nl1_ttl = \"60s\"\n"
        )
    };
    let mut direct = redis.client();
    direct.cmd("SET c:1 old");
    direct.cmd("SET d:1 old");
    let proxy = Proxy::start_from_file(&redis.url(), &cached("60s"));
    let mut client = proxy.client();
    assert_eq!(client.cmd("GET c:1"), bulk("old"));
    assert_eq!(client.cmd("GET d:1"), bulk("old"));
    // Changed behind the proxy's back: without tracking, L1 keeps the old values.
    direct.cmd("SET c:1 new");
    direct.cmd("SET d:1 new");
    assert_eq!(client.cmd("GET c:1"), bulk("old"));

    edit(&proxy, &redis, &cached("30s"));
    assert!(wait_until(Duration::from_secs(5), || {
        stat_int(&mut client, "config_reloads_ok") == 1
    }));
    assert_eq!(
        client.cmd("GET c:1"),
        bulk("new"),
        "rule changed: entry dropped"
    );
    assert_eq!(
        client.cmd("GET d:1"),
        bulk("old"),
        "rule unchanged: entry kept"
    );
    // Reloading the same rules again drops nothing.
    let reply = String::from_utf8(client.cmd("RESPITE RELOAD")).unwrap();
    assert!(reply.contains(", 0 L1 entries dropped"), "{reply}");
}

#[test]
fn tracking_follows_namespaces_added_by_a_reload() {
    let redis = RedisServer::start();
    let proxy = Proxy::start_from_file(&redis.url(), "[l1]\ncoherence = \"tracking\"\n");
    let mut client = proxy.client();
    let mut direct = redis.client();
    assert_eq!(stat(&mut client, "tracking"), "idle");
    direct.cmd("SET c:1 v1");
    edit(
        &proxy,
        &redis,
        "[l1]\ncoherence = \"tracking\"\n\n[[namespace]]\nname = \"c\"\nmatch = \"c:*\"\nl1 = true\n",
    );
    wait_tracking(&mut client, "up", Duration::from_secs(5));
    let before = calls(&mut direct, "get");
    for _ in 0..5 {
        assert_eq!(client.cmd("GET c:1"), bulk("v1"));
    }
    assert_eq!(
        calls(&mut direct, "get") - before,
        1,
        "served from L1 after one fill"
    );
    // A write behind the proxy's back arrives as an invalidation for the new prefix.
    direct.cmd("SET c:1 v2");
    assert!(wait_until(Duration::from_secs(2), || client.cmd("GET c:1")
        == bulk("v2")));
}
