//! TLS settings turned into rustls configurations: the client-side listener's
//! ([`server_config`]) and the upstream connections' ([`client_config`]). Files are
//! read when called, so a reload that calls again picks up renewed certificates;
//! `respite check` calls both to validate the files. rustls on ring, no OpenSSL.
//!
//! The listener's configuration is held as a [`Live`]: the accept loop takes the
//! current one for each TLS client, and a reload stores a new one (connections already
//! open keep the configuration they were accepted with).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    crypto::{CryptoProvider, ring},
    server::WebPkiClientVerifier,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};

use crate::config;

/// Why a TLS configuration could not be built, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("{0}")]
    Config(String),
}

/// The listener's configuration, replaced whole when the certificates are reloaded.
pub type Live = Arc<ArcSwap<ServerConfig>>;

/// The files of one side that presents a certificate: its chain and private key.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// The TLS listener's configuration from `[server]`, if `tls_listen` is set.
pub fn listener(server: &config::ServerConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(_), Some(cert), Some(key)) = (&server.tls_listen, &server.tls_cert, &server.tls_key)
    else {
        return Ok(None);
    };
    let identity = Identity { cert, key };
    server_config(identity, server.tls_client_ca.as_deref()).map(Some)
}

/// The upstream connections' configuration from `[upstream]` (used for `rediss://`).
pub fn upstream(up: &config::UpstreamConfig) -> Result<Arc<ClientConfig>, TlsError> {
    let identity = match (&up.tls_cert, &up.tls_key) {
        (Some(cert), Some(key)) => Some(Identity { cert, key }),
        _ => None,
    };
    client_config(up.tls_ca.as_deref(), identity)
}

/// The listener's configuration: `identity` is presented to clients; with
/// `client_ca`, clients must present a certificate it signed (mutual TLS).
pub fn server_config(
    identity: Identity<'_>,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(roots_from(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| file_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let (chain, key) = load_identity(identity)?;
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| file_error(identity.key, e))?;
    Ok(Arc::new(config))
}

/// The upstream connections' configuration: the server's certificate is checked
/// against `ca` (the system's roots without it); `identity` is presented when Redis
/// asks for one (`tls-auth-clients`).
pub fn client_config(
    ca: Option<&Path>,
    identity: Option<Identity<'_>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = match ca {
        Some(ca) => roots_from(ca)?,
        None => native_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let (chain, key) = load_identity(id)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| file_error(id.key, e))?
        }
    };
    Ok(Arc::new(config))
}

/// The name the upstream's certificate must carry: `name` (`tls_server_name`) or
/// the URL's host (a DNS name or an IP address).
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned())
        .map_err(|e| TlsError::Config(format!("`{name}` is not a server name: {e}")))
}

/// ring's algorithms. rustls 0.23.48 deprecates them for lacking post-quantum key
/// exchange (aws-lc-rs has it, at the cost of a large C build); X25519 and the NIST
/// curves are what Redis's OpenSSL offers by default.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn load_identity(
    id: Identity<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = certificates(id.cert)?;
    let key = PrivateKeyDer::from_pem_file(id.key).map_err(|e| file_error(id.key, e))?;
    Ok((chain, key))
}

/// Every certificate of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn roots_from(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots.add(cert).map_err(|e| file_error(path, e))?;
    }
    Ok(roots)
}

fn native_roots() -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::Config(
            "no CA certificates found on this system: set tls_ca".into(),
        ));
    }
    Ok(roots)
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn config_error(e: rustls::Error) -> TlsError {
    TlsError::Config(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let id = Identity {
            cert: Path::new("/nonexistent/cert.pem"),
            key: Path::new("/nonexistent/key.pem"),
        };
        let e = server_config(id, None).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/cert.pem: "), "{e}");
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = client_config(Some(&path), None).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn server_names_are_dns_names_or_addresses() {
        assert!(server_name("redis.internal").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("not a name").is_err());
    }
}
