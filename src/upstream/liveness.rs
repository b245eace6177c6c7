//! Telling a dead Redis from a busy one.
//!
//! A connection that waits for a reply and hears nothing for `request_timeout` asks
//! here whether Redis is alive: a PING on a new connection. Any answer (PONG, or
//! `-BUSY` while a script runs, `-LOADING`, `-NOAUTH`…) means Redis is there and the
//! connection keeps waiting, as a client connected to Redis directly would; no answer
//! within `liveness_timeout` means it is not, and the requests waiting on that
//! connection fail. So a slow command, a long script or a long pipeline is never cut
//! off while Redis is alive, and a partition or a frozen server is still noticed.
//!
//! (Redis answers nobody while a script runs, until its `busy-reply-threshold`, 5 s by
//! default; `liveness_timeout` must be longer. The kernel notices a peer that stops
//! acknowledging data sooner: connections set `TCP_USER_TIMEOUT` to `request_timeout`.)
//!
//! One check runs at a time per upstream, whoever asked, and a recent answer is
//! reused, so a thousand idle blocked clients cost one PING per `request_timeout`.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use tokio::{io::AsyncReadExt, sync::watch};

use super::endpoint::Endpoint;
use crate::protocol::reply::ReplyScanner;

pub struct Liveness {
    /// Where Redis is; a `rediss://` one is checked over TLS like every connection.
    endpoint: Arc<Endpoint>,
    /// How long a check may take.
    timeout: Duration,
    /// A check answered at this instant: reused for `fresh`.
    last_alive: Mutex<Option<Instant>>,
    fresh: Duration,
    /// The check in flight, if any: its result once known.
    running: Mutex<Option<watch::Receiver<Option<bool>>>>,
}

impl Liveness {
    pub fn new(endpoint: Arc<Endpoint>, timeout: Duration, fresh: Duration) -> Self {
        Self {
            endpoint,
            timeout,
            last_alive: Mutex::default(),
            fresh,
            running: Mutex::default(),
        }
    }

    /// True if Redis answers (or answered a moment ago).
    pub async fn alive(self: &Arc<Self>) -> bool {
        let recent = *self.last_alive.lock().expect("liveness");
        if recent.is_some_and(|t| t.elapsed() < self.fresh) {
            return true;
        }
        let mut result = self.running_check();
        match result.wait_for(Option::is_some).await {
            Ok(v) => v.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// The check in flight, or a new one.
    fn running_check(self: &Arc<Self>) -> watch::Receiver<Option<bool>> {
        let mut running = self.running.lock().expect("liveness");
        if let Some(rx) = running.as_ref().filter(|rx| rx.borrow().is_none()) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        *running = Some(rx.clone());
        let this = self.clone();
        tokio::spawn(async move {
            let alive = tokio::time::timeout(this.timeout, ping(&this.endpoint))
                .await
                .unwrap_or(false);
            if alive {
                *this.last_alive.lock().expect("liveness") = Some(Instant::now());
            }
            let _ = tx.send(Some(alive));
        });
        rx
    }
}

/// Connects and sends PING: true once any complete reply arrives.
async fn ping(endpoint: &Endpoint) -> bool {
    let Ok(mut stream) = endpoint.open().await else {
        return false;
    };
    if stream.send(b"*1\r\n$4\r\nPING\r\n").await.is_err() {
        return false;
    }
    let mut buf = BytesMut::with_capacity(256);
    let mut scanner = ReplyScanner::default();
    loop {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        match scanner.scan(&buf) {
            Ok(Some(_)) => return true,
            Ok(None) => {}
            Err(_) => return false,
        }
    }
}
