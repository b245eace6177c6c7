//! Differential scripts: the same steps run straight against Redis and through the
//! proxy, on fresh connections and a flushed server each time; the replies must be the
//! same bytes.
//!
//! Script text has one command per line, arguments split on spaces; `"…"` quotes an
//! argument and understands `\r \n \t \\ \" \xHH`. Markers before the command:
//! `@N` runs it on connection N (0 by default), `~` compares the reply with every
//! aggregate sorted (for replies whose order Redis leaves open), `mask:F` hides the
//! value of field `F` in a map reply (HELLO's `id`). `#` starts a comment line.

use std::{net::SocketAddr, time::Duration};

use super::{
    Stack,
    client::{Client, ReadError},
    resp::{self, show, show_command},
};

/// When set, the direct run's replies are printed (to review what a script checks).
pub const SHOW_ENV: &str = "RESPITE_TEST_SHOW_REPLIES";

#[derive(Debug, Clone)]
pub enum Norm {
    Exact,
    Unordered,
    Mask(String),
}

#[derive(Debug, Clone)]
pub enum Step {
    Cmd {
        conn: usize,
        args: Vec<Vec<u8>>,
        norm: Norm,
    },
    /// Bytes written as they are, then this many replies read.
    Raw {
        conn: usize,
        bytes: Vec<u8>,
        replies: usize,
    },
    /// All commands written with one write, then all replies read.
    Pipeline {
        conn: usize,
        cmds: Vec<(Vec<Vec<u8>>, Norm)>,
    },
    /// Records whether the server closes the connection.
    Eof { conn: usize },
}

#[derive(Debug, Clone, Default)]
pub struct Script {
    pub name: String,
    pub steps: Vec<Step>,
}

/// What one step produced: a label and the (normalised) reply or what happened instead.
#[derive(Debug, Clone)]
struct Entry {
    label: String,
    outcome: Result<Vec<u8>, String>,
}

