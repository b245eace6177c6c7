//! Read-through: a cached read is served from L1, or joins the fill in flight for its
//! entry, or starts one. This module owns the whole fill protocol, so every reader
//! (client sessions, warming) fills entries the same way:
//!
//! 1. the key's counters are snapshot before the read is sent;
//! 2. the read goes upstream with `PTTL key` pipelined after it (the entry's lifetime
//!    is read in the same round trip as the value);
//! 3. when the reply arrives (on the upstream connection's task), a compressed value
//!    is restored, the entry is stored only if no counter moved meanwhile, and every
//!    waiter gets the reply.
//!
//! The caller only sends bytes: [`L1::read_through`] hands it the command to send and a
//! [`Filling`] to finish with the reply.

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::{
    fill::{Fill, FillKey, Join},
    fresh::fresh_for,
    key::{EntryKey, Snapshot},
    store::{Cached, L1, Lookup},
};
use crate::{
    compress::{Opener, Restore},
    error::Reply,
    protocol::{
        reply::{array_elements, integer_value, is_error, split_frames},
        request::encode_command,
    },
};

/// How an entry is kept: its namespace's `l1_ttl` and `stale_if_error`.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    pub l1_ttl: Duration,
    pub stale_if_error: Option<Duration>,
}

/// What a read-through found.
pub enum Served {
    Hit(Cached),
    /// An expired entry, served because Redis is unreachable (`stale_if_error`).
    Stale(Cached),
    /// The reply comes from Redis: this read's own fill (sent by `send`).
    Pending(oneshot::Receiver<Reply>),
    /// The reply comes from another client's fill, which may be sent on another
    /// connection: a write of the key by this client must wait for it.
    Joined(oneshot::Receiver<Reply>),
}

/// The read to send for a miss: `cmd` is what the client sent (or what reads the
/// stored value instead, e.g. GET for STRLEN of a compressed key), and `restore`
/// turns the stored value into the client's reply before it is cached (a value that
/// cannot be opened becomes the opener's error reply, and is not cached).
pub struct Load<'a> {
    pub cmd: &'a [u8],
    pub restore: Option<(Restore, Opener)>,
}

/// A fill in flight: finish it with the reply to the command it was sent with.
pub struct Filling {
    l1: Arc<L1>,
    key: FillKey,
    fill: Arc<Fill>,
    keep: Keep,
    restore: Option<(Restore, Opener)>,
}

impl L1 {
    /// Serves `ek` from L1, or waits for its fill: joins the one in flight, or calls
    /// `send(cmd, frames, filling)`, which must send `cmd` (producing `frames` reply
    /// frames) and finish `filling` with the reply. `down`: Redis is known to be
    /// unreachable (an expired entry may then be served under `stale_if_error`); not
    /// when it is up but refuses the connection (a failed AUTH).
    pub fn read_through(
        self: &Arc<Self>,
        ek: EntryKey,
        keep: Keep,
        down: bool,
        load: Load<'_>,
        send: impl FnOnce(Bytes, u32, Filling),
    ) -> Served {
        match self.get(&ek) {
            Lookup::Hit(reply) => return Served::Hit(reply),
            Lookup::Stale(reply) if keep.stale_if_error.is_some() && down => {
                self.served_stale(&ek);
                return Served::Stale(reply);
            }
            _ => {}
        }
        let made = self.snapshot(&ek);
        let key = FillKey { ek, made };
        match self.join(key.clone()) {
            Join::Waiter(rx) => Served::Joined(rx),
            Join::Leader(fill, rx) => {
                let cmd = with_pttl(load.cmd, std::slice::from_ref(&key.ek.key));
                let filling = Filling {
                    l1: self.clone(),
                    key,
                    fill,
                    keep,
                    restore: load.restore,
                };
                send(cmd, 2, filling);
                Served::Pending(rx)
            }
        }
    }
}

impl Filling {
    /// Stores the value if nothing moved since the read was sent, then answers every
    /// waiter. Runs on the upstream connection's task as soon as the reply is in.
    pub fn finish(self, reply: Reply) {
        let Filling {
            l1,
            key,
            fill,
            keep,
            restore,
        } = self;
        // Store first, then stop accepting joiners: a request arriving in between
        // finds either the entry or the fill, never neither (which would read again).
        let out = match reply {
            Ok(frames) => Ok(store(&l1, &key, keep, restore.as_ref(), &frames)),
            // Only an outage: a refusal (a user whose AUTH Redis now refuses) is the
            // answer, never a reason to serve what was cached for that user.
            Err(e) => match l1.get(&key.ek) {
                Lookup::Stale(b) | Lookup::Hit(b)
                    if keep.stale_if_error.is_some() && e.is_outage() =>
                {
                    l1.served_stale(&key.ek);
                    Ok(Bytes::copy_from_slice(&b))
                }
                _ => Err(e),
            },
        };
        l1.finish_fill(&key);
        fill.complete(&out);
    }
}

