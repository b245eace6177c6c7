//! The session's side of L1: answering cacheable reads from it, filling it (one
//! upstream read per entry and generation, shared by concurrent misses), and moving
//! generations for every write the client sends.

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};

use super::{Effect, Session, compress::fill_rewrite};
use crate::{
    command::Classified,
    compress::{Opener, Restore},
    l1::{self, EntryKey, Fill, FillKey, Join, L1, Lookup, cacheable},
    metrics::{InvalidationSource, Outcome},
    policy::{Compress, Policy},
    protocol::{
        reply::{array_elements, integer_value, is_error, split_frames},
        request::{Request, encode_command},
    },
    upstream::{Reply, ReplyTo},
};

impl Session {
    /// Serves `req` from L1 or starts/joins its fill, under the rules of `policy`.
    /// False: not a cached read.
    pub(super) fn cached_read(&mut self, req: &Request, policy: &Policy) -> bool {
        if !policy.has_l1() {
            return false;
        }
        if req.name().eq_ignore_ascii_case(b"MGET") {
            let l1 = self.shared.l1.clone();
            return self.cached_mget(&l1, req, policy);
        }
        // Borrowed, not cloned: a hit must not pay for a reference count.
        let l1 = &self.shared.l1;
        let Some(read) = cacheable(&req.args, self.key.resp3) else {
            return false;
        };
        let key = &req.args[read.key_index];
        let Some(rule) = policy.lookup(key).filter(|r| r.l1) else {
            return false;
        };
        let (l1_ttl, stale, compressed) = (
            rule.l1_ttl,
            rule.stale_if_error,
            rule.compress != Compress::None,
        );
        // Borrowed from the caller's policy: no reference count on a hit either.
        let ns = &rule.stats;
        let ek =
            EntryKey::new(self.key.db, self.l1_scope(), key.clone(), read.sig).in_namespace(ns.id);
        match l1.get(&ek) {
            Lookup::Hit(reply) => {
                self.count_lookup(ns, true);
                self.count(Outcome::L1Hit);
                self.reply_slice(&reply);
                return true;
            }
            Lookup::Stale(reply) if stale.is_some() && self.pool.conn(self.id).is_down() => {
                l1.served_stale(&ek);
                self.count(Outcome::L1Stale);
                self.reply_slice(&reply);
                return true;
            }
            _ => {}
        }
        self.count_lookup(ns, false);
        let made = l1.snapshot(&ek);
        let fill_key = FillKey { ek, made };
        let rx = match l1.join(fill_key.clone()) {
            Join::Waiter(rx) => rx,
            Join::Leader(fill, rx) => {
                // L1 holds restored replies: a compressed value is read (perhaps by
                // another command, see session/compress.rs) and restored before storing.
                let (read, restore) = match compressed.then(|| fill_rewrite(&req.args)) {
                    Some(Some((read, restore))) => (
                        read.map(|r| encode_command(&r)),
                        Some((restore, self.opener.clone())),
                    ),
                    _ => (None, None),
                };
                let cmd = with_pttl(read.as_ref().unwrap_or(&req.raw), std::slice::from_ref(key));
                let hook = fill_hook(l1.clone(), fill_key, fill, l1_ttl, stale, restore);
                self.pool
                    .conn(self.id)
                    .request_with(cmd, 2, ReplyTo::Hook(hook));
                rx
            }
        };
        self.await_reply(rx, Effect::None);
        true
    }

