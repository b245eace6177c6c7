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
//! under `stale_if_error` while Redis is unreachable.

mod fill;
mod reads;
pub mod tracking;

use std::{
    hash::BuildHasher,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;

pub use fill::{Fill, FillKey, Join};
pub use reads::{CacheableRead, cacheable, signature};

/// Generation counters; collisions only cost an occasional extra miss.
const STRIPES: usize = 1 << 18;
/// Per-db flush counters (db modulo this).
const DB_SLOTS: usize = 256;
/// Bytes counted per entry beyond key and value (moka's node, our struct, the Arcs).
const ENTRY_OVERHEAD: usize = 160;

/// What an entry is cached under: the db, the key, and the command that read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryKey {
    pub db: u32,
    pub key: Bytes,
    /// Protocol, command name and the arguments other than the key.
    pub sig: Bytes,
}

/// The counters an entry or a fill was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snapshot {
    generation: u64,
    epoch: u64,
    db_epoch: u64,
    trust: u64,
}

struct Entry {
    reply: Bytes,
    made: Snapshot,
    fresh_until: Instant,
    /// Kept past freshness only for `stale_if_error`.
    keep: Duration,
}

/// What a lookup found.
pub enum Lookup {
    Hit(Bytes),
    /// Present but not fresh; usable only when Redis cannot be reached.
    Stale(Bytes),
    Miss,
}

#[derive(Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub coalesced: AtomicU64,
    pub stale: AtomicU64,
    pub fills_dropped: AtomicU64,
}

pub struct L1 {
    cache: moka::sync::Cache<EntryKey, Arc<Entry>>,
    gens: Box<[AtomicU64]>,
    epoch: AtomicU64,
    db_epochs: Box<[AtomicU64]>,
    trust: AtomicU64,
    /// False while coherence cannot be guaranteed (tracking down): nothing is stored.
    fills_enabled: AtomicBool,
    hasher: std::hash::RandomState,
    max_bytes: u64,
    fills: fill::Inflight,
    pub stats: Stats,
}

impl L1 {
    pub fn new(max_bytes: u64, fills_enabled: bool) -> Arc<Self> {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &EntryKey, e: &Arc<Entry>| {
                let w = k.key.len() + k.sig.len() + e.reply.len() + ENTRY_OVERHEAD;
                u32::try_from(w).unwrap_or(u32::MAX)
            })
            .expire_after(KeepFor)
            .build();
        Arc::new(Self {
            cache,
            gens: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            db_epochs: (0..DB_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            trust: AtomicU64::new(0),
            fills_enabled: AtomicBool::new(fills_enabled),
            hasher: std::hash::RandomState::new(),
            max_bytes,
            fills: fill::Inflight::default(),
            stats: Stats::default(),
        })
    }

    fn stripe(&self, key: &[u8]) -> &AtomicU64 {
        &self.gens[(self.hasher.hash_one(key) as usize) % STRIPES]
    }

    fn db_slot(&self, db: u32) -> &AtomicU64 {
        &self.db_epochs[db as usize % DB_SLOTS]
    }

    /// The counters now; take it before sending the read that will fill `key`.
    pub fn snapshot(&self, db: u32, key: &[u8]) -> Snapshot {
        Snapshot {
            generation: self.stripe(key).load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
            db_epoch: self.db_slot(db).load(Ordering::Acquire),
            trust: self.trust.load(Ordering::Acquire),
        }
    }

    pub fn get(&self, ek: &EntryKey) -> Lookup {
        let Some(entry) = self.cache.get(ek) else {
            return Lookup::Miss;
        };
        let now = self.snapshot(ek.db, &ek.key);
        let same_data = entry.made.generation == now.generation
            && entry.made.epoch == now.epoch
            && entry.made.db_epoch == now.db_epoch;
        if !same_data {
            self.cache.invalidate(ek);
            return Lookup::Miss;
        }
        if entry.made.trust == now.trust && Instant::now() < entry.fresh_until {
            Lookup::Hit(entry.reply.clone())
        } else {
            Lookup::Stale(entry.reply.clone())
        }
    }

