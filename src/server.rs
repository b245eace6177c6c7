//! Accept loop: connection limits (`max_clients`, `max_clients_per_ip`), back-off on
//! accept errors, graceful shutdown; clients handed to event loops ([`workers`]); the
//! idle-client sweep of `[server] timeout`. Plain clients on `listen` and TLS clients
//! on `tls_listen` are accepted by the same loop; a TLS client's handshake runs in its
//! own task, bounded by `tls_handshake_timeout` ([`secure`]).

mod context;
mod per_ip;
mod secure;
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
    let tls = secure::Listener::bind(&config.server).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tls_parts = tls.as_ref().map(|t| context::TlsParts {
        addr: t.addr,
        live: t.live.clone(),
    });
    let built = context::build(config.clone(), policy, tls_parts, &stop_rx)
        .map_err(std::io::Error::other)?;
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
        tls,
        backoff: FIRST_BACKOFF,
    };
    info!(listen = %listener.local_addr()?, tls_listen = ?acceptor.tls.as_ref().map(|t| t.addr), upstream = %crate::config::redact(&config.upstream.url), "respite listening");

    acceptor.accept_until(&listener, shutdown).await;
    drop(listener);
    drop(acceptor.tls.take());
    let _ = stop_tx.send(true);
    drain(&mut acceptor.sessions, config.server.shutdown_grace).await;
    upstream.shutdown();
    acceptor.workers.stop().await;
    if let Some(endpoint) = endpoint {
        endpoint.close().await;
    }
    Ok(())
}

/// The first pause after a failed accept; it doubles up to a second.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);

/// Accepts on `listener`, if there is one (else never returns).
async fn accept_on(
    listener: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
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
    /// The TLS listener, if `tls_listen` is set.
    tls: Option<secure::Listener>,
    /// The pause after the next failed accept.
    backoff: Duration,
}

impl Acceptor {
    /// Accepts clients on `listener` and the TLS listener until `shutdown` completes.
    async fn accept_until(&mut self, listener: &TcpListener, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let tls_socket = self.tls.as_ref().map(|t| &t.socket);
            tokio::select! {
                () = &mut shutdown => return,
                accepted = listener.accept() => self.accepted(accepted, false).await,
                accepted = accept_on(tls_socket) => self.accepted(accepted, true).await,
                Some(_) = self.sessions.join_next(), if !self.sessions.is_empty() => {}
            }
        }
    }

    /// Admits an accepted client (`tls`: from the TLS listener), or backs off after a
    /// failed accept (out of file descriptors and the like) instead of spinning.
    async fn accepted(
        &mut self,
        accepted: std::io::Result<(TcpStream, std::net::SocketAddr)>,
        tls: bool,
    ) {
        match accepted {
            Ok((stream, peer)) => {
                self.backoff = FIRST_BACKOFF;
                let handshake = self.tls.as_ref().filter(|_| tls).map(|t| t.handshake());
                self.admit(stream, peer, handshake);
            }
            Err(e) => {
                warn!(error = %e, tls, "accept failed");
                tokio::time::sleep(self.backoff).await;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
            }
        }
    }

    fn admit(
        &mut self,
        stream: TcpStream,
        peer: std::net::SocketAddr,
        tls: Option<secure::Handshake>,
    ) {
        let permit = self.limit.clone().try_acquire_owned().ok();
        let from_ip = match &self.per_ip {
            Some(per_ip) => per_ip.admit(peer.ip()).map(Some),
            None => Some(None),
        };
        let (Some(permit), Some(from_ip)) = (permit, from_ip) else {
            self.ctx.metrics.clients.reject();
            // A TLS client could not read a plain error: it is just closed.
            if tls.is_none() {
                tokio::spawn(reject(stream));
            }
            return;
        };
        let _ = stream.set_nodelay(true);
        let (ctx, stop) = (self.ctx.clone(), self.stop.clone());
        let span = info_span!("client", %peer);
        let held = (ctx.metrics.clients.connect(), permit, from_ip);
        match self.workers.next() {
            None => {
                let task = client(ctx, Accepted::Here(stream), tls, stop, held);
                self.sessions.spawn(task.instrument(span));
            }
            // Registered with this runtime's reactor: moved to the worker's.
            Some(worker) => {
                if let Ok(s) = stream.into_std() {
                    let task = client(ctx, Accepted::Moved(s), tls, stop, held);
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

/// Serves one client, after its TLS handshake if `tls`; `held` (its connection count
/// and `max_clients` permit) is released when it is gone.
async fn client(
    ctx: Arc<session::Context>,
    stream: Accepted,
    tls: Option<secure::Handshake>,
    stop: watch::Receiver<bool>,
    held: impl Send,
) {
    let stream = match stream {
        Accepted::Here(s) => Ok(s),
        Accepted::Moved(s) => TcpStream::from_std(s),
    };
    let Ok(stream) = stream else { return };
    let peer = session::Peer::of(&stream);
    match tls {
        None => session::serve(ctx, stream, peer, stop).await,
        Some(handshake) => {
            if let Some(stream) = handshake.run(stream, &ctx.metrics, stop.clone()).await {
                session::serve(ctx, stream, peer, stop).await;
            }
        }
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