    /// MGET per key: cached keys from L1, the others in one MGET (with their PTTLs).
    fn cached_mget(&mut self, l1: &Arc<L1>, req: &Request, policy: &Policy) -> bool {
        let keys = &req.args[1..];
        let (sig, scope) = (l1::get_signature(self.key.resp3), self.l1_scope());
        let mut parts = Vec::with_capacity(keys.len());
        let mut fills = Vec::new();
        // Positions of keys whose values may be stored compressed.
        let mut restore = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let rule = policy.lookup(key);
            if rule.is_some_and(|r| r.compress != Compress::None) {
                restore.push(i);
            }
            let Some(rule) = rule.filter(|r| r.l1) else {
                parts.push(None);
                continue;
            };
            let ek = EntryKey::new(self.key.db, scope, key.clone(), sig.clone())
                .in_namespace(rule.stats.id);
            if let Lookup::Hit(reply) = l1.get(&ek) {
                self.count_lookup(&rule.stats, true);
                parts.push(Some(Bytes::copy_from_slice(&reply)));
            } else {
                self.count_lookup(&rule.stats, false);
                let made = l1.snapshot(&ek);
                fills.push(MgetFill {
                    index: i,
                    ek,
                    made,
                    l1_ttl: rule.l1_ttl,
                    stale: rule.stale_if_error,
                });
                parts.push(None);
            }
        }
        if parts.iter().all(Option::is_none) && fills.is_empty() {
            return false; // no key of it is cached: plain MGET
        }
        let missing: Vec<Bytes> = keys
            .iter()
            .zip(&parts)
            .filter(|(_, p)| p.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if missing.is_empty() {
            self.count(Outcome::L1Hit);
            self.push_reply(assemble(&parts));
            return true;
        }
        let mut mget = vec![Bytes::from_static(b"MGET")];
        mget.extend(missing);
        let fill_keys: Vec<Bytes> = fills.iter().map(|f| f.ek.key.clone()).collect();
        let cmd = with_pttl(&encode_command(&mget), &fill_keys);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (l1, opener) = (l1.clone(), self.opener.clone());
        let hook = Box::new(move |reply: Reply| {
            let _ = tx.send(
                reply.map(|frames| finish_mget(&l1, parts, fills, &frames, &restore, &opener)),
            );
        });
        self.pool
            .conn(self.id)
            .request_with(cmd, 1 + fill_keys.len() as u32, ReplyTo::Hook(hook));
        self.await_reply(rx, Effect::None);
        true
    }

    /// Whose cached replies this client may read: the proxy's own connections' (no
    /// AUTH, or the URL's credentials) or those of the user it authenticated as.
    pub(super) fn l1_scope(&self) -> u64 {
        match &self.key.creds {
            c if *c == self.shared.upstream.credentials_of_url() => 0,
            Some(c) => L1::scope_of(c.user.as_deref().unwrap_or("default")),
            None => 0,
        }
    }

