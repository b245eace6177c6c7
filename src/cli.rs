//! The client-side subcommands: `respite stats|delpattern|warm|flush|reload|top
//! --addr host:port [--password …]` send the `RESPITE …` admin commands to a running
//! proxy and print the result for people. Long operations show a progress bar, fed by
//! `RESPITE PROGRESS` polled on a second connection while the first awaits the reply;
//! `top` (in `cli/top.rs`) refreshes a view of `RESPITE STATS`.
//!
//! Exit code 0 on success; 1 with a message on stderr when the proxy cannot be
//! reached or refuses the command.

use std::{
    io::{ErrorKind, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    process::ExitCode,
    time::{Duration, Instant},
};

use bytesize::ByteSize;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub mod top;

/// How long a short command may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the progress bar is refreshed.
const POLL: Duration = Duration::from_millis(200);

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Show a running proxy's upstream, L1 and client counters.
    Stats(Target),
    /// Delete every key matching a Redis glob pattern (SCAN + UNLINK), and drop them
    /// from the L1 of every respite.
    Delpattern {
        pattern: String,
        /// Keys per batch (default: the proxy's `[admin] batch`).
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        target: Target,
    },
    /// Read the keys matching a pattern into the proxy's L1 (cached namespaces only).
    Warm {
        pattern: String,
        /// Keys per SCAN page (default: the proxy's `[admin] batch`).
        #[arg(long)]
        count: Option<usize>,
        #[command(flatten)]
        target: Target,
    },
    /// Empty the proxy's L1, or only one namespace's entries.
    Flush {
        namespace: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Make the proxy re-read its configuration file.
    Reload(Target),
    /// Live view of a running proxy, refreshed every second: per namespace ops/s, hit
    /// ratios, p95 latency, L1 and Redis sizes (q quits).
    Top {
        #[command(flatten)]
        view: top::TopArgs,
        #[command(flatten)]
        target: Target,
    },
}

/// Which proxy to talk to.
#[derive(clap::Args)]
pub struct Target {
    /// The proxy's address (its `server.listen`).
    #[arg(long, env = "RESPITE_ADDR", default_value = "127.0.0.1:6380")]
    pub addr: String,
    /// The proxy's `[admin] password`, if it has one.
    #[arg(long, env = "RESPITE_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// Runs one subcommand; prints the outcome.
pub fn run(cmd: AdminCommand) -> ExitCode {
    let cmd = match cmd {
        AdminCommand::Top { view, target } => {
            let addr = target.addr.clone();
            return top::run(&view, &addr, stats_source(target));
        }
        other => other,
    };
    match execute(cmd) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("respite: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cmd: AdminCommand) -> Result<String, String> {
    match cmd {
        AdminCommand::Stats(t) => {
            let reply = Client::open(&t)?.call(&["RESPITE", "STATS"])?;
            Ok(format_stats(&reply.pairs()?))
        }
        AdminCommand::Delpattern {
            pattern,
            count,
            target,
        } => {
            let started = Instant::now();
            let n = long_operation(&target, "DELPATTERN", &pattern, count)?;
            Ok(format!(
                "deleted {n} keys matching '{pattern}' in {}",
                took(started)
            ))
        }
        AdminCommand::Warm {
            pattern,
            count,
            target,
        } => {
            let started = Instant::now();
            let n = long_operation(&target, "WARM", &pattern, count)?;
            Ok(format!(
                "{n} keys matching '{pattern}' are in L1 (warmed in {})",
                took(started)
            ))
        }
        AdminCommand::Flush { namespace, target } => {
            let mut args = vec!["RESPITE", "FLUSHL1"];
            args.extend(namespace.as_deref());
            Client::open(&target)?.call(&args)?.ok()?;
            Ok(match namespace {
                Some(ns) => format!("L1 entries of namespace '{ns}' dropped"),
                None => "L1 flushed".to_owned(),
            })
        }
        AdminCommand::Reload(t) => {
            Client::open(&t)?.call(&["RESPITE", "RELOAD"])?.ok()?;
            Ok("configuration reloaded".to_owned())
        }
        AdminCommand::Top { .. } => unreachable!("run handles top"),
    }
}

/// `RESPITE STATS` at each call, on one connection, opened again after a failure.
fn stats_source(target: Target) -> impl FnMut() -> top::Fields {
    let mut client: Option<Client> = None;
    move || {
        let c = match &mut client {
            Some(c) => c,
            None => client.insert(Client::open(&target)?),
        };
        let fields = c.call(&["RESPITE", "STATS"]).and_then(|r| r.pairs());
        if fields.is_err() {
            client = None;
        }
        fields
    }
}

/// Sends `RESPITE <sub> <pattern> [COUNT n]` and waits for its integer reply, showing
/// the operation's progress meanwhile.
fn long_operation(
    target: &Target,
    sub: &str,
    pattern: &str,
    count: Option<usize>,
) -> Result<i64, String> {
    let name = format!("respite-cli-{}", std::process::id());
    let mut main = Client::open(target)?;
    main.call(&["CLIENT", "SETNAME", &name])?.ok()?;
    let count = count.map(|c| c.to_string());
    let mut args = vec!["RESPITE", sub, pattern];
    if let Some(c) = &count {
        args.extend(["COUNT", c]);
    }
    main.send(&args)?;
    let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:<28} [{bar:30}] {percent:>3}% {elapsed}")
            .expect("progress template")
            .progress_chars("=> "),
    );
    let mut poller = Client::open(target).ok();
    let reply = loop {
        if let Some(reply) = main.read_within(POLL)? {
            break reply;
        }
        let op = poller
            .as_mut()
            .and_then(|p| p.call(&["RESPITE", "PROGRESS"]).ok())
            .and_then(|r| find_op(&r, &name));
        if let Some(op) = op {
            let get = |k: &str| op.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
            let scanned: f64 = get("scanned").and_then(|v| v.parse().ok()).unwrap_or(0.0);
            bar.set_position((scanned * 1000.0) as u64);
            let verb = if sub == "WARM" { "warmed" } else { "deleted" };
            bar.set_message(format!("{} {verb}", get("done").unwrap_or("0")));
        }
        bar.tick();
    };
    bar.finish_and_clear();
    match reply {
        Value::Int(n) => Ok(n),
        other => Err(other.error_text()),
    }
}

/// The fields of the operation started by the connection named `name`.
fn find_op(reply: &Value, name: &str) -> Option<Vec<(String, String)>> {
    let Value::Array(ops) = reply else {
        return None;
    };
    ops.iter()
        .filter_map(|op| op.pairs().ok())
        .find(|fields| fields.iter().any(|(k, v)| k == "client" && v == name))
}

fn took(started: Instant) -> String {
    let ms = started.elapsed().as_millis() as u64;
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// STATS as aligned lines: sizes in units, uptime as a duration, then a table of the
/// namespaces.
fn format_stats(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut namespaces: Vec<(String, String, String)> = Vec::new();
    for (k, v) in fields {
        if let Some(rest) = k.strip_prefix("ns:") {
            let Some((ns, what)) = rest.rsplit_once(':') else {
                continue;
            };
            let row = match namespaces.iter_mut().find(|r| r.0 == ns) {
                Some(row) => row,
                None => {
                    namespaces.push((ns.to_owned(), String::new(), String::new()));
                    namespaces.last_mut().expect("just pushed")
                }
            };
            match what {
                "l1_entries" => row.1 = v.clone(),
                "l1_bytes" => row.2 = human_bytes(v),
                _ => {}
            }
            continue;
        }
        let shown = if k.ends_with("_bytes") {
            human_bytes(v)
        } else if k == "uptime_seconds" {
            v.parse()
                .map(|s| humantime::format_duration(Duration::from_secs(s)).to_string())
                .unwrap_or_else(|_| v.clone())
        } else {
            v.clone()
        };
        let label = k.strip_suffix("_seconds").unwrap_or(k);
        out.push_str(&format!("{label:<22}{shown}\n"));
    }
    if !namespaces.is_empty() {
        out.push_str(&format!(
            "\n{:<22}{:>12}  {:>12}\n",
            "namespace", "l1 entries", "l1 bytes"
        ));
        for (ns, entries, bytes) in namespaces {
            out.push_str(&format!("{ns:<22}{entries:>12}  {bytes:>12}\n"));
        }
    }
    out.trim_end().to_owned()
}

fn human_bytes(v: &str) -> String {
    v.parse::<u64>()
        .map(|n| ByteSize::b(n).display().iec().to_string())
        .unwrap_or_else(|_| v.to_owned())
}

/// A reply, as far as the admin commands need one.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Error(String),
    Int(i64),
    Null,
    Array(Vec<Value>),
}

impl Value {
    fn ok(self) -> Result<(), String> {
        match self {
            Value::Error(e) => Err(e),
            _ => Ok(()),
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Text(t) | Value::Error(t) => t.clone(),
            Value::Int(n) => n.to_string(),
            Value::Null => String::new(),
            Value::Array(_) => "(array)".to_owned(),
        }
    }

    fn error_text(&self) -> String {
        match self {
            Value::Error(e) => e.clone(),
            other => format!("unexpected reply {other:?}"),
        }
    }

    /// A flat array of field/value pairs.
    fn pairs(&self) -> Result<Vec<(String, String)>, String> {
        match self {
            Value::Array(items) => Ok(items
                .chunks(2)
                .map(|p| (p[0].text(), p.get(1).map(Value::text).unwrap_or_default()))
                .collect()),
            other => Err(other.error_text()),
        }
    }
}

/// Parses one RESP2 reply at the front of `buf`: the value and its length, or None if
/// incomplete.
fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, String> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[1..end]).into_owned();
    let next = end + 2;
    let number = || {
        line.parse::<i64>()
            .map_err(|_| format!("bad reply header {line:?}"))
    };
    let value = match buf.first() {
        Some(b'+') => Value::Text(line),
        Some(b'-') => Value::Error(line),
        Some(b':') => Value::Int(number()?),
        Some(b'_') => Value::Null,
        Some(b'$') => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Value::Null, next)));
            }
            let stop = next + len as usize;
            if buf.len() < stop + 2 {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(&buf[next..stop]).into_owned();
            return Ok(Some((Value::Text(text), stop + 2)));
        }
        Some(b'*') => {
            let n = number()?;
            let mut items = Vec::new();
            let mut at = next;
            for _ in 0..n.max(0) {
                let Some((item, len)) = parse(&buf[at..])? else {
                    return Ok(None);
                };
                items.push(item);
                at += len;
            }
            return Ok(Some((Value::Array(items), at)));
        }
        _ => return Err("unexpected reply from the proxy".to_owned()),
    };
    Ok(Some((value, next)))
}

