//! The HTTP endpoint on `[metrics] listen`:
//!
//! - `GET /metrics`: Prometheus text format (version 0.0.4).
//! - `GET /healthz`: 200 `ok` while the process runs.
//! - `GET /readyz`: 200 `ready`, or 503 `not ready: <reason>` (see
//!   [`Status::readiness`]; also while shutting down).
//! - `GET /loglevel`: the log level in force; `PUT /loglevel` (body: a
//!   `RUST_LOG`-style filter) changes it, only with `[metrics] allow_loglevel = true`
//!   (403 otherwise).
//!
//! A deliberately small HTTP/1.1 responder: one request per connection
//! (`Connection: close`), the request head bounded to 8 KiB and to 2 s, a body to
//! 1 KiB, the whole exchange to 5 s, at most 32 connections at once. Anything it does
//! not understand gets a 4xx, never a panic.
//!
//! Probes get through clients that hold connections open (slowloris: a partial request
//! head, trickled): when all 32 are taken, a new connection closes the oldest one still
//! reading its request head (or, if none is, the oldest one), so a probe that sends
//! its request at once is always served.

use std::{
    collections::VecDeque,
    io,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{oneshot, watch},
    task::{AbortHandle, JoinHandle, JoinSet},
};
use tracing::{debug, info, warn};

use super::{health::Readiness, status::Status};
use crate::{config::MetricsConfig, logging};

const MAX_HEAD: usize = 8 * 1024;
const MAX_BODY: usize = 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_CONNECTIONS: usize = 32;
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `[metrics] listen`, if set (port 0 picks a free port).
pub async fn bind(config: &MetricsConfig) -> io::Result<Option<TcpListener>> {
    let Some(addr) = &config.listen else {
        return Ok(None);
    };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|e| io::Error::new(e.kind(), format!("binding metrics.listen {addr}: {e}")))
}

/// The running endpoint; it serves until [`Endpoint::close`].
pub struct Endpoint {
    close: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Endpoint {
    /// Serves on `listener`. After `stop` turns true `/readyz` answers 503 while the
    /// proxy drains; `/metrics` keeps answering until `close`. `PUT /loglevel` is
    /// refused unless `config.allow_loglevel`.
    pub fn start(
        listener: TcpListener,
        shared: Arc<Status>,
        config: &MetricsConfig,
        stop: watch::Receiver<bool>,
    ) -> io::Result<Endpoint> {
        let addr = listener.local_addr()?;
        let _ = shared.endpoint.set(addr);
        info!(metrics = %addr, "metrics endpoint listening");
        let (close, closed) = oneshot::channel();
        let server = Server {
            shared,
            stop,
            allow_loglevel: config.allow_loglevel,
        };
        let task = tokio::spawn(serve(listener, server, closed));
        Ok(Endpoint { close, task })
    }

    /// Stops accepting, ends open exchanges and waits for the task to finish.
    pub async fn close(self) {
        let _ = self.close.send(());
        let _ = self.task.await;
    }
}

/// What every exchange needs.
struct Server {
    shared: Arc<Status>,
    stop: watch::Receiver<bool>,
    allow_loglevel: bool,
}

async fn serve(listener: TcpListener, server: Server, mut closed: oneshot::Receiver<()>) {
    let server = Arc::new(server);
    let mut slots = Slots::default();
    let mut exchanges = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut closed => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    slots.make_room();
                    let reading = Arc::new(AtomicBool::new(true));
                    let task = exchanges.spawn(timed(stream, server.clone(), reading.clone()));
                    slots.open.push_back(Open { task, reading });
                }
                Err(e) => {
                    warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(done) = exchanges.join_next_with_id(), if !exchanges.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                slots.open.retain(|o| o.task.id() != id);
            }
        }
    }
    exchanges.shutdown().await;
}

/// One exchange within [`EXCHANGE_TIMEOUT`]; `reading` is cleared once the request is in.
async fn timed(stream: TcpStream, server: Arc<Server>, reading: Arc<AtomicBool>) {
    let stopping = *server.stop.borrow();
    let exchange = exchange(stream, &server, stopping, &reading);
    if tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .is_err()
    {
        debug!("metrics request timed out");
    }
}

/// A connection being served.
struct Open {
    task: AbortHandle,
    /// It is still reading its request.
    reading: Arc<AtomicBool>,
}

/// The connections being served, oldest first.
#[derive(Default)]
struct Slots {
    open: VecDeque<Open>,
}

impl Slots {
    /// Makes room for one more connection: when [`MAX_CONNECTIONS`] are open, closes
    /// the oldest still reading its request (a slowloris holds its slot that way), or
    /// else the oldest.
    fn make_room(&mut self) {
        if self.open.len() < MAX_CONNECTIONS {
            return;
        }
        let victim = self.open.iter().position(|o| o.reading.load(Relaxed));
        if let Some(o) = self.open.remove(victim.unwrap_or(0)) {
            debug!("metrics endpoint full: closing its oldest connection");
            o.task.abort();
        }
    }
}

/// One request and its response; the request (its head within [`HEAD_TIMEOUT`]) is in
/// when `reading` is cleared.
async fn exchange(
    mut stream: TcpStream,
    server: &Server,
    stopping: bool,
    reading: &AtomicBool,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let request = read_request(&mut stream, &mut buf).await?;
    reading.store(false, Relaxed);
    let response = match request {
        Ok(req) => route(&req, server, stopping),
        Err(status) => Response::text(status, status_text(status)),
    };
    stream.write_all(&response.encode()).await?;
    stream.shutdown().await
}

