//! Accept loop: connection limits (`max_clients`, `max_clients_per_ip`), back-off on
//! accept errors, graceful shutdown; clients handed to event loops ([`workers`]); the
//! idle-client sweep of `[server] timeout`.

mod context;
mod per_ip;
mod workers;

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tracing::{Instrument, info, info_span, warn};

use crate::{config::Config, observe::http, policy::Policy, session};

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
    policy: Policy,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics_listener = http::bind(&config.metrics).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let built = context::build(config.clone(), policy, &stop_rx).map_err(std::io::Error::other)?;
    let endpoint = metrics_listener
        .map(|l| {
            let status = built.status.clone();
            http::Endpoint::start(l, status, &config.metrics, stop_rx.clone())
        })
        .transpose()?;
    let upstream = built.upstream;
    let limits = &config.server;
    if !limits.timeout.is_zero() {
        let clients = built.session.clients.clone();
        tokio::spawn(sweep_idle(clients, limits.timeout, stop_rx.clone()));
    }
    let mut acceptor = Acceptor {
        workers: workers::Workers::start(limits.event_loops(), &upstream)?,
        ctx: built.session,
        limit: Arc::new(Semaphore::new(limits.max_clients)),
        per_ip: (limits.max_clients_per_ip > 0)
            .then(|| per_ip::PerIp::new(limits.max_clients_per_ip)),
        stop: stop_rx,
        sessions: JoinSet::new(),
    };
    info!(listen = %listener.local_addr()?, upstream = %crate::config::redact(&config.upstream.url), "respite listening");

    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    acceptor.admit(stream, peer);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            },
            Some(_) = acceptor.sessions.join_next(), if !acceptor.sessions.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drain(&mut acceptor.sessions, config.server.shutdown_grace).await;
    upstream.shutdown();
    acceptor.workers.stop().await;
    if let Some(endpoint) = endpoint {
        endpoint.close().await;
    }
    Ok(())
}

/// Hands accepted clients to a session task on an event loop, within `max_clients`
/// and `max_clients_per_ip`.
struct Acceptor {
    ctx: Arc<session::Context>,
    workers: workers::Workers,
    limit: Arc<Semaphore>,
    per_ip: Option<per_ip::PerIp>,
    stop: watch::Receiver<bool>,
    sessions: JoinSet<()>,
}

impl Acceptor {
    fn admit(&mut self, stream: TcpStream, peer: std::net::SocketAddr) {
        let permit = self.limit.clone().try_acquire_owned().ok();
        let from_ip = match &self.per_ip {
            Some(per_ip) => per_ip.admit(peer.ip()).map(Some),
            None => Some(None),
        };
        let (Some(permit), Some(from_ip)) = (permit, from_ip) else {
            self.ctx.metrics.clients.reject();
            tokio::spawn(reject(stream));
            return;
        };
        let _ = stream.set_nodelay(true);
        let (ctx, stop) = (self.ctx.clone(), self.stop.clone());
        let span = info_span!("client", %peer);
        let held = (ctx.metrics.clients.connect(), permit, from_ip);
        match self.workers.next() {
            None => {
                let task = client(ctx, Accepted::Here(stream), stop, held);
                self.sessions.spawn(task.instrument(span));
            }
            // Registered with this runtime's reactor: moved to the worker's.
            Some(worker) => {
                if let Ok(s) = stream.into_std() {
                    let task = client(ctx, Accepted::Moved(s), stop, held);
                    self.sessions.spawn_on(task.instrument(span), worker);
                }
            }
        }
    }
}

/// Lets the sessions finish what they were sent, for at most `grace`.
async fn drain(sessions: &mut JoinSet<()>, grace: Duration) {
    info!(
        connections = sessions.len(),
        "shutting down: draining connections"
    );
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
    ctx: Arc<session::Context>,
    stream: Accepted,
    stop: watch::Receiver<bool>,
    held: impl Send,
) {
    let stream = match stream {
        Accepted::Here(s) => Ok(s),
        Accepted::Moved(s) => TcpStream::from_std(s),
    };
    if let Ok(stream) = stream {
        session::serve(ctx, stream, stop).await;
    }
    drop(held);
}

/// `[server] timeout`: once a second, the clients idle longer are asked to close (see
/// `session::Clients::nudge_idle`), until the proxy stops.
async fn sweep_idle(
    clients: Arc<session::Clients>,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                clients.nudge_idle(timeout, std::time::Instant::now());
            }
            _ = stop.changed() => return,
        }
    }
}

async fn reject(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.shutdown().await;
}
