//! Real Redis clients against the proxy: `redis-cli` (plain, `--pipe`, RESP3) and
//! `redis-benchmark` with and without pipelining. Skipped, with a note, only when the
//! binaries are not installed (CI installs redis-tools).

mod support;

use std::{
    io::{Read, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{Stack, resp::encode_command};

struct Output {
    success: bool,
    stdout: String,
    stderr: String,
}

fn installed(bin: &str) -> bool {
    let found = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("SKIPPED: `{bin}` is not installed (apt-get install redis-tools)");
    }
    found
}

/// Runs `bin args`, feeding `stdin`, and kills it if it is still running after `limit`.
fn run(bin: &str, args: &[&str], stdin: &[u8], limit: Duration) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = feeder.join();
    let stdout = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let Some(status) = status else {
        panic!(
            "{bin} {args:?} still running after {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
    };
    Output {
        success: status.success(),
        stdout,
        stderr,
    }
}

fn cli(port: u16, args: &[&str]) -> Output {
    let port = port.to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port];
    all.extend_from_slice(args);
    run("redis-cli", &all, b"", Duration::from_secs(20))
}

fn cli_ok(port: u16, args: &[&str]) -> String {
    let out = cli(port, args);
    assert!(
        out.success,
        "redis-cli {args:?} failed: {}{}",
        out.stdout, out.stderr
    );
    out.stdout
}

#[test]
fn redis_cli_basic_commands() {
    if !installed("redis-cli") {
        return;
    }
    let stack = Stack::start();
    let port = stack.proxy.port();
    assert_eq!(cli_ok(port, &["PING"]), "PONG\n");
    assert_eq!(cli_ok(port, &["SET", "cli:k", "hello world"]), "OK\n");
    assert_eq!(cli_ok(port, &["GET", "cli:k"]), "hello world\n");
    assert_eq!(cli_ok(port, &["INCRBY", "cli:n", "5"]), "5\n");
    assert_eq!(cli_ok(port, &["RPUSH", "cli:l", "a", "b"]), "2\n");
    assert_eq!(cli_ok(port, &["LRANGE", "cli:l", "0", "-1"]), "a\nb\n");
    let err = cli(port, &["NOSUCHCOMMAND"]);
    assert!(
        err.stdout.contains("ERR unknown command") || err.stderr.contains("ERR unknown command"),
        "unknown command through redis-cli: {}{}",
        err.stdout,
        err.stderr
    );
    // Written through the proxy, visible in Redis.
    stack
        .direct()
        .assert_cmd("GET cli:k", b"$11\r\nhello world\r\n");
}

#[test]
fn redis_cli_pipe_mode() {
    if !installed("redis-cli") {
        return;
    }
    let stack = Stack::start();
    let n = 5000;
    let mut input = Vec::new();
    for i in 0..n {
        input.extend(encode_command(&[
            "SET",
            &format!("pipe:{i}"),
            &format!("value-{i}"),
        ]));
    }
    for _ in 0..n {
        input.extend(encode_command(&["INCR", "pipe:counter"]));
    }
    let port = stack.proxy.port().to_string();
    let out = run(
        "redis-cli",
        &["-h", "127.0.0.1", "-p", &port, "--pipe"],
        &input,
        Duration::from_secs(30),
    );
    assert!(
        out.success,
        "redis-cli --pipe failed:\n{}{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stdout
            .contains(&format!("errors: 0, replies: {}", 2 * n)),
        "redis-cli --pipe summary:\n{}{}",
        out.stdout,
        out.stderr
    );
    let mut direct = stack.direct();
    direct.assert_cmd("GET pipe:4999", b"$10\r\nvalue-4999\r\n");
    direct.assert_cmd("GET pipe:counter", b"$4\r\n5000\r\n");
    direct.assert_cmd("DBSIZE", b":5001\r\n");
}

#[test]
fn redis_cli_resp3_output_matches_direct() {
    if !installed("redis-cli") {
        return;
    }
    let stack = Stack::start();
    let mut direct = stack.direct();
    direct.cmd("HSET r3:h f1 v1 f2 v2");
    direct.cmd("ZADD r3:z 1.5 m");
    direct.cmd("SADD r3:s only");
    let commands: &[&[&str]] = &[
        &["HGETALL", "r3:h"],
        &["ZSCORE", "r3:z", "m"],
        &["ZRANGE", "r3:z", "0", "-1", "WITHSCORES"],
        &["SMEMBERS", "r3:s"],
        &["GET", "r3:nope"],
        &["CONFIG", "GET", "maxmemory"],
        &["ECHO", "resp3"],
    ];
    for args in commands {
        let mut all = vec!["-3", "--no-raw"];
        all.extend_from_slice(args);
        let proxied = cli_ok(stack.proxy.port(), &all);
        let expected = cli_ok(stack.redis.port(), &all);
        assert_eq!(proxied, expected, "redis-cli -3 {args:?}");
    }
    // The replies really are RESP3 types, not RESP2 rendered alike.
    let score = cli_ok(
        stack.proxy.port(),
        &["-3", "--no-raw", "ZSCORE", "r3:z", "m"],
    );
    assert_eq!(score.trim(), "(double) 1.5", "ZSCORE over RESP3");
    let map = cli_ok(stack.proxy.port(), &["-3", "--no-raw", "HGETALL", "r3:h"]);
    assert!(
        map.contains("1# \"f1\" => \"v1\""),
        "HGETALL over RESP3:\n{map}"
    );
}

/// Runs redis-benchmark against the proxy and checks every test reported a rate
/// and nothing reported an error.
fn benchmark(pipeline: &str) {
    if !installed("redis-benchmark") {
        return;
    }
    let stack = Stack::start();
    let port = stack.proxy.port().to_string();
    let args = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-q",
        "-n",
        "20000",
        "-t",
        "set,get,lpush,lpop,incr",
        "-P",
        pipeline,
    ];
    let out = run("redis-benchmark", &args, b"", Duration::from_secs(120));
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(out.success, "redis-benchmark {args:?} failed:\n{all}");
    assert!(
        !all.to_lowercase().contains("error"),
        "redis-benchmark -P {pipeline} reported errors:\n{all}"
    );
    // With -q each test ends with "NAME: <rps> requests per second, p50=…"; progress
    // lines before it are separated by carriage returns.
    let results: Vec<(String, f64)> = all
        .split(['\r', '\n'])
        .filter_map(|line| {
            let (name, rest) = line.split_once(": ")?;
            let rps = rest
                .strip_suffix(" requests per second")
                .or_else(|| rest.split_once(" requests per second").map(|(r, _)| r))?;
            Some((name.trim().to_string(), rps.trim().parse().ok()?))
        })
        .collect();
    for test in ["SET", "GET", "LPUSH", "LPOP", "INCR"] {
        let rate = results
            .iter()
            .find(|(name, _)| name == test)
            .map(|(_, r)| *r);
        assert!(
            rate.is_some_and(|r| r > 0.0),
            "redis-benchmark -P {pipeline}: no rate for {test}:\n{all}"
        );
    }
    eprintln!("redis-benchmark -P {pipeline} through respite: {results:?}");
    // The counters really moved in Redis.
    let reply = stack.direct().cmd("GET counter:__rand_int__");
    assert!(
        reply.starts_with(b"$"),
        "INCR counter: {}",
        support::show(&reply)
    );
}

#[test]
fn redis_benchmark_without_pipelining() {
    benchmark("1");
}

#[test]
fn redis_benchmark_with_pipelining() {
    benchmark("16");
}
