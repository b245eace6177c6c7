//! Routing one command: to the client's shared pool connection, to a dedicated
//! connection (MULTI, WATCH, blocking), to streaming mode, or answered here.

use super::{AdminAnswer, AdminCaller, Effect, Flow, PinState, Pinned, Session};
use crate::rewrite::{Outgoing, Queued, outgoing};
use crate::{
    command::{self, Classified, Kind, Route},
    protocol::{reply, request::Request},
    upstream::PoolKey,
};

impl Session {
    /// Dispatches one command. `None`: it must wait for earlier replies (it is kept as
    /// `deferred` and retried once they are in).
    pub(super) async fn dispatch(&mut self, req: Request) -> Option<Flow> {
        if self.detaching.is_some() {
            // The transaction turned the connection into a stream: wait for EXEC.
            self.deferred = Some(req);
            return None;
        }
        if req.name().eq_ignore_ascii_case(b"RESPITE") {
            self.kind = Kind::Admin;
            self.respite(&req);
            return Some(Flow::Continue);
        }
        let class = command::classify(&req.args);
        self.kind = class.kind;
        let route = class.route;
        if let Some(flow) = self.local(&req, route) {
            return Some(flow);
        }
        if self.pinned.as_ref().is_some_and(|p| p.conn.is_down()) && self.drained() {
            // Redis dropped the dedicated connection and with it the MULTI/WATCH state,
            // as it would for a direct client that reconnects.
            self.pinned = None;
        }
        if self
            .pinned
            .as_ref()
            .is_some_and(|p| p.state != PinState::Done)
        {
            return self.dispatch_pinned(req, class).await;
        }
        let switches = !matches!(
            route,
            Route::Forward | Route::Unsubscribe | Route::Exec | Route::Discard | Route::Unwatch
        );
        let keeps_blocking_conn = route == Route::Blocking && self.pinned.is_some();
        if (self.pinned.is_some() || self.repool || switches) && !keeps_blocking_conn {
            if !self.drained() {
                self.deferred = Some(req);
                return None;
            }
            self.release_pinned();
            if self.repool && !self.refresh_pool().await {
                return Some(Flow::Continue);
            }
        }
        Some(self.dispatch_unpinned(req, class).await)
    }

    /// `RESPITE …`: answered above this layer.
    fn respite(&mut self, req: &Request) {
        let caller = AdminCaller {
            key: &self.key,
            client_name: self.name.as_ref(),
            authenticated: self.admin_ok,
        };
        match self.ctx.admin.call(req, &caller) {
            AdminAnswer::Reply(reply) => self.reply(reply.unwrap_or_else(|e| e.to_reply())),
            AdminAnswer::Later(rx) => self.await_unbounded(rx),
            AdminAnswer::Authenticated => {
                self.admin_ok = true;
                self.reply(bytes::Bytes::from_static(reply::OK));
            }
        }
    }

    /// Commands answered by the proxy whatever the connection state.
    fn local(&mut self, req: &Request, route: Route) -> Option<Flow> {
        let in_multi = self
            .pinned
            .as_ref()
            .is_some_and(|p| p.state == PinState::Multi);
        let frame = match route {
            Route::Quit => {
                // Like Redis, nothing sent after QUIT runs.
                self.closing = true;
                self.inbuf.clear();
                reply::simple("OK")
            }
            Route::Refuse => reply::error(&format!(
                "ERR {} is not supported through respite (replication must connect to Redis directly)",
                String::from_utf8_lossy(req.name()).to_uppercase()
            )),
            // Inside MULTI Redis queues these; only the proxy-only ones stay local.
            _ if in_multi => return None,
            Route::ClientGetName if req.args.len() == 2 => match &self.name {
                Some(n) => reply::bulk(n),
                None => reply::null(self.key.resp3),
            },
            Route::ClientSetName if req.args.len() == 3 => self.set_name(&req.args[2]),
            Route::ClientSetInfo if req.args.len() == 4 => Self::set_info(&req.args[2]),
            Route::ClientNoop if req.args.len() == 3 => reply::simple("OK"),
            _ => return None,
        };
        self.reply(frame);
        Some(Flow::Continue)
    }

