//! One client of a seed: its steps sent to Redis and to the proxy in lockstep, every
//! reply compared (normalised as its check says), the connection state followed by
//! Redis's replies, and the model events recorded on each side.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use super::{
    Addrs, Spec,
    compare::{self, Read},
    early::Early,
    rules::TtlRule,
    side::Side,
    stopped,
};
use crate::{
    generate::{Cmd, Step},
    model::{At, Event},
    report::{Failure, Kind},
    session::{Plan, Session, upper},
    support::resp::{Frame, encode_command, show},
};

/// How long Redis itself may take (a timeout here is the fuzzer's fault).
pub(super) const REDIS_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands shown before a failing one.
pub const CONTEXT: usize = 400;

pub struct ClientRun<'a> {
    pub(super) id: usize,
    pub(super) spec: &'a Spec<'a>,
    pub(super) addrs: Addrs,
    pub(super) stop: &'a AtomicBool,
    pub(super) sess: Session,
    /// 0: straight to Redis; 1: through the proxy.
    pub(super) sides: [Side; 2],
    /// Every step with Redis's replies (cut to 200 characters), for reports.
    pub(super) history: Vec<String>,
    pub(super) commands: usize,
    /// Connections so far (with `commands`, a command's place in its stream).
    pub(super) conn: u32,
    ttl_rule: TtlRule,
    /// Invalidations the proxy sent before Redis did (see `early.rs`).
    early: Early,
}

pub struct ClientResult {
    pub commands: usize,
    pub history: Vec<String>,
    pub failures: Vec<Failure>,
    pub logs: [Vec<Event>; 2],
}

/// A step's outcome: on `Err` the client stops (its state may differ from Redis's).
pub(super) type Res = Result<(), Failure>;

impl<'a> ClientRun<'a> {
    pub fn new(id: usize, spec: &'a Spec, addrs: Addrs, stop: &'a AtomicBool) -> Self {
        ClientRun {
            id,
            spec,
            addrs,
            stop,
            sess: Session::default(),
            sides: [
                Side::connect(id, addrs.direct, REDIS_TIMEOUT),
                Side::connect(id, addrs.proxy, spec.timeout),
            ],
            history: Vec::new(),
            commands: 0,
            conn: 0,
            ttl_rule: TtlRule::default(),
            early: Early::new(addrs.direct),
        }
    }

