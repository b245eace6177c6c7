//! Which frames from Redis answer which request, on a connection that may also carry
//! frames no request asked for: pub/sub messages, client-side-caching invalidations,
//! MONITOR lines.
//!
//! Every request says what it expects ([`Expect`]). Frames that arrive before the
//! front request's reply begins and that cannot begin it are out of band (delivered to
//! the client as they come). Once a reply begins, its frames are contiguous: Redis
//! writes a command's whole reply at once, so nothing is interleaved with it.
//!
//! What begins a reply, and how many frames it has:
//! - most commands: the first frame that is not out of band; their own frames plus
//!   those of the proxy's extras ([`Expect::Frames`]);
//! - the SUBSCRIBE family: an error, or a confirmation of any subscription kind; one
//!   confirmation per channel named, or for UNSUBSCRIBE without arguments one per
//!   current subscription of that kind (one with a nil channel if there is none);
//! - EXEC: one frame, plus, when the transaction ran, the confirmations beyond one
//!   of each SUBSCRIBE-family command queued in it (Redis counts one array element per
//!   queued command, but writes every confirmation);
//! - MONITOR: `+OK`, after which `+<timestamp> [...]` lines are out of band.
//!
//! Out of band: RESP3 pushes; in RESP2, while subscribed, `message`, `pmessage` and
//! `smessage` arrays (and confirmations nobody asked for); MONITOR lines.
//! [`Subscriptions`] keeps what Redis confirmed, so the counts follow Redis's state.

use std::collections::HashSet;

use bytes::Bytes;

use crate::protocol::reply::{array_elements, is_error, is_push};

/// The subscription commands, and the kinds of their confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubKind {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
    SSubscribe,
    SUnsubscribe,
}

impl SubKind {
    const ALL: [SubKind; 6] = [
        SubKind::Subscribe,
        SubKind::Unsubscribe,
        SubKind::PSubscribe,
        SubKind::PUnsubscribe,
        SubKind::SSubscribe,
        SubKind::SUnsubscribe,
    ];

    /// The command name, which is also the first element of its confirmations.
    pub fn as_str(self) -> &'static str {
        match self {
            SubKind::Subscribe => "subscribe",
            SubKind::Unsubscribe => "unsubscribe",
            SubKind::PSubscribe => "psubscribe",
            SubKind::PUnsubscribe => "punsubscribe",
            SubKind::SSubscribe => "ssubscribe",
            SubKind::SUnsubscribe => "sunsubscribe",
        }
    }

    /// The kind of a command (any case).
    pub fn of(name: &[u8]) -> Option<SubKind> {
        Self::ALL
            .into_iter()
            .find(|k| name.eq_ignore_ascii_case(k.as_str().as_bytes()))
    }

    fn subscribes(self) -> bool {
        matches!(
            self,
            SubKind::Subscribe | SubKind::PSubscribe | SubKind::SSubscribe
        )
    }

    /// Which set of subscriptions it is about (0 channels, 1 patterns, 2 shard).
    fn set(self) -> usize {
        match self {
            SubKind::Subscribe | SubKind::Unsubscribe => 0,
            SubKind::PSubscribe | SubKind::PUnsubscribe => 1,
            SubKind::SSubscribe | SubKind::SUnsubscribe => 2,
        }
    }
}

/// A SUBSCRIBE-family command: its kind and the channels (or patterns) it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubCmd {
    pub kind: SubKind,
    pub names: Vec<Bytes>,
}

impl PubSubCmd {
    /// The command `args` (name first), if it is of the SUBSCRIBE family.
    pub fn parse(args: &[Bytes]) -> Option<PubSubCmd> {
        Some(PubSubCmd {
            kind: SubKind::of(args.first()?)?,
            names: args[1..].to_vec(),
        })
    }
}

