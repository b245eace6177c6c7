//! The generator: one client's command sequence, a pure function of (seed, client,
//! target, features). It keeps a predicted connection state (protocol, MULTI,
//! subscribed, CLIENT REPLY) only to choose sensible commands; the runner reads
//! replies by the state Redis really reached (`session.rs`).
//!
//! Families (the feature names of `RESPITE_FUZZ_FEATURES`) are in [`FAMILIES`]; the
//! data commands live in `generate/data.rs`, `generate/collections.rs`, `generate/keyspace.rs`, the
//! shared keys in `generate/shared.rs`, the connection-state changers in `generate/state.rs`.

mod arg;
mod collections;
mod data;
mod flow;
mod keyspace;
mod shared;
mod state;

use std::collections::{BTreeSet, VecDeque};

pub use arg::IntoArg;
pub use keyspace::{LIBRARY, SCRIPTS};

use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};

use crate::{
    args,
    check::Check,
    config::{Features, Target},
    keys::{self, Kind, Ns},
    support::resp::show_command,
};

/// One command and how its reply is compared.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub args: Vec<Vec<u8>>,
    pub check: Check,
}

impl Cmd {
    pub fn new(args: Vec<Vec<u8>>, check: Check) -> Cmd {
        Cmd { args, check }
    }

    pub fn exact(args: Vec<Vec<u8>>) -> Cmd {
        Cmd::new(args, Check::Exact)
    }

    pub fn label(&self) -> String {
        show_command(&self.args)
    }
}

#[derive(Debug, Clone)]
pub enum Step {
    /// Commands written with one write (a pipeline when more than one).
    Cmds(Vec<Cmd>),
    /// Bytes as they are (inline commands, malformed input), with the replies Redis
    /// gives them and whether it closes the connection.
    Raw {
        bytes: Vec<u8>,
        replies: usize,
        closes: bool,
    },
    /// A client that leaves while blocked (issue 12 item 8): named, it sends a
    /// blocking BRPOPLPUSH and two writes behind it, and closes without reading.
    Abandon {
        name: String,
        list: String,
        dest: String,
        counter: String,
    },
}

impl Step {
    pub fn one(cmd: Cmd) -> Step {
        Step::Cmds(vec![cmd])
    }

    /// The step as `RESPITE_FUZZ_PRINT` shows it.
    pub fn describe(&self) -> String {
        match self {
            Step::Cmds(cmds) => cmds.iter().map(Cmd::label).collect::<Vec<_>>().join(" | "),
            Step::Raw { bytes, .. } => format!("raw {}", crate::support::resp::show(bytes)),
            Step::Abandon { name, list, .. } => format!("abandon {name} blocked on {list}"),
        }
    }

    /// Commands this step sends (for the per-seed budget).
    pub fn commands(&self) -> usize {
        match self {
            Step::Cmds(cmds) => cmds.len(),
            Step::Raw { .. } => 1,
            Step::Abandon { .. } => 4,
        }
    }
}

/// The connection state the generator expects (the runner knows the real one).
#[derive(Debug, Default, Clone)]
pub struct Pred {
    pub resp3: bool,
    /// Subscribed channels, patterns and shard channels (Redis's three sets).
    pub subs: [BTreeSet<String>; 3],
    pub reply_off: bool,
    pub tracking: bool,
    /// The proxy relays this connection (CLIENT ID, TRACKING, SUBSCRIBE, REPLY).
    pub relay: bool,
    /// The last step ended with a command whose reply was skipped.
    pub unacked: bool,
}

impl Pred {
    pub fn subscribed(&self) -> bool {
        self.subs.iter().any(|s| !s.is_empty())
    }
}

type Family = fn(&mut Gen) -> Step;

