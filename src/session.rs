//! One client connection: framing, pipelining with replies in request order, and the
//! client's state (db, user, protocol, name, MULTI/WATCH, pub/sub).
//!
//! A session is one task. Each turn of its loop dispatches every complete command
//! read so far (each becomes a [`Pending`] reply, in order), moves finished replies
//! into the output buffer, then waits for whichever comes first: the oldest reply,
//! its timeout, the socket becoming writable, or more input. Reading stops while too
//! many replies are outstanding or too much output is buffered, so a client that does
//! not read cannot grow the proxy's memory.
//!
//! Commands that switch upstream connection (MULTI, WATCH, blocking commands, SELECT,
//! AUTH, HELLO, pub/sub) first wait until every earlier reply is in (a barrier), so
//! Redis sees the client's commands in the order it sent them.

mod admin;
mod cache;
mod compress;
mod connection;
mod dispatch;
mod post;
mod relay;
mod rules;

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{oneshot, watch},
    time::{Instant, Sleep},
};
use tracing::debug;

pub use admin::Filler;
use post::{Outgoing, Post, Queued};

use crate::{
    command::Kind,
    compress::Opener,
    metrics::{NamespaceStats, Outcome},
    protocol::request::{Limits, Request, RequestParser},
    server::Shared,
    upstream::{Conn, Detached, Pool, PoolKey, Reply, ReplyTo, UpstreamError},
};

static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// A reply owed to the client, in request order.
enum Pending {
    Ready(Bytes),
    Upstream {
        rx: oneshot::Receiver<Reply>,
        /// None for commands that block by design.
        deadline: Option<Instant>,
        effect: Effect,
        post: Post,
        /// The command's kind, for the request metrics.
        kind: Kind,
    },
}

/// What changes once Redis has answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    None,
    /// SELECT on a pinned connection: the db changes if Redis says OK.
    Select(u32),
    /// EXEC of a transaction that queued a SELECT: the db changes if EXEC ran.
    ExecSelect(u32),
    /// A write was acknowledged (or may have been applied): L1 generations move again.
    Invalidate(Vec<Bytes>),
    FlushDbs(Vec<u32>),
    FlushAll,
    Many(Vec<Effect>),
}

/// A dedicated upstream connection held by this client.
struct Pinned {
    conn: Conn,
    key: PoolKey,
    state: PinState,
    /// The connection's state may differ from `key` (AUTH inside MULTI…): never reuse.
    dirty: bool,
    /// A SELECT queued inside the current MULTI.
    queued_select: Option<u32>,
    /// A streaming command (SUBSCRIBE…) queued inside the current MULTI.
    queued_stream: bool,
    /// L1 effects of the writes queued inside the current MULTI, applied at EXEC.
    queued_writes: Vec<Effect>,
    /// Every command queued upstream inside the current MULTI (the client's and the
    /// proxy's own), to give EXEC's reply the client's shape.
    queued: Vec<Queued>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinState {
    Multi,
    Watching,
    /// The state has ended (EXEC, DISCARD, UNWATCH, a blocking command was sent):
    /// release once its replies are in.
    Done,
}

/// What dispatching asks of the loop.
enum Flow {
    Continue,
    /// Enter streaming mode with this command (SUBSCRIBE, MONITOR…).
    Relay(Request),
}

pub struct Session {
    shared: Arc<Shared>,
    id: u64,
    key: PoolKey,
    pool: Arc<Pool>,
    name: Option<Bytes>,
    pinned: Option<Pinned>,
    /// The pool must be looked up again (the db changed inside a transaction).
    repool: bool,
    pending: VecDeque<Pending>,
    /// A command that waits for every earlier reply (the barrier) before dispatch.
    deferred: Option<Request>,
    parser: RequestParser,
    inbuf: BytesMut,
    out: BytesMut,
    /// No more input will be read (QUIT, protocol error, EOF, shutdown).
    closing: bool,
    /// The client is gone or the proxy is stopping: do not wait for blocking commands.
    abandon_blocking: bool,
    /// A dedicated connection being handed over for streaming mode after EXEC.
    detaching: Option<oneshot::Receiver<Detached>>,
    timeout: Duration,
    /// `RESPITE` admin commands are allowed (no `[admin] password`, or RESPITE AUTH).
    admin_ok: bool,
    /// The kind of the command being dispatched (counted with its outcome).
    kind: Kind,
    /// Its reads count in the request and L1 hit/miss metrics (false for the headless
    /// reader of RESPITE WARM, whose fills are not the clients' misses).
    counted: bool,
    /// Opens the compression envelopes in replies (bounded by `server.max_bulk_len`).
    opener: Opener,
}

/// Serves one client until it disconnects, quits, or the proxy shuts down.
pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream, stop: watch::Receiver<bool>) {
    let mut session = Session::new(shared);
    debug!(client_id = session.id, "connected");
    let result = session.run(&mut stream, stop).await;
    debug!(client_id = session.id, ?result, "disconnected");
}

