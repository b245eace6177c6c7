//! The session's side of L1: answering cacheable reads from it, filling it (one
//! upstream read per entry and generation, shared by concurrent misses), and moving
//! generations for every write the client sends.

use std::sync::Arc;

use bytes::Bytes;

use super::{Session, effect::Effect, pending::CacheCount};
use crate::{
    command::{Classified, learned},
    compress::{Opener, Restore},
    error::Reply,
    l1::{self, EntryKey, Keep, Load, MgetKey, MgetServed, Served, cacheable},
    metrics::{CacheResult, InvalidationSource, NamespaceStats, Outcome},
    policy::{Compress, Policy},
    protocol::{
        reply::is_error,
        request::{Request, encode_command},
    },
    rewrite::fill_rewrite,
    upstream::ReplyTo,
};

/// The read a fill sends instead of the client's command, and the restore it needs.
type FillRead = (Option<Bytes>, Option<(Restore, Opener)>);

impl Session {
    /// Serves `req` from L1 or waits for its fill, under the rules of `policy`.
    /// False: not a cached read.
    pub(super) fn cached_read(&mut self, req: &Request, policy: &Policy) -> bool {
        if !policy.has_l1() {
            return false;
        }
        if req.name().eq_ignore_ascii_case(b"MGET") {
            return self.cached_mget(req, policy);
        }
        let Some(read) = cacheable(&req.args, self.key.resp3) else {
            return false;
        };
        let key = &req.args[read.key_index];
        let Some(rule) = policy.lookup(key).filter(|r| r.l1) else {
            return false;
        };
        if self.unacked.touches(key) {
            // Behind the client's own write, on its connection: never an older value.
            return false;
        }
        let ns = &rule.stats;
        let ek =
            EntryKey::new(self.key.db, self.l1_scope(), key.clone(), read.sig).in_namespace(ns.id);
        let keep = Keep {
            l1_ttl: rule.l1_ttl,
            stale_if_error: rule.stale_if_error,
        };
        let (read_cmd, restore) = self.fill_read(req, rule.compress);
        let load = Load {
            cmd: read_cmd.as_deref().unwrap_or(&req.raw),
            restore,
        };
        let conn = self.pool.conn(self.id);
        let served = self.ctx.l1.read_through(
            ek,
            keep,
            conn.is_unreachable(),
            load,
            |cmd, frames, filling| {
                conn.request_with(
                    cmd,
                    frames,
                    ReplyTo::Hook(Box::new(move |r| filling.finish(r))),
                );
            },
        );
        self.on_served(served, ns, key);
        true
    }

    /// What a fill reads, when not the client's command, and how the value read is
    /// restored: L1 holds restored replies, so a compressed value is read (perhaps by
    /// another command, see rewrite) and restored before it is stored.
    fn fill_read(&self, req: &Request, compress: Compress) -> FillRead {
        let rewrite = (compress != Compress::None)
            .then(|| fill_rewrite(&req.args))
            .flatten();
        match rewrite {
            Some((read, restore)) => (
                read.map(|r: Vec<Bytes>| encode_command(&r)),
                Some((restore, self.ctx.opener.clone())),
            ),
            None => (None, None),
        }
    }

    /// Answers (or queues the answer to) a read L1 served.
    fn on_served(&mut self, served: Served, ns: &NamespaceStats, key: &Bytes) {
        match served {
            Served::Hit(reply) => {
                self.count_lookup(ns, true);
                self.count(Outcome::L1Hit);
                CacheResult::of(&reply, true).inspect(|&r| ns.count_cache(r));
                self.reply_slice(&reply);
            }
            Served::Stale(reply) => {
                self.count(Outcome::L1Stale);
                CacheResult::of(&reply, true).inspect(|&r| ns.count_cache(r));
                self.reply_slice(&reply);
            }
            Served::Pending(rx) => {
                self.count_lookup(ns, false);
                self.cache = CacheCount::One(ns.id);
                self.await_later(rx, false);
            }
            Served::Joined(rx) => {
                self.count_lookup(ns, false);
                self.cache = CacheCount::One(ns.id);
                if self.joined.len() < super::JOINED_KEPT {
                    self.joined.push(key.clone());
                }
                self.await_later(rx, false);
            }
        }
    }

    /// MGET per key: cached keys from L1, the others in one MGET (with their PTTLs).
    fn cached_mget(&mut self, req: &Request, policy: &Policy) -> bool {
        let keys = &req.args[1..];
        if keys.iter().any(|k| self.unacked.touches(k)) {
            return false;
        }
        let (sig, scope) = (l1::get_signature(self.key.resp3), self.l1_scope());
        let rules: Vec<_> = keys.iter().map(|k| policy.lookup(k)).collect();
        let plan = keys
            .iter()
            .zip(&rules)
            .map(|(key, rule)| MgetKey {
                compressed: rule.is_some_and(|r| r.compress != Compress::None),
                cached: rule.filter(|r| r.l1).map(|r| {
                    let ek = EntryKey::new(self.key.db, scope, key.clone(), sig.clone())
                        .in_namespace(r.stats.id);
                    let keep = Keep {
                        l1_ttl: r.l1_ttl,
                        stale_if_error: r.stale_if_error,
                    };
                    (ek, keep)
                }),
            })
            .collect();
        let conn = self.pool.conn(self.id);
        let mut counted: Vec<(u32, bool)> = rules
            .iter()
            .map(|r| (r.map_or(0, |r| r.stats.id), false))
            .collect();
        let served = self.ctx.l1.mget_through(
            keys,
            plan,
            &self.ctx.opener,
            |i, hit| {
                if let Some(rule) = rules[i] {
                    if hit {
                        rule.stats.count_hit();
                    } else {
                        rule.stats.count_miss();
                    }
                }
                counted[i].1 = hit;
            },
            |cmd, frames, finish| conn.request_with(cmd, frames, ReplyTo::Hook(finish)),
        );
        self.cache = CacheCount::Mget(counted.into());
        match served {
            MgetServed::Uncached => return false,
            MgetServed::Hit(reply) => {
                self.count(Outcome::L1Hit);
                let plan = std::mem::take(&mut self.cache);
                self.count_cache(&plan, &reply);
                self.push_reply(reply);
            }
            MgetServed::Pending(rx) => self.await_later(rx, false),
        }
        true
    }

