//! `RESPITE WARM <glob>` and `warm = true`: SCAN for matching keys and read each one
//! in a cached namespace through the L1 read path, so it is in L1 before clients ask.
//!
//! The reads go through a headless session ([`Filler`]), so an entry is filled exactly
//! as a client's read fills it (generation guard, TTL bound, protocol). What is read
//! depends on the key's type (asked with a pipelined TYPE per page): GET for strings
//! (which MGET's per-key entries share), HGETALL for hashes, SMEMBERS for sets; other
//! types are read with ranges that cannot be guessed and are skipped.
//!
//! Warming never fills a namespace past its share of `[l1] max_memory`: max_memory
//! divided by the number of namespaces with `l1 = true`, counting what the namespace
//! already holds. It is checked every [`CHUNK`] reads, so it may pass the share by
//! at most that many entries. Once every cached namespace is full, the SCAN stops.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{AdminError, OpKind, Progress, scan};
use crate::{
    l1::{L1, Lookup, cacheable},
    policy::Policy,
    protocol::{
        reply::split_frames,
        request::{Request, encode_command},
    },
    server::Shared,
    session::Filler,
    upstream::{Conn, PoolKey},
};

/// Reads sent together before the shares are checked again.
pub const CHUNK: usize = 64;

pub struct WarmJob {
    pub pattern: Bytes,
    /// Keys per SCAN page.
    pub batch: usize,
    pub pause: Duration,
}

/// What each cached namespace holds in L1, against its share.
struct Budget {
    share: u64,
    used: HashMap<Arc<str>, u64>,
    cached_namespaces: usize,
}

impl Budget {
    fn new(l1: &L1, policy: &Policy) -> Self {
        let cached_namespaces = policy.rules().iter().filter(|r| r.l1).count();
        let mut used: HashMap<Arc<str>, u64> = HashMap::new();
        l1.for_each_entry(|_, key, weight| {
            if let Some(rule) = policy.lookup(key) {
                *used.entry(rule.name.clone()).or_default() += weight;
            }
        });
        Budget {
            share: l1.max_bytes() / cached_namespaces.max(1) as u64,
            used,
            cached_namespaces,
        }
    }

    fn has_room(&self, ns: &str) -> bool {
        self.used.get(ns).copied().unwrap_or(0) < self.share
    }

    fn all_full(&self) -> bool {
        self.used.values().filter(|&&u| u >= self.share).count() >= self.cached_namespaces
    }
}

/// One key to warm: its namespace and the read that fills it.
struct Read {
    ns: Arc<str>,
    req: Request,
}

/// Warms the keys matching the pattern; returns how many are in L1 afterwards (read
/// now, or already there).
pub async fn warm(
    shared: &Shared,
    conn: &Conn,
    filler: &mut Filler,
    job: &WarmJob,
    progress: &Progress,
) -> Result<u64, AdminError> {
    let l1 = shared.l1.clone();
    let mut budget = Budget::new(&l1, &shared.policy.load());
    let mut warmed = 0;
    let mut cursor = 0;
    loop {
        let page = scan::page(conn, cursor, &job.pattern, job.batch).await?;
        cursor = page.cursor;
        progress
            .matched
            .fetch_add(page.keys.len() as u64, Ordering::Relaxed);
        let candidates: Vec<(Bytes, Arc<str>)> = {
            let policy = shared.policy.load();
            page.keys
                .into_iter()
                .filter_map(|k| {
                    let rule = policy.lookup(&k).filter(|r| r.l1)?;
                    budget.has_room(&rule.name).then(|| (k, rule.name.clone()))
                })
                .collect()
        };
        if !candidates.is_empty() {
            let reads = reads_by_type(conn, candidates).await?;
            for chunk in reads.chunks(CHUNK) {
                warmed += fill(&l1, filler, &mut budget, chunk).await;
                progress.done.store(warmed, Ordering::Relaxed);
            }
            if !job.pause.is_zero() {
                tokio::time::sleep(job.pause).await;
            }
        }
        progress.set_fraction(scan::fraction_done(cursor));
        if cursor == 0 || budget.all_full() {
            return Ok(warmed);
        }
    }
}

/// Reads `chunk` through the filler (those not cached yet, in namespaces with room);
/// returns how many of its keys are in L1 now.
async fn fill(l1: &L1, filler: &mut Filler, budget: &mut Budget, chunk: &[Read]) -> u64 {
    let mut warmed = 0;
    let mut sent = Vec::with_capacity(chunk.len());
    for read in chunk {
        let Some(ek) = cacheable(&read.req.args, filler.resp3())
            .map(|c| filler.entry_key(read.req.args[c.key_index].clone(), c.sig))
        else {
            continue;
        };
        match l1.get(&ek) {
            Lookup::Hit(_) => warmed += 1,
            _ if budget.has_room(&read.ns) => sent.push((read, ek)),
            _ => {}
        }
    }
    let reqs: Vec<&Request> = sent.iter().map(|(r, _)| &r.req).collect();
    filler.read(&reqs).await;
    for (read, ek) in sent {
        if let Lookup::Hit(reply) = l1.get(&ek) {
            warmed += 1;
            *budget.used.entry(read.ns.clone()).or_default() += L1::entry_weight(&ek, reply.len());
        }
    }
    warmed
}

