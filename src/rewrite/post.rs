//! What the proxy sends upstream for one client command, and how Redis's reply is
//! turned back into exactly the reply the client expects.
//!
//! Most commands go out as the client sent them and come back untouched
//! ([`Outgoing::plain`]). A namespace rule may rewrite a command (a TTL added or
//! clamped) or send extra commands right after it on the same connection (`PEXPIRE key
//! ms NX`); their replies are cut off here so the client sees only its own. Inside
//! MULTI the extra commands are queued too, and the EXEC reply loses their elements.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};

use crate::{
    compress::Opener,
    protocol::{
        reply::{array_elements, is_error, split_frames},
        request::{Request, encode_command},
    },
};

/// The bytes to send for one client command and how to shape its reply.
pub struct Outgoing {
    pub cmd: Bytes,
    /// Also says how many reply frames `cmd` produces.
    pub post: Post,
}

impl Outgoing {
    /// The command as the client sent it.
    pub fn plain(req: &Request) -> Self {
        Self::with_extras(req.raw.clone(), 0, Shape::Raw)
    }

    /// `cmd` holds the client's command followed by `extras` commands of the proxy's
    /// own, whose replies are read and dropped.
    pub fn with_extras(cmd: Bytes, extras: u32, shape: Shape) -> Self {
        Self {
            cmd,
            post: Post {
                frames: 1 + extras,
                shape,
                exec: None,
            },
        }
    }

    /// Inside MULTI, a command a rule refused: Redis gets a command it refuses while
    /// queueing (so EXEC aborts the transaction, as for any refused command) and the
    /// client gets `error` in place of Redis's complaint.
    pub fn refused(error: Bytes) -> Self {
        let cmd = encode_command(&[Bytes::from_static(b"RESPITE.REFUSED")]);
        Self::with_extras(cmd, 0, Shape::Replace(error))
    }

    /// Reply frames `cmd` produces: the client's own first, then the extras'.
    pub fn frames(&self) -> u32 {
        self.post.frames.max(1)
    }
}

/// How a reply (all `frames` of it, concatenated) becomes the client's.
#[derive(Debug, Default)]
pub struct Post {
    /// Frames in the reply; all but the first are the proxy's extras (0 counts as 1).
    pub frames: u32,
    /// How the client's frame is restored (compressed values).
    pub shape: Shape,
    /// For EXEC: one entry per command queued upstream in the transaction, in order.
    pub exec: Option<Vec<Queued>>,
}

/// Where a reply carries values that may be stored compressed, and how to restore
/// them. `Raw`: the reply is passed on untouched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Shape {
    #[default]
    Raw,
    /// The client gets this frame instead (an error decided by the proxy).
    Replace(Bytes),
    /// Values stored as compression envelopes are restored (see `compress::reply`).
    Compressed(crate::compress::Restore),
}

impl Shape {
    pub fn restore(&self, frame: Bytes, opener: &Opener) -> Bytes {
        match self {
            Shape::Raw => frame,
            Shape::Replace(instead) => instead.clone(),
            Shape::Compressed(restore) => restore.apply(frame, opener),
        }
    }
}

/// One command queued upstream inside MULTI, as EXEC will report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queued {
    /// The client's own command: its element stays, restored by its shape.
    Client(Shape),
    /// Added by the proxy: its element is removed from the EXEC reply.
    Extra,
}

impl Post {
    /// The client's reply; stored values in it are opened by `opener`.
    pub fn apply(self, frame: Bytes, opener: &Opener) -> Bytes {
        let frame = if self.frames > 1 {
            let mut frames = split_frames(&frame);
            let first = frames.next();
            frames.for_each(|extra| check_extra(&extra));
            first.unwrap_or(frame)
        } else {
            frame
        };
        match self.exec {
            Some(queued) => exec_reply(frame, &queued, opener),
            None => self.shape.restore(frame, opener),
        }
    }
}

/// Extras Redis refused, process-wide (logged at 1, 2, 4, 8… so a misconfiguration
/// shows in the log without flooding it).
static EXTRAS_REFUSED: AtomicU64 = AtomicU64::new(0);

/// An extra's reply is dropped, but a refusal means a rule is not applied (Redis
/// before 7.0 knows no `PEXPIRE … NX`): say so.
fn check_extra(reply: &[u8]) {
    if !is_error(reply) {
        return;
    }
    let n = EXTRAS_REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(
            refused = n,
            reply = %String::from_utf8_lossy(reply).trim_end(),
            "Redis refused a command respite adds for a namespace rule (PEXPIRE … NX needs Redis 7.0 or later): the rule's TTL was not applied"
        );
    }
}

/// The EXEC reply without the elements of the proxy's own queued commands. An
/// aborted or failed EXEC (`*-1`, `_`, an error) is returned as is.
fn exec_reply(frame: Bytes, queued: &[Queued], opener: &Opener) -> Bytes {
    if queued.iter().all(|q| *q == Queued::Client(Shape::Raw)) {
        return frame;
    }
    let Some(elements) = array_elements(&frame) else {
        return frame;
    };
    if elements.len() != queued.len() {
        return frame; // not the transaction we queued: never guess
    }
    let kept: Vec<Bytes> = elements
        .into_iter()
        .zip(queued)
        .filter_map(|(e, q)| match q {
            Queued::Client(shape) => Some(shape.restore(e, opener)),
            Queued::Extra => {
                check_extra(&e);
                None
            }
        })
        .collect();
    let mut out = BytesMut::with_capacity(frame.len());
    out.extend_from_slice(format!("*{}\r\n", kept.len()).as_bytes());
    kept.iter().for_each(|e| out.extend_from_slice(e));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(queued: Vec<Queued>) -> Post {
        Post {
            frames: 1,
            shape: Shape::Raw,
            exec: Some(queued),
        }
    }

    #[test]
    fn extras_replies_are_cut() {
        let f = Bytes::from_static(b"*2\r\n:1\r\n:2\r\n:1\r\n");
        let out = Outgoing::with_extras(f.clone(), 1, Shape::Raw);
        assert_eq!(
            &out.post.apply(f, &Opener::default())[..],
            b"*2\r\n:1\r\n:2\r\n"
        );
    }

    #[test]
    fn exec_drops_extra_elements() {
        let c = || Queued::Client(Shape::Raw);
        let f = Bytes::from_static(b"*4\r\n+OK\r\n:1\r\n$1\r\nv\r\n:0\r\n");
        let post = exec(vec![c(), Queued::Extra, c(), Queued::Extra]);
        assert_eq!(
            &post.apply(f, &Opener::default())[..],
            b"*2\r\n+OK\r\n$1\r\nv\r\n"
        );
        let aborted = Bytes::from_static(b"*-1\r\n");
        assert_eq!(
            &exec(vec![c(), Queued::Extra]).apply(aborted, &Opener::default())[..],
            b"*-1\r\n"
        );
        let err = Bytes::from_static(b"-EXECABORT x\r\n");
        assert_eq!(
            &exec(vec![c(), Queued::Extra]).apply(err.clone(), &Opener::default())[..],
            &err[..]
        );
    }
}