/// Feature name, weight, generator. Weights are relative.
pub const FAMILIES: &[(&str, u32, Family)] = &[
    ("strings", 10, |g| Step::one(g.strings())),
    ("docs", 8, |g| Step::one(g.docs())),
    ("hashes", 8, |g| Step::one(g.hashes())),
    ("lists", 6, |g| Step::one(g.lists())),
    ("sets", 5, |g| Step::one(g.sets())),
    ("zsets", 5, |g| Step::one(g.zsets())),
    ("streams", 3, |g| Step::one(g.streams())),
    ("bitmaps", 3, |g| Step::one(g.bitmaps())),
    ("hll", 2, |g| Step::one(g.hll())),
    ("geo", 1, |g| Step::one(g.geo())),
    ("expiry", 5, |g| Step::one(g.expiry())),
    ("ttl-probe", 2, |g| g.ttl_probe()),
    ("keyspace", 6, |g| Step::one(g.keyspace())),
    ("dump", 1, |g| Step::one(g.dump())),
    ("scripts", 4, |g| Step::one(g.scripts())),
    ("functions", 2, |g| Step::one(g.functions())),
    ("blocking", 1, |g| Step::one(g.blocking())),
    ("shared", 14, |g| g.shared()),
    ("publish", 3, |g| Step::one(g.publish_shared())),
    ("pubsub", 3, |g| g.subscribe()),
    ("unsubscribe-idle", 1, |g| Step::one(g.unsubscribe_idle())),
    ("tx", 4, |g| g.transaction()),
    ("hello3", 2, |g| Step::one(g.hello())),
    ("select", 2, |g| Step::one(g.select())),
    ("client-id", 1, |g| Step::one(g.client_id())),
    ("tracking", 2, |g| Step::one(g.tracking())),
    ("reply", 1, |g| g.client_reply()),
    ("setname", 2, |g| Step::one(g.setname())),
    ("reset", 1, |g| Step::one(g.reset())),
    ("quit", 1, |g| Step::one(g.quit())),
    ("pipeline", 5, |g| g.pipeline()),
    ("malformed", 1, |g| g.malformed()),
    ("unknown", 2, |g| Step::one(g.unknown())),
    ("unknown-writes", 2, |g| g.unknown_write()),
    ("abandon", 1, |g| g.abandon()),
];

/// The families whose steps are single data commands (MULTI bodies, pipelines).
const DATA: &[&str] = &[
    "strings",
    "docs",
    "hashes",
    "lists",
    "sets",
    "zsets",
    "streams",
    "bitmaps",
    "hll",
    "geo",
    "expiry",
    "keyspace",
    "dump",
    "scripts",
    "functions",
];

pub struct Gen<'a> {
    pub rng: StdRng,
    pub client: usize,
    pub target: &'a Target,
    pub features: &'a Features,
    pub pred: Pred,
    seq: u64,
    queue: VecDeque<Step>,
    /// The last own keys handed out, with their namespaces: TTL queries look at
    /// keys just written more often than chance would.
    recent: VecDeque<(Ns, String)>,
    /// This step follows one whose last reply was skipped (see `malformed`).
    pub after_unacked: bool,
}

/// The generated sequence of `client` for `seed`: about `commands` commands, then
/// steps that bring the connection back to a known state (compared too).
pub fn sequence(
    seed: u64,
    client: usize,
    target: &Target,
    features: &Features,
    commands: usize,
) -> Vec<Step> {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed ^ (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        client,
        target,
        features,
        pred: Pred::default(),
        seq: 0,
        queue: VecDeque::new(),
        recent: VecDeque::new(),
        after_unacked: false,
    };
    let mut out = Vec::new();
    let mut sent = 0;
    while sent < commands {
        let step = g.step();
        sent += step.commands();
        out.push(step);
    }
    out.extend(g.queue.drain(..));
    out.extend(g.closing());
    out
}

