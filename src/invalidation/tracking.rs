//! Coherence with Redis: one RESP3 connection with `CLIENT TRACKING ON BCAST` for the
//! literal prefixes of the cached namespaces.
//!
//! BCAST rather than default tracking with REDIRECT: default mode only reports keys
//! the tracking connection itself read, so every fill would have to be read on that
//! one connection (or REDIRECT'ed from every pool connection, re-established on each
//! reconnect). BCAST reports every change under the prefixes, whoever reads, at the
//! cost of messages for keys not in L1, which only bump a counter.
//!
//! The connection is pinged every 500 ms; if a ping goes unanswered or the connection
//! drops, L1 stops being fresh and stops filling until tracking is back.

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use redis_protocol::resp3::{decode::complete::decode_bytes_mut, types::BytesFrame};
use tokio::{io::AsyncReadExt, sync::watch};
use tracing::{info, warn};

use super::LinkState;
use crate::{
    l1::L1,
    metrics::InvalidationSource,
    protocol::request::encode_command,
    upstream::{PoolKey, Stream, Upstream},
};

/// Name of the tracking connection in `CLIENT LIST`.
pub const CLIENT_NAME: &str = "respite-tracking";
/// A lost connection is noticed within two of these.
const PING_EVERY: Duration = Duration::from_millis(500);

/// The prefixes to track: `Some(empty)` when no namespace is cached (no connection
/// then), `None` to track every key. A reload sends new ones.
pub type Prefixes = watch::Receiver<Option<Vec<Bytes>>>;

