//! `respite top --addr …`: the live view against a real proxy, piped (plain blocks of
//! lines, one per refresh) and on a pseudo-terminal made by util-linux `script`
//! (drawn on the alternate screen, `q` quits at once).

mod support;

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use support::{
    Stack,
    admin::wait_stat,
    l1::{stat_int, wait_tracking},
};

/// Two cached namespaces: `c` gets traffic, `idle` none.
const CACHED: &str = r#"
[[namespace]]
name = "c"
match = "c:*"
l1 = true
l1_ttl = "1h"

[[namespace]]
name = "idle"
match = "idle:*"
l1 = true
"#;

/// A stack where namespace `c` has had 1 L1 miss and 3 hits (75.0%).
fn stack_with_hits() -> Stack {
    let stack = Stack::start_with(CACHED);
    stack.direct().assert_cmd("SET c:k v", b"+OK\r\n");
    let mut c = stack.client();
    wait_tracking(&mut c, "up", Duration::from_secs(5));
    // Written straight to Redis: the first read through the proxy fills L1.
    c.assert_cmd("GET c:k", b"$1\r\nv\r\n");
    wait_stat(&mut c, "ns:c:l1_entries", "1", Duration::from_secs(5));
    for _ in 0..3 {
        c.assert_cmd("GET c:k", b"$1\r\nv\r\n");
    }
    assert_eq!(stat_int(&mut c, "ns:c:l1_misses"), 1);
    assert_eq!(stat_int(&mut c, "ns:c:l1_hits"), 3);
    stack
}

/// Kills the child when the test ends early.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's exit status, if it exits within `within`.
fn exits_within(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let mut status = None;
    support::wait_until(within, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    status
}

/// The next block of lines (up to an empty line), None at the end of the output.
fn block(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("read stdout");
        if line.is_empty() {
            return Some(out);
        }
        out.push(line);
    }
    (!out.is_empty()).then_some(out)
}

/// The row of namespace `ns` in a block, split into cells.
fn row(block: &[String], ns: &str) -> Vec<String> {
    block
        .iter()
        .find(|l| l.split_whitespace().next() == Some(ns))
        .unwrap_or_else(|| panic!("no row for {ns} in:\n{}", block.join("\n")))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn piped_output_is_one_plain_block_per_refresh() {
    let stack = stack_with_hits();
    let addr = stack.proxy.addr().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_respite"))
        .args(["top", "--addr", &addr, "-n", "2", "--interval", "2s"])
        .env_remove("RESPITE_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run respite top");
    let mut child = Reaped(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();

    let first = block(&mut lines).expect("a first block");
    let text = first.join("\n");
    assert!(
        !text.contains('\x1b'),
        "escape codes in plain output:\n{text}"
    );
    assert!(
        first[0].contains("respite top") && first[0].contains(&addr),
        "{text}"
    );
    assert!(
        text.contains("upstream up") && text.contains("tracking up"),
        "{text}"
    );
    let header = row(&first, "namespace");
    assert_eq!(header[1..4], ["ops/s", "l1", "hit%"], "{text}");
    // First block: since start, 3 hits out of 4.
    assert_eq!(row(&first, "c")[2], "75.0%", "{text}");
    assert_eq!(row(&first, "idle")[2], "-", "{text}");

    // Only hits before the next refresh: 100% over that interval.
    let mut c = stack.client();
    for _ in 0..4 {
        c.assert_cmd("GET c:k", b"$1\r\nv\r\n");
    }
    let second = block(&mut lines).expect("a second block");
    assert_eq!(row(&second, "c")[2], "100.0%", "{}", second.join("\n"));
    row(&second, "idle");
    assert!(block(&mut lines).is_none(), "more than 2 refreshes");
    let status = exits_within(&mut child.0, Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn unreachable_proxy_fails_at_once() {
    let stack = Stack::start();
    let addr = stack.proxy.addr().to_string();
    drop(stack);
    let out = Command::new(env!("CARGO_BIN_EXE_respite"))
        .args(["top", "--addr", &addr, "-n", "1"])
        .output()
        .expect("run respite top");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
}

/// Runs `cmd` under `script` (a pseudo-terminal), its output read into a channel.
fn in_pseudo_terminal(cmd: &str) -> (Reaped, mpsc::Receiver<Vec<u8>>) {
    let child = Command::new("script")
        .args(["-qfec", cmd, "/dev/null"])
        .env_remove("RESPITE_ADMIN_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run script");
    let mut child = Reaped(child);
    let mut stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads output into `seen` until it contains every one of `wanted`.
fn read_until(rx: &mpsc::Receiver<Vec<u8>>, seen: &mut Vec<u8>, wanted: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !wanted
        .iter()
        .all(|w| String::from_utf8_lossy(seen).contains(w))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => panic!("{wanted:?} not drawn:\n{:?}", String::from_utf8_lossy(seen)),
        }
    }
}

/// The text printed between escape sequences (`ESC [ params letter`).
fn printed(screen: &str) -> Vec<String> {
    screen
        .split('\x1b')
        .filter_map(|s| {
            let s = s.strip_prefix('[')?;
            let params = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';' || c == '?');
            let text = params.get(1..)?;
            (!text.is_empty()).then(|| text.to_owned())
        })
        .collect()
}

#[test]
fn on_a_terminal_q_quits_at_once() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed (no pseudo-terminal)");
        return;
    }
    let stack = stack_with_hits();
    // A long interval: only the key can end it promptly.
    let cmd = format!(
        "'{}' top --addr {} --interval 60s",
        env!("CARGO_BIN_EXE_respite"),
        stack.proxy.addr()
    );
    let (mut child, rx) = in_pseudo_terminal(&cmd);
    let mut seen = Vec::new();
    read_until(&rx, &mut seen, &["75.0%", "idle", "upstream up", "q quits"]);
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(
        text.contains("\x1b[?1049h"),
        "no alternate screen: {text:?}"
    );
    let rows = printed(&text);
    assert_eq!(row(&rows, "c")[2], "75.0%", "{rows:#?}");
    assert_eq!(row(&rows, "idle")[2], "-", "{rows:#?}");

    let stdin = child.0.stdin.as_mut().expect("stdin");
    stdin.write_all(b"q").expect("send q");
    stdin.flush().expect("flush");
    let status = exits_within(&mut child.0, Duration::from_secs(5)).expect("q did not quit");
    assert!(status.success(), "{status:?}");
    seen.extend(rx.iter().flatten());
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("\x1b[?1049l"),
        "screen not restored: {text:?}"
    );
}
