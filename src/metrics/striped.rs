//! Counters bumped on every request by every event loop, each loop on its own cache
//! lines.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// Stripes of a [`Striped`] counter set: more than the worker threads of a typical
/// deployment, so threads rarely share one.
const STRIPES: usize = 8;

/// `N` counters bumped on every request by every worker thread. Each thread adds to
/// its own stripe (cache line), so threads do not take a shared line from each
/// other on every request; readers sum the stripes.
pub struct Striped<const N: usize> {
    stripes: [Stripe<N>; STRIPES],
}

#[repr(align(128))] // a cache line pair: adjacent-line prefetch shares pairs
struct Stripe<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Striped<N> {
    fn default() -> Self {
        Self {
            stripes: std::array::from_fn(|_| Stripe(std::array::from_fn(|_| AtomicU64::new(0)))),
        }
    }
}

thread_local! {
    /// This thread's stripe, handed out round-robin as threads first count.
    static STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Relaxed) % STRIPES
    };
}

impl<const N: usize> std::fmt::Debug for Striped<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries((0..N).map(|i| self.get(i))).finish()
    }
}

impl<const N: usize> Striped<N> {
    #[inline]
    pub fn add(&self, i: usize, n: u64) {
        let stripe = STRIPE.with(|s| *s);
        self.stripes[stripe].0[i].fetch_add(n, Relaxed);
    }

    pub fn get(&self, i: usize) -> u64 {
        self.stripes.iter().map(|s| s.0[i].load(Relaxed)).sum()
    }
}
