//! Sending a command: the same stages in every state — namespace rules and
//! compression (`rewrite`), L1 invalidation, upstream — then on the client's own
//! connection (with the bookkeeping of MULTI, WATCH and subscriptions) or the pool.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{
    Flow, Session,
    effect::Effect,
    link::{Multi, Own},
    pending::Slot,
};
use crate::{
    command::{Classified, Route},
    error::Reply,
    policy::Policy,
    protocol::request::Request,
    rewrite::{Outgoing, Post, Queued, outgoing},
    upstream::{
        ReplyTo,
        expect::{Expect, PubSubCmd},
    },
};

impl Session {
    /// On the client's own connection: every command while it holds one.
    pub(super) async fn on_own(&mut self, req: Request, class: Classified) -> Flow {
        let tracking = tracking_effect(&req, &class); // with respite's ids, as sent
        let req = self.translate_client_ids(req, &class);
        if matches!(class.route, Route::Reset | Route::Quit) {
            return self.end_own(req, class.route);
        }
        let policy = self.ctx.policy.load_full();
        self.ns = namespace_of(&policy, &req, &class);
        let out = match outgoing(&req, &class, &policy).await {
            // Redis would run them on this connection, about its own clients.
            Ok(_) if self.link.in_multi() && super::who::lists_clients(class.route) => {
                Outgoing::refused(in_multi_refused(&req).to_reply())
            }
            Ok(out) => out,
            // Refused by a rule inside MULTI: Redis must abort the transaction at
            // EXEC as for any command refused while queueing, so it gets a command it
            // refuses, and the client gets the rule's error in its place.
            Err(e) if self.link.in_multi() => Outgoing::refused(e.to_reply()),
            Err(e) => {
                self.reply(e.to_reply());
                return Flow::Continue;
            }
        };
        let effect = match tracking {
            Some(tracking) => tracking,
            None => self.invalidate_writes(&req.args, &class),
        };
        let (expect, effect, post) = self.own_state(&req, &class, out.post, effect);
        let Some(own) = self.link.own() else {
            return Flow::Continue;
        };
        own.conn.send(out.cmd, expect, ReplyTo::Event);
        self.queue(Slot::Own, effect, post);
        Flow::Continue
    }

    /// RESET or QUIT on the own connection: sent to Redis, which drops the connection's
    /// subscriptions (and MULTI, WATCH, tracking) before it answers, so nobody can see
    /// them after the client got its answer. RESET then makes the session as new;
    /// after QUIT nothing more is read.
    fn end_own(&mut self, req: Request, route: Route) -> Flow {
        if route == Route::Reset && !self.drained() {
            self.deferred = Some(req);
            return Flow::Deferred;
        }
        let Some(own) = self.link.own() else {
            return Flow::Continue;
        };
        let (expect, effect) = match route {
            Route::Reset => (Expect::Reset, Effect::Reset),
            _ => (Expect::Frames(1), Effect::None),
        };
        own.conn.send(req.raw.clone(), expect, ReplyTo::Event);
        self.queue(Slot::Own, effect, Outgoing::plain(&req).post);
        if route == Route::Quit {
            self.close(); // like Redis, nothing sent after QUIT runs
        }
        Flow::Continue
    }

