//! The Redis side: address and TLS ([`endpoint`]), pools of shared pipelined
//! connections keyed by (db, credentials, protocol), dedicated connections for
//! stateful clients, and telling a dead Redis from a busy one ([`liveness`]).

mod conn;
pub mod endpoint;
pub mod expect;
mod handshake;
mod key;
pub mod liveness;
mod settings;
mod stream;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

pub use conn::{Conn, EVENT_BACKLOG, Event, Reply, ReplyTo};
pub use endpoint::Endpoint;
pub use key::PoolKey;
pub use settings::OnRefused;
pub use stream::Stream;

pub use crate::config::{Credentials, UpstreamAddr};
use crate::{config::UpstreamConfig, error::Error, metrics::UpstreamStats};

/// Shared connections for one [`PoolKey`]; a client sticks to one of them.
pub struct Pool {
    conns: Vec<Conn>,
}

impl Pool {
    pub fn conn(&self, client_id: u64) -> &Conn {
        &self.conns[(client_id % self.conns.len() as u64) as usize]
    }

    pub fn any_up(&self) -> bool {
        self.conns.iter().any(Conn::is_up)
    }
}

/// Idle dedicated connections kept per key for reuse by the next MULTI or BLPOP.
const IDLE_PER_KEY: usize = 16;

