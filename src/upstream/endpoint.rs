//! Where Redis is and how a connection to it is opened: the address, and for a
//! `rediss://` URL the TLS settings every connection is opened with (pooled and
//! dedicated ones, the liveness check, tracking, the invalidation listener, the poll).
//!
//! A reload replaces the TLS settings (certificates re-read): connections opened
//! after it use the new ones, open connections keep theirs.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::stream::Stream;
use crate::{
    config::{UpstreamAddr, UpstreamConfig},
    error::Error,
    tls::{self, TlsError},
};

pub struct Endpoint {
    pub addr: UpstreamAddr,
    /// `rediss://` only.
    tls: Option<ArcSwap<Tls>>,
}

/// What a TLS connection is opened with: the rustls configuration (CA, client
/// certificate) and the name Redis's certificate must carry.
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// Reads `[upstream]`'s certificate files; the name is `tls_server_name`, or the
    /// host of `addr`.
    fn load(addr: &UpstreamAddr, config: &UpstreamConfig) -> Result<Self, TlsError> {
        let name = config.tls_server_name.as_deref().unwrap_or(&addr.host);
        Ok(Self {
            name: tls::server_name(name)?,
            connector: TlsConnector::from(tls::upstream(config)?),
        })
    }
}

impl Endpoint {
    /// From `[upstream]`: the URL, and for `rediss://` the certificate files, read now.
    pub fn new(config: &UpstreamConfig) -> Result<Self, String> {
        let addr = UpstreamAddr::parse(&config.url)?;
        let tls = if addr.tls {
            Some(Tls::load(&addr, config).map_err(|e| format!("upstream TLS: {e}"))?)
        } else {
            None
        };
        Ok(Self {
            addr,
            tls: tls.map(ArcSwap::from_pointee),
        })
    }

    /// The TLS settings of `config`, files read now (None for a plaintext upstream,
    /// whose URL a reload does not change); [`Endpoint::install`] puts them in use.
    pub fn load_tls(&self, config: &UpstreamConfig) -> Result<Option<Tls>, TlsError> {
        match self.tls {
            Some(_) => Tls::load(&self.addr, config).map(Some),
            None => Ok(None),
        }
    }

    /// Connections opened from now on use `tls`.
    pub fn install(&self, tls: Tls) {
        if let Some(current) = &self.tls {
            current.store(Arc::new(tls));
        }
    }

    /// Connects, and for `rediss://` completes the TLS handshake. The caller bounds
    /// the time it may take (`connect_timeout`, `liveness_timeout`).
    pub async fn open(&self) -> Result<Stream, Error> {
        let (host, port) = (self.addr.host.as_str(), self.addr.port);
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| Error::unavailable(format!("{host}:{port}: {e}")))?;
        tcp.set_nodelay(true).ok();
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let tls = tls.load_full();
        let stream = tls
            .connector
            .connect(tls.name.clone(), tcp)
            .await
            .map_err(|e| Error::unavailable(format!("{host}:{port}: TLS: {e}")))?;
        Ok(Stream::Tls(Box::new(stream)))
    }
}