    /// With a MULTI or WATCH open, everything goes to the dedicated connection, where
    /// Redis queues or runs it in order.
    async fn dispatch_pinned(&mut self, req: Request, class: Classified) -> Option<Flow> {
        let route = class.route;
        let mut deadline = self.deadline();
        let mut effect = self.invalidate_writes(&req.args, &class);
        let in_multi = self
            .pinned
            .as_ref()
            .is_some_and(|p| p.state == PinState::Multi);
        let policy = self.ctx.policy.load_full();
        let mut out = match outgoing(&req, &class, &policy).await {
            Ok(out) => out,
            Err(e) if in_multi => {
                // Refused by a rule inside MULTI: Redis must abort the transaction at
                // EXEC as for any command refused while queueing, so it gets a command
                // it refuses, and the client gets the rule's error in its place.
                let conn = self.pinned.as_ref().expect("pinned").conn.clone();
                self.forward(
                    &conn,
                    Outgoing::refused(e.to_reply()),
                    deadline,
                    Effect::None,
                );
                return Some(Flow::Continue);
            }
            Err(e) => {
                self.reply(e.to_reply());
                return Some(Flow::Continue);
            }
        };
        let pinned = self.pinned.as_mut().expect("pinned");
        match (pinned.state, route) {
            (PinState::Multi, Route::Exec) => {
                pinned.state = PinState::Done;
                let mut effects = std::mem::take(&mut pinned.queued_writes);
                if let Some(db) = pinned.queued_select.take() {
                    effects.push(Effect::ExecSelect(db));
                }
                effect = Effect::Many(effects);
                out.post.exec = Some(std::mem::take(&mut pinned.queued));
                if pinned.queued_stream {
                    // SUBSCRIBE (or MONITOR…) ran inside the transaction: after EXEC the
                    // connection streams, so the client keeps it in streaming mode.
                    let conn = pinned.conn.clone();
                    self.forward(&conn, out, deadline, effect);
                    self.detaching = Some(conn.detach());
                    self.pinned = None;
                    return Some(Flow::Continue);
                }
            }
            (PinState::Multi, Route::Discard) => {
                pinned.state = PinState::Done;
                pinned.queued_select = None;
                pinned.queued_writes.clear();
            }
            // Redis answers these inside MULTI without queueing them.
            (PinState::Multi, Route::Multi | Route::Watch) => {}
            (PinState::Multi, Route::Select) => {
                pinned.queue(&out);
                pinned.queued_select = parse_db(&req);
            }
            (PinState::Multi, Route::Auth | Route::Hello | Route::Reset | Route::ClientSetName) => {
                pinned.queue(&out);
                pinned.dirty = true;
            }
            (PinState::Multi, Route::Relay) => {
                pinned.queue(&out);
                pinned.dirty = true;
                pinned.queued_stream = true;
            }
            // Queued writes take effect at EXEC.
            (PinState::Multi, _) => {
                pinned.queue(&out);
                pinned
                    .queued_writes
                    .push(std::mem::replace(&mut effect, Effect::None));
            }
            (PinState::Watching, Route::Multi) => pinned.state = PinState::Multi,
            (PinState::Watching, Route::Exec | Route::Discard | Route::Unwatch) => {
                pinned.state = PinState::Done;
            }
            (PinState::Watching, Route::Select) => {
                if let Some(db) = parse_db(&req) {
                    effect = Effect::Select(db);
                }
            }
            (PinState::Watching, Route::Blocking) => deadline = None,
            (PinState::Watching, Route::Relay | Route::Auth | Route::Hello | Route::Reset) => {
                // These change the whole connection: leave WATCH (as a disconnect would).
                if !self.drained() {
                    self.deferred = Some(req);
                    return None;
                }
                self.pinned = None; // watched keys and all: never reused
                return Some(self.dispatch_unpinned(req, class).await);
            }
            (PinState::Watching, _) => {}
            (PinState::Done, _) => unreachable!("dispatch_pinned needs an open state"),
        }
        let conn = self.pinned.as_ref().expect("pinned").conn.clone();
        self.forward(&conn, out, deadline, effect);
        Some(Flow::Continue)
    }

