//! Every metric the proxy exports, declared once in [`ALL`], and the counters behind
//! them.
//!
//! Hot paths count with plain atomics in the structs that own the events:
//! [`Requests`] and [`Clients`] here (reached through [`Metrics`]),
//! [`NamespaceStats`] in each policy rule (hits, misses, L1 bytes, compression),
//! [`UpstreamStats`] in the upstream (latency, errors, reconnects), `l1::Stats` in the
//! L1 (coalesced waiters, invalidations by source). Nothing on a request's path looks up
//! a registry, hashes, locks or allocates for a metric. A scrape of `/metrics`
//! (`observe`) copies the atomics into a Prometheus recorder of that instance's own
//! (no global recorder: tests run several proxies in one process) and renders it.
//!
//! Names are prefixed `respite_`; labels are low-cardinality only: namespace name,
//! command kind, outcome, source, reason, cause, Redis's db number and maxmemory
//! policy. Never a key or a client address.
//!
//! Redis's own state (`respite_upstream_*` from INFO, `respite_namespace_redis_*`
//! sampled) is not counted here: `observe::poll` keeps the last snapshot and the
//! scrape renders it ([`Def::polled`]).

pub mod clock;
mod histogram;
mod latency;
mod stats;
mod striped;

use std::sync::Arc;

pub use histogram::{BOUNDS, LatencyHistogram, LocalHistogram};
pub use latency::{CLIENT_BOUNDS_US, ClientLatency, LatencyBatch};
pub use stats::{
    AdminAuth, CacheResult, ClientGuard, Clients, InvalidationSource, Invalidations, NO_NAMESPACE,
    NamespaceStats, Namespaces, Outcome, Reloads, Requests, UPSTREAM_ERROR_REASONS, UpstreamStats,
};

/// The Prometheus type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// One metric: its name, type, help text and label names, in one place.
#[derive(Debug, Clone, Copy)]
pub struct Def {
    pub name: &'static str,
    pub kind: Type,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    /// Redis's own state, written at each scrape from the poller's last snapshot
    /// (`observe/snapshot.rs`), not through the recorder: its series come and go (a
    /// policy label, a db, a namespace removed by a reload) and Redis's totals restart
    /// from 0 when it does, which a recorder's monotonic counters could not show.
    pub polled: bool,
}

const fn def(
    name: &'static str,
    kind: Type,
    labels: &'static [&'static str],
    help: &'static str,
) -> Def {
    Def {
        name,
        kind,
        help,
        labels,
        polled: false,
    }
}

/// A metric of Redis's own state (see [`Def::polled`]).
const fn polled(
    name: &'static str,
    kind: Type,
    labels: &'static [&'static str],
    help: &'static str,
) -> Def {
    Def {
        polled: true,
        ..def(name, kind, labels, help)
    }
}

use Type::{Counter, Gauge, Histogram};