    /// How a command on the own connection changes its state; what its reply looks
    /// like, what it changes once answered, and how the reply is shaped.
    fn own_state(
        &mut self,
        req: &Request,
        class: &Classified,
        post: Post,
        effect: Effect,
    ) -> (Expect, Effect, Post) {
        let frames = post.frames.max(1);
        let Some(own) = self.link.own_mut() else {
            return (Expect::Frames(frames), effect, post);
        };
        if own.multi.is_some() {
            return in_multi(own, req, class.route, post, effect);
        }
        let expect = match class.route {
            Route::Multi => {
                own.multi = Some(Multi::default());
                Expect::Frames(frames)
            }
            Route::Watch => {
                own.watching = true;
                Expect::Frames(frames)
            }
            Route::Unwatch => {
                own.watching = false;
                Expect::Frames(frames)
            }
            Route::Subscribe | Route::Unsubscribe => match PubSubCmd::parse(&req.args) {
                Some(cmd) => Expect::PubSub(cmd),
                None => Expect::Frames(frames),
            },
            Route::Sticky | Route::Auth => {
                // MONITOR, CLIENT TRACKING; after AUTH the connection is someone else's:
                // the client keeps it.
                own.sticky = true;
                own.dirty = true;
                if req.name().eq_ignore_ascii_case(b"MONITOR") {
                    own.monitor = true;
                    Expect::Monitor
                } else {
                    Expect::Frames(frames)
                }
            }
            Route::Select => {
                let effect = super::connection::parse_db(req).map_or(Effect::None, Effect::Select);
                return (Expect::Frames(frames), effect, post);
            }
            Route::Hello => match super::connection::hello_protocol(req) {
                Some((resp3, name)) => {
                    own.dirty = true;
                    return (Expect::Hello(resp3), Effect::Hello { resp3, name }, post);
                }
                None => Expect::Frames(frames),
            },
            _ => Expect::Frames(frames),
        };
        (expect, effect, post)
    }

    /// On the shared pool: answered from L1 when it can be, else sent.
    pub(super) async fn on_pool(&mut self, req: Request, class: Classified) {
        // One look at the rules per command (a reload swaps them whole).
        let policy: Arc<Policy> = self.ctx.policy.load_full();
        self.ns = namespace_of(&policy, &req, &class);
        if self.cached_read(&req, &policy) {
            return;
        }
        self.plan_cache_count(&req, &policy);
        let out = match outgoing(&req, &class, &policy).await {
            Ok(out) => out,
            Err(e) => return self.reply(e.to_reply()),
        };
        let effect = self.invalidate_writes(&req.args, &class);
        self.send_pool(out, effect);
    }

    /// Sends `out` on the client's shared connection and queues its reply.
    pub(super) fn send_pool(&mut self, out: Outgoing, effect: Effect) {
        let (tx, rx) = oneshot::channel();
        let frames = out.frames();
        // The connection is borrowed only to send: no handle clone per request.
        self.pool
            .conn(self.id)
            .request_with(out.cmd, frames, ReplyTo::Oneshot(tx));
        self.queue(Slot::Oneshot(rx), effect, out.post);
    }

    /// Queues a reply that arrives on `rx` (an L1 fill, or with `unbounded` a long
    /// admin operation, which a stopping proxy does not wait for).
    pub(super) fn await_later(&mut self, rx: oneshot::Receiver<Reply>, unbounded: bool) {
        self.queue_with(Slot::Oneshot(rx), Effect::None, Post::default(), unbounded);
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
    pub(super) async fn switch_key(&mut self, key: crate::upstream::PoolKey) -> Result<(), Bytes> {
        match self.ctx.upstream.pool(&key).await {
            Ok(pool) => {
                self.pool = pool;
                self.key = key;
                Ok(())
            }
            Err(e) => Err(e.to_reply()),
        }
    }

    /// Client ids in CLIENT TRACKING … REDIRECT and CLIENT UNBLOCK are respite's own
    /// (CLIENT ID gives them): Redis gets the id of that client's own connection.
    fn translate_client_ids(&self, req: Request, class: &Classified) -> Request {
        let at = match class.sub.map(|s| s.name) {
            Some("client|tracking") => req
                .args
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"REDIRECT"))
                .map(|i| i + 1),
            Some("client|unblock") => Some(2),
            _ => None,
        };
        let Some(at) = at.filter(|&i| i < req.args.len()) else {
            return req;
        };
        let mut args = req.args;
        let upstream = match class.route {
            Route::Sticky => self.ctx.clients.redirect_to(&args[at]),
            _ => self.ctx.clients.upstream_id_of(&args[at]),
        };
        args[at] = Bytes::from(upstream.to_string());
        Request::from_args(args)
    }

    /// RESET: the client's own connection is closed (with it every subscription,
    /// tracking, MULTI and WATCH), and the session is as new.
    pub(super) fn reset(&mut self) {
        self.reset_state();
        self.reply(crate::protocol::reply::simple("RESET"));
    }
}

