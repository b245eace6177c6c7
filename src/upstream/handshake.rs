//! Opening one upstream connection: TCP connect, then AUTH / HELLO / SELECT so the
//! connection matches its pool key.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{PoolKey, UpstreamAddr};
use crate::error::Error;
use crate::protocol::{
    reply::{ReplyScanner, is_error},
    request::encode_command,
};

/// Connects and prepares a connection for `key`, within `timeout` overall.
pub async fn connect(
    addr: &UpstreamAddr,
    key: &PoolKey,
    timeout: Duration,
) -> Result<TcpStream, Error> {
    tokio::time::timeout(timeout, connect_inner(addr, key))
        .await
        .map_err(|_| Error::unavailable(format!("connect timeout after {timeout:?}")))?
}

async fn connect_inner(addr: &UpstreamAddr, key: &PoolKey) -> Result<TcpStream, Error> {
    let mut stream = TcpStream::connect((addr.host.as_str(), addr.port))
        .await
        .map_err(|e| Error::unavailable(format!("{}:{}: {e}", addr.host, addr.port)))?;
    stream.set_nodelay(true).ok();
    let commands = commands(key);
    if commands.is_empty() {
        return Ok(stream);
    }
    let mut out = BytesMut::new();
    for c in &commands {
        out.extend_from_slice(&encode_command(c));
    }
    stream.write_all(&out).await.map_err(io_lost)?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut scanner = ReplyScanner::default();
    for _ in &commands {
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
            return Err(Error::Redis(frame));
        }
    }
    Ok(stream)
}

fn io_lost(e: std::io::Error) -> Error {
    Error::unavailable(format!("handshake failed: {e}"))
}

/// The commands that bring a fresh connection to the state of `key`.
fn commands(key: &PoolKey) -> Vec<Vec<Bytes>> {
    let mut cmds = Vec::new();
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
        cmds.push(hello);
    } else if let Some(c) = creds {
        let mut auth = vec![b("AUTH")];
        if let Some(user) = &c.user {
            auth.push(Bytes::from(user.clone()));
        }
        auth.push(Bytes::from(c.pass.clone()));
        cmds.push(auth);
    }
    if key.db != 0 {
        cmds.push(vec![b("SELECT"), Bytes::from(key.db.to_string())]);
    }
    cmds
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::upstream::Credentials;

    fn render(key: &PoolKey) -> Vec<String> {
        commands(key)
            .iter()
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
}