/// Stores the value of a `read + PTTL` reply; returns the client's reply.
fn store(
    l1: &L1,
    key: &FillKey,
    keep: Keep,
    restore: Option<&(Restore, Opener)>,
    frames: &Bytes,
) -> Bytes {
    let mut split = split_frames(frames);
    let mut value = split.next().unwrap_or_default();
    if let Some((restore, opener)) = restore {
        value = restore.apply(value, opener); // an error is not stored
    }
    if let Some(pttl) = split.next().and_then(|f| integer_value(&f))
        && !is_error(&value)
    {
        let fresh = fresh_for(keep.l1_ttl, pttl, &value);
        let stale = keep.stale_if_error.unwrap_or_default();
        l1.insert(key.ek.clone(), key.made, value.clone(), fresh, stale);
    }
    value
}

/// One key of an MGET: how it is cached (None: not cached), and whether its value may
/// be stored compressed.
pub struct MgetKey {
    pub cached: Option<(EntryKey, Keep)>,
    pub compressed: bool,
}

/// A key of an MGET that is read from Redis and then stored.
struct MgetFill {
    index: usize,
    ek: EntryKey,
    made: Snapshot,
    keep: Keep,
}

/// What an MGET found in L1.
pub enum MgetServed {
    /// No key of it is cached: the client's MGET goes upstream as sent.
    Uncached,
    /// Every key was a hit: the whole reply.
    Hit(Bytes),
    /// Some keys are read from Redis (in one MGET).
    Pending(oneshot::Receiver<Reply>),
}

