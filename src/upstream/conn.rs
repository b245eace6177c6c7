//! One upstream connection: requests are pipelined onto it, written in as few
//! syscalls as possible, and replies are matched to them in FIFO order (see
//! [`super::expect`] for which frames answer which request).
//!
//! A connection is a task owning the socket plus a cheap [`Conn`] handle. Shared pool
//! connections reconnect forever with exponential backoff and jitter; dedicated ones
//! (one client's MULTI, WATCH, blocking commands, subscriptions…) die with their
//! socket, and deliver their replies and out-of-band frames, in Redis's order, as
//! [`Event`]s on a bounded channel: a client that does not take them stops the task
//! from reading its socket, so Redis (and its `client-output-buffer-limit`) holds what
//! that client does not read, not the proxy.
//!
//! Requests waiting on a silent connection fail only when Redis is not alive (see
//! [`super::liveness`]), never because a command is slow.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use rand::Rng;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::{mpsc, oneshot},
};
use tracing::{debug, info, warn};

use super::{
    expect::{Expect, Subscriptions},
    handshake,
    settings::Settings,
    stream::{Stream, WriteHalf},
};
pub use crate::error::Reply;
use crate::{error::Error, metrics::LocalHistogram, protocol::reply::ReplyScanner};

/// Where a reply goes.
pub enum ReplyTo {
    Oneshot(oneshot::Sender<Reply>),
    /// Run on the connection task as soon as the reply is in (L1 fills).
    Hook(Box<dyn FnOnce(Reply) + Send>),
    /// A dedicated connection's event channel, in order with out-of-band frames.
    Event,
}

/// What a dedicated connection delivers, in the order Redis sent it.
#[derive(Debug)]
pub enum Event {
    /// The reply to the oldest request sent with [`ReplyTo::Event`].
    Reply(Reply),
    /// A frame no request asked for (a message, an invalidation, a MONITOR line).
    Push(Bytes),
}

struct Job {
    cmd: Bytes,
    expect: Expect,
    reply: ReplyTo,
}

const CONNECTING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Bytes queued for the socket before the connection stops taking more requests.
const WRITE_HIGH_WATER: usize = 4 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Events a dedicated connection hands over before it stops reading its socket.
pub const EVENT_BACKLOG: usize = 32;

#[derive(Default)]
struct State {
    phase: AtomicU8,
    last_error: Mutex<Option<Error>>,
    /// The connection's `CLIENT ID` in Redis (0 until known).
    client_id: AtomicI64,
    /// What the connection is subscribed to, as counted when replies were matched.
    subscriptions: Mutex<[usize; 3]>,
}

/// Handle to a connection task. Cloning shares the connection; the task ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Conn {
    tx: mpsc::UnboundedSender<Job>,
    state: Arc<State>,
}

