//! Keeping L1 coherent with writes that do not go through this proxy: other clients,
//! other respites, Lua, expiry, eviction, FLUSHALL.
//!
//! - [`tracking`]: one RESP3 connection with `CLIENT TRACKING ON BCAST` for the
//!   literal prefixes of the cached namespaces (`coherence = "tracking"`).
//! - [`broadcast`]: the invalidation channel, on which respites announce the keys a
//!   pattern delete removed, for those that run `coherence = "ttl-only"`.
//!
//! Both are side connections of their own: losing one flushes or suspends L1 until it
//! is back ([`LinkState`] says which, for STATS and `/readyz`).

pub mod broadcast;
pub mod tracking;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tokio::sync::watch;

/// Waits `backoff` before a side connection's next attempt, then doubles it up to
/// `max`; false once `stop` changes.
async fn wait_to_retry(
    backoff: &mut Duration,
    max: Duration,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        () = tokio::time::sleep(*backoff) => {}
        _ = stop.changed() => return false,
    }
    *backoff = (*backoff * 2).min(max);
    true
}

/// Whether a side connection that keeps L1 coherent is doing so.
#[derive(Default)]
pub struct LinkState {
    up: AtomicBool,
    /// Nothing to keep coherent (no namespace is cached): no connection, and not down.
    idle: AtomicBool,
}

impl LinkState {
    /// Invalidations flow, or nothing needs them.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn is_idle(&self) -> bool {
        self.idle.load(Ordering::Acquire)
    }

    /// `off`, `idle`, `up` or `down`, for STATS.
    pub fn describe(state: Option<&LinkState>) -> &'static str {
        match state {
            None => "off",
            Some(s) if s.is_idle() => "idle",
            Some(s) if s.is_up() => "up",
            Some(_) => "down",
        }
    }

    fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::AcqRel)
    }

    fn set_idle(&self, idle: bool) {
        self.idle.store(idle, Ordering::Release);
    }
}
