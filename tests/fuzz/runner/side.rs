//! One side of a client's run: its connection (straight to Redis, or through the
//! proxy), the replies read from it with pushes set aside, and its model events.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration, time::Instant};

use crate::{
    keys,
    model::{At, Event},
    session::{Push, Session, confirmation},
    support::{
        client::{Client, ReadError},
        resp::{self, Frame},
    },
};

pub struct Side {
    /// The client this connection belongs to.
    owner: usize,
    addr: SocketAddr,
    timeout: Duration,
    client: Option<Client>,
    pub log: Vec<Event>,
    /// Pushes about the client's own channels and keys since the last comparison,
    /// rendered (the same on both sides at every step: only this client causes them).
    pub pushes: Vec<String>,
    /// Open subscriptions to shared channels/patterns: (pattern?, name) -> id.
    subs: BTreeMap<(bool, Vec<u8>), usize>,
    next_sub: usize,
    /// The send instant of the last command whose reply was read: every message
    /// acknowledged before it has been read by now.
    synced: Instant,
}

impl Side {
    pub fn connect(owner: usize, addr: SocketAddr, timeout: Duration) -> Side {
        let mut side = Side {
            owner,
            addr,
            timeout,
            client: None,
            log: Vec::new(),
            pushes: Vec::new(),
            subs: BTreeMap::new(),
            next_sub: 0,
            synced: Instant::now(),
        };
        side.reconnect();
        side
    }

    /// A new connection (after QUIT, a protocol error, or leaving).
    pub fn reconnect(&mut self) {
        let client = Client::connect(self.addr);
        client.set_read_timeout(self.timeout);
        self.client = Some(client);
    }

    /// Closes the connection without reading what is pending (messages still in
    /// flight are lost with it).
    pub fn hang_up(&mut self) {
        self.end_subscriptions(self.synced);
        if let Some(c) = self.client.take() {
            let _ = c.stream().shutdown(std::net::Shutdown::Both);
        }
    }

    /// Writes `bytes`; the instant is taken before the write (see `model.rs`).
    pub fn send(&mut self, bytes: &[u8]) -> Instant {
        let now = Instant::now();
        if let Some(c) = &mut self.client {
            let _ = c.try_send_raw(bytes);
        }
        now
    }

    /// The next reply (pushes set aside), with the instant it was read.
    pub fn read(
        &mut self,
        sess: &Session,
        pubsub: bool,
        at: &At,
        sent: Instant,
    ) -> Result<(Frame, Instant), String> {
        loop {
            let client = self.client.as_mut().ok_or("not connected")?;
            let raw = client.try_read_reply().map_err(|e| match e {
                ReadError::TimedOut => format!("no reply within {:?}", self.timeout),
                other => other.to_string(),
            })?;
            let now = Instant::now();
            let frame = resp::decode(&raw);
            if let Some(push) = sess.push(&frame, pubsub) {
                self.on_push(push, sess, now, at);
                continue;
            }
            if pubsub {
                self.on_confirmation(&frame, now, at, sent);
            }
            self.synced = sent;
            return Ok((frame, now));
        }
    }

    /// Whether the server closed the connection (after QUIT or a protocol error).
    pub fn closed(&mut self) -> Result<(), String> {
        let Some(client) = self.client.as_mut() else {
            return Ok(());
        };
        match client.try_read_reply() {
            Err(ReadError::Closed(0)) => Ok(()),
            Err(ReadError::TimedOut) => Err("connection still open".into()),
            Err(e) => Err(e.to_string()),
            Ok(reply) => Err(format!("reply {} instead of a close", resp::show(&reply))),
        }
    }

    fn on_push(&mut self, push: Push, sess: &Session, now: Instant, at: &At) {
        match push {
            Push::Message {
                pattern,
                channel,
                payload,
                shard,
            } if keys::is_shared_channel(&channel) && !shard => {
                let target = (
                    pattern.is_some(),
                    pattern.unwrap_or_else(|| channel.clone()),
                );
                let id = self.subs.get(&target).copied();
                self.log.push(Event::Message {
                    id,
                    channel,
                    payload,
                    recv: now,
                    at: at.clone(),
                });
            }
            Push::Message {
                pattern,
                channel,
                payload,
                shard,
            } => {
                let kind = if shard {
                    "smessage"
                } else if pattern.is_some() {
                    "pmessage"
                } else {
                    "message"
                };
                let pattern = pattern
                    .map(|p| format!(" {}", resp::show(&p)))
                    .unwrap_or_default();
                self.pushes.push(format!(
                    "{kind}{pattern} {} {}",
                    resp::show(&channel),
                    resp::show(&payload)
                ));
            }
            // BCAST invalidations fall among replies where the event loop went idle.
            Push::Invalidate(_) if sess.bcast || sess.tracking_residue => {}
            Push::Invalidate(None) => self.pushes.push("invalidate (all)".into()),
            Push::Invalidate(Some(keys)) => {
                for key in keys.iter().filter(|k| !keys::is_shared_key(k)) {
                    self.pushes.push(super::early::invalidation(key));
                }
            }
        }
    }

    /// Subscriptions to shared channels begin at their confirmation and end at the
    /// UNSUBSCRIBE that confirms their end (its send instant counts).
    fn on_confirmation(&mut self, frame: &Frame, now: Instant, at: &At, sent: Instant) {
        let Some((kind, Some(target))) = confirmation(frame) else {
            return;
        };
        if !keys::is_shared_channel(&target) {
            return;
        }
        let pattern = kind.starts_with('p');
        let key = (pattern, target.clone());
        if kind == "subscribe" || kind == "psubscribe" {
            if !self.subs.contains_key(&key) {
                let id = self.next_sub;
                self.next_sub += 1;
                self.subs.insert(key, id);
                self.log.push(Event::Subscribed {
                    id,
                    target,
                    pattern,
                    ack: now,
                    at: at.clone(),
                });
            }
        } else if let Some(id) = self.subs.remove(&key) {
            self.log.push(Event::Unsubscribing {
                client: self.owner,
                id,
                send: sent,
            });
        }
    }

    /// CLIENT REPLY OFF/SKIP: messages may be dropped from now on; the subscriptions
    /// stay open (messages still count for them) but need not receive everything.
    pub fn mute(&mut self, sent: Instant) {
        for id in self.subs.values() {
            self.log.push(Event::Unsubscribing {
                client: self.owner,
                id: *id,
                send: sent,
            });
        }
    }

    /// RESET, QUIT or a closed connection ends every subscription.
    pub fn end_subscriptions(&mut self, sent: Instant) {
        for (_, id) in std::mem::take(&mut self.subs) {
            self.log.push(Event::Unsubscribing {
                client: self.owner,
                id,
                send: sent,
            });
        }
    }
}
