//! What Redis's connection state makes of each command: how many reply frames it gets
//! (none under CLIENT REPLY OFF/SKIP, one per channel for (UN)SUBSCRIBE, …), which
//! frames are asynchronous pushes rather than replies, and how the state changes.
//!
//! The state follows the *direct* run's replies (Redis is the oracle): a SELECT that
//! failed does not change the db, an EXEC that was aborted applies none of its queued
//! commands. The proxy run is read with the same expectations; any difference then
//! shows up as a differing reply.

use std::collections::BTreeSet;

use crate::{check::Check, support::resp::Frame};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Reply {
    #[default]
    On,
    Off,
    /// CLIENT REPLY SKIP: the next command gets no reply.
    SkipNext,
}

#[derive(Debug, Clone, Default)]
pub struct Session {
    pub resp3: bool,
    pub db: u32,
    pub channels: BTreeSet<Vec<u8>>,
    pub patterns: BTreeSet<Vec<u8>>,
    pub shards: BTreeSet<Vec<u8>>,
    /// Inside MULTI: the commands Redis queued, with their checks (for EXEC's array).
    pub multi: Option<Vec<(Vec<Vec<u8>>, Check)>>,
    reply: Reply,
    /// BCAST tracking was turned on since the connection began: its invalidations
    /// are sent when Redis's event loop goes idle, so where they fall among replies
    /// depends on how a pipeline was cut into reads. They are not compared.
    pub bcast: bool,
    /// Tracking was on and then RESET: Redis keeps the connection's entries in its
    /// tracking table and, once tracking is on again, invalidates keys read back then;
    /// through the proxy the client then has another upstream connection (documented:
    /// RESET ends its dedicated connection), without those entries. Invalidations are
    /// not compared for the rest of such a connection. The same once tracking was on
    /// in RESP2 without REDIRECT: Redis drops those invalidations, so one that a rule's
    /// extra command caused through the proxy (see `runner/early.rs`) is used up unseen.
    pub tracking_residue: bool,
    tracking_ever: bool,
    /// CLIENT TRACKING ON without REDIRECT, and not turned off since.
    tracking_here: bool,
}

/// What to read for one command.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub frames: usize,
    /// The server closes the connection after the replies (QUIT).
    pub closes: bool,
    /// Messages may arrive among the replies (RESP2 pub/sub arrays are told apart
    /// from replies only by this).
    pub pubsub: bool,
}

/// An asynchronous frame: a pub/sub message or a tracking invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    Message {
        pattern: Option<Vec<u8>>,
        channel: Vec<u8>,
        payload: Vec<u8>,
        shard: bool,
    },
    /// Keys invalidated (`None`: everything, after a flush).
    Invalidate(Option<Vec<Vec<u8>>>),
}

pub fn upper(arg: Option<&Vec<u8>>) -> String {
    arg.map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
        .unwrap_or_default()
}

fn is_sub_command(name: &str) -> bool {
    matches!(
        name,
        "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE"
    )
}

/// Commands that act at once even inside MULTI.
fn immediate_in_multi(name: &str) -> bool {
    matches!(
        name,
        "EXEC" | "DISCARD" | "MULTI" | "WATCH" | "QUIT" | "RESET"
    )
}