    pub fn run(mut self, steps: &[Step]) -> ClientResult {
        let mut failures = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if stopped(self.stop) {
                break;
            }
            let result = match step {
                Step::Cmds(cmds) => self.cmds(i, cmds),
                Step::Raw {
                    bytes,
                    replies,
                    closes,
                } => self.raw(i, bytes, *replies, *closes),
                Step::Abandon {
                    name,
                    list,
                    dest,
                    counter,
                } => self.abandon(i, name, [list, dest, counter]),
            };
            if let Err(f) = result {
                failures.push(f);
                self.stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        let [d, p] = self.sides;
        ClientResult {
            commands: self.commands,
            history: self.history,
            failures,
            logs: [d.log, p.log],
        }
    }

    pub(super) fn fail(&self, kind: Kind, step: String, redis: String, proxy: String) -> Failure {
        Failure {
            kind,
            client: self.id,
            step,
            redis,
            proxy,
            context: self.history[self.history.len().saturating_sub(CONTEXT)..].to_vec(),
        }
    }

    pub(super) fn remember(&mut self, line: String) {
        let cut = line.char_indices().nth(200).map_or(line.len(), |(i, _)| i);
        self.history.push(line[..cut].to_string());
    }

    pub(super) fn send_both(&mut self, bytes: &[u8]) -> [Instant; 2] {
        [self.sides[0].send(bytes), self.sides[1].send(bytes)]
    }

    pub(super) fn cmds(&mut self, i: usize, cmds: &[Cmd]) -> Res {
        let bytes: Vec<u8> = cmds.iter().flat_map(|c| encode_command(&c.args)).collect();
        let sent = self.send_both(&bytes);
        for (j, cmd) in cmds.iter().enumerate() {
            let label = if cmds.len() > 1 {
                format!("step {i}.{j}")
            } else {
                format!("step {i}")
            };
            self.reply(&label, cmd, sent)?;
        }
        Ok(())
    }

    /// Reads, compares and records the replies of one command on both sides.
    fn reply(&mut self, label: &str, cmd: &Cmd, sent: [Instant; 2]) -> Res {
        self.commands += 1;
        let plan = self.sess.plan(&cmd.args);
        let name = upper(cmd.args.first());
        if name == "CLIENT" && upper(cmd.args.get(1)) == "REPLY" && upper(cmd.args.get(2)) != "ON" {
            self.sides.iter_mut().zip(sent).for_each(|(s, t)| s.mute(t));
        }
        let step = format!("{label}: {}", cmd.label());
        let at = At {
            client: self.id,
            step: step.clone(),
        };
        let [reads, mut proxy] = self.read_both(&plan, &at, sent);
        let mut direct: Vec<Frame> = match reads.iter().cloned().collect::<Result<Vec<_>, _>>() {
            Ok(frames) => frames.into_iter().map(|(f, _)| f).collect(),
            Err(e) => {
                return Err(self.fail(Kind::FuzzerBug, step, format!("<{e}>"), String::new()));
            }
        };
        let queued = if name == "EXEC" {
            self.sess.multi.clone()
        } else {
            None
        };
        let db = self.sess.db;
        self.sess.apply(&cmd.args, &cmd.check, &direct);
        if name.ends_with("UNSUBSCRIBE") && cmd.args.len() == 1 {
            compare::sort_unsubscribe_replies(&mut direct, &mut proxy);
        }
        self.remember_replies(&step, &direct);
        if let Some((k, d, p)) =
            compare::first_difference(&cmd.check, queued.as_deref(), &direct, &proxy)
        {
            let label = if plan.frames > 1 {
                format!("{step} (reply {k})")
            } else {
                step
            };
            return Err(self.fail(Kind::Divergence, label, d, p));
        }
        self.record(cmd, (&at, db), [&reads, &proxy], sent);
        self.check_rules(cmd, &step, &proxy)?;
        if name == "RESET" || plan.closes {
            self.sides
                .iter_mut()
                .zip(sent)
                .for_each(|(s, t)| s.end_subscriptions(t));
        }
        if plan.closes {
            self.expect_close(&step)?;
        }
        let pushes = self.compare_pushes(&step);
        self.early.after(&cmd.args);
        pushes
    }

    /// The documented rule differences, checked on the proxy's replies (`rules.rs`).
    fn check_rules(&mut self, cmd: &Cmd, step: &str, proxy: &[Read]) -> Res {
        self.ttl_rule.observe(&cmd.args);
        let Some(Ok((frame, _))) = proxy.first() else {
            return Ok(());
        };
        if !self.spec.features.on("ttl-rules") || !super::proxied() {
            return Ok(());
        }
        match self.ttl_rule.check(self.spec.target, &cmd.args, frame) {
            Some(why) => Err(self.fail(Kind::Model, step.to_string(), String::new(), why)),
            None => Ok(()),
        }
    }

    /// The frames `plan` expects from each side (reading stops at the first failure).
    fn read_both(&mut self, plan: &Plan, at: &At, sent: [Instant; 2]) -> [Vec<Read>; 2] {
        let sess = &self.sess;
        let mut out: [Vec<Read>; 2] = Default::default();
        for ((side, t), replies) in self.sides.iter_mut().zip(sent).zip(&mut out) {
            for _ in 0..plan.frames {
                let r = side.read(sess, plan.pubsub, at, t);
                let failed = r.is_err();
                replies.push(r);
                if failed {
                    break;
                }
            }
        }
        out
    }

    fn remember_replies(&mut self, step: &str, direct: &[Frame]) {
        let shown: Vec<String> = direct.iter().map(|f| show(&f.encode())).collect();
        let shown = if shown.is_empty() {
            "(no reply)".to_string()
        } else {
            shown.join(" ")
        };
        self.remember(format!("{step} -> {shown}"));
    }

    /// Model events of a command on shared keys or channels, on both sides (`db`: the
    /// one it ran in).
    fn record(
        &mut self,
        cmd: &Cmd,
        (at, db): (&At, u32),
        replies: [&[Read]; 2],
        sent: [Instant; 2],
    ) {
        let order = (self.conn, self.commands as u64);
        for ((side, send), replies) in self.sides.iter_mut().zip(sent).zip(replies) {
            let origin = compare::Origin {
                at,
                db,
                order,
                send,
            };
            side.log
                .extend(compare::events(&cmd.check, &origin, replies));
        }
    }

    pub(super) fn expect_close(&mut self, step: &str) -> Res {
        let d = self.sides[0].closed();
        let p = self.sides[1].closed();
        if d.is_err() || p.is_err() {
            let show =
                |r: &Result<(), String>| r.clone().err().unwrap_or_else(|| "<closed>".into());
            let kind = if d.is_err() {
                Kind::FuzzerBug
            } else {
                Kind::Divergence
            };
            return Err(self.fail(
                kind,
                format!("{step} (connection closed?)"),
                show(&d),
                show(&p),
            ));
        }
        self.reconnect();
        Ok(())
    }

    pub(super) fn reconnect(&mut self) {
        self.sides.iter_mut().for_each(Side::reconnect);
        self.sess = Session::default();
        self.early.clear();
        self.conn += 1;
    }

    /// The pushes read with this step's replies, as sets: a message matching several
    /// patterns comes once per pattern in the order of Redis's hash table of them.
    /// The proxy may send invalidations Redis does not (its own reads of a key, the
    /// compression guard's, track it for a tracking client): an extra one costs the
    /// client a cache miss, a missing one would serve it stale data, unless the
    /// proxy sent it early (`early.rs`).
    pub(super) fn compare_pushes(&mut self, step: &str) -> Res {
        let [d, p] = &mut self.sides;
        d.pushes.sort();
        p.pushes.sort();
        let mut extra = p.pushes.clone();
        let early = &mut self.early;
        let matched = d.pushes.iter().all(|want| {
            extra
                .iter()
                .position(|got| got == want)
                .map(|i| extra.remove(i))
                .is_some()
                || early.excuses(want)
        });
        if matched && extra.iter().all(|e| e.starts_with("invalidate")) {
            extra.into_iter().for_each(|e| early.took(e));
            d.pushes.clear();
            p.pushes.clear();
            return Ok(());
        }
        let (d, p) = (d.pushes.join(", "), p.pushes.join(", "));
        Err(self.fail(
            Kind::Divergence,
            format!("{step} (pushes read with this reply)"),
            d,
            p,
        ))
    }
}