/// The read that fills each key, by its type (one pipelined TYPE per key).
async fn reads_by_type(conn: &Conn, keys: Vec<(Bytes, Arc<str>)>) -> Result<Vec<Read>, AdminError> {
    let mut cmd = Vec::new();
    for (k, _) in &keys {
        cmd.extend_from_slice(&encode_command(&[Bytes::from_static(b"TYPE"), k.clone()]));
    }
    let replies = scan::request(conn, Bytes::from(cmd), keys.len() as u32).await?;
    let reads = keys
        .into_iter()
        .zip(split_frames(&replies))
        .filter_map(|((key, ns), ty)| {
            let name: &'static [u8] = match scan::bulk(&ty)?.as_ref() {
                b"string" => b"GET",
                b"hash" => b"HGETALL",
                b"set" => b"SMEMBERS",
                _ => return None,
            };
            Some(Read {
                ns,
                req: Request::from_args([Bytes::from_static(name), key]),
            })
        })
        .collect();
    Ok(reads)
}

/// Decrements `Shared::warming` when a namespace's start-up warming ends, however.
struct Warming<'a>(&'a AtomicUsize);

impl Drop for Warming<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Warms the `warm = true` namespaces in the background, one after the other;
/// `Shared::warming` counts those not done yet.
pub fn spawn_on_start(shared: &Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let rules: Vec<_> = shared
        .policy
        .load()
        .rules()
        .iter()
        .filter(|r| r.warm && r.l1)
        .cloned()
        .collect();
    if rules.is_empty() {
        return;
    }
    shared.warming.fetch_add(rules.len(), Ordering::AcqRel);
    let shared = shared.clone();
    tokio::spawn(async move {
        let guards: Vec<_> = rules.iter().map(|_| Warming(&shared.warming)).collect();
        let all = async {
            for (rule, guard) in rules.iter().zip(guards) {
                warm_namespace(&shared, &rule.name, &rule.pattern).await;
                drop(guard);
            }
        };
        tokio::select! {
            () = all => {}
            _ = stop.changed() => {}
        }
    });
}

/// Warms one namespace at start-up, retrying (with backoff) until it completes once.
async fn warm_namespace(shared: &Arc<Shared>, name: &str, pattern: &str) {
    let (min, max) = shared.upstream.backoff();
    let mut backoff = min;
    let key = shared.upstream.initial_key();
    loop {
        wait_until_fills_stick(shared).await;
        let progress = shared
            .admin
            .begin(OpKind::Warm, pattern.as_bytes(), String::new());
        let job = WarmJob {
            pattern: Bytes::copy_from_slice(pattern.as_bytes()),
            batch: shared.config.admin.batch,
            pause: shared.config.admin.pause,
        };
        match run(shared, &key, &job, &progress.progress).await {
            Ok(n) => {
                info!(namespace = name, keys = n, elapsed = ?progress.progress.started.elapsed(), "L1 warmed");
                return;
            }
            Err(e) => warn!(namespace = name, error = %e, "warming failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max);
    }
}

/// Runs one warm-up on connections of its own (for `key`'s db and user); entries are
/// filled for `key`'s protocol.
pub async fn run(
    shared: &Arc<Shared>,
    key: &PoolKey,
    job: &WarmJob,
    progress: &Progress,
) -> Result<u64, AdminError> {
    let scan_key = PoolKey {
        resp3: false,
        ..key.clone()
    };
    let conn = shared.upstream.dedicated(&scan_key).await?;
    let mut filler = Filler::new(shared.clone(), key.clone()).await?;
    let n = warm(shared, &conn, &mut filler, job, progress).await?;
    shared.upstream.release(&scan_key, conn);
    Ok(n)
}

/// Waits until a fill would be kept: Redis reachable and, with tracking, tracking
/// established (fills are dropped until then); with the invalidation listener, until
/// it has subscribed (it flushes L1 when it does).
async fn wait_until_fills_stick(shared: &Shared) {
    let ready = || {
        shared.upstream.is_up()
            && shared.tracking.as_ref().is_none_or(|t| t.is_up())
            && (!shared.admin.listener_on.load(Ordering::Acquire)
                || shared.admin.listener_up.load(Ordering::Acquire))
    };
    while !ready() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
