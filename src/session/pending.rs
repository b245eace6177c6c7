//! The replies a client is owed, in the order it sent its commands, and the bytes
//! queued for it.
//!
//! An entry is ready (a local reply, an L1 hit, a push), waits on a oneshot (a shared
//! connection's reply, a fill, an admin operation), or waits for the next reply of the
//! client's own connection, which arrives as an event in Redis's order. Every byte
//! queued for the client (ready entries, replies in but not yet at the front, the
//! output buffer) counts against one budget, whoever produced it.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::{
    error::{Error, Reply},
    rewrite::Post,
};

use super::effect::Effect;
use crate::command::Kind;

/// How a reply is turned into what the client gets, and what it changes.
pub struct Finish {
    pub effect: Effect,
    pub post: Post,
    /// The command's kind, for the request metrics.
    pub kind: Kind,
    /// The client asked not to get it (CLIENT REPLY OFF / SKIP).
    pub silent: bool,
    /// It holds keys in the client's set of unacknowledged writes.
    pub unacked: bool,
    /// It may wait forever by design (a blocking command, an admin operation).
    pub unbounded: bool,
    /// It names upstream client ids (CLIENT GETREDIR, TRACKINGINFO): the client gets
    /// respite's own.
    pub names_clients: bool,
    /// When the command arrived (nanoseconds since the process started), and its
    /// namespace (0: none): its latency.
    pub arrived: u64,
    pub ns: u32,
    /// How its reply counts as cacheable reads.
    pub cache: CacheCount,
}

/// How a reply counts in `respite_cache_requests_total`.
#[derive(Debug, Default)]
pub enum CacheCount {
    #[default]
    None,
    /// One cacheable read of namespace `.0`, answered by Redis (a fill or a pass-through).
    One(u32),
    /// MGET: per key, its namespace (0: none) and whether L1 answered it.
    Mget(Box<[(u32, bool)]>),
}

pub enum Slot {
    Ready(Bytes),
    /// A shared connection's reply (or a fill's, or an admin operation's).
    Oneshot(oneshot::Receiver<Reply>),
    /// The next reply of the client's own connection.
    Own,
    /// An own connection's reply, in before the entries ahead of it.
    Done(Reply),
}

pub struct Entry {
    pub slot: Slot,
    /// It waits (or waited) for the own connection.
    own: bool,
    /// An out-of-band frame of the own connection.
    push: bool,
    /// None for ready entries that need nothing done (local replies, pushes).
    pub finish: Option<Finish>,
}

/// The queue of entries, with the bytes of those that are in.
#[derive(Default)]
pub struct Pending {
    entries: VecDeque<Entry>,
    /// Bytes of ready and done entries.
    held: usize,
}

impl Pending {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of replies that are in but not yet in the output buffer.
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn push(&mut self, slot: Slot, finish: Option<Finish>) {
        self.held += slot_len(&slot);
        let own = matches!(slot, Slot::Own);
        self.entries.push_back(Entry {
            slot,
            finish,
            own,
            push: false,
        });
    }

    /// An out-of-band frame of the own connection, where Redis put it: after the
    /// last entry whose reply from that connection is in and the pushes that came
    /// since (Redis sent it after them, before it read any later command).
    pub fn push_after_own(&mut self, frame: Bytes) {
        self.held += frame.len();
        let mut at = self
            .entries
            .iter()
            .rposition(|e| e.own && !matches!(e.slot, Slot::Own))
            .map_or(0, |i| i + 1);
        while self.entries.get(at).is_some_and(|e| e.push) {
            at += 1;
        }
        let entry = Entry {
            slot: Slot::Ready(frame),
            finish: None,
            own: false,
            push: true,
        };
        self.entries.insert(at, entry);
    }

    /// The own connection's next reply: fills the first entry waiting for it. False
    /// if none was waiting.
    pub fn own_reply(&mut self, reply: Reply) -> bool {
        let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| matches!(e.slot, Slot::Own))
        else {
            return false;
        };
        self.held += reply.as_ref().map_or(0, Bytes::len);
        e.slot = Slot::Done(reply);
        true
    }

    /// Entries waiting for the own connection's replies.
    pub fn own_waiting(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.slot, Slot::Own))
            .count()
    }

    /// The own connection is gone: its waiting entries fail.
    pub fn own_lost(&mut self) {
        for e in self
            .entries
            .iter_mut()
            .filter(|e| matches!(e.slot, Slot::Own))
        {
            e.slot = Slot::Done(Err(Error::ConnectionLost));
        }
    }

    /// The front entry, with its reply, if that is in.
    pub fn pop_ready(&mut self) -> Option<(Reply, Option<Finish>)> {
        let front = self.entries.front_mut()?;
        let reply = match &mut front.slot {
            Slot::Ready(_) | Slot::Done(_) => None,
            Slot::Oneshot(rx) => match rx.try_recv() {
                Ok(reply) => Some(reply),
                Err(oneshot::error::TryRecvError::Empty) => return None,
                Err(oneshot::error::TryRecvError::Closed) => Some(Err(Error::ConnectionLost)),
            },
            Slot::Own => return None,
        };
        let entry = self.entries.pop_front().expect("front exists");
        self.held -= slot_len(&entry.slot);
        let reply = reply.unwrap_or_else(|| match entry.slot {
            Slot::Ready(frame) => Ok(frame),
            Slot::Done(reply) => reply,
            _ => unreachable!("only ready and done entries are taken as they are"),
        });
        Some((reply, entry.finish))
    }

    /// Waits for the front entry's oneshot (forever if the front is not one).
    pub async fn front_in(&mut self) {
        match self.entries.front_mut().map(|e| &mut e.slot) {
            Some(Slot::Oneshot(rx)) => {
                let reply = rx.await.unwrap_or(Err(Error::ConnectionLost));
                if let Some(front) = self.entries.front_mut() {
                    self.held += reply.as_ref().map_or(0, Bytes::len);
                    front.slot = Slot::Done(reply);
                }
            }
            _ => std::future::pending().await,
        }
    }

    /// True if an entry waits on something that may take forever (a blocking command,
    /// an admin operation): what a stopping proxy does not wait for.
    pub fn waits_forever(&self) -> bool {
        self.entries.iter().any(|e| {
            matches!(e.slot, Slot::Own | Slot::Oneshot(_))
                && e.finish.as_ref().is_some_and(|f| f.unbounded)
        })
    }

    /// Drops every entry, returning what each would have finished (to apply the
    /// effects of writes that may have been applied).
    pub fn abandon(&mut self) -> Vec<Finish> {
        self.held = 0;
        self.entries.drain(..).filter_map(|e| e.finish).collect()
    }
}

fn slot_len(slot: &Slot) -> usize {
    match slot {
        Slot::Ready(b) | Slot::Done(Ok(b)) => b.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(p: &mut Pending) -> Vec<Bytes> {
        std::iter::from_fn(|| p.pop_ready().map(|(r, _)| r.unwrap())).collect()
    }

    #[test]
    fn pushes_keep_their_order_after_the_reply_before_them() {
        let mut p = Pending::default();
        p.push(Slot::Own, None);
        p.push(Slot::Ready(Bytes::from_static(b"+local\r\n")), None);
        assert!(p.own_reply(Ok(Bytes::from_static(b"+own\r\n"))));
        p.push_after_own(Bytes::from_static(b">a\r\n"));
        p.push_after_own(Bytes::from_static(b">b\r\n"));
        let got = frames(&mut p);
        let want = [&b"+own\r\n"[..], b">a\r\n", b">b\r\n", b"+local\r\n"];
        assert_eq!(got, want);
    }
}
