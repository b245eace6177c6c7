//! What identifies an entry ([`EntryKey`]) and the generation counters an entry or a
//! fill was made under ([`Snapshot`]).

use std::hash::BuildHasher;

use bytes::Bytes;

/// What an entry is cached under: the db, who read it, the key, and the command.
#[derive(Debug, Clone)]
pub struct EntryKey {
    pub db: u32,
    /// The ACL user the reading connection is authenticated as (`scope::OWN`: the
    /// URL's), an id no other user has (see `scope.rs`), so one user never reads
    /// another's cached replies.
    pub scope: u64,
    pub key: Bytes,
    /// Protocol, command name and the arguments other than the key.
    pub sig: Bytes,
    /// Hash of `key` alone (picks the generation counter).
    pub(super) key_hash: u64,
    /// Hash of everything (the cache's own key).
    pub(super) hash: u64,
    /// The namespace's stats id (`NamespaceStats::id`), for accounting only: not part
    /// of the entry's identity.
    pub ns: u32,
}

impl EntryKey {
    pub fn new(db: u32, scope: u64, key: Bytes, sig: Bytes) -> Self {
        let key_hash = HASHER.hash_one(&key[..]);
        let hash = HASHER.hash_one((key_hash, db, scope, &sig[..]));
        Self {
            db,
            scope,
            key,
            sig,
            key_hash,
            hash,
            ns: 0,
        }
    }

    /// Counts the entry under namespace `id` (see [`EntryKey::ns`]).
    pub fn in_namespace(mut self, id: u32) -> Self {
        self.ns = id;
        self
    }
}

impl PartialEq for EntryKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.db == other.db
            && self.scope == other.scope
            && self.key == other.key
            && self.sig == other.sig
    }
}

impl Eq for EntryKey {}

impl std::hash::Hash for EntryKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// One hasher for the process, seeded at random so hashes are not predictable from
/// outside. foldhash rather than SipHash: a hit hashes twice, and SipHash cost more
/// than a tenth of a hit.
pub(super) static HASHER: std::sync::LazyLock<foldhash::quality::RandomState> =
    std::sync::LazyLock::new(foldhash::quality::RandomState::default);

/// The counters an entry or a fill was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub(super) generation: u64,
    pub(super) epoch: u64,
    pub(super) db_epoch: u64,
    pub(super) trust: u64,
    /// The epoch of the entry's scope (its user's ACL changes).
    pub(super) scope_epoch: u64,
}

impl Snapshot {
    /// The key, its db, its user's ACL and the whole cache are as they were at
    /// `self` (trust aside).
    pub(super) fn same_data(&self, now: &Snapshot) -> bool {
        self.generation == now.generation
            && self.epoch == now.epoch
            && self.db_epoch == now.db_epoch
            && self.scope_epoch == now.scope_epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two users' entries for the same read are different entries even when their
    /// hashes are equal (a collision): the scope is compared, not only hashed.
    #[test]
    fn scope_is_part_of_equality() {
        let a = EntryKey::new(0, 1, Bytes::from_static(b"k"), Bytes::from_static(b"get"));
        let mut b = EntryKey::new(0, 2, Bytes::from_static(b"k"), Bytes::from_static(b"get"));
        assert_ne!(a, b);
        b.hash = a.hash; // as if the scopes collided in the hash
        assert_ne!(a, b);
        b.scope = 1;
        assert_eq!(a, b);
    }
}
