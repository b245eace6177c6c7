//! The models that judge replies no byte comparison can: values of shared keys
//! (read-your-writes) and messages on shared channels (delivery). They run after a
//! seed, over the events of every client of one side; the direct run is checked too,
//! which tests the models themselves (Redis must pass them).
//!
//! Instants are taken so that the conclusions are sound: a request's send instant
//! before it is written, a reply's instant after it is read. So "A acknowledged before
//! B was sent" as measured implies it really happened in that order, and Redis (one
//! thread, one copy of each key) executed A before B.
//!
//! Besides, one connection's commands run in the order they were sent, pipelined or
//! not (Redis's guarantee, which the proxy must keep).
//!
//! Read-your-writes: a read R by client c returns x. Legitimate if some write p of x
//! (for nil: a delete, or the initial absence) did not surely run after R (sent after R
//! was answered, or behind R on R's connection) and was not surely replaced before R:
//! no write w in scope that surely ran before R (acknowledged before R was sent, or
//! ahead of R on its connection) and surely after p. The scope is c's own writes (the
//! brief, and issue 12 item 6), or every client's with `RESPITE_FUZZ_RYW=all`
//! (DESIGN.md's contract 2 read for all writes through the proxy: linearizable
//! registers).

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use crate::{check::Reg, keys};

/// Where an event happened: client and step label.
#[derive(Debug, Clone)]
pub struct At {
    pub client: usize,
    pub step: String,
}

#[derive(Debug, Clone)]
pub enum Event {
    Write {
        reg: (u32, Reg),
        value: Option<Vec<u8>>,
        send: Instant,
        /// `None`: no reply (CLIENT REPLY OFF, an error, a lost connection).
        ack: Option<Instant>,
        at: At,
        order: Order,
    },
    Read {
        reg: (u32, Reg),
        got: Option<Vec<u8>>,
        send: Instant,
        ack: Instant,
        at: At,
        order: Order,
    },
    Publish {
        channel: Vec<u8>,
        payload: Vec<u8>,
        send: Instant,
        ack: Option<Instant>,
        at: At,
    },
    /// A subscription to a shared channel or pattern began (its confirmation read).
    Subscribed {
        id: usize,
        target: Vec<u8>,
        pattern: bool,
        ack: Instant,
        at: At,
    },
    /// Subscription `id` of `client` ends: the instant its UNSUBSCRIBE (or RESET,
    /// QUIT) was sent; for a connection closed by the client, the send instant of the
    /// last command whose reply it read; CLIENT REPLY OFF/SKIP (Redis may then drop
    /// messages) ends the part of a subscription that must receive everything.
    Unsubscribing {
        client: usize,
        id: usize,
        send: Instant,
    },
    /// A message on a shared channel, in subscription `id` (`None`: no subscription
    /// of this client matched it).
    Message {
        id: Option<usize>,
        channel: Vec<u8>,
        payload: Vec<u8>,
        recv: Instant,
        at: At,
    },
}

/// A model violation: where and why.
#[derive(Debug, Clone)]
pub struct Violation {
    pub at: At,
    pub what: String,
}

fn show(v: &Option<Vec<u8>>) -> String {
    match v {
        Some(v) => crate::support::resp::show(v),
        None => "nil".into(),
    }
}

/// A write (or the initial absence of every key) as the register check sees it.
struct Op<'a> {
    value: &'a Option<Vec<u8>>,
    /// `None`: the initial state, before everything.
    at: Option<&'a At>,
    send: Instant,
    ack: Option<Instant>,
    order: Order,
}

/// Where a command was in its client's stream: (connection, position). Redis runs a
/// connection's commands in order, and so must the proxy (pipelines included).
pub type Order = (u32, u64);

fn same_stream(a: &At, a_order: Order, b: &At, b_order: Order) -> Option<std::cmp::Ordering> {
    (a.client == b.client && a_order.0 == b_order.0).then(|| a_order.1.cmp(&b_order.1))
}

impl Op<'_> {
    /// Surely executed before a command sent at `send` from `at`/`order`.
    fn before(&self, at: &At, send: Instant, order: Order) -> bool {
        let Some(a) = self.at else { return true };
        self.ack.is_some_and(|t| t < send)
            || same_stream(a, self.order, at, order) == Some(std::cmp::Ordering::Less)
    }

    /// Surely executed after a command answered at `ack` from `at`/`order`.
    fn after(&self, at: &At, ack: Instant, order: Order) -> bool {
        let Some(a) = self.at else { return false };
        self.send > ack
            || same_stream(a, self.order, at, order) == Some(std::cmp::Ordering::Greater)
    }

    /// `self` surely executed after `p`.
    fn overwrites(&self, p: &Op) -> bool {
        let (Some(a), Some(pa)) = (self.at, p.at) else {
            return p.at.is_none() && self.at.is_some();
        };
        p.ack.is_some_and(|t| t < self.send)
            || same_stream(pa, p.order, a, self.order) == Some(std::cmp::Ordering::Less)
    }
}