impl Conn {
    /// Starts a connection task. `first` learns how the first connection attempt went.
    /// `events`: a dedicated connection's event channel.
    pub fn spawn(
        settings: Settings,
        events: Option<mpsc::Sender<Event>>,
    ) -> (Self, oneshot::Receiver<Result<(), Error>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            phase: AtomicU8::new(CONNECTING),
            last_error: Mutex::new(None),
            client_id: AtomicI64::new(0),
            subscriptions: Mutex::default(),
        });
        let (first_tx, first_rx) = oneshot::channel();
        tokio::spawn(run(settings, rx, state.clone(), first_tx, events));
        (Self { tx, state }, first_rx)
    }

    /// Sends one command and returns the receiver of its reply.
    pub fn request(&self, cmd: Bytes) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.request_with(cmd, 1, ReplyTo::Oneshot(tx));
        rx
    }

    /// Sends `cmd` (producing `frames` reply frames, returned concatenated).
    pub fn request_with(&self, cmd: Bytes, frames: u32, reply: ReplyTo) {
        self.send(cmd, Expect::Frames(frames), reply);
    }

    /// Sends `cmd`, whose reply looks as `expect` says; failures, including a
    /// known-down upstream, go to `reply` too.
    pub fn send(&self, cmd: Bytes, expect: Expect, reply: ReplyTo) {
        if self.state.phase.load(Ordering::Acquire) == DOWN {
            return answer(reply, Err(self.down_error()), None);
        }
        let job = Job { cmd, expect, reply };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job) {
            answer(job.reply, Err(self.down_error()), None);
        }
    }

    pub fn is_up(&self) -> bool {
        self.state.phase.load(Ordering::Acquire) == UP && !self.tx.is_closed()
    }

    pub fn is_down(&self) -> bool {
        self.state.phase.load(Ordering::Acquire) == DOWN || self.tx.is_closed()
    }

    /// Down because Redis cannot be reached, not because it refuses the connection's
    /// setup (AUTH, SELECT): only then may cached values stand in for its replies.
    pub fn is_unreachable(&self) -> bool {
        self.is_down() && self.down_error().is_outage()
    }

    /// The connection's id in Redis (`CLIENT ID`), once connected.
    pub fn client_id(&self) -> i64 {
        self.state.client_id.load(Ordering::Acquire)
    }

    /// Channels, patterns and shard channels the connection is subscribed to.
    pub fn subscriptions(&self) -> [usize; 3] {
        *self.state.subscriptions.lock().expect("subscriptions")
    }

    fn down_error(&self) -> Error {
        self.state
            .last_error
            .lock()
            .expect("state lock")
            .clone()
            .unwrap_or_else(|| Error::unavailable("connection closed"))
    }
}

async fn run(
    settings: Settings,
    mut rx: mpsc::UnboundedReceiver<Job>,
    state: Arc<State>,
    first: oneshot::Sender<Result<(), Error>>,
    events: Option<mpsc::Sender<Event>>,
) {
    let mut first = Some(first);
    let mut backoff = settings.min_backoff;
    let mut was_up = false;
    // Redis refused this connection's setup since it was last up (reported once).
    let mut refused = false;
    loop {
        let failure = match handshake::connect(&settings).await {
            Ok((stream, client_id)) => {
                refused = false;
                state.client_id.store(client_id, Ordering::Release);
                state.phase.store(UP, Ordering::Release);
                if let Some(f) = first.take() {
                    let _ = f.send(Ok(()));
                }
                if was_up {
                    info!(db = settings.key.db, "upstream connection re-established");
                    settings.stats.reconnected();
                }
                was_up = true;
                backoff = settings.min_backoff;
                let mut io = Pipeline::new(&settings, &state, events.clone());
                match io.serve(stream, &mut rx).await {
                    Ok(()) => return, // every handle dropped
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        // A dedicated connection's end (QUIT, a client that left) is routine.
        let serving = first.is_none() && was_up && settings.reconnect;
        record_failure(&settings, &state, &failure, serving);
        if was_up && !refused && matches!(failure, Error::Redis(_)) {
            // Credentials that worked are refused now: the user's ACL changed.
            refused = true;
            if let Some(hook) = &settings.on_refused {
                hook(&settings.key);
            }
        }
        if let Some(f) = first.take() {
            let _ = f.send(Err(failure.clone()));
        }
        if !settings.reconnect {
            // The events channel closes when this task ends: whoever still waits for a
            // reply learns the connection is gone.
            rx.close();
            while let Ok(job) = rx.try_recv() {
                answer(job.reply, Err(failure.clone()), None);
            }
            return;
        }
        let delay = jitter(backoff);
        backoff = (backoff * 2).min(settings.max_backoff);
        if !wait_failing(&mut rx, delay, &failure).await {
            return;
        }
    }
}

/// Logs and counts a failed connection (or connect attempt), and marks it down.
fn record_failure(settings: &Settings, state: &State, failure: &Error, was_serving: bool) {
    if was_serving {
        warn!(error = %failure, "upstream connection failed");
    } else {
        debug!(error = %failure, "upstream connect failed");
    }
    if !matches!(failure, Error::Timeout(_)) {
        // Timeouts are counted per request, by whoever waited for the reply.
        settings.stats.error(failure);
    }
    *state.last_error.lock().expect("state lock") = Some(failure.clone());
    state.phase.store(DOWN, Ordering::Release);
}

/// Sleeps for `delay` while answering queued requests with `err`. False once every
/// handle is gone.
async fn wait_failing(rx: &mut mpsc::UnboundedReceiver<Job>, delay: Duration, err: &Error) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return true,
            job = rx.recv() => match job {
                Some(job) => answer(job.reply, Err(err.clone()), None),
                None => return false,
            },
        }
    }
}