    /// Stores a reply read under `made`, unless anything it depends on moved since.
    /// `fresh_for` is min(l1_ttl, the key's remaining TTL); `keep_stale` is the
    /// namespace's `stale_if_error`.
    pub fn insert(
        &self,
        ek: EntryKey,
        made: Snapshot,
        reply: Bytes,
        fresh_for: Duration,
        keep_stale: Duration,
    ) -> bool {
        if !self.fills_enabled.load(Ordering::Acquire)
            || fresh_for.is_zero()
            || self.snapshot(ek.db, &ek.key) != made
        {
            self.stats.fills_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let entry = Entry {
            reply,
            made,
            fresh_until: Instant::now() + fresh_for,
            keep: fresh_for + keep_stale,
        };
        self.cache.insert(ek, Arc::new(entry));
        true
    }

    /// A key changed (a write through the proxy, or an invalidation from Redis), in
    /// any db: tracking messages do not say which.
    pub fn invalidate_key(&self, key: &[u8]) {
        self.stripe(key).fetch_add(1, Ordering::AcqRel);
    }

    /// FLUSHDB or one side of SWAPDB.
    pub fn flush_db(&self, db: u32) {
        self.db_slot(db).fetch_add(1, Ordering::AcqRel);
    }

    /// FLUSHALL, a null invalidation, RESPITE FLUSHL1.
    pub fn flush_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }

    /// Coherence lost (tracking connection down): nothing is fresh any more and nothing
    /// is stored until `resume_fills`.
    pub fn suspend_fills(&self) {
        self.fills_enabled.store(false, Ordering::Release);
        self.trust.fetch_add(1, Ordering::AcqRel);
    }

    pub fn resume_fills(&self) {
        self.trust.fetch_add(1, Ordering::AcqRel);
        self.fills_enabled.store(true, Ordering::Release);
    }

    pub fn fills_enabled(&self) -> bool {
        self.fills_enabled.load(Ordering::Acquire)
    }

    pub fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    pub fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Joins the fill in flight for `key`, or registers a new one for the caller to send.
    pub fn join(&self, key: FillKey) -> Join {
        let join = self.fills.join(key);
        if matches!(join, Join::Waiter(_)) {
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        join
    }

    pub(crate) fn finish_fill(&self, key: &FillKey) {
        self.fills.remove(key);
    }
}

/// Entries live until freshness plus the stale allowance.
struct KeepFor;

impl moka::Expiry<EntryKey, Arc<Entry>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &EntryKey,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.keep)
    }

    fn expire_after_update(
        &self,
        _key: &EntryKey,
        value: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep)
    }
}

