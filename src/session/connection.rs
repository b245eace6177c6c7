//! Connection-state commands: SELECT, AUTH, HELLO, RESET and the CLIENT subcommands
//! the proxy answers itself. Redis checks credentials and db numbers (the pool for
//! the new state is opened with them); the proxy mirrors Redis's argument errors for
//! the parts it must parse before anything reaches Redis.

use std::sync::Arc;

use bytes::Bytes;

use super::{ReplyMode, Session, effect::Effect};
use crate::error::Error;
use crate::rewrite::Outgoing;
use crate::{
    protocol::{reply, request::Request},
    upstream::{Credentials, PoolKey},
};

impl Session {
    /// `SELECT n`: moves the client to the pool of db n (Redis validates n).
    pub(super) async fn select(&mut self, req: Request) {
        let Some(db) = parse_db(&req) else {
            // Malformed: Redis answers with the exact error and changes nothing.
            return self.send_pool(Outgoing::plain(&req), Effect::None);
        };
        let key = PoolKey {
            db,
            ..self.key.clone()
        };
        let switched = match self.may_select(&req, &key).await {
            Ok(()) => self.switch_key(key).await,
            Err(frame) => Err(frame),
        };
        self.reply(switched.map_or_else(|frame| frame, |()| Bytes::from_static(reply::OK)));
    }

    /// Whether Redis lets the client's user run this SELECT, when that user is not the
    /// URL's: the pool of `to` may exist without proving it (its connections SELECT
    /// first as the URL's user, for clients that did SELECT then AUTH). Asked on a
    /// borrowed connection of the client's key, given back for the key it is then in,
    /// so nothing is left behind.
    async fn may_select(&self, req: &Request, to: &PoolKey) -> Result<(), Bytes> {
        let upstream = &self.ctx.upstream;
        if self.key.creds == upstream.credentials_of_url() {
            return Ok(()); // opening the pool of `to` SELECTs as this user
        }
        let d = upstream
            .dedicated(&self.key)
            .await
            .map_err(|e| e.to_reply())?;
        match d.conn.request(req.raw.clone()).await {
            Ok(Ok(frame)) if frame.starts_with(b"+OK") => {
                upstream.release(to, d);
                Ok(())
            }
            Ok(Ok(frame)) => {
                upstream.release(&self.key, d);
                Err(frame)
            }
            Ok(Err(e)) => Err(e.to_reply()),
            Err(_) => Err(Error::ConnectionLost.to_reply()),
        }
    }

    /// `AUTH [user] pass`: checked by Redis on a connection of the new user's pool.
    pub(super) async fn auth(&mut self, req: Request) {
        let creds = match req.args.len() {
            2 => Credentials {
                user: None,
                pass: lossy(&req.args[1]),
            },
            3 => Credentials {
                user: Some(lossy(&req.args[1])),
                pass: lossy(&req.args[2]),
            },
            _ => return self.send_pool(Outgoing::plain(&req), Effect::None),
        };
        let frame = match self.authenticate(creds, self.key.resp3).await {
            Ok(()) => Bytes::from_static(reply::OK),
            Err(frame) => frame,
        };
        self.reply(frame);
    }

