//! Whose reads an entry holds ([`EntryKey::scope`](super::EntryKey::scope)): one id
//! per ACL user name, handed out on first use and never reused, so two users never
//! share a scope whatever their names hash to; and one epoch per id, which an ACL
//! change of that user moves (entries and fills made under an older epoch are no
//! longer valid, as with a key's generation).
//!
//! The URL's user (the proxy's own connections) is scope [`OWN`]. Ids are only handed
//! out for users a connection authenticated as, so there are as many as real users.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::config::Credentials;

/// The scope of the upstream URL's user.
pub const OWN: u64 = 0;
/// Epoch counters; users beyond this share one (a change of one then drops the
/// other's entries too, never serves them).
const SLOTS: usize = 1024;

pub(super) struct Scopes {
    /// The URL's user (`OWN`).
    own: Box<str>,
    ids: Mutex<HashMap<Box<str>, u64>>,
    epochs: Box<[AtomicU64]>,
}

/// The ACL user of connections authenticated with `creds` (none, or no user name:
/// `default`).
pub fn user_of(creds: Option<&Credentials>) -> &str {
    creds.and_then(|c| c.user.as_deref()).unwrap_or("default")
}

impl Scopes {
    pub(super) fn new(own_user: &str) -> Self {
        Self {
            own: own_user.into(),
            ids: Mutex::new(HashMap::from([(own_user.into(), OWN)])),
            epochs: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The id of `user`, handed out now if it has none yet.
    pub(super) fn id(&self, user: &str) -> u64 {
        if user == &*self.own {
            return OWN;
        }
        let mut ids = self.ids.lock().expect("scope ids");
        let next = ids.len() as u64;
        *ids.entry(user.into()).or_insert(next)
    }

    /// The id of `user`, if it has one.
    pub(super) fn find(&self, user: &str) -> Option<u64> {
        self.ids.lock().expect("scope ids").get(user).copied()
    }

    pub(super) fn epoch(&self, id: u64) -> u64 {
        self.slot(id).load(Ordering::Acquire)
    }

    /// Invalidates every entry and fill of scope `id`.
    pub(super) fn bump(&self, id: u64) {
        self.slot(id).fetch_add(1, Ordering::AcqRel);
    }

    fn slot(&self, id: u64) -> &AtomicU64 {
        &self.epochs[id as usize % SLOTS]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_per_user_never_shared() {
        let scopes = Scopes::new("app");
        assert_eq!(scopes.id("app"), OWN);
        let (a, b) = (scopes.id("alice"), scopes.id("bob"));
        assert!(a != b && a != OWN && b != OWN);
        assert_eq!(scopes.id("alice"), a);
        assert_eq!(scopes.find("bob"), Some(b));
        assert_eq!(scopes.find("carol"), None, "looking up hands out nothing");
        // Many users: ids stay distinct even where their epochs share a slot.
        let ids: std::collections::HashSet<u64> =
            (0..3000).map(|i| scopes.id(&format!("u{i}"))).collect();
        assert_eq!(ids.len(), 3000);
        let before = scopes.epoch(a);
        scopes.bump(a);
        assert_ne!(scopes.epoch(a), before);
        assert_eq!(user_of(None), "default");
    }
}
