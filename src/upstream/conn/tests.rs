//! A TLS connection whose socket stays full: the tail of a large write waits in the
//! TLS session after `wbuf` is empty, and must still reach Redis.

use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::{
    config::UpstreamConfig,
    protocol::request::encode_command,
    tls::{self, Identity},
    upstream::{endpoint::Endpoint, liveness::Liveness},
};

/// A self-signed certificate for `localhost`, as PEM files in `dir`.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// A server that reads `len` bytes a few KiB at a time, slowly, then answers `+OK`;
/// and a TLS stream to it whose send buffer is small, so it is full most of the time.
async fn slow_server(len: usize) -> (Stream, tokio::task::JoinHandle<()>) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let identity = Identity {
        cert: &cert,
        key: &key,
    };
    let acceptor = TlsAcceptor::from(tls::server_config(identity, None).unwrap());
    let connector = TlsConnector::from(tls::client_config(Some(&cert), None).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut buf = vec![0; 4096];
        let mut read = 0;
        while read < len {
            tokio::time::sleep(Duration::from_micros(200)).await;
            read += tls.read(&mut buf).await.unwrap();
        }
        tls.write_all(b"+OK\r\n").await.unwrap();
        tls.flush().await.unwrap();
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    socket2::SockRef::from(&tcp)
        .set_send_buffer_size(8192)
        .unwrap();
    let name = tls::server_name("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    (Stream::Tls(Box::new(stream)), server)
}

fn settings() -> Settings {
    let config = UpstreamConfig::default();
    let endpoint = Arc::new(Endpoint::new(&config).unwrap());
    let liveness = Liveness::new(endpoint.clone(), Duration::from_secs(5), Duration::ZERO);
    Settings {
        endpoint,
        key: Default::default(),
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        reconnect: false,
        stats: Arc::default(),
        liveness: Arc::new(liveness),
        on_refused: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_write_on_a_full_tls_socket_is_flushed() {
    let value = Bytes::from(vec![b'x'; 1 << 20]);
    let cmd = encode_command(&[Bytes::from_static(b"SET"), Bytes::from_static(b"k"), value]);
    let (stream, server) = slow_server(cmd.len()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (reply_tx, reply) = oneshot::channel();
    let reply_to = ReplyTo::Oneshot(reply_tx);
    tx.send(Job {
        cmd,
        expect: Expect::Frames(1),
        reply: reply_to,
    })
    .unwrap();
    let pipeline = tokio::spawn(async move {
        let (settings, state) = (settings(), State::default());
        let _ = Pipeline::new(&settings, &state, None)
            .serve(stream, &mut rx)
            .await;
    });
    let reply = tokio::time::timeout(Duration::from_secs(10), reply).await;
    let reply = reply.expect("the write's tail never left the TLS session");
    assert_eq!(&reply.unwrap().unwrap()[..], b"+OK\r\n");
    server.await.unwrap();
    drop(tx);
    pipeline.await.unwrap();
}
