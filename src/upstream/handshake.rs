//! Opening one upstream connection: TCP connect (and TLS handshake, for `rediss://`:
//! [`super::endpoint`]), then AUTH / HELLO / SELECT so the connection matches its pool
//! key, all within `connect_timeout`.
//!
//! Redis lets a connection SELECT a db and then AUTH as a user who may not SELECT:
//! it stays in that db. A client that did so through the proxy moves to the pool of
//! (that db, that user), whose connections must get there too. So for a user other
//! than the URL's, the db is selected first, as the URL's user (or the default one),
//! and the connection authenticates as the key's user after; if that SELECT is
//! refused, the usual order (AUTH, then SELECT as the key's user) decides.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::{io::AsyncReadExt, net::TcpStream};

use super::{endpoint::Endpoint, key::PoolKey, settings::Settings, stream::Stream};
use crate::config::Credentials;
use crate::error::Error;
use crate::protocol::{
    reply::{ReplyScanner, integer_value, is_error},
    request::encode_command,
};

/// Connects a pipelined connection for `settings.key`: also learns its `CLIENT ID`,
/// and lets the kernel fail it when Redis stops acknowledging data for
/// `request_timeout` (a partition, a dead host).
pub async fn connect(settings: &Settings) -> Result<(Stream, i64), Error> {
    let timeout = settings.connect_timeout;
    let setup = async {
        let endpoint = &settings.endpoint;
        let mut stream = endpoint.open().await?;
        dead_peer_timeouts(stream.tcp(), settings.request_timeout);
        prepare(&mut stream, endpoint.addr.creds.as_deref(), &settings.key).await?;
        // A user may not be allowed CLIENT ID: then the id stays unknown. Any other
        // failure (a TLS server refusing the client's certificate says so only now)
        // fails the connection.
        let id = match run(&mut stream, &[vec![b("CLIENT"), b("ID")]]).await {
            Ok(r) => r.first().and_then(|r| integer_value(r)).unwrap_or(0),
            Err(Error::Redis(_)) => 0,
            Err(e) => return Err(e),
        };
        Ok((stream, id))
    };
    tokio::time::timeout(timeout, setup)
        .await
        .map_err(|_| Error::unavailable(format!("connect timeout after {timeout:?}")))?
}

/// Connects and prepares a connection for `key`, within `timeout` overall (for side
/// connections that read the socket themselves).
pub async fn connect_raw(
    endpoint: &Endpoint,
    key: &PoolKey,
    timeout: Duration,
) -> Result<Stream, Error> {
    let setup = async {
        let mut stream = endpoint.open().await?;
        prepare(&mut stream, endpoint.addr.creds.as_deref(), key).await?;
        Ok(stream)
    };
    tokio::time::timeout(timeout, setup)
        .await
        .map_err(|_| Error::unavailable(format!("connect timeout after {timeout:?}")))?
}

/// Keepalive probes on an idle connection, and `TCP_USER_TIMEOUT` on one with
/// unacknowledged data: the kernel notices a vanished peer by itself.
fn dead_peer_timeouts(stream: &TcpStream, timeout: Duration) {
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(timeout)
        .with_interval(timeout / 3 + Duration::from_millis(1))
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&keepalive);
    let _ = sock.set_tcp_user_timeout(Some(timeout));
}

/// Brings a fresh connection to the state of `key` (see the module docs); `url`: the
/// credentials of the upstream URL.
async fn prepare(
    stream: &mut Stream,
    url: Option<&Credentials>,
    key: &PoolKey,
) -> Result<(), Error> {
    if let Some(first) = select_first(url, key) {
        match run(stream, &first).await {
            Ok(_) => return run(stream, &auth(key)).await.map(drop),
            // Refused (the URL's user may not SELECT it either): the usual order.
            Err(Error::Redis(_)) => {}
            Err(e) => return Err(e),
        }
    }
    run(stream, &commands(key)).await.map(drop)
}

/// Sends `commands` pipelined and reads every reply; the first error reply refuses
/// the connection (the replies after it are read all the same, so the connection is
/// in step for what is sent next).
async fn run(stream: &mut Stream, commands: &[Vec<Bytes>]) -> Result<Vec<Bytes>, Error> {
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = BytesMut::new();
    for c in commands {
        out.extend_from_slice(&encode_command(c));
    }
    stream.send(&out).await.map_err(io_lost)?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut scanner = ReplyScanner::default();
    let mut replies = Vec::with_capacity(commands.len());
    let mut refused = None;
    for _ in commands {
        let frame = loop {
            if let Some(len) = scanner
                .scan(&buf)
                .map_err(|e| Error::upstream_protocol(e.to_string()))?
            {
                break buf.split_to(len).freeze();
            }
            if stream.read_buf(&mut buf).await.map_err(io_lost)? == 0 {
                return Err(Error::unavailable("closed during handshake"));
            }
        };
        if is_error(&frame) {
            refused.get_or_insert(frame);
        } else {
            replies.push(frame);
        }
    }
    refused.map_or(Ok(replies), |frame| Err(Error::Redis(frame)))
}

