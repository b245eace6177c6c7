//! The operations behind the `RESPITE …` admin commands that outlive one request:
//! pattern deletes, cache warming, the pub/sub invalidation listener, and the shared
//! state that `RESPITE STATS` and `RESPITE PROGRESS` report.
//!
//! The commands themselves are parsed and answered in `session/admin.rs`; this module
//! does not know about sessions, except that warming reads keys through a headless
//! session ([`crate::session::Filler`]) so they are filled exactly as a client's read
//! would fill them.
//!
//! - [`delete`]: `DELPATTERN`: SCAN + UNLINK in batches on every master, invalidating
//!   L1 here and, through [`broadcast`], on other respites.
//! - [`warm`]: `WARM` and `warm = true`: SCAN + reads through the L1 fill path,
//!   bounded by each namespace's share of `max_memory`.
//! - [`broadcast`]: the message format of the invalidation channel and the listener
//!   every respite with `coherence = "ttl-only"` runs.
//! - [`scan`]: SCAN pages and reply parsing shared by the above.

pub mod broadcast;
pub mod delete;
pub mod scan;
pub mod warm;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::watch;

use crate::{error::Error, protocol::reply, server::Shared};

/// Why an admin operation stopped before the end.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Upstream(#[from] Error),
    /// Redis refused a command (ACL, wrong type…): its reply.
    #[error("{}", String::from_utf8_lossy(.0).trim_start_matches('-').trim_end())]
    Redis(Bytes),
    #[error("unexpected reply from Redis: {0}")]
    Unexpected(String),
}

impl AdminError {
    /// The client's reply when the operation stopped after `done` keys: Redis's own
    /// error if nothing happened yet, else an error that says how far it got.
    pub fn to_reply(&self, what: &str, done: u64) -> Bytes {
        match self {
            AdminError::Redis(frame) if done == 0 => frame.clone(),
            AdminError::Upstream(e) if done == 0 => e.to_reply(),
            other => reply::error(&format!("{what} stopped after {done} keys: {other}")),
        }
    }
}

/// Which long-running operation a [`Progress`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Delete,
    Warm,
}

impl OpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Delete => "delpattern",
            OpKind::Warm => "warm",
        }
    }
}

/// How far one running operation got, for `RESPITE PROGRESS` (the CLI's progress
/// bar polls it on a second connection).
#[derive(Debug)]
pub struct Progress {
    pub id: u64,
    pub kind: OpKind,
    pub pattern: String,
    /// `CLIENT SETNAME` of the connection that started it (the CLI finds its own
    /// operation by it); empty for start-up warming.
    pub client: String,
    pub started: Instant,
    /// Part of the keyspace scanned, in millionths.
    scanned_ppm: AtomicU64,
    /// Keys SCAN returned (they matched the pattern).
    pub matched: AtomicU64,
    /// Keys deleted or warmed.
    pub done: AtomicU64,
}

impl Progress {
    /// Part of the keyspace scanned so far, from 0 to 1.
    pub fn fraction(&self) -> f64 {
        self.scanned_ppm.load(Ordering::Relaxed) as f64 / 1e6
    }

    pub fn set_fraction(&self, f: f64) {
        let ppm = (f.clamp(0.0, 1.0) * 1e6) as u64;
        self.scanned_ppm.store(ppm, Ordering::Relaxed);
    }
}

/// State the admin commands share across sessions.
pub struct AdminState {
    pub started: Instant,
    ops: Mutex<Vec<Arc<Progress>>>,
    next_op: AtomicU64,
    /// The invalidation listener runs (`coherence = "ttl-only"` with an L1).
    pub listener_on: AtomicBool,
    /// …and is subscribed right now.
    pub listener_up: AtomicBool,
}

impl Default for AdminState {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            ops: Mutex::default(),
            next_op: AtomicU64::new(1),
            listener_on: AtomicBool::new(false),
            listener_up: AtomicBool::new(false),
        }
    }
}

impl AdminState {
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Registers a running operation; it is listed until the guard is dropped.
    pub fn begin(self: &Arc<Self>, kind: OpKind, pattern: &[u8], client: String) -> OpGuard {
        let progress = Arc::new(Progress {
            id: self.next_op.fetch_add(1, Ordering::Relaxed),
            kind,
            pattern: String::from_utf8_lossy(pattern).into_owned(),
            client,
            started: Instant::now(),
            scanned_ppm: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            done: AtomicU64::new(0),
        });
        self.ops.lock().expect("ops").push(progress.clone());
        OpGuard {
            state: self.clone(),
            progress,
        }
    }

    /// The operations running now, oldest first.
    pub fn running(&self) -> Vec<Arc<Progress>> {
        self.ops.lock().expect("ops").clone()
    }
}

/// A running operation's entry in [`AdminState::running`].
pub struct OpGuard {
    state: Arc<AdminState>,
    pub progress: Arc<Progress>,
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        let id = self.progress.id;
        self.state.ops.lock().expect("ops").retain(|p| p.id != id);
    }
}

/// Starts the background parts: the invalidation listener (`coherence = "ttl-only"`
/// with an L1) and the start-up warming of `warm = true` namespaces.
pub fn start(shared: &Arc<Shared>, stop: watch::Receiver<bool>) {
    broadcast::spawn_listener(shared, stop.clone());
    warm::spawn_on_start(shared, stop);
}