impl Session {
    /// A session in its initial state (the URL's db and user, RESP2).
    fn new(shared: Arc<Shared>) -> Session {
        let limits = Limits {
            max_bulk_len: shared.config.server.max_bulk_len.as_u64() as usize,
            max_args: shared.config.server.max_args,
            max_inline_len: shared.config.server.max_inline_len.as_u64() as usize,
        };
        let upstream = &shared.upstream;
        Session {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            key: upstream.initial_key(),
            pool: upstream.initial_pool(),
            timeout: upstream.request_timeout(),
            admin_ok: shared.config.admin.password.is_none(),
            kind: Kind::Unknown,
            counted: true,
            opener: Opener::new(
                shared.config.server.max_bulk_len.as_u64() as usize,
                shared.metrics.decode_failures.clone(),
            ),
            shared: shared.clone(),
            name: None,
            pinned: None,
            repool: false,
            pending: VecDeque::new(),
            deferred: None,
            parser: RequestParser::new(limits),
            inbuf: BytesMut::with_capacity(16 * 1024),
            out: BytesMut::with_capacity(16 * 1024),
            closing: false,
            abandon_blocking: false,
            detaching: None,
        }
    }
}

impl Session {
    async fn run(
        &mut self,
        stream: &mut TcpStream,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let mut timer: Pin<Box<Sleep>> = Box::pin(tokio::time::sleep(Duration::ZERO));
        let mut timer_for: Option<Instant> = None;
        let max_pipeline = self.shared.config.server.max_pipeline;
        let max_out = self.shared.config.server.max_output_buffer.as_u64() as usize;
        loop {
            let relay = match self.detaching.take() {
                Some(rx) if self.drained() => Some(relay::Start::Detached(rx)),
                detaching => {
                    self.detaching = detaching;
                    self.dispatch_input().await.map(relay::Start::Command)
                }
            };
            if let Some(start) = relay {
                self.flush(stream).await?;
                match relay::run(self, stream, &mut stop, start).await? {
                    relay::End::Closed => return Ok(()),
                    relay::End::Resume => continue,
                }
            }
            self.collect_ready();
            if self.abandon_blocking && self.waits_on_blocking() {
                return Ok(()); // as Redis does, a vanished client's blocking call is dropped
            }
            if self.closing && self.pending.is_empty() && self.deferred.is_none() {
                self.flush(stream).await?;
                return stream.shutdown().await;
            }
            let deadline = self.front_deadline();
            if deadline != timer_for {
                if let Some(d) = deadline {
                    timer.as_mut().reset(d);
                }
                timer_for = deadline;
            }
            let can_read = !self.closing
                && self.deferred.is_none()
                && self.pending.len() < max_pipeline
                && self.out.len() < max_out;
            let (mut rd, mut wr) = stream.split();
            tokio::select! {
                biased;
                reply = front_reply(&mut self.pending) => self.complete_front(reply),
                () = &mut timer, if timer_for.is_some() => {
                    timer_for = None;
                    self.complete_front(Err(UpstreamError::Timeout(self.timeout)));
                }
                written = wr.write_buf(&mut self.out), if !self.out.is_empty() => { written?; }
                read = rd.read_buf(&mut self.inbuf), if can_read => {
                    if read? == 0 {
                        // EOF: answer what was sent (half-closed clients read it), then close.
                        self.closing = true;
                        self.abandon_blocking = true;
                    }
                }
                _ = stop.changed(), if !self.abandon_blocking => {
                    self.closing = true;
                    self.abandon_blocking = true;
                }
            }
        }
    }

