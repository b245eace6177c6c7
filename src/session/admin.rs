//! `RESPITE <subcommand>`: the proxy's own commands. Short ones are answered here;
//! DELPATTERN and WARM run as tasks (see [`crate::admin`]) whose reply is queued like
//! an upstream reply, without a timeout, so this client's later replies stay in order
//! and every other client keeps being served meanwhile.
//!
//! Access: `[admin] enabled = false` refuses every subcommand but HELP with
//! `-NOPERM`; with `[admin] password` set, a connection must first send
//! `RESPITE AUTH <password>`.

use std::{future::Future, sync::Arc, sync::atomic::Ordering::Relaxed};

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tracing::{Instrument, info};

use super::{Pending, Session};
use crate::{
    admin::{
        OpKind, Progress,
        delete::{DeleteJob, delete_pattern},
        warm::{self, WarmJob},
    },
    l1::EntryKey,
    metrics::NamespaceStats,
    protocol::{reply, request::Request},
    server::Shared,
    error::Error,
    upstream::{PoolKey, Reply},
};

/// Largest `COUNT` DELPATTERN and WARM take.
const MAX_COUNT: usize = 100_000;

impl Session {
    /// Answers a `RESPITE …` command (or queues the reply of a long one).
    pub(super) fn admin(&mut self, req: &Request) {
        let sub = req.args.get(1).map(|s| s.to_ascii_uppercase());
        let n = req.args.len();
        let frame = match sub.as_deref() {
            None => reply::error("wrong number of arguments for 'respite' command"),
            Some(b"HELP") => help(),
            Some(_) if !self.shared.config.admin.enabled => {
                reply::error("NOPERM respite admin commands are disabled ([admin] enabled = false)")
            }
            Some(b"AUTH") if n == 3 => self.admin_auth(&req.args[2]),
            Some(_) if !self.admin_ok => {
                reply::error("NOPERM respite admin commands need RESPITE AUTH <password> first")
            }
            Some(b"STATS") if n == 2 => self.stats(),
            Some(b"PROGRESS") if n == 2 => self.progress(),
            Some(b"FLUSHL1") if n <= 3 => self.flush_l1(req.args.get(2)),
            Some(b"EXPLAIN") if n == 3 => {
                reply::bulk(self.shared.policy.load().explain(&req.args[2]).as_bytes())
            }
            Some(b"RELOAD") if n == 2 => match crate::reload::reload(&self.shared) {
                Ok(summary) => reply::bulk(format!("reloaded: {summary}").as_bytes()),
                Err(e) => reply::error(&format!("reload refused, the previous rules stay: {e}")),
            },
            Some(b"DELPATTERN") if n >= 3 => return self.delpattern(req),
            Some(b"WARM") if n >= 3 => return self.warm(req),
            Some(_) => reply::error(&format!(
                "unknown subcommand or wrong number of arguments for 'respite|{}'. Try RESPITE HELP.",
                String::from_utf8_lossy(&req.args[1]).to_lowercase()
            )),
        };
        self.reply(frame);
    }

    fn admin_auth(&mut self, given: &[u8]) -> Bytes {
        let Some(password) = &self.shared.config.admin.password else {
            return reply::error(
                "ERR RESPITE AUTH <password> called without any [admin] password configured",
            );
        };
        if constant_time_eq(password.as_bytes(), given) {
            self.admin_ok = true;
            Bytes::from_static(reply::OK)
        } else {
            reply::error("WRONGPASS invalid respite admin password")
        }
    }

