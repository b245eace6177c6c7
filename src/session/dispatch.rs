//! Routing one command: answered here, sent on the client's own connection, or on the
//! shared pool (see the state machine in `session.rs`).

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{
    AdminAnswer, AdminCaller, Flow, ReplyMode, Session,
    effect::Effect,
    link::{Link, Own},
    pending::Slot,
};
use crate::{
    command::{self, Classified, Kind, Route},
    error::Error,
    protocol::{reply, request::Request},
    rewrite::Outgoing,
    upstream::expect::SubKind,
};

impl Session {
    /// Dispatches one command; `Deferred`: it waits for every earlier reply (kept as
    /// `deferred`, dispatched again once they are in).
    pub(super) async fn dispatch(&mut self, req: Request) -> Flow {
        if req.name().eq_ignore_ascii_case(b"RESPITE") {
            self.kind = Kind::Admin;
            self.note_admin();
            self.respite(&req);
            return Flow::Continue;
        }
        let class = command::classify(&req.args);
        self.kind = class.kind;
        self.note_command(&req, &class);
        self.ns = 0; // set once the rules are loaded (on_pool, on_own)
        self.cache = super::pending::CacheCount::None;
        self.release_own(); // a link no longer needed goes before the next command
        if self.local(&req, &class) {
            return Flow::Continue;
        }
        if super::who::about_clients(class.route)
            && !self.link.in_multi()
            && !self.subscribed_resp2()
            && self.who(&req, &class).await
        {
            return Flow::Continue;
        }
        if self.link.own().is_some() {
            return self.on_own(req, class).await;
        }
        if class.route == Route::Unpause {
            self.unpause(req).await;
            return Flow::Continue;
        }
        let switches = matches!(
            class.route,
            Route::Select | Route::Auth | Route::Hello | Route::Reset
        );
        if (needs_own(class.route) || switches || self.repool || self.writes_joined(&req, &class))
            && !self.drained()
        {
            self.deferred = Some(req);
            return Flow::Deferred;
        }
        if self.repool && !self.refresh_pool().await {
            return Flow::Continue;
        }
        match class.route {
            route if needs_own(route) => self.take_own(req, class).await,
            Route::Select => self.select(req).await,
            Route::Auth => self.auth(req).await,
            Route::Hello => self.hello(req).await,
            Route::Reset => self.reset(),
            _ => self.on_pool(req, class).await,
        }
        Flow::Continue
    }

    /// True if `req` writes a key this client is reading through another's fill.
    fn writes_joined(&mut self, req: &Request, class: &Classified) -> bool {
        if self.joined.is_empty() {
            return false;
        }
        if self.drained() {
            self.joined.clear();
            return false;
        }
        let keys = class.write_keys(&req.args);
        keys.iter()
            .any(|&i| self.joined.iter().any(|k| *k == req.args[i]))
            || class.kind == Kind::Unknown
            || (class.kind == Kind::Write && self.joined.len() >= super::JOINED_KEPT)
    }

    /// Opens a connection of the client's own, then sends the command on it.
    async fn take_own(&mut self, req: Request, class: Classified) {
        let key = self.key.clone();
        match self.ctx.upstream.dedicated(&key).await {
            Ok(d) => {
                self.entry.set_upstream_id(d.conn.client_id());
                self.link = Link::Own(Own::new(d, key));
                self.on_own(req, class).await;
            }
            Err(e) => self.reply(e.to_reply()),
        }
    }