/// Runs the tracking connection until `stop` changes; a change of `prefixes`
/// re-establishes it with the new set.
pub fn spawn(
    l1: Arc<L1>,
    upstream: Arc<Upstream>,
    mut prefixes: Prefixes,
    mut stop: watch::Receiver<bool>,
) -> Arc<LinkState> {
    let state = Arc::new(LinkState::default());
    if prefixes.borrow().as_ref().is_some_and(Vec::is_empty) {
        // Idle from the start, not "down" until the task first runs.
        state.set_idle(true);
        state.set_up(true);
    }
    let st = state.clone();
    tokio::spawn(async move {
        let key = PoolKey {
            db: 0,
            creds: upstream.credentials_of_url(),
            resp3: true,
        };
        let (min, max) = upstream.backoff();
        let mut backoff = min;
        loop {
            let wanted = prefixes.borrow_and_update().clone();
            if wanted.as_ref().is_some_and(Vec::is_empty) {
                // Nothing cached: nothing to track until a reload caches something.
                st.set_idle(true);
                st.set_up(true);
                tokio::select! {
                    _ = prefixes.changed() => {}
                    _ = stop.changed() => return,
                }
                st.set_idle(false);
                st.set_up(false);
                l1.suspend_fills();
                continue;
            }
            tokio::select! {
                result = track(&l1, &upstream, &key, wanted.as_deref(), &st) => {
                    if st.set_up(false) {
                        backoff = min;
                    }
                    l1.suspend_fills();
                    warn!(error = %result.unwrap_err(), "tracking connection lost: L1 not fresh until it is back");
                }
                _ = prefixes.changed() => {
                    // New namespaces: track their prefixes from now on.
                    st.set_up(false);
                    l1.suspend_fills();
                    info!("cached namespaces changed: re-establishing tracking");
                    continue;
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

/// One tracking connection's life; returns why it ended.
async fn track(
    l1: &L1,
    upstream: &Upstream,
    key: &PoolKey,
    prefixes: Option<&[Bytes]>,
    state: &LinkState,
) -> Result<(), String> {
    let mut stream = upstream.connect_raw(key).await.map_err(|e| e.to_string())?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let setup = setup_commands(prefixes);
    stream.send(&setup).await.map_err(|e| e.to_string())?;
    for _ in 0..2 {
        match next_frame(&mut stream, &mut buf).await? {
            BytesFrame::SimpleString { data, .. } if &data[..] == b"OK" => {}
            other => return Err(format!("tracking setup refused: {other:?}")),
        }
    }
    l1.resume_fills();
    state.set_up(true);
    info!(prefixes = ?prefixes.map(|p| p.len()), "tracking established");
    watch_connection(&mut stream, &mut buf, |frame| match frame {
        BytesFrame::Push { data, .. } => {
            apply(l1, data);
            true
        }
        _ => false,
    })
    .await
}

/// Reads a side connection (tracking, the invalidation channel) until it fails,
/// sending a PING every `PING_EVERY`: a PING unanswered by the next one ends it.
/// `on_message` gets every frame and says whether it was a message (anything else is
/// the reply to a PING).
pub(crate) async fn watch_connection(
    stream: &mut Stream,
    buf: &mut BytesMut,
    mut on_message: impl FnMut(BytesFrame) -> bool,
) -> Result<(), String> {
    let mut ping = tokio::time::interval(PING_EVERY);
    // After a stall, one tick (not a burst that would count the stall as lost pongs).
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut awaiting_pong = false;
    loop {
        tokio::select! {
            // Replies already in are read before the ping timer is looked at: a
            // late-running task must not take its own delay for a lost connection.
            biased;
            frame = next_frame(stream, buf) => {
                if !on_message(frame?) {
                    awaiting_pong = false;
                }
            }
            _ = ping.tick() => {
                if awaiting_pong {
                    return Err(format!("no reply to PING within {PING_EVERY:?}"));
                }
                stream.send(b"*1\r\n$4\r\nPING\r\n").await.map_err(|e| e.to_string())?;
                awaiting_pong = true;
            }
        }
    }
}

fn setup_commands(prefixes: Option<&[Bytes]>) -> BytesMut {
    let mut out = BytesMut::new();
    let b = Bytes::from_static;
    out.extend_from_slice(&encode_command(&[
        b(b"CLIENT"),
        b(b"SETNAME"),
        b(CLIENT_NAME.as_bytes()),
    ]));
    let mut tracking = vec![b(b"CLIENT"), b(b"TRACKING"), b(b"ON"), b(b"BCAST")];
    for p in prefixes.unwrap_or_default() {
        tracking.push(b(b"PREFIX"));
        tracking.push(p.clone());
    }
    out.extend_from_slice(&encode_command(&tracking));
    out
}

/// `invalidate` with a list of keys evicts them; with null (FLUSHALL, FLUSHDB) it
/// flushes everything, since the message does not say which db.
fn apply(l1: &L1, push: Vec<BytesFrame>) {
    let mut parts = push.into_iter();
    match parts.next() {
        Some(BytesFrame::BlobString { data, .. } | BytesFrame::SimpleString { data, .. })
            if data.eq_ignore_ascii_case(b"invalidate") => {}
        _ => return,
    }
    match parts.next() {
        Some(BytesFrame::Array { data, .. }) => {
            let keys = data.len() as u64;
            for k in data {
                if let BytesFrame::BlobString { data, .. } | BytesFrame::SimpleString { data, .. } =
                    k
                {
                    l1.invalidate_key(&data);
                }
            }
            let counted = &l1.stats.invalidations;
            counted.add(InvalidationSource::Tracking, keys);
        }
        _ => {
            l1.flush_all();
            l1.stats.invalidations.add(InvalidationSource::Flush, 1);
        }
    }
}

/// The next RESP frame from a side connection (tracking, the invalidation channel),
/// reading more into `buf` as needed.
pub(crate) async fn next_frame(
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Result<BytesFrame, String> {
    loop {
        if let Some((frame, _, _)) = decode_bytes_mut(buf).map_err(|e| e.to_string())? {
            return Ok(frame);
        }
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed by Redis".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l1::{EntryKey, Lookup};

    fn cached(l1: &L1, key: &'static [u8]) -> EntryKey {
        let ek = EntryKey::new(0, 0, Bytes::from_static(key), Bytes::from_static(b"get"));
        l1.insert(
            ek.clone(),
            l1.snapshot(&ek),
            Bytes::from_static(b"v"),
            Duration::from_secs(60),
            Duration::ZERO,
        );
        ek
    }

    fn blob(s: &'static [u8]) -> BytesFrame {
        BytesFrame::BlobString {
            data: Bytes::from_static(s),
            attributes: None,
        }
    }

    #[test]
    fn invalidate_keys_and_null() {
        let l1 = L1::new(1 << 20, true);
        let a = cached(&l1, b"a");
        let b = cached(&l1, b"b");
        apply(
            &l1,
            vec![
                blob(b"invalidate"),
                BytesFrame::Array {
                    data: vec![blob(b"a")],
                    attributes: None,
                },
            ],
        );
        assert!(matches!(l1.get(&a), Lookup::Miss));
        assert!(matches!(l1.get(&b), Lookup::Hit(_)));
        apply(&l1, vec![blob(b"invalidate"), BytesFrame::Null]);
        assert!(matches!(l1.get(&b), Lookup::Miss));
        let counted = &l1.stats.invalidations;
        assert_eq!(counted.get(InvalidationSource::Tracking), 1);
        assert_eq!(counted.get(InvalidationSource::Flush), 1);
    }

    #[test]
    fn setup_lists_prefixes() {
        let cmds = setup_commands(Some(&[Bytes::from_static(b"quran:")]));
        let text = String::from_utf8_lossy(&cmds);
        assert!(text.contains("BCAST") && text.contains("PREFIX") && text.contains("quran:"));
        assert!(!String::from_utf8_lossy(&setup_commands(None)).contains("PREFIX"));
    }
}
