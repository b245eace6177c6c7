//! The invalidation channel: how a respite tells the others which keys it deleted,
//! for those that do not learn it from Redis's tracking (`coherence = "ttl-only"`).
//!
//! A message is a RESP array of bulk strings: `invalidate`, the db number, then the
//! deleted keys (not the pattern, so the receiver can move each key's generation and
//! a fill already in flight there cannot store the old value). Any Redis client can
//! decode it, and keys stay binary-safe. L1 generations are per key across dbs, so a
//! receiver invalidates the keys in every db; the db is there for other readers.
//!
//! Every respite with an L1 in `ttl-only` mode subscribes with a connection of its own,
//! reconnecting with backoff like the tracking connection. Messages published while
//! it was away are lost, so each (re)subscription flushes L1.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use redis_protocol::resp3::{decode::complete::decode_bytes_mut, types::BytesFrame};
use tokio::sync::watch;
use tracing::{info, warn};

use super::{
    LinkState,
    tracking::{next_frame, watch_connection},
};
use crate::{
    l1::L1,
    protocol::request::encode_command,
    upstream::{PoolKey, Upstream},
};

/// The first element of every message.
const TAG: &[u8] = b"invalidate";
/// Name of the listening connection in `CLIENT LIST`.
pub const CLIENT_NAME: &str = "respite-invalidations";

/// The message announcing that `keys` of `db` were deleted.
pub fn encode(db: u32, keys: &[Bytes]) -> Bytes {
    let mut parts = Vec::with_capacity(keys.len() + 2);
    parts.push(Bytes::from_static(TAG));
    parts.push(Bytes::from(db.to_string()));
    parts.extend(keys.iter().cloned());
    encode_command(&parts)
}

/// The db and keys of a message; None if it is not one.
pub fn decode(message: &Bytes) -> Option<(u32, Vec<Bytes>)> {
    let mut buf = BytesMut::from(&message[..]);
    let (frame, _, _) = decode_bytes_mut(&mut buf).ok()??;
    let BytesFrame::Array { data, .. } = frame else {
        return None;
    };
    let mut parts = data.into_iter().map(|f| match f {
        BytesFrame::BlobString { data, .. } => Some(data),
        _ => None,
    });
    if parts.next()?.as_deref() != Some(TAG) {
        return None;
    }
    let db = std::str::from_utf8(&parts.next()??).ok()?.parse().ok()?;
    Some((db, parts.collect::<Option<Vec<_>>>()?))
}

/// Runs the listener on `channel` (for `coherence = "ttl-only"` with an L1) until
/// `stop` changes.
pub fn spawn_listener(
    l1: Arc<L1>,
    upstream: Arc<Upstream>,
    channel: String,
    mut stop: watch::Receiver<bool>,
) -> Arc<LinkState> {
    let state = Arc::new(LinkState::default());
    let st = state.clone();
    tokio::spawn(async move {
        let (min, max) = upstream.backoff();
        let mut backoff = min;
        let mut resubscribe = false;
        loop {
            tokio::select! {
                result = listen(&upstream, &l1, channel.as_bytes(), resubscribe, &st) => {
                    resubscribe = true;
                    if st.set_up(false) {
                        backoff = min;
                    }
                    warn!(error = %result.unwrap_err(), "invalidation channel lost: L1 is flushed when it is back");
                }
                _ = stop.changed() => return,
            }
            if !super::wait_to_retry(&mut backoff, max, &mut stop).await {
                return;
            }
        }
    });
    state
}

/// One subscription's life; returns why it ended. `resubscribe`: an earlier one was
/// lost, and with it whatever was published meanwhile.
async fn listen(
    upstream: &Upstream,
    l1: &L1,
    channel: &[u8],
    resubscribe: bool,
    state: &LinkState,
) -> Result<(), String> {
    let key = PoolKey {
        db: 0,
        creds: upstream.credentials_of_url(),
        resp3: false,
    };
    let mut stream = upstream
        .connect_raw(&key)
        .await
        .map_err(|e| e.to_string())?;
    let b = Bytes::from_static;
    let mut setup = encode_command(&[b(b"CLIENT"), b(b"SETNAME"), b(CLIENT_NAME.as_bytes())]);
    setup = [
        setup,
        encode_command(&[b(b"SUBSCRIBE"), Bytes::copy_from_slice(channel)]),
    ]
    .concat()
    .into();
    stream.send(&setup).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    match next_frame(&mut stream, &mut buf).await? {
        BytesFrame::SimpleString { data, .. } if &data[..] == b"OK" => {}
        other => return Err(format!("CLIENT SETNAME refused: {other:?}")),
    }
    match next_frame(&mut stream, &mut buf).await? {
        BytesFrame::Array { data, .. } if is_kind(&data, b"subscribe") => {}
        other => return Err(format!("SUBSCRIBE refused: {other:?}")),
    }
    // Whatever was published while nobody listened is lost. (At start-up the window
    // is the same as for any write made before this respite started: `ttl-only`
    // bounds it by `l1_ttl`.)
    if resubscribe {
        l1.flush_all();
    }
    state.set_up(true);
    info!(channel = %String::from_utf8_lossy(channel), "listening for invalidations");
    watch_connection(&mut stream, &mut buf, |frame| match frame {
        BytesFrame::Array { data, .. } if is_kind(&data, b"message") => {
            if let Some(BytesFrame::BlobString { data: message, .. }) = data.get(2)
                && let Some((_db, keys)) = decode(message)
            {
                keys.iter().for_each(|k| l1.invalidate_key(k));
                let source = crate::metrics::InvalidationSource::Pattern;
                l1.stats.invalidations.add(source, keys.len() as u64);
            }
            true
        }
        _ => false,
    })
    .await
}

fn is_kind(parts: &[BytesFrame], kind: &[u8]) -> bool {
    matches!(parts.first(), Some(BytesFrame::BlobString { data, .. }) if data.eq_ignore_ascii_case(kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let keys = vec![
            Bytes::from_static(b"a:1"),
            Bytes::from_static(b"bin\r\n\0key"),
            Bytes::new(),
        ];
        let msg = encode(7, &keys);
        assert_eq!(decode(&msg), Some((7, keys)));
        assert_eq!(decode(&encode(0, &[])), Some((0, vec![])));
    }

    #[test]
    fn ignores_other_messages() {
        assert_eq!(decode(&Bytes::from_static(b"hello")), None);
        let other = encode_command(&[Bytes::from_static(b"other"), Bytes::from_static(b"1")]);
        assert_eq!(decode(&other), None);
        let bad_db = encode_command(&[Bytes::from_static(TAG), Bytes::from_static(b"x")]);
        assert_eq!(decode(&bad_db), None);
    }
}
