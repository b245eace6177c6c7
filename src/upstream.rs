//! The Redis side: address, pools of shared pipelined connections keyed by
//! (db, credentials, protocol), dedicated connections for stateful clients.

mod conn;
mod handshake;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use tokio::net::TcpStream;

pub use conn::{Conn, Detached, Job, Reply, ReplyTo};

use crate::{config::UpstreamConfig, metrics::UpstreamStats, protocol::reply};

/// Where Redis is, parsed from `redis://[user:pass@]host:port[/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    pub host: String,
    pub port: u16,
    pub creds: Option<Arc<Credentials>>,
    pub db: u32,
}

impl UpstreamAddr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
        match url.scheme() {
            "redis" => {}
            "rediss" => return Err("TLS upstreams (rediss://) are not supported yet".into()),
            other => return Err(format!("scheme `{other}` is not redis://")),
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{s}` has no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let decode = |p: &str| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        };
        let creds = url.password().map(|pass| {
            Arc::new(Credentials {
                user: Some(decode(url.username())).filter(|u| !u.is_empty()),
                pass: decode(pass),
            })
        });
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            d => d.parse().map_err(|_| format!("`{d}` is not a db number"))?,
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(6379),
            creds,
            db,
        })
    }
}

/// AUTH credentials; `user: None` is Redis's `default` user via `AUTH <password>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    pub user: Option<String>,
    pub pass: String,
}

/// What a connection must be set up as: clients share connections only when these
/// match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PoolKey {
    pub db: u32,
    pub creds: Option<Arc<Credentials>>,
    pub resp3: bool,
}

/// Why a request got no reply from Redis.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unavailable: {0}")]
    Unavailable(Arc<str>),
    #[error("upstream connection lost; the command may or may not have been applied")]
    ConnectionLost,
    #[error("upstream timeout after {0:?}; the command may or may not have been applied")]
    Timeout(Duration),
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    /// Redis refused the connection setup (AUTH, SELECT, HELLO) with this reply.
    #[error("upstream refused the connection: {}", String::from_utf8_lossy(.0).trim_end())]
    Rejected(Bytes),
}

impl UpstreamError {
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::Unavailable(Arc::from(msg.into()))
    }

    /// A short label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::ConnectionLost => "connection_lost",
            Self::Timeout(_) => "timeout",
            Self::Protocol(_) => "protocol",
            Self::Rejected(_) => "rejected",
        }
    }

    /// The reply the client gets instead.
    pub fn to_reply(&self) -> Bytes {
        match self {
            Self::Rejected(frame) => frame.clone(),
            other => reply::error(&other.to_string()),
        }
    }
}

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