/// The namespace of `req`'s first key (0: none, or no namespace configured).
fn namespace_of(policy: &Policy, req: &Request, class: &Classified) -> u32 {
    if policy.rules().is_empty() {
        return 0;
    }
    class
        .effective()
        .and_then(|spec| spec.keys.first(&req.args))
        .and_then(|i| policy.lookup(&req.args[i]))
        .map_or(0, |rule| rule.stats.id)
}

/// What `CLIENT TRACKING ON|OFF … [REDIRECT id]` (as the client sent it) changes.
fn tracking_effect(req: &Request, class: &Classified) -> Option<Effect> {
    let args = &req.args;
    if class.sub.map(|s| s.name) != Some("client|tracking") || args.len() < 3 {
        return None;
    }
    let redirect = args
        .iter()
        .position(|a| a.eq_ignore_ascii_case(b"REDIRECT"))
        .and_then(|i| args.get(i + 1))
        .and_then(|id| std::str::from_utf8(id).ok()?.parse().ok());
    let on = args[2].eq_ignore_ascii_case(b"on");
    Some(Effect::Tracking { on, redirect })
}

fn in_multi_refused(req: &Request) -> crate::error::Error {
    let name = |i: usize| String::from_utf8_lossy(&req.args[i]).to_uppercase();
    crate::error::Error::refused(format!(
        "ERR {} {} inside MULTI is not supported through respite",
        name(0),
        name(1)
    ))
}

/// A command inside MULTI: queued (its effects kept for EXEC), or one Redis answers
/// at once (EXEC, DISCARD, MULTI, WATCH).
fn in_multi(
    own: &mut Own,
    req: &Request,
    route: Route,
    mut post: Post,
    effect: Effect,
) -> (Expect, Effect, Post) {
    let frames = post.frames.max(1);
    match route {
        Route::Exec => {
            let multi = own.multi.take().unwrap_or_default();
            own.watching = false;
            let mut effects = multi.writes;
            if !multi.selects.is_empty() {
                effects.push(Effect::ExecSelect(multi.selects));
            }
            post.exec = Some(multi.queued);
            (Expect::Exec(multi.pubsub), Effect::Many(effects), post)
        }
        Route::Discard => {
            own.multi = None;
            own.watching = false;
            (Expect::Frames(frames), Effect::None, post)
        }
        // Redis answers these inside MULTI without queueing them.
        Route::Multi | Route::Watch => (Expect::Frames(frames), Effect::None, post),
        route => {
            if let Some(multi) = own.multi.as_mut() {
                queue_in_multi(multi, req, route, &post, effect);
            }
            if matches!(route, Route::Auth | Route::Hello | Route::Sticky) {
                own.sticky = true; // its state after EXEC is not modelled
                own.dirty = true;
            }
            (Expect::Frames(frames), Effect::None, post)
        }
    }
}

/// Records a command queued inside MULTI (with the proxy's extras after it).
fn queue_in_multi(multi: &mut Multi, req: &Request, route: Route, post: &Post, effect: Effect) {
    let position = multi
        .queued
        .iter()
        .filter(|q| matches!(q, Queued::Client(_)))
        .count();
    multi.queued.push(Queued::Client(post.shape.clone()));
    let extras = post.frames.max(1) as usize - 1;
    multi
        .queued
        .extend(std::iter::repeat_n(Queued::Extra, extras));
    match route {
        Route::Select => multi
            .selects
            .extend(super::connection::parse_db(req).map(|db| (position, db))),
        Route::Subscribe | Route::Unsubscribe => multi.pubsub.extend(PubSubCmd::parse(&req.args)),
        _ => multi.writes.push(effect),
    }
}
