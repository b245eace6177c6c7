//! TLS on the client side: `tls_listen` next to `listen`, a real redis-server behind.
//! TLS and plain clients get the same bytes at once; redis-cli --tls works; mutual TLS
//! refuses clients without a certificate of `tls_client_ca`; a handshake that stalls
//! or is garbage holds nobody up and is closed; certificates are re-read by a reload
//! without dropping connections; `respite check` names a TLS file it cannot use.

mod support;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use rustls::{ClientConnection, StreamOwned};
use support::binary::check;
use support::{
    Client, Proxy, RedisServer, Stack,
    l1::{stat, stat_int},
    resp,
    tls::Certs,
    wait_until,
};

/// A synchronous RESP client over TLS (rustls), trusting `ca`.
struct TlsClient {
    stream: StreamOwned<ClientConnection, TcpStream>,
    buf: Vec<u8>,
}

impl TlsClient {
    /// Connects and completes the handshake, presenting `identity` if given. With
    /// TLS 1.3 a server that refuses the client's certificate says so only after
    /// this: the first reply then fails.
    fn connect(addr: SocketAddr, ca: &Path, identity: Option<&Certs>) -> std::io::Result<Self> {
        let files = identity.map(|c| (c.client_cert(), c.client_key()));
        let id = files
            .as_ref()
            .map(|(cert, key)| respite::tls::Identity { cert, key });
        let config = respite::tls::client_config(Some(ca), id).map_err(std::io::Error::other)?;
        let name = respite::tls::server_name("localhost").unwrap();
        let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            stream,
            buf: Vec::new(),
        })
    }

    fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    fn read_reply(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(n) = resp::reply_len(&self.buf).map_err(std::io::Error::other)? {
                return Ok(self.buf.drain(..n).collect());
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk)? {
                0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                n => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn try_cmd(&mut self, line: &str) -> std::io::Result<Vec<u8>> {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.send_raw(&resp::encode_command(&args))?;
        self.read_reply()
    }

    fn cmd(&mut self, line: &str) -> Vec<u8> {
        self.try_cmd(line)
            .unwrap_or_else(|e| panic!("{line} over TLS: {e}"))
    }
}

/// What the script needs of a connection, plain or TLS.
trait Conn {
    fn send(&mut self, bytes: &[u8]);
    fn read(&mut self) -> Vec<u8>;
}

impl Conn for Client {
    fn send(&mut self, bytes: &[u8]) {
        self.send_raw(bytes);
    }
    fn read(&mut self) -> Vec<u8> {
        self.read_reply()
    }
}

impl Conn for TlsClient {
    fn send(&mut self, bytes: &[u8]) {
        self.send_raw(bytes).expect("write over TLS");
    }
    fn read(&mut self) -> Vec<u8> {
        self.read_reply().expect("read over TLS")
    }
}

/// `[server]` keys for a TLS listener on a free port, presenting `certs`' server
/// certificate.
fn tls_toml(server_cert: &Path, server_key: &Path, extra: &str) -> String {
    format!(
        "[server]\ntls_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{extra}",
        server_cert.display(),
        server_key.display()
    )
}

fn tls_addr(c: &mut Client) -> SocketAddr {
    stat(c, "tls_listen")
        .parse()
        .expect("tls_listen is host:port")
}

/// The same commands, some pipelined, some with replies larger than a socket buffer,
/// on keys under `prefix`: the raw replies.
fn script(prefix: &str, c: &mut impl Conn) -> Vec<Vec<u8>> {
    let big = "x".repeat(3 << 20);
    let mut lines = vec![
        format!("SET {prefix}:a 1"),
        format!("GET {prefix}:a"),
        format!("INCR {prefix}:a"),
        format!("GET {prefix}:missing"),
        format!("SET {prefix}:big {big}"),
        format!("GET {prefix}:big"),
        format!("STRLEN {prefix}:big"),
        format!("GET c:{prefix}"),
        format!("GET c:{prefix}"),
    ];
    for i in 0..200 {
        lines.push(format!("SET {prefix}:p{i} v{i}"));
        lines.push(format!("GET {prefix}:p{i}"));
    }
    let mut replies = Vec::new();
    for chunk in [&lines[..9], &lines[9..]] {
        // Single commands one by one, then the rest as one pipeline.
        let batch = chunk.len() > 9;
        let mut pipeline = Vec::new();
        for line in chunk {
            let args: Vec<&str> = line.split_whitespace().collect();
            let encoded = resp::encode_command(&args);
            if batch {
                pipeline.extend(encoded);
            } else {
                c.send(&encoded);
                replies.push(c.read());
            }
        }
        if batch {
            c.send(&pipeline);
            replies.extend((0..chunk.len()).map(|_| c.read()));
        }
    }
    replies
}

#[test]
fn tls_and_plain_clients_get_the_same_bytes_at_once() {
    let certs = Certs::new();
    let rules = "[[namespace]]\nname = \"cached\"\nmatch = \"c:*\"\nl1 = true\n";
    let toml = tls_toml(&certs.server_cert(), &certs.server_key(), "") + rules;
    let stack = Stack::start_with(&toml);
    let addr = tls_addr(&mut stack.client());
    let mut direct = stack.direct();
    direct.cmd("SET c:tls cached-value");
    direct.cmd("SET c:plain cached-value");

    let ca = certs.ca();
    let tls = thread::spawn(move || {
        let mut c = TlsClient::connect(addr, &ca, None).expect("TLS handshake");
        script("tls", &mut c)
    });
    let plain = script("plain", &mut stack.client());
    let tls = tls.join().unwrap();
    assert_eq!(tls.len(), plain.len());
    for (i, (t, p)) in tls.iter().zip(&plain).enumerate() {
        assert!(
            t == p,
            "reply {i}: TLS {} vs plain {}",
            resp::show(t),
            resp::show(p)
        );
    }
    assert_eq!(tls[7], b"$12\r\ncached-value\r\n");
    // Both clients are respite's own: CLIENT LIST shows them.
    let list = stack.client().cmd("CLIENT LIST");
    let lines = String::from_utf8_lossy(&list).lines().count();
    assert!(lines >= 2, "{}", String::from_utf8_lossy(&list));
}

#[test]
fn a_tls_client_counts_against_max_clients() {
    let certs = Certs::new();
    let toml = tls_toml(
        &certs.server_cert(),
        &certs.server_key(),
        "max_clients = 2\n",
    );
    let stack = Stack::start_with(&toml);
    let mut first = stack.client();
    let addr = tls_addr(&mut first);
    let mut tls = TlsClient::connect(addr, &certs.ca(), None).unwrap();
    assert_eq!(tls.cmd("PING"), b"+PONG\r\n");
    let mut third = stack.client();
    assert_eq!(
        third.read_reply(),
        b"-ERR max number of clients reached\r\n"
    );
    drop(tls);
    assert!(wait_until(Duration::from_secs(5), || {
        let mut c = stack.client();
        c.try_send_raw(b"PING\r\n").is_ok() && c.try_read_reply().is_ok_and(|r| r == b"+PONG\r\n")
    }));
}

#[test]
fn redis_cli_with_tls_works_through_respite() {
    let certs = Certs::new();
    let stack = Stack::start_with(&tls_toml(&certs.server_cert(), &certs.server_key(), ""));
    let port = tls_addr(&mut stack.client()).port().to_string();
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(certs.ca())
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .expect("run redis-cli");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(cli(&["SET", "cli:k", "hello"]), "OK");
    assert_eq!(cli(&["GET", "cli:k"]), "hello");
    assert_eq!(stack.direct().cmd("GET cli:k"), b"$5\r\nhello\r\n");
}

#[test]
fn mutual_tls_requires_a_certificate_of_the_client_ca() {
    let certs = Certs::new();
    let other = Certs::named("other");
    let client_ca = format!("tls_client_ca = \"{}\"\n", certs.ca().display());
    let stack = Stack::start_with(&tls_toml(
        &certs.server_cert(),
        &certs.server_key(),
        &client_ca,
    ));
    let mut plain = stack.client();
    let addr = tls_addr(&mut plain);

    let mut with_cert = TlsClient::connect(addr, &certs.ca(), Some(&certs)).unwrap();
    assert_eq!(with_cert.cmd("PING"), b"+PONG\r\n");
    let refused = |identity: Option<&Certs>| {
        TlsClient::connect(addr, &certs.ca(), identity)
            .and_then(|mut c| c.try_cmd("PING"))
            .is_err()
    };
    assert!(refused(None), "a client without a certificate was served");
    assert!(
        refused(Some(&other)),
        "a certificate of another CA was accepted"
    );
    assert!(wait_until(Duration::from_secs(5), || {
        stat_int(&mut plain, "tls_handshake_failures") == 2
    }));
    assert_eq!(with_cert.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn a_stalled_or_garbage_handshake_holds_nobody_up_and_is_closed() {
    let certs = Certs::new();
    let deadline = "tls_handshake_timeout = \"500ms\"\n";
    let stack = Stack::start_with(&tls_toml(
        &certs.server_cert(),
        &certs.server_key(),
        deadline,
    ));
    let mut plain = stack.client();
    let addr = tls_addr(&mut plain);

    let started = Instant::now();
    let mut silent = Client::connect(addr);
    let mut garbage = Client::connect(addr);
    garbage.send_raw(b"*1\r\n$4\r\nPING\r\n");
    // Others are served meanwhile, over TLS and in plain.
    let mut tls = TlsClient::connect(addr, &certs.ca(), None).unwrap();
    assert_eq!(tls.cmd("PING"), b"+PONG\r\n");
    assert_eq!(plain.cmd("PING"), b"+PONG\r\n");
    assert!(started.elapsed() < Duration::from_millis(500));

    let (bytes, closed) = garbage.read_available(Duration::from_secs(5));
    assert!(
        closed,
        "plain RESP on the TLS port: the connection stayed open"
    );
    assert!(
        !support::contains(&bytes, b"PONG"),
        "{}",
        resp::show(&bytes)
    );
    assert!(
        silent.closed_within(Duration::from_secs(5)),
        "a silent client stayed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "closed before its deadline"
    );
    assert!(wait_until(Duration::from_secs(5), || {
        stat_int(&mut plain, "tls_handshake_failures") == 2
    }));
    assert_eq!(tls.cmd("PING"), b"+PONG\r\n");
}

/// Copies a set's server certificate and key to `dir` (where the proxy reads them).
fn install(certs: &Certs, dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::copy(certs.server_cert(), &cert).unwrap();
    std::fs::copy(certs.server_key(), &key).unwrap();
    (cert, key)
}

#[test]
fn a_reload_re_reads_the_certificates_and_open_connections_continue() {
    let (first, second) = (Certs::new(), Certs::named("second CA"));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = install(&first, dir.path());
    let redis = RedisServer::start();
    let proxy = Proxy::start_from_file(&redis.url(), &tls_toml(&cert, &key, ""));
    let mut admin = proxy.client();
    let addr = tls_addr(&mut admin);
    let mut before = TlsClient::connect(addr, &first.ca(), None).unwrap();
    assert_eq!(before.cmd("SET r:k 1"), b"+OK\r\n");

    install(&second, dir.path());
    let reloaded = admin.cmd("RESPITE RELOAD");
    assert!(
        support::contains(&reloaded, b"TLS certificates re-read"),
        "{}",
        resp::show(&reloaded)
    );
    assert_eq!(before.cmd("GET r:k"), b"$1\r\n1\r\n");
    assert!(
        TlsClient::connect(addr, &first.ca(), None).is_err(),
        "the old certificate is still presented"
    );
    let mut after = TlsClient::connect(addr, &second.ca(), None).unwrap();
    assert_eq!(after.cmd("GET r:k"), b"$1\r\n1\r\n");

    // A key that cannot be read refuses the reload: the certificates stay.
    std::fs::write(&key, "not a key\n").unwrap();
    let refused = admin.cmd("RESPITE RELOAD");
    assert!(refused.starts_with(b"-ERR"), "{}", resp::show(&refused));
    assert!(
        support::contains(&refused, key.to_string_lossy().as_bytes()),
        "{}",
        resp::show(&refused)
    );
    let mut still = TlsClient::connect(addr, &second.ca(), None).unwrap();
    assert_eq!(still.cmd("PING"), b"+PONG\r\n");
    assert_eq!(before.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn check_names_a_tls_file_it_cannot_use() {
    let certs = Certs::new();
    let missing = certs.dir().join("missing.key");
    let garbled = certs.dir().join("garbled.key");
    std::fs::write(&garbled, "-----BEGIN PRIVATE KEY-----\nnot base64!\n").unwrap();
    for key in [&missing, &garbled] {
        let (code, text) = check(&tls_toml(&certs.server_cert(), key, ""));
        assert_eq!(code, Some(64), "{text}");
        assert!(text.contains(&*key.to_string_lossy()), "{text}");
    }
    let (code, text) = check(&tls_toml(&certs.server_cert(), &certs.server_key(), ""));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("tls       127.0.0.1:0"), "{text}");
}