pub const BUILD_INFO: Def = def(
    "respite_build_info",
    Gauge,
    &["version"],
    "Always 1; the version label is the running respite's.",
);
pub const REQUESTS: Def = def(
    "respite_requests_total",
    Counter,
    &["kind", "outcome"],
    "Client commands by kind (read, write, admin, stateful, blocking, pubsub, connection, unknown) and outcome: l1_hit, l1_stale (served from L1), ok, redis_error (Redis replied with an error), upstream_error (the proxy's -ERR upstream ...), local (answered by the proxy). Commands relayed in streaming mode (after SUBSCRIBE, MONITOR) are not counted.",
);
pub const CLIENTS_CONNECTED: Def = def(
    "respite_clients_connected",
    Gauge,
    &[],
    "Client connections open now.",
);
pub const CLIENTS_CONNECTIONS: Def = def(
    "respite_clients_connections_total",
    Counter,
    &[],
    "Client connections accepted.",
);
pub const CLIENTS_REJECTED: Def = def(
    "respite_clients_rejected_total",
    Counter,
    &[],
    "Client connections refused because server.max_clients were open, or server.max_clients_per_ip from the same address.",
);
pub const CLIENTS_OVER_LIMIT: Def = def(
    "respite_clients_output_limit_closed_total",
    Counter,
    &[],
    "Clients closed for queueing more reply bytes than server.output_buffer_limit.",
);
pub const CLIENTS_TLS_FAILED: Def = def(
    "respite_clients_tls_handshake_failures_total",
    Counter,
    &[],
    "TLS client connections closed because their handshake failed or took longer than server.tls_handshake_timeout.",
);
pub const CLIENTS_MAX: Def = def("respite_clients_max", Gauge, &[], "server.max_clients.");
pub const L1_HITS: Def = def(
    "respite_l1_hits_total",
    Counter,
    &["namespace"],
    "Cacheable reads answered from L1 (MGET counts each key).",
);
pub const L1_MISSES: Def = def(
    "respite_l1_misses_total",
    Counter,
    &["namespace"],
    "Cacheable reads not in L1 (or not fresh), read from Redis.",
);
pub const L1_STALE: Def = def(
    "respite_l1_stale_total",
    Counter,
    &["namespace"],
    "Expired L1 entries served because Redis was unreachable (stale_if_error).",
);
pub const L1_EVICTIONS: Def = def(
    "respite_l1_evictions_total",
    Counter,
    &["namespace", "cause"],
    "L1 entries removed by the cache itself: cause=size (to stay within l1.max_memory, including entries refused admission) or cause=expired.",
);
pub const L1_ENTRIES: Def = def(
    "respite_l1_entries",
    Gauge,
    &["namespace"],
    "Entries in L1.",
);
pub const L1_BYTES: Def = def(
    "respite_l1_bytes",
    Gauge,
    &["namespace"],
    "Bytes of L1 (key, value and per-entry overhead), as counted against l1.max_memory.",
);
pub const L1_MEMORY: Def = def(
    "respite_l1_memory_bytes",
    Gauge,
    &[],
    "Bytes of L1 in use, all namespaces (the figure l1.max_memory bounds).",
);
pub const L1_MAX: Def = def("respite_l1_max_bytes", Gauge, &[], "l1.max_memory.");
pub const L1_COALESCED: Def = def(
    "respite_l1_coalesced_total",
    Counter,
    &[],
    "L1 misses that waited for a read already in flight instead of sending their own.",
);
pub const L1_FILLS_DROPPED: Def = def(
    "respite_l1_fills_dropped_total",
    Counter,
    &[],
    "Replies not stored in L1 because the key changed while they were read, tracking was down, or the key expires at once.",
);
pub const INVALIDATIONS: Def = def(
    "respite_invalidations_total",
    Counter,
    &["source"],
    "L1 invalidations by source: keys reported by Redis tracking (tracking), written through this proxy (local_write) or deleted by pattern (pattern); whole flushes (FLUSHALL, FLUSHDB, SWAPDB, RESPITE FLUSHL1, a flush reported by tracking) count one each (flush); a user's entries dropped after an ACL change of that user count one per user, ACL LOAD one (acl).",
);
pub const TRACKING_UP: Def = def(
    "respite_tracking_up",
    Gauge,
    &[],
    "1 while the CLIENT TRACKING connection is established (present with an L1 and coherence = tracking).",
);
pub const UPSTREAM_UP: Def = def(
    "respite_upstream_up",
    Gauge,
    &[],
    "1 while a connection of the initial upstream pool is up.",
);
pub const UPSTREAM_LATENCY: Def = def(
    "respite_upstream_request_duration_seconds",
    Histogram,
    &[],
    "Time from a request being taken by an upstream connection to its reply being read.",
);
pub const UPSTREAM_ERRORS: Def = def(
    "respite_upstream_errors_total",
    Counter,
    &["reason"],
    "Upstream failures: failed connections and connect attempts by reason (unavailable, connection_lost, protocol, rejected), and requests that got no reply within upstream.request_timeout (timeout).",
);
pub const UPSTREAM_RECONNECTS: Def = def(
    "respite_upstream_reconnects_total",
    Counter,
    &[],
    "Upstream connections re-established after a failure.",
);
pub const CACHE_REQUESTS: Def = def(
    "respite_cache_requests_total",
    Counter,
    &["namespace", "result"],
    "Cacheable reads (GET-like reads of a key in a namespace; MGET counts each key) by where the value was found, whole stack: result=l1_hit (from L1), l2_hit (from Redis), miss (nil or empty, from either). Errors are not counted.",
);
pub const REQUEST_DURATION: Def = def(
    "respite_request_duration_seconds",
    Histogram,
    &["namespace", "kind"],
    "Client commands from their arrival (the read that brought them) to their reply being queued for the client, by namespace of their first key (\"(none)\" without one) and kind.",
);
pub const COMPRESS_IN: Def = def(
    "respite_compression_bytes_in_total",
    Counter,
    &["namespace"],
    "Value bytes given to the compressor.",
);
pub const COMPRESS_OUT: Def = def(
    "respite_compression_bytes_out_total",
    Counter,
    &["namespace"],
    "Bytes the compressor produced from them (in / out is the compression ratio).",
);
pub const COMPRESS_DECODE_ERRORS: Def = def(
    "respite_compression_decode_errors_total",
    Counter,
    &["reason"],
    "Stored values of compressing namespaces that start like a compression envelope but could not be opened, so the client got an error instead: reason=too_large (claims more than server.max_bulk_len), unsupported (format version, codec or dictionary this respite does not have), corrupt (damaged or cut short).",
);
pub const CONFIG_RELOADS: Def = def(
    "respite_config_reloads_total",
    Counter,
    &["outcome"],
    "Configuration reloads by outcome (ok, error).",
);
pub const CONFIG_LAST_RELOAD_OK: Def = def(
    "respite_config_last_reload_successful",
    Gauge,
    &[],
    "1 if the last configuration reload succeeded (or none was tried), 0 if it failed.",
);
pub const ADMIN_AUTH_FAILURES: Def = def(
    "respite_admin_auth_failures_total",
    Counter,
    &["reason"],
    "RESPITE AUTH attempts refused: reason=wrong_password (the password did not match [admin] password), rate_limited (refused without comparing: the source address failed too often in the last minute).",
);

