//! Opening stored values for one proxy: the limit they are opened under and the
//! count of those that fail.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

use bytes::Bytes;

use super::{
    envelope::DEFAULT_MAX_LEN,
    open::{self, Envelope, Failure, OpenError},
};

/// Stored values that could not be opened, by [`Failure`].
#[derive(Debug, Default)]
pub struct Failures([AtomicU64; 3]);

impl Failures {
    pub fn get(&self, failure: Failure) -> u64 {
        self.0[failure as usize].load(Relaxed)
    }

    /// Counts one; returns how many values failed so far, all reasons.
    fn add(&self, failure: Failure) -> u64 {
        self.0[failure as usize].fetch_add(1, Relaxed);
        Failure::ALL.iter().map(|&f| self.get(f)).sum()
    }
}

/// Opens stored values for one proxy: the longest original an envelope may claim
/// (`server.max_bulk_len`), and where values that fail to open are counted.
#[derive(Debug, Clone)]
pub struct Opener {
    max_len: usize,
    failures: Arc<Failures>,
}

impl Default for Opener {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LEN, Arc::default())
    }
}

impl Opener {
    pub fn new(max_len: usize, failures: Arc<Failures>) -> Self {
        Self { max_len, failures }
    }

    /// Where values that failed to open are counted.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// [`open::parse`] under this opener's limit.
    pub fn parse<'a>(&self, stored: &'a [u8]) -> Result<Option<Envelope<'a>>, OpenError> {
        open::parse(stored, self.max_len)
    }

    /// The error reply for a stored value that failed to open, counted (and logged
    /// at 1, 2, 4, 8… failures, so damaged data shows in the log without flooding it).
    pub fn refuse(&self, e: &OpenError) -> Bytes {
        let n = self.failures.add(e.failure());
        if n.is_power_of_two() {
            tracing::warn!(error = %e, failures = n, "a stored value starts like a compression envelope but cannot be opened: the client got an error");
        }
        // The codec's message is the only text not ours: keep the frame one line.
        let text = format!("respite: stored value could not be decoded: {e}");
        Bytes::from(format!("-ERR {}\r\n", text.replace(['\r', '\n'], " ")))
    }
}
