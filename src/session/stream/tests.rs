//! A TLS stream over a real socket whose send buffer is tiny: nearly every write
//! leaves records held in the stream, the last one included. Writing as a session's
//! turns do (`Want` then `io`, until nothing is wanted) must deliver every byte.

use std::{path::Path, time::Duration};

use bytes::BytesMut;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Want, io};
use crate::tls;

/// A CA and a server certificate for localhost, as PEM files in `dir`.
fn certificates(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

/// A connected pair: the server side's TLS stream (send buffer shrunk) and the
/// client's.
async fn pair(
    dir: &Path,
) -> (
    tokio_rustls::server::TlsStream<TcpStream>,
    tokio_rustls::client::TlsStream<TcpStream>,
) {
    let identity = tls::Identity {
        cert: &dir.join("server.pem"),
        key: &dir.join("server.key"),
    };
    let acceptor = TlsAcceptor::from(tls::server_config(identity, None).unwrap());
    let connector =
        TlsConnector::from(tls::client_config(Some(&dir.join("ca.pem")), None).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let server = accepted.unwrap().0;
    socket2::SockRef::from(&server)
        .set_send_buffer_size(4096)
        .unwrap();
    let name = tls::server_name("localhost").unwrap();
    let (server, client) = tokio::join!(
        acceptor.accept(server),
        connector.connect(name, client.unwrap())
    );
    (server.unwrap(), client.unwrap())
}

#[tokio::test]
async fn every_byte_written_reaches_the_peer_when_the_socket_is_full() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (mut server, mut client) = pair(dir.path()).await;
    let sent: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut out = BytesMut::from(&sent[..]);
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        let mut inbuf = BytesMut::new();
        loop {
            let want = Want::new(&server, &out, false, 0);
            if !want.any() {
                break;
            }
            io(&mut server, &mut out, &mut inbuf, want).await.unwrap();
        }
        let _ = finished.await; // the stream stays open until the reader is done
    });
    let mut got = vec![0u8; sent.len()];
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut got)).await;
    let _ = done.send(());
    writer.await.unwrap();
    assert!(read.is_ok(), "the last bytes stayed in the TLS stream");
    assert!(got == sent, "the bytes differ");
}
