//! respite's own clients, by the id CLIENT ID gives them: what other clients refer to
//! (CLIENT TRACKING … REDIRECT <id>, CLIENT UNBLOCK <id>) and what operators list and
//! kill.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use dashmap::DashMap;

/// One client, as other sessions see it.
#[derive(Default)]
pub struct ClientEntry {
    /// The `CLIENT ID` in Redis of the client's own upstream connection (0: none).
    upstream_id: AtomicI64,
}

impl ClientEntry {
    pub fn set_upstream_id(&self, id: i64) {
        self.upstream_id.store(id, Ordering::Release);
    }

    pub fn upstream_id(&self) -> i64 {
        self.upstream_id.load(Ordering::Acquire)
    }
}

/// Every connected client.
#[derive(Default)]
pub struct Clients {
    by_id: DashMap<u64, Arc<ClientEntry>>,
}

impl Clients {
    /// Registers client `id`; it is listed until [`Clients::remove`].
    pub fn add(&self, id: u64) -> Arc<ClientEntry> {
        let entry = Arc::new(ClientEntry::default());
        self.by_id.insert(id, entry.clone());
        entry
    }

    pub fn remove(&self, id: u64) {
        self.by_id.remove(&id);
    }

    /// The upstream connection id that stands for respite client `id` in commands
    /// sent to Redis: its own connection's, or one Redis surely has not given
    /// (Redis then answers as for a client that does not exist).
    pub fn upstream_id_of(&self, id: &[u8]) -> i64 {
        std::str::from_utf8(id)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .and_then(|id| self.by_id.get(&id).map(|e| e.upstream_id()))
            .filter(|&up| up > 0)
            .unwrap_or(i64::MAX)
    }
}
