//! `RESPITE <subcommand>`: the proxy's own commands, for every session (which hands
//! them here through [`AdminCommands`]). Short ones are answered at once; DELPATTERN
//! and WARM run as tasks ([`crate::ops`]) whose reply the session queues like an
//! upstream reply, so the client's later replies stay in order and every other
//! client keeps being served meanwhile.
//!
//! Access ([`Access`], decided once at start): `[admin] enabled = false` refuses every
//! subcommand but HELP with `-NOPERM`; with `[admin] password` set, a connection must
//! first send `RESPITE AUTH <password>` (failures are counted and rate-limited per
//! source address, [`throttle`]); without one, the subcommands are allowed only when
//! every client listener is on loopback.

mod throttle;

use std::{
    future::Future,
    sync::Arc,
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tracing::{Instrument, info, warn};

use crate::{
    config::AdminConfig,
    error::{Error, Reply},
    metrics::InvalidationSource,
    observe::Status,
    ops::{
        OpKind, Progress,
        delete::{DeleteJob, delete_pattern},
        warm::{self, WarmJob, Warmer},
    },
    protocol::{reply, request::Request},
    reload::Reloader,
    session::{AdminAnswer, AdminCaller, AdminCommands},
    upstream::PoolKey,
};

/// Largest `COUNT` DELPATTERN and WARM take.
const MAX_COUNT: usize = 100_000;

/// Who may run the subcommands other than HELP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `[admin] enabled = false`: nobody.
    Disabled,
    /// `[admin] password` is set: a connection that sent `RESPITE AUTH <password>`.
    Password,
    /// No password, and clients can only connect from this host: every client.
    Loopback,
    /// No password, and a client listener reachable from other hosts: nobody.
    Exposed,
}

impl Access {
    /// The access `admin` gives when clients connect on `listeners` (`host:port`).
    pub fn of(admin: &AdminConfig, listeners: &[&str]) -> Access {
        if !admin.enabled {
            Access::Disabled
        } else if admin.password.is_some() {
            Access::Password
        } else if crate::config::loopback_only(listeners.iter().copied()) {
            Access::Loopback
        } else {
            Access::Exposed
        }
    }
}

/// The refusal while [`Access::Exposed`]: what to configure.
const EXPOSED: &str = "NOPERM respite admin commands are refused: clients can connect from other hosts ([server] listen is not 127.0.0.0/8 or ::1) and no [admin] password is set. Set [admin] password (then send RESPITE AUTH <password>), or listen on loopback only";

/// Answers `RESPITE …` for every session.
pub struct Admin {
    pub config: AdminConfig,
    pub access: Access,
    pub status: Arc<Status>,
    pub reloader: Arc<Reloader>,
    pub warmer: Arc<Warmer>,
    throttle: throttle::AuthThrottle,
}

impl AdminCommands for Admin {
    fn call(&self, req: &Request, caller: &AdminCaller) -> AdminAnswer {
        let sub = req.args.get(1).map(|s| s.to_ascii_uppercase());
        let n = req.args.len();
        let locked = self.access == Access::Password && !caller.authenticated;
        let reply = match sub.as_deref() {
            None => Err(Error::refused(
                "wrong number of arguments for 'respite' command",
            )),
            Some(b"HELP") => Ok(help()),
            Some(_) if self.access == Access::Disabled => Err(Error::refused(
                "NOPERM respite admin commands are disabled ([admin] enabled = false)",
            )),
            Some(b"AUTH") if n == 3 => return self.auth(&req.args[2], caller),
            Some(_) if self.access == Access::Exposed => Err(Error::refused(EXPOSED)),
            Some(_) if locked => Err(Error::refused(
                "NOPERM respite admin commands need RESPITE AUTH <password> first",
            )),
            Some(b"STATS") if n == 2 => Ok(pairs(&self.status.stats_fields(), caller.key.resp3)),
            Some(b"PROGRESS") if n == 2 => Ok(self.progress(caller.key.resp3)),
            Some(b"FLUSHL1") if n <= 3 => self.flush_l1(req.args.get(2)),
            Some(b"EXPLAIN") if n == 3 => Ok(reply::bulk(
                self.status
                    .parts
                    .policy
                    .load()
                    .explain(&req.args[2])
                    .as_bytes(),
            )),
            Some(b"RELOAD") if n == 2 => match self.reloader.reload() {
                Ok(summary) => Ok(reply::bulk(format!("reloaded: {summary}").as_bytes())),
                Err(e) => Err(Error::refused(format!(
                    "reload refused, the previous rules stay: {e}"
                ))),
            },
            Some(b"DELPATTERN") if n >= 3 => return self.delpattern(req, caller),
            Some(b"WARM") if n >= 3 => return self.warm(req, caller),
            Some(_) => Err(Error::refused(format!(
                "unknown subcommand or wrong number of arguments for 'respite|{}'. Try RESPITE HELP.",
                String::from_utf8_lossy(&req.args[1]).to_lowercase()
            ))),
        };
        AdminAnswer::Reply(reply)
    }
}

