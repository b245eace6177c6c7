//! Which upstream connection a client's commands go to: the shared pool of its key, or
//! a connection of its own, and why it keeps one.

use tokio::sync::mpsc;

use super::effect::Effect;
use crate::{
    rewrite::Queued,
    upstream::{Conn, Dedicated, Event, PoolKey, expect::PubSubCmd},
};

pub enum Link {
    /// The shared pipelined connections of the client's key (db, user, protocol).
    Pooled,
    /// A connection of the client's own.
    Own(Own),
}

pub struct Own {
    pub conn: Conn,
    pub events: mpsc::Receiver<Event>,
    /// What it was set up for, following SELECT, AUTH and HELLO sent on it.
    pub key: PoolKey,
    /// The transaction open on it.
    pub multi: Option<Multi>,
    /// WATCH is in force.
    pub watching: bool,
    /// State the proxy does not model (MONITOR, CLIENT TRACKING…): the connection is
    /// kept until RESET or disconnection, and never given to another client.
    pub sticky: bool,
    /// Its state may differ from a new connection's for `key`: never reused.
    pub dirty: bool,
    /// Its events stopped: the connection failed.
    pub gone: bool,
    /// MONITOR was sent on it.
    pub monitor: bool,
}

/// A transaction being queued.
#[derive(Default)]
pub struct Multi {
    /// Every command queued upstream (the client's and the proxy's own), to give
    /// EXEC's reply the client's shape.
    pub queued: Vec<Queued>,
    /// L1 effects of the writes queued, applied at EXEC.
    pub writes: Vec<Effect>,
    /// The SELECTs queued (their position among the client's commands, and the db):
    /// the db changes at EXEC with each one that succeeds.
    pub selects: Vec<(usize, u32)>,
    /// SUBSCRIBE-family commands queued: their confirmations follow EXEC's reply.
    pub pubsub: Vec<PubSubCmd>,
}

impl Multi {
    /// The client's commands queued (`CLIENT LIST`'s `multi=`).
    pub fn client_commands(&self) -> usize {
        self.queued
            .iter()
            .filter(|q| matches!(q, Queued::Client(_)))
            .count()
    }
}

impl Own {
    pub fn new(d: Dedicated, key: PoolKey) -> Self {
        Self {
            conn: d.conn,
            events: d.events,
            key,
            multi: None,
            watching: false,
            sticky: false,
            dirty: false,
            gone: false,
            monitor: false,
        }
    }

    /// True while something other than outstanding replies keeps the connection.
    pub fn held(&self) -> bool {
        self.multi.is_some()
            || self.watching
            || self.sticky
            || self.conn.subscriptions().iter().any(|&n| n > 0)
    }

    /// True if the client gets frames from it that no command asked for (it is
    /// subscribed, monitoring, tracking…).
    pub fn streams(&self) -> bool {
        self.sticky || self.conn.subscriptions().iter().any(|&n| n > 0)
    }

    /// The connection, if it can serve another client as a new one would.
    pub fn into_reusable(self) -> Option<(PoolKey, Dedicated)> {
        (!self.dirty && !self.gone && !self.held()).then(|| {
            let d = Dedicated {
                conn: self.conn,
                events: self.events,
            };
            (self.key, d)
        })
    }
}

impl Link {
    pub fn own(&self) -> Option<&Own> {
        match self {
            Link::Own(own) => Some(own),
            Link::Pooled => None,
        }
    }

    pub fn own_mut(&mut self) -> Option<&mut Own> {
        match self {
            Link::Own(own) => Some(own),
            Link::Pooled => None,
        }
    }

    pub fn in_multi(&self) -> bool {
        self.own().is_some_and(|o| o.multi.is_some())
    }
}