    fn stats(&self) -> Bytes {
        let shared = &self.shared;
        let admin = &shared.admin;
        let policy = shared.policy.load();
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut field = |k: &str, v: String| fields.push((k.to_owned(), v));
        let up = |on: bool, up: bool| match (on, up) {
            (false, _) => "off",
            (true, true) => "up",
            (true, false) => "down",
        };
        field("upstream", up(true, shared.upstream.is_up()).into());
        let tracking = match &shared.tracking {
            None => "off",
            Some(t) if t.is_idle() => "idle",
            Some(t) if t.is_up() => "up",
            _ => "down",
        };
        field("tracking", tracking.into());
        let (reloads_ok, reloads_failed) = shared.metrics.reloads.counts();
        field("config_reloads_ok", reloads_ok.to_string());
        field("config_reloads_failed", reloads_failed.to_string());
        field(
            "invalidation_channel",
            up(
                admin.listener_on.load(Relaxed),
                admin.listener_up.load(Relaxed),
            )
            .into(),
        );
        field("uptime_seconds", admin.uptime().as_secs().to_string());
        field("clients", shared.metrics.clients.connected().to_string());
        field("warming", shared.warming.load(Relaxed).to_string());
        field("operations", admin.running().len().to_string());
        if let Some(addr) = shared.metrics.endpoint() {
            field("metrics_listen", addr.to_string());
        }
        {
            let l1 = &shared.l1;
            let s = &l1.stats;
            let namespaces = &shared.metrics.namespaces;
            let (hits, misses) = (
                namespaces.sum(NamespaceStats::hits),
                namespaces.sum(NamespaceStats::misses),
            );
            let ratio = hits as f64 / (hits + misses).max(1) as f64;
            field("l1_entries", l1.entries().to_string());
            field("l1_bytes", l1.bytes().to_string());
            field("l1_max_bytes", l1.max_bytes().to_string());
            field("l1_hits", hits.to_string());
            field("l1_misses", misses.to_string());
            field("l1_hit_ratio", format!("{ratio:.4}"));
            field("l1_coalesced", s.coalesced.load(Relaxed).to_string());
            field(
                "l1_stale",
                namespaces.sum(NamespaceStats::stale).to_string(),
            );
            field(
                "l1_fills_dropped",
                s.fills_dropped.load(Relaxed).to_string(),
            );
            // Per namespace: the counters the metrics export too.
            for rule in policy.rules().iter().filter(|r| r.l1) {
                let ns = &rule.stats;
                let (hits, misses) = (ns.hits(), ns.misses());
                let ratio = hits as f64 / (hits + misses).max(1) as f64;
                let name = &rule.name;
                field(
                    &format!("ns:{name}:l1_entries"),
                    ns.entries.load(Relaxed).max(0).to_string(),
                );
                field(
                    &format!("ns:{name}:l1_bytes"),
                    ns.bytes.load(Relaxed).max(0).to_string(),
                );
                field(&format!("ns:{name}:l1_hits"), hits.to_string());
                field(&format!("ns:{name}:l1_misses"), misses.to_string());
                field(&format!("ns:{name}:l1_hit_ratio"), format!("{ratio:.4}"));
            }
        }
        // Bytes of values given to the compressor and as stored, per namespace.
        for rule in policy.rules() {
            let ns = &rule.stats;
            let (bytes_in, bytes_out) =
                (ns.compress_in.load(Relaxed), ns.compress_out.load(Relaxed));
            if bytes_in > 0 {
                let name = &rule.name;
                field(&format!("compress_{name}_bytes_in"), bytes_in.to_string());
                field(&format!("compress_{name}_bytes_out"), bytes_out.to_string());
            }
        }
        pairs(&fields, self.key.resp3)
    }

    /// The long operations running now: an array of field/value pairs each.
    fn progress(&self) -> Bytes {
        let ops = self.shared.admin.running();
        let mut out = BytesMut::new();
        out.extend_from_slice(format!("*{}\r\n", ops.len()).as_bytes());
        for p in ops {
            out.extend_from_slice(&pairs(&progress_fields(&p), self.key.resp3));
        }
        out.freeze()
    }

    fn flush_l1(&self, namespace: Option<&Bytes>) -> Bytes {
        let Some(name) = namespace else {
            let l1 = &self.shared.l1;
            l1.flush_all();
            l1.stats
                .invalidations
                .add(crate::metrics::InvalidationSource::Flush, 1);
            return Bytes::from_static(reply::OK);
        };
        let policy = self.shared.policy.load();
        if !policy
            .rules()
            .iter()
            .any(|r| r.name.as_bytes() == &name[..])
        {
            return reply::error(&format!(
                "unknown namespace '{}'",
                String::from_utf8_lossy(name)
            ));
        }
        self.shared.l1.remove_where(|_, key| {
            policy
                .lookup(key)
                .is_some_and(|r| r.name.as_bytes() == &name[..])
        });
        Bytes::from_static(reply::OK)
    }

