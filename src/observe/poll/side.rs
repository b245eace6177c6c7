//! The poll's, the sampler's and the ACL check's connection to Redis: opened with the upstream's
//! handshake for the URL's db and credentials (RESP2), named [`CLIENT_NAME`], one
//! exchange at a time, dropped after any failure and reopened by the next call.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::{Bytes, BytesMut};
use redis_protocol::resp3::types::BytesFrame;
use tracing::{info, warn};

use crate::{
    invalidation::tracking::next_frame,
    protocol::request::encode_command,
    upstream::{Stream, Upstream},
};

/// Its name in `CLIENT LIST`.
pub const CLIENT_NAME: &str = "respite-stats";

pub struct Side {
    upstream: Arc<Upstream>,
    link: tokio::sync::Mutex<Option<Link>>,
    /// The last exchange failed (so the next failure is not logged again).
    failing: AtomicBool,
    /// Commands Redis refused, each logged once.
    refused: Mutex<HashSet<String>>,
}

struct Link {
    stream: Stream,
    buf: BytesMut,
}

impl Side {
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            upstream,
            link: tokio::sync::Mutex::default(),
            failing: AtomicBool::new(false),
            refused: Mutex::default(),
        }
    }

    /// Sends `commands` in one pipeline and returns their replies in order (Redis's
    /// error replies among them); None when Redis could not be reached or did not
    /// answer within `[upstream] request_timeout` (logged when it starts failing).
    pub async fn call(&self, commands: &[Vec<Bytes>]) -> Option<Vec<BytesFrame>> {
        let mut link = self.link.lock().await;
        let timeout = self.upstream.request_timeout();
        let result = async {
            if link.is_none() {
                *link = Some(self.open().await?);
            }
            let exchange = link.as_mut().expect("opened").exchange(commands);
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| format!("no answer within {timeout:?}"))?
        }
        .await;
        match result {
            Ok(replies) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    info!("connection for Redis's INFO, namespace sizes and ACL check is back");
                }
                Some(replies)
            }
            Err(error) => {
                *link = None;
                if !self.failing.swap(true, Ordering::Relaxed) {
                    warn!(%error, "connection for Redis's INFO, namespace sizes and ACL check failed; trying again at the next poll");
                }
                None
            }
        }
    }

    /// Logs, once per `command`, that Redis refused it (`reply`: its error).
    pub fn refused(&self, command: &str, reply: &str) {
        if self
            .refused
            .lock()
            .expect("refused")
            .insert(command.to_owned())
        {
            warn!(
                command,
                error = reply,
                "Redis refused a command of respite's own statistics: what it reports is missing from /metrics and RESPITE STATS"
            );
        }
    }

    async fn open(&self) -> Result<Link, String> {
        let key = crate::upstream::PoolKey {
            resp3: false,
            ..self.upstream.initial_key()
        };
        let stream = self
            .upstream
            .connect_raw(&key)
            .await
            .map_err(|e| e.to_string())?;
        let mut link = Link {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        };
        // A refusal (an ACL without CLIENT) leaves the connection unnamed: fine.
        let name = command(&["CLIENT", "SETNAME", CLIENT_NAME]);
        link.exchange(&[name]).await?;
        Ok(link)
    }
}

impl Link {
    async fn exchange(&mut self, commands: &[Vec<Bytes>]) -> Result<Vec<BytesFrame>, String> {
        let mut out = Vec::new();
        for c in commands {
            out.extend_from_slice(&encode_command(c));
        }
        self.stream.send(&out).await.map_err(|e| e.to_string())?;
        let mut replies = Vec::with_capacity(commands.len());
        for _ in commands {
            replies.push(next_frame(&mut self.stream, &mut self.buf).await?);
        }
        Ok(replies)
    }
}

/// A command of text arguments.
pub fn command(args: &[&str]) -> Vec<Bytes> {
    args.iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

/// The text of an error reply.
pub fn error_text(frame: &BytesFrame) -> Option<String> {
    match frame {
        BytesFrame::SimpleError { data, .. } => Some(data.to_string()),
        BytesFrame::BlobError { data, .. } => Some(String::from_utf8_lossy(data).into_owned()),
        _ => None,
    }
}