thread_local! {
    /// The event loop this thread runs (0: the main runtime; see `server::workers`).
    static EVENT_LOOP: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the calling thread as running event loop `n`: the connections it opens from
/// now on belong to that loop's pools.
pub fn set_event_loop(n: usize) {
    EVENT_LOOP.with(|l| l.set(n));
}

/// Pools and idle connections are per event loop: a connection's task runs on the
/// loop that opened it, so the clients of that loop use it without waking another
/// thread.
type LoopKey = (usize, PoolKey);

fn here(key: &PoolKey) -> LoopKey {
    (EVENT_LOOP.with(|l| l.get()), key.clone())
}

/// A connection for one client alone, and the events it delivers (replies to
/// requests sent with [`ReplyTo::Event`], and out-of-band frames, in Redis's order).
pub struct Dedicated {
    pub conn: Conn,
    pub events: tokio::sync::mpsc::Receiver<Event>,
}

pub struct Upstream {
    endpoint: Arc<Endpoint>,
    liveness: Arc<liveness::Liveness>,
    config: UpstreamConfig,
    pools: Mutex<HashMap<LoopKey, Arc<Pool>>>,
    idle: Mutex<HashMap<LoopKey, Vec<Dedicated>>>,
    /// Latency, errors and reconnects of every connection.
    stats: Arc<UpstreamStats>,
    on_refused: std::sync::OnceLock<OnRefused>,
}

impl Upstream {
    /// From `[upstream]`; for `rediss://`, reads the certificate files (an error names
    /// the file).
    pub fn new(config: &UpstreamConfig) -> Result<Arc<Self>, String> {
        let endpoint = Arc::new(Endpoint::new(config)?);
        let liveness = liveness::Liveness::new(
            endpoint.clone(),
            config.liveness_timeout,
            config.request_timeout,
        );
        Ok(Arc::new(Self {
            liveness: Arc::new(liveness),
            endpoint,
            config: config.clone(),
            pools: Mutex::default(),
            idle: Mutex::default(),
            stats: Arc::default(),
            on_refused: std::sync::OnceLock::new(),
        }))
    }

    /// The key a new client starts with: the db and credentials of the URL, RESP2.
    pub fn initial_key(&self) -> PoolKey {
        PoolKey {
            db: self.endpoint.addr.db,
            creds: self.endpoint.addr.creds.clone(),
            resp3: false,
        }
    }

    pub fn credentials_of_url(&self) -> Option<Arc<Credentials>> {
        self.endpoint.addr.creds.clone()
    }

    /// Where Redis is and how connections to it are opened (a reload installs new
    /// TLS settings there).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whom to tell when Redis refuses to set up again a pool connection that was up
    /// (a failed re-AUTH: the user's ACL changed). Set once, before clients connect.
    pub fn on_refused(&self, hook: OnRefused) {
        let _ = self.on_refused.set(hook);
    }

    /// Starts this event loop's initial pool so the first client finds it connected.
    pub fn warm_up(&self) {
        self.initial_pool();
    }

    /// This event loop's initial pool, without waiting.
    pub fn initial_pool(&self) -> Arc<Pool> {
        let key = self.initial_key();
        if let Some(p) = self.pools.lock().expect("pools").get(&here(&key)) {
            return p.clone();
        }
        let pool = self.spawn_pool(&key).0;
        self.pools
            .lock()
            .expect("pools")
            .entry(here(&key))
            .or_insert(pool)
            .clone()
    }

    /// The pool for `key`, created on first use. Creating one checks the key with Redis
    /// (AUTH, SELECT, HELLO) and returns Redis's refusal if it refuses.
    pub async fn pool(&self, key: &PoolKey) -> Result<Arc<Pool>, Error> {
        if let Some(p) = self.pools.lock().expect("pools").get(&here(key)) {
            return Ok(p.clone());
        }
        let (pool, first) = self.spawn_pool(key);
        first.await.unwrap_or(Err(Error::ConnectionLost))?;
        Ok(self
            .pools
            .lock()
            .expect("pools")
            .entry(here(key))
            .or_insert(pool)
            .clone())
    }

    fn spawn_pool(
        &self,
        key: &PoolKey,
    ) -> (Arc<Pool>, tokio::sync::oneshot::Receiver<Result<(), Error>>) {
        let mut conns = Vec::with_capacity(self.config.pool_size);
        let mut first = None;
        for _ in 0..self.config.pool_size {
            let (conn, ready) = Conn::spawn(self.settings(key, true), None);
            conns.push(conn);
            first.get_or_insert(ready);
        }
        (Arc::new(Pool { conns }), first.expect("pool_size >= 1"))
    }

    fn settings(&self, key: &PoolKey, reconnect: bool) -> settings::Settings {
        settings::Settings {
            endpoint: self.endpoint.clone(),
            key: key.clone(),
            connect_timeout: self.config.connect_timeout,
            request_timeout: self.config.request_timeout,
            min_backoff: self.config.min_backoff,
            max_backoff: self.config.max_backoff,
            reconnect,
            stats: self.stats.clone(),
            liveness: self.liveness.clone(),
            on_refused: self.on_refused.get().cloned(),
        }
    }

    pub fn stats(&self) -> &Arc<UpstreamStats> {
        &self.stats
    }

    /// A connection for one client alone (MULTI, WATCH, blocking commands,
    /// subscriptions…): an idle one of this loop, or a new one.
    pub async fn dedicated(&self, key: &PoolKey) -> Result<Dedicated, Error> {
        while let Some(d) = self
            .idle
            .lock()
            .expect("idle")
            .get_mut(&here(key))
            .and_then(Vec::pop)
        {
            if d.conn.is_up() {
                return Ok(d);
            }
        }
        let (tx, events) = tokio::sync::mpsc::channel(EVENT_BACKLOG);
        let (conn, ready) = Conn::spawn(self.settings(key, false), Some(tx));
        ready.await.unwrap_or(Err(Error::ConnectionLost))?;
        Ok(Dedicated { conn, events })
    }

    /// Takes back a dedicated connection whose state is that of a new one for `key`
    /// (and which has no reply outstanding).
    pub fn release(&self, key: &PoolKey, d: Dedicated) {
        if !d.conn.is_up() {
            return;
        }
        let mut idle = self.idle.lock().expect("idle");
        let list = idle.entry(here(key)).or_default();
        if list.len() < IDLE_PER_KEY {
            list.push(d);
        }
    }

    /// A raw connection set up for `key`, for side connections that read the socket
    /// themselves (tracking, the invalidation listener).
    pub async fn connect_raw(&self, key: &PoolKey) -> Result<Stream, Error> {
        handshake::connect_raw(&self.endpoint, key, self.config.connect_timeout).await
    }

    /// The reconnect backoff range.
    pub fn backoff(&self) -> (Duration, Duration) {
        (self.config.min_backoff, self.config.max_backoff)
    }

    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// True when the initial pool of every event loop has a live connection (so a new
    /// client is served whichever loop it lands on).
    pub fn is_up(&self) -> bool {
        let key = self.initial_key();
        let pools = self.pools.lock().expect("pools");
        let mut initial = pools.iter().filter(|((_, k), _)| *k == key).peekable();
        initial.peek().is_some() && initial.all(|(_, p)| p.any_up())
    }

    /// Drops every pool: their tasks end once sessions holding handles are gone.
    pub fn shutdown(&self) {
        self.pools.lock().expect("pools").clear();
        self.idle.lock().expect("idle").clear();
    }
}
