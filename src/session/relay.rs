//! Streaming mode: after SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR, CLIENT TRACKING,
//! CLIENT REPLY or CLIENT ID, Redis sends frames no request asked for, so the client gets a
//! connection of its own and the proxy relays both directions frame by frame until
//! the client disconnects or sends RESET (after which it is an ordinary client again).

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{oneshot, watch},
};

use super::Session;
use crate::{
    command::{self, Route},
    protocol::{
        reply::{self, ReplyScanner},
        request::{Request, encode_command},
    },
    upstream::Detached,
};

/// How streaming mode ended.
pub(super) enum End {
    /// The client or Redis closed the connection, or the proxy is shutting down.
    Closed,
    /// Back to ordinary request/reply service.
    Resume,
}

/// How streaming mode starts.
pub(super) enum Start {
    /// On a new connection, with this command.
    Command(Request),
    /// On the client's transaction connection, handed over after EXEC.
    Detached(oneshot::Receiver<Detached>),
}

const UPSTREAM_HIGH_WATER: usize = 1024 * 1024;

pub(super) async fn run(
    session: &mut Session,
    stream: &mut TcpStream,
    stop: &mut watch::Receiver<bool>,
    start: Start,
) -> std::io::Result<End> {
    // Its state is about to change: never reused.
    session.pinned = None;
    let mut to_redis = BytesMut::new();
    let mut skip = 0;
    let (mut upstream, from_redis) = match start {
        Start::Command(first) => match session.ctx.upstream.connect_raw(&session.key).await {
            Ok(s) => {
                if let Some(name) = &session.name {
                    // The name the proxy kept goes to the connection that now is the client's.
                    let setname = [
                        Bytes::from_static(b"CLIENT"),
                        Bytes::from_static(b"SETNAME"),
                        name.clone(),
                    ];
                    to_redis.extend_from_slice(&encode_command(&setname));
                    skip = 1;
                }
                to_redis.extend_from_slice(&first.raw);
                (s, BytesMut::with_capacity(16 * 1024))
            }
            Err(e) => {
                session.reply(e.to_reply());
                return Ok(End::Resume);
            }
        },
        Start::Detached(rx) => match rx.await {
            Ok(detached) => detached,
            Err(_) => return Ok(End::Resume), // the connection failed; EXEC got the error
        },
    };
    if let Some(req) = session.deferred.take() {
        to_redis.extend_from_slice(&req.raw);
    }
    let mut relay = Relay {
        to_redis,
        from_redis,
        skip,
        scanner: ReplyScanner::default(),
        resetting: false,
    };
    relay.run(session, stream, &mut upstream, stop).await
}

struct Relay {
    to_redis: BytesMut,
    from_redis: BytesMut,
    /// Replies to commands the proxy added, not shown to the client.
    skip: usize,
    scanner: ReplyScanner,
    /// RESET was sent; streaming ends when Redis confirms it.
    resetting: bool,
}

impl Relay {
    async fn run(
        &mut self,
        session: &mut Session,
        stream: &mut TcpStream,
        upstream: &mut TcpStream,
        stop: &mut watch::Receiver<bool>,
    ) -> std::io::Result<End> {
        let max_out = session.ctx.limits.max_output_buffer.as_u64() as usize;
        let (mut crd, mut cwr) = stream.split();
        let (mut urd, mut uwr) = upstream.split();
        loop {
            if !self.resetting {
                match take_client_commands(session, &mut self.to_redis) {
                    Ok(r) => self.resetting = r,
                    Err(()) => {
                        cwr.write_all_buf(&mut session.out).await?;
                        return Ok(End::Closed);
                    }
                }
            }
            if self.relay_frames(session)? {
                cwr.write_all_buf(&mut session.out).await?;
                session.reset_state();
                return Ok(End::Resume);
            }
            let can_read_client = !self.resetting && self.to_redis.len() < UPSTREAM_HIGH_WATER;
            tokio::select! {
                read = crd.read_buf(&mut session.inbuf), if can_read_client => {
                    if read? == 0 {
                        return Ok(End::Closed);
                    }
                }
                read = urd.read_buf(&mut self.from_redis), if session.out.len() < max_out => {
                    if read? == 0 {
                        cwr.write_all_buf(&mut session.out).await?;
                        return Ok(End::Closed);
                    }
                }
                written = cwr.write_buf(&mut session.out), if !session.out.is_empty() => { written?; }
                written = uwr.write_buf(&mut self.to_redis), if !self.to_redis.is_empty() => { written?; }
                _ = stop.changed() => return Ok(End::Closed),
            }
        }
    }

    /// Moves complete frames from Redis to the client. True once RESET is confirmed.
    fn relay_frames(&mut self, session: &mut Session) -> std::io::Result<bool> {
        while let Some(len) = self
            .scanner
            .scan(&self.from_redis)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            let frame = self.from_redis.split_to(len);
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            session.out.extend_from_slice(&frame);
            if self.resetting && &frame[..] == b"+RESET\r\n" {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Moves complete client commands to the upstream buffer. `Ok(true)` once RESET was
/// sent (nothing after it is read until Redis has answered it); `Err` on a protocol
/// error (its reply is in the output buffer).
fn take_client_commands(session: &mut Session, to_redis: &mut BytesMut) -> Result<bool, ()> {
    loop {
        match session.parser.next(&mut session.inbuf) {
            Ok(Some(req)) => {
                to_redis.extend_from_slice(&req.raw);
                let class = command::classify(&req.args);
                // Its writes still move L1 generations (tracking would catch them a
                // moment later; ttl-only mode would not).
                let _ = session.invalidate_writes(&req.args, &class);
                if class.route == Route::Reset {
                    return Ok(true);
                }
            }
            Ok(None) => return Ok(false),
            Err(e) => {
                session.out.extend_from_slice(&reply::error(&e.to_string()));
                return Err(());
            }
        }
    }
}
