//! How many keys and bytes each namespace has in Redis, estimated by sampling, at
//! most once every `[metrics] namespace_sizes` (the first cycle one interval after
//! start), in the upstream URL's db.
//!
//! For each rule in force, in file order:
//! 1. `SCAN` with `MATCH` the rule's glob (rules are Redis globs), `COUNT` `[admin]
//!    batch` (at most [`MAX_COUNT`]), at most [`MAX_PAGES`] pages, one page in flight, and a pause of `[admin]
//!    pause` (at least [`MIN_PAUSE`]) after each. A key found counts when this rule is
//!    the one that governs it (first match wins, as in the proxy), once (SCAN may
//!    return a key twice while Redis resizes its table).
//! 2. `MEMORY USAGE` of the first [`SAMPLE`] keys found, in one pipeline. SCAN walks
//!    Redis's hash table, whose order has nothing to do with a key's size, so the
//!    first keys are as fair a sample as any.
//!
//! The estimate ([`estimate`]):
//! - keys: when the SCAN came back to cursor 0 within its pages, the keys it found (a
//!   count, exact but for keys written or deleted meanwhile). Otherwise it covered a
//!   part of the table, read from its cursor (as `RESPITE PROGRESS` does), which holds
//!   that part of the db's keys: the estimate is the keys found divided by it (i.e.
//!   `DBSIZE` × the share of the keys examined that belong to the namespace). By
//!   default the SCAN examines up to 100,000 keys: a db that small is counted, and in
//!   a larger one a namespace of few keys may show 0.
//! - bytes: the sum of the sample's `MEMORY USAGE` when the sample is the whole
//!   namespace (it was counted, and has at most [`SAMPLE`] keys), else keys × the
//!   sample's mean. Unknown when Redis refuses `MEMORY USAGE`.

use std::{
    collections::HashSet,
    hash::{BuildHasher, RandomState},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use redis_protocol::resp3::types::BytesFrame;
use tokio::time::{Instant, MissedTickBehavior};

use super::{
    side::{Side, error_text},
    state::{RedisState, Size},
};
use crate::{
    ops::scan::fraction_done,
    policy::{Rule, Rules},
};

/// SCAN pages per namespace and cycle.
pub const MAX_PAGES: usize = 100;
/// The largest SCAN COUNT: a page examines about that many keys, in one go.
pub const MAX_COUNT: usize = 1000;
/// Keys per namespace and cycle whose `MEMORY USAGE` is asked.
pub const SAMPLE: usize = 100;
/// The least pause after each SCAN page.
pub const MIN_PAUSE: Duration = Duration::from_millis(10);

/// What the sampler reads, and how hard.
pub(super) struct Sampler {
    pub policy: Arc<Rules>,
    /// SCAN's COUNT.
    pub batch: usize,
    /// After each page.
    pub pause: Duration,
}

/// Estimates every namespace's size every `every` (never when zero).
pub(super) async fn run(side: &Side, state: &RedisState, sampler: &Sampler, every: Duration) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rules = sampler.policy.load().rules().to_vec();
        for rule in &rules {
            match measure(side, sampler, rule).await {
                Some(size) => state.set_size(&rule.name, size),
                None => break, // Redis unreachable, or SCAN refused: next cycle
            }
        }
        let names: Vec<Arc<str>> = rules.iter().map(|r| r.name.clone()).collect();
        state.keep_sizes(&names);
    }
}

/// What one namespace's SCAN found.
struct Found {
    /// Hashes of the distinct keys.
    seen: HashSet<u64>,
    /// The first [`SAMPLE`] of them.
    sample: Vec<Bytes>,
    /// Part of the db covered: 1 when the SCAN completed.
    covered: f64,
}

/// One namespace's estimate; None when Redis could not be reached or refused SCAN.
async fn measure(side: &Side, sampler: &Sampler, rule: &Rule) -> Option<Size> {
    let found = scan(side, sampler, rule).await?;
    let sizes = memory_usage(side, &found.sample).await?;
    let n = found.seen.len() as u64;
    Some(estimate(n, found.covered, sizes.as_deref()))
}

async fn scan(side: &Side, sampler: &Sampler, rule: &Rule) -> Option<Found> {
    let pattern = Bytes::from(rule.pattern.clone());
    let hasher = RandomState::new();
    let mut found = Found {
        seen: HashSet::new(),
        sample: Vec::new(),
        covered: 0.0,
    };
    let mut cursor = 0;
    for _ in 0..MAX_PAGES {
        let cmd = vec![
            Bytes::from_static(b"SCAN"),
            Bytes::from(cursor.to_string()),
            Bytes::from_static(b"MATCH"),
            pattern.clone(),
            Bytes::from_static(b"COUNT"),
            Bytes::from(sampler.batch.min(MAX_COUNT).to_string()),
        ];
        let reply = side.call(&[cmd]).await?.pop()?;
        let Some((next, keys)) = page(&reply) else {
            let error = error_text(&reply).unwrap_or_else(|| format!("{reply:?}"));
            side.refused("SCAN", &error);
            return None;
        };
        let policy = sampler.policy.load();
        for key in keys {
            let governs = policy.lookup(&key).is_some_and(|r| r.name == rule.name);
            if governs && found.seen.insert(hasher.hash_one(&key)) && found.sample.len() < SAMPLE {
                found.sample.push(key);
            }
        }
        cursor = next;
        tokio::time::sleep(sampler.pause).await;
        if cursor == 0 {
            break;
        }
    }
    found.covered = fraction_done(cursor);
    Some(found)
}

