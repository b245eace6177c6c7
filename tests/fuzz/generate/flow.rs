//! Steps that span several commands: transactions (WATCH, MULTI, EXEC/DISCARD),
//! pipelines, CLIENT REPLY OFF/SKIP stretches and pub/sub subscriptions.

use rand::Rng;

use super::{Cmd, Gen, Step};
use crate::{args, check::Check, keys};

impl Gen<'_> {
    /// WATCH (sometimes touched before MULTI, sometimes left by an EXEC without
    /// MULTI — issue 12 item 9), MULTI, a body with the odd queuing error, then EXEC or
    /// DISCARD; one time in three all of it as one pipeline.
    pub fn transaction(&mut self) -> Step {
        let ns = self.ns();
        let mut cmds = Vec::new();
        let watched = self.key(&ns, keys::Kind::Str);
        let watching = self.chance(0.4);
        if watching {
            cmds.push(Cmd::exact(args![
                "WATCH",
                &watched,
                self.key(&ns, keys::Kind::Hash)
            ]));
            match self.rng.random_range(0..5) {
                0 => cmds.push(Cmd::exact(args!["SET", &watched, "touched"])),
                1 => cmds.push(Cmd::exact(args![self.pick(&["EXEC", "DISCARD"])])),
                2 => cmds.push(Cmd::exact(args!["UNWATCH"])),
                _ => {}
            }
        }
        cmds.push(Cmd::exact(args!["MULTI"]));
        // A SUBSCRIBE queued in MULTI: the `tx-subscribe` family.
        let subscribe =
            !watching && self.on("pubsub") && self.on("tx-subscribe") && self.chance(0.05);
        for _ in 0..self.rng.random_range(1..6) {
            cmds.push(self.queued_command(subscribe));
        }
        let exec = self.chance(0.85);
        if subscribe {
            let channel = keys::own_channel(self.client, self.rng.random_range(0..3));
            cmds.push(Cmd::exact(args!["SUBSCRIBE", &channel]));
            if exec {
                self.pred.subs[0].insert(channel);
            }
            self.pred.relay = true;
        }
        cmds.push(Cmd::exact(args![if exec { "EXEC" } else { "DISCARD" }]));
        if self.chance(0.33) {
            return Step::Cmds(cmds);
        }
        let mut steps = cmds.into_iter().map(Step::one);
        let first = steps.next().expect("MULTI at least");
        self.enqueue(steps);
        first
    }

    /// A command inside MULTI: data on own keys, SELECT, and now and then one that
    /// Redis refuses at once (EXECABORT) unless the EXEC must run.
    fn queued_command(&mut self, must_run: bool) -> Cmd {
        match self.rng.random_range(0..40) {
            0 if !must_run => Cmd::exact(args!["GET"]),
            1 => Cmd::exact(args!["MULTI"]),
            2 => Cmd::exact(args!["WATCH", "x"]),
            // A SELECT that fails inside MULTI: the `tx-select-error` family.
            3 | 4 if self.on("tx-select-error") => {
                Cmd::exact(args!["SELECT", self.pick(&["99", "x"])])
            }
            3 | 4 => Cmd::exact(args!["SELECT", self.rng.random_range(0..keys::DBS)]),
            5 => Cmd::new(args!["CLIENT", "ID"], Check::Id),
            _ => self.data_command(),
        }
    }

    /// Several commands in one write: data, shared keys, SELECT, PING.
    pub fn pipeline(&mut self) -> Step {
        let n = self.rng.random_range(2..10);
        let mut cmds = Vec::with_capacity(n);
        for _ in 0..n {
            let cmd = match self.rng.random_range(0..60) {
                0..=11 if self.on("shared") && self.on("shared-pipeline") => match self.shared() {
                    Step::Cmds(c) => c,
                    _ => vec![],
                },
                12..=14 if self.on("select") => vec![self.select()],
                15..=17 => vec![Cmd::exact(args!["PING"])],
                18 if self.on("client-id") => vec![self.client_id()],
                _ => vec![self.data_command()],
            };
            cmds.extend(cmd);
        }
        Step::Cmds(cmds)
    }

    /// CLIENT REPLY SKIP before one command, or OFF for a stretch (see
    /// [`Gen::reply_off_step`]).
    pub fn client_reply(&mut self) -> Step {
        self.pred.relay = true;
        if self.chance(0.5) {
            let next = self.data_command();
            let skip = Cmd::exact(args!["CLIENT", "REPLY", "SKIP"]);
            self.pred.unacked = true;
            return Step::Cmds(vec![skip, next]);
        }
        self.pred.reply_off = true;
        self.pred.relay = true;
        Step::one(Cmd::exact(args!["CLIENT", "REPLY", "OFF"]))
    }

    /// While replies are off: writes (own and shared), until CLIENT REPLY ON.
    pub fn reply_off_step(&mut self) -> Step {
        if self.chance(0.25) {
            self.pred.reply_off = false;
            return Step::one(Cmd::exact(args!["CLIENT", "REPLY", "ON"]));
        }
        if self.on("shared") && self.chance(0.3) {
            return Step::one(self.shared_write());
        }
        Step::one(self.data_command())
    }

    /// SUBSCRIBE / PSUBSCRIBE / SSUBSCRIBE to own or shared channels.
    pub fn subscribe(&mut self) -> Step {
        let shared = self.on("publish") && self.chance(0.5);
        let c = self.client;
        let (kind, names) = match self.rng.random_range(0..4) {
            0 if shared => (1, vec![keys::SHARED_PATTERN.to_string()]),
            _ if shared => (0, vec![keys::shared_channel(0), keys::shared_channel(1)]),
            0 => (1, vec![keys::own_pattern(c, self.rng.random_range(0..3))]),
            1 => (
                2,
                vec![keys::own_shard_channel(c, self.rng.random_range(0..2))],
            ),
            _ => (0, vec![keys::own_channel(c, 0), keys::own_channel(c, 1)]),
        };
        let mut cmd = args![["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"][kind]];
        cmd.extend(names.iter().map(|n| n.as_bytes().to_vec()));
        self.pred.subs[kind].extend(names);
        self.pred.relay = true;
        Step::one(Cmd::exact(cmd))
    }

    /// In RESP2 a subscribed client may only (un)subscribe, PING, RESET and QUIT;
    /// the odd other command gets Redis's refusal.
    pub fn subscribed_step(&mut self) -> Step {
        let c = self.client;
        let cmd = match self.rng.random_range(0..20) {
            0..=3 => args!["PING"],
            4 => args!["PING", "hi"],
            5 | 6 => return self.subscribe(),
            7 => {
                self.pred.subs[0].remove(&keys::own_channel(c, 0));
                args!["UNSUBSCRIBE", keys::own_channel(c, 0)]
            }
            8 => {
                self.pred.subs[1].remove(&keys::own_pattern(c, 0));
                args!["PUNSUBSCRIBE", keys::own_pattern(c, 0)]
            }
            9 => args!["GET", "x"],
            10 => return Step::one(self.reset()),
            11 if self.on("quit") => return Step::one(self.quit()),
            _ => {
                // Leave each kind still subscribed to (sometimes pipelined): one more
                // would come from a client subscribed to nothing, the `unsubscribe-idle`
                // family's case.
                let all: Vec<Cmd> = ["UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"]
                    .into_iter()
                    .zip(std::mem::take(&mut self.pred.subs))
                    .filter(|(_, subs)| !subs.is_empty())
                    .map(|(name, _)| Cmd::exact(args![name]))
                    .collect();
                if all.is_empty() {
                    return Step::one(Cmd::exact(args!["PING"]));
                }
                if self.chance(0.5) {
                    return Step::Cmds(all);
                }
                let mut steps = all.into_iter().map(Step::one);
                let first = steps.next().expect("one at least");
                self.enqueue(steps);
                return first;
            }
        };
        Step::one(Cmd::exact(cmd))
    }

    /// (P|S)UNSUBSCRIBE from a client subscribed to nothing (issue 12 item 2).
    pub fn unsubscribe_idle(&mut self) -> Cmd {
        let name = self.pick(&["UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"]);
        if self.pred.subscribed() {
            return Cmd::exact(args!["PING"]);
        }
        let mut a = args![name];
        for n in 0..self.rng.random_range(0..3) {
            a.push(keys::own_channel(self.client, n).into_bytes());
        }
        Cmd::exact(a)
    }
}
