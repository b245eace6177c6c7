//! The atomics behind the metrics, kept by whoever sees the events. Bumping one is a
//! relaxed `fetch_add` on a field reached without a lookup.

use std::sync::{
    Arc,
    atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
};

use super::{histogram::LatencyHistogram, latency::ClientLatency, striped::Striped};
use crate::{command::Kind, error::Error};

/// How a client command was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From L1, fresh.
    L1Hit,
    /// From L1 past its freshness, because Redis is unreachable (`stale_if_error`).
    L1Stale,
    /// Redis's reply, not an error.
    Ok,
    /// Redis replied with an error frame.
    RedisError,
    /// No reply from Redis: the proxy answered `-ERR upstream …`.
    Error,
    /// Answered by the proxy itself (CLIENT SETNAME, RESPITE, QUIT, refusals…).
    Local,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::L1Hit,
        Outcome::L1Stale,
        Outcome::Ok,
        Outcome::RedisError,
        Outcome::Error,
        Outcome::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::L1Hit => "l1_hit",
            Outcome::L1Stale => "l1_stale",
            Outcome::Ok => "ok",
            Outcome::RedisError => "redis_error",
            Outcome::Error => "upstream_error",
            Outcome::Local => "local",
        }
    }

    /// The outcome of a reply Redis sent.
    #[inline]
    pub fn of_redis_reply(frame: &[u8]) -> Outcome {
        match frame.first() {
            Some(b'-' | b'!') => Outcome::RedisError,
            _ => Outcome::Ok,
        }
    }

    /// The outcome of a reply the proxy made: its upstream errors say `-ERR upstream`.
    #[inline]
    pub fn of_local_reply(frame: &[u8]) -> Outcome {
        if frame.starts_with(b"-ERR upstream ") {
            Outcome::Error
        } else {
            Outcome::Local
        }
    }
}

const REQUEST_CELLS: usize = Kind::ALL.len() * Outcome::ALL.len();

/// Client commands by kind and outcome.
#[derive(Default)]
pub struct Requests {
    counts: Striped<REQUEST_CELLS>,
}

impl Requests {
    #[inline]
    pub fn add(&self, kind: Kind, outcome: Outcome) {
        self.counts.add(Self::cell(kind, outcome), 1);
    }

    pub fn get(&self, kind: Kind, outcome: Outcome) -> u64 {
        self.counts.get(Self::cell(kind, outcome))
    }

    fn cell(kind: Kind, outcome: Outcome) -> usize {
        kind as usize * Outcome::ALL.len() + outcome as usize
    }
}

/// Client connections.
#[derive(Default)]
pub struct Clients {
    connected: AtomicI64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// Closed for queueing more than `output_buffer_limit`.
    pub over_limit: AtomicU64,
    /// TLS clients closed for a failed or late handshake.
    pub tls_failed: AtomicU64,
}

impl Clients {
    /// Counts a connection in; it is counted out when the guard drops.
    pub fn connect(self: &Arc<Self>) -> ClientGuard {
        self.accepted.fetch_add(1, Relaxed);
        self.connected.fetch_add(1, Relaxed);
        ClientGuard(self.clone())
    }

    pub fn reject(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    pub fn over_limit(&self) {
        self.over_limit.fetch_add(1, Relaxed);
    }

    pub fn tls_failed(&self) {
        self.tls_failed.fetch_add(1, Relaxed);
    }

    pub fn connected(&self) -> u64 {
        self.connected.load(Relaxed).max(0) as u64
    }
}

/// One open client connection (see [`Clients::connect`]).
pub struct ClientGuard(Arc<Clients>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Relaxed);
    }
}

/// Failed `RESPITE AUTH` attempts, by reason.
#[derive(Default)]
pub struct AdminAuth {
    /// The password did not match.
    pub wrong_password: AtomicU64,
    /// Refused unread: the source address failed too often lately.
    pub rate_limited: AtomicU64,
}