impl Session {
    pub fn subscribed(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shards.is_empty())
    }

    pub fn plan(&self, args: &[Vec<u8>]) -> Plan {
        let name = upper(args.first());
        let pubsub =
            self.subscribed() || is_sub_command(&name) || name == "RESET" || name == "QUIT";
        let plan = |frames| Plan {
            frames,
            closes: name == "QUIT",
            pubsub,
        };
        let client_reply = name == "CLIENT" && upper(args.get(1)) == "REPLY" && args.len() == 3;
        let mode = upper(args.get(2));
        if self.reply == Reply::Off {
            return plan(usize::from(client_reply && mode == "ON"));
        }
        if self.reply == Reply::SkipNext {
            return plan(0);
        }
        if self.multi.is_some() && !immediate_in_multi(&name) {
            return plan(1);
        }
        if client_reply && (mode == "OFF" || mode == "SKIP") {
            return plan(0);
        }
        let named = args.len() - 1;
        match name.as_str() {
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" => plan(named.max(1)),
            "UNSUBSCRIBE" if named == 0 => plan(self.channels.len().max(1)),
            "PUNSUBSCRIBE" if named == 0 => plan(self.patterns.len().max(1)),
            "SUNSUBSCRIBE" if named == 0 => plan(self.shards.len().max(1)),
            "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" => plan(named),
            _ => plan(1),
        }
    }

    /// Updates the state after `args` got `frames` from Redis.
    pub fn apply(&mut self, args: &[Vec<u8>], check: &Check, frames: &[Frame]) {
        let name = upper(args.first());
        if self.reply == Reply::SkipNext {
            self.reply = Reply::On;
        }
        if name == "CLIENT" && upper(args.get(1)) == "REPLY" && self.multi.is_none() {
            match upper(args.get(2)).as_str() {
                "ON" => self.reply = Reply::On,
                "OFF" => self.reply = Reply::Off,
                "SKIP" if self.reply == Reply::On => self.reply = Reply::SkipNext,
                _ => {}
            }
            return;
        }
        let first = frames.first();
        if let Some(queued) = &mut self.multi
            && !immediate_in_multi(&name)
        {
            if first.is_some_and(|f| f == &Frame::Line(b'+', b"QUEUED".to_vec())) {
                queued.push((args.to_vec(), check.clone()));
            }
            return;
        }
        let ok = first.is_some_and(|f| !crate::check::is_error(f));
        match name.as_str() {
            "MULTI" if ok && self.multi.is_none() => self.multi = Some(Vec::new()),
            "DISCARD" => self.multi = None,
            "EXEC" => {
                let queued = self.multi.take().unwrap_or_default();
                if let Some(Frame::Agg(_, Some(elems))) = first {
                    for ((args, _), elem) in queued.iter().zip(elems) {
                        if !crate::check::is_error(elem) {
                            self.effect(args, std::slice::from_ref(elem));
                        }
                    }
                }
            }
            "RESET" => {
                let residue = self.tracking_ever || self.tracking_residue;
                *self = Session::default();
                self.tracking_residue = residue;
            }
            _ if ok => self.effect(args, frames),
            _ => {}
        }
    }

    /// The state change of a command that succeeded (directly or inside EXEC).
    fn effect(&mut self, args: &[Vec<u8>], frames: &[Frame]) {
        let name = upper(args.first());
        match name.as_str() {
            "HELLO"
                if args.len() > 1 && frames.first().is_some_and(|f| !crate::check::is_error(f)) =>
            {
                self.resp3 = args[1] == b"3";
            }
            "SELECT" => {
                if let Some(db) = std::str::from_utf8(&args[1])
                    .ok()
                    .and_then(|s| s.parse().ok())
                {
                    self.db = db;
                }
            }
            "CLIENT" if upper(args.get(1)) == "TRACKING" => {
                self.bcast |= args.iter().any(|a| a.eq_ignore_ascii_case(b"BCAST"));
                let on = upper(args.get(2)) == "ON";
                self.tracking_ever |= on;
                let redirect = args.iter().any(|a| a.eq_ignore_ascii_case(b"REDIRECT"));
                self.tracking_here = on && !redirect;
            }
            _ if is_sub_command(&name) => frames.iter().for_each(|f| self.confirm(f)),
            _ => {}
        }
        self.tracking_residue |= self.tracking_here && !self.resp3;
    }

    /// A (un)subscribe confirmation: `[kind, channel, count]`.
    fn confirm(&mut self, frame: &Frame) {
        let Some((kind, channel)) = confirmation(frame) else {
            return;
        };
        let Some(channel) = channel else { return };
        let (set, add) = match kind.as_str() {
            "subscribe" => (&mut self.channels, true),
            "unsubscribe" => (&mut self.channels, false),
            "psubscribe" => (&mut self.patterns, true),
            "punsubscribe" => (&mut self.patterns, false),
            "ssubscribe" => (&mut self.shards, true),
            "sunsubscribe" => (&mut self.shards, false),
            _ => return,
        };
        if add {
            set.insert(channel);
        } else {
            set.remove(&channel);
        }
    }

    /// The push `frame` is, if it is one (see [`Plan::pubsub`]).
    pub fn push(&self, frame: &Frame, pubsub: bool) -> Option<Push> {
        let Frame::Agg(t @ (b'>' | b'*'), Some(items)) = frame else {
            return None;
        };
        if *t == b'*' && !pubsub {
            return None;
        }
        let text = |i: usize| items.get(i).and_then(Frame::text).map(<[u8]>::to_vec);
        match (text(0)?.as_slice(), items.len()) {
            (b"message" | b"smessage", 3) => Some(Push::Message {
                pattern: None,
                channel: text(1)?,
                payload: text(2)?,
                shard: items[0].text() == Some(b"smessage"),
            }),
            (b"pmessage", 4) => Some(Push::Message {
                pattern: text(1),
                channel: text(2)?,
                payload: text(3)?,
                shard: false,
            }),
            (b"invalidate", 2) if *t == b'>' => Some(Push::Invalidate(match &items[1] {
                Frame::Agg(_, Some(keys)) => Some(
                    keys.iter()
                        .filter_map(|k| k.text().map(<[u8]>::to_vec))
                        .collect(),
                ),
                _ => None,
            })),
            _ => None,
        }
    }
}

/// `(kind, channel)` of a (un)subscribe confirmation frame (`channel` is `None` for
/// the reply to an UNSUBSCRIBE without channels while subscribed to none).
pub fn confirmation(frame: &Frame) -> Option<(String, Option<Vec<u8>>)> {
    let Frame::Agg(b'>' | b'*', Some(items)) = frame else {
        return None;
    };
    if items.len() != 3 || !matches!(items[2], Frame::Line(b':', _)) {
        return None;
    }
    let kind = String::from_utf8_lossy(items[0].text()?).into_owned();
    Some((kind, items[1].text().map(<[u8]>::to_vec)))
}