    /// How a read sent as is to Redis counts as cacheable reads: one key of a
    /// namespace, or MGET per key.
    pub(super) fn plan_cache_count(&mut self, req: &Request, policy: &Policy) {
        if policy.rules().is_empty() {
            return;
        }
        self.cache = if req.name().eq_ignore_ascii_case(b"MGET") {
            let keys = req.args[1..].iter();
            let ids = keys.map(|k| (policy.lookup(k).map_or(0, |r| r.stats.id), false));
            CacheCount::Mget(ids.collect())
        } else if self.ns != 0 && cacheable(&req.args, self.key.resp3).is_some() {
            CacheCount::One(self.ns)
        } else {
            CacheCount::None
        };
    }

    /// Whose cached replies this client may read: those of the user it is
    /// authenticated as (looked up once per change of credentials).
    pub(super) fn l1_scope(&mut self) -> u64 {
        let creds = &self.key.creds;
        let same = match (&self.scope.0, creds) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (a, b) => a.is_none() && b.is_none(),
        };
        if !same {
            self.scope = (creds.clone(), self.ctx.l1.scope_of(creds.as_deref()));
        }
        self.scope.1
    }

    /// Asks Redis what command `args[0]` is, the first time it is seen.
    fn learn(&self, args: &[Bytes]) {
        let Some(name) = args.first().filter(|n| learned::should_ask(n)).cloned() else {
            return;
        };
        let info = encode_command(&[
            Bytes::from_static(b"COMMAND"),
            Bytes::from_static(b"INFO"),
            name.clone(),
        ]);
        let hook = Box::new(move |reply: Reply| {
            let answer = reply.ok().filter(|r| !is_error(r));
            learned::learn(&name, answer.as_ref());
        });
        self.pool
            .conn(self.id)
            .request_with(info, 1, ReplyTo::Hook(hook));
    }

    /// Moves the generations of every key `args` may write (now, as it is sent); the
    /// returned effect moves them again when Redis acknowledges.
    pub(super) fn invalidate_writes(&self, args: &[Bytes], class: &Classified) -> Effect {
        let l1 = &self.ctx.l1;
        let Some(spec) = class.effective() else {
            // Unknown to the table: it may write any key of the db (until Redis says
            // what it is).
            self.learn(args);
            l1.flush_db(self.key.db);
            l1.stats.invalidations.add(InvalidationSource::Flush, 1);
            return Effect::FlushDbs(vec![self.key.db]);
        };
        if let Some(acl) = acl_change(spec.name, args) {
            acl.apply_l1(l1); // fills in flight for those users are not stored
            return acl;
        }
        let counted = &l1.stats.invalidations;
        let flushed = match spec.name {
            "flushall" => {
                l1.flush_all();
                Effect::FlushAll
            }
            "flushdb" => {
                l1.flush_db(self.key.db);
                Effect::FlushDbs(vec![self.key.db])
            }
            "swapdb" => {
                let dbs: Vec<u32> = args[1..]
                    .iter()
                    .filter_map(|a| std::str::from_utf8(a).ok()?.parse().ok())
                    .collect();
                dbs.iter().for_each(|&db| l1.flush_db(db));
                Effect::FlushDbs(dbs)
            }
            _ => Effect::None,
        };
        if flushed != Effect::None {
            counted.add(InvalidationSource::Flush, 1);
            return flushed;
        }
        // Only writing (and blocking) commands have keys they may write.
        let keys: Vec<Bytes> = class
            .write_keys(args)
            .into_iter()
            .filter_map(|i| args.get(i).cloned())
            .collect();
        if keys.is_empty() {
            return Effect::None;
        }
        keys.iter().for_each(|k| l1.invalidate_key(k));
        counted.add(InvalidationSource::LocalWrite, keys.len() as u64);
        Effect::Invalidate(keys)
    }
}

/// What an ACL command changes: the users whose cached replies Redis may refuse them
/// from now on (every user's for ACL LOAD). None for other commands.
fn acl_change(name: &str, args: &[Bytes]) -> Option<Effect> {
    let users = || args.get(2..).unwrap_or_default().to_vec();
    match name {
        "acl|setuser" | "acl|deluser" => Some(Effect::AclUsers(users())),
        "acl|load" => Some(Effect::AclAll),
        _ => None,
    }
}