impl Gen<'_> {
    pub fn on(&self, feature: &str) -> bool {
        self.features.on(feature)
    }

    /// A number unique within this client's run (values of shared keys).
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A namespace for the next key. On a connection the proxy relays (after CLIENT
    /// ID, CLIENT TRACKING, SUBSCRIBE, CLIENT REPLY) only rule-free ones unless the
    /// `relay-rules` family is on (issue 12 item 1: relay mode skips the rules).
    pub fn ns(&mut self) -> Ns {
        self.ns_preferring(|_| true)
    }

    fn ns_allowed(&self, ns: &Ns) -> bool {
        let relayed = self.pred.relay && !self.on("relay-rules");
        !relayed || !(ns.l1 || ns.compress || ns.ttl_ruled())
    }

    /// A namespace, one time in two among those that match `prefer` (if any may be
    /// used): families aimed at a rule meet it more often.
    pub fn ns_preferring(&mut self, prefer: impl Fn(&Ns) -> bool) -> Ns {
        let allowed: Vec<Ns> = self
            .target
            .namespaces
            .iter()
            .filter(|ns| self.ns_allowed(ns))
            .copied()
            .collect();
        let preferred: Vec<Ns> = allowed.iter().filter(|ns| prefer(ns)).copied().collect();
        let pool = if !preferred.is_empty() && self.chance(0.5) {
            &preferred
        } else {
            &allowed
        };
        *pool
            .choose(&mut self.rng)
            .expect("a namespace without rules in every target")
    }

    pub fn key(&mut self, ns: &Ns, kind: Kind) -> String {
        let key = keys::own_key(
            ns,
            self.client,
            kind,
            self.rng.random_range(0..keys::PER_KIND),
        );
        if self.recent.len() == 8 {
            self.recent.pop_front();
        }
        self.recent.push_back((*ns, key.clone()));
        key
    }

    /// One of the last keys handed out, if any (and usable on this connection).
    pub fn recent_key(&mut self) -> Option<(Ns, String)> {
        let usable: Vec<_> = self
            .recent
            .iter()
            .filter(|(ns, _)| self.ns_allowed(ns))
            .cloned()
            .collect();
        usable.choose(&mut self.rng).cloned()
    }

    /// A key of any kind but, in compressing namespaces, never one with long values
    /// (for commands that read raw bytes or change values in place).
    pub fn raw_safe_key(&mut self, ns: &Ns) -> String {
        let mut kinds = vec![
            Kind::Str,
            Kind::Hash,
            Kind::List,
            Kind::Set,
            Kind::Zset,
            Kind::Bits,
        ];
        if !ns.compress {
            kinds.extend([Kind::Doc, Kind::HashDoc]);
        }
        let kind = *kinds.choose(&mut self.rng).expect("kinds");
        self.key(ns, kind)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *items.choose(&mut self.rng).expect("non-empty")
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A command name as this target's Redis knows it (`rename-command`).
    pub fn name(&self, name: &'static str) -> String {
        self.target.renamed(name).unwrap_or(name).to_string()
    }

    fn step(&mut self) -> Step {
        self.after_unacked = std::mem::take(&mut self.pred.unacked);
        if let Some(step) = self.queue.pop_front() {
            return step;
        }
        if self.pred.reply_off {
            return self.reply_off_step();
        }
        // Relayed connections use only rule-free namespaces (see `ns`): leave soon, so
        // that most commands still meet the rules.
        if self.pred.relay && !self.on("relay-rules") && self.chance(0.08) {
            return Step::one(if self.on("quit") && self.chance(0.3) {
                self.quit()
            } else {
                self.reset()
            });
        }
        if self.pred.subscribed() && (!self.pred.resp3 || self.chance(0.1)) {
            return self.subscribed_step();
        }
        let enabled: Vec<_> = FAMILIES.iter().filter(|(name, ..)| self.on(name)).collect();
        let total: u32 = enabled.iter().map(|(_, w, _)| w).sum();
        if total == 0 {
            return Step::one(Cmd::exact(args!["PING"]));
        }
        let mut roll = self.rng.random_range(0..total);
        for (_, weight, family) in enabled {
            if roll < *weight {
                return family(self);
            }
            roll -= weight;
        }
        unreachable!("weights cover the roll")
    }

    /// One data command on this client's own keys (MULTI bodies, pipelines).
    pub fn data_command(&mut self) -> Cmd {
        let enabled: Vec<_> = FAMILIES
            .iter()
            .filter(|(name, ..)| DATA.contains(name) && self.on(name))
            .collect();
        let Some((_, _, family)) = enabled.choose(&mut self.rng).copied() else {
            return Cmd::exact(args!["PING"]);
        };
        match family(self) {
            Step::Cmds(mut cmds) if cmds.len() == 1 => cmds.remove(0),
            _ => Cmd::exact(args!["PING"]),
        }
    }

    /// Leaves CLIENT REPLY OFF, then RESET and PING: the runner checks that
    /// Redis answers these two exactly (the reply counting was right all along).
    fn closing(&mut self) -> Vec<Step> {
        let mut out = Vec::new();
        if self.pred.reply_off {
            out.push(Step::one(Cmd::exact(args!["CLIENT", "REPLY", "ON"])));
        }
        out.push(Step::one(Cmd::exact(args!["RESET"])));
        out.push(Step::one(Cmd::exact(args!["PING"])));
        out
    }

    pub fn enqueue(&mut self, steps: impl IntoIterator<Item = Step>) {
        self.queue.extend(steps);
    }
}
