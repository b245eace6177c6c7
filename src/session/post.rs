//! What the proxy sends upstream for one client command, and how Redis's reply is
//! turned back into exactly the reply the client expects.
//!
//! Most commands go out as the client sent them and come back untouched
//! ([`Outgoing::plain`]). A namespace rule may rewrite a command (a TTL added or
//! clamped) or send extra commands right after it on the same connection (`PEXPIRE key
//! ms NX`); their replies are cut off here so the client sees only its own. Inside
//! MULTI the extra commands are queued too, and the EXEC reply loses their elements.

use bytes::{Bytes, BytesMut};

use crate::protocol::{
    reply::{array_elements, split_frames},
    request::Request,
};

/// The bytes to send for one client command and how to shape its reply.
pub(super) struct Outgoing {
    pub cmd: Bytes,
    /// Reply frames `cmd` produces (the client's own first, then the extras').
    pub frames: u32,
    pub post: Post,
}

impl Outgoing {
    /// The command as the client sent it.
    pub fn plain(req: &Request) -> Self {
        Self {
            cmd: req.raw.clone(),
            frames: 1,
            post: Post::None,
        }
    }

    /// Commands sent after the client's: their replies are read and dropped.
    pub fn with_extras(cmd: Bytes, extras: u32) -> Self {
        Self {
            cmd,
            frames: 1 + extras,
            post: if extras > 0 { Post::First } else { Post::None },
        }
    }
}

/// How a reply (all `frames` of it, concatenated) becomes the client's.
#[derive(Debug, Default)]
pub(super) enum Post {
    #[default]
    None,
    /// Keep the first frame, drop the extras' replies.
    First,
    /// EXEC: one entry per command queued upstream in the transaction, in order.
    Exec(Vec<Queued>),
}

/// One command queued upstream inside MULTI, as EXEC will report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queued {
    /// The client's own command: its element stays.
    Client,
    /// Added by the proxy: its element is removed from the EXEC reply.
    Extra,
}

impl Post {
    pub fn apply(self, frame: Bytes) -> Bytes {
        match self {
            Post::None => frame,
            Post::First => {
                let first = split_frames(&frame).next();
                first.unwrap_or(frame)
            }
            Post::Exec(queued) => exec_reply(frame, &queued),
        }
    }
}

/// The EXEC reply without the elements of the proxy's own queued commands. An
/// aborted or failed EXEC (`*-1`, `_`, an error) is returned as is.
fn exec_reply(frame: Bytes, queued: &[Queued]) -> Bytes {
    if !queued.contains(&Queued::Extra) {
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
        .filter(|(_, q)| **q == Queued::Client)
        .map(|(e, _)| e)
        .collect();
    let mut out = BytesMut::with_capacity(frame.len());
    out.extend_from_slice(format!("*{}\r\n", kept.len()).as_bytes());
    kept.iter().for_each(|e| out.extend_from_slice(e));
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_keeps_the_clients_frame() {
        let f = Bytes::from_static(b"*2\r\n:1\r\n:2\r\n:1\r\n");
        assert_eq!(&Post::First.apply(f)[..], b"*2\r\n:1\r\n:2\r\n");
    }

    #[test]
    fn exec_drops_extra_elements() {
        use Queued::*;
        let f = Bytes::from_static(b"*4\r\n+OK\r\n:1\r\n$1\r\nv\r\n:0\r\n");
        let post = Post::Exec(vec![Client, Extra, Client, Extra]);
        assert_eq!(&post.apply(f)[..], b"*2\r\n+OK\r\n$1\r\nv\r\n");
        let aborted = Bytes::from_static(b"*-1\r\n");
        assert_eq!(
            &Post::Exec(vec![Client, Extra]).apply(aborted)[..],
            b"*-1\r\n"
        );
        let err = Bytes::from_static(b"-EXECABORT x\r\n");
        assert_eq!(
            &Post::Exec(vec![Client, Extra]).apply(err.clone())[..],
            &err[..]
        );
    }
}
