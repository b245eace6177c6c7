//! Operations that outlive one request: pattern deletes and cache warming, run as tasks
//! for `RESPITE DELPATTERN` / `RESPITE WARM` (see `admin.rs`) and `warm = true`, and the
//! registry of those running, which `RESPITE PROGRESS` reports.
//!
//! - [`delete`]: SCAN + UNLINK in batches on every master, invalidating L1 here and,
//!   through the invalidation channel, on other respites.
//! - [`warm`]: SCAN + reads through L1's read-through, bounded by each namespace's
//!   share of `max_memory`.
//! - [`scan`]: SCAN pages and reply parsing shared by the above.

pub mod delete;
pub mod scan;
pub mod warm;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;

use crate::error::Error;

/// Why an operation stopped before the end.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Upstream(#[from] Error),
    /// Redis refused a command (ACL, wrong type…): its reply.
    #[error("{}", String::from_utf8_lossy(.0).trim_start_matches('-').trim_end())]
    Redis(Bytes),
    #[error("unexpected reply from Redis: {0}")]
    Unexpected(String),
}

impl OpError {
    /// The client's error when the operation stopped after `done` keys: Redis's own
    /// error if nothing happened yet, else one that says how far it got.
    pub fn to_error(&self, what: &str, done: u64) -> Error {
        match self {
            OpError::Redis(frame) if done == 0 => Error::Redis(frame.clone()),
            OpError::Upstream(e) if done == 0 => e.clone(),
            other => Error::refused(format!("{what} stopped after {done} keys: {other}")),
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

/// The operations running now.
pub struct Operations {
    ops: Mutex<Vec<Arc<Progress>>>,
    next_op: AtomicU64,
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            ops: Mutex::default(),
            next_op: AtomicU64::new(1),
        }
    }
}

impl Operations {
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
            registry: self.clone(),
            progress,
        }
    }

    /// The operations running now, oldest first.
    pub fn running(&self) -> Vec<Arc<Progress>> {
        self.ops.lock().expect("ops").clone()
    }
}

/// A running operation's entry in [`Operations::running`].
pub struct OpGuard {
    registry: Arc<Operations>,
    pub progress: Arc<Progress>,
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        let id = self.progress.id;
        self.registry
            .ops
            .lock()
            .expect("ops")
            .retain(|p| p.id != id);
    }
}