/// What a request's reply looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// This many frames (the command's own, then the proxy's extras').
    Frames(u32),
    PubSub(PubSubCmd),
    /// EXEC, with the SUBSCRIBE-family commands queued in the transaction, in order.
    Exec(Vec<PubSubCmd>),
    /// MONITOR: one frame; after `+OK`, MONITOR lines are out of band.
    Monitor,
    /// RESET: one frame; after `+RESET` nothing is subscribed or monitored.
    Reset,
    /// HELLO: one frame; after a reply that is not an error, the protocol is
    /// RESP3 or not.
    Hello(bool),
}

/// What Redis confirmed a connection is subscribed to, and its protocol.
#[derive(Debug, Default, Clone)]
pub struct Subscriptions {
    /// Channels, patterns and shard channels.
    sets: [HashSet<Bytes>; 3],
    monitor: bool,
    resp3: bool,
}

impl Subscriptions {
    pub fn new(resp3: bool) -> Self {
        Self {
            resp3,
            ..Self::default()
        }
    }

    /// Subscriptions of each kind: channels, patterns, shard channels.
    pub fn counts(&self) -> [usize; 3] {
        [self.sets[0].len(), self.sets[1].len(), self.sets[2].len()]
    }

    pub fn subscribed(&self) -> bool {
        self.sets.iter().any(|s| !s.is_empty())
    }

    pub fn monitoring(&self) -> bool {
        self.monitor
    }

    /// True if `frame`, arriving before the front request's reply has begun, starts
    /// that reply (else it is out of band).
    pub fn begins(&self, expect: &Expect, frame: &[u8]) -> bool {
        match expect {
            Expect::PubSub(_) => is_error(frame) || self.kind_of(frame).is_some(),
            _ => !self.out_of_band(frame),
        }
    }

    /// True if `frame`, arriving after the front request's reply has begun and before
    /// its last frame, is not part of it (a tracking or pub/sub push between a
    /// command's reply and the reply of the proxy's extra command after it).
    pub fn interrupts(&self, expect: &Expect, frame: &[u8]) -> bool {
        let confirms = matches!(expect, Expect::PubSub(_) | Expect::Exec(_));
        self.out_of_band(frame) && !(confirms && self.kind_of(frame).is_some())
    }

    /// How many frames the reply that `first` begins has, and the state changes it
    /// makes (applied here).
    pub fn frames(&mut self, expect: &Expect, first: &[u8]) -> u32 {
        match expect {
            // The proxy's extras answer even when the client's command fails.
            Expect::Frames(n) => (*n).max(1),
            _ if is_error(first) => 1,
            Expect::PubSub(cmd) => self.expected(cmd),
            Expect::Exec(queued) => self.exec(queued, first),
            Expect::Monitor => {
                self.monitor = first == b"+OK\r\n";
                1
            }
            Expect::Reset => {
                if first == b"+RESET\r\n" {
                    self.sets.iter_mut().for_each(HashSet::clear);
                    self.monitor = false;
                }
                1
            }
            Expect::Hello(resp3) => {
                self.resp3 = *resp3;
                1
            }
        }
    }

    /// Applies a confirmation frame (one of a reply, or out of band) to the sets.
    pub fn confirm(&mut self, frame: &[u8]) {
        let Some(kind) = self.kind_of(frame) else {
            return;
        };
        let name = elements(frame).and_then(|e| e.get(1).and_then(bulk_body));
        let set = &mut self.sets[kind.set()];
        match (kind.subscribes(), name) {
            (true, Some(name)) => {
                set.insert(name);
            }
            (false, Some(name)) => {
                set.remove(&name);
            }
            (_, None) => {}
        }
    }

    /// Confirmations `cmd` gets now.
    fn expected(&self, cmd: &PubSubCmd) -> u32 {
        match (cmd.kind.subscribes(), cmd.names.len()) {
            (false, 0) => self.sets[cmd.kind.set()].len().max(1) as u32,
            (_, n) => n as u32,
        }
    }