fn io_lost(e: std::io::Error) -> Error {
    Error::unavailable(format!("handshake failed: {e}"))
}

/// The commands that bring a fresh connection to the state of `key`, in the usual
/// order: AUTH or HELLO as its user, then SELECT.
fn commands(key: &PoolKey) -> Vec<Vec<Bytes>> {
    let mut cmds = auth(key);
    if key.db != 0 {
        cmds.push(vec![b("SELECT"), Bytes::from(key.db.to_string())]);
    }
    cmds
}

/// SELECT first, as the URL's user (AUTH as it if the URL has credentials): for a key
/// of another user and a db other than 0; `auth(key)` follows.
fn select_first(url: Option<&Credentials>, key: &PoolKey) -> Option<Vec<Vec<Bytes>>> {
    if key.db == 0 || key.creds.as_deref() == url {
        return None;
    }
    let mut cmds: Vec<_> = url.map(auth_command).into_iter().collect();
    cmds.push(vec![b("SELECT"), Bytes::from(key.db.to_string())]);
    Some(cmds)
}

/// HELLO 3 (with AUTH) for RESP3, AUTH for RESP2: `key`'s protocol and user.
fn auth(key: &PoolKey) -> Vec<Vec<Bytes>> {
    let creds = key.creds.as_deref();
    if key.resp3 {
        let mut hello = vec![b("HELLO"), b("3")];
        if let Some(c) = creds {
            hello.extend([
                b("AUTH"),
                Bytes::from(c.user.clone().unwrap_or_else(|| "default".into())),
                Bytes::from(c.pass.clone()),
            ]);
        }
        return vec![hello];
    }
    creds.map(auth_command).into_iter().collect()
}

fn auth_command(c: &Credentials) -> Vec<Bytes> {
    let mut auth = vec![b("AUTH")];
    if let Some(user) = &c.user {
        auth.push(Bytes::from(user.clone()));
    }
    auth.push(Bytes::from(c.pass.clone()));
    auth
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn render(key: &PoolKey) -> Vec<String> {
        show(&commands(key))
    }

    fn show(cmds: &[Vec<Bytes>]) -> Vec<String> {
        cmds.iter()
            .map(|c| {
                c.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn plain_db0_needs_nothing() {
        assert!(render(&PoolKey::default()).is_empty());
    }

    #[test]
    fn resp3_with_password_and_db() {
        let key = PoolKey {
            db: 2,
            creds: Some(Arc::new(Credentials {
                user: None,
                pass: "pw".into(),
            })),
            resp3: true,
        };
        assert_eq!(render(&key), ["HELLO 3 AUTH default pw", "SELECT 2"]);
    }

    #[test]
    fn resp2_acl_user() {
        let key = PoolKey {
            db: 0,
            creds: Some(Arc::new(Credentials {
                user: Some("app".into()),
                pass: "pw".into(),
            })),
            resp3: false,
        };
        assert_eq!(render(&key), ["AUTH app pw"]);
    }

    fn creds(user: Option<&str>, pass: &str) -> Option<Arc<Credentials>> {
        Some(Arc::new(Credentials {
            user: user.map(str::to_owned),
            pass: pass.into(),
        }))
    }

    #[test]
    fn another_users_db_is_selected_first_as_the_urls_user() {
        let key = PoolKey {
            db: 9,
            creds: creds(Some("limited"), "pw"),
            resp3: true,
        };
        let url = creds(None, "secret");
        let first = select_first(url.as_deref(), &key).map(|c| show(&c));
        assert_eq!(first.unwrap(), ["AUTH secret", "SELECT 9"]);
        let first = select_first(None, &key).map(|c| show(&c));
        assert_eq!(first.unwrap(), ["SELECT 9"]);
        assert_eq!(show(&auth(&key)), ["HELLO 3 AUTH limited pw"]);
        // The URL's own user, or db 0: the usual order alone.
        let own = PoolKey {
            creds: url.clone(),
            ..key.clone()
        };
        assert!(select_first(url.as_deref(), &own).is_none());
        let db0 = PoolKey { db: 0, ..key };
        assert!(select_first(url.as_deref(), &db0).is_none());
    }
}
