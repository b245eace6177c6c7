//! One client connection: framing, pipelining with replies in request order, and the
//! client's state.
//!
//! A session is one task. Each turn of its loop dispatches every complete command
//! read so far (each becomes an entry of [`pending`], in order), moves the replies
//! that are in to the output buffer, then waits for whichever comes first: the
//! oldest reply, an event of its own upstream connection, the socket becoming
//! writable, or more input.
//!
//! ## The client's state
//! - **link** ([`link`]): `Pooled` — commands go to the shared pipelined connection of
//!   the client's key (db, user, protocol), reads may be answered from L1; or `Own` —
//!   a connection of the client's own, which every command goes to while it is held.
//!   `Pooled → Own` on MULTI, WATCH, a blocking command, a script or another command
//!   that must not share a connection (`Route::Own`), SUBSCRIBE, MONITOR and CLIENT
//!   TRACKING, once every earlier reply is in (so Redis sees the client's commands in
//!   order). `Own → Pooled` once nothing holds it (no MULTI, WATCH, subscription or
//!   sticky state) and no reply is outstanding on it; it is reused by another client
//!   only if its state is that of a new connection. A pooled client's CLIENT UNPAUSE
//!   is the one exception to that order: it goes at once on a borrowed connection
//!   (`Route::Unpause`), since its earlier replies may wait behind a paused write.
//! - **key**: SELECT, AUTH, HELLO, RESET move the client to the pool of another key.
//! - **reply mode**: CLIENT REPLY ON / OFF / SKIP (the proxy drops the replies).
//! - **phase**: open; closing (QUIT, a protocol error, shutdown: answer what was
//!   sent, then close); gone (the client disconnected: its own connection is closed at
//!   once, so Redis drops a blocked command and whatever the client sent after it).
//!
//! Every command, in every state, goes through the same stages (`send.rs`):
//! classify, namespace rules and compression (`rewrite`), L1 invalidation and the
//! client's unacknowledged writes (`effect`), upstream, then the reply restored.
//!
//! ## What one client cannot do to the others
//! - Outgrow its budget: every byte queued for it counts (`max_output_buffer`: no
//!   more commands are read while above; `output_buffer_limit`: closed above, as
//!   Redis's client-output-buffer-limit does). Its own connection's events are taken
//!   only within the budget, so Redis holds what it does not read.
//! - Stall a shared connection: anything that may run long, block, or produce replies
//!   nobody asked for runs on a connection of its own.
//! - See another's data: L1 entries are scoped by db and user, and a user's go when
//!   its ACL changes (`cache.rs` for ACL commands sent through the proxy).

mod cache;
mod clients;
mod connection;
mod control;
mod dispatch;
mod effect;
mod link;
mod listing;
mod pending;
mod send;
mod stream;
mod who;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::AsyncWriteExt,
    sync::{mpsc, watch},
};
use tracing::{debug, warn};

pub use clients::{Clients, Peer};
use clients::{LastCmd, Signal};
pub use control::{AdminAnswer, AdminCaller, AdminCommands};
use effect::{Effect, Unacked};
use link::Link;
use pending::{CacheCount, Finish, Pending, Slot};
pub use stream::ClientStream;
use stream::{Done, Want};

use crate::{
    command::Kind,
    compress::Opener,
    config::ServerConfig,
    error::{Error, Reply},
    l1::L1,
    metrics::{CacheResult, LatencyBatch, Metrics, NamespaceStats, Outcome, clock},
    policy::Rules,
    protocol::request::{Limits, Request, RequestParser},
    upstream::{Event, Pool, PoolKey, Upstream},
};

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// Input read ahead while commands wait (a barrier, a full pipeline): enough to see
/// a client that sent commands and disconnected, bounded so one that keeps sending
/// is held back by TCP.
const READ_AHEAD: usize = 64 * 1024;

/// Outstanding replies allowed at first, and at least.
const FIRST_WINDOW: usize = 64;
/// Keys of joined reads remembered; past this, every write waits for the replies.
const JOINED_KEPT: usize = 256;
const MIN_WINDOW: usize = 4;

