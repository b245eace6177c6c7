//! The store itself: [`L1`], its entries (one allocation each), the generation
//! counters that decide whether an entry is still valid, and moka's eviction.

use std::{
    hash::BuildHasher,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;

use super::{
    fill::{self, FillKey, Join},
    key::{EntryKey, HASHER, Snapshot},
    scope::{Scopes, user_of},
};
use crate::{
    config::Credentials,
    metrics::{InvalidationSource, Invalidations, Namespaces},
    protocol::same,
};

/// Generation counters; collisions only cost an occasional extra miss.
const STRIPES: usize = 1 << 18;
/// Per-db flush counters (db modulo this).
const DB_SLOTS: usize = 256;
/// Bytes counted per entry beyond key and value (moka's node, the index slot, our
/// struct, the Arcs).
const ENTRY_OVERHEAD: usize = 200;
/// One hit in this many is reported to moka's eviction policy. `benches/zipf.sh` gives
/// the same hit ratio (75.5%) with 16 and 64; 64 saves 5% of the CPU of a pipelined hit.
const POLICY_SAMPLE: u64 = 64;

thread_local! {
    /// Hits on this thread (per thread: a shared counter would move its cache line
    /// between threads on every hit).
    static READS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// True for one hit in `POLICY_SAMPLE` on this thread.
fn sampled() -> bool {
    READS.with(|r| {
        let n = r.get().wrapping_add(1);
        r.set(n);
        n % POLICY_SAMPLE == 0
    })
}

/// The cache is keyed by the precomputed 64-bit hash; the entry holds the full key,
/// compared on every hit (a collision is a miss, and an insert replaces the other).
#[derive(Default)]
struct U64Hasher(u64);

impl std::hash::Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdentityState = std::hash::BuildHasherDefault<U64Hasher>;

/// One cached reply: a fixed header, then key, signature and reply bytes, all in one
/// allocation with its reference counts, so a hit touches one block of memory beyond
/// the index (each further block is a cache miss, which dominates a hit's cost).
#[derive(Clone)]
struct Entry(Arc<[u8]>);

/// Header layout (native-endian words).
mod at {
    pub const HASH: usize = 0;
    pub const SCOPE: usize = 8;
    pub const GENERATION: usize = 16;
    pub const EPOCH: usize = 24;
    pub const DB_EPOCH: usize = 32;
    pub const TRUST: usize = 40;
    pub const SCOPE_EPOCH: usize = 48;
    pub const FRESH_UNTIL: usize = 56;
    pub const KEEP_UNTIL: usize = 64;
    pub const KEEP: usize = 72;
    pub const DB: usize = 80;
    pub const KEY_LEN: usize = 84;
    pub const SIG_LEN: usize = 88;
    pub const NS: usize = 92;
    pub const SIZE: usize = 96;
}

/// Entry times are stored as nanoseconds since this instant.
static BASE: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn nanos_since_base(t: Instant) -> u64 {
    t.saturating_duration_since(*BASE).as_nanos() as u64
}

impl Entry {
    /// `keep`: how long moka keeps it (freshness plus the stale allowance).
    fn new(
        ek: &EntryKey,
        made: Snapshot,
        reply: &[u8],
        fresh_for: Duration,
        keep: Duration,
    ) -> Self {
        let now = nanos_since_base(Instant::now());
        let mut buf = Vec::with_capacity(at::SIZE + ek.key.len() + ek.sig.len() + reply.len());
        for word in [
            ek.hash,
            ek.scope,
            made.generation,
            made.epoch,
            made.db_epoch,
            made.trust,
            made.scope_epoch,
            now + fresh_for.as_nanos() as u64,
            now + keep.as_nanos() as u64,
            keep.as_nanos() as u64,
        ] {
            buf.extend_from_slice(&word.to_ne_bytes());
        }
        for half in [ek.db, ek.key.len() as u32, ek.sig.len() as u32, ek.ns] {
            buf.extend_from_slice(&half.to_ne_bytes());
        }
        buf.extend_from_slice(&ek.key);
        buf.extend_from_slice(&ek.sig);
        buf.extend_from_slice(reply);
        Self(Arc::from(buf))
    }

    fn word(&self, at: usize) -> u64 {
        u64::from_ne_bytes(self.0[at..at + 8].try_into().expect("header word"))
    }

    fn half(&self, at: usize) -> u32 {
        u32::from_ne_bytes(self.0[at..at + 4].try_into().expect("header half"))
    }

    fn made(&self) -> Snapshot {
        Snapshot {
            generation: self.word(at::GENERATION),
            epoch: self.word(at::EPOCH),
            db_epoch: self.word(at::DB_EPOCH),
            trust: self.word(at::TRUST),
            scope_epoch: self.word(at::SCOPE_EPOCH),
        }
    }

    /// Bytes counted against `max_memory`.
    fn weight(&self) -> usize {
        self.0.len() + ENTRY_OVERHEAD
    }

    fn keep(&self) -> Duration {
        Duration::from_nanos(self.word(at::KEEP))
    }

    fn key_end(&self) -> usize {
        at::SIZE + self.half(at::KEY_LEN) as usize
    }

    fn key(&self) -> &[u8] {
        &self.0[at::SIZE..self.key_end()]
    }

    fn scope(&self) -> u64 {
        self.word(at::SCOPE)
    }

    fn reply(&self) -> &[u8] {
        &self.0[self.key_end() + self.half(at::SIG_LEN) as usize..]
    }

    fn is_for(&self, ek: &EntryKey) -> bool {
        let (key_end, sig_len) = (self.key_end(), self.half(at::SIG_LEN) as usize);
        self.word(at::HASH) == ek.hash
            && self.half(at::DB) == ek.db
            && self.word(at::SCOPE) == ek.scope
            && same(&self.0[at::SIZE..key_end], &ek.key)
            && same(&self.0[key_end..key_end + sig_len], &ek.sig)
    }
}

/// A cached reply, readable as bytes.
pub struct Cached(Entry);

impl std::ops::Deref for Cached {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.reply()
    }
}

/// What a lookup found.
pub enum Lookup {
    Hit(Cached),
    /// Present but not fresh; usable only when Redis cannot be reached.
    Stale(Cached),
    Miss,
}

#[derive(Default)]
/// Whole-cache counters (hits, misses and stale serves are per namespace, in the
/// metrics' `NamespaceStats`).
pub struct Stats {
    pub coalesced: AtomicU64,
    pub fills_dropped: AtomicU64,
    pub invalidations: Invalidations,
}

pub struct L1 {
    cache: moka::sync::Cache<u64, Entry, IdentityState>,
    index: Arc<dashmap::DashMap<u64, Entry, IdentityState>>,
    gens: Box<[AtomicU64]>,
    epoch: AtomicU64,
    db_epochs: Box<[AtomicU64]>,
    trust: AtomicU64,
    /// Scope ids per ACL user, and their epochs.
    scopes: Scopes,
    /// False while coherence cannot be guaranteed (tracking down): nothing is stored.
    fills_enabled: AtomicBool,
    max_bytes: u64,
    fills: fill::Inflight,
    pub stats: Stats,
    /// Per-namespace entries, bytes and evictions, by `EntryKey::ns`.
    namespaces: Arc<Namespaces>,
}

impl L1 {
    pub fn new(max_bytes: u64, fills_enabled: bool) -> Arc<Self> {
        Self::with_namespaces(max_bytes, fills_enabled, Arc::default(), None)
    }

    /// An L1 that counts its entries into `namespaces` (those of the policy's rules);
    /// `own`: the credentials of the upstream URL (whose user's scope is `scope::OWN`).
    pub fn with_namespaces(
        max_bytes: u64,
        fills_enabled: bool,
        namespaces: Arc<Namespaces>,
        own: Option<&Credentials>,
    ) -> Arc<Self> {
        // More shards than DashMap's default (4 per CPU): readers on different threads
        // then rarely take the same shard lock's cache line.
        let index: Arc<dashmap::DashMap<u64, Entry, IdentityState>> = Arc::new(
            dashmap::DashMap::with_hasher_and_shard_amount(IdentityState::default(), 256),
        );
        let in_step = index.clone();
        let counted = namespaces.clone();
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .eviction_listener(move |hash: Arc<u64>, gone: Entry, cause| {
                // Only if the index still holds this very entry (not a newer one).
                in_step.remove_if(&*hash, |_, e| Arc::ptr_eq(&e.0, &gone.0));
                counted.with(gone.half(at::NS), |ns| {
                    ns.account(gone.weight(), -1);
                    match cause {
                        moka::notification::RemovalCause::Size => &ns.evicted_size,
                        moka::notification::RemovalCause::Expired => &ns.evicted_expired,
                        _ => return,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                });
            })
            .weigher(|_: &u64, e: &Entry| u32::try_from(e.weight()).unwrap_or(u32::MAX))
            .expire_after(KeepFor)
            .build_with_hasher(IdentityState::default());
        Arc::new(Self {
            cache,
            index,
            gens: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            db_epochs: (0..DB_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            trust: AtomicU64::new(0),
            scopes: Scopes::new(user_of(own)),
            fills_enabled: AtomicBool::new(fills_enabled),
            max_bytes,
            fills: fill::Inflight::default(),
            stats: Stats::default(),
            namespaces,
        })
    }

    fn stripe(&self, key_hash: u64) -> &AtomicU64 {
        &self.gens[(key_hash as usize) % STRIPES]
    }

    fn db_slot(&self, db: u32) -> &AtomicU64 {
        &self.db_epochs[db as usize % DB_SLOTS]
    }

    /// The counters now; take it before sending the read that will fill `key`.
    pub fn snapshot(&self, ek: &EntryKey) -> Snapshot {
        self.snapshot_hashed(ek.db, ek.scope, ek.key_hash)
    }

    fn snapshot_hashed(&self, db: u32, scope: u64, key_hash: u64) -> Snapshot {
        Snapshot {
            generation: self.stripe(key_hash).load(Ordering::Acquire),
            epoch: self.epoch.load(Ordering::Acquire),
            db_epoch: self.db_slot(db).load(Ordering::Acquire),
            trust: self.trust.load(Ordering::Acquire),
            scope_epoch: self.scopes.epoch(scope),
        }
    }

    pub fn get(&self, ek: &EntryKey) -> Lookup {
        let Some(entry) = self
            .index
            .get(&ek.hash)
            .map(|e| e.clone())
            .filter(|e| e.is_for(ek))
        else {
            return Lookup::Miss;
        };
        let now_ns = nanos_since_base(Instant::now());
        if now_ns >= entry.word(at::KEEP_UNTIL) {
            return Lookup::Miss;
        }
        if sampled() {
            let _ = self.cache.get(&ek.hash);
        }
        let now = self.snapshot(ek);
        let made = entry.made();
        if !made.same_data(&now) {
            self.index
                .remove_if(&ek.hash, |_, e| Arc::ptr_eq(&e.0, &entry.0));
            self.cache.invalidate(&ek.hash);
            return Lookup::Miss;
        }
        if made.trust == now.trust && now_ns < entry.word(at::FRESH_UNTIL) {
            Lookup::Hit(Cached(entry))
        } else {
            Lookup::Stale(Cached(entry))
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
            || self.snapshot(&ek) != made
        {
            self.stats.fills_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let hash = ek.hash;
        let entry = Entry::new(&ek, made, &reply, fresh_for, fresh_for + keep_stale);
        // Counted in before moka can count it out (eviction listener).
        self.namespaces
            .with(ek.ns, |ns| ns.account(entry.weight(), 1));
        self.index.insert(hash, entry.clone());
        self.cache.insert(hash, entry);
        true
    }

    /// The scope of connections authenticated with `creds` (see [`EntryKey::scope`]):
    /// `scope::OWN` for the URL's user, else the user's own id. Takes a lock for
    /// another user than the URL's: a session asks once per user it authenticates as.
    pub fn scope_of(&self, creds: Option<&Credentials>) -> u64 {
        self.scopes.id(user_of(creds))
    }

    /// The ACL of `users` changed (or may have): their entries are no longer served
    /// and no fill in flight for them is stored. Users never seen have nothing cached.
    pub fn drop_users<'a>(&self, users: impl IntoIterator<Item = &'a str>) {
        for user in users {
            if let Some(id) = self.scopes.find(user) {
                self.scopes.bump(id);
                self.stats.invalidations.add(InvalidationSource::Acl, 1);
            }
        }
    }

    /// Every user's ACL may have changed (ACL LOAD): nothing cached is served.
    pub fn drop_all_users(&self) {
        self.flush_all();
        self.stats.invalidations.add(InvalidationSource::Acl, 1);
    }

    /// A key changed (a write through the proxy, or an invalidation from Redis), in
    /// any db: tracking messages do not say which.
    pub fn invalidate_key(&self, key: &[u8]) {
        self.stripe(HASHER.hash_one(key))
            .fetch_add(1, Ordering::AcqRel);
    }

    /// FLUSHDB or one side of SWAPDB.
    pub fn flush_db(&self, db: u32) {
        self.db_slot(db).fetch_add(1, Ordering::AcqRel);
    }

    /// FLUSHALL, a null invalidation, RESPITE FLUSHL1.
    pub fn flush_all(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
        self.index.clear();
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

    /// What an entry for `ek` with a reply of `reply_len` bytes counts against
    /// `max_memory`.
    pub fn entry_weight(ek: &EntryKey, reply_len: usize) -> u64 {
        (at::SIZE + ek.key.len() + ek.sig.len() + reply_len + ENTRY_OVERHEAD) as u64
    }

    /// Calls `f(db, key, weight)` for every entry held. Walks the whole index: for
    /// STATS and admin commands, not for the request path.
    pub fn for_each_entry(&self, mut f: impl FnMut(u32, &[u8], u64)) {
        for e in self.index.iter() {
            let entry = e.value();
            f(entry.half(at::DB), entry.key(), entry.weight() as u64);
        }
    }

    /// Drops the entries for which `drop(db, key)` holds, moving their keys'
    /// generations so a fill in flight cannot bring them back, and every entry that
    /// can never be served again because its key changed since it was stored (after a
    /// pattern delete those would hold memory until they expire). Returns how many
    /// entries were dropped.
    pub fn remove_where(&self, mut drop: impl FnMut(u32, &[u8]) -> bool) -> u64 {
        let mut gone = Vec::new();
        for e in self.index.iter() {
            let entry = e.value();
            let chosen = drop(entry.half(at::DB), entry.key());
            if chosen || !self.still_valid(entry) {
                gone.push((*e.key(), entry.clone(), chosen));
            }
        }
        // moka's eviction listener writes to the index: not while iterating it.
        for (hash, entry, chosen) in &gone {
            if *chosen {
                self.invalidate_key(entry.key());
            }
            self.index
                .remove_if(hash, |_, e| Arc::ptr_eq(&e.0, &entry.0));
            self.cache.invalidate(hash);
        }
        gone.len() as u64
    }

    /// False once the entry's key, db or the whole cache was invalidated.
    fn still_valid(&self, entry: &Entry) -> bool {
        let key_hash = HASHER.hash_one(entry.key());
        let now = self.snapshot_hashed(entry.half(at::DB), entry.scope(), key_hash);
        entry.made().same_data(&now)
    }

    /// Counts a stale entry served (under `stale_if_error`) for `ek`.
    pub fn served_stale(&self, ek: &EntryKey) {
        self.namespaces.with(ek.ns, |ns| {
            ns.count_stale();
        });
    }

    /// Joins the fill in flight for `key`, or registers a new one for the caller to send.
    pub(super) fn join(&self, key: FillKey) -> Join {
        let join = self.fills.join(key);
        if matches!(join, Join::Waiter(_)) {
            self.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        join
    }

    pub(super) fn finish_fill(&self, key: &FillKey) {
        self.fills.remove(key);
    }
}

/// Entries live until freshness plus the stale allowance.
struct KeepFor;

impl moka::Expiry<u64, Entry> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.keep())
    }

    fn expire_after_update(
        &self,
        _key: &u64,
        value: &Entry,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inserts `value` for `e` under the counters as they are now.
    fn put(l1: &L1, e: EntryKey, value: &'static [u8], fresh: Duration, keep: Duration) -> bool {
        let made = l1.snapshot(&e);
        l1.insert(e, made, Bytes::from_static(value), fresh, keep)
    }

    fn ek(key: &str) -> EntryKey {
        EntryKey::new(
            0,
            0,
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::from_static(b"get"),
        )
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// Fills `n` entries `key0`… of 1,000-byte replies in namespace `ns`.
    fn fill_many(l1: &L1, n: usize, ns: u32) {
        for i in 0..n {
            let e = ek(&format!("key{i}")).in_namespace(ns);
            l1.insert(
                e.clone(),
                l1.snapshot(&e),
                Bytes::from(vec![b'x'; 1000]),
                HOUR,
                Duration::ZERO,
            );
        }
    }

    #[test]
    fn fill_then_hit() {
        let l1 = L1::new(1 << 20, true);
        let made = l1.snapshot(&ek("k"));
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
        let made = l1.snapshot(&ek("k"));
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
        put(&l1, ek("k"), b"v", HOUR, HOUR);
        l1.invalidate_key(b"k");
        assert!(
            matches!(l1.get(&ek("k")), Lookup::Miss),
            "a known write is never served, not even stale"
        );
    }

    #[test]
    fn flushes_by_db_and_all() {
        let l1 = L1::new(1 << 20, true);
        let other = EntryKey::new(1, 0, Bytes::from_static(b"k"), Bytes::from_static(b"get"));
        put(&l1, ek("k"), b"a", HOUR, Duration::ZERO);
        l1.insert(
            other.clone(),
            l1.snapshot(&other),
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
        put(&l1, ek("k"), b"v", HOUR, HOUR);
        l1.suspend_fills();
        assert!(matches!(l1.get(&ek("k")), Lookup::Stale(_)));
        assert!(!put(&l1, ek("j"), b"v", HOUR, HOUR));
        l1.resume_fills();
        assert!(put(&l1, ek("j"), b"v", HOUR, HOUR));
    }

    fn creds(user: &str) -> Credentials {
        Credentials {
            user: Some(user.into()),
            pass: "pw".into(),
        }
    }

    /// `key` as read by `user`.
    fn ek_of(l1: &L1, user: &str, key: &'static str) -> EntryKey {
        let scope = l1.scope_of(Some(&creds(user)));
        EntryKey::new(0, scope, Bytes::from(key), Bytes::from_static(b"get"))
    }

    #[test]
    fn an_acl_change_drops_that_users_entries_and_fills_only() {
        let own = creds("app");
        let l1 = L1::with_namespaces(1 << 20, true, Arc::default(), Some(&own));
        assert_eq!(l1.scope_of(Some(&own)), super::super::OWN);
        let (a, b, app) = (
            ek_of(&l1, "alice", "k"),
            ek_of(&l1, "bob", "k"),
            ek_of(&l1, "app", "k"),
        );
        assert!(a.scope != b.scope && a.scope != app.scope);
        for e in [&a, &b, &app] {
            assert!(put(&l1, e.clone(), b"v", HOUR, HOUR));
        }
        // alice's read is in flight when her ACL changes.
        let a2 = ek_of(&l1, "alice", "k2");
        let made = l1.snapshot(&a2);
        l1.drop_users(["alice", "nobody"]);
        assert!(matches!(l1.get(&a), Lookup::Miss), "not even stale");
        assert!(matches!(l1.get(&b), Lookup::Hit(_)));
        assert!(matches!(l1.get(&app), Lookup::Hit(_)));
        assert!(!l1.insert(a2.clone(), made, Bytes::from_static(b"old"), HOUR, HOUR));
        assert!(
            put(&l1, a2, b"new", HOUR, HOUR),
            "a fill read after it is stored"
        );
        assert_eq!(l1.stats.invalidations.get(InvalidationSource::Acl), 1);
        // The URL's user is a user too; ACL LOAD drops everyone's.
        l1.drop_users(["app"]);
        assert!(matches!(l1.get(&app), Lookup::Miss));
        l1.drop_all_users();
        assert!(matches!(l1.get(&b), Lookup::Miss));
    }

    #[test]
    fn bounded_in_bytes() {
        let l1 = L1::new(100_000, true);
        fill_many(&l1, 1000, 0);
        assert!(l1.bytes() <= 100_000, "{}", l1.bytes());
        assert!(l1.entries() > 0);
        // The hit index follows moka's evictions and admission refusals.
        assert!(
            l1.index.len() as u64 <= l1.entries() + 1,
            "index {} vs {}",
            l1.index.len(),
            l1.entries()
        );
    }

    #[test]
    fn walks_and_removes_entries() {
        let l1 = L1::new(1 << 20, true);
        for k in ["a:1", "a:2", "b:1"] {
            let e = EntryKey::new(0, 0, Bytes::from(k), Bytes::from_static(b"get"));
            l1.insert(
                e.clone(),
                l1.snapshot(&e),
                Bytes::from_static(b"v"),
                HOUR,
                HOUR,
            );
        }
        let mut seen = Vec::new();
        l1.for_each_entry(|db, key, weight| {
            assert_eq!(db, 0);
            assert_eq!(weight, L1::entry_weight(&ek("a:1"), 1));
            seen.push(String::from_utf8_lossy(key).into_owned());
        });
        seen.sort();
        assert_eq!(seen, ["a:1", "a:2", "b:1"]);
        l1.invalidate_key(b"a:2"); // no longer servable: swept too
        assert_eq!(l1.remove_where(|_, key| key.starts_with(b"b:")), 2);
        assert!(matches!(l1.get(&ek("a:1")), Lookup::Hit(_)));
        assert_eq!(l1.index.len(), 1);
    }

    #[test]
    fn namespaces_count_entries_in_and_out() {
        use std::sync::atomic::Ordering::Relaxed;
        let namespaces = Arc::new(Namespaces::default());
        let ns = namespaces.get_or_register(&Arc::from("n"));
        let l1 = L1::with_namespaces(100_000, true, namespaces.clone(), None);
        fill_many(&l1, 1000, ns.id);
        // Every entry moka refused or evicted was counted out again.
        let (bytes, entries) = (l1.bytes(), l1.entries());
        assert_eq!(ns.bytes.load(Relaxed), bytes as i64);
        assert_eq!(ns.entries.load(Relaxed), entries as i64);
        assert!(ns.evicted_size.load(Relaxed) >= 1000 - entries);
        // A replaced entry is counted once.
        let e = EntryKey::new(0, 0, Bytes::from_static(b"r"), Bytes::from_static(b"get"))
            .in_namespace(ns.id);
        for v in [&b"a"[..], b"bb"] {
            l1.insert(
                e.clone(),
                l1.snapshot(&e),
                Bytes::copy_from_slice(v),
                HOUR,
                Duration::ZERO,
            );
        }
        let bytes = l1.bytes(); // runs moka's pending work (admission, evictions) first
        assert_eq!(ns.bytes.load(Relaxed), bytes as i64);
        l1.flush_all();
        assert_eq!(l1.entries(), 0);
        assert_eq!((ns.entries.load(Relaxed), ns.bytes.load(Relaxed)), (0, 0));
    }
}