    /// CLIENT UNPAUSE from a pooled client: sent at once on a connection of its own,
    /// even while its earlier replies wait on the shared connection (a write the pause
    /// holds stalls that connection, and them, until the pause ends). The client stays
    /// pooled, so its later commands still follow its earlier ones; the connection is
    /// given back once answered (UNPAUSE leaves it as it was).
    async fn unpause(&mut self, req: Request) {
        let upstream = self.ctx.upstream.clone();
        let key = self.key.clone();
        let d = match upstream.dedicated(&key).await {
            Ok(d) => d,
            Err(e) => return self.reply(e.to_reply()),
        };
        let answer = d.conn.request(req.raw.clone());
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let reply = answer.await.unwrap_or(Err(Error::ConnectionLost));
            if reply.is_ok() {
                upstream.release(&key, d);
            }
            let _ = tx.send(reply);
        });
        self.queue(Slot::Oneshot(rx), Effect::None, Outgoing::plain(&req).post);
    }

    /// `RESPITE …`: answered above this layer.
    fn respite(&mut self, req: &Request) {
        let caller = AdminCaller {
            key: &self.key,
            client_name: self.name.as_ref(),
            ip: self.entry.peer.ip,
            authenticated: self.admin_ok,
        };
        match self.ctx.admin.call(req, &caller) {
            AdminAnswer::Reply(reply) => self.reply(reply.unwrap_or_else(|e| e.to_reply())),
            AdminAnswer::Later(rx) => self.await_later(rx, true),
            AdminAnswer::Authenticated => {
                self.admin_ok = true;
                self.reply(Bytes::from_static(reply::OK));
            }
        }
    }

    /// Commands the proxy answers itself. Inside MULTI, Redis must queue them, so only
    /// the proxy-only ones stay here.
    fn local(&mut self, req: &Request, class: &Classified) -> bool {
        let args = &req.args;
        let frame = match class.route {
            Route::Quit if self.link.own().is_none_or(|o| o.gone) => {
                // Like Redis, nothing sent after QUIT runs.
                self.close();
                reply::simple("OK")
            }
            Route::Refuse => Error::refused(format!(
                "ERR {} is not supported through respite (replication must connect to Redis directly)",
                String::from_utf8_lossy(req.name()).to_uppercase()
            ))
            .to_reply(),
            Route::ClientReply if self.link.in_multi() => Error::refused(
                "ERR CLIENT REPLY inside MULTI is not supported through respite",
            )
            .to_reply(),
            _ if self.link.in_multi() || self.subscribed_resp2() => return false,
            Route::ClientReply => return self.client_reply(args),
            Route::ClientId if args.len() == 2 => reply::integer(self.id as i64),
            Route::ClientGetName if args.len() == 2 => match &self.name {
                Some(n) => reply::bulk(n),
                None => reply::null(self.key.resp3),
            },
            Route::ClientSetName if args.len() == 3 => self.set_name(&args[2]),
            Route::ClientNoop if args.len() == 3 => self.no_evict(&args[2]),
            Route::Unsubscribe if self.link.own().is_none() => {
                return self.unsubscribe_unsubscribed(args);
            }
            _ => return false,
        };
        self.reply(frame);
        true
    }

    /// True while the client is subscribed in RESP2: Redis refuses every command but
    /// the pub/sub ones, PING, QUIT and RESET, so they all go to Redis.
    fn subscribed_resp2(&self) -> bool {
        !self.key.resp3
            && self
                .link
                .own()
                .is_some_and(|o| o.conn.subscriptions().iter().any(|&n| n > 0))
    }

    /// `CLIENT REPLY ON|OFF|SKIP`: the proxy drops the replies itself (the commands
    /// still reach Redis).
    fn client_reply(&mut self, args: &[Bytes]) -> bool {
        let mode = args.get(2).map(|m| m.to_ascii_uppercase());
        let (mode, answer) = match (args.len(), mode.as_deref()) {
            (3, Some(b"ON")) => (ReplyMode::On, true),
            (3, Some(b"OFF")) => (ReplyMode::Off, false),
            (3, Some(b"SKIP")) => (ReplyMode::Skip, false),
            _ => {
                self.reply(Error::refused("syntax error").to_reply());
                return true;
            }
        };
        if self.reply_mode == ReplyMode::Off && mode == ReplyMode::Skip {
            return true; // Redis: SKIP while OFF changes nothing
        }
        self.reply_mode = mode;
        if answer {
            self.reply(Bytes::from_static(reply::OK));
        } else {
            self.count(crate::metrics::Outcome::Local);
        }
        true
    }

    /// UNSUBSCRIBE & co. from a client subscribed to nothing: Redis's replies (one per
    /// channel named, or one with a nil channel), in the client's protocol.
    fn unsubscribe_unsubscribed(&mut self, args: &[Bytes]) -> bool {
        let Some(kind) = SubKind::of(&args[0]) else {
            return false;
        };
        let head = if self.key.resp3 { ">3\r\n" } else { "*3\r\n" };
        let name = kind.as_str();
        let one = |channel: Option<&Bytes>| {
            let mut f = format!("{head}${}\r\n{name}\r\n", name.len()).into_bytes();
            match channel {
                Some(c) => f.extend_from_slice(&reply::bulk(c)),
                None => f.extend_from_slice(&reply::null(self.key.resp3)),
            }
            f.extend_from_slice(b":0\r\n");
            f
        };
        let mut frames = Vec::new();
        if args.len() == 1 {
            frames.extend(one(None));
        }
        for channel in &args[1..] {
            frames.extend(one(Some(channel)));
        }
        self.reply(Bytes::from(frames));
        true
    }
}

/// Routes that take a connection of the client's own.
fn needs_own(route: Route) -> bool {
    matches!(
        route,
        Route::Multi
            | Route::Watch
            | Route::Blocking
            | Route::Own
            | Route::Subscribe
            | Route::Sticky
    )
}