/// A parsed request: method, path without the query, body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads one request; `Ok(Err(status))` is a malformed or oversized one.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> io::Result<Result<Request, u16>> {
    let head_len = match tokio::time::timeout(HEAD_TIMEOUT, read_head(stream, buf)).await {
        Ok(Ok(len)) => len,
        Ok(Err(status)) => return Ok(Err(status)),
        Err(_) => return Ok(Err(408)),
    };
    let head = match parse_head(&buf[..head_len]) {
        Ok(h) => h,
        Err(status) => return Ok(Err(status)),
    };
    if head.content_length > MAX_BODY {
        return Ok(Err(413));
    }
    let mut body = buf[head_len..].to_vec();
    while body.len() < head.content_length {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Err(400));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(head.content_length);
    Ok(Ok(Request {
        method: head.method,
        path: head.path,
        body,
    }))
}

/// Reads until the end of the request head; its length, or the status refusing it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<usize, u16> {
    loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            return Ok(i + 4);
        }
        if buf.len() >= MAX_HEAD {
            return Err(431);
        }
        let mut chunk = [0u8; 1024];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(400),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    path: String,
    content_length: usize,
}

/// Parses the request line and the headers this endpoint cares about.
fn parse_head(head: &[u8]) -> Result<Head, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(400);
    }
    let mut content_length = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse().map_err(|_| 400u16)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(411); // chunked bodies are not accepted: send Content-Length
        }
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok(Head {
        method: method.to_owned(),
        path: path.to_owned(),
        content_length,
    })
}

fn route(req: &Request, server: &Server, stopping: bool) -> Response {
    let shared = &*server.shared;
    let head = req.method == "HEAD";
    let get = req.method == "GET" || head;
    let response = match (req.path.as_str(), get, req.method.as_str()) {
        ("/metrics", true, _) => Response {
            status: 200,
            content_type: METRICS_CONTENT_TYPE,
            body: shared.render().into_bytes(),
            allow: None,
        },
        ("/healthz", true, _) => Response::text(200, "ok"),
        ("/readyz", true, _) => match (stopping, shared.readiness()) {
            (true, _) => Response::text(503, "not ready: shutting down"),
            (false, Readiness::Ready) => Response::text(200, "ready"),
            (false, Readiness::NotReady(why)) => Response::text(503, &format!("not ready: {why}")),
        },
        ("/loglevel", true, _) => match logging::current_level() {
            Some(level) => Response::text(200, &level),
            None => Response::text(501, &logging::LevelError::NotInstalled.to_string()),
        },
        ("/loglevel", false, "PUT") if !server.allow_loglevel => Response::text(
            403,
            "changing the log level over HTTP is off: set [metrics] allow_loglevel = true",
        ),
        ("/loglevel", false, "PUT") => {
            let filter = String::from_utf8_lossy(&req.body);
            match logging::set_level(&filter) {
                Ok(()) => Response::text(200, "ok"),
                Err(e @ logging::LevelError::Invalid { .. }) => Response::text(400, &e.to_string()),
                Err(e) => Response::text(501, &e.to_string()),
            }
        }
        ("/loglevel", false, _) => Response::not_allowed("GET, HEAD, PUT"),
        ("/metrics" | "/healthz" | "/readyz", false, _) => Response::not_allowed("GET, HEAD"),
        _ => Response::text(404, "not found"),
    };
    if head {
        Response {
            body: Vec::new(),
            ..response
        }
    } else {
        response
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    allow: Option<&'static str>,
}

impl Response {
    fn text(status: u16, text: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{text}\n").into_bytes(),
            allow: None,
        }
    }

    fn not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::text(405, "method not allowed")
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            status_text(self.status),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            head.push_str(&format!("Allow: {allow}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_heads() {
        let h = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((h.method.as_str(), h.path.as_str()), ("GET", "/metrics"));
        let h = parse_head(b"PUT /loglevel HTTP/1.0\r\ncontent-length: 5\r\n\r\n").unwrap();
        assert_eq!(h.content_length, 5);
        for bad in [
            &b"GET\r\n\r\n"[..],
            b"GET /x\r\n\r\n",
            b"GET x HTTP/1.1\r\n\r\n",
            b"GET /x SPDY/3\r\n\r\n",
            b"GET /x HTTP/1.1 extra\r\n\r\n",
            b"GET /x HTTP/1.1\r\nno colon\r\n\r\n",
            b"PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"\xff\xfe /x HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            parse_head(b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(411)
        );
    }

    #[test]
    fn garbage_never_panics() {
        // Mostly printable, with the separators that matter.
        const ALPHABET: &[u8] = b"GET /PUT:\r\n HTTP/1.1x\xff";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2000 {
            let bytes: Vec<u8> = (0..len % 200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ALPHABET[(x % ALPHABET.len() as u64) as usize]
                })
                .collect();
            let _ = parse_head(&bytes);
        }
    }

    #[test]
    fn responses_are_well_formed() {
        let r = Response::not_allowed("GET").encode();
        let text = String::from_utf8(r).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("Allow: GET\r\n"), "{text}");
        assert!(text.contains("Content-Length: 19\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nmethod not allowed\n"), "{text}");
    }
}