    /// EXEC: one frame, plus each queued SUBSCRIBE-family command's confirmations
    /// beyond one if the transaction ran (its reply is an array).
    fn exec(&mut self, queued: &[PubSubCmd], first: &[u8]) -> u32 {
        if !first.starts_with(b"*") || first == b"*-1\r\n" {
            return 1;
        }
        let mut extra = 0;
        for cmd in queued {
            extra += self.expected(cmd).saturating_sub(1);
            self.apply(cmd);
        }
        1 + extra
    }

    /// What `cmd` does to the sets when it succeeds.
    fn apply(&mut self, cmd: &PubSubCmd) {
        let set = &mut self.sets[cmd.kind.set()];
        match (cmd.kind.subscribes(), cmd.names.is_empty()) {
            (true, _) => set.extend(cmd.names.iter().cloned()),
            (false, true) => set.clear(),
            (false, false) => cmd.names.iter().for_each(|n| {
                set.remove(n);
            }),
        }
    }

    /// True for frames no request asked for.
    fn out_of_band(&self, frame: &[u8]) -> bool {
        if is_push(frame) {
            return true;
        }
        if self.monitor && is_monitor_line(frame) {
            return true;
        }
        !self.resp3 && self.subscribed() && message_kind(frame).is_some()
    }

    /// The subscription kind of a confirmation frame (RESP2 array or RESP3 push).
    fn kind_of(&self, frame: &[u8]) -> Option<SubKind> {
        if !frame.starts_with(b"*") && !frame.starts_with(b">") {
            return None;
        }
        let first = elements(frame)?.first().and_then(bulk_body)?;
        SubKind::of(&first)
    }
}

/// `message`, `pmessage`, `smessage` (or a confirmation) at the head of an array.
fn message_kind(frame: &[u8]) -> Option<Bytes> {
    let first = elements(frame)?.first().and_then(bulk_body)?;
    let known = [&b"message"[..], b"pmessage", b"smessage"];
    (known.contains(&&first[..]) || SubKind::of(&first).is_some()).then_some(first)
}

fn elements(frame: &[u8]) -> Option<Vec<Bytes>> {
    let mut as_array = Bytes::copy_from_slice(frame);
    if frame.first() == Some(&b'>') {
        let mut v = as_array.to_vec();
        v[0] = b'*';
        as_array = Bytes::from(v);
    }
    array_elements(&as_array)
}

/// The body of a bulk (or simple) string frame; None for a nil.
fn bulk_body(frame: &Bytes) -> Option<Bytes> {
    match frame.first()? {
        b'$' => {
            let start = frame.iter().position(|&b| b == b'\n')? + 1;
            let end = frame.len().checked_sub(2)?;
            (start <= end).then(|| frame.slice(start..end))
        }
        b'+' => Some(frame.slice(1..frame.len().checked_sub(2)?)),
        _ => None,
    }
}

