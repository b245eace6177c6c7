//! [`RedisState`]: the last answers of the poll and the sampler, which `/metrics` and
//! `RESPITE STATS` read.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use super::info::Info;

/// One namespace's estimated size in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub keys: u64,
    /// None when Redis refused `MEMORY USAGE`.
    pub bytes: Option<u64>,
}

/// The last answers from Redis, as the poll and the sampler left them.
#[derive(Default)]
pub struct RedisState {
    /// `upstream_poll` is on.
    pub(super) polling: AtomicBool,
    last: Mutex<Last>,
    /// The last estimate of each namespace of the rules in force, by name.
    sizes: Mutex<HashMap<Arc<str>, Size>>,
}

#[derive(Default)]
struct Last {
    /// The last INFO answered, and when.
    info: Option<(Info, Instant)>,
    /// The last poll was answered.
    answered: bool,
}

impl RedisState {
    /// The last INFO Redis answered, and how long ago.
    pub fn info(&self) -> Option<(Info, Duration)> {
        let last = self.last.lock().expect("redis state");
        let (info, at) = last.info.as_ref()?;
        Some((info.clone(), at.elapsed()))
    }

    /// Whether Redis answered the last poll; None while polling is off.
    pub fn poll_answered(&self) -> Option<bool> {
        let on = self.polling.load(Ordering::Relaxed);
        on.then(|| self.last.lock().expect("redis state").answered)
    }

    /// The last size estimate of namespace `name`.
    pub fn size(&self, name: &str) -> Option<Size> {
        self.sizes.lock().expect("sizes").get(name).copied()
    }

    pub(super) fn answered(&self, info: Option<Info>) {
        let mut last = self.last.lock().expect("redis state");
        last.answered = info.is_some();
        if let Some(info) = info {
            last.info = Some((info, Instant::now()));
        }
    }

    pub(super) fn set_size(&self, name: &Arc<str>, size: Size) {
        self.sizes.lock().expect("sizes").insert(name.clone(), size);
    }

    /// Forgets the namespaces no rule in force has (a reload removed them).
    pub(super) fn keep_sizes(&self, names: &[Arc<str>]) {
        let mut sizes = self.sizes.lock().expect("sizes");
        sizes.retain(|name, _| names.contains(name));
    }
}