impl Script {
    pub fn new(name: &str) -> Script {
        Script {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    /// Appends the commands of a script text (see the module docs).
    pub fn text(mut self, text: &str) -> Script {
        for (conn, args, norm) in parse_text(&self.name, text) {
            self.steps.push(Step::Cmd { conn, args, norm });
        }
        self
    }

    /// Writes all commands of a script text on connection 0 with one write, then
    /// reads all replies (`~` and `mask:` apply; `@N` is ignored).
    pub fn pipeline_text(mut self, text: &str) -> Script {
        let cmds = parse_text(&self.name, text)
            .into_iter()
            .map(|(_, args, norm)| (args, norm))
            .collect();
        self.steps.push(Step::Pipeline { conn: 0, cmds });
        self
    }

    pub fn cmd<A: AsRef<[u8]>>(self, args: &[A]) -> Script {
        self.cmd_with(0, Norm::Exact, args)
    }

    pub fn cmd_with<A: AsRef<[u8]>>(mut self, conn: usize, norm: Norm, args: &[A]) -> Script {
        self.steps.push(Step::Cmd {
            conn,
            args: args.iter().map(|a| a.as_ref().to_vec()).collect(),
            norm,
        });
        self
    }

    pub fn raw(mut self, bytes: &[u8], replies: usize) -> Script {
        self.steps.push(Step::Raw {
            conn: 0,
            bytes: bytes.to_vec(),
            replies,
        });
        self
    }

    pub fn pipeline(mut self, cmds: Vec<Vec<Vec<u8>>>) -> Script {
        let cmds = cmds.into_iter().map(|c| (c, Norm::Exact)).collect();
        self.steps.push(Step::Pipeline { conn: 0, cmds });
        self
    }

    pub fn expect_eof(mut self) -> Script {
        self.steps.push(Step::Eof { conn: 0 });
        self
    }
}

/// Runs `script` against Redis, then through the proxy, and panics with a readable
/// diff if any reply differs.
pub fn assert_same(stack: &Stack, script: &Script) {
    let mut admin = stack.direct();
    reset(&mut admin);
    let direct = run(stack.redis.addr(), script);
    if std::env::var_os(SHOW_ENV).is_some() {
        for e in &direct {
            eprintln!("{}\n    -> {}", e.label, render(&e.outcome));
        }
    }
    reset(&mut admin);
    let proxied = run(stack.proxy.addr(), script);
    compare(script, &direct, &proxied);
}

/// Empties every db and the script and function caches.
pub fn reset(admin: &mut Client) {
    for cmd in ["FLUSHALL", "SCRIPT FLUSH", "FUNCTION FLUSH"] {
        let reply = admin.cmd(cmd);
        assert!(reply == b"+OK\r\n", "{cmd}: {}", show(&reply));
    }
}

fn run(addr: SocketAddr, script: &Script) -> Vec<Entry> {
    let mut conns: Vec<Option<Client>> = Vec::new();
    let mut entries = Vec::new();
    let mut failed = false;
    for (i, step) in script.steps.iter().enumerate() {
        let labels = labels(i, step);
        if failed {
            entries.extend(labels.into_iter().map(|label| Entry {
                label,
                outcome: Err("not run (an earlier step failed)".into()),
            }));
            continue;
        }
        let client = connection(&mut conns, step_conn(step), addr);
        for (label, outcome) in labels.into_iter().zip(run_step(client, step)) {
            failed |= outcome.is_err();
            entries.push(Entry { label, outcome });
        }
    }
    entries
}

/// Connection `c` of this run, opened on first use.
fn connection(conns: &mut Vec<Option<Client>>, c: usize, addr: SocketAddr) -> &mut Client {
    if conns.len() <= c {
        conns.resize_with(c + 1, || None);
    }
    conns[c].get_or_insert_with(|| Client::connect(addr))
}

fn step_conn(step: &Step) -> usize {
    match step {
        Step::Cmd { conn, .. }
        | Step::Raw { conn, .. }
        | Step::Pipeline { conn, .. }
        | Step::Eof { conn } => *conn,
    }
}

fn labels(i: usize, step: &Step) -> Vec<String> {
    match step {
        Step::Cmd { conn, args, .. } => {
            vec![format!("step {i} [conn {conn}] {}", show_command(args))]
        }
        Step::Raw {
            conn,
            bytes,
            replies,
        } => (0..*replies)
            .map(|r| format!("step {i} [conn {conn}] raw {} (reply {r})", show(bytes)))
            .collect(),
        Step::Pipeline { conn, cmds } => cmds
            .iter()
            .enumerate()
            .map(|(j, (c, _))| {
                format!("step {i} [conn {conn}] pipelined #{j}: {}", show_command(c))
            })
            .collect(),
        Step::Eof { conn } => vec![format!("step {i} [conn {conn}] connection closed?")],
    }
}

/// One outcome per label of the step.
fn run_step(client: &mut Client, step: &Step) -> Vec<Result<Vec<u8>, String>> {
    let read = |client: &mut Client| client.try_read_reply().map_err(|e| e.to_string());
    match step {
        Step::Cmd { args, norm, .. } => {
            client.send(args);
            vec![read(client).map(|r| normalise(&r, norm))]
        }
        Step::Raw { bytes, replies, .. } => {
            client.send_raw(bytes);
            (0..*replies).map(|_| read(client)).collect()
        }
        Step::Pipeline { cmds, .. } => {
            let bytes: Vec<u8> = cmds
                .iter()
                .flat_map(|(c, _)| resp::encode_command(c))
                .collect();
            client.send_raw(&bytes);
            cmds.iter()
                .map(|(_, norm)| read(client).map(|r| normalise(&r, norm)))
                .collect()
        }
        Step::Eof { .. } => {
            client.set_read_timeout(Duration::from_secs(2));
            let outcome = match client.try_read_reply() {
                Err(ReadError::Closed(_)) => Ok(b"<closed>".to_vec()),
                Err(ReadError::TimedOut) => Ok(b"<still open>".to_vec()),
                Err(e) => Err(e.to_string()),
                Ok(reply) => Ok([b"<unexpected reply> ".as_slice(), &reply].concat()),
            };
            vec![outcome]
        }
    }
}

fn normalise(reply: &[u8], norm: &Norm) -> Vec<u8> {
    match norm {
        Norm::Exact => reply.to_vec(),
        Norm::Unordered => resp::decode(reply).sorted().encode(),
        Norm::Mask(field) => resp::decode(reply).masked(field).encode(),
    }
}

fn compare(script: &Script, direct: &[Entry], proxied: &[Entry]) {
    assert!(
        direct.len() == proxied.len(),
        "runs of {} differ in length",
        script.name
    );
    let mut report = Vec::new();
    let mut mismatches = 0;
    for (d, p) in direct.iter().zip(proxied) {
        if d.outcome == p.outcome {
            continue;
        }
        mismatches += 1;
        if report.len() < 12 {
            report.push(format!(
                "{}\n    redis: {}\n    proxy: {}{}",
                d.label,
                render(&d.outcome),
                render(&p.outcome),
                first_difference(&d.outcome, &p.outcome)
            ));
        }
    }
    if let Some(e) = direct.iter().find(|e| e.outcome.is_err()) {
        panic!(
            "script {}: the direct run against Redis itself failed at {}: {:?} — the script is wrong",
            script.name, e.label, e.outcome
        );
    }
    assert!(
        mismatches == 0,
        "script {}: {mismatches} of {} replies differ between Redis and the proxy:\n{}",
        script.name,
        direct.len(),
        report.join("\n")
    );
}

fn render(outcome: &Result<Vec<u8>, String>) -> String {
    match outcome {
        Ok(bytes) => show(bytes),
        Err(e) => format!("<{e}>"),
    }
}

fn first_difference(a: &Result<Vec<u8>, String>, b: &Result<Vec<u8>, String>) -> String {
    let (Ok(a), Ok(b)) = (a, b) else {
        return String::new();
    };
    if a.len() <= 300 && b.len() <= 300 {
        return String::new();
    }
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let window = |v: &[u8]| show(&v[at.saturating_sub(16).min(v.len())..(at + 48).min(v.len())]);
    format!(
        "\n    lengths {} vs {}, first difference at byte {at}: redis {} proxy {}",
        a.len(),
        b.len(),
        window(a),
        window(b)
    )
}

/// The arguments of one command line, split and unquoted as in script texts.
pub fn args(line: &str) -> Vec<Vec<u8>> {
    tokenize(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// Lines of a script text as (connection, arguments, normalisation).
fn parse_text(name: &str, text: &str) -> Vec<(usize, Vec<Vec<u8>>, Norm)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut tokens =
            tokenize(line).unwrap_or_else(|e| panic!("{name} line {}: {e}: {line}", n + 1));
        let (mut conn, mut norm) = (0, Norm::Exact);
        while let Some(first) = tokens.first() {
            let t = String::from_utf8_lossy(first).into_owned();
            if let Some(c) = t.strip_prefix('@') {
                conn = c.parse().expect("@N connection index");
            } else if t == "~" {
                norm = Norm::Unordered;
            } else if let Some(f) = t.strip_prefix("mask:") {
                norm = Norm::Mask(f.into());
            } else {
                break;
            }
            tokens.remove(0);
        }
        out.push((conn, tokens, norm));
    }
    out
}

fn tokenize(line: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        let mut tok = Vec::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unbalanced quote".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('r') => tok.push(b'\r'),
                        Some('n') => tok.push(b'\n'),
                        Some('t') => tok.push(b'\t'),
                        Some('x') => {
                            let hex: String = chars.by_ref().take(2).collect();
                            let b = u8::from_str_radix(&hex, 16)
                                .map_err(|_| format!("bad \\x{hex}"))?;
                            tok.push(b);
                        }
                        Some(c) => tok.extend_from_slice(c.to_string().as_bytes()),
                        None => return Err("dangling backslash".into()),
                    },
                    Some(c) => tok.extend_from_slice(c.to_string().as_bytes()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                tok.extend_from_slice(c.to_string().as_bytes());
                chars.next();
            }
        }
        out.push(tok);
    }
}
