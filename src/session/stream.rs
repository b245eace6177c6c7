//! The client's byte stream, plain TCP or TLS over it, read and written by one
//! future ([`io`]) that polls both directions on the same `&mut` stream: no split
//! halves, so a session's loop is the same code for either, and the plain path pays
//! nothing for TLS (for TCP, [`ClientStream::holds_output`] is a constant `false`).
//!
//! A TLS stream may accept bytes and keep some of them as records when the socket is
//! full: while it holds any, the turn flushes it, so a reply's last bytes are never
//! left waiting for the next reply.

use std::{
    future::{Future, poll_fn},
    io,
    pin::pin,
    task::Poll,
};

use bytes::{BufMut, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::server::TlsStream;

/// A stream a session serves a client on.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Bytes written are held in the stream, not yet on the socket.
    fn holds_output(&self) -> bool;
}

impl ClientStream for TcpStream {
    #[inline(always)]
    fn holds_output(&self) -> bool {
        false
    }
}

impl ClientStream for TlsStream<TcpStream> {
    fn holds_output(&self) -> bool {
        self.get_ref().1.wants_write()
    }
}

/// What one turn wants of the stream.
#[derive(Clone, Copy)]
pub struct Want {
    /// The output buffer holds bytes to write.
    write: bool,
    /// The stream holds bytes written (TLS records).
    flush: bool,
    /// Read at most this many bytes (0: do not read).
    read: usize,
}

impl Want {
    /// Writes `out` (or, once it is empty, what the stream still holds) unless
    /// `silent`, and reads at most `read` bytes.
    #[inline]
    pub fn new(stream: &impl ClientStream, out: &BytesMut, silent: bool, read: usize) -> Want {
        Want {
            write: !silent && !out.is_empty(),
            flush: !silent && stream.holds_output(),
            read,
        }
    }

    pub fn any(&self) -> bool {
        self.write || self.flush || self.read > 0
    }
}

/// What the stream did.
pub enum Done {
    Written(usize),
    Flushed,
    Read(usize),
}

/// Writes from `out` (or flushes), else reads into `inbuf`, whichever the stream
/// allows first; writing is tried first. Cancel-safe: each poll makes its write and
/// read futures anew, and neither keeps state between polls.
pub fn io<'a, S: ClientStream>(
    stream: &'a mut S,
    out: &'a mut BytesMut,
    inbuf: &'a mut BytesMut,
    want: Want,
) -> impl Future<Output = io::Result<Done>> + 'a {
    poll_fn(move |cx| {
        if want.write {
            if let Poll::Ready(r) = pin!(stream.write_buf(&mut *out)).poll(cx) {
                return Poll::Ready(r.map(Done::Written));
            }
        } else if want.flush {
            if let Poll::Ready(r) = pin!(stream.flush()).poll(cx) {
                return Poll::Ready(r.map(|()| Done::Flushed));
            }
        }
        if want.read > 0 {
            let mut limited = (&mut *inbuf).limit(want.read);
            if let Poll::Ready(r) = pin!(stream.read_buf(&mut limited)).poll(cx) {
                return Poll::Ready(r.map(Done::Read));
            }
        }
        Poll::Pending
    })
}

#[cfg(test)]
mod tests;