    /// `RESPITE DELPATTERN <glob> [COUNT n]`.
    fn delpattern(&mut self, req: &Request) {
        let (pattern, batch) = match scan_args(req, self.shared.config.admin.batch) {
            Ok(a) => a,
            Err(e) => return self.reply(e),
        };
        let shared = self.shared.clone();
        let key = PoolKey {
            resp3: false,
            ..self.key.clone()
        };
        let op = shared
            .admin
            .begin(OpKind::Delete, &pattern, self.client_name());
        let channel = &shared.config.admin.invalidation_channel;
        let job = DeleteJob {
            pattern,
            batch,
            pause: shared.config.admin.pause,
            db: key.db,
            channel: (!channel.is_empty()).then(|| Bytes::from(channel.clone())),
        };
        self.spawn_op(async move {
            let p = &op.progress;
            let conn = match shared.upstream.dedicated(&key).await {
                Ok(conn) => conn,
                Err(e) => return e.to_reply(),
            };
            match delete_pattern(std::slice::from_ref(&conn), &job, &shared.l1, p).await {
                Ok(n) => {
                    shared.upstream.release(&key, conn);
                    info!(pattern = %p.pattern, deleted = n, elapsed = ?p.started.elapsed(), "pattern deleted");
                    reply::integer(n as i64)
                }
                Err(e) => e.to_reply("DELPATTERN", p.done.load(Relaxed)),
            }
        });
    }

    /// `RESPITE WARM <glob> [COUNT n]`.
    fn warm(&mut self, req: &Request) {
        let (pattern, batch) = match scan_args(req, self.shared.config.admin.batch) {
            Ok(a) => a,
            Err(e) => return self.reply(e),
        };
        let shared = self.shared.clone();
        let key = self.key.clone();
        let op = shared
            .admin
            .begin(OpKind::Warm, &pattern, self.client_name());
        let job = WarmJob {
            pattern,
            batch,
            pause: shared.config.admin.pause,
        };
        self.spawn_op(async move {
            let p = &op.progress;
            match warm::run(&shared, &key, &job, p).await {
                Ok(n) => {
                    info!(pattern = %p.pattern, warmed = n, elapsed = ?p.started.elapsed(), "L1 warmed");
                    reply::integer(n as i64)
                }
                Err(e) => e.to_reply("WARM", p.done.load(Relaxed)),
            }
        });
    }

    /// Runs `op` as a task and queues its reply; the task stops if the client goes
    /// away first (Ctrl-C in the CLI stops a delete).
    fn spawn_op(&mut self, op: impl Future<Output = Bytes> + Send + 'static) {
        let (mut tx, rx) = oneshot::channel::<Reply>();
        let task = async move {
            tokio::select! {
                frame = op => { let _ = tx.send(Ok(frame)); }
                () = tx.closed() => info!("admin operation stopped: its client went away"),
            }
        };
        tokio::spawn(task.instrument(tracing::Span::current()));
        self.await_unbounded(rx);
    }

    fn client_name(&self) -> String {
        self.name
            .as_deref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default()
    }
}

/// `<glob> [COUNT n]` of DELPATTERN and WARM.
fn scan_args(req: &Request, default_count: usize) -> Result<(Bytes, usize), Bytes> {
    match &req.args[2..] {
        [glob] => Ok((glob.clone(), default_count)),
        [glob, count, n] if count.eq_ignore_ascii_case(b"COUNT") => {
            let n = std::str::from_utf8(n)
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| reply::error("value is not an integer or out of range"))?;
            if !(1..=MAX_COUNT).contains(&n) {
                return Err(reply::error(&format!(
                    "ERR COUNT must be between 1 and {MAX_COUNT}"
                )));
            }
            Ok((glob.clone(), n))
        }
        _ => Err(reply::error("syntax error")),
    }
}