pub struct Upstream {
    addr: Arc<UpstreamAddr>,
    config: UpstreamConfig,
    pools: Mutex<HashMap<LoopKey, Arc<Pool>>>,
    idle: Mutex<HashMap<LoopKey, Vec<Conn>>>,
    /// Latency, errors and reconnects of every connection.
    stats: Arc<UpstreamStats>,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            addr: Arc::new(UpstreamAddr::parse(&config.url)?),
            config: config.clone(),
            pools: Mutex::default(),
            idle: Mutex::default(),
            stats: Arc::default(),
        }))
    }

    /// The key a new client starts with: the db and credentials of the URL, RESP2.
    pub fn initial_key(&self) -> PoolKey {
        PoolKey {
            db: self.addr.db,
            creds: self.addr.creds.clone(),
            resp3: false,
        }
    }

    pub fn credentials_of_url(&self) -> Option<Arc<Credentials>> {
        self.addr.creds.clone()
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
    pub async fn pool(&self, key: &PoolKey) -> Result<Arc<Pool>, UpstreamError> {
        if let Some(p) = self.pools.lock().expect("pools").get(&here(key)) {
            return Ok(p.clone());
        }
        let (pool, first) = self.spawn_pool(key);
        first.await.unwrap_or(Err(UpstreamError::ConnectionLost))?;
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
    ) -> (
        Arc<Pool>,
        tokio::sync::oneshot::Receiver<Result<(), UpstreamError>>,
    ) {
        let mut conns = Vec::with_capacity(self.config.pool_size);
        let mut first = None;
        for _ in 0..self.config.pool_size {
            let (conn, ready) = Conn::spawn(self.settings(key, true));
            conns.push(conn);
            first.get_or_insert(ready);
        }
        (Arc::new(Pool { conns }), first.expect("pool_size >= 1"))
    }

    fn settings(&self, key: &PoolKey, reconnect: bool) -> conn::Settings {
        conn::Settings {
            addr: self.addr.clone(),
            key: key.clone(),
            connect_timeout: self.config.connect_timeout,
            min_backoff: self.config.min_backoff,
            max_backoff: self.config.max_backoff,
            reconnect,
            stats: self.stats.clone(),
        }
    }

    pub fn stats(&self) -> &Arc<UpstreamStats> {
        &self.stats
    }

    /// A connection for one client alone (MULTI, WATCH, blocking commands).
    pub async fn dedicated(&self, key: &PoolKey) -> Result<Conn, UpstreamError> {
        while let Some(conn) = self
            .idle
            .lock()
            .expect("idle")
            .get_mut(&here(key))
            .and_then(Vec::pop)
        {
            if conn.is_up() {
                return Ok(conn);
            }
        }
        let (conn, ready) = Conn::spawn(self.settings(key, false));
        ready.await.unwrap_or(Err(UpstreamError::ConnectionLost))?;
        Ok(conn)
    }

    /// Returns a dedicated connection whose state is clean again.
    pub fn release(&self, key: &PoolKey, conn: Conn) {
        if !conn.is_up() {
            return;
        }
        let mut idle = self.idle.lock().expect("idle");
        let list = idle.entry(here(key)).or_default();
        if list.len() < IDLE_PER_KEY {
            list.push(conn);
        }
    }

    /// A raw connection set up for `key`, for clients that stream (pub/sub, MONITOR).
    pub async fn connect_raw(&self, key: &PoolKey) -> Result<TcpStream, UpstreamError> {
        handshake::connect(&self.addr, key, self.config.connect_timeout).await
    }

    /// The reconnect backoff range.
    pub fn backoff(&self) -> (Duration, Duration) {
        (self.config.min_backoff, self.config.max_backoff)
    }

    pub fn request_timeout(&self) -> Duration {
        self.config.request_timeout
    }

    /// True when an initial pool (of any event loop) has a live connection.
    pub fn is_up(&self) -> bool {
        let key = self.initial_key();
        self.pools
            .lock()
            .expect("pools")
            .iter()
            .any(|((_, k), p)| *k == key && p.any_up())
    }

    /// Drops every pool: their tasks end once sessions holding handles are gone.
    pub fn shutdown(&self) {
        self.pools.lock().expect("pools").clear();
        self.idle.lock().expect("idle").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let a = UpstreamAddr::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.db), ("127.0.0.1", 6379, 0));
        assert!(a.creds.is_none());
        let a = UpstreamAddr::parse("redis://app:p%40ss@redis.local/3").unwrap();
        assert_eq!((a.host.as_str(), a.port, a.db), ("redis.local", 6379, 3));
        let c = a.creds.unwrap();
        assert_eq!((c.user.as_deref(), c.pass.as_str()), (Some("app"), "p@ss"));
        let a = UpstreamAddr::parse("redis://:secret@[::1]:7000").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("::1", 7000));
        assert_eq!(a.creds.unwrap().user, None);
    }

    #[test]
    fn refuses_bad_urls() {
        assert!(UpstreamAddr::parse("http://x").is_err());
        assert!(UpstreamAddr::parse("rediss://x").is_err());
        assert!(UpstreamAddr::parse("redis://x/abc").is_err());
        assert!(UpstreamAddr::parse("nonsense").is_err());
    }
}