/// The entry lifetime for a reply: min(l1_ttl, the key's remaining TTL in Redis).
/// `pttl` is Redis's PTTL reply: -1 no expiry, -2 no such key.
pub fn fresh_for(l1_ttl: Duration, pttl: i64, reply_is_null: bool) -> Duration {
    match pttl {
        -1 => l1_ttl,
        // The key is absent: a null reply is true for as long as nobody writes it
        // (tracking reports that); a value read just before the key expired is not.
        -2 if reply_is_null => l1_ttl,
        p if p > 0 => l1_ttl.min(Duration::from_millis(p as u64)),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ek(key: &'static str) -> EntryKey {
        EntryKey {
            db: 0,
            key: Bytes::from_static(key.as_bytes()),
            sig: Bytes::from_static(b"get"),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn fill_then_hit() {
        let l1 = L1::new(1 << 20, true);
        let made = l1.snapshot(0, b"k");
        assert!(l1.insert(
            ek("k"),
            made,
            Bytes::from_static(b"$1\r\nv\r\n"),
            HOUR,
            Duration::ZERO
        ));
        assert!(matches!(l1.get(&ek("k")), Lookup::Hit(b) if &b[..] == b"$1\r\nv\r\n"));
    }

    #[test]
    fn write_during_fill_drops_the_fill() {
        let l1 = L1::new(1 << 20, true);
        let made = l1.snapshot(0, b"k");
        l1.invalidate_key(b"k"); // a write raced with the read
        assert!(!l1.insert(
            ek("k"),
            made,
            Bytes::from_static(b"old"),
            HOUR,
            Duration::ZERO
        ));
        assert!(matches!(l1.get(&ek("k")), Lookup::Miss));
    }

    #[test]
    fn invalidation_hides_entry() {
        let l1 = L1::new(1 << 20, true);
        l1.insert(
            ek("k"),
            l1.snapshot(0, b"k"),
            Bytes::from_static(b"v"),
            HOUR,
            HOUR,
        );
        l1.invalidate_key(b"k");
        assert!(
            matches!(l1.get(&ek("k")), Lookup::Miss),
            "a known write is never served, not even stale"
        );
    }

    #[test]
    fn flushes_by_db_and_all() {
        let l1 = L1::new(1 << 20, true);
        let mut other = ek("k");
        other.db = 1;
        l1.insert(
            ek("k"),
            l1.snapshot(0, b"k"),
            Bytes::from_static(b"a"),
            HOUR,
            Duration::ZERO,
        );
        l1.insert(
            other.clone(),
            l1.snapshot(1, b"k"),
            Bytes::from_static(b"b"),
            HOUR,
            Duration::ZERO,
        );
        l1.flush_db(1);
        assert!(matches!(l1.get(&ek("k")), Lookup::Hit(_)));
        assert!(matches!(l1.get(&other), Lookup::Miss));
        l1.flush_all();
        assert!(matches!(l1.get(&ek("k")), Lookup::Miss));
    }

    #[test]
    fn tracking_loss_makes_entries_stale_and_stops_fills() {
        let l1 = L1::new(1 << 20, true);
        l1.insert(
            ek("k"),
            l1.snapshot(0, b"k"),
            Bytes::from_static(b"v"),
            HOUR,
            HOUR,
        );
        l1.suspend_fills();
        assert!(matches!(l1.get(&ek("k")), Lookup::Stale(_)));
        assert!(!l1.insert(
            ek("j"),
            l1.snapshot(0, b"j"),
            Bytes::from_static(b"v"),
            HOUR,
            HOUR
        ));
        l1.resume_fills();
        assert!(l1.insert(
            ek("j"),
            l1.snapshot(0, b"j"),
            Bytes::from_static(b"v"),
            HOUR,
            HOUR
        ));
    }

    #[test]
    fn bounded_in_bytes() {
        let l1 = L1::new(100_000, true);
        for i in 0..1000 {
            let key = Bytes::from(format!("key{i}"));
            let e = EntryKey {
                db: 0,
                key: key.clone(),
                sig: Bytes::from_static(b"get"),
            };
            l1.insert(
                e,
                l1.snapshot(0, &key),
                Bytes::from(vec![b'x'; 1000]),
                HOUR,
                Duration::ZERO,
            );
        }
        assert!(l1.bytes() <= 100_000, "{}", l1.bytes());
        assert!(l1.entries() > 0);
    }

    #[test]
    fn entry_lifetime() {
        let s = Duration::from_secs(10);
        assert_eq!(fresh_for(s, -1, false), s);
        assert_eq!(fresh_for(s, 2000, false), Duration::from_secs(2));
        assert_eq!(fresh_for(s, 60_000, false), s);
        assert_eq!(fresh_for(s, -2, true), s);
        assert_eq!(fresh_for(s, -2, false), Duration::ZERO);
        assert_eq!(fresh_for(s, 0, false), Duration::ZERO);
    }
}