/// Read-your-writes over the events of one side.
pub fn check_registers(events: &[Event], all_writers: bool) -> Vec<Violation> {
    let mut writes: HashMap<&(u32, Reg), Vec<Op>> = HashMap::new();
    for e in events {
        if let Event::Write {
            reg,
            value,
            send,
            ack,
            at,
            order,
        } = e
        {
            writes.entry(reg).or_default().push(Op {
                value,
                at: Some(at),
                send: *send,
                ack: *ack,
                order: *order,
            });
        }
    }
    let initial: Option<Vec<u8>> = None;
    let mut out = Vec::new();
    for e in events {
        let Event::Read {
            reg,
            got,
            send,
            ack,
            at,
            order,
        } = e
        else {
            continue;
        };
        let start = Op {
            value: &initial,
            at: None,
            send: *send,
            ack: None,
            order: (0, 0),
        };
        let ops: Vec<&Op> = writes
            .get(reg)
            .into_iter()
            .flatten()
            .chain([&start])
            .collect();
        let in_scope = |w: &Op| w.at.is_some_and(|a| all_writers || a.client == at.client);
        // The write that surely replaced `p` before this read, if any.
        let overwriter = |p: &Op| {
            ops.iter().copied().find(|w| {
                !std::ptr::eq(*w, p)
                    && in_scope(w)
                    && w.before(at, *send, *order)
                    && w.overwrites(p)
            })
        };
        let candidates: Vec<&Op> = ops.iter().copied().filter(|w| w.value == got).collect();
        if candidates.is_empty() {
            out.push(Violation {
                at: at.clone(),
                what: format!("{reg:?} read {} which no client wrote", show(got)),
            });
            continue;
        }
        if candidates
            .iter()
            .any(|p| !p.after(at, *ack, *order) && overwriter(p).is_none())
        {
            continue;
        }
        let why = match candidates
            .iter()
            .find_map(|p| overwriter(p).map(|w| (p, w)))
        {
            Some((p, w)) => format!(
                "; that value was written by {} and surely replaced before this read by {} ({})",
                p.at.map_or("nobody (the key did not exist)".to_string(), |a| format!(
                    "client {} {}",
                    a.client, a.step
                )),
                w.at.map_or(String::new(), |a| format!("client {} {}", a.client, a.step)),
                show(w.value)
            ),
            None => "; it was written only after this read".into(),
        };
        out.push(Violation {
            at: at.clone(),
            what: format!("{reg:?} read stale {}{why}", show(got)),
        });
    }
    out
}

/// Delivery on shared channels: every message was published on its channel, once
/// per subscription, in each publisher's order; every message published after a
/// subscription was confirmed and acknowledged before it ended was received.
pub fn check_messages(events: &[Event]) -> Vec<Violation> {
    // (channel, payload) -> when it was sent.
    let mut published: HashMap<(&[u8], &[u8]), Instant> = HashMap::new();
    for e in events {
        if let Event::Publish {
            channel,
            payload,
            send,
            ..
        } = e
        {
            published.insert((channel, payload), *send);
        }
    }
    let mut out = Vec::new();
    let mut received: BTreeMap<(usize, usize), Vec<&[u8]>> = BTreeMap::new();
    for e in events {
        let Event::Message {
            id,
            channel,
            payload,
            recv,
            at,
        } = e
        else {
            continue;
        };
        let bad = |what: String| Violation {
            at: at.clone(),
            what,
        };
        match published.get(&(channel.as_slice(), payload.as_slice())) {
            None => out.push(bad(format!(
                "message {} on {} that nobody published there",
                show(&Some(payload.clone())),
                show(&Some(channel.clone()))
            ))),
            Some(send) if *send > *recv => {
                out.push(bad("message received before it was published".into()))
            }
            _ => {}
        }
        let Some(id) = id else {
            out.push(bad(format!(
                "message on {} outside any subscription",
                show(&Some(channel.clone()))
            )));
            continue;
        };
        let list = received.entry((at.client, *id)).or_default();
        if list.contains(&payload.as_slice()) {
            out.push(bad(format!(
                "message {} delivered twice",
                show(&Some(payload.clone()))
            )));
        }
        if let Some(prev) = list
            .iter()
            .rev()
            .find(|p| publisher(p).0 == publisher(payload).0)
            && publisher(prev).1 > publisher(payload).1
        {
            out.push(bad(format!(
                "message {} after {} of the same publisher",
                show(&Some(payload.clone())),
                show(&Some(prev.to_vec()))
            )));
        }
        list.push(payload);
    }
    out.extend(missing_messages(events, &received));
    out
}

/// `p<client>.<seq>` → (client, seq).
fn publisher(payload: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(payload);
    let mut parts = text
        .trim_start_matches('p')
        .split('.')
        .map(|n| n.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

fn missing_messages(
    events: &[Event],
    received: &BTreeMap<(usize, usize), Vec<&[u8]>>,
) -> Vec<Violation> {
    // The first end counts: CLIENT REPLY OFF ends the checked part early.
    let mut ends: HashMap<(usize, usize), Instant> = HashMap::new();
    for e in events {
        if let Event::Unsubscribing { client, id, send } = e {
            ends.entry((*client, *id)).or_insert(*send);
        }
    }
    let mut out = Vec::new();
    for e in events {
        let Event::Subscribed {
            id,
            target,
            pattern,
            ack: began,
            at,
        } = e
        else {
            continue;
        };
        let Some(end) = ends.get(&(at.client, *id)) else {
            continue;
        };
        let got = received.get(&(at.client, *id));
        for p in events {
            let Event::Publish {
                channel,
                payload,
                send,
                ack: Some(ack),
                at: p_at,
            } = p
            else {
                continue;
            };
            let matches = if *pattern {
                keys::glob_match(target, channel)
            } else {
                target == channel
            };
            if matches
                && began < send
                && ack < end
                && !got.is_some_and(|g| g.contains(&payload.as_slice()))
            {
                out.push(Violation {
                    at: at.clone(),
                    what: format!(
                        "subscription to {} missed message {} (published by client {} {} after the subscription was confirmed, acknowledged before it ended)",
                        show(&Some(target.clone())), show(&Some(payload.clone())), p_at.client, p_at.step
                    ),
                });
            }
        }
    }
    out
}
