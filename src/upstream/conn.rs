//! One upstream connection: requests from many clients are pipelined onto it, written
//! in as few syscalls as possible, and replies are matched to them in FIFO order.
//!
//! A connection is a task owning the socket plus a cheap [`Conn`] handle. Shared pool
//! connections reconnect forever with exponential backoff and jitter; dedicated ones
//! (MULTI, WATCH, blocking commands) die with their socket.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use rand::Rng;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::{mpsc, oneshot},
};
use tracing::{debug, info, warn};

use super::{PoolKey, UpstreamAddr, handshake};
use crate::error::Error;
use crate::{
    metrics::{LocalHistogram, UpstreamStats},
    protocol::reply::{ReplyScanner, is_push},
};

pub use crate::error::Reply;

/// One command to send, or a request to hand the socket over once every earlier reply
/// is in.
pub enum Job {
    Request {
        cmd: Bytes,
        /// How many reply frames `cmd` produces (commands pipelined together).
        frames: u32,
        reply: ReplyTo,
    },
    Detach(oneshot::Sender<Detached>),
}

/// Where a reply goes.
pub enum ReplyTo {
    Oneshot(oneshot::Sender<Reply>),
    /// Run on the connection task as soon as the reply is in (L1 fills).
    Hook(Box<dyn FnOnce(Reply) + Send>),
}

/// A socket taken out of its connection task, with bytes already read past the last
/// reply (for a client that turned the connection into a stream, e.g. SUBSCRIBE
/// inside MULTI).
pub type Detached = (TcpStream, BytesMut);

const CONNECTING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Bytes queued for the socket before the connection stops taking more requests.
const WRITE_HIGH_WATER: usize = 4 * 1024 * 1024;
const READ_CHUNK: usize = 64 * 1024;

struct State {
    phase: AtomicU8,
    last_error: Mutex<Option<Error>>,
}

/// Handle to a connection task. Cloning shares the connection; the task ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Conn {
    tx: mpsc::UnboundedSender<Job>,
    state: Arc<State>,
}

/// How the task behaves when its socket fails.
#[derive(Clone)]
pub struct Settings {
    pub addr: Arc<UpstreamAddr>,
    pub key: PoolKey,
    pub connect_timeout: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Reconnect after failures (pool connections) or end (dedicated ones).
    pub reconnect: bool,
    pub stats: Arc<UpstreamStats>,
}

impl Conn {
    /// Starts a connection task. `first` learns how the first connection attempt went.
    pub fn spawn(settings: Settings) -> (Self, oneshot::Receiver<Result<(), Error>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            phase: AtomicU8::new(CONNECTING),
            last_error: Mutex::new(None),
        });
        let (first_tx, first_rx) = oneshot::channel();
        tokio::spawn(run(settings, rx, state.clone(), first_tx));
        (Self { tx, state }, first_rx)
    }

    /// Sends one command and returns the receiver of its reply.
    pub fn request(&self, cmd: Bytes) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.request_with(cmd, 1, ReplyTo::Oneshot(tx));
        rx
    }

    /// Sends `cmd` (producing `frames` reply frames, returned concatenated); failures,
    /// including a known-down upstream, go to `reply` too.
    pub fn request_with(&self, cmd: Bytes, frames: u32, reply: ReplyTo) {
        if self.state.phase.load(Ordering::Acquire) == DOWN {
            return answer(reply, Err(self.down_error()));
        }
        if let Err(mpsc::error::SendError(job)) = self.tx.send(Job::Request { cmd, frames, reply })
        {
            fail(job, &self.down_error());
        }
    }

    /// Asks the task to give up its socket after the replies already requested; the
    /// task then ends. The receiver gets nothing if the connection failed first.
    pub fn detach(&self) -> oneshot::Receiver<Detached> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Job::Detach(tx));
        rx
    }

    pub fn is_up(&self) -> bool {
        self.state.phase.load(Ordering::Acquire) == UP && !self.tx.is_closed()
    }

    pub fn is_down(&self) -> bool {
        self.state.phase.load(Ordering::Acquire) == DOWN || self.tx.is_closed()
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
) {
    let mut first = Some(first);
    let mut backoff = settings.min_backoff;
    let mut was_up = false;
    loop {
        let failure =
            match handshake::connect(&settings.addr, &settings.key, settings.connect_timeout).await
            {
                Ok(stream) => {
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
                    match serve(stream, &mut rx, &settings.stats).await {
                        Ok(()) => return, // every handle dropped
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
        if first.is_none() && was_up {
            warn!(error = %failure, "upstream connection failed");
        } else {
            debug!(error = %failure, "upstream connect failed");
        }
        settings.stats.error(&failure);
        *state.last_error.lock().expect("state lock") = Some(failure.clone());
        state.phase.store(DOWN, Ordering::Release);
        if let Some(f) = first.take() {
            let _ = f.send(Err(failure.clone()));
        }
        if !settings.reconnect {
            rx.close();
            fail_all(&mut rx, &failure);
            return;
        }
        let delay = jitter(backoff);
        backoff = (backoff * 2).min(settings.max_backoff);
        if !wait_failing(&mut rx, delay, &failure).await {
            return;
        }
    }
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
                Some(job) => fail(job, err),
                None => return false,
            },
        }
    }
}

fn fail_all(rx: &mut mpsc::UnboundedReceiver<Job>, err: &Error) {
    while let Ok(job) = rx.try_recv() {
        fail(job, err);
    }
}

fn fail(job: Job, err: &Error) {
    if let Job::Request { reply, .. } = job {
        answer(reply, Err(err.clone()));
    }
}

/// Full jitter over the upper half: spreads reconnects of many proxies.
fn jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + half.mul_f64(rand::rng().random::<f64>())
}