    /// Moves to the pool of `creds`. An existing pool proves nothing about this
    /// password, so AUTH is also sent there (a failed AUTH leaves a connection as it was).
    async fn authenticate(&mut self, creds: Credentials, resp3: bool) -> Result<(), Bytes> {
        let mut args = vec![Bytes::from_static(b"AUTH")];
        if let Some(user) = &creds.user {
            args.push(Bytes::from(user.clone()));
        }
        args.push(Bytes::from(creds.pass.clone()));
        let key = PoolKey {
            creds: Some(Arc::new(creds)),
            resp3,
            ..self.key.clone()
        };
        let pool = self
            .ctx
            .upstream
            .pool(&key)
            .await
            .map_err(|e| e.to_reply())?;
        let check = pool.conn(self.id).request(Request::from_args(args).raw);
        match check.await {
            Ok(Ok(frame)) if frame.starts_with(b"+OK") => {
                self.pool = pool;
                self.key = key;
                Ok(())
            }
            Ok(Ok(frame)) => Err(frame),
            Ok(Err(e)) => Err(e.to_reply()),
            Err(_) => Err(Error::ConnectionLost.to_reply()),
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    pub(super) async fn hello(&mut self, req: Request) {
        let hello = match Hello::parse(&req.args) {
            Ok(h) => h,
            Err(e) => return self.reply(e.to_reply()),
        };
        let resp3 = hello.protover.map_or(self.key.resp3, |v| v == 3);
        let switched = match hello.auth {
            Some(creds) => self.authenticate(creds, resp3).await,
            None => {
                let key = PoolKey {
                    resp3,
                    ..self.key.clone()
                };
                self.switch_key(key).await
            }
        };
        if let Err(frame) = switched {
            return self.reply(frame);
        }
        if let Some(name) = hello.setname {
            self.name = (!name.is_empty()).then_some(name);
        }
        // The server's own HELLO map, in the new protocol, from a connection already in it.
        let plain = Request::from_args([Bytes::from_static(b"HELLO")]);
        self.send_pool(Outgoing::plain(&plain), Effect::None);
    }

    /// The state of a new connection (without a reply); the own connection, if any,
    /// is closed.
    pub(super) fn reset_state(&mut self) {
        self.unlink();
        self.key = self.ctx.upstream.initial_key();
        self.pool = self.ctx.upstream.initial_pool();
        self.name = None;
        self.repool = false;
        self.reply_mode = ReplyMode::On;
    }

    pub(super) fn set_name(&mut self, name: &Bytes) -> Bytes {
        if !valid_name(name) {
            return Error::refused(
                "Client names cannot contain spaces, newlines or special characters.",
            )
            .to_reply();
        }
        // A copy: a slice would keep the whole input buffer it came in alive.
        self.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
        Bytes::from_static(reply::OK)
    }
}

/// A parsed HELLO, refused locally with Redis's own error texts.
struct Hello {
    protover: Option<i64>,
    auth: Option<Credentials>,
    setname: Option<Bytes>,
}

impl Hello {
    fn parse(args: &[Bytes]) -> Result<Self, Error> {
        let mut hello = Hello {
            protover: None,
            auth: None,
            setname: None,
        };
        let Some(ver) = args.get(1) else {
            return Ok(hello);
        };
        let ver: i64 = std::str::from_utf8(ver)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::refused("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&ver) {
            return Err(Error::refused("NOPROTO unsupported protocol version"));
        }
        hello.protover = Some(ver);
        let mut i = 2;
        while i < args.len() {
            let more = args.len() - 1 - i;
            let opt = &args[i];
            if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
                hello.auth = Some(Credentials {
                    user: Some(lossy(&args[i + 1])),
                    pass: lossy(&args[i + 2]),
                });
                i += 3;
            } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
                if !valid_name(&args[i + 1]) {
                    return Err(Error::refused(
                        "Client names cannot contain spaces, newlines or special characters.",
                    ));
                }
                hello.setname = Some(args[i + 1].clone());
                i += 2;
            } else {
                return Err(Error::refused(format!(
                    "Syntax error in HELLO option '{}'",
                    lossy(opt)
                )));
            }
        }
        Ok(hello)
    }
}

/// The db of a well-formed `SELECT n`.
pub(super) fn parse_db(req: &Request) -> Option<u32> {
    if req.args.len() != 2 {
        return None;
    }
    std::str::from_utf8(&req.args[1]).ok()?.parse().ok()
}

/// The protocol a well-formed `HELLO` asks for: RESP3 or not (None: none asked, or
/// Redis will refuse it).
/// The protocol a HELLO asks for (true: RESP3), and the name it sets; None if it
/// names no protocol or is refused.
pub(super) fn hello_protocol(req: &Request) -> Option<(bool, Option<Bytes>)> {
    let hello = Hello::parse(&req.args).ok()?;
    Some((hello.protover? == 3, hello.setname))
}

/// Redis allows client names of printable ASCII without spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_owned())).collect()
    }

    #[test]
    fn hello_parsing_mirrors_redis() {
        let h = Hello::parse(&args("HELLO 3 AUTH u p SETNAME n")).unwrap();
        assert_eq!(h.protover, Some(3));
        assert_eq!(h.auth.unwrap().user.as_deref(), Some("u"));
        assert_eq!(&h.setname.unwrap()[..], b"n");
        let err = |s| {
            String::from_utf8(Hello::parse(&args(s)).err().unwrap().to_reply().to_vec()).unwrap()
        };
        assert_eq!(err("HELLO 4"), "-NOPROTO unsupported protocol version\r\n");
        assert_eq!(
            err("HELLO x"),
            "-ERR Protocol version is not an integer or out of range\r\n"
        );
        assert_eq!(
            err("HELLO 3 AUTH u"),
            "-ERR Syntax error in HELLO option 'AUTH'\r\n"
        );
    }

    #[test]
    fn names() {
        assert!(valid_name(b"worker-1"));
        assert!(valid_name(b""));
        assert!(!valid_name(b"a b"));
        assert!(!valid_name(b"a\nb"));
    }
}
