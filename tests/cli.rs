//! The `respite` binary: config errors exit 64 naming the key, environment overrides,
//! and SIGTERM lets in-flight requests finish before exiting.

mod support;

use std::{
    io::Write,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use support::{
    FaultProxy,
    client::Client,
    redis::{RedisServer, free_port},
    wait_until,
};

fn respite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_respite"))
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

/// Starts the binary and waits until it answers PING on `port`.
fn spawn_ready(cmd: &mut Command, port: u16) -> (Child, Client) {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut client = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            client = Client::try_connect(addr).ok();
            client.is_some()
        }),
        "respite did not start listening on {port}"
    );
    let mut client = client.unwrap();
    assert_eq!(client.call(&["PING"]), b"+PONG\r\n");
    (child, client)
}

#[test]
fn invalid_config_exits_64_naming_key_and_line() {
    let cfg = write_config("[server]\nlisten = \"127.0.0.1:1\"\n\n[upstream]\npool_size = 0\n");
    let out = respite().arg("--config").arg(cfg.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("upstream.pool_size"), "{stderr}");
    assert!(stderr.contains("line 5"), "{stderr}");

    let cfg = write_config("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
    let out = respite().arg("--config").arg(cfg.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lisen") && stderr.contains("line 3"),
        "{stderr}"
    );

    let out = respite()
        .args(["--config", "/nonexistent/proxy.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn check_prints_effective_settings() {
    let cfg = write_config(include_str!("../proxy.toml"));
    let out = respite()
        .arg("check")
        .arg("--config")
        .arg(cfg.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("quran") && stdout.contains("127.0.0.1:6380"),
        "{stdout}"
    );
    // The polls of Redis's own state, and how often.
    assert!(
        stdout.contains("Redis INFO polled every 5s, namespace sizes sampled every 1m"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ACL changes on Redis checked every 1s"),
        "{stdout}"
    );
    // The effective rules, defaults filled in, in words.
    assert!(
        stdout.contains("rule 1 `quran` match `quran:*`: ttl 7days added to writes that set none"),
        "{stdout}"
    );
}

#[test]
fn the_upstream_password_is_never_printed_or_logged() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret-pw"]);
    let port = free_port();
    let cfg = write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"redis://:s3cret-pw@127.0.0.1:{}\"\n[log]\nlevel = \"debug\"\n",
        redis.port()
    ));
    let out = respite()
        .arg("check")
        .arg("--config")
        .arg(cfg.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(printed.contains("127.0.0.1"), "{printed}");
    assert!(
        !printed.contains("s3cret-pw"),
        "check printed the password: {printed}"
    );

    let mut child = respite()
        .arg("--config")
        .arg(cfg.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut client = None;
    assert!(wait_until(Duration::from_secs(10), || {
        client = Client::try_connect(addr).ok();
        client.is_some()
    }));
    assert_eq!(client.unwrap().call(&["SET", "k", "v"]), b"+OK\r\n");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let logged =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(logged.contains("respite listening"), "{logged}");
    assert!(
        !logged.contains("s3cret-pw"),
        "the log holds the password: {logged}"
    );
}

#[test]
fn explain_names_the_rule_of_each_key() {
    let cfg = write_config(include_str!("../proxy.toml"));
    let out = respite()
        .arg("explain")
        .arg("--config")
        .arg(cfg.path())
        .args(["quran:2:255", "nothing:here"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("quran:2:255: namespace `quran` (rule 1")
            && lines[0].contains("cached in L1"),
        "{stdout}"
    );
    assert_eq!(lines[1], "nothing:here: no rule: passed through unchanged");
    let missing = respite()
        .arg("explain")
        .arg("--config")
        .arg(cfg.path())
        .output()
        .unwrap();
    assert!(!missing.status.success(), "keys are required");
}

#[test]
fn environment_overrides_listen_and_upstream() {
    let redis = RedisServer::start();
    let port = free_port();
    // The file points nowhere useful; the environment wins.
    let cfg = write_config(
        "[server]\nlisten = \"127.0.0.1:1\"\n[upstream]\nurl = \"redis://127.0.0.1:1\"\n",
    );
    let (mut child, mut client) = spawn_ready(
        respite()
            .arg("--config")
            .arg(cfg.path())
            .env("RESPITE_LISTEN", format!("127.0.0.1:{port}"))
            .env("RESPITE_UPSTREAM", redis.url()),
        port,
    );
    assert_eq!(client.call(&["SET", "env", "yes"]), b"+OK\r\n");
    assert_eq!(redis.client().call(&["GET", "env"]), b"$3\r\nyes\r\n");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits() {
    let redis = RedisServer::start();
    // A hop that shows when the proxy has sent a request to Redis (a CLIENT LIST
    // cannot: Redis answers nothing while DEBUG SLEEP runs, so it would only reply,
    // `cmd=debug`, once the sleep is over and its reply on its way).
    let hop = FaultProxy::start(redis.addr());
    let port = free_port();
    let cfg = write_config(&format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"5s\"\n[upstream]\nurl = \"{}\"\n",
        hop.url()
    ));
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let (mut child, mut client) = spawn_ready(respite().arg("--config").arg(cfg.path()), port);
    // A request Redis takes 500 ms to answer is in flight when SIGTERM arrives.
    client.send(&["DEBUG", "SLEEP", "0.5"]);
    assert!(
        hop.wait_seen(b"SLEEP", Duration::from_secs(5)),
        "DEBUG SLEEP never reached Redis"
    );
    let started = Instant::now();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // New connections are refused once shutdown started, while the in-flight request
    // still runs (its reply is read below) and the process is still draining.
    let refused = wait_until(Duration::from_millis(400), || {
        Client::try_connect(addr).is_err()
    });
    assert!(refused, "new connections still accepted after SIGTERM");
    assert!(
        child.try_wait().unwrap().is_none(),
        "respite exited before its in-flight request was answered"
    );
    assert_eq!(
        client.read_reply(),
        b"+OK\r\n",
        "in-flight reply lost on shutdown"
    );
    assert!(
        client.closed_within(Duration::from_secs(5)),
        "connection not closed after drain"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // And still refused after the exit.
    assert!(Client::try_connect(addr).is_err());
}
