//! How one connection task is set up: what it connects as, its timeouts and backoff,
//! and whom it reports to.

use std::{sync::Arc, time::Duration};

use super::{endpoint::Endpoint, key::PoolKey, liveness::Liveness};
use crate::metrics::UpstreamStats;

/// How the task behaves when its socket fails, and when it is silent.
#[derive(Clone)]
pub struct Settings {
    pub endpoint: Arc<Endpoint>,
    pub key: PoolKey,
    pub connect_timeout: Duration,
    /// Silence with requests waiting, before asking `liveness`.
    pub request_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Reconnect after failures (pool connections) or end (dedicated ones).
    pub reconnect: bool,
    pub stats: Arc<UpstreamStats>,
    pub liveness: Arc<Liveness>,
    /// Told when Redis refuses the setup (AUTH, SELECT) of a connection that was up.
    pub on_refused: Option<OnRefused>,
}

/// Called with the key of a connection that was up and whose setup Redis now refuses
/// (its user's password, permissions or existence changed).
pub type OnRefused = Arc<dyn Fn(&PoolKey) + Send + Sync>;
