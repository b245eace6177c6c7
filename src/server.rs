//! Accept loop: connection limit, back-off on accept errors, graceful shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tracing::{Instrument, info, info_span, warn};

use crate::{config::Config, session, upstream::Upstream};

/// What every session shares.
pub struct Shared {
    pub config: Config,
    pub upstream: Arc<Upstream>,
}

/// Runs the proxy on an already bound listener until `shutdown` completes, then stops
/// accepting, lets connections finish their in-flight requests, and returns once they
/// are closed or `server.shutdown_grace` has passed.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upstream = Upstream::new(&config.upstream).map_err(std::io::Error::other)?;
    let shared = Arc::new(Shared {
        config: config.clone(),
        upstream,
    });
    shared.upstream.warm_up();
    let limit = Arc::new(Semaphore::new(config.server.max_clients));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    info!(listen = %listener.local_addr()?, upstream = %config.upstream.url, "respite listening");

    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tokio::spawn(reject(stream));
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let shared = shared.clone();
                    let stop = stop_rx.clone();
                    let span = info_span!("client", %peer);
                    sessions.spawn(
                        async move {
                            session::serve(shared, stream, stop).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
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
    Ok(())
}

async fn reject(mut stream: TcpStream) {
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = stream.shutdown().await;
}