    /// Parses and dispatches every complete command in the input buffer. Returns a
    /// command that puts the session in streaming mode.
    async fn dispatch_input(&mut self) -> Option<Request> {
        let max_pipeline = self.shared.config.server.max_pipeline;
        loop {
            let req = match self.deferred.take() {
                Some(req) => req,
                None => {
                    if self.pending.len() >= max_pipeline || (self.closing && self.inbuf.is_empty())
                    {
                        return None;
                    }
                    match self.parser.next(&mut self.inbuf) {
                        Ok(Some(req)) => req,
                        Ok(None) => return None,
                        Err(e) => {
                            // Not a command: not counted.
                            self.push_reply(crate::protocol::reply::error(&e.to_string()));
                            self.inbuf.clear();
                            self.closing = true;
                            return None;
                        }
                    }
                }
            };
            match self.dispatch(req).await {
                Some(Flow::Continue) => {}
                Some(Flow::Relay(req)) => return Some(req),
                None => return None, // deferred until earlier replies are in
            }
        }
    }

    /// Queues the proxy's own answer to the command being dispatched.
    fn reply(&mut self, frame: Bytes) {
        self.count(Outcome::of_local_reply(&frame));
        self.push_reply(frame);
    }

    /// Counts the command being dispatched, answered with `outcome`.
    #[inline]
    fn count(&self, outcome: Outcome) {
        if self.counted {
            self.shared.metrics.request(self.kind, outcome);
        }
    }

    /// Counts an L1 lookup of namespace `ns`.
    #[inline]
    fn count_lookup(&self, ns: &NamespaceStats, hit: bool) {
        match (self.counted, hit) {
            (false, _) => {}
            (true, true) => ns.count_hit(),
            (true, false) => ns.count_miss(),
        }
    }

    /// Queues a reply that needs no upstream round trip (not counted).
    fn push_reply(&mut self, frame: Bytes) {
        if self.pending.is_empty() {
            self.out.extend_from_slice(&frame);
        } else {
            self.pending.push_back(Pending::Ready(frame));
        }
    }

    /// Like `push_reply`, copying straight into the output when nothing is ahead of it.
    fn reply_slice(&mut self, frame: &[u8]) {
        if self.pending.is_empty() {
            self.out.extend_from_slice(frame);
        } else {
            self.pending
                .push_back(Pending::Ready(Bytes::copy_from_slice(frame)));
        }
    }

    /// Sends `out` on `conn` and queues its reply.
    fn forward(&mut self, conn: &Conn, out: Outgoing, deadline: Option<Instant>, effect: Effect) {
        let rx = send(conn, out.frames(), out.cmd);
        self.queue(rx, deadline, effect, out.post);
    }

    /// Sends `out` on the client's shared connection, with the usual timeout.
    fn forward_pooled(&mut self, out: Outgoing, effect: Effect) {
        // The connection is borrowed only to send: no handle clone per request.
        let rx = send(self.pool.conn(self.id), out.frames(), out.cmd);
        self.queue(rx, self.deadline(), effect, out.post);
    }

    /// Queues a reply that arrives on `rx`, with the usual timeout.
    fn await_reply(&mut self, rx: oneshot::Receiver<Reply>, effect: Effect) {
        self.queue(rx, self.deadline(), effect, Post::default());
    }

    /// Queues a reply that arrives on `rx` whenever it is ready (long admin
    /// operations: no timeout; like a blocking command, it is abandoned when the
    /// client goes away).
    fn await_unbounded(&mut self, rx: oneshot::Receiver<Reply>) {
        self.queue(rx, None, Effect::None, Post::default());
    }

    /// Queues the reply of the command being dispatched.
    fn queue(
        &mut self,
        rx: oneshot::Receiver<Reply>,
        deadline: Option<Instant>,
        effect: Effect,
        post: Post,
    ) {
        self.pending.push_back(Pending::Upstream {
            rx,
            deadline,
            effect,
            post,
            kind: self.kind,
        });
    }

