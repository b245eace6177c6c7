//! What a command changes once Redis has answered it, and the client's writes that
//! Redis has not acknowledged yet.

use std::collections::HashMap;

use bytes::Bytes;

use crate::l1::L1;

/// What changes once Redis has answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    /// SELECT on the client's own connection: the db changes if Redis says OK.
    Select(u32),
    /// EXEC of a transaction that queued SELECTs (the position of each in EXEC's
    /// reply, and its db): the db is that of the last one Redis answered OK.
    ExecSelect(Vec<(usize, u32)>),
    /// HELLO on the client's own connection: the protocol (and the name, with
    /// SETNAME) change if Redis agrees.
    Hello {
        resp3: bool,
        name: Option<Bytes>,
    },
    /// RESET on the client's own connection: the session is as new once Redis agrees.
    Reset,
    /// CLIENT TRACKING ON|OFF [REDIRECT id] (respite's id), once Redis says OK.
    Tracking {
        on: bool,
        redirect: Option<u64>,
    },
    /// A write was acknowledged (or may have been applied): L1 generations move again.
    Invalidate(Vec<Bytes>),
    FlushDbs(Vec<u32>),
    FlushAll,
    /// ACL SETUSER / DELUSER of these users: their cached replies go (at send, and
    /// again once Redis answered, so no fill read before the change is stored).
    AclUsers(Vec<Bytes>),
    /// ACL LOAD: every user's cached replies go.
    AclAll,
    Many(Vec<Effect>),
}

impl Effect {
    /// Moves what an acknowledged (or possibly applied) write changed in L1.
    pub fn apply_l1(&self, l1: &L1) {
        match self {
            Effect::Invalidate(keys) => keys.iter().for_each(|k| l1.invalidate_key(k)),
            Effect::FlushDbs(dbs) => dbs.iter().for_each(|&db| l1.flush_db(db)),
            Effect::FlushAll => l1.flush_all(),
            Effect::AclUsers(users) => {
                let names: Vec<_> = users.iter().map(|u| String::from_utf8_lossy(u)).collect();
                l1.drop_users(names.iter().map(|n| &**n));
            }
            Effect::AclAll => l1.drop_all_users(),
            Effect::Many(effects) => effects.iter().for_each(|e| e.apply_l1(l1)),
            Effect::None
            | Effect::Select(_)
            | Effect::ExecSelect(_)
            | Effect::Hello { .. }
            | Effect::Tracking { .. }
            | Effect::Reset => {}
        }
    }

    /// The keys it writes, or None when it may write any key.
    fn keys(&self) -> Option<Vec<&Bytes>> {
        match self {
            Effect::Invalidate(keys) => Some(keys.iter().collect()),
            Effect::FlushDbs(_) | Effect::FlushAll => None,
            Effect::Many(effects) => effects.iter().try_fold(Vec::new(), |mut all, e| {
                all.extend(e.keys()?);
                Some(all)
            }),
            _ => Some(Vec::new()),
        }
    }
}

/// The client's writes sent and not yet acknowledged: a read of one of their keys
/// must not be served from L1 nor join another client's read, which may have reached
/// Redis before the write (Redis's per-connection order says it sees the write).
#[derive(Debug, Default)]
pub struct Unacked {
    keys: HashMap<Bytes, u32>,
    /// Writes of unknown keys (flushes, commands the table does not know).
    any: u32,
}

impl Unacked {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.any == 0 && self.keys.is_empty()
    }

    /// True if a read of `key` must go to Redis behind the client's writes.
    #[inline]
    pub fn touches(&self, key: &[u8]) -> bool {
        self.any > 0 || (!self.keys.is_empty() && self.keys.contains_key(key))
    }

    /// Records the write of `effect`; true if there was anything to record.
    pub fn add(&mut self, effect: &Effect) -> bool {
        match effect.keys() {
            None => self.any += 1,
            Some(keys) if keys.is_empty() => return false,
            Some(keys) => keys
                .into_iter()
                .for_each(|k| *self.keys.entry(k.clone()).or_default() += 1),
        }
        true
    }

    /// Forgets a write recorded by [`Unacked::add`], now acknowledged.
    pub fn remove(&mut self, effect: &Effect) {
        match effect.keys() {
            None => self.any = self.any.saturating_sub(1),
            Some(keys) => {
                for k in keys {
                    if let Some(n) = self.keys.get_mut(k) {
                        *n -= 1;
                        if *n == 0 {
                            self.keys.remove(k);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_until_acknowledged() {
        let mut u = Unacked::default();
        let a = Effect::Invalidate(vec![Bytes::from_static(b"a")]);
        assert!(u.add(&a) && u.add(&a));
        assert!(u.touches(b"a") && !u.touches(b"b"));
        u.remove(&a);
        assert!(u.touches(b"a"));
        u.remove(&a);
        assert!(u.is_empty());
        assert!(!u.add(&Effect::None));
        assert!(u.add(&Effect::FlushAll));
        assert!(u.touches(b"b"));
        u.remove(&Effect::FlushAll);
        assert!(u.is_empty());
    }
}
