//! Accept loop: connection limit, back-off on accept errors, graceful shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use arc_swap::ArcSwap;

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tracing::{Instrument, info, info_span, warn};

use crate::{
    config::{Coherence, Config},
    l1::{
        L1,
        tracking::{self, TrackingState},
    },
    policy::Policy,
    session,
    upstream::Upstream,
};

/// What every session shares.
pub struct Shared {
    pub config: Config,
    pub upstream: Arc<Upstream>,
    /// The namespace rules; a reload swaps in a new set whole.
    pub policy: ArcSwap<Policy>,
    /// Present when some namespace has `l1 = true`.
    pub l1: Option<Arc<L1>>,
    /// Present with `coherence = "tracking"` and an L1.
    pub tracking: Option<Arc<TrackingState>>,
    /// Bytes before and after compression, per namespace.
    pub compression: crate::compress::Registry,
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
    let policy = Policy::compile(&config.namespaces).map_err(std::io::Error::other)?;
    upstream.warm_up();
    let (stop_tx, stop_rx) = watch::channel(false);
    let tracked = config.l1.coherence == Coherence::Tracking;
    let l1 = policy
        .has_l1()
        .then(|| L1::new(config.l1.max_memory.as_u64(), !tracked));
    let tracking = l1.as_ref().filter(|_| tracked).map(|l1| {
        tracking::spawn(
            l1.clone(),
            upstream.clone(),
            policy.tracking_prefixes(),
            stop_rx.clone(),
        )
    });
    let shared = Arc::new(Shared {
        config: config.clone(),
        upstream,
        policy: ArcSwap::from_pointee(policy),
        l1,
        tracking,
        compression: Default::default(),
    });
    let limit = Arc::new(Semaphore::new(config.server.max_clients));
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
