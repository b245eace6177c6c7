//! [`Status`]: the parts of the proxy whose state is worth reporting, and what the
//! endpoint keeps of its own.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock, atomic::AtomicUsize},
    time::Instant,
};

use super::exporter::Exporter;
use crate::{
    compress::Opener, invalidation::LinkState, l1::L1, metrics::Metrics, ops::Operations,
    policy::Rules, upstream::Upstream,
};

/// What `/metrics`, `/readyz` and `RESPITE STATS` read.
pub struct Status {
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
    pub started: Instant,
    pub max_clients: usize,
    /// Counts the stored values that could not be opened.
    pub opener: Opener,
    pub(super) exporter: Exporter,
    /// Where `/metrics` listens, once bound.
    pub(super) endpoint: OnceLock<SocketAddr>,
}

/// The parts of a [`Status`] (all but what it keeps itself).
pub struct Parts {
    pub metrics: Arc<Metrics>,
    pub upstream: Arc<Upstream>,
    pub l1: Arc<L1>,
    pub policy: Arc<Rules>,
    pub tracking: Option<Arc<LinkState>>,
    pub channel: Option<Arc<LinkState>>,
    pub operations: Arc<Operations>,
    pub warming: Arc<AtomicUsize>,
    pub max_clients: usize,
    pub opener: Opener,
}

impl Status {
    pub fn new(p: Parts) -> Self {
        Self {
            metrics: p.metrics,
            upstream: p.upstream,
            l1: p.l1,
            policy: p.policy,
            tracking: p.tracking,
            channel: p.channel,
            operations: p.operations,
            warming: p.warming,
            max_clients: p.max_clients,
            opener: p.opener,
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