/// What every session shares.
pub struct Context {
    /// `[server]`: the limits a session enforces.
    pub limits: ServerConfig,
    pub upstream: Arc<Upstream>,
    pub policy: Arc<Rules>,
    pub l1: Arc<L1>,
    pub metrics: Arc<Metrics>,
    pub admin: Arc<dyn AdminCommands>,
    pub clients: Arc<Clients>,
    /// Opens the compression envelopes in replies (bounded by `server.max_bulk_len`).
    pub opener: Opener,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// No more input is read; what was sent is answered, then the connection closes.
    Closing,
    /// The client is gone (or the proxy stops): nothing more is written.
    Gone,
}

/// CLIENT REPLY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplyMode {
    On,
    Off,
    /// The next command's reply is dropped.
    Skip,
}

/// What dispatching asks of the loop.
enum Flow {
    Continue,
    /// The command waits until every earlier reply is in (kept as `deferred`).
    Deferred,
}

pub struct Session {
    ctx: Arc<Context>,
    id: u64,
    /// What other sessions see of this one.
    entry: Arc<clients::ClientEntry>,
    key: PoolKey,
    /// The credentials the L1 scope was looked up for, and that scope.
    scope: (Option<Arc<crate::upstream::Credentials>>, u64),
    pool: Arc<Pool>,
    /// The pool must be looked up again (the key changed on the own connection).
    repool: bool,
    link: Link,
    pending: Pending,
    /// A command that waits for every earlier reply (the barrier) before dispatch.
    deferred: Option<Request>,
    parser: RequestParser,
    inbuf: BytesMut,
    out: BytesMut,
    phase: Phase,
    reply_mode: ReplyMode,
    unacked: Unacked,
    name: Option<Bytes>,
    /// `RESPITE AUTH` succeeded on this connection.
    admin_ok: bool,
    /// The kind of the command being dispatched (counted with its outcome).
    kind: Kind,
    /// Keys of reads that joined another client's fill, until every reply is in: a
    /// write of one waits for them (the fill may run after it on its connection).
    joined: Vec<Bytes>,
    /// Replies allowed outstanding (see [`Session::window`]).
    window: usize,
    /// Wakes when another client kills this one (CLIENT KILL) or the idle sweep
    /// finds it idle.
    signal: mpsc::Receiver<()>,
    /// When the input being dispatched arrived (see `metrics::clock`).
    arrived: u64,
    /// The namespace of the command being dispatched (0: none), and how its reply
    /// counts as cacheable reads.
    ns: u32,
    cache: CacheCount,
    /// Latencies not yet added to the shared histograms.
    latency: LatencyBatch,
    /// What `CLIENT LIST` shows of this client, beyond its key and name.
    shown: Shown,
}

/// What the session counts only for `CLIENT LIST`.
#[derive(Default)]
struct Shown {
    cmd: LastCmd,
    lib_name: Option<Bytes>,
    lib_ver: Option<Bytes>,
    no_evict: bool,
    net_in: u64,
    net_out: u64,
    cmds: u64,
    /// Something shown changed since the state was last published.
    stale: bool,
    /// CLIENT TRACKING is on, and the client its invalidations go to.
    tracking: bool,
    redir: Option<u64>,
    /// Something happened that counts as activity (`idle` of CLIENT LIST, `[server]
    /// timeout`) besides a command: an event of its own connection, replies that were
    /// outstanding when the idle sweep looked, input read while it looked.
    active: bool,
    /// The idle sweep found it waiting for replies: it is active again once they are
    /// all in.
    touch_when_drained: bool,
}

impl Shown {
    /// The command being dispatched names upstream client ids in its reply.
    fn names_clients(&self) -> bool {
        matches!(
            self.cmd,
            LastCmd::Known("client|getredir" | "client|trackinginfo")
        )
    }
}