impl AdminAuth {
    /// Label values of `respite_admin_auth_failures_total`'s `reason`, with counts.
    pub fn failures(&self) -> [(&'static str, u64); 2] {
        [
            ("wrong_password", self.wrong_password.load(Relaxed)),
            ("rate_limited", self.rate_limited.load(Relaxed)),
        ]
    }
}

/// Configuration reloads by outcome. Call [`Reloads::record`] once per reload attempt.
pub struct Reloads {
    ok: AtomicU64,
    error: AtomicU64,
    last_ok: std::sync::atomic::AtomicBool,
}

impl Default for Reloads {
    fn default() -> Self {
        Self {
            ok: AtomicU64::new(0),
            error: AtomicU64::new(0),
            last_ok: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl Reloads {
    pub fn record(&self, ok: bool) {
        if ok { &self.ok } else { &self.error }.fetch_add(1, Relaxed);
        self.last_ok.store(ok, Relaxed);
    }

    /// (ok, error) counts.
    pub fn counts(&self) -> (u64, u64) {
        (self.ok.load(Relaxed), self.error.load(Relaxed))
    }

    pub fn last_ok(&self) -> bool {
        self.last_ok.load(Relaxed)
    }
}

/// Where an L1 invalidation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidationSource {
    /// Keys Redis reported through CLIENT TRACKING.
    Tracking,
    /// Keys written through this proxy.
    LocalWrite,
    /// Keys deleted by pattern.
    Pattern,
    /// Whole flushes (one per FLUSHALL, FLUSHDB, SWAPDB, RESPITE FLUSHL1).
    Flush,
    /// A user's entries, after an ACL change of that user (one per user; one for
    /// ACL LOAD, which drops every user's).
    Acl,
}

impl InvalidationSource {
    pub const ALL: [InvalidationSource; 5] = [
        InvalidationSource::Tracking,
        InvalidationSource::LocalWrite,
        InvalidationSource::Pattern,
        InvalidationSource::Flush,
        InvalidationSource::Acl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvalidationSource::Tracking => "tracking",
            InvalidationSource::LocalWrite => "local_write",
            InvalidationSource::Pattern => "pattern",
            InvalidationSource::Flush => "flush",
            InvalidationSource::Acl => "acl",
        }
    }
}

/// L1 invalidations by source (kept in `l1::Stats`).
#[derive(Default)]
pub struct Invalidations {
    counts: [AtomicU64; InvalidationSource::ALL.len()],
}

impl Invalidations {
    #[inline]
    pub fn add(&self, source: InvalidationSource, n: u64) {
        self.counts[source as usize].fetch_add(n, Relaxed);
    }

    pub fn get(&self, source: InvalidationSource) -> u64 {
        self.counts[source as usize].load(Relaxed)
    }
}

/// The counters of one `[[namespace]]`, shared by every policy that has a rule of
/// that name (a reload keeps them). `id` is what L1 entries record to be counted back
/// out when they leave; 0 is a rule not attached to any [`Namespaces`].
#[derive(Debug, Default)]
pub struct NamespaceStats {
    pub id: u32,
    pub name: Arc<str>,
    /// L1 hits, misses and stale serves: counted on every cached read.
    l1: Striped<3>,
    pub evicted_size: AtomicU64,
    pub evicted_expired: AtomicU64,
    /// L1 entries and bytes now (moved by L1 inserts and its eviction listener).
    pub entries: AtomicI64,
    pub bytes: AtomicI64,
    /// Value bytes given to the compressor, and the bytes it produced.
    pub compress_in: AtomicU64,
    pub compress_out: AtomicU64,
    /// Cacheable reads by where the value was found (see [`CacheResult`]).
    cache: Striped<3>,
    /// Client-side latency of the namespace's commands, by kind.
    pub latency: ClientLatency,
}

/// Where a cacheable read found its value, whole stack: L1, Redis (L2), or nowhere
/// (nil or empty, from either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    L1Hit,
    L2Hit,
    Miss,
}

impl CacheResult {
    pub const ALL: [CacheResult; 3] = [CacheResult::L1Hit, CacheResult::L2Hit, CacheResult::Miss];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::L1Hit => "l1_hit",
            CacheResult::L2Hit => "l2_hit",
            CacheResult::Miss => "miss",
        }
    }

    /// The result of a read answered with `frame` (from L1 if `from_l1`); None for an
    /// error, which is not a lookup.
    pub fn of(frame: &[u8], from_l1: bool) -> Option<CacheResult> {
        let found = match frame {
            [b'-' | b'!', ..] => return None,
            b"$-1\r\n" | b"*-1\r\n" | b"_\r\n" | b"*0\r\n" | b"%0\r\n" | b"~0\r\n" => false,
            _ => true,
        };
        Some(match (found, from_l1) {
            (false, _) => CacheResult::Miss,
            (true, true) => CacheResult::L1Hit,
            (true, false) => CacheResult::L2Hit,
        })
    }
}

