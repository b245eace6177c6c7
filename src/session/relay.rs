//! Streaming mode: after SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR, CLIENT TRACKING
//! or CLIENT REPLY, Redis sends frames no request asked for, so the client gets a
//! connection of its own and the proxy relays both directions frame by frame until
//! the client disconnects or sends RESET (after which it is an ordinary client again).

use bytes::BytesMut;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use super::Session;
use crate::{
    command::{self, Route},
    protocol::{
        reply::{self, ReplyScanner},
        request::Request,
    },
};

/// How streaming mode ended.
pub(super) enum End {
    /// The client or Redis closed the connection, or the proxy is shutting down.
    Closed,
    /// Back to ordinary request/reply service.
    Resume,
}

const UPSTREAM_HIGH_WATER: usize = 1024 * 1024;

pub(super) async fn run(
    session: &mut Session,
    stream: &mut TcpStream,
    stop: &mut watch::Receiver<bool>,
    first: Request,
) -> std::io::Result<End> {
    if let Some(p) = &mut session.pinned {
        p.dirty = true;
    }
    session.release_pinned();
    let mut upstream = match session.shared.upstream.connect_raw(&session.key).await {
        Ok(s) => s,
        Err(e) => {
            session.reply(e.to_reply());
            return Ok(End::Resume);
        }
    };
    let max_out = session.shared.config.server.max_output_buffer.as_u64() as usize;
    let mut to_redis = BytesMut::from(&first.raw[..]);
    let mut from_redis = BytesMut::with_capacity(16 * 1024);
    let mut scanner = ReplyScanner::default();
    let mut resetting = false;
    let (mut crd, mut cwr) = stream.split();
    let (mut urd, mut uwr) = upstream.split();
    loop {
        if !resetting {
            match take_client_commands(session, &mut to_redis) {
                Ok(r) => resetting = r,
                Err(()) => {
                    cwr.write_all_buf(&mut session.out).await?;
                    return Ok(End::Closed);
                }
            }
        }
        while let Some(len) = scanner
            .scan(&from_redis)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
        {
            let frame = from_redis.split_to(len);
            session.out.extend_from_slice(&frame);
            if resetting && &frame[..] == b"+RESET\r\n" {
                cwr.write_all_buf(&mut session.out).await?;
                session.reset_state();
                return Ok(End::Resume);
            }
        }
        let can_read_client = !resetting && to_redis.len() < UPSTREAM_HIGH_WATER;
        tokio::select! {
            read = crd.read_buf(&mut session.inbuf), if can_read_client => {
                if read? == 0 {
                    return Ok(End::Closed);
                }
            }
            read = urd.read_buf(&mut from_redis), if session.out.len() < max_out => {
                if read? == 0 {
                    cwr.write_all_buf(&mut session.out).await?;
                    return Ok(End::Closed);
                }
            }
            written = cwr.write_buf(&mut session.out), if !session.out.is_empty() => { written?; }
            written = uwr.write_buf(&mut to_redis), if !to_redis.is_empty() => { written?; }
            _ = stop.changed() => return Ok(End::Closed),
        }
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
                if command::classify(&req.args).route == Route::Reset {
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
