//! Miss coalescing: concurrent misses of the same entry under the same counters share
//! one upstream read. A client's own write moves the key's generation, so its next
//! read never joins a fetch that started before that write.

use std::sync::{Arc, Mutex};

use dashmap::{DashMap, mapref::entry::Entry};
use tokio::sync::oneshot;

use super::key::{EntryKey, Snapshot};
use crate::error::Reply;

/// One fill in flight: the entry and the counters its read was sent under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FillKey {
    pub ek: EntryKey,
    pub made: Snapshot,
}

/// The clients waiting for one fill.
#[derive(Default)]
pub struct Fill {
    waiters: Mutex<Vec<oneshot::Sender<Reply>>>,
}

impl Fill {
    /// Hands the result to every waiter.
    pub fn complete(&self, reply: &Reply) {
        let waiters = std::mem::take(&mut *self.waiters.lock().expect("fill waiters"));
        for w in waiters {
            let _ = w.send(reply.clone());
        }
    }
}

pub enum Join {
    /// Nobody is fetching this: the caller sends the read and completes the fill.
    Leader(Arc<Fill>, oneshot::Receiver<Reply>),
    /// Another client's read is in flight: wait for its result.
    Waiter(oneshot::Receiver<Reply>),
}

#[derive(Default)]
pub(super) struct Inflight {
    map: DashMap<FillKey, Arc<Fill>>,
}

impl Inflight {
    pub(super) fn join(&self, key: FillKey) -> Join {
        let (tx, rx) = oneshot::channel();
        // The shard lock orders joins against `remove`: a waiter is registered
        // before the fill is removed, or it starts a fill of its own.
        match self.map.entry(key) {
            Entry::Occupied(e) => {
                e.get().waiters.lock().expect("fill waiters").push(tx);
                Join::Waiter(rx)
            }
            Entry::Vacant(v) => {
                let fill = Arc::new(Fill::default());
                fill.waiters.lock().expect("fill waiters").push(tx);
                v.insert(fill.clone());
                Join::Leader(fill, rx)
            }
        }
    }

    pub(super) fn remove(&self, key: &FillKey) {
        self.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::l1::L1;

    #[test]
    fn second_miss_joins_first() {
        let l1 = L1::new(1 << 20, true);
        let ek = EntryKey::new(0, 0, Bytes::from_static(b"k"), Bytes::from_static(b"get"));
        let key = FillKey {
            ek: ek.clone(),
            made: l1.snapshot(&ek),
        };
        let Join::Leader(fill, mut rx1) = l1.join(key.clone()) else {
            panic!("first is leader")
        };
        let Join::Waiter(mut rx2) = l1.join(key.clone()) else {
            panic!("second waits")
        };
        // After a write the generation differs: a new fill, not a join.
        l1.invalidate_key(b"k");
        let fresh = FillKey {
            made: l1.snapshot(&ek),
            ek,
        };
        assert!(matches!(l1.join(fresh), Join::Leader(..)));
        l1.finish_fill(&key);
        fill.complete(&Ok(Bytes::from_static(b"+v\r\n")));
        assert_eq!(&rx1.try_recv().unwrap().unwrap()[..], b"+v\r\n");
        assert_eq!(&rx2.try_recv().unwrap().unwrap()[..], b"+v\r\n");
        assert_eq!(
            l1.stats
                .coalesced
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
