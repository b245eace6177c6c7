//! A scrape: the atomics are copied into this instance's Prometheus recorder (counters
//! with `absolute`, gauges with `set`), which renders the text exposition format. The
//! histogram is rendered from its own buckets with the exporter's formatting helpers,
//! and Redis's own state from its last snapshot (`snapshot.rs`).

use std::sync::atomic::Ordering::Relaxed;

use super::status::Status;
use crate::metrics::{
    ADMIN_AUTH_FAILURES, BUILD_INFO, CACHE_REQUESTS, CLIENT_BOUNDS_US, CLIENTS_CONNECTED,
    CLIENTS_CONNECTIONS, CLIENTS_MAX, CLIENTS_OVER_LIMIT, CLIENTS_REJECTED, CLIENTS_TLS_FAILED,
    COMPRESS_DECODE_ERRORS, COMPRESS_IN, COMPRESS_OUT, CONFIG_LAST_RELOAD_OK, CONFIG_RELOADS,
    CacheResult, Def, INVALIDATIONS, InvalidationSource, L1_BYTES, L1_COALESCED, L1_ENTRIES,
    L1_EVICTIONS, L1_FILLS_DROPPED, L1_HITS, L1_MAX, L1_MEMORY, L1_MISSES, L1_STALE, Outcome,
    REQUEST_DURATION, REQUESTS, TRACKING_UP, UPSTREAM_ERRORS, UPSTREAM_LATENCY,
    UPSTREAM_RECONNECTS, UPSTREAM_UP,
};
use crate::{command::Kind, metrics::LatencyHistogram};

impl Status {
    /// The `/metrics` body for this proxy instance.
    pub fn render(&self) -> String {
        render(self)
    }
}