/// Full jitter over the upper half: spreads reconnects of many proxies.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

/// Delivers a reply to `to` (an [`ReplyTo::Event`] reply goes to `staged`).
fn answer(to: ReplyTo, reply: Reply, staged: Option<&mut VecDeque<Event>>) {
    match to {
        ReplyTo::Oneshot(tx) => {
            let _ = tx.send(reply);
        }
        ReplyTo::Hook(hook) => hook(reply),
        ReplyTo::Event => {
            if let Some(staged) = staged {
                staged.push_back(Event::Reply(reply));
            }
        }
    }
}

/// A request sent and not yet answered.
struct Inflight {
    reply: ReplyTo,
    expect: Expect,
    taken: Instant,
}

/// The socket's buffers, the FIFO of requests, and how far the front reply got.
struct Pipeline<'s> {
    settings: &'s Settings,
    state: &'s State,
    inflight: VecDeque<Inflight>,
    /// Frames of the front reply still to come; 0 until its first frame arrived.
    remaining: u32,
    /// Bytes of the front reply read so far (at the start of `rbuf`).
    front_len: usize,
    wbuf: BytesMut,
    rbuf: BytesMut,
    scanner: ReplyScanner,
    subs: Subscriptions,
    /// A dedicated connection's channel, and what waits to go into it.
    events: Option<mpsc::Sender<Event>>,
    staged: VecDeque<Event>,
    /// Pushes that came between the frames of the front reply: staged after it, in
    /// Redis's order (the client's frame of the reply came first).
    interrupted: VecDeque<Event>,
    /// Reply latencies of the current read, added to the shared histogram after it.
    latency: LocalHistogram,
    /// Since when nothing was read while requests waited.
    quiet_since: Instant,
}

type Check = Pin<Box<dyn Future<Output = bool> + Send>>;

impl<'s> Pipeline<'s> {
    fn new(settings: &'s Settings, state: &'s State, events: Option<mpsc::Sender<Event>>) -> Self {
        Self {
            settings,
            state,
            inflight: VecDeque::new(),
            remaining: 0,
            front_len: 0,
            wbuf: BytesMut::with_capacity(16 * 1024),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            scanner: ReplyScanner::default(),
            subs: Subscriptions::new(settings.key.resp3),
            events,
            staged: VecDeque::new(),
            interrupted: VecDeque::new(),
            latency: LocalHistogram::default(),
            quiet_since: Instant::now(),
        }
    }

    /// Pipelines requests until the socket fails (`Err`) or every handle is dropped
    /// (`Ok`). Requests in flight then fail: they may or may not have been applied.
    async fn serve(
        &mut self,
        mut stream: Stream,
        rx: &mut mpsc::UnboundedReceiver<Job>,
    ) -> Result<(), Error> {
        let result = self.pump(&mut stream, rx).await;
        let failed = match &result {
            Err(e @ Error::Timeout(_)) => e.clone(),
            _ => Error::ConnectionLost,
        };
        for job in self.inflight.drain(..) {
            answer(job.reply, Err(failed.clone()), Some(&mut self.staged));
            self.staged.append(&mut self.interrupted);
        }
        self.flush_events().await;
        result
    }