pub const UPSTREAM_INFO_UP: Def = polled(
    "respite_upstream_info_up",
    Gauge,
    &[],
    "1 if Redis answered the last poll of its INFO (every metrics.upstream_poll, on a connection of its own), 0 if it did not; absent with metrics.upstream_poll = off.",
);
pub const UPSTREAM_INFO_AGE: Def = polled(
    "respite_upstream_info_age_seconds",
    Gauge,
    &[],
    "Seconds since Redis last answered the INFO poll: how old the other respite_upstream_* figures from INFO are (absent until the first answer).",
);
pub const UPSTREAM_USED_MEMORY: Def = polled(
    "respite_upstream_used_memory_bytes",
    Gauge,
    &[],
    "Redis's used_memory (INFO memory): bytes its allocator holds for data and overhead.",
);
pub const UPSTREAM_MAXMEMORY: Def = polled(
    "respite_upstream_maxmemory_bytes",
    Gauge,
    &[],
    "Redis's maxmemory (INFO memory); 0 is no limit.",
);
pub const UPSTREAM_MAXMEMORY_POLICY: Def = polled(
    "respite_upstream_maxmemory_policy",
    Gauge,
    &["policy"],
    "Always 1; the policy label is Redis's maxmemory-policy (noeviction, allkeys-lru, volatile-ttl, ...).",
);
pub const UPSTREAM_EVICTED: Def = polled(
    "respite_upstream_evicted_keys_total",
    Counter,
    &[],
    "Keys Redis evicted to stay within maxmemory (INFO stats evicted_keys, Redis's own total: it restarts from 0 when Redis restarts or on CONFIG RESETSTAT).",
);
pub const UPSTREAM_EXPIRED: Def = polled(
    "respite_upstream_expired_keys_total",
    Counter,
    &[],
    "Keys Redis deleted because their TTL passed (INFO stats expired_keys, Redis's own total).",
);
pub const UPSTREAM_KEYSPACE_HITS: Def = polled(
    "respite_upstream_keyspace_hits_total",
    Counter,
    &[],
    "Key lookups that found the key, for every client of Redis, respite included (INFO stats keyspace_hits, Redis's own total).",
);
pub const UPSTREAM_KEYSPACE_MISSES: Def = polled(
    "respite_upstream_keyspace_misses_total",
    Counter,
    &[],
    "Key lookups that did not find the key, for every client of Redis (INFO stats keyspace_misses, Redis's own total).",
);
pub const UPSTREAM_KEYS: Def = polled(
    "respite_upstream_keys",
    Gauge,
    &["db"],
    "Keys in each Redis db (INFO keyspace); a db without keys is absent.",
);
pub const UPSTREAM_CLIENTS: Def = polled(
    "respite_upstream_connected_clients",
    Gauge,
    &[],
    "Client connections Redis has (INFO clients connected_clients), respite's own included.",
);
pub const NAMESPACE_REDIS_KEYS: Def = polled(
    "respite_namespace_redis_keys",
    Gauge,
    &["namespace"],
    "Keys of each namespace in Redis (the upstream URL's db), estimated every metrics.namespace_sizes: counted when a bounded SCAN covers the whole db, else extrapolated from the part it covered.",
);
pub const NAMESPACE_REDIS_BYTES: Def = polled(
    "respite_namespace_redis_bytes",
    Gauge,
    &["namespace"],
    "Bytes of each namespace in Redis: its estimated keys times the mean MEMORY USAGE of a sample of them (the sum when the sample is the whole namespace).",
);