const HITS: usize = 0;
const MISSES: usize = 1;
const STALE: usize = 2;

impl NamespaceStats {
    #[inline]
    pub fn count_hit(&self) {
        self.l1.add(HITS, 1);
    }

    #[inline]
    pub fn count_miss(&self) {
        self.l1.add(MISSES, 1);
    }

    #[inline]
    pub fn count_stale(&self) {
        self.l1.add(STALE, 1);
    }

    pub fn hits(&self) -> u64 {
        self.l1.get(HITS)
    }

    pub fn misses(&self) -> u64 {
        self.l1.get(MISSES)
    }

    pub fn stale(&self) -> u64 {
        self.l1.get(STALE)
    }

    #[inline]
    pub fn count_cache(&self, result: CacheResult) {
        self.cache.add(result as usize, 1);
    }

    pub fn cache(&self, result: CacheResult) -> u64 {
        self.cache.get(result as usize)
    }

    /// Counts an L1 entry of `weight` bytes in (`sign` 1) or out (-1).
    pub fn account(&self, weight: usize, sign: i64) {
        self.entries.fetch_add(sign, Relaxed);
        self.bytes.fetch_add(sign * weight as i64, Relaxed);
    }
}

/// The pseudo-namespace of commands whose key no rule matches (or without a key).
pub const NO_NAMESPACE: &str = "(none)";

/// Every namespace seen by this instance, by name; ids are positions from 1. Read
/// without a lock on the request path (registration, on a reload, swaps the list).
pub struct Namespaces {
    list: arc_swap::ArcSwap<Vec<Arc<NamespaceStats>>>,
    register: std::sync::Mutex<()>,
    /// Commands in no namespace (id 0): their latency.
    none: NamespaceStats,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self {
            list: Default::default(),
            register: Default::default(),
            none: NamespaceStats {
                name: Arc::from(NO_NAMESPACE),
                ..NamespaceStats::default()
            },
        }
    }
}

impl Namespaces {
    /// The stats of namespace `name`, created on first use.
    pub fn get_or_register(&self, name: &Arc<str>) -> Arc<NamespaceStats> {
        if let Some(s) = self.find(name) {
            return s;
        }
        let _one_at_a_time = self.register.lock().expect("namespaces");
        if let Some(s) = self.find(name) {
            return s;
        }
        let mut list = Vec::clone(&self.list.load());
        let stats = Arc::new(NamespaceStats {
            id: u32::try_from(list.len() + 1).expect("fewer than 2^32 namespaces"),
            name: name.clone(),
            ..NamespaceStats::default()
        });
        list.push(stats.clone());
        self.list.store(Arc::new(list));
        stats
    }

    fn find(&self, name: &str) -> Option<Arc<NamespaceStats>> {
        self.list.load().iter().find(|s| &*s.name == name).cloned()
    }

    /// Runs `f` on the stats of namespace `id` (nothing for 0 or an unknown id).
    pub fn with(&self, id: u32, f: impl FnOnce(&NamespaceStats)) {
        if id == 0 {
            return;
        }
        if let Some(s) = self.list.load().get(id as usize - 1) {
            f(s);
        }
    }

    /// Runs `f` on the stats of namespace `id`, or of [`NO_NAMESPACE`] for 0.
    #[inline]
    pub fn with_or_none(&self, id: u32, f: impl FnOnce(&NamespaceStats)) {
        match id.checked_sub(1) {
            Some(i) => {
                if let Some(s) = self.list.load().get(i as usize) {
                    f(s);
                }
            }
            None => f(&self.none),
        }
    }