    async fn pump(
        &mut self,
        stream: &mut Stream,
        rx: &mut mpsc::UnboundedReceiver<Job>,
    ) -> Result<(), Error> {
        let mut batch = Vec::with_capacity(64);
        let (mut rd, mut wr) = stream.split();
        // TLS holds written bytes until they fit the socket: flushed once `wbuf` is
        // empty (a plaintext socket never needs it).
        let mut unflushed = false;
        let mut check: Option<Check> = None;
        let quiet = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(quiet);
        // Armed once per silence, not on every read (see `silence_ends`).
        let mut armed = false;
        let events = self.events.clone();
        loop {
            let waiting = !self.inflight.is_empty();
            if waiting && check.is_none() && !armed {
                quiet.as_mut().reset(self.silence_ends());
                armed = true;
            }
            let backlog = !self.staged.is_empty();
            tokio::select! {
                biased;
                n = rx.recv_many(&mut batch, 256), if self.wbuf.len() < WRITE_HIGH_WATER => {
                    if n == 0 {
                        return Ok(());
                    }
                    self.take_batch(&mut batch, rx).await;
                }
                written = write_some(&mut wr, &mut self.wbuf), if !self.wbuf.is_empty() || unflushed => {
                    unflushed = written.map_err(lost)?;
                }
                read = rd.read_buf(&mut self.rbuf), if !backlog => {
                    if read.map_err(lost)? == 0 {
                        return Err(Error::unavailable("connection closed by Redis"));
                    }
                    check = None;
                    self.read_done()?;
                }
                sent = reserve(&events), if backlog => match sent {
                    Some(permit) => permit.send(self.staged.pop_front().expect("backlog")),
                    // The client is gone: nobody takes these events any more.
                    None => return Ok(()),
                },
                () = &mut quiet, if armed && waiting && check.is_none() => {
                    armed = false;
                    check = self.liveness_check();
                }
                alive = poll_check(&mut check), if check.is_some() => {
                    check = None;
                    self.checked(alive)?;
                }
            }
        }
    }