    fn deadline(&self) -> Option<Instant> {
        Some(Instant::now() + self.timeout)
    }

    /// True when no reply is outstanding, i.e. a connection switch keeps order.
    fn drained(&self) -> bool {
        self.pending.is_empty()
    }

    /// Moves every reply that is already in from the front of the queue to the output.
    fn collect_ready(&mut self) {
        while let Some(front) = self.pending.front_mut() {
            let reply = match front {
                Pending::Ready(_) => match self.pending.pop_front() {
                    Some(Pending::Ready(frame)) => {
                        self.out.extend_from_slice(&frame);
                        continue;
                    }
                    _ => unreachable!("front was Ready"),
                },
                Pending::Upstream { rx, .. } => match rx.try_recv() {
                    Ok(reply) => reply,
                    Err(oneshot::error::TryRecvError::Empty) => return,
                    Err(oneshot::error::TryRecvError::Closed) => Err(UpstreamError::ConnectionLost),
                },
            };
            self.complete_front(reply);
        }
    }

    /// Pops the front entry with its reply (or error), applying its effect.
    fn complete_front(&mut self, reply: Reply) {
        let Some(Pending::Upstream {
            effect, post, kind, ..
        }) = self.pending.pop_front()
        else {
            return;
        };
        let metrics = &self.shared.metrics;
        match reply {
            Ok(frame) => {
                metrics.request(kind, Outcome::of_redis_reply(&frame));
                let frame = post.apply(frame, &self.opener);
                self.apply(effect, &frame);
                self.out.extend_from_slice(&frame);
            }
            Err(e) => {
                metrics.request(kind, Outcome::UpstreamError);
                if let UpstreamError::Timeout(_) = e {
                    self.shared.upstream.stats().error(&e);
                }
                self.apply_l1(&effect); // the write may have been applied
                if matches!(e, UpstreamError::Timeout(_) | UpstreamError::ConnectionLost) {
                    // A dedicated connection with a reply outstanding is out of step.
                    if let Some(p) = &mut self.pinned {
                        p.dirty = true;
                    }
                }
                self.out.extend_from_slice(&e.to_reply());
            }
        }
    }

    fn apply(&mut self, effect: Effect, frame: &[u8]) {
        let db = match effect {
            Effect::None => return,
            Effect::Select(db) if frame.starts_with(b"+OK") => db,
            Effect::ExecSelect(db) if frame.first() == Some(&b'*') && frame != b"*-1\r\n" => db,
            Effect::Select(_) | Effect::ExecSelect(_) => return,
            Effect::Many(effects) => {
                return effects.into_iter().for_each(|e| self.apply(e, frame));
            }
            other => return self.apply_l1(&other),
        };
        self.key.db = db;
        if let Some(p) = &mut self.pinned {
            p.key.db = db;
        }
        self.repool = true;
    }

    /// True if a blocking command (no deadline) is among the outstanding replies.
    fn waits_on_blocking(&self) -> bool {
        self.pending
            .iter()
            .any(|p| matches!(p, Pending::Upstream { deadline: None, .. }))
    }

    fn front_deadline(&self) -> Option<Instant> {
        match self.pending.front() {
            Some(Pending::Upstream { deadline, .. }) => *deadline,
            _ => None,
        }
    }

    async fn flush(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        if !self.out.is_empty() {
            stream.write_all_buf(&mut self.out).await?;
        }
        Ok(())
    }
}

/// Sends `cmd` (which produces `frames` reply frames) and returns its reply's receiver.
fn send(conn: &Conn, frames: u32, cmd: Bytes) -> oneshot::Receiver<Reply> {
    let (tx, rx) = oneshot::channel();
    conn.request_with(cmd, frames, ReplyTo::Oneshot(tx));
    rx
}

/// Waits for the reply at the front of the queue (forever if there is none).
async fn front_reply(pending: &mut VecDeque<Pending>) -> Reply {
    match pending.front_mut() {
        Some(Pending::Upstream { rx, .. }) => {
            rx.await.unwrap_or(Err(UpstreamError::ConnectionLost))
        }
        _ => std::future::pending().await,
    }
}
