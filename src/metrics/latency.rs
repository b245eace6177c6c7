//! Client-side latency per command kind: from a request's arrival (the read that
//! brought it) to its reply being queued for the client. Buckets from 50 µs to 1 s,
//! about 1.5× apart, so p50/p95/p99 are read within half a bucket. Each event loop
//! adds to its own stripe (see [`Striped`]), so recording never shares a cache line
//! between threads.

use std::time::Duration;

use super::striped::Striped;
use crate::command::Kind;

/// Bucket upper bounds in microseconds (`le`, inclusive), then `+Inf`.
pub const CLIENT_BOUNDS_US: [u64; 27] = [
    50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000,
    20_000, 30_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000, 500_000, 750_000,
    1_000_000,
];
const FIRST_BOUND_NS: u64 = CLIENT_BOUNDS_US[0] * 1000;
/// Buckets (with `+Inf`) and the sum in nanoseconds, per kind.
const BUCKETS: usize = CLIENT_BOUNDS_US.len() + 1;
const CELLS: usize = BUCKETS + 1;
const SUM: usize = BUCKETS;
const ALL_CELLS: usize = Kind::ALL.len() * CELLS;

/// One latency histogram per command kind.
#[derive(Debug, Default)]
pub struct ClientLatency {
    cells: Striped<ALL_CELLS>,
}

impl ClientLatency {
    /// Adds what a [`LatencyBatch`] recorded for `kind`.
    pub fn add_batch(&self, kind: Kind, batch: &LatencyBatch) {
        let row = kind as usize * CELLS;
        for (i, &n) in batch.buckets.iter().enumerate() {
            if n > 0 {
                self.cells.add(row + i, u64::from(n));
            }
        }
        self.cells.add(row + SUM, batch.sum_ns);
    }

    /// Cumulative counts per bucket of `kind` (the last is `+Inf`, the count), and
    /// the sum in seconds.
    pub fn cumulative(&self, kind: Kind) -> ([u64; BUCKETS], f64) {
        let row = kind as usize * CELLS;
        let mut out = [0; BUCKETS];
        let mut total = 0;
        for (i, o) in out.iter_mut().enumerate() {
            total += self.cells.get(row + i);
            *o = total;
        }
        (out, self.cells.get(row + SUM) as f64 / 1e9)
    }

    /// Requests recorded, every kind.
    pub fn count(&self) -> u64 {
        Kind::ALL
            .iter()
            .map(|&k| self.cumulative(k).0[BUCKETS - 1])
            .sum()
    }

    /// The `q` quantile over every kind, as the upper bound of its bucket (None
    /// before any request; past the last bound, the last bound).
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let mut counts = [0u64; BUCKETS];
        for kind in Kind::ALL {
            let (c, _) = self.cumulative(kind);
            counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
        }
        let total = counts[BUCKETS - 1];
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let i = counts
            .iter()
            .position(|&c| c >= rank)
            .unwrap_or(BUCKETS - 1);
        let us = CLIENT_BOUNDS_US[i.min(CLIENT_BOUNDS_US.len() - 1)];
        Some(Duration::from_micros(us))
    }
}

/// One session's latencies of one (namespace, kind), added to the shared histogram
/// once per turn of its loop (or when the pair changes), not once per request.
#[derive(Debug)]
pub struct LatencyBatch {
    pub ns: u32,
    pub kind: Kind,
    buckets: [u32; BUCKETS],
    sum_ns: u64,
    n: u32,
}

impl Default for LatencyBatch {
    fn default() -> Self {
        Self {
            ns: 0,
            kind: Kind::Unknown,
            buckets: [0; BUCKETS],
            sum_ns: 0,
            n: 0,
        }
    }
}

impl LatencyBatch {
    /// True if it holds latencies of another (namespace, kind) than this one.
    #[inline]
    pub fn other_than(&self, ns: u32, kind: Kind) -> bool {
        self.n > 0 && (self.ns != ns || self.kind != kind)
    }

    /// Records a latency of `nanos` nanoseconds.
    #[inline]
    pub fn record(&mut self, ns: u32, kind: Kind, nanos: u64) {
        (self.ns, self.kind) = (ns, kind);
        // Most replies are queued within the turn their command arrived in.
        let bucket = if nanos <= FIRST_BOUND_NS {
            0
        } else {
            CLIENT_BOUNDS_US.partition_point(|&b| b * 1000 < nanos)
        };
        self.buckets[bucket] += 1;
        self.sum_ns += nanos;
        self.n += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Holds enough to be added now even if more are coming.
    pub fn is_full(&self) -> bool {
        self.n >= 256
    }

    /// Forgets what was recorded (once added).
    pub fn clear(&mut self) {
        self.buckets = [0; BUCKETS];
        self.sum_ns = 0;
        self.n = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ClientLatency {
        /// One latency, added as a batch of its own.
        fn record(&self, kind: Kind, d: Duration) {
            let mut batch = LatencyBatch::default();
            batch.record(1, kind, d.as_nanos() as u64);
            self.add_batch(kind, &batch);
        }
    }

    #[test]
    fn buckets_and_quantiles() {
        let h = ClientLatency::default();
        assert_eq!(h.quantile(0.95), None);
        for _ in 0..94 {
            h.record(Kind::Read, Duration::from_micros(40));
        }
        for _ in 0..5 {
            h.record(Kind::Write, Duration::from_micros(120));
        }
        h.record(Kind::Write, Duration::from_secs(3));
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(50)));
        assert_eq!(h.quantile(0.95), Some(Duration::from_micros(150)));
        assert_eq!(h.quantile(1.0), Some(Duration::from_secs(1)));
        let (w, sum) = h.cumulative(Kind::Write);
        assert_eq!((w[2], w[3], w[BUCKETS - 2], w[BUCKETS - 1]), (0, 5, 5, 6));
        assert!((sum - 3.0006).abs() < 1e-9, "{sum}");
        assert_eq!(
            h.cumulative(Kind::Read).0[0],
            94,
            "le is inclusive: 40 µs ≤ 50"
        );
        let mut batch = LatencyBatch::default();
        batch.record(1, Kind::Read, 60_000);
        batch.record(1, Kind::Read, 60_000);
        assert!(batch.other_than(1, Kind::Write) && !batch.other_than(1, Kind::Read));
        h.add_batch(Kind::Read, &batch);
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(h.cumulative(Kind::Read).0[1], 96);
    }
}