    /// Moves the generations of every key `args` may write (now, as it is sent); the
    /// returned effect moves them again when Redis acknowledges.
    pub(super) fn invalidate_writes(&self, args: &[Bytes], class: &Classified) -> Effect {
        let (l1, Some(spec)) = (&self.shared.l1, class.effective()) else {
            return Effect::None;
        };
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

    /// Applies an acknowledged write's effect on L1.
    pub(super) fn apply_l1(&self, effect: &Effect) {
        let l1 = &self.shared.l1;
        match effect {
            Effect::Invalidate(keys) => keys.iter().for_each(|k| l1.invalidate_key(k)),
            Effect::FlushDbs(dbs) => dbs.iter().for_each(|&db| l1.flush_db(db)),
            Effect::FlushAll => l1.flush_all(),
            // A transaction's writes, when EXEC failed in transit.
            Effect::Many(effects) => effects.iter().for_each(|e| self.apply_l1(e)),
            Effect::None | Effect::Select(_) | Effect::ExecSelect(_) => {}
        }
    }
}

/// `cmd` followed by `PTTL key` for each key: the entry lifetime is read in the same
/// round trip as the value.
fn with_pttl(cmd: &[u8], keys: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(cmd.len() + keys.len() * 32);
    out.extend_from_slice(cmd);
    for k in keys {
        out.extend_from_slice(&encode_command(&[Bytes::from_static(b"PTTL"), k.clone()]));
    }
    out.freeze()
}

/// Runs on the upstream connection when a fill's reply arrives: store it if nothing
/// moved meanwhile, then answer every waiting client.
fn fill_hook(
    l1: Arc<L1>,
    key: FillKey,
    fill: Arc<Fill>,
    l1_ttl: Duration,
    stale: Option<Duration>,
    restore: Option<(Restore, Opener)>,
) -> Box<dyn FnOnce(Reply) + Send> {
    Box::new(move |reply: Reply| {
        // Store first, then stop accepting joiners: a request arriving in between
        // finds either the entry or the fill, never neither (which would read again).
        let out = match reply {
            Ok(frames) => {
                let mut split = split_frames(&frames);
                let mut value = split.next().unwrap_or_default();
                if let Some((restore, opener)) = &restore {
                    value = restore.apply(value, opener); // an error is not stored
                }
                let pttl = split.next().and_then(|f| integer_value(&f));
                if let Some(pttl) = pttl
                    && !is_error(&value)
                {
                    let fresh = l1::fresh_for(l1_ttl, pttl, &value);
                    l1.insert(
                        key.ek.clone(),
                        key.made,
                        value.clone(),
                        fresh,
                        stale.unwrap_or_default(),
                    );
                }
                Ok(value)
            }
            Err(e) => match l1.get(&key.ek) {
                Lookup::Stale(b) | Lookup::Hit(b) if stale.is_some() => {
                    l1.served_stale(&key.ek);
                    Ok(Bytes::copy_from_slice(&b))
                }
                _ => Err(e),
            },
        };
        l1.finish_fill(&key);
        fill.complete(&out);
    })
}

struct MgetFill {
    index: usize,
    ek: EntryKey,
    made: l1::Snapshot,
    l1_ttl: Duration,
    stale: Option<Duration>,
}

/// Builds the client's MGET reply from the cached parts and Redis's reply for the
/// missing keys (followed by one PTTL per filled key), storing what can be stored.
/// Values of the keys at `restore` lose their compression envelope first; one that
/// cannot be opened makes the reply that error, and nothing is stored.
fn finish_mget(
    l1: &L1,
    mut parts: Vec<Option<Bytes>>,
    fills: Vec<MgetFill>,
    frames: &Bytes,
    restore: &[usize],
    opener: &Opener,
) -> Bytes {
    let mut split = split_frames(frames);
    let array = split.next().unwrap_or_default();
    let Some(values) = array_elements(&array) else {
        return array; // an error: the client gets it as Redis sent it
    };
    let mut values = values.into_iter();
    let missing: Vec<usize> = (0..parts.len()).filter(|&i| parts[i].is_none()).collect();
    for i in missing {
        parts[i] = values.next();
        if restore.binary_search(&i).is_ok() {
            parts[i] = parts[i].take().map(|v| Restore::Value.apply(v, opener));
            if let Some(error) = parts[i].as_ref().filter(|v| is_error(v)) {
                return error.clone();
            }
        }
    }
    for (f, pttl) in fills.into_iter().zip(split) {
        if let (Some(value), Some(pttl)) = (&parts[f.index], integer_value(&pttl)) {
            if is_null(value) && pttl != -2 {
                continue; // MGET says nil for a key of another type too; GET would not
            }
            let fresh = l1::fresh_for(f.l1_ttl, pttl, value);
            l1.insert(
                f.ek,
                f.made,
                value.clone(),
                fresh,
                f.stale.unwrap_or_default(),
            );
        }
    }
    assemble(&parts)
}

fn assemble(parts: &[Option<Bytes>]) -> Bytes {
    let mut out = BytesMut::new();
    out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
    for p in parts {
        out.extend_from_slice(p.as_deref().unwrap_or(b"$-1\r\n"));
    }
    out.freeze()
}

fn is_null(frame: &[u8]) -> bool {
    matches!(frame, b"$-1\r\n" | b"*-1\r\n" | b"_\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_parses() {
        let b = Bytes::from_static(b"$1\r\nv\r\n:1500\r\n");
        let frames: Vec<Bytes> = split_frames(&b).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(integer_value(&frames[1]), Some(1500));
        let arr = Bytes::from_static(b"*3\r\n$1\r\na\r\n$-1\r\n_\r\n");
        let els = array_elements(&arr).unwrap();
        assert_eq!(els.len(), 3);
        assert!(is_null(&els[1]) && is_null(&els[2]));
        assert_eq!(
            &assemble(&[Some(Bytes::from_static(b"$1\r\na\r\n")), None])[..],
            b"*2\r\n$1\r\na\r\n$-1\r\n"
        );
    }
}