fn render(shared: &Status) -> String {
    let m = &shared.parts.metrics;
    let x = &shared.exporter;
    x.gauge(&BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    for kind in Kind::ALL {
        for outcome in Outcome::ALL {
            let labels = [("kind", kind.as_str()), ("outcome", outcome.as_str())];
            x.counter(&REQUESTS, &labels, m.requests.get(kind, outcome));
        }
    }
    x.gauge(&CLIENTS_CONNECTED, &[], m.clients.connected() as f64);
    x.counter(&CLIENTS_CONNECTIONS, &[], m.clients.accepted.load(Relaxed));
    x.counter(&CLIENTS_REJECTED, &[], m.clients.rejected.load(Relaxed));
    x.counter(&CLIENTS_OVER_LIMIT, &[], m.clients.over_limit.load(Relaxed));
    x.counter(&CLIENTS_TLS_FAILED, &[], m.clients.tls_failed.load(Relaxed));
    x.gauge(&CLIENTS_MAX, &[], shared.parts.max_clients as f64);
    render_l1(shared);
    render_namespaces(shared);
    for failure in crate::compress::Failure::ALL {
        let n = shared.parts.opener.failures().get(failure);
        x.counter(&COMPRESS_DECODE_ERRORS, &[("reason", failure.as_str())], n);
    }
    let up = shared.parts.upstream.is_up();
    x.gauge(&UPSTREAM_UP, &[], f64::from(u8::from(up)));
    let upstream = shared.parts.upstream.stats();
    for (reason, n) in upstream.errors() {
        x.counter(&UPSTREAM_ERRORS, &[("reason", reason)], n);
    }
    x.counter(&UPSTREAM_RECONNECTS, &[], upstream.reconnects.load(Relaxed));
    let (ok, error) = m.reloads.counts();
    x.counter(&CONFIG_RELOADS, &[("outcome", "ok")], ok);
    x.counter(&CONFIG_RELOADS, &[("outcome", "error")], error);
    let last_ok = f64::from(u8::from(m.reloads.last_ok()));
    x.gauge(&CONFIG_LAST_RELOAD_OK, &[], last_ok);
    for (reason, n) in m.admin_auth.failures() {
        x.counter(&ADMIN_AUTH_FAILURES, &[("reason", reason)], n);
    }

    let mut out = x.handle.render();
    render_histogram(&upstream.latency, &UPSTREAM_LATENCY, &mut out);
    render_request_durations(shared, &mut out);
    super::snapshot::render(shared, &mut out);
    out
}

/// `respite_request_duration_seconds`: one histogram per namespace and kind that has
/// seen a request.
fn render_request_durations(shared: &Status, out: &mut String) {
    histogram_head(&REQUEST_DURATION, out);
    let bounds: Vec<f64> = CLIENT_BOUNDS_US.iter().map(|&us| us as f64 / 1e6).collect();
    let namespaces = &shared.parts.metrics.namespaces;
    let all = namespaces.all();
    for ns in all.iter().map(|ns| &**ns).chain([namespaces.none()]) {
        for kind in Kind::ALL {
            let (buckets, sum) = ns.latency.cumulative(kind);
            if buckets.last().is_some_and(|&count| count > 0) {
                let labels = format!("namespace=\"{}\",kind=\"{}\"", ns.name, kind.as_str());
                histogram_series(out, REQUEST_DURATION.name, &labels, &bounds, &buckets, sum);
            }
        }
    }
    out.push('\n');
}

/// Appends a histogram in the Prometheus text format.
fn render_histogram(h: &LatencyHistogram, def: &Def, out: &mut String) {
    histogram_head(def, out);
    let (buckets, sum) = h.cumulative();
    histogram_series(out, def.name, "", &crate::metrics::BOUNDS, &buckets, sum);
    out.push('\n');
}

fn histogram_head(def: &Def, out: &mut String) {
    use metrics_exporter_prometheus::formatting::{write_help_line, write_type_line};
    write_help_line(out, def.name, None, None, def.help);
    write_type_line(out, def.name, None, None, "histogram");
}

/// One histogram's series, `labels` being `k="v",…` or empty. The count is the `+Inf`
/// bucket, so the two always agree.
fn histogram_series(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    buckets: &[u64],
    sum: f64,
) {
    let (sep, set) = if labels.is_empty() {
        ("", String::new())
    } else {
        (",", format!("{{{labels}}}"))
    };
    for (i, n) in buckets.iter().enumerate() {
        let le = bounds.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
        out.push_str(&format!("{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}\n"));
    }
    let count = buckets.last().copied().unwrap_or(0);
    out.push_str(&format!(
        "{name}_sum{set} {sum}\n{name}_count{set} {count}\n"
    ));
}

/// Whole-cache figures.
fn render_l1(shared: &Status) {
    let l1 = &shared.parts.l1;
    let x = &shared.exporter;
    // `bytes()` runs the cache's pending work, so evictions are counted before the
    // per-namespace figures are read.
    x.gauge(&L1_MEMORY, &[], l1.bytes() as f64);
    x.gauge(&L1_MAX, &[], l1.max_bytes() as f64);
    x.counter(&L1_COALESCED, &[], l1.stats.coalesced.load(Relaxed));
    x.counter(&L1_FILLS_DROPPED, &[], l1.stats.fills_dropped.load(Relaxed));
    for source in InvalidationSource::ALL {
        let n = l1.stats.invalidations.get(source);
        x.counter(&INVALIDATIONS, &[("source", source.as_str())], n);
    }
    if let Some(t) = &shared.parts.tracking {
        x.gauge(&TRACKING_UP, &[], f64::from(u8::from(t.is_up())));
    }
}

fn render_namespaces(shared: &Status) {
    let x = &shared.exporter;
    for ns in shared.parts.metrics.namespaces.all() {
        let name = &*ns.name;
        let labels = [("namespace", name)];
        x.counter(&L1_HITS, &labels, ns.hits());
        x.counter(&L1_MISSES, &labels, ns.misses());
        x.counter(&L1_STALE, &labels, ns.stale());
        for (cause, n) in [("size", &ns.evicted_size), ("expired", &ns.evicted_expired)] {
            let labels = [("namespace", name), ("cause", cause)];
            x.counter(&L1_EVICTIONS, &labels, n.load(Relaxed));
        }
        let entries = ns.entries.load(Relaxed).max(0);
        x.gauge(&L1_ENTRIES, &labels, entries as f64);
        x.gauge(&L1_BYTES, &labels, ns.bytes.load(Relaxed).max(0) as f64);
        for result in CacheResult::ALL {
            let labels = [("namespace", name), ("result", result.as_str())];
            x.counter(&CACHE_REQUESTS, &labels, ns.cache(result));
        }
        x.counter(&COMPRESS_IN, &labels, ns.compress_in.load(Relaxed));
        x.counter(&COMPRESS_OUT, &labels, ns.compress_out.load(Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::{HashMap, HashSet},
        sync::Arc,
    };

    use arc_swap::ArcSwap;

    use super::*;
    use crate::{
        config::Config,
        invalidation::LinkState,
        l1::L1,
        metrics::{ALL, Metrics, UPSTREAM_ERROR_REASONS},
        policy::Policy,
        upstream::Upstream,
    };

    /// A proxy's status as `server::run` builds it, without starting anything.
    fn shared() -> Status {
        let config = Config::parse(
            "[[namespace]]\nname = \"a\"\nmatch = \"a:*\"\nl1 = true\n\n\
             [[namespace]]\nname = \"b\"\nmatch = \"b:*\"\ncompress = \"zstd\"\n",
        )
        .unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut policy = Policy::compile(&config.namespaces).unwrap();
        policy.attach_stats(&metrics.namespaces);
        let l1 = L1::with_namespaces(1 << 20, true, metrics.namespaces.clone(), None);
        Status::new(crate::observe::Parts {
            upstream: Upstream::new(&config.upstream).unwrap(),
            policy: Arc::new(ArcSwap::from_pointee(policy)),
            l1,
            tracking: Some(Arc::new(LinkState::default())),
            channel: None,
            operations: Default::default(),
            warming: Default::default(),
            max_clients: 10_000,
            tls_listen: None,
            opener: Default::default(),
            metrics,
            redis: Default::default(),
        })
    }

    /// `name{labels}` -> value, and the names with a `# TYPE` line.
    fn parse(text: &str) -> (HashMap<String, f64>, HashSet<String>) {
        let mut samples = HashMap::new();
        let mut types = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                types.insert(rest.split(' ').next().unwrap().to_owned());
            } else if !line.is_empty() && !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').unwrap();
                samples.insert(series.to_owned(), value.parse().unwrap());
            }
        }
        (samples, types)
    }

    #[test]
    fn every_declared_metric_is_rendered_and_nothing_else() {
        let shared = shared();
        let (_, types) = parse(&shared.render());
        let declared: HashSet<String> = ALL.iter().map(|d| d.name.to_owned()).collect();
        assert_eq!(types, declared);
    }

    #[test]
    fn counters_reach_the_exposition() {
        let shared = shared();
        let m = &shared.parts.metrics;
        m.request(Kind::Read, Outcome::L1Hit);
        m.request(Kind::Read, Outcome::L1Hit);
        m.request(Kind::Write, Outcome::RedisError);
        m.reloads.record(false);
        let rule = shared
            .parts
            .policy
            .load()
            .lookup(b"b:1")
            .unwrap()
            .stats
            .clone();
        rule.compress_in.fetch_add(1000, Relaxed);
        rule.compress_out.fetch_add(250, Relaxed);
        shared
            .parts
            .upstream
            .stats()
            .error(&crate::error::Error::ConnectionLost);
        let (s, _) = parse(&shared.render());
        let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in {s:#?}"));
        assert_eq!(
            get(r#"respite_requests_total{kind="read",outcome="l1_hit"}"#),
            2.0
        );
        assert_eq!(
            get(r#"respite_requests_total{kind="write",outcome="redis_error"}"#),
            1.0
        );
        assert_eq!(get(r#"respite_config_reloads_total{outcome="error"}"#), 1.0);
        assert_eq!(get("respite_config_last_reload_successful"), 0.0);
        assert_eq!(
            get(r#"respite_compression_bytes_in_total{namespace="b"}"#),
            1000.0
        );
        assert_eq!(
            get(r#"respite_compression_bytes_out_total{namespace="b"}"#),
            250.0
        );
        assert_eq!(
            get(r#"respite_upstream_errors_total{reason="connection_lost"}"#),
            1.0
        );
        assert_eq!(get("respite_l1_max_bytes"), f64::from(1u32 << 20));
        assert_eq!(get(r#"respite_build_info{version="0.1.0"}"#), 1.0);
        assert_eq!(get("respite_tracking_up"), 0.0);
        assert_eq!(get("respite_clients_max"), 10_000.0);
        for reason in UPSTREAM_ERROR_REASONS {
            get(&format!(
                r#"respite_upstream_errors_total{{reason="{reason}"}}"#
            ));
        }
        // Scrapes do not double count.
        let (again, _) = parse(&shared.render());
        assert_eq!(
            again[r#"respite_requests_total{kind="read",outcome="l1_hit"}"#],
            2.0
        );
    }
}