/// A SCAN reply: the next cursor and the keys.
fn page(reply: &BytesFrame) -> Option<(u64, Vec<Bytes>)> {
    let BytesFrame::Array { data, .. } = reply else {
        return None;
    };
    let [
        BytesFrame::BlobString { data: cursor, .. },
        BytesFrame::Array { data: keys, .. },
    ] = &data[..]
    else {
        return None;
    };
    let cursor = std::str::from_utf8(cursor).ok()?.parse().ok()?;
    let keys = keys
        .iter()
        .map(|k| match k {
            BytesFrame::BlobString { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    Some((cursor, keys))
}

/// `MEMORY USAGE` of each key (keys gone meanwhile are left out): Some(None) when
/// Redis refuses it, None when it could not be reached.
async fn memory_usage(side: &Side, keys: &[Bytes]) -> Option<Option<Vec<u64>>> {
    if keys.is_empty() {
        return Some(Some(Vec::new()));
    }
    let commands: Vec<Vec<Bytes>> = keys
        .iter()
        .map(|k| {
            vec![
                Bytes::from_static(b"MEMORY"),
                Bytes::from_static(b"USAGE"),
                k.clone(),
            ]
        })
        .collect();
    let replies = side.call(&commands).await?;
    let mut sizes = Vec::with_capacity(replies.len());
    for reply in &replies {
        match reply {
            BytesFrame::Number { data, .. } => sizes.push(u64::try_from(*data).unwrap_or(0)),
            BytesFrame::Null => {}
            other => {
                let error = error_text(other).unwrap_or_else(|| format!("{other:?}"));
                side.refused("MEMORY USAGE", &error);
                return Some(None);
            }
        }
    }
    Some(Some(sizes))
}

/// The estimate from `found` distinct keys of a SCAN that covered `covered` (0 to 1)
/// of the db, and the `MEMORY USAGE` of a sample of them (None: unknown).
pub fn estimate(found: u64, covered: f64, sizes: Option<&[u64]>) -> Size {
    let complete = covered >= 1.0;
    let keys = if complete || found == 0 {
        found
    } else {
        (found as f64 / covered).round() as u64
    };
    let bytes = sizes.and_then(|sizes| {
        let sum: u64 = sizes.iter().sum();
        if complete && sizes.len() as u64 == found {
            Some(sum)
        } else if sizes.is_empty() {
            (keys == 0).then_some(0)
        } else {
            Some((keys as f64 * sum as f64 / sizes.len() as f64).round() as u64)
        }
    });
    Size { keys, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_scan_counts_and_a_whole_sample_sums() {
        let s = estimate(3, 1.0, Some(&[100, 200, 300]));
        assert_eq!(
            s,
            Size {
                keys: 3,
                bytes: Some(600)
            }
        );
        // More keys than the sample: keys × the sample's mean.
        let s = estimate(1000, 1.0, Some(&[100, 300]));
        assert_eq!(
            s,
            Size {
                keys: 1000,
                bytes: Some(200_000)
            }
        );
        let s = estimate(0, 1.0, Some(&[]));
        assert_eq!(
            s,
            Size {
                keys: 0,
                bytes: Some(0)
            }
        );
        // MEMORY USAGE refused: the keys still count.
        assert_eq!(
            estimate(5, 1.0, None),
            Size {
                keys: 5,
                bytes: None
            }
        );
    }

    #[test]
    fn a_partial_scan_extrapolates_from_the_part_covered() {
        // A quarter of the table held 250 of the namespace's keys.
        let s = estimate(250, 0.25, Some(&[40, 60]));
        assert_eq!(
            s,
            Size {
                keys: 1000,
                bytes: Some(50_000)
            }
        );
        assert_eq!(
            estimate(0, 0.1, Some(&[])),
            Size {
                keys: 0,
                bytes: Some(0)
            }
        );
        // A sample of keys gone since: no mean to extrapolate.
        assert_eq!(estimate(10, 0.5, Some(&[])).bytes, None);
    }

    #[test]
    fn scan_pages_are_read() {
        let blob = |s: &'static [u8]| BytesFrame::BlobString {
            data: Bytes::from_static(s),
            attributes: None,
        };
        let reply = BytesFrame::Array {
            data: vec![
                blob(b"17"),
                BytesFrame::Array {
                    data: vec![blob(b"a:1"), blob(b"a:2")],
                    attributes: None,
                },
            ],
            attributes: None,
        };
        let (cursor, keys) = page(&reply).unwrap();
        assert_eq!(cursor, 17);
        assert_eq!(
            keys,
            vec![Bytes::from_static(b"a:1"), Bytes::from_static(b"a:2")]
        );
        assert!(page(&blob(b"x")).is_none());
    }
}