    /// When the silence with requests waiting reaches `request_timeout`, if Redis
    /// says nothing before. The timer is armed for it once per silence: a reset per
    /// read costs more than the read's own work. When it fires early (Redis spoke
    /// since), `liveness_check` declines and it is armed again for the new deadline.
    fn silence_ends(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.quiet_since + self.settings.request_timeout)
    }

    /// A liveness check, once the silence is long enough.
    fn liveness_check(&self) -> Option<Check> {
        if self.quiet_since.elapsed() < self.settings.request_timeout {
            return None;
        }
        let liveness = self.settings.liveness.clone();
        Some(Box::pin(async move { liveness.alive().await }))
    }

    /// After a liveness check: a busy Redis starts a new silence, a dead one ends
    /// the connection.
    fn checked(&mut self, alive: bool) -> Result<(), Error> {
        if !alive {
            return Err(Error::Timeout(self.settings.request_timeout));
        }
        self.quiet_since = Instant::now();
        Ok(())
    }

    /// Queues a batch of requests (and, when the socket was idle, the requests that
    /// arrive while the other ready clients run, so they share this write).
    async fn take_batch(&mut self, batch: &mut Vec<Job>, rx: &mut mpsc::UnboundedReceiver<Job>) {
        let fresh = self.wbuf.is_empty();
        // One clock read per batch: its requests are written together.
        let now = Instant::now();
        batch.drain(..).for_each(|job| self.take(job, now));
        if fresh {
            // Let the other clients whose requests are ready run first, so their
            // commands share this write (twemproxy gets this from its event loop).
            tokio::task::yield_now().await;
            while let Ok(job) = rx.try_recv() {
                self.take(job, now);
            }
        }
    }

    fn take(&mut self, job: Job, now: Instant) {
        if self.inflight.is_empty() {
            self.quiet_since = now;
        }
        self.wbuf.extend_from_slice(&job.cmd);
        self.inflight.push_back(Inflight {
            reply: job.reply,
            expect: job.expect,
            taken: now,
        });
    }

    fn read_done(&mut self) -> Result<(), Error> {
        self.quiet_since = Instant::now();
        // The clients woken by these replies measure their latency from this reading.
        crate::metrics::clock::note(self.quiet_since);
        let dispatched = self.dispatch();
        self.latency.flush(&self.settings.stats.latency);
        if self.events.is_some() {
            *self.state.subscriptions.lock().expect("subscriptions") = self.subs.counts();
        }
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        dispatched
    }

    /// Hands every complete frame read so far to its request, or out of band.
    fn dispatch(&mut self) -> Result<(), Error> {
        let mut now = None;
        while let Some(len) = self
            .scanner
            .scan(&self.rbuf[self.front_len..])
            .map_err(|e| Error::upstream_protocol(e.to_string()))?
        {
            let at = self.front_len;
            if !self.belongs_to_front(at, len) {
                self.out_of_band(at, len)?;
                continue;
            }
            self.front_len += len;
            self.remaining -= 1;
            if self.remaining > 0 {
                continue;
            }
            let reply = self.rbuf.split_to(self.front_len).freeze();
            self.front_len = 0;
            let job = self.inflight.pop_front().expect("front exists");
            let now = *now.get_or_insert_with(Instant::now);
            self.latency
                .record(now.saturating_duration_since(job.taken));
            answer(job.reply, Ok(reply), Some(&mut self.staged));
            self.staged.append(&mut self.interrupted);
        }
        Ok(())
    }

    /// True if the frame at `at` is (part of) the front request's reply, whose count
    /// of frames still to come is then set.
    fn belongs_to_front(&mut self, at: usize, len: usize) -> bool {
        let Some(front) = self.inflight.front() else {
            return false;
        };
        let frame = &self.rbuf[at..at + len];
        if self.remaining == 0 {
            if !self.subs.begins(&front.expect, frame) {
                return false;
            }
            self.remaining = self.subs.frames(&front.expect, frame);
        } else if self.subs.interrupts(&front.expect, frame) {
            return false; // a push between the frames of one reply
        }
        if matches!(front.expect, Expect::PubSub(_)) {
            self.subs.confirm(frame);
        }
        true
    }

    /// Takes the frame at `at` out of the buffer: to the client of a dedicated
    /// connection, or (on a shared one, where no client asked for it) dropped.
    fn out_of_band(&mut self, at: usize, len: usize) -> Result<(), Error> {
        let mut frame = self.rbuf.split_off(at);
        let after = frame.split_off(len);
        self.rbuf.unsplit(after);
        let frame = frame.freeze();
        self.subs.confirm(&frame);
        if self.events.is_some() {
            let to = if self.remaining > 0 {
                &mut self.interrupted
            } else {
                &mut self.staged
            };
            to.push_back(Event::Push(frame));
            return Ok(());
        }
        if !crate::protocol::reply::is_push(&frame) {
            return Err(Error::upstream_protocol("reply without a request"));
        }
        unmatched_push(&frame);
        Ok(())
    }

    async fn flush_events(&mut self) {
        while let Some(event) = self.staged.pop_front() {
            let Some(events) = &self.events else {
                return;
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Writes some of `wbuf` or, once it is empty, flushes what TLS still holds. True if
/// a flush is owed after this.
async fn write_some(wr: &mut WriteHalf<'_>, wbuf: &mut BytesMut) -> std::io::Result<bool> {
    if wbuf.is_empty() {
        wr.flush().await?;
        return Ok(false);
    }
    wr.write_buf(wbuf).await?;
    Ok(wr.buffers())
}

async fn reserve(events: &Option<mpsc::Sender<Event>>) -> Option<mpsc::Permit<'_, Event>> {
    match events {
        Some(tx) => tx.reserve().await.ok(),
        None => std::future::pending().await,
    }
}

async fn poll_check(check: &mut Option<Check>) -> bool {
    match check {
        Some(c) => c.await,
        None => std::future::pending().await,
    }
}

/// A push on a shared connection belongs to no client: dropped, and logged at the
/// 1st, 2nd, 4th… occurrence.
fn unmatched_push(frame: &[u8]) {
    static DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = DROPPED.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        warn!(
            dropped = n,
            frame = %String::from_utf8_lossy(&frame[..frame.len().min(80)]),
            "a RESP3 push arrived on a shared upstream connection; no client asked for it"
        );
    }
}

fn lost(e: std::io::Error) -> Error {
    Error::unavailable(format!("connection lost: {e}"))
}

#[cfg(test)]
mod tests;
