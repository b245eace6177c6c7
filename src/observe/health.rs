//! Readiness: whether this proxy should be sent traffic (`/readyz`).

use super::status::Status;

/// Why the proxy is not ready, or that it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// A short reason, shown in the `/readyz` body.
    NotReady(&'static str),
}

impl Status {
    /// Ready when Redis is reachable (a connection of the initial pool is up), with
    /// `coherence = "tracking"` the tracking connection is established (or idle, with
    /// nothing cached), and start-up warming is done. Conditions are checked in order;
    /// the first unmet one is the reason.
    pub fn readiness(&self) -> Readiness {
        if !self.parts.upstream.is_up() {
            return Readiness::NotReady("upstream unreachable");
        }
        if self.parts.tracking.as_ref().is_some_and(|t| !t.is_up()) {
            return Readiness::NotReady("l1 tracking not established");
        }
        if self
            .parts
            .warming
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            return Readiness::NotReady("warming");
        }
        Readiness::Ready
    }
}