/// A blocking connection to the proxy, authenticated for the admin commands.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn open(target: &Target) -> Result<Client, String> {
        let cant = |e: &dyn std::fmt::Display| format!("cannot connect to {}: {e}", target.addr);
        let addr = target
            .addr
            .to_socket_addrs()
            .map_err(|e| cant(&e))?
            .next()
            .ok_or_else(|| cant(&"no address"))?;
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| cant(&e))?;
        let _ = stream.set_nodelay(true);
        let mut client = Client {
            stream,
            buf: Vec::new(),
        };
        if let Some(password) = &target.password {
            client.call(&["RESPITE", "AUTH", password])?.ok()?;
        }
        Ok(client)
    }

    fn send(&mut self, args: &[&str]) -> Result<(), String> {
        let mut cmd = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            cmd.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            cmd.extend_from_slice(a.as_bytes());
            cmd.extend_from_slice(b"\r\n");
        }
        self.stream
            .write_all(&cmd)
            .map_err(|e| format!("sending to the proxy: {e}"))
    }

    fn call(&mut self, args: &[&str]) -> Result<Value, String> {
        self.send(args)?;
        self.read_within(TIMEOUT)?
            .ok_or_else(|| format!("no reply within {TIMEOUT:?}"))
    }

    /// The next reply, or None if none is complete within `wait`.
    fn read_within(&mut self, wait: Duration) -> Result<Option<Value>, String> {
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((value, len)) = parse(&self.buf)? {
                self.buf.drain(..len);
                return Ok(Some(value));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the proxy closed the connection".to_owned()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(format!("reading from the proxy: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies() {
        let (v, n) = parse(b"*2\r\n$3\r\nabc\r\n:5\r\n+x").unwrap().unwrap();
        assert_eq!(
            v,
            Value::Array(vec![Value::Text("abc".into()), Value::Int(5)])
        );
        assert_eq!(n, 17);
        assert_eq!(parse(b"$3\r\nab").unwrap(), None);
        assert_eq!(parse(b"*2\r\n:1\r\n").unwrap(), None);
        assert_eq!(
            parse(b"-NOPERM no\r\n").unwrap().unwrap().0,
            Value::Error("NOPERM no".into())
        );
        assert!(parse(b"?\r\n").is_err());
    }

    #[test]
    fn stats_are_human_readable() {
        let fields: Vec<(String, String)> = [
            ("upstream", "up"),
            ("uptime_seconds", "3700"),
            ("l1_bytes", "2097152"),
            ("ns:quran:l1_entries", "12"),
            ("ns:quran:l1_bytes", "4096"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let text = format_stats(&fields);
        assert!(
            text.contains("uptime") && text.contains("1h 1m 40s"),
            "{text}"
        );
        assert!(text.contains("2.0 MiB"), "{text}");
        assert!(text.contains("quran") && text.contains("4.0 KiB"), "{text}");
    }
}