/// `+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"`.
fn is_monitor_line(frame: &[u8]) -> bool {
    let Some(rest) = frame.strip_prefix(b"+") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest.get(digits) == Some(&b'.') && frame.windows(2).any(|w| w == b" [")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(kind: &str, name: Option<&str>, n: i64) -> Vec<u8> {
        let name = name.map_or("$-1\r\n".to_owned(), |s| format!("${}\r\n{s}\r\n", s.len()));
        format!("*3\r\n${}\r\n{kind}\r\n{name}:{n}\r\n", kind.len()).into_bytes()
    }

    fn cmd(line: &str) -> PubSubCmd {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        PubSubCmd::parse(&args).unwrap()
    }

    #[test]
    fn a_push_between_the_frames_of_a_reply_is_not_part_of_it() {
        let s = Subscriptions::new(true);
        let push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";
        assert!(s.interrupts(&Expect::Frames(2), push));
        assert!(!s.interrupts(&Expect::Frames(2), b":1\r\n"));
        let sub = Expect::PubSub(cmd("SUBSCRIBE a b"));
        let confirmation = b">3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n";
        assert!(!s.interrupts(&sub, confirmation));
        let message = b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nm\r\n";
        assert!(s.interrupts(&sub, message));
    }

    #[test]
    fn a_confirmation_with_a_nil_channel_is_understood() {
        // What Redis answers UNSUBSCRIBE from a connection subscribed to nothing.
        let mut s = Subscriptions::new(false);
        let nil = b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n";
        let none = Expect::PubSub(cmd("PUNSUBSCRIBE"));
        assert!(s.begins(&none, nil));
        assert_eq!(s.frames(&none, nil), 1);
        s.confirm(nil);
        assert!(!s.subscribed());
        assert_eq!(bulk_body(&Bytes::from_static(b"$-1\r\n")), None);
    }

    #[test]
    fn unsubscribe_counts_follow_the_subscriptions() {
        let mut s = Subscriptions::new(false);
        let none = Expect::PubSub(cmd("UNSUBSCRIBE"));
        assert_eq!(s.frames(&none, &conf("unsubscribe", None, 0)), 1);
        let sub = Expect::PubSub(cmd("SUBSCRIBE a b"));
        assert!(s.begins(&sub, &conf("subscribe", Some("a"), 1)));
        assert_eq!(s.frames(&sub, &conf("subscribe", Some("a"), 1)), 2);
        s.confirm(&conf("subscribe", Some("a"), 1));
        s.confirm(&conf("subscribe", Some("b"), 2));
        assert!(s.subscribed());
        assert_eq!(s.frames(&none, &conf("unsubscribe", Some("a"), 1)), 2);
        let err = b"-ERR wrong number of arguments\r\n";
        assert!(s.begins(&sub, err));
        assert_eq!(s.frames(&sub, err), 1);
    }

    #[test]
    fn messages_are_out_of_band_only_while_subscribed() {
        let mut s = Subscriptions::new(false);
        let msg = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n";
        let ping = Expect::Frames(1);
        assert!(s.begins(&ping, msg), "not subscribed: an array is a reply");
        s.confirm(&conf("subscribe", Some("a"), 1));
        assert!(!s.begins(&ping, msg));
        assert!(s.begins(&ping, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"));
        let mut r3 = Subscriptions::new(true);
        let push = b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n";
        assert!(!r3.begins(&ping, push));
        let confirmation = b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n";
        assert!(r3.begins(&Expect::PubSub(cmd("SUBSCRIBE a")), confirmation));
        assert!(!r3.begins(&Expect::PubSub(cmd("SUBSCRIBE a")), push));
        r3.confirm(confirmation);
        assert_eq!(r3.counts(), [1, 0, 0]);
    }

    #[test]
    fn exec_counts_confirmations_beyond_one_per_command() {
        let mut s = Subscriptions::new(false);
        let exec = Expect::Exec(vec![cmd("SUBSCRIBE a b"), cmd("UNSUBSCRIBE")]);
        assert_eq!(s.frames(&exec, b"*3\r\n"), 1 + 1 + 1);
        assert_eq!(s.counts(), [0, 0, 0]);
        assert_eq!(s.frames(&exec, b"*-1\r\n"), 1);
        assert_eq!(s.frames(&exec, b"-EXECABORT x\r\n"), 1);
    }

    #[test]
    fn monitor_lines() {
        let mut s = Subscriptions::new(false);
        let line = b"+1796623079.753505 [0 127.0.0.1:52272] \"PING\"\r\n";
        assert!(s.begins(&Expect::Frames(1), line));
        assert_eq!(s.frames(&Expect::Monitor, b"+OK\r\n"), 1);
        assert!(!s.begins(&Expect::Frames(1), line));
        assert!(s.begins(&Expect::Frames(1), b"+PONG\r\n"));
        s.frames(&Expect::Reset, b"+RESET\r\n");
        assert!(!s.monitoring());
    }
}
