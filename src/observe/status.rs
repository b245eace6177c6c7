//! [`Status`]: the parts of the proxy whose state is worth reporting, and what the
//! endpoint keeps of its own.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock, atomic::AtomicUsize},
    time::Instant,
};

use super::{exporter::Exporter, poll::RedisState};
use crate::{
    compress::Opener, invalidation::LinkState, l1::L1, metrics::Metrics, ops::Operations,
    policy::Rules, upstream::Upstream,
};

/// What `/metrics`, `/readyz` and `RESPITE STATS` read: the parts the server built,
/// and what the endpoint keeps itself.
pub struct Status {
    pub parts: Parts,
    pub started: Instant,
    pub(super) exporter: Exporter,
    /// Where `/metrics` listens, once bound.
    pub(super) endpoint: OnceLock<SocketAddr>,
}

/// The parts of a [`Status`] the server builds.
pub struct Parts {
    pub metrics: Arc<Metrics>,
    pub upstream: Arc<Upstream>,
    pub l1: Arc<L1>,
    pub policy: Arc<Rules>,
    /// Present with `coherence = "tracking"`.
    pub tracking: Option<Arc<LinkState>>,
    /// The invalidation channel's listener, when it runs.
    pub channel: Option<Arc<LinkState>>,
    pub operations: Arc<Operations>,
    /// Namespaces whose start-up warming is still running.
    pub warming: Arc<AtomicUsize>,
    pub max_clients: usize,
    /// Where the TLS listener listens, if it runs.
    pub tls_listen: Option<SocketAddr>,
    /// Counts the stored values that could not be opened.
    pub opener: Opener,
    /// Redis's own state, as last polled and sampled.
    pub redis: Arc<RedisState>,
}

impl Status {
    pub fn new(parts: Parts) -> Self {
        Self {
            parts,
            started: Instant::now(),
            exporter: Exporter::new(),
            endpoint: OnceLock::new(),
        }
    }

    /// The address `/metrics` listens on, if the endpoint is running.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint.get().copied()
    }
}
