//! The in-process L1 cache: reply bytes of cached reads, bounded in bytes, kept
//! coherent by generations.
//!
//! Every key hashes to one of many generation counters. A write through the proxy or
//! an invalidation from Redis bumps the key's counter; an entry is valid only while the
//! counter still has the value it had when the read that filled it was sent. That one
//! check answers both staleness questions: an invalidated entry is never served, and a
//! fill whose read raced with a write is never stored (moka's own `get_with` would
//! store it: `invalidate` during an in-flight init does not cancel the insert). Two
//! counters of the same kind cover whole flushes: `epoch` (FLUSHALL, RESPITE FLUSHL1)
//! and one per db (FLUSHDB, SWAPDB). A third, `trust`, moves when the tracking
//! connection is lost: older entries are no longer fresh, but may still be served
//! under `stale_if_error` while Redis is unreachable (never when Redis refuses: an
//! error that is not an outage is the client's answer).
//!
//! Entries are per ACL user (`scope.rs`): each user has an id of its own and an
//! epoch that its ACL changes move (ACL SETUSER / DELUSER / LOAD through this proxy,
//! at send and again when Redis answers; a change of its `ACL LIST` line seen by the
//! ACL check in `observe::poll`; a connection of that user whose AUTH Redis now
//! refuses), so a hit never gives a user what Redis would refuse it now.
//!
//! moka decides what stays (TinyLFU admission, eviction by weight, per-entry expiry);
//! hits are read from a DashMap index of the same entries, which moka's eviction
//! listener keeps in step. moka records every read for its policy, which costs about
//! 2 µs per `get` at 100k entries on the development machine (DashMap: 0.24 µs): more
//! than Redis spends on a whole pipelined GET. So one hit in `POLICY_SAMPLE` is also
//! reported to moka, which keeps its frequency estimates proportional.

mod fill;
mod fresh;
mod key;
mod read;
mod reads;
mod scope;
mod store;

pub use fresh::{describes_missing_key, fresh_for};
pub use key::{EntryKey, Snapshot};
pub use read::{Filling, Keep, Load, MgetKey, MgetServed, Served};
pub use reads::{CacheableRead, cacheable, get_signature, signature};
pub use scope::{OWN, user_of};
pub use store::{Cached, L1, Lookup, Stats};
