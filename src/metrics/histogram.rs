//! The upstream latency histogram: fixed buckets of atomics, so recording never
//! allocates and memory stays bounded however long nobody scrapes. A connection task
//! records a whole read's replies into a [`LocalHistogram`] and adds it to the shared
//! one once.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// Bucket upper bounds in seconds (`le`, inclusive): Redis replies in well under a
/// millisecond when healthy; the top buckets catch `request_timeout`-sized stalls.
pub const BOUNDS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// The bounds in nanoseconds, plus the +Inf bucket.
const BUCKETS: usize = BOUNDS.len() + 1;
const BOUNDS_NS: [u64; BOUNDS.len()] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

fn bucket_of(ns: u64) -> usize {
    BOUNDS_NS
        .iter()
        .position(|&b| ns <= b)
        .unwrap_or(BOUNDS.len())
}

/// Counts per bucket (not cumulative) and the sum of all observations.
#[derive(Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    pub fn record(&self, d: Duration) {
        let ns = d.as_nanos() as u64;
        self.buckets[bucket_of(ns)].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// Cumulative counts per bucket (the last is `+Inf`, hence also the count), and
    /// the sum of the observations in seconds.
    pub fn cumulative(&self) -> ([u64; BUCKETS], f64) {
        let mut out = [0; BUCKETS];
        let mut total = 0;
        for (o, bucket) in out.iter_mut().zip(&self.buckets) {
            total += bucket.load(Relaxed);
            *o = total;
        }
        (out, self.sum_ns.load(Relaxed) as f64 / 1e9)
    }
}

/// A connection task's unshared histogram, added to a [`LatencyHistogram`] in one go.
#[derive(Default)]
pub struct LocalHistogram {
    buckets: [u64; BUCKETS],
    sum_ns: u64,
    count: u64,
}

impl LocalHistogram {
    #[inline]
    pub fn record(&mut self, d: Duration) {
        let ns = d.as_nanos() as u64;
        self.buckets[bucket_of(ns)] += 1;
        self.sum_ns += ns;
        self.count += 1;
    }

    /// Adds what was recorded to `into` and starts over.
    pub fn flush(&mut self, into: &LatencyHistogram) {
        if self.count == 0 {
            return;
        }
        for (shared, n) in into.buckets.iter().zip(&mut self.buckets) {
            if *n > 0 {
                shared.fetch_add(std::mem::take(n), Relaxed);
            }
        }
        into.sum_ns
            .fetch_add(std::mem::take(&mut self.sum_ns), Relaxed);
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_agree() {
        for (s, ns) in BOUNDS.iter().zip(BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(100_000), 0, "le is inclusive");
        assert_eq!(bucket_of(100_001), 1);
        assert_eq!(bucket_of(u64::MAX), BOUNDS.len());
    }

    #[test]
    fn renders_cumulative_buckets() {
        let h = LatencyHistogram::default();
        let mut local = LocalHistogram::default();
        local.record(Duration::from_micros(50));
        local.record(Duration::from_micros(300));
        local.record(Duration::from_secs(10));
        local.flush(&h);
        local.flush(&h); // nothing twice
        h.record(Duration::from_micros(300));
        let (buckets, sum) = h.cumulative();
        assert_eq!(&buckets[..3], &[1, 1, 3]);
        assert_eq!(buckets[BOUNDS.len() - 1], 3, "le=5");
        assert_eq!(buckets[BOUNDS.len()], 4, "+Inf");
        assert!((sum - 10.00065).abs() < 1e-9, "{sum}");
    }
}