fn answer(to: ReplyTo, reply: Reply) {
    match to {
        ReplyTo::Oneshot(tx) => {
            let _ = tx.send(reply);
        }
        ReplyTo::Hook(hook) => hook(reply),
    }
}

/// Pipelines requests until the socket fails (`Err`), or every handle is dropped or
/// the socket was handed over (`Ok`).
async fn serve(
    mut stream: TcpStream,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    stats: &UpstreamStats,
) -> Result<(), Error> {
    let mut io = Pipeline::default();
    let mut detach = None;
    let mut batch = Vec::with_capacity(64);
    let (mut rd, mut wr) = stream.split();
    let result = loop {
        if detach.is_some() && io.inflight.is_empty() && io.wbuf.is_empty() {
            break Ok(());
        }
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, 256), if detach.is_none() && io.wbuf.len() < WRITE_HIGH_WATER => {
                if n == 0 {
                    break Ok(());
                }
                let fresh = io.wbuf.is_empty();
                // One clock read per batch: its requests are written together.
                let now = Instant::now();
                batch.drain(..).for_each(|job| io.take(job, now, &mut detach));
                if fresh && detach.is_none() {
                    // Let the other clients whose requests are ready run first, so their
                    // commands share this write (twemproxy gets this from its event loop).
                    tokio::task::yield_now().await;
                    while detach.is_none() && let Ok(job) = rx.try_recv() {
                        io.take(job, now, &mut detach);
                    }
                }
            }
            written = wr.write_buf(&mut io.wbuf), if !io.wbuf.is_empty() => {
                if let Err(e) = written {
                    break Err(lost(e));
                }
            }
            read = rd.read_buf(&mut io.rbuf), if detach.is_none() || !io.inflight.is_empty() => {
                match read {
                    Ok(0) => break Err(Error::unavailable("connection closed by Redis")),
                    Err(e) => break Err(lost(e)),
                    Ok(_) => {}
                }
                let dispatched = io.dispatch(detach.is_some());
                io.latency.flush(&stats.latency);
                if let Err(e) = dispatched {
                    break Err(e);
                }
                if io.rbuf.capacity() - io.rbuf.len() < READ_CHUNK / 4 {
                    io.rbuf.reserve(READ_CHUNK);
                }
            }
        }
    };
    // Requests sent or queued on a failed socket may or may not have been applied.
    for (reply, _, _) in io.inflight.drain(..) {
        answer(reply, Err(Error::ConnectionLost));
    }
    if let (Ok(()), Some(to)) = (&result, detach) {
        let _ = to.send((stream, io.rbuf));
    }
    result
}

/// Buffers and FIFO of one pipelined socket.
struct Pipeline {
    /// Who gets each reply, how many frames it has, and when it was taken.
    inflight: VecDeque<(ReplyTo, u32, Instant)>,
    /// Bytes and frames of the front reply scanned so far (multi-frame replies).
    front_len: usize,
    front_frames: u32,
    wbuf: BytesMut,
    rbuf: BytesMut,
    scanner: ReplyScanner,
    /// RESP3 pushes waiting to go out in front of the next reply.
    pushes: BytesMut,
    /// Reply latencies of the current read, added to the shared histogram after it.
    latency: LocalHistogram,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            inflight: VecDeque::new(),
            front_len: 0,
            front_frames: 0,
            wbuf: BytesMut::with_capacity(16 * 1024),
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            scanner: ReplyScanner::default(),
            pushes: BytesMut::new(),
            latency: LocalHistogram::default(),
        }
    }
}

impl Pipeline {
    fn take(&mut self, job: Job, now: Instant, detach: &mut Option<oneshot::Sender<Detached>>) {
        match job {
            Job::Request { cmd, frames, reply } => {
                self.wbuf.extend_from_slice(&cmd);
                self.inflight.push_back((reply, frames.max(1), now));
            }
            Job::Detach(to) => *detach = Some(to),
        }
    }

    /// Hands every complete reply read so far to the oldest waiting request. When a
    /// handover is pending, bytes after the last awaited reply are left for the new owner.
    fn dispatch(&mut self, detaching: bool) -> Result<(), Error> {
        let mut now = None;
        while !(detaching && self.inflight.is_empty())
            && let Some(len) = self
                .scanner
                .scan(&self.rbuf[self.front_len..])
                .map_err(|e| Error::upstream_protocol(e.to_string()))?
        {
            let at = self.front_len;
            if is_push(&self.rbuf[at..]) {
                // Shared connections never subscribe, so a push (DEBUG PROTOCOL push,
                // say) belongs to the client whose reply comes next.
                let push = self.rbuf[at..at + len].to_vec();
                let rest = self.rbuf.split_off(at).split_off(len);
                self.rbuf.unsplit(rest);
                self.pushes.extend_from_slice(&push);
                continue;
            }
            let Some(&(_, frames, _)) = self.inflight.front() else {
                return Err(Error::upstream_protocol("reply without a request"));
            };
            self.front_len += len;
            self.front_frames += 1;
            if self.front_frames < frames {
                continue;
            }
            let mut frame = self.rbuf.split_to(self.front_len).freeze();
            (self.front_len, self.front_frames) = (0, 0);
            if !self.pushes.is_empty() {
                self.pushes.extend_from_slice(&frame);
                frame = self.pushes.split().freeze();
            }
            let (to, _, taken) = self.inflight.pop_front().expect("front exists");
            let now = *now.get_or_insert_with(Instant::now);
            self.latency.record(now.saturating_duration_since(taken));
            answer(to, Ok(frame));
        }
        Ok(())
    }
}

fn lost(e: std::io::Error) -> Error {
    Error::unavailable(format!("connection lost: {e}"))
}
