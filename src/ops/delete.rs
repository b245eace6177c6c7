//! `RESPITE DELPATTERN <glob>`: SCAN every master with MATCH, UNLINK what it finds in
//! batches, and make sure no L1 keeps serving a deleted key.
//!
//! Memory stays bounded by one batch of keys. Each batch is followed by a pause
//! (`[admin] pause`) so Redis keeps answering other clients promptly.
//!
//! L1 invalidation, per batch:
//! - here: every key's generation moves before UNLINK is sent and again once Redis
//!   acknowledged it (as for any write through the proxy), so a fill in flight cannot
//!   store the old value;
//! - other respites with tracking: Redis's tracking reports the UNLINKs to them;
//! - other respites with `coherence = "ttl-only"`: the deleted keys are PUBLISHed on
//!   the invalidation channel, pipelined right after the UNLINK on the same
//!   connection (so the message leaves only once the keys are gone).
//!
//! The masters come as a list of connections: standalone Redis is a list of one; a
//! cluster upstream supplies its masters. (Keys of one SCAN page may then hash to
//! different slots: a cluster UNLINK must group a batch by slot.)

use std::{sync::atomic::Ordering, time::Duration};

use bytes::Bytes;

use super::{OpError, Progress, scan};
use crate::invalidation::broadcast;
use crate::{l1::L1, protocol::request::encode_command, upstream::Conn};

/// What to delete, and how.
pub struct DeleteJob {
    pub pattern: Bytes,
    /// Keys per SCAN page (its COUNT) and per UNLINK.
    pub batch: usize,
    pub pause: Duration,
    /// The db the masters' connections are on (sent along with the keys).
    pub db: u32,
    /// Where deleted keys are announced; None: not announced.
    pub channel: Option<Bytes>,
}

/// Deletes every key matching the pattern on every master; returns how many Redis
/// deleted. Stopping early (an error, or the future dropped) leaves deleted keys
/// deleted and invalidated.
pub async fn delete_pattern(
    masters: &[Conn],
    job: &DeleteJob,
    l1: &L1,
    progress: &Progress,
) -> Result<u64, OpError> {
    let mut deleted = 0;
    for (i, conn) in masters.iter().enumerate() {
        let mut cursor = 0;
        let mut batch: Vec<Bytes> = Vec::with_capacity(job.batch);
        loop {
            let page = scan::page(conn, cursor, &job.pattern, job.batch).await?;
            progress
                .matched
                .fetch_add(page.keys.len() as u64, Ordering::Relaxed);
            cursor = page.cursor;
            batch.extend(page.keys);
            while batch.len() >= job.batch || (cursor == 0 && !batch.is_empty()) {
                let rest = batch.split_off(batch.len().min(job.batch));
                deleted += unlink(conn, job, l1, &batch).await?;
                progress.done.store(deleted, Ordering::Relaxed);
                batch = rest;
                if !job.pause.is_zero() {
                    tokio::time::sleep(job.pause).await;
                }
            }
            let node_done = scan::fraction_done(cursor);
            progress.set_fraction((i as f64 + node_done) / masters.len() as f64);
            if cursor == 0 {
                break;
            }
        }
    }
    // Reclaim the memory of the entries just made unservable.
    l1.remove_where(|_, _| false);
    Ok(deleted)
}

/// UNLINKs one batch (and announces it); returns how many keys Redis deleted.
async fn unlink(conn: &Conn, job: &DeleteJob, l1: &L1, keys: &[Bytes]) -> Result<u64, OpError> {
    let invalidate = || keys.iter().for_each(|k| l1.invalidate_key(k));
    let mut args = Vec::with_capacity(keys.len() + 1);
    args.push(Bytes::from_static(b"UNLINK"));
    args.extend(keys.iter().cloned());
    let mut cmd = encode_command(&args).to_vec();
    let mut frames = 1;
    if let Some(channel) = &job.channel {
        cmd.extend_from_slice(&encode_command(&[
            Bytes::from_static(b"PUBLISH"),
            channel.clone(),
            broadcast::encode(job.db, keys),
        ]));
        frames = 2;
    }
    invalidate();
    let reply = scan::request(conn, Bytes::from(cmd), frames).await;
    invalidate(); // also when the reply was lost: the keys may be gone
    let source = crate::metrics::InvalidationSource::Pattern;
    l1.stats.invalidations.add(source, keys.len() as u64);
    let reply = reply?;
    let first = crate::protocol::reply::split_frames(&reply)
        .next()
        .unwrap_or_default();
    crate::protocol::reply::integer_value(&first)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| OpError::Unexpected(format!("UNLINK replied {first:?}")))
}
