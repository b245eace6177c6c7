//! The metrics of Redis's own state (`metrics::Def::polled`), written at each scrape from
//! the last poll and samples ([`RedisState`](super::poll::RedisState)) straight into
//! the text format: only the series that exist now (the current maxmemory policy, the
//! dbs that have keys, the namespaces of the rules in force), and Redis's totals as
//! they are, also when they restart from 0. A family with no value yet (polling off,
//! no answer yet) has its `# HELP` and `# TYPE` lines only.

use std::fmt::Write;

use metrics_exporter_prometheus::formatting::{write_help_line, write_type_line};

use super::{poll::info::Info, status::Status};
use crate::metrics::{
    Def, NAMESPACE_REDIS_BYTES, NAMESPACE_REDIS_KEYS, UPSTREAM_CLIENTS, UPSTREAM_EVICTED,
    UPSTREAM_EXPIRED, UPSTREAM_INFO_AGE, UPSTREAM_INFO_UP, UPSTREAM_KEYS, UPSTREAM_KEYSPACE_HITS,
    UPSTREAM_KEYSPACE_MISSES, UPSTREAM_MAXMEMORY, UPSTREAM_MAXMEMORY_POLICY, UPSTREAM_USED_MEMORY,
};

/// One sample: its label values (in the order of the metric's labels) and value.
type Sample = (Vec<String>, f64);

pub(super) fn render(shared: &Status, out: &mut String) {
    let redis = &shared.parts.redis;
    let polled = redis.info();
    let info = polled.as_ref().map(|(info, _)| info);
    let up = redis.poll_answered().map(|up| f64::from(u8::from(up)));
    family(out, &UPSTREAM_INFO_UP, one(up));
    let age = polled.as_ref().map(|(_, age)| age.as_secs_f64());
    family(out, &UPSTREAM_INFO_AGE, one(age));
    let figure = |get: fn(&Info) -> Option<u64>| one(info.and_then(get).map(|v| v as f64));
    family(out, &UPSTREAM_USED_MEMORY, figure(|i| i.used_memory));
    family(out, &UPSTREAM_MAXMEMORY, figure(|i| i.maxmemory));
    let policy = info.and_then(|i| i.maxmemory_policy.clone());
    let policy = policy.map(|p| (vec![p], 1.0)).into_iter().collect();
    family(out, &UPSTREAM_MAXMEMORY_POLICY, policy);
    family(out, &UPSTREAM_EVICTED, figure(|i| i.evicted_keys));
    family(out, &UPSTREAM_EXPIRED, figure(|i| i.expired_keys));
    family(out, &UPSTREAM_KEYSPACE_HITS, figure(|i| i.keyspace_hits));
    family(
        out,
        &UPSTREAM_KEYSPACE_MISSES,
        figure(|i| i.keyspace_misses),
    );
    let dbs = info.and_then(|i| i.keys.clone()).unwrap_or_default();
    let dbs = dbs.iter().map(|(db, n)| (vec![db.to_string()], *n as f64));
    family(out, &UPSTREAM_KEYS, dbs.collect());
    family(out, &UPSTREAM_CLIENTS, figure(|i| i.connected_clients));
    let (mut keys, mut bytes) = (Vec::new(), Vec::new());
    for rule in shared.parts.policy.load().rules() {
        if let Some(size) = redis.size(&rule.name) {
            let labels = vec![rule.name.to_string()];
            keys.push((labels.clone(), size.keys as f64));
            if let Some(b) = size.bytes {
                bytes.push((labels, b as f64));
            }
        }
    }
    family(out, &NAMESPACE_REDIS_KEYS, keys);
    family(out, &NAMESPACE_REDIS_BYTES, bytes);
}

fn one(value: Option<f64>) -> Vec<Sample> {
    value.map(|v| (Vec::new(), v)).into_iter().collect()
}

/// Appends one family: help, type, then each sample.
fn family(out: &mut String, def: &Def, samples: Vec<Sample>) {
    write_help_line(out, def.name, None, None, def.help);
    write_type_line(out, def.name, None, None, def.kind.as_str());
    for (values, value) in samples {
        debug_assert_eq!(values.len(), def.labels.len(), "{}", def.name);
        out.push_str(def.name);
        if !values.is_empty() {
            let labels: Vec<String> = def
                .labels
                .iter()
                .zip(&values)
                .map(|(name, v)| format!("{name}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(out, " {value}");
    }
    out.push('\n');
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_labels_are_written_in_the_text_format() {
        let mut out = String::new();
        let samples = vec![(vec!["a\"b\\c\nd".to_owned()], 12.0)];
        family(&mut out, &NAMESPACE_REDIS_KEYS, samples);
        family(&mut out, &UPSTREAM_EVICTED, one(Some(3.0)));
        family(&mut out, &UPSTREAM_INFO_AGE, one(None));
        assert!(
            out.contains("# TYPE respite_namespace_redis_keys gauge\nrespite_namespace_redis_keys{namespace=\"a\\\"b\\\\c\\nd\"} 12\n"),
            "{out}"
        );
        assert!(out.contains("# TYPE respite_upstream_evicted_keys_total counter\nrespite_upstream_evicted_keys_total 3\n"), "{out}");
        assert!(
            out.ends_with("# TYPE respite_upstream_info_age_seconds gauge\n\n"),
            "{out}"
        );
    }
}
