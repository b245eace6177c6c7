//! `RESPITE WARM <glob>` and `warm = true`: SCAN for matching keys and read each one
//! in a cached namespace through L1's read-through, so it is in L1 before clients ask.
//!
//! An entry is filled exactly as a client's read fills it (generation guard, TTL
//! bound, protocol, compressed values restored). What is read
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

use super::{OpError, OpKind, Operations, Progress, scan};
use crate::{
    compress::Opener,
    l1::{Keep, L1, Load, Lookup, Served, cacheable},
    policy::{Compress, Policy, Rules},
    protocol::{
        reply::split_frames,
        request::{Request, encode_command},
    },
    rewrite::fill_rewrite,
    upstream::{Conn, Pool, PoolKey, ReplyTo, Upstream},
};

/// What warming reads with.
pub struct Warmer {
    pub upstream: Arc<Upstream>,
    pub l1: Arc<L1>,
    pub policy: Arc<Rules>,
    pub operations: Arc<Operations>,
    /// Keys per SCAN page (`[admin] batch`) and the pause after each (`[admin] pause`).
    pub batch: usize,
    pub pause: Duration,
    /// Opens compressed values before they are cached.
    pub opener: Opener,
}

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
async fn warm(
    w: &Warmer,
    conn: &Conn,
    reader: &Reader,
    job: &WarmJob,
    progress: &Progress,
) -> Result<u64, OpError> {
    let mut budget = Budget::new(&w.l1, &w.policy.load());
    let mut warmed = 0;
    let mut cursor = 0;
    loop {
        let page = scan::page(conn, cursor, &job.pattern, job.batch).await?;
        cursor = page.cursor;
        progress
            .matched
            .fetch_add(page.keys.len() as u64, Ordering::Relaxed);
        let candidates: Vec<(Bytes, Arc<str>)> = {
            let policy = w.policy.load();
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
                warmed += fill(w, reader, &mut budget, chunk).await;
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

/// Who the entries are read for: a db, user and protocol, and the pool to read on.
struct Reader {
    key: PoolKey,
    scope: u64,
    pool: Arc<Pool>,
}

/// Reads `chunk` through L1 (those not cached yet, in namespaces with room); returns
/// how many of its keys are in L1 now.
async fn fill(w: &Warmer, reader: &Reader, budget: &mut Budget, chunk: &[Read]) -> u64 {
    let mut warmed = 0;
    let mut sent = Vec::with_capacity(chunk.len());
    let policy = w.policy.load();
    for read in chunk {
        let Some(c) = cacheable(&read.req.args, reader.key.resp3) else {
            continue;
        };
        let key = &read.req.args[c.key_index];
        let Some(rule) = policy.lookup(key).filter(|r| r.l1) else {
            continue;
        };
        let ek = crate::l1::EntryKey::new(reader.key.db, reader.scope, key.clone(), c.sig)
            .in_namespace(rule.stats.id);
        if matches!(w.l1.get(&ek), Lookup::Hit(_)) {
            warmed += 1;
            continue;
        }
        if !budget.has_room(&read.ns) {
            continue;
        }
        let restore = (rule.compress != Compress::None)
            .then(|| fill_rewrite(&read.req.args).map(|(_, r)| (r, w.opener.clone())))
            .flatten();
        let keep = Keep {
            l1_ttl: rule.l1_ttl,
            stale_if_error: rule.stale_if_error,
        };
        let load = Load {
            cmd: &read.req.raw,
            restore,
        };
        let conn = reader.pool.conn(0);
        let served =
            w.l1.read_through(ek.clone(), keep, false, load, |cmd, frames, filling| {
                conn.request_with(
                    cmd,
                    frames,
                    ReplyTo::Hook(Box::new(move |r| filling.finish(r))),
                );
            });
        if let Served::Pending(rx) | Served::Joined(rx) = served {
            sent.push((read, ek, rx));
        }
    }
    for (read, ek, rx) in sent {
        let _ = rx.await;
        if let Lookup::Hit(reply) = w.l1.get(&ek) {
            warmed += 1;
            *budget.used.entry(read.ns.clone()).or_default() += L1::entry_weight(&ek, reply.len());
        }
    }
    warmed
}

/// The read that fills each key, by its type (one pipelined TYPE per key).
async fn reads_by_type(conn: &Conn, keys: Vec<(Bytes, Arc<str>)>) -> Result<Vec<Read>, OpError> {
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

/// Decrements the count of warmings left when a namespace's start-up warming ends,
/// however.
struct Warming(Arc<AtomicUsize>);

impl Drop for Warming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Warms the `warm = true` namespaces in the background, one after the other, once
/// `fills_stick` (a fill would be kept: Redis reachable, invalidations flowing);
/// `warming` counts those not done yet.
pub fn spawn_on_start(
    w: Arc<Warmer>,
    warming: Arc<AtomicUsize>,
    fills_stick: impl Fn() -> bool + Send + Sync + 'static,
    mut stop: watch::Receiver<bool>,
) {
    let rules: Vec<_> = w
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
    warming.fetch_add(rules.len(), Ordering::AcqRel);
    tokio::spawn(async move {
        let guards: Vec<_> = rules.iter().map(|_| Warming(warming.clone())).collect();
        let all = async {
            for (rule, guard) in rules.iter().zip(guards) {
                while !fills_stick() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                warm_namespace(&w, &rule.name, &rule.pattern).await;
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
async fn warm_namespace(w: &Warmer, name: &str, pattern: &str) {
    let (min, max) = w.upstream.backoff();
    let mut backoff = min;
    let key = w.upstream.initial_key();
    loop {
        let progress = w
            .operations
            .begin(OpKind::Warm, pattern.as_bytes(), String::new());
        let job = WarmJob {
            pattern: Bytes::copy_from_slice(pattern.as_bytes()),
            batch: w.batch,
            pause: w.pause,
        };
        match run(w, &key, &job, &progress.progress).await {
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

/// Runs one warm-up: SCAN on a connection of its own (for `key`'s db and user), reads
/// on `key`'s pool; entries are filled for `key`'s protocol.
pub async fn run(
    w: &Warmer,
    key: &PoolKey,
    job: &WarmJob,
    progress: &Progress,
) -> Result<u64, OpError> {
    let scan_key = PoolKey {
        resp3: false,
        ..key.clone()
    };
    let conn = w.upstream.dedicated(&scan_key).await?;
    let reader = Reader {
        key: key.clone(),
        scope: w.l1.scope_of(key.creds.as_deref()),
        pool: w.upstream.pool(key).await?,
    };
    let n = warm(w, &conn.conn, &reader, job, progress).await?;
    w.upstream.release(&scan_key, conn);
    Ok(n)
}