fn progress_fields(p: &Progress) -> Vec<(String, String)> {
    [
        ("id", p.id.to_string()),
        ("kind", p.kind.as_str().to_owned()),
        ("pattern", p.pattern.clone()),
        ("client", p.client.clone()),
        ("scanned", format!("{:.4}", p.fraction())),
        ("matched", p.matched.load(Relaxed).to_string()),
        ("done", p.done.load(Relaxed).to_string()),
        ("elapsed_ms", p.started.elapsed().as_millis().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Field/value pairs: a map in RESP3, a flat array in RESP2.
fn pairs(fields: &[(String, String)], resp3: bool) -> Bytes {
    let mut out = BytesMut::new();
    let header = if resp3 {
        format!("%{}\r\n", fields.len())
    } else {
        format!("*{}\r\n", fields.len() * 2)
    };
    out.extend_from_slice(header.as_bytes());
    for (k, v) in fields {
        out.extend_from_slice(&reply::bulk(k.as_bytes()));
        out.extend_from_slice(&reply::bulk(v.as_bytes()));
    }
    out.freeze()
}

/// Compares without returning early, so timing does not tell how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

fn help() -> Bytes {
    let lines = [
        "RESPITE <subcommand> [<arg> ...]. Subcommands are:",
        "AUTH <password>",
        "    Allow this connection the other subcommands ([admin] password).",
        "STATS",
        "    Upstream, L1 (overall and per namespace), clients, uptime, as field/value pairs.",
        "PROGRESS",
        "    The DELPATTERN and WARM operations running now, with how far they got.",
        "EXPLAIN <key>",
        "    Which namespace rule applies to <key>, and what it does.",
        "DELPATTERN <pattern> [COUNT <n>]",
        "    Delete every key matching <pattern> (SCAN + UNLINK, <n> keys per batch) and",
        "    drop them from the L1 of every respite. Replies with the number deleted.",
        "WARM <pattern> [COUNT <n>]",
        "    Read the keys matching <pattern> in cached namespaces into L1, each namespace",
        "    up to its share of max_memory. Replies with the number of keys in L1.",
        "FLUSHL1 [<namespace>]",
        "    Empty this proxy's L1 cache, or only one namespace's entries (Redis is not touched).",
        "RELOAD",
        "    Reload the configuration file (namespace rules apply to the next command).",
        "HELP",
        "    Print this help.",
    ];
    let mut out = BytesMut::new();
    out.extend_from_slice(format!("*{}\r\n", lines.len()).as_bytes());
    for l in lines {
        out.extend_from_slice(&reply::simple(l));
    }
    out.freeze()
}

/// Reads keys through the L1 read path of a session without a client (for WARM): the
/// entries are filled exactly as a client's reads fill them.
pub struct Filler {
    session: Session,
}

impl Filler {
    /// A reader on `key`'s db, as `key`'s user, in `key`'s protocol.
    pub async fn new(shared: Arc<Shared>, key: PoolKey) -> Result<Filler, Error> {
        let pool = shared.upstream.pool(&key).await?;
        let mut session = Session::new(shared);
        session.key = key;
        session.pool = pool;
        session.counted = false;
        Ok(Filler { session })
    }

    pub fn resp3(&self) -> bool {
        self.session.key.resp3
    }

    /// What a read of `key` with signature `sig` is cached under, for this reader.
    pub fn entry_key(&self, key: Bytes, sig: Bytes) -> EntryKey {
        EntryKey::new(self.session.key.db, self.session.l1_scope(), key, sig)
    }

    /// Sends the reads (pipelined) and waits for them all; replies are dropped.
    pub async fn read(&mut self, reads: &[&Request]) {
        let policy = self.session.shared.policy.load();
        for req in reads {
            self.session.cached_read(req, &policy);
        }
        let timeout = self.session.timeout;
        while let Some(pending) = self.session.pending.pop_front() {
            if let Pending::Upstream { rx, .. } = pending {
                let _ = tokio::time::timeout(timeout, rx).await;
            }
        }
        self.session.out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn parses_scan_args() {
        let req = |s: &str| Request::from_args(s.split(' ').map(|a| Bytes::from(a.to_owned())));
        let (g, n) = scan_args(&req("RESPITE DELPATTERN a:* COUNT 50"), 1000).unwrap();
        assert_eq!((&g[..], n), (&b"a:*"[..], 50));
        assert_eq!(
            scan_args(&req("RESPITE DELPATTERN a:*"), 1000).unwrap().1,
            1000
        );
        assert!(scan_args(&req("RESPITE DELPATTERN a:* COUNT 0"), 1000).is_err());
        assert!(scan_args(&req("RESPITE DELPATTERN a:* COUNT x"), 1000).is_err());
        assert!(scan_args(&req("RESPITE DELPATTERN a:* LIMIT 5"), 1000).is_err());
    }
}
