//! The figures `RESPITE STATS` reports, as field/value pairs.

use std::sync::atomic::Ordering::Relaxed;

use super::status::Status;
use crate::{
    invalidation::LinkState,
    metrics::{CacheResult, NamespaceStats},
};

impl Status {
    /// Upstream, coherence, clients, operations, L1 (overall and per cached namespace),
    /// compression and Redis's own state, as field/value pairs.
    pub fn stats_fields(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut field = |k: &str, v: String| fields.push((k.to_owned(), v));
        let up = if self.parts.upstream.is_up() {
            "up"
        } else {
            "down"
        };
        field("upstream", up.into());
        field(
            "tracking",
            LinkState::describe(self.parts.tracking.as_deref()).into(),
        );
        let (reloads_ok, reloads_failed) = self.parts.metrics.reloads.counts();
        field("config_reloads_ok", reloads_ok.to_string());
        field("config_reloads_failed", reloads_failed.to_string());
        for (reason, n) in self.parts.metrics.admin_auth.failures() {
            field(&format!("admin_auth_{reason}"), n.to_string());
        }
        let channel = LinkState::describe(self.parts.channel.as_deref());
        field("invalidation_channel", channel.into());
        field(
            "uptime_seconds",
            self.started.elapsed().as_secs().to_string(),
        );
        field(
            "clients",
            self.parts.metrics.clients.connected().to_string(),
        );
        let learned = crate::command::learned::count();
        field("learned_commands", learned.to_string());
        field("warming", self.parts.warming.load(Relaxed).to_string());
        field(
            "operations",
            self.parts.operations.running().len().to_string(),
        );
        if let Some(addr) = self.endpoint() {
            field("metrics_listen", addr.to_string());
        }
        if let Some(addr) = self.parts.tls_listen {
            field("tls_listen", addr.to_string());
            let failed = self.parts.metrics.clients.tls_failed.load(Relaxed);
            field("tls_handshake_failures", failed.to_string());
        }
        self.l1_fields(&mut fields);
        self.namespace_fields(&mut fields);
        self.compression_fields(&mut fields);
        self.redis_fields(&mut fields);
        fields
    }

    /// Per namespace, whole stack: requests (latency-counted), cacheable reads by
    /// where they were found, p95 latency in microseconds.
    fn namespace_fields(&self, fields: &mut Vec<(String, String)>) {
        let mut field = |k: String, v: String| fields.push((k, v));
        for rule in self.parts.policy.load().rules() {
            let (ns, name) = (&rule.stats, &rule.name);
            field(
                format!("ns:{name}:requests"),
                ns.latency.count().to_string(),
            );
            for result in CacheResult::ALL {
                let n = ns.cache(result).to_string();
                field(format!("ns:{name}:cache_{}", result.as_str()), n);
            }
            let p95 = ns.latency.quantile(0.95).map_or(0, |d| d.as_micros());
            field(format!("ns:{name}:p95_us"), p95.to_string());
        }
    }

    /// Redis's own state, as last polled (`upstream_*`) and sampled
    /// (`ns:<name>:redis_keys`, `ns:<name>:redis_bytes`); a figure not known yet (or
    /// with its poll off) is left out.
    fn redis_fields(&self, fields: &mut Vec<(String, String)>) {
        let redis = &self.parts.redis;
        if let Some((info, _)) = redis.info() {
            let figures = [
                ("upstream_used_memory", info.used_memory),
                ("upstream_maxmemory", info.maxmemory),
                ("upstream_evicted_keys", info.evicted_keys),
                ("upstream_expired_keys", info.expired_keys),
                ("upstream_keyspace_hits", info.keyspace_hits),
                ("upstream_keyspace_misses", info.keyspace_misses),
                ("upstream_connected_clients", info.connected_clients),
                ("upstream_keys", info.total_keys()),
            ];
            for (name, value) in figures {
                if let Some(v) = value {
                    fields.push((name.to_owned(), v.to_string()));
                }
            }
            if let Some(policy) = info.maxmemory_policy {
                fields.push(("upstream_maxmemory_policy".to_owned(), policy));
            }
        }
        for rule in self.parts.policy.load().rules() {
            let Some(size) = redis.size(&rule.name) else {
                continue;
            };
            let name = &rule.name;
            fields.push((format!("ns:{name}:redis_keys"), size.keys.to_string()));
            if let Some(bytes) = size.bytes {
                fields.push((format!("ns:{name}:redis_bytes"), bytes.to_string()));
            }
        }
    }

    fn l1_fields(&self, fields: &mut Vec<(String, String)>) {
        let mut field = |k: &str, v: String| fields.push((k.to_owned(), v));
        let (l1, namespaces) = (&self.parts.l1, &self.parts.metrics.namespaces);
        let (hits, misses) = (
            namespaces.sum(NamespaceStats::hits),
            namespaces.sum(NamespaceStats::misses),
        );
        field("l1_entries", l1.entries().to_string());
        field("l1_bytes", l1.bytes().to_string());
        field("l1_max_bytes", l1.max_bytes().to_string());
        field("l1_hits", hits.to_string());
        field("l1_misses", misses.to_string());
        field("l1_hit_ratio", ratio(hits, misses));
        field("l1_coalesced", l1.stats.coalesced.load(Relaxed).to_string());
        let stale = namespaces.sum(NamespaceStats::stale);
        field("l1_stale", stale.to_string());
        let dropped = l1.stats.fills_dropped.load(Relaxed);
        field("l1_fills_dropped", dropped.to_string());
        // Per namespace: the counters the metrics export too.
        for rule in self.parts.policy.load().rules().iter().filter(|r| r.l1) {
            let (ns, name) = (&rule.stats, &rule.name);
            let (hits, misses) = (ns.hits(), ns.misses());
            let entries = ns.entries.load(Relaxed).max(0);
            field(&format!("ns:{name}:l1_entries"), entries.to_string());
            let bytes = ns.bytes.load(Relaxed).max(0);
            field(&format!("ns:{name}:l1_bytes"), bytes.to_string());
            field(&format!("ns:{name}:l1_hits"), hits.to_string());
            field(&format!("ns:{name}:l1_misses"), misses.to_string());
            field(&format!("ns:{name}:l1_hit_ratio"), ratio(hits, misses));
        }
    }

    /// Bytes of values given to the compressor and as stored, per namespace.
    fn compression_fields(&self, fields: &mut Vec<(String, String)>) {
        for rule in self.parts.policy.load().rules() {
            let ns = &rule.stats;
            let (bytes_in, bytes_out) =
                (ns.compress_in.load(Relaxed), ns.compress_out.load(Relaxed));
            if bytes_in > 0 {
                let name = &rule.name;
                fields.push((format!("compress_{name}_bytes_in"), bytes_in.to_string()));
                fields.push((format!("compress_{name}_bytes_out"), bytes_out.to_string()));
            }
        }
    }
}

fn ratio(hits: u64, misses: u64) -> String {
    format!("{:.4}", hits as f64 / (hits + misses).max(1) as f64)
}