/// Serves one client until it disconnects, quits, or the proxy shuts down; `peer`
/// is what `CLIENT LIST` shows of its socket.
pub async fn serve<S: ClientStream>(
    ctx: Arc<Context>,
    mut stream: S,
    peer: Peer,
    stop: watch::Receiver<bool>,
) {
    let mut session = Session::new(ctx, peer);
    debug!(client_id = session.id, "connected");
    let result = session.run(&mut stream, stop).await;
    session.leave();
    debug!(client_id = session.id, ?result, "disconnected");
}

impl Session {
    /// A session in its initial state (the URL's db and user, RESP2).
    fn new(ctx: Arc<Context>, peer: Peer) -> Session {
        let limits = Limits {
            max_bulk_len: ctx.limits.max_bulk_len.as_u64() as usize,
            max_args: ctx.limits.max_args,
            max_inline_len: ctx.limits.max_inline_len.as_u64() as usize,
        };
        let id = NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed);
        let key = ctx.upstream.initial_key();
        let (entry, signal) = ctx.clients.add(id, peer, key.clone());
        Session {
            id,
            entry,
            scope: (key.creds.clone(), crate::l1::OWN),
            key,
            pool: ctx.upstream.initial_pool(),
            repool: false,
            link: Link::Pooled,
            pending: Pending::default(),
            deferred: None,
            parser: RequestParser::new(limits),
            inbuf: BytesMut::with_capacity(16 * 1024),
            out: BytesMut::with_capacity(16 * 1024),
            phase: Phase::Open,
            reply_mode: ReplyMode::On,
            unacked: Unacked::default(),
            name: None,
            admin_ok: false,
            kind: Kind::Unknown,
            joined: Vec::new(),
            window: FIRST_WINDOW,
            signal,
            arrived: clock::now_ticks(),
            ns: 0,
            cache: CacheCount::None,
            latency: LatencyBatch::default(),
            shown: Shown::default(),
            ctx,
        }
    }

    async fn run<S: ClientStream>(
        &mut self,
        stream: &mut S,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let hard_limit = self.ctx.limits.output_buffer_limit.as_u64() as usize;
        loop {
            let hungry = self.settle().await;
            if self.pending.is_empty() || self.latency.is_full() {
                self.flush_latency(); // once every reply is in, not on every turn
            }
            if self.shown.touch_when_drained && self.pending.is_empty() {
                self.shown.touch_when_drained = false;
                self.touch();
            }
            self.publish(false);
            if self.queued() > hard_limit {
                warn!(
                    client_id = self.id,
                    queued = self.queued(),
                    "closing a client over output_buffer_limit"
                );
                self.ctx.metrics.clients.over_limit();
                return Ok(());
            }
            self.release_own();
            if self.finished() {
                self.flush(stream).await?;
                return stream.shutdown().await;
            }
            let gone = self.phase == Phase::Gone;
            let want = Want::new(stream, &self.out, gone, self.read_limit(hungry));
            // Its own connection's events are taken while the client's bytes allow
            // (they never add an entry to wait for, only bytes).
            let taking = self.link.own().is_some_and(|o| !o.gone) && self.queued() < self.max_out();
            tokio::select! {
                biased;
                () = self.pending.front_in() => {}
                event = own_event(&mut self.link), if taking => {
                    self.on_event(event);
                    self.more_events();
                }
                done = stream::io(stream, &mut self.out, &mut self.inbuf, want), if want.any() => {
                    match done? {
                        Done::Written(n) => self.shown.net_out += n as u64,
                        Done::Flushed => {}
                        Done::Read(0) => self.on_disconnect(),
                        Done::Read(n) => {
                            self.shown.net_in += n as u64;
                            self.arrived = clock::now_ticks();
                        }
                    }
                }
                Some(()) = self.signal.recv(), if self.phase != Phase::Gone => self.on_signal(),
                _ = stop.changed(), if self.phase == Phase::Open => self.on_stop(),
            }
        }
    }

    /// How much input to read now (0: none): anything while every command read has
    /// been dispatched, a little ahead while some wait (to notice a client that sent
    /// commands and left).
    fn read_limit(&self, hungry: bool) -> usize {
        match self.phase {
            Phase::Open if hungry => usize::MAX,
            Phase::Open => READ_AHEAD.saturating_sub(self.inbuf.len()),
            _ => 0,
        }
    }

    /// True once nothing is left to do: gone, or closing with every reply written.
    fn finished(&self) -> bool {
        match self.phase {
            Phase::Open => false,
            Phase::Closing => self.pending.is_empty() && self.deferred.is_none(),
            Phase::Gone => true,
        }
    }

    /// Dispatches what the input holds and collects the replies that are in, again
    /// while collecting frees budget. True when every complete command was dispatched
    /// (more input is welcome).
    async fn settle(&mut self) -> bool {
        loop {
            let hungry = self.dispatch_input().await;
            let outstanding = self.pending.len();
            self.collect_ready();
            // Replies collected free budget, or let a deferred command go.
            if hungry || self.pending.len() == outstanding {
                return hungry;
            }
        }
    }

    /// Parses and dispatches every complete command in the input buffer, while the
    /// client's budget allows. True when it stopped for want of input.
    async fn dispatch_input(&mut self) -> bool {
        while self.phase == Phase::Open || self.deferred.is_some() && self.phase == Phase::Closing {
            if !self.within_budget() {
                return false;
            }
            let req = match self.deferred.take() {
                Some(req) => req,
                None => match self.parser.next(&mut self.inbuf) {
                    Ok(Some(req)) => req,
                    Ok(None) => return true,
                    Err(e) => {
                        // Not a command: not counted.
                        self.push_reply(Error::refused(e.to_string()).to_reply());
                        self.close();
                        return false;
                    }
                },
            };
            if let Flow::Deferred = self.dispatch(req).await {
                return false;
            }
        }
        false
    }

    /// True while more replies may be queued for the client: fewer than
    /// `max_pipeline` outstanding and fewer than `max_output_buffer` bytes queued.
    fn within_budget(&self) -> bool {
        self.pending.len() < self.window() && self.queued() < self.max_out()
    }

    /// How many replies may be outstanding: up to `max_pipeline`, fewer while this
    /// client's replies pile up (a client that pipelines 2,000 GETs of 1 MiB gets
    /// them a window at a time, not 2 GB at once). The window grows by one per reply
    /// while little is queued, and halves when `max_output_buffer` is passed.
    fn window(&self) -> usize {
        self.window.min(self.ctx.limits.max_pipeline)
    }

    /// Adjusts the window after a reply came in.
    fn adjust_window(&mut self) {
        let (queued, max_out) = (self.queued(), self.max_out());
        if queued > max_out {
            self.window = (self.window / 2).max(MIN_WINDOW);
        } else if queued < max_out / 2 {
            self.window = (self.window + 1).min(self.ctx.limits.max_pipeline);
        }
    }

    fn max_out(&self) -> usize {
        self.ctx.limits.max_output_buffer.as_u64() as usize
    }

    /// Bytes queued for the client.
    fn queued(&self) -> usize {
        self.out.len() + self.pending.held()
    }

    /// Stops reading: what was sent is answered, then the connection closes.
    fn close(&mut self) {
        self.shown.stale = true;
        if self.phase == Phase::Open {
            self.phase = Phase::Closing;
        }
        self.inbuf.clear();
    }

    /// The client disconnected: as Redis does, nothing it sent is run any more, and
    /// its own connection is closed (dropping a blocked command with it). Its writes
    /// in flight may have been applied: their L1 effects are applied now.
    fn on_disconnect(&mut self) {
        self.phase = Phase::Gone;
        self.inbuf.clear();
        self.deferred = None;
        self.leave();
    }

    /// Another client killed this one, or the idle sweep found it idle.
    fn on_signal(&mut self) {
        match self.entry.take_signal() {
            Signal::Kill => self.on_disconnect(),
            Signal::Idle { cmds } => self.on_idle(cmds),
            Signal::None => {}
        }
    }

    /// The idle sweep saw this client idle past `[server] timeout` after its `cmds`-th
    /// command. Closed as Redis closes an idle client (no reply), unless it ran a
    /// command since, read input lately (a command on its way) or still waits for
    /// replies (then it is idle from when they are in).
    fn on_idle(&mut self, cmds: u64) {
        if cmds != self.shown.cmds {
            return;
        }
        let quiet = clock::now_ticks().saturating_sub(self.arrived);
        if quiet <= self.ctx.limits.timeout.as_nanos() as u64 {
            self.touch();
        } else if !self.pending.is_empty() {
            self.shown.touch_when_drained = true;
        } else {
            debug!(
                client_id = self.id,
                "closing an idle client (server.timeout)"
            );
            self.on_disconnect();
        }
    }

    /// Counts as activity now, for CLIENT LIST's `idle` and `[server] timeout`.
    fn touch(&mut self) {
        self.shown.active = true;
        self.shown.stale = true;
    }

    /// The proxy is stopping: answer what was sent, but do not wait for blocking
    /// commands.
    fn on_stop(&mut self) {
        self.close();
        if self.pending.waits_forever() {
            self.on_disconnect();
        }
    }

    /// An event of the own connection.
    fn on_event(&mut self, event: Option<Event>) {
        self.touch(); // subscriptions, blocking: shown anew

        match event {
            Some(Event::Reply(reply)) => {
                if !self.pending.own_reply(reply) {
                    // Nothing waits for it: the connection is out of step.
                    self.drop_own();
                }
            }
            // Redis sends pushes whatever CLIENT REPLY says.
            Some(Event::Push(frame)) => self.pending.push_after_own(frame),
            None => {
                self.pending.own_lost();
                let Some(own) = self.link.own_mut() else {
                    return;
                };
                own.gone = true;
                if own.streams() {
                    // Subscriptions, MONITOR, tracking: gone with the connection. The
                    // client learns it as it would from Redis: its connection closes.
                    self.close();
                }
            }
        }
    }

    /// Takes the own connection's events already in (a reply and the pushes Redis
    /// sent right after it), so pushes are placed before the replies collected next.
    fn more_events(&mut self) {
        while self.queued() < self.max_out() {
            let Some(own) = self.link.own_mut() else {
                return;
            };
            match own.events.try_recv() {
                Ok(event) => self.on_event(Some(event)),
                Err(_) => return,
            }
        }
    }

    /// Closes the own connection now; replies still owed on it fail.
    fn drop_own(&mut self) {
        if self.unlink().is_some() {
            self.pending.own_lost();
        }
    }

    /// Back to the pool: the own connection, if there was one.
    fn unlink(&mut self) -> Option<link::Own> {
        self.entry.set_upstream_id(0);
        match std::mem::replace(&mut self.link, Link::Pooled) {
            Link::Own(own) => Some(own),
            Link::Pooled => None,
        }
    }

    /// Goes back to the pool once nothing holds the own connection and no reply is
    /// outstanding on it.
    fn release_own(&mut self) {
        let free = match &self.link {
            Link::Own(own) => {
                own.gone
                    || (!own.held()
                        && self.pending.own_waiting() == 0
                        && !self.entry.is_redirect_target())
            }
            Link::Pooled => false,
        };
        if !free {
            return;
        }
        if let Some((key, d)) = self.unlink().and_then(link::Own::into_reusable) {
            self.ctx.upstream.release(&key, d);
        }
    }

    /// The client is gone: writes still in flight may have been applied.
    fn leave(&mut self) {
        self.flush_latency();
        self.phase = Phase::Gone;
        self.ctx.clients.remove(self.id);
        for finish in self.pending.abandon() {
            finish.effect.apply_l1(&self.ctx.l1);
        }
        self.drop_own();
    }

    /// Queues the proxy's own answer to the command being dispatched.
    fn reply(&mut self, frame: Bytes) {
        self.count(Outcome::of_local_reply(&frame));
        self.push_reply(frame);
    }

    /// Queues a reply that needs no upstream round trip (not counted), unless the
    /// client turned replies off.
    fn push_reply(&mut self, frame: Bytes) {
        if self.silenced() {
            return;
        }
        if self.pending.is_empty() {
            self.out.extend_from_slice(&frame);
        } else {
            self.pending.push(Slot::Ready(frame), None);
        }
    }

    /// Like `push_reply`, copying straight into the output when nothing is ahead of it.
    fn reply_slice(&mut self, frame: &[u8]) {
        if self.silenced() {
            return;
        }
        if self.pending.is_empty() {
            self.out.extend_from_slice(frame);
        } else {
            let frame = Bytes::copy_from_slice(frame);
            self.pending.push(Slot::Ready(frame), None);
        }
    }

    /// True if the reply of the command being dispatched is dropped (CLIENT REPLY);
    /// a SKIP applies to this one command only.
    fn silenced(&mut self) -> bool {
        match self.reply_mode {
            ReplyMode::On => false,
            ReplyMode::Off => true,
            ReplyMode::Skip => {
                self.reply_mode = ReplyMode::On;
                true
            }
        }
    }

    /// Counts the command being dispatched, answered with `outcome` (now: its latency).
    #[inline]
    fn count(&mut self, outcome: Outcome) {
        self.ctx.metrics.request(self.kind, outcome);
        self.record_latency(self.kind, self.ns, self.arrived);
    }

    fn record_latency(&mut self, kind: Kind, ns: u32, arrived: u64) {
        if self.latency.other_than(ns, kind) {
            self.flush_latency();
        }
        // The clock as the read that woke this turn left it (see `metrics::clock`).
        let took = clock::recent_ticks().saturating_sub(arrived);
        self.latency.record(ns, kind, took);
    }

    /// Adds the latencies recorded since the last flush to the shared histograms.
    fn flush_latency(&mut self) {
        if self.latency.is_empty() {
            return;
        }
        let batch = &self.latency;
        let namespaces = &self.ctx.metrics.namespaces;
        namespaces.with_or_none(batch.ns, |s| s.latency.add_batch(batch.kind, batch));
        self.latency.clear();
    }

    /// Counts a reply as cacheable reads of their namespaces.
    fn count_cache(&self, plan: &CacheCount, frame: &Bytes) {
        let namespaces = &self.ctx.metrics.namespaces;
        let one = |ns: u32, frame: &[u8], from_l1: bool| {
            if let Some(result) = CacheResult::of(frame, from_l1) {
                namespaces.with(ns, |s| s.count_cache(result));
            }
        };
        match plan {
            CacheCount::None => {}
            CacheCount::One(ns) => one(*ns, frame, false),
            CacheCount::Mget(keys) => {
                let elements = crate::protocol::reply::array_elements(frame).unwrap_or_default();
                for (&(ns, from_l1), e) in keys.iter().zip(&elements) {
                    one(ns, e, from_l1);
                }
            }
        }
    }

    /// Counts an L1 lookup of namespace `ns`.
    #[inline]
    fn count_lookup(&self, ns: &NamespaceStats, hit: bool) {
        if hit {
            ns.count_hit();
        } else {
            ns.count_miss();
        }
    }

    /// Queues the reply of the command being dispatched.
    fn queue(&mut self, slot: Slot, effect: Effect, post: crate::rewrite::Post) {
        let unbounded = self.kind == Kind::Blocking;
        self.queue_with(slot, effect, post, unbounded);
    }

    /// `queue`, saying whether the reply may take forever by design.
    fn queue_with(
        &mut self,
        slot: Slot,
        effect: Effect,
        post: crate::rewrite::Post,
        unbounded: bool,
    ) {
        let unacked = self.unacked.add(&effect);
        let silent = self.silenced();
        let finish = Finish {
            effect,
            post,
            kind: self.kind,
            silent,
            unacked,
            unbounded,
            names_clients: self.shown.names_clients(),
            arrived: self.arrived,
            ns: self.ns,
            cache: std::mem::take(&mut self.cache),
        };
        self.pending.push(slot, Some(finish));
    }

    /// Moves every reply that is in from the front of the queue to the output.
    fn collect_ready(&mut self) {
        if self.pending.is_empty() {
            self.joined.clear();
        }
        while let Some((reply, finish)) = self.pending.pop_ready() {
            match finish {
                None => {
                    if let Ok(frame) = reply {
                        self.write(&frame);
                    }
                }
                Some(finish) => self.complete(reply, finish),
            }
        }
    }

    /// A reply at the front of the queue: restored, counted, its effect applied.
    fn complete(&mut self, reply: Reply, finish: Finish) {
        self.adjust_window();
        if finish.unacked {
            self.unacked.remove(&finish.effect);
        }
        self.record_latency(finish.kind, finish.ns, finish.arrived);
        let metrics = &self.ctx.metrics;
        let frame = match reply {
            Ok(frame) => {
                metrics.request(finish.kind, Outcome::of_redis_reply(&frame));
                let mut frame = finish.post.apply(frame, &self.ctx.opener);
                if let Some(id) = self.shown.redir.filter(|_| finish.names_clients) {
                    frame = listing::with_redirect(frame, id);
                }
                self.count_cache(&finish.cache, &frame);
                self.apply(finish.effect, &frame);
                frame
            }
            Err(e) => {
                metrics.request(finish.kind, Outcome::Error);
                if let Error::Timeout(_) = e {
                    self.ctx.upstream.stats().error(&e);
                }
                finish.effect.apply_l1(&self.ctx.l1); // the write may have been applied
                if let Some(own) = self.link.own_mut() {
                    own.dirty = true; // a reply went missing: out of step
                }
                e.to_reply()
            }
        };
        if !finish.silent {
            self.write(&frame);
        }
    }

    fn write(&mut self, frame: &[u8]) {
        if self.phase != Phase::Gone {
            self.out.extend_from_slice(frame);
        }
    }

    fn apply(&mut self, effect: Effect, frame: &[u8]) {
        let accepted = !crate::protocol::reply::is_error(frame);
        match effect {
            Effect::Select(db) if frame.starts_with(b"+OK") => self.set_db(db),
            Effect::ExecSelect(selects) => {
                let elements =
                    crate::protocol::reply::array_elements(&Bytes::copy_from_slice(frame))
                        .unwrap_or_default();
                for (at, db) in selects {
                    if elements.get(at).is_some_and(|e| e.starts_with(b"+OK")) {
                        self.set_db(db);
                    }
                }
            }
            Effect::Hello { resp3, name } if accepted => {
                if let Some(name) = name {
                    self.name = (!name.is_empty()).then_some(name);
                }
                self.key.resp3 = resp3;
                self.repool = true;
                if let Some(own) = self.link.own_mut() {
                    own.key.resp3 = resp3;
                }
            }
            Effect::Reset if frame.starts_with(b"+RESET") => self.reset_state(),
            Effect::Tracking { on, redirect } if accepted => {
                self.shown.tracking = on;
                self.shown.redir = redirect.filter(|_| on);
            }
            Effect::Many(effects) => effects.into_iter().for_each(|e| self.apply(e, frame)),
            other => other.apply_l1(&self.ctx.l1),
        }
    }

    fn set_db(&mut self, db: u32) {
        self.key.db = db;
        if let Some(own) = self.link.own_mut() {
            own.key.db = db;
        }
        self.repool = true;
    }

    /// True when no reply is outstanding, i.e. a connection switch keeps order.
    fn drained(&self) -> bool {
        self.pending.is_empty()
    }

    async fn flush(&mut self, stream: &mut impl ClientStream) -> std::io::Result<()> {
        if !self.out.is_empty() && self.phase != Phase::Gone {
            stream.write_all_buf(&mut self.out).await?;
        }
        Ok(())
    }
}

/// The next event of the own connection (forever if there is none).
async fn own_event(link: &mut Link) -> Option<Event> {
    match link {
        Link::Own(own) => own.events.recv().await,
        Link::Pooled => std::future::pending().await,
    }
}