    /// Routes a command when no MULTI/WATCH is open (earlier replies are in whenever
    /// the command switches connection).
    async fn dispatch_unpinned(&mut self, req: Request, class: Classified) -> Flow {
        match class.route {
            Route::Multi => self.pin_and_send(req, PinState::Multi).await,
            Route::Blocking => match outgoing(&req, &class, &self.ctx.policy.load_full()).await {
                Ok(out) => {
                    let effect = self.invalidate_writes(&req.args, &class);
                    self.send_blocking(out, effect).await;
                }
                Err(e) => self.reply(e.to_reply()),
            },
            Route::Watch => self.pin_and_send(req, PinState::Watching).await,
            // A real CLIENT ID needs a connection of the client's own: it is what
            // CLIENT TRACKING … REDIRECT, CLIENT KILL ID and CLIENT UNBLOCK refer to.
            Route::Relay | Route::ClientId => return Flow::Relay(req),
            Route::Select => self.select(req).await,
            Route::Auth => self.auth(req).await,
            Route::Hello => self.hello(req).await,
            Route::Reset => self.reset(),
            _ => {
                // One look at the rules per command (a reload swaps them whole).
                let policy = self.ctx.policy.load();
                if self.cached_read(&req, &policy) {
                    return Flow::Continue;
                }
                match outgoing(&req, &class, &policy).await {
                    Ok(out) => {
                        let effect = self.invalidate_writes(&req.args, &class);
                        self.forward_pooled(out, effect);
                    }
                    Err(e) => self.reply(e.to_reply()),
                }
            }
        }
        Flow::Continue
    }

    async fn pin_and_send(&mut self, req: Request, state: PinState) {
        let key = self.key.clone();
        match self.ctx.upstream.dedicated(&key).await {
            Ok(conn) => {
                let deadline = self.deadline();
                self.forward(&conn, Outgoing::plain(&req), deadline, Effect::None);
                self.pinned = Some(Pinned::new(conn, key, state));
            }
            Err(e) => self.reply(e.to_reply()),
        }
    }

    /// Blocking commands wait on a connection of their own, without a timeout; a
    /// client that keeps blocking keeps its connection.
    async fn send_blocking(&mut self, out: Outgoing, effect: Effect) {
        if let Some(p) = &self.pinned {
            let conn = p.conn.clone();
            self.forward(&conn, out, None, effect);
            return;
        }
        let key = self.key.clone();
        match self.ctx.upstream.dedicated(&key).await {
            Ok(conn) => {
                self.forward(&conn, out, None, effect);
                self.pinned = Some(Pinned::new(conn, key, PinState::Done));
            }
            Err(e) => self.reply(e.to_reply()),
        }
    }

    /// Gives the dedicated connection back (or closes it if its state is unknown).
    pub(super) fn release_pinned(&mut self) {
        if let Some(p) = self.pinned.take()
            && !p.dirty
            && p.state == PinState::Done
        {
            self.ctx.upstream.release(&p.key, p.conn);
        }
    }

    /// Looks up the pool for the current key; on failure the error is the reply.
    pub(super) async fn refresh_pool(&mut self) -> bool {
        self.repool = false;
        match self.ctx.upstream.pool(&self.key).await {
            Ok(pool) => {
                self.pool = pool;
                true
            }
            Err(e) => {
                self.reply(e.to_reply());
                false
            }
        }
    }

    /// Switches to the pool of `key`, checking it with Redis.
    pub(super) async fn switch_key(&mut self, key: PoolKey) -> Result<(), bytes::Bytes> {
        match self.ctx.upstream.pool(&key).await {
            Ok(pool) => {
                self.pool = pool;
                self.key = key;
                Ok(())
            }
            Err(e) => Err(e.to_reply()),
        }
    }
}

impl Pinned {
    fn new(conn: crate::upstream::Conn, key: PoolKey, state: PinState) -> Self {
        Self {
            conn,
            key,
            state,
            dirty: false,
            queued_select: None,
            queued_stream: false,
            queued_writes: Vec::new(),
            queued: Vec::new(),
        }
    }

    /// Records a command queued inside MULTI, with the proxy's extras after it.
    fn queue(&mut self, out: &Outgoing) {
        self.queued.push(Queued::Client(out.post.shape.clone()));
        let extras = out.frames() as usize - 1;
        self.queued
            .extend(std::iter::repeat_n(Queued::Extra, extras));
    }
}

/// The db of a well-formed `SELECT n`.
pub(super) fn parse_db(req: &Request) -> Option<u32> {
    if req.args.len() != 2 {
        return None;
    }
    std::str::from_utf8(&req.args[1]).ok()?.parse().ok()
}