/// Every metric, in the order `--list-metrics` prints them.
pub const ALL: &[Def] = &[
    BUILD_INFO,
    REQUESTS,
    CLIENTS_CONNECTED,
    CLIENTS_CONNECTIONS,
    CLIENTS_REJECTED,
    CLIENTS_OVER_LIMIT,
    CLIENTS_TLS_FAILED,
    CLIENTS_MAX,
    L1_HITS,
    L1_MISSES,
    L1_STALE,
    L1_EVICTIONS,
    L1_ENTRIES,
    L1_BYTES,
    L1_MEMORY,
    L1_MAX,
    L1_COALESCED,
    L1_FILLS_DROPPED,
    INVALIDATIONS,
    TRACKING_UP,
    UPSTREAM_UP,
    UPSTREAM_LATENCY,
    UPSTREAM_ERRORS,
    UPSTREAM_RECONNECTS,
    CACHE_REQUESTS,
    REQUEST_DURATION,
    COMPRESS_IN,
    COMPRESS_OUT,
    COMPRESS_DECODE_ERRORS,
    CONFIG_RELOADS,
    CONFIG_LAST_RELOAD_OK,
    ADMIN_AUTH_FAILURES,
    UPSTREAM_INFO_UP,
    UPSTREAM_INFO_AGE,
    UPSTREAM_USED_MEMORY,
    UPSTREAM_MAXMEMORY,
    UPSTREAM_MAXMEMORY_POLICY,
    UPSTREAM_EVICTED,
    UPSTREAM_EXPIRED,
    UPSTREAM_KEYSPACE_HITS,
    UPSTREAM_KEYSPACE_MISSES,
    UPSTREAM_KEYS,
    UPSTREAM_CLIENTS,
    NAMESPACE_REDIS_KEYS,
    NAMESPACE_REDIS_BYTES,
];

/// The counters of one proxy instance that sessions and the accept loop bump, and the
/// per-namespace stats the policy rules point to.
#[derive(Default)]
pub struct Metrics {
    pub requests: Requests,
    pub clients: Arc<Clients>,
    pub reloads: Reloads,
    pub admin_auth: AdminAuth,
    /// Per-namespace stats by name; rules of every policy (reloads too) attach to them.
    pub namespaces: Arc<Namespaces>,
}

impl Metrics {
    /// Counts one client command.
    #[inline]
    pub fn request(&self, kind: crate::command::Kind, outcome: Outcome) {
        self.requests.add(kind, outcome);
    }
}

/// The metric table as text, one metric a line: name, type, labels, help.
pub fn describe() -> String {
    let mut out = String::new();
    for d in ALL {
        let labels = if d.labels.is_empty() {
            "-".to_owned()
        } else {
            d.labels.join(",")
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            d.name,
            d.kind.as_str(),
            labels,
            d.help
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_name_is_declared_once() {
        let mut seen = HashSet::new();
        for d in ALL {
            assert!(seen.insert(d.name), "{} is declared twice", d.name);
        }
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        const ALLOWED_LABELS: &[&str] = &[
            "namespace",
            "kind",
            "outcome",
            "source",
            "reason",
            "cause",
            "version",
            "db",
            "policy",
            "result",
        ];
        for d in ALL {
            assert!(d.name.starts_with("respite_"), "{}", d.name);
            assert!(
                d.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                d.name
            );
            assert_eq!(
                d.kind == Type::Counter,
                d.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                d.name
            );
            assert!(!d.help.is_empty(), "{} has no help", d.name);
            for l in d.labels {
                assert!(ALLOWED_LABELS.contains(l), "{}: label {l}", d.name);
            }
        }
    }

    #[test]
    fn describe_lists_every_metric() {
        let text = describe();
        assert_eq!(text.lines().count(), ALL.len());
        assert!(text.contains("respite_requests_total\tcounter\tkind,outcome\t"));
    }
}
