//! `respite stats|delpattern|warm|flush|reload --addr …`: the binary talking to a
//! running proxy, with human-readable output and exit codes (0 ok, 1 with a message).

mod support;

use std::process::{Command, Output};

use support::{
    Proxy, RedisServer, Stack,
    admin::{assert_populated, dbsize, keys, mget_all, populate, scan_all},
    l1::{calls, stat_int, wait_tracking},
};

const CACHED: &str = r#"
[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "1h"
"#;

/// Runs `respite <args> --addr <proxy>` and returns its output.
fn respite(stack: &Stack, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_respite"))
        .args(args)
        .args(["--addr", &stack.proxy.addr().to_string()])
        .env_remove("RESPITE_ADMIN_PASSWORD")
        .output()
        .expect("run respite")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

fn assert_fails(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "stdout: {}", stdout(out));
    assert!(stderr(out).contains(message), "stderr: {}", stderr(out));
}

#[test]
fn stats_are_printed_for_people() {
    let stack = Stack::start_with(CACHED);
    let mut d = stack.direct();
    populate(&mut d, 50, "c:k");
    let mut c = stack.client();
    wait_tracking(&mut c, "up", std::time::Duration::from_secs(5));
    mget_all(&mut c, &keys("c:k", 0..50));
    let text = assert_ok(&respite(&stack, &["stats"]));
    for expected in ["upstream", "uptime", "l1_bytes", "namespace", "l1 entries"] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
    // The upstream field's own line says it is up.
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().eq(["upstream", "up"])),
        "no `upstream up` line in:\n{text}"
    );
    let ns_line = text
        .lines()
        .find(|l| l.starts_with("c "))
        .unwrap_or_else(|| panic!("no row for namespace c in:\n{text}"));
    assert!(
        ns_line.contains(" 50 ") && ns_line.contains("KiB"),
        "{ns_line}"
    );
}

#[test]
fn delpattern_and_warm() {
    let stack = Stack::start_with(CACHED);
    let mut d = stack.direct();
    populate(&mut d, 3000, "c:del");
    populate(&mut d, 500, "c:keep");
    let mut c = stack.client();
    wait_tracking(&mut c, "up", std::time::Duration::from_secs(5));

    let out = respite(&stack, &["delpattern", "c:del:*", "--count", "500"]);
    let text = assert_ok(&out);
    assert!(
        text.contains("deleted 3000 keys matching 'c:del:*'"),
        "{text}"
    );
    assert_eq!(dbsize(&mut d), 500);
    assert!(scan_all(&mut d, "c:del:*").is_empty());

    let text = assert_ok(&respite(&stack, &["warm", "c:*"]));
    assert!(text.contains("500 keys matching 'c:*' are in L1"), "{text}");
    let before = calls(&mut d, "mget");
    let kept = keys("c:keep", 0..500);
    assert_populated(&kept, &mget_all(&mut c, &kept));
    assert_eq!(calls(&mut d, "mget"), before, "warmed keys reached Redis");

    let text = assert_ok(&respite(&stack, &["flush", "c"]));
    assert!(text.contains("namespace 'c'"), "{text}");
    assert_eq!(stat_int(&mut c, "ns:c:l1_entries"), 0);
    let text = assert_ok(&respite(&stack, &["warm", "c:*"]));
    assert!(text.contains("500 keys matching 'c:*' are in L1"), "{text}");
    // The 500 `c:keep` keys are back in L1 (the `c:del` ones are gone from Redis).
    assert_eq!(stat_int(&mut c, "ns:c:l1_entries"), 500);
    assert_eq!(stat_int(&mut c, "l1_entries"), 500);
    let text = assert_ok(&respite(&stack, &["flush"]));
    assert!(text.contains("L1 flushed"), "{text}");
    assert_eq!(stat_int(&mut c, "l1_entries"), 0);
    assert_fails(
        &respite(&stack, &["flush", "nope"]),
        "unknown namespace 'nope'",
    );
}

#[test]
fn password_is_sent_when_given() {
    let stack = Stack::start_with("[admin]\npassword = \"s3cret\"\n");
    assert_fails(&respite(&stack, &["stats"]), "NOPERM");
    assert_fails(
        &respite(&stack, &["stats", "--password", "wrong"]),
        "WRONGPASS",
    );
    assert_ok(&respite(&stack, &["stats", "--password", "s3cret"]));
    let out = Command::new(env!("CARGO_BIN_EXE_respite"))
        .args(["stats", "--addr", &stack.proxy.addr().to_string()])
        .env("RESPITE_ADMIN_PASSWORD", "s3cret")
        .output()
        .unwrap();
    assert_ok(&out);
}

#[test]
fn reload_succeeds_when_the_proxy_has_a_config_file() {
    let redis = RedisServer::start();
    let proxy = Proxy::start_from_file(&redis.url(), "");
    let stack = Stack { proxy, redis };
    let mut c = stack.client();
    // What the proxy answers a successful reload (the CLI reports it as a success).
    let direct = c.cmd("RESPITE RELOAD");
    assert!(
        direct.starts_with(b"$") && support::contains(&direct, b"reloaded: "),
        "{}",
        support::show(&direct)
    );
    let before = stat_int(&mut c, "config_reloads_ok");
    let out = respite(&stack, &["reload"]);
    assert_eq!(assert_ok(&out).trim_end(), "configuration reloaded");
    // The CLI's reload really reached the proxy (the file did not change, so the
    // watcher reloads nothing on its own).
    assert_eq!(stat_int(&mut c, "config_reloads_ok"), before + 1);
    assert_eq!(stat_int(&mut c, "config_reloads_failed"), 0);
}

#[test]
fn reload_fails_without_a_config_file() {
    let stack = Stack::start();
    let direct = stack.client().cmd("RESPITE RELOAD");
    let error = String::from_utf8_lossy(&direct[1..direct.len() - 2]).into_owned();
    assert!(
        direct.starts_with(b"-") && error.contains("no configuration file"),
        "{}",
        support::show(&direct)
    );
    let out = respite(&stack, &["reload"]);
    assert!(!out.status.success(), "stdout: {}", stdout(&out));
    // The proxy's error, as it said it.
    assert_fails(&out, &error);
    assert_fails(&out, "no configuration file");
}

#[test]
fn unreachable_proxy_is_an_error() {
    let port = support::redis::free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_respite"))
        .args(["stats", "--addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
}

#[test]
fn client_subcommands_need_no_config_file() {
    // An invalid proxy.toml in the working directory does not matter to them.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("proxy.toml"), "[server]\nbogus = 1\n").unwrap();
    let stack = Stack::start();
    let out = Command::new(env!("CARGO_BIN_EXE_respite"))
        .current_dir(dir.path())
        .args(["stats", "--addr", &stack.proxy.addr().to_string()])
        .output()
        .unwrap();
    assert_ok(&out);
}