impl L1 {
    /// MGET per key: cached keys from L1, the others in one MGET (with their PTTLs),
    /// sent by `send(cmd, frames, finish)`; `finish` turns the reply into the client's.
    /// `on_lookup(i, hit)` is told the outcome of each cached key's lookup.
    pub fn mget_through(
        self: &Arc<Self>,
        keys: &[Bytes],
        plan: Vec<MgetKey>,
        opener: &Opener,
        mut on_lookup: impl FnMut(usize, bool),
        send: impl FnOnce(Bytes, u32, Box<dyn FnOnce(Reply) + Send>),
    ) -> MgetServed {
        let mut parts = Vec::with_capacity(keys.len());
        let mut fills = Vec::new();
        let mut restore = Vec::new();
        for (i, key) in plan.into_iter().enumerate() {
            if key.compressed {
                restore.push(i);
            }
            let Some((ek, keep)) = key.cached else {
                parts.push(None);
                continue;
            };
            if let Lookup::Hit(reply) = self.get(&ek) {
                on_lookup(i, true);
                parts.push(Some(Bytes::copy_from_slice(&reply)));
            } else {
                on_lookup(i, false);
                let made = self.snapshot(&ek);
                fills.push(MgetFill {
                    index: i,
                    ek,
                    made,
                    keep,
                });
                parts.push(None);
            }
        }
        if parts.iter().all(Option::is_none) && fills.is_empty() {
            return MgetServed::Uncached;
        }
        let missing: Vec<Bytes> = keys
            .iter()
            .zip(&parts)
            .filter(|(_, p)| p.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if missing.is_empty() {
            return MgetServed::Hit(assemble(&parts));
        }
        let mut mget = vec![Bytes::from_static(b"MGET")];
        mget.extend(missing);
        let fill_keys: Vec<Bytes> = fills.iter().map(|f| f.ek.key.clone()).collect();
        let cmd = with_pttl(&encode_command(&mget), &fill_keys);
        let (tx, rx) = oneshot::channel();
        let (l1, opener) = (self.clone(), opener.clone());
        let finish = Box::new(move |reply: Reply| {
            let restore = (restore, &opener);
            let _ = tx.send(reply.map(|frames| finish_mget(&l1, parts, fills, &frames, restore)));
        });
        send(cmd, 1 + fill_keys.len() as u32, finish);
        MgetServed::Pending(rx)
    }
}

/// `cmd` followed by `PTTL key` for each key.
fn with_pttl(cmd: &[u8], keys: &[Bytes]) -> Bytes {
    let mut out = BytesMut::with_capacity(cmd.len() + keys.len() * 32);
    out.extend_from_slice(cmd);
    for k in keys {
        out.extend_from_slice(&encode_command(&[Bytes::from_static(b"PTTL"), k.clone()]));
    }
    out.freeze()
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
    (restore, opener): (Vec<usize>, &Opener),
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
            let fresh = fresh_for(f.keep.l1_ttl, pttl, value);
            let stale = f.keep.stale_if_error.unwrap_or_default();
            l1.insert(f.ek, f.made, value.clone(), fresh, stale);
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

    fn ek(key: &'static [u8]) -> EntryKey {
        EntryKey::new(0, 0, Bytes::from_static(key), Bytes::from_static(b"get"))
    }

    const KEEP: Keep = Keep {
        l1_ttl: Duration::from_secs(60),
        stale_if_error: None,
    };

    #[test]
    fn a_miss_is_filled_then_hit_and_a_second_miss_joins() {
        let l1 = L1::new(1 << 20, true);
        let load = || Load {
            cmd: b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
            restore: None,
        };
        let mut sent = None;
        let Served::Pending(mut first) =
            l1.read_through(ek(b"k"), KEEP, false, load(), |cmd, frames, filling| {
                assert!(cmd.ends_with(b"*2\r\n$4\r\nPTTL\r\n$1\r\nk\r\n"));
                assert_eq!(frames, 2);
                sent = Some(filling);
            })
        else {
            panic!("a miss waits")
        };
        let Served::Joined(mut second) =
            l1.read_through(ek(b"k"), KEEP, false, load(), |_, _, _| panic!("joins"))
        else {
            panic!("joins the fill")
        };
        sent.unwrap()
            .finish(Ok(Bytes::from_static(b"$1\r\nv\r\n:-1\r\n")));
        assert_eq!(&first.try_recv().unwrap().unwrap()[..], b"$1\r\nv\r\n");
        assert_eq!(&second.try_recv().unwrap().unwrap()[..], b"$1\r\nv\r\n");
        assert!(matches!(
            l1.read_through(ek(b"k"), KEEP, false, load(), |_, _, _| panic!("a hit")),
            Served::Hit(b) if &b[..] == b"$1\r\nv\r\n"
        ));
    }

    /// A read whose upstream failed: an outage serves the expired entry under
    /// `stale_if_error`, a refusal (a failed re-AUTH) is the answer.
    #[test]
    fn only_an_outage_serves_stale() {
        use crate::error::Error;
        let keep = Keep {
            l1_ttl: Duration::from_millis(1),
            stale_if_error: Some(Duration::from_secs(60)),
        };
        let l1 = L1::new(1 << 20, true);
        let e = ek(b"k");
        assert!(l1.insert(
            e.clone(),
            l1.snapshot(&e),
            Bytes::from_static(b"$1\r\nv\r\n"),
            keep.l1_ttl,
            Duration::from_secs(60),
        ));
        std::thread::sleep(Duration::from_millis(5));
        let refused = Bytes::from_static(b"-WRONGPASS invalid username-password pair\r\n");
        for (error, stale) in [
            (Error::unavailable("down"), true),
            (Error::Redis(refused.clone()), false),
        ] {
            let mut sent = None;
            let load = Load {
                cmd: b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                restore: None,
            };
            let Served::Pending(mut rx) =
                l1.read_through(e.clone(), keep, false, load, |_, _, f| sent = Some(f))
            else {
                panic!("an expired entry is not served while Redis is up")
            };
            sent.unwrap().finish(Err(error));
            let got = rx.try_recv().unwrap();
            if stale {
                assert_eq!(&got.unwrap()[..], b"$1\r\nv\r\n");
            } else {
                assert_eq!(got.unwrap_err().to_reply(), refused);
            }
        }
    }

    #[test]
    fn splits_and_assembles() {
        let arr = Bytes::from_static(b"*3\r\n$1\r\na\r\n$-1\r\n_\r\n");
        let els = array_elements(&arr).unwrap();
        assert!(is_null(&els[1]) && is_null(&els[2]));
        assert_eq!(
            &assemble(&[Some(Bytes::from_static(b"$1\r\na\r\n")), None])[..],
            b"*2\r\n$1\r\na\r\n$-1\r\n"
        );
    }
}
