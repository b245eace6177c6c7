//! respite itself, run in-process by `respite::run` on its own tokio runtime in a
//! background thread, listening on a free loopback port.

use std::{net::SocketAddr, sync::mpsc, thread::JoinHandle, time::Duration};

use super::client::Client;

/// Setting this to `redis` makes `Proxy::start` hand out the upstream address itself
/// instead of starting respite: a diagnostic to check what real Redis replies to a
/// test, never the way the suite runs.
pub const DIRECT_ENV: &str = "RESPITE_TEST_DIRECT";
/// `[server] threads` of test proxies (default 2, a multi-thread runtime, so
/// sessions and upstream tasks run on different threads; scripts/test also runs the
/// core suites with 1, the current-thread runtime that production uses on 2 CPUs).
pub const THREADS_ENV: &str = "RESPITE_TEST_THREADS";

fn test_threads() -> usize {
    std::env::var(THREADS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

pub struct Proxy {
    addr: SocketAddr,
    config_text: String,
    /// Holds the configuration file of `start_from_file`.
    dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<mpsc::Receiver<std::io::Result<()>>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts respite in front of `redis_url`. `extra_toml` is merged over the base
    /// configuration key by key, so `"[upstream]\nrequest_timeout = \"500ms\""` keeps
    /// the base `[upstream] url`.
    pub fn start(redis_url: &str, extra_toml: &str) -> Proxy {
        Self::start_inner(redis_url, extra_toml, false)
    }

    /// Like `start`, with the configuration in a file the proxy watches and reloads
    /// (see [`Proxy::config_path`]).
    pub fn start_from_file(redis_url: &str, extra_toml: &str) -> Proxy {
        Self::start_inner(redis_url, extra_toml, true)
    }

    fn start_inner(redis_url: &str, extra_toml: &str, from_file: bool) -> Proxy {
        super::init_tracing();
        if std::env::var(DIRECT_ENV).is_ok_and(|v| v == "redis") {
            return Self::direct(redis_url);
        }
        let std_listener = super::ports::bind_loopback();
        let addr = std_listener.local_addr().unwrap();
        let config_text = config_text(addr, redis_url, extra_toml);
        let (config, dir) = if from_file {
            let dir = tempfile::tempdir().expect("config dir");
            let path = dir.path().join("proxy.toml");
            std::fs::write(&path, &config_text).expect("write config");
            let config = respite::Config::load(&path)
                .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{config_text}"));
            (config, Some(dir))
        } else {
            let config = respite::Config::parse(&config_text)
                .unwrap_or_else(|e| panic!("test config does not parse: {e}\n{config_text}"));
            config
                .validate(&config_text)
                .unwrap_or_else(|e| panic!("test config is invalid: {e}\n{config_text}"));
            (config, None)
        };

        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("respite-{}", addr.port()))
            .spawn(move || {
                let rt = respite::server::runtime().expect("proxy runtime");
                let result = rt.block_on(async move {
                    std_listener.set_nonblocking(true)?;
                    let listener = tokio::net::TcpListener::from_std(std_listener)?;
                    respite::run(config, listener, async move {
                        let _ = shutdown_rx.await;
                    })
                    .await
                });
                rt.shutdown_timeout(Duration::from_secs(2));
                let _ = done_tx.send(result);
            })
            .expect("spawn proxy thread");
        Proxy {
            addr,
            config_text,
            dir,
            shutdown: Some(shutdown_tx),
            done: Some(done_rx),
            thread: Some(thread),
        }
    }

    fn direct(redis_url: &str) -> Proxy {
        let hostport = redis_url
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap();
        Proxy {
            addr: hostport.parse().expect("redis url host:port"),
            config_text: String::new(),
            dir: None,
            shutdown: None,
            done: None,
            thread: None,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where the proxy's `/metrics` endpoint listens (`[metrics] listen`, port 0
    /// allowed), as `RESPITE STATS` reports it.
    pub fn metrics_addr(&self) -> SocketAddr {
        let addr = super::l1::stat(&mut self.client(), "metrics_listen");
        addr.parse().expect("metrics_listen is host:port")
    }

    /// The configuration text the proxy was started with.
    pub fn config_text(&self) -> &str {
        &self.config_text
    }

    /// The watched configuration file of a proxy started with `start_from_file`.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir
            .as_ref()
            .expect("started with start_from_file")
            .path()
            .join("proxy.toml")
    }

    /// A new client connection through the proxy.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// True when `run` has already returned (it should only after shutdown).
    pub fn has_exited(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| t.is_finished())
    }

    /// Graceful shutdown: returns what `run` returned, or `Err` if it did not return
    /// within `within`.
    pub fn stop_within(&mut self, within: Duration) -> Result<std::io::Result<()>, String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(done) = self.done.take() else {
            return Ok(Ok(()));
        };
        match done.recv_timeout(within) {
            Ok(result) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                Ok(result)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "respite::run did not return within {within:?} of shutdown"
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err("the proxy thread panicked".to_string())
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Err(e) = self.stop_within(Duration::from_secs(15)) {
            eprintln!("warning: proxy on {}: {e}", self.addr);
        }
    }
}

/// The base configuration with `extra` merged over it, as TOML text.
pub fn config_text(listen: SocketAddr, redis_url: &str, extra: &str) -> String {
    let threads = test_threads();
    let mut base: toml::Table = format!(
        "[server]\nlisten = \"{listen}\"\nshutdown_grace = \"2s\"\nthreads = {threads}\n\n[upstream]\nurl = \"{redis_url}\"\n"
    )
    .parse()
    .unwrap();
    let extra: toml::Table = extra
        .parse()
        .unwrap_or_else(|e| panic!("extra test config is not TOML: {e}\n{extra}"));
    merge(&mut base, extra);
    toml::to_string(&base).unwrap()
}

fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (key, value) in extra {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}