impl Admin {
    /// The admin commands as `config` allows them to clients on `listeners`; says in
    /// the log when they are refused for want of a password.
    pub fn new(
        config: AdminConfig,
        listeners: &[&str],
        status: Arc<Status>,
        reloader: Arc<Reloader>,
        warmer: Arc<Warmer>,
    ) -> Admin {
        let access = Access::of(&config, listeners);
        if access == Access::Exposed {
            warn!(
                listen = listeners.join(", "),
                "RESPITE admin commands are refused: clients can connect from other hosts and no [admin] password is set (set one, or listen on loopback only)"
            );
        }
        Admin {
            config,
            access,
            status,
            reloader,
            warmer,
            throttle: throttle::AuthThrottle::default(),
        }
    }

    /// `RESPITE AUTH <password>`: compared in constant time, unless the caller's
    /// address failed too often lately (then refused without comparing).
    fn auth(&self, given: &[u8], caller: &AdminCaller) -> AdminAnswer {
        let refuse = |e: Error| AdminAnswer::Reply(Err(e));
        let Some(password) = &self.config.password else {
            return refuse(Error::refused(
                "ERR RESPITE AUTH <password> called without any [admin] password configured",
            ));
        };
        let counts = &self.status.parts.metrics.admin_auth;
        let now = Instant::now();
        if let Err(wait) = self.throttle.check(caller.ip, now) {
            counts.rate_limited.fetch_add(1, Relaxed);
            return refuse(throttled(wait));
        }
        if constant_time_eq(password.as_bytes(), given) {
            self.throttle.succeeded(caller.ip);
            AdminAnswer::Authenticated
        } else {
            self.throttle.failed(caller.ip, now);
            counts.wrong_password.fetch_add(1, Relaxed);
            refuse(Error::refused("WRONGPASS invalid respite admin password"))
        }
    }

    /// The long operations running now: an array of field/value pairs each.
    fn progress(&self, resp3: bool) -> Bytes {
        let ops = self.status.parts.operations.running();
        let mut out = BytesMut::new();
        out.extend_from_slice(format!("*{}\r\n", ops.len()).as_bytes());
        for p in ops {
            out.extend_from_slice(&pairs(&progress_fields(&p), resp3));
        }
        out.freeze()
    }

    fn flush_l1(&self, namespace: Option<&Bytes>) -> Result<Bytes, Error> {
        let l1 = &self.status.parts.l1;
        let Some(name) = namespace else {
            l1.flush_all();
            l1.stats.invalidations.add(InvalidationSource::Flush, 1);
            return Ok(Bytes::from_static(reply::OK));
        };
        let policy = self.status.parts.policy.load();
        let named = |r: &crate::policy::Rule| r.name.as_bytes() == &name[..];
        if !policy.rules().iter().any(named) {
            return Err(Error::refused(format!(
                "unknown namespace '{}'",
                String::from_utf8_lossy(name)
            )));
        }
        l1.remove_where(|_, key| policy.lookup(key).is_some_and(named));
        Ok(Bytes::from_static(reply::OK))
    }

    /// `RESPITE DELPATTERN <glob> [COUNT n]`.
    fn delpattern(&self, req: &Request, caller: &AdminCaller) -> AdminAnswer {
        let (pattern, batch) = match scan_args(req, self.config.batch) {
            Ok(a) => a,
            Err(e) => return AdminAnswer::Reply(Err(e)),
        };
        let key = PoolKey {
            resp3: false,
            ..caller.key.clone()
        };
        let op = self
            .status
            .parts
            .operations
            .begin(OpKind::Delete, &pattern, caller.name());
        let channel = &self.config.invalidation_channel;
        let job = DeleteJob {
            pattern,
            batch,
            pause: self.config.pause,
            db: key.db,
            channel: (!channel.is_empty()).then(|| Bytes::from(channel.clone())),
        };
        let (upstream, l1) = (
            self.status.parts.upstream.clone(),
            self.status.parts.l1.clone(),
        );
        spawn_op(async move {
            let p = &op.progress;
            let conn = upstream.dedicated(&key).await?;
            match delete_pattern(std::slice::from_ref(&conn.conn), &job, &l1, p).await {
                Ok(n) => {
                    upstream.release(&key, conn);
                    info!(pattern = %p.pattern, deleted = n, elapsed = ?p.started.elapsed(), "pattern deleted");
                    Ok(reply::integer(n as i64))
                }
                Err(e) => Err(e.to_error("DELPATTERN", p.done.load(Relaxed))),
            }
        })
    }

