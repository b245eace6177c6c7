//! Accept loop: connection limit, back-off on accept errors, graceful shutdown; clients
//! handed to event loops ([`workers`]).

mod workers;

use std::{
    future::Future,
    sync::{Arc, atomic::AtomicUsize},
    time::Duration,
};

use arc_swap::ArcSwap;
use bytes::Bytes;

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tracing::{Instrument, info, info_span, warn};

use crate::{
    admin::{self, AdminState},
    config::{Coherence, Config},
    l1::{
        L1,
        tracking::{self, TrackingState},
    },
    metrics::{self, Metrics},
    policy::Policy,
    reload, session,
    upstream::Upstream,
};

/// What every session shares.
pub struct Shared {
    pub config: Config,
    pub upstream: Arc<Upstream>,
    /// The namespace rules; a reload swaps in a new set whole.
    pub policy: ArcSwap<Policy>,
    /// The L1 cache (always present: which namespaces use it can change on reload).
    pub l1: Arc<L1>,
    /// Present with `coherence = "tracking"`.
    pub tracking: Option<Arc<TrackingState>>,
    /// What the tracking connection tracks; a reload sends the new namespaces' set.
    pub prefixes: watch::Sender<Option<Vec<Bytes>>>,
    /// Reloads of the configuration file: serialized, and counted.
    pub reloads: reload::Reloads,
    /// Namespaces whose start-up warming (`warm = true`) is still running: while it is
    /// not 0, readiness says "warming".
    pub warming: AtomicUsize,
    /// What the admin commands share: running operations, uptime.
    pub admin: Arc<AdminState>,
    /// This instance's counters (see `metrics.rs`; readiness in `metrics/health.rs`).
    pub metrics: Arc<Metrics>,
}

/// The runtime to call [`run`] on: a current-thread one. It accepts clients and runs
/// the background tasks (tracking, reload, metrics, admin); with `threads = 1` it also
/// runs every session, and with more [`run`] starts that many event loops for them.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs the proxy on an already bound listener until `shutdown` completes, then stops
/// accepting, lets connections finish their in-flight requests, and returns once they
/// are closed or `server.shutdown_grace` has passed.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let policy = Policy::from_config(&config).map_err(std::io::Error::other)?;
    run_with(config, policy, listener, shutdown).await
}

/// [`run`] with the configuration's rules already compiled.
pub async fn run_with(
    config: Config,
    mut policy: Policy,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics_listener = metrics::http::bind(&config.metrics).await?;
    let metrics = Arc::new(Metrics::new(&config));
    let upstream = Upstream::new(&config.upstream).map_err(std::io::Error::other)?;
    policy.attach_stats(&metrics.namespaces);
    upstream.warm_up();
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracked = config.l1.coherence == Coherence::Tracking;
    // Always there, even with no cached namespace yet: a reload may add one.
    let l1 = L1::with_namespaces(
        config.l1.max_memory.as_u64(),
        !tracked,
        metrics.namespaces.clone(),
    );
    let (prefixes, prefixes_rx) = watch::channel(policy.tracking_prefixes());
    let tracking = tracked
        .then(|| tracking::spawn(l1.clone(), upstream.clone(), prefixes_rx, stop_rx.clone()));
    let shared = Arc::new(Shared {
        config: config.clone(),
        upstream,
        policy: ArcSwap::from_pointee(policy),
        l1,
        tracking,
        prefixes,
        reloads: reload::Reloads::default(),
        warming: AtomicUsize::new(0),
        admin: Arc::default(),
        metrics,
    });
    if shared.config.source.is_some() {
        reload::spawn_watchers(shared.clone(), stop_rx.clone());
    }
    admin::start(&shared, stop_rx.clone());
    let endpoint = metrics_listener
        .map(|l| metrics::http::Endpoint::start(l, shared.clone(), stop_rx.clone()))
        .transpose()?;
    let mut workers = workers::Workers::start(config.server.event_loops(), &shared.upstream)?;
    let limit = Arc::new(Semaphore::new(config.server.max_clients));
    let mut sessions = JoinSet::new();
    info!(listen = %listener.local_addr()?, upstream = %crate::config::redact(&config.upstream.url), "respite listening");

    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        shared.metrics.clients.reject();
                        tokio::spawn(reject(stream));
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let stop = stop_rx.clone();
                    let span = info_span!("client", %peer);
                    let held = (shared.metrics.clients.connect(), permit);
                    match workers.next() {
                        None => sessions.spawn(
                            client(shared, Accepted::Here(stream), stop, held).instrument(span),
                        ),
                        // Registered with this runtime's reactor: moved to the worker's.
                        Some(worker) => match stream.into_std() {
                            Ok(s) => sessions.spawn_on(
                                client(shared, Accepted::Moved(s), stop, held).instrument(span),
                                worker,
                            ),
                            Err(_) => continue,
                        },
                    };
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    info!(
        connections = sessions.len(),
        "shutting down: draining connections"
    );
    let _ = stop_tx.send(true);
    let grace = config.server.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            remaining = sessions.len(),
            "grace period over: closing remaining connections"
        );
        sessions.shutdown().await;
    }
    shared.upstream.shutdown();
    workers.stop().await;
    if let Some(endpoint) = endpoint {
        endpoint.close().await;
    }
    Ok(())
}

/// An accepted client socket, registered with the runtime that accepted it or not yet
/// with any (handed to a worker's event loop).
enum Accepted {
    Here(TcpStream),
    Moved(std::net::TcpStream),
}

/// Serves one client; `held` (its connection count and `max_clients` permit) is
/// released when it is gone.
async fn client(
    shared: Arc<Shared>,
    stream: Accepted,
    stop: watch::Receiver<bool>,
    held: impl Send,
) {
    let stream = match stream {
        Accepted::Here(s) => Ok(s),
        Accepted::Moved(s) => TcpStream::from_std(s),
    };
    if let Ok(stream) = stream {
        session::serve(shared, stream, stop).await;
    }
    drop(held);
}

async fn reject(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.shutdown().await;
}
