//! One command's replies on both sides: compared as its check says, and turned into
//! model events when it touches shared keys or channels.

use std::time::Instant;

use crate::{
    check::{self, Access, Check},
    model::{At, Event, Order},
    support::resp::{Frame, show},
};

/// A reply frame with the instant it was read, or why there was none.
pub type Read = Result<(Frame, Instant), String>;
/// The commands an EXEC runs, with their checks.
pub type Queued = [(Vec<Vec<u8>>, Check)];

/// The first reply that differs: its index and both sides rendered for the report.
pub fn first_difference(
    check: &Check,
    exec: Option<&Queued>,
    direct: &[Frame],
    proxy: &[Read],
) -> Option<(usize, String, String)> {
    direct.iter().enumerate().find_map(|(k, d)| {
        let d = compared(check, exec, d);
        let p = match proxy.get(k) {
            Some(Ok((f, _))) => Ok(compared(check, exec, f)),
            Some(Err(e)) => Err(format!("<{e}>")),
            None => Err("<not read>".into()),
        };
        (p.as_ref() != Ok(&d)).then(|| {
            let (d, p) = render_pair(&d, &p);
            (k, d, p)
        })
    })
}

/// The normalised reply as compared (EXEC: each element with its command's check).
fn compared(check: &Check, exec: Option<&Queued>, frame: &Frame) -> Vec<u8> {
    let frame = match (exec, frame) {
        (Some(queued), Frame::Agg(t, Some(elems))) if queued.len() == elems.len() => {
            let elems = queued
                .iter()
                .zip(elems)
                .map(|((_, c), e)| check::norm_frame(c, e))
                .collect();
            Frame::Agg(*t, Some(elems))
        }
        _ => check::norm_frame(check, frame),
    };
    frame.encode()
}

/// Both replies for the report; for long ones, where they first differ.
pub fn render_pair(d: &[u8], p: &Result<Vec<u8>, String>) -> (String, String) {
    let p = match p {
        Ok(p) => p,
        Err(e) => return (show(d), e.clone()),
    };
    if d.len() <= 300 && p.len() <= 300 {
        return (show(d), show(p));
    }
    let at = d
        .iter()
        .zip(p)
        .position(|(a, b)| a != b)
        .unwrap_or(d.len().min(p.len()));
    let window = |v: &[u8]| show(&v[at.saturating_sub(20).min(v.len())..(at + 60).min(v.len())]);
    let note = |v: &[u8]| format!("{} bytes, from byte {at}: {}", v.len(), window(v));
    (note(d), note(p))
}

/// The confirmations of an UNSUBSCRIBE of every channel, on both sides, with the
/// names sorted (see [`check::sort_unsubscribes`]).
pub fn sort_unsubscribe_replies(direct: &mut [Frame], proxy: &mut [Read]) {
    check::sort_unsubscribes(direct);
    let mut frames: Vec<Frame> = proxy
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(f, _)| f.clone()))
        .collect();
    check::sort_unsubscribes(&mut frames);
    let slots = proxy.iter_mut().filter_map(|r| r.as_mut().ok());
    for ((slot, _), f) in slots.zip(frames) {
        *slot = f;
    }
}

/// Where a command ran, for its model events.
pub struct Origin<'a> {
    pub at: &'a At,
    pub db: u32,
    pub order: Order,
    pub send: Instant,
}

/// The model events of a command on shared keys or channels, from one side's replies.
pub fn events(check: &Check, origin: &Origin, replies: &[Read]) -> Vec<Event> {
    let Check::Shared(accesses) = check else {
        return Vec::new();
    };
    let queued = Frame::Line(b'+', b"QUEUED".to_vec());
    // No reply (CLIENT REPLY OFF), an error, or queued in MULTI: the write may or may
    // not have happened, and nothing was read.
    let reply = match replies.first() {
        Some(Ok((f, t))) if !check::is_error(f) && f != &queued => Some((f, *t)),
        _ => None,
    };
    let (at, send, order) = (origin.at.clone(), origin.send, origin.order);
    accesses
        .iter()
        .filter_map(|access| match access {
            Access::Write { reg, value } => Some(Event::Write {
                reg: (origin.db, reg.clone()),
                value: value.clone(),
                send,
                ack: reply.map(|(_, t)| t),
                at: at.clone(),
                order,
            }),
            Access::Read { reg, at: index } => {
                let (frame, ack) = reply?;
                let got = check::read_value(frame, *index).ok()?;
                Some(Event::Read {
                    reg: (origin.db, reg.clone()),
                    got,
                    send,
                    ack,
                    at: at.clone(),
                    order,
                })
            }
            Access::Publish { channel, payload } => Some(Event::Publish {
                channel: channel.clone().into_bytes(),
                payload: payload.clone(),
                send,
                ack: reply.map(|(_, t)| t),
                at: at.clone(),
            }),
        })
        .collect()
}