    /// The stats of commands in no namespace.
    pub fn none(&self) -> &NamespaceStats {
        &self.none
    }

    /// Every namespace registered so far, in registration order.
    pub fn all(&self) -> Vec<Arc<NamespaceStats>> {
        Vec::clone(&self.list.load())
    }

    /// The sum of one counter over every namespace.
    pub fn sum(&self, field: impl Fn(&NamespaceStats) -> u64) -> u64 {
        self.list.load().iter().map(|s| field(s)).sum()
    }
}

/// Failure reasons, as [`Error::as_str`] names them.
pub const UPSTREAM_ERROR_REASONS: [&str; 5] = [
    "unavailable",
    "connection_lost",
    "timeout",
    "protocol",
    "rejected",
];

/// Upstream connection health and request latency (kept by `Upstream`, shared with
/// every connection task through `Settings`).
#[derive(Default)]
pub struct UpstreamStats {
    pub latency: LatencyHistogram,
    errors: [AtomicU64; UPSTREAM_ERROR_REASONS.len()],
    pub reconnects: AtomicU64,
}

impl UpstreamStats {
    pub fn error(&self, e: &Error) {
        let reason = e.as_str();
        if let Some(i) = UPSTREAM_ERROR_REASONS.iter().position(|r| *r == reason) {
            self.errors[i].fetch_add(1, Relaxed);
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        UPSTREAM_ERROR_REASONS
            .iter()
            .zip(&self.errors)
            .map(|(r, c)| (*r, c.load(Relaxed)))
    }

    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_index_their_row() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
        for (i, s) in InvalidationSource::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        let r = Requests::default();
        r.add(Kind::Write, Outcome::RedisError);
        assert_eq!(r.get(Kind::Write, Outcome::RedisError), 1);
        assert_eq!(r.get(Kind::Read, Outcome::RedisError), 0);
    }

    #[test]
    fn outcomes_of_replies() {
        assert_eq!(Outcome::of_redis_reply(b"+OK\r\n"), Outcome::Ok);
        assert_eq!(Outcome::of_redis_reply(b"-ERR x\r\n"), Outcome::RedisError);
        assert_eq!(
            Outcome::of_redis_reply(b"!3\r\nerr\r\n"),
            Outcome::RedisError
        );
        let e = Error::unavailable("down").to_reply();
        assert_eq!(Outcome::of_local_reply(&e), Outcome::Error);
        let e = Error::Timeout(std::time::Duration::from_secs(1)).to_reply();
        assert_eq!(Outcome::of_local_reply(&e), Outcome::Error);
        assert_eq!(Outcome::of_local_reply(b"+OK\r\n"), Outcome::Local);
    }

    #[test]
    fn every_upstream_error_has_a_reason_slot() {
        let s = UpstreamStats::default();
        for e in [
            Error::unavailable("x"),
            Error::ConnectionLost,
            Error::Timeout(std::time::Duration::ZERO),
            Error::upstream_protocol("x"),
            Error::Redis(bytes::Bytes::new()),
        ] {
            s.error(&e);
        }
        assert!(s.errors().all(|(_, n)| n == 1));
    }

    #[test]
    fn namespaces_keep_ids_by_name() {
        let ns = Namespaces::default();
        let a = ns.get_or_register(&Arc::from("a"));
        let b = ns.get_or_register(&Arc::from("b"));
        assert_eq!((a.id, b.id), (1, 2));
        assert!(Arc::ptr_eq(&a, &ns.get_or_register(&Arc::from("a"))));
        ns.with(2, |s| s.account(100, 1));
        ns.with(0, |_| panic!("id 0 is unattached"));
        assert_eq!(b.bytes.load(Relaxed), 100);
        a.count_hit();
        a.count_hit();
        b.count_hit();
        assert_eq!(ns.sum(NamespaceStats::hits), 3);
        let c = Arc::new(Clients::default());
        let g = c.connect();
        assert_eq!(c.connected(), 1);
        drop(g);
        assert_eq!(c.connected(), 0);
    }
}