    /// `RESPITE WARM <glob> [COUNT n]`.
    fn warm(&self, req: &Request, caller: &AdminCaller) -> AdminAnswer {
        let (pattern, batch) = match scan_args(req, self.config.batch) {
            Ok(a) => a,
            Err(e) => return AdminAnswer::Reply(Err(e)),
        };
        let key = caller.key.clone();
        let op = self
            .status
            .parts
            .operations
            .begin(OpKind::Warm, &pattern, caller.name());
        let job = WarmJob {
            pattern,
            batch,
            pause: self.config.pause,
        };
        let warmer = self.warmer.clone();
        spawn_op(async move {
            let p = &op.progress;
            match warm::run(&warmer, &key, &job, p).await {
                Ok(n) => {
                    info!(pattern = %p.pattern, warmed = n, elapsed = ?p.started.elapsed(), "L1 warmed");
                    Ok(reply::integer(n as i64))
                }
                Err(e) => Err(e.to_error("WARM", p.done.load(Relaxed))),
            }
        })
    }
}

/// The refusal of an AUTH from an address that failed too often.
fn throttled(wait: Duration) -> Error {
    Error::refused(format!(
        "ERR too many failed RESPITE AUTH attempts from this address ({} within {}s): try again in {}s",
        throttle::MAX_FAILURES,
        throttle::WINDOW.as_secs(),
        wait.as_secs() + 1
    ))
}

/// Runs `op` as a task whose reply the client gets later; the task stops if the client
/// goes away first (Ctrl-C in the CLI stops a delete).
fn spawn_op(op: impl Future<Output = Reply> + Send + 'static) -> AdminAnswer {
    let (mut tx, rx) = oneshot::channel::<Reply>();
    let task = async move {
        tokio::select! {
            reply = op => { let _ = tx.send(reply); }
            () = tx.closed() => info!("admin operation stopped: its client went away"),
        }
    };
    tokio::spawn(task.instrument(tracing::Span::current()));
    AdminAnswer::Later(rx)
}

/// `<glob> [COUNT n]` of DELPATTERN and WARM.
fn scan_args(req: &Request, default_count: usize) -> Result<(Bytes, usize), Error> {
    match &req.args[2..] {
        [glob] => Ok((glob.clone(), default_count)),
        [glob, count, n] if count.eq_ignore_ascii_case(b"COUNT") => {
            let n = std::str::from_utf8(n)
                .ok()
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| Error::refused("value is not an integer or out of range"))?;
            if !(1..=MAX_COUNT).contains(&n) {
                return Err(Error::refused(format!(
                    "ERR COUNT must be between 1 and {MAX_COUNT}"
                )));
            }
            Ok((glob.clone(), n))
        }
        _ => Err(Error::refused("syntax error")),
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
        "    Allow this connection the other subcommands ([admin] password). Without a",
        "    password they are allowed only when clients connect on loopback only.",
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
        "    Reload the configuration file (namespace rules apply to the next command,",
        "    re-read upstream TLS certificates to new connections).",
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
    fn access_follows_enabled_password_and_listeners() {
        let admin = |enabled, password: Option<&str>| AdminConfig {
            enabled,
            password: password.map(str::to_owned),
            ..AdminConfig::default()
        };
        let (local, open) = (&["127.0.0.1:6380"][..], &["0.0.0.0:6380"][..]);
        assert_eq!(Access::of(&admin(true, None), local), Access::Loopback);
        assert_eq!(Access::of(&admin(true, None), open), Access::Exposed);
        assert_eq!(Access::of(&admin(true, Some("p")), open), Access::Password);
        assert_eq!(
            Access::of(&admin(false, Some("p")), local),
            Access::Disabled
        );
        let two = ["[::1]:6380", "10.1.2.3:6381"];
        assert_eq!(Access::of(&admin(true, None), &two), Access::Exposed);
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
