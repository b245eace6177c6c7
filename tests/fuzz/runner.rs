//! Runs one seed: a fresh Redis, a fresh Redis behind a fresh proxy, K client threads
//! that each send their sequence to both in lockstep (step i to Redis and to the proxy,
//! then both replies read and compared), then the models over every client's events.

mod client;
mod compare;
mod early;
mod pressure;
mod rules;
mod side;
mod steps;

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::{
    config::{Features, Target},
    generate, model,
    report::Failure,
    support::{RedisServer, Stack, l1::wait_tracking, proxy::DIRECT_ENV, resp},
};

pub use client::ClientRun;

/// Everything that decides a seed's run.
pub struct Spec<'a> {
    pub target: &'a Target,
    pub features: &'a Features,
    /// The `RESPITE_FUZZ_FEATURES` value the run was given, for the rerun line.
    pub features_env: Option<String>,
    pub seed: u64,
    /// Commands of the seed, all clients together.
    pub commands: usize,
    pub clients: usize,
    /// Run only this client's sequence (the others stay idle).
    pub only: Option<usize>,
    pub ryw_all: bool,
    /// Readers adding load on the shared keys of cached namespaces (`pressure.rs`).
    pub readers: usize,
    /// How long a reply from the proxy may take.
    pub timeout: Duration,
}

pub struct Outcome {
    pub commands: usize,
    pub failures: Vec<Failure>,
    pub elapsed: Duration,
}

/// The two upstreams: Redis alone, and a Redis behind the proxy.
pub struct Servers {
    pub direct: RedisServer,
    pub stack: Stack,
}

impl Servers {
    pub fn start(target: &Target) -> Servers {
        let args: Vec<&str> = target.redis_args.iter().map(String::as_str).collect();
        let direct = RedisServer::start_with(&args);
        let stack = Stack::start_with_redis(&args, &target.proxy_toml);
        for mut admin in [direct.client(), stack.direct()] {
            for (body, sha) in generate::SCRIPTS {
                let reply = admin.call(&["SCRIPT", "LOAD", body]);
                assert!(
                    resp::decode(&reply).text() == Some(sha.as_bytes()),
                    "SHA1 of {body:?} is {}, not {sha}",
                    resp::show(&reply)
                );
            }
            let reply = admin.call(&["FUNCTION", "LOAD", generate::LIBRARY]);
            assert!(
                reply.starts_with(b"$"),
                "FUNCTION LOAD: {}",
                resp::show(&reply)
            );
        }
        if target.l1 && proxied() {
            wait_tracking(&mut stack.client(), "up", Duration::from_secs(10));
        }
        Servers { direct, stack }
    }

    pub fn addrs(&self) -> Addrs {
        Addrs {
            direct: self.direct.addr(),
            proxy: self.stack.proxy.addr(),
            behind: self.stack.redis.addr(),
        }
    }
}

/// Where the client threads connect.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    /// The Redis compared against.
    pub direct: SocketAddr,
    pub proxy: SocketAddr,
    /// The Redis behind the proxy.
    pub behind: SocketAddr,
}

pub fn run_seed(spec: &Spec) -> Outcome {
    let started = Instant::now();
    let servers = Servers::start(spec.target);
    let per_client = spec.commands.div_ceil(spec.clients);
    let clients: Vec<usize> = match spec.only {
        Some(c) => vec![c],
        None => (0..spec.clients).collect(),
    };
    let sequences: Vec<_> = clients
        .iter()
        .map(|&c| generate::sequence(spec.seed, c, spec.target, spec.features, per_client))
        .collect();
    if std::env::var_os("RESPITE_FUZZ_PRINT").is_some() {
        print_sequences(&clients, &sequences);
    }
    let (stop, done) = (AtomicBool::new(false), AtomicBool::new(false));
    let (results, pressure): (Vec<_>, Vec<_>) = std::thread::scope(|s| {
        let addrs = servers.addrs();
        let readers: Vec<_> = (0..spec.readers)
            .map(|r| {
                let done = &done;
                s.spawn(move || {
                    pressure::reader(spec.clients + r, spec.seed, spec.target, addrs.proxy, done)
                })
            })
            .collect();
        let handles: Vec<_> = clients
            .iter()
            .zip(&sequences)
            .map(|(&c, steps)| {
                let stop = &stop;
                s.spawn(move || ClientRun::new(c, spec, addrs, stop).run(steps))
            })
            .collect();
        let results = handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect();
        done.store(true, Ordering::Relaxed);
        (
            results,
            readers
                .into_iter()
                .map(|h| h.join().expect("reader thread"))
                .collect(),
        )
    });
    let mut failures = Vec::new();
    let mut commands = 0;
    let mut logs: [Vec<model::Event>; 2] = Default::default();
    logs[1].extend(pressure.into_iter().flatten());
    let mut histories = std::collections::HashMap::new();
    for (c, r) in clients.iter().zip(results) {
        commands += r.commands;
        failures.extend(r.failures);
        histories.insert(*c, r.history);
        let [d, p] = r.logs;
        logs[0].extend(d);
        logs[1].extend(p);
    }
    for (side, events) in ["redis", "proxy"].into_iter().zip(&logs) {
        let violations = model::check_registers(events, spec.ryw_all)
            .into_iter()
            .chain(model::check_messages(events));
        failures.extend(violations.map(|v| {
            let context = context_before(histories.get(&v.at.client), &v.at.step);
            Failure::model(side, v, context)
        }));
    }
    Outcome {
        commands,
        failures,
        elapsed: started.elapsed(),
    }
}

/// The lines of `history` up to the one of `step`.
fn context_before(history: Option<&Vec<String>>, step: &str) -> Vec<String> {
    let Some(history) = history else {
        return Vec::new();
    };
    let end = history
        .iter()
        .position(|l| l.starts_with(step))
        .map_or(history.len(), |i| i + 1);
    history[end.saturating_sub(client::CONTEXT)..end].to_vec()
}

fn print_sequences(clients: &[usize], sequences: &[Vec<generate::Step>]) {
    for (c, steps) in clients.iter().zip(sequences) {
        eprintln!("--- client {c}");
        for (i, step) in steps.iter().enumerate() {
            eprintln!("  step {i}: {}", step.describe());
        }
    }
}

/// False when `RESPITE_TEST_DIRECT=redis` sends the "proxy" side straight to its Redis
/// (a check of the fuzzer itself): the namespace rules then do not apply.
pub fn proxied() -> bool {
    std::env::var(DIRECT_ENV).map_or(true, |v| v != "redis")
}

/// The stop flag shared by the clients of a seed: set by the first divergence.
pub fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}
