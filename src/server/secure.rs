//! The TLS listener on `tls_listen`: bound at start with the certificates read then,
//! kept in a [`tls::Live`] that a reload replaces; each client's handshake runs in its
//! session task, within `tls_handshake_timeout`, with the configuration current when
//! it was accepted.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tracing::debug;

use crate::{config::ServerConfig, metrics::Metrics, tls};

/// The bound TLS listener and its current configuration.
pub struct Listener {
    pub socket: TcpListener,
    pub live: tls::Live,
    pub addr: SocketAddr,
    deadline: Duration,
}

impl Listener {
    /// Reads the certificates and binds `tls_listen`, if it is set.
    pub async fn bind(server: &ServerConfig) -> io::Result<Option<Listener>> {
        let (Some(addr), Some(config)) = (&server.tls_listen, certificates(server)?) else {
            return Ok(None);
        };
        let socket = TcpListener::bind(addr).await.map_err(|e| {
            io::Error::new(e.kind(), format!("binding server.tls_listen {addr}: {e}"))
        })?;
        Ok(Some(Listener {
            addr: socket.local_addr()?,
            socket,
            live: Arc::new(ArcSwap::new(config)),
            deadline: server.tls_handshake_timeout,
        }))
    }

    /// The handshake a client accepted now will run.
    pub fn handshake(&self) -> Handshake {
        Handshake {
            acceptor: TlsAcceptor::from(self.live.load_full()),
            deadline: self.deadline,
        }
    }
}

fn certificates(server: &ServerConfig) -> io::Result<Option<Arc<rustls::ServerConfig>>> {
    tls::listener(server).map_err(|e| io::Error::other(format!("server TLS: {e}")))
}

/// One client's TLS handshake, still to run.
pub struct Handshake {
    acceptor: TlsAcceptor,
    deadline: Duration,
}

impl Handshake {
    /// The client's TLS stream, or `None` (counted, logged at debug) if the handshake
    /// failed, took longer than its deadline, or the proxy began to stop meanwhile.
    pub async fn run(
        self,
        stream: TcpStream,
        metrics: &Metrics,
        mut stop: watch::Receiver<bool>,
    ) -> Option<TlsStream<TcpStream>> {
        let handshake = tokio::time::timeout(self.deadline, self.acceptor.accept(stream));
        let failure = tokio::select! {
            done = handshake => match done {
                Ok(Ok(stream)) => return Some(stream),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no handshake within {:?}", self.deadline),
            },
            _ = stop.wait_for(|stopping| *stopping) => return None,
        };
        metrics.clients.tls_failed();
        debug!(error = %failure, "TLS handshake failed; connection closed");
        None
    }
}
