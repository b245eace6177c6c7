//! Event loops for client sessions when `[server] threads` is above 1.
//!
//! Each worker thread runs its own current-thread runtime: a client is handed to one
//! loop when accepted and stays there, and the shared upstream connections it uses
//! are that loop's own (`upstream::set_event_loop`). So a request is read, forwarded,
//! answered and written without waking another thread, the way Envoy's workers or
//! Redis's own event loop work; a multi-thread runtime on a busy 2-core machine spent
//! a quarter more CPU per request moving tasks and wake-ups between threads. The L1
//! cache, the metrics and the namespace rules are shared by every loop.
//!
//! With one thread there are no workers: sessions run on the caller's runtime (see
//! `server::runtime`), which is then the only event loop.

use std::{
    io,
    sync::Arc,
    thread::{self, JoinHandle},
    time::Duration,
};

use tokio::{runtime::Handle, sync::oneshot};
use tracing::warn;

use crate::upstream::{self, Upstream};

pub struct Workers {
    loops: Vec<Loop>,
    next: usize,
}

struct Loop {
    handle: Handle,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// How long stopping waits for a loop's tasks to be dropped.
const STOP_WAIT: Duration = Duration::from_secs(5);

impl Workers {
    /// Starts `n` event loops (none for `n` <= 1) and opens each one's initial pool.
    pub fn start(n: usize, upstream: &Arc<Upstream>) -> io::Result<Self> {
        let mut loops = Vec::new();
        if n > 1 {
            for i in 1..=n {
                loops.push(Loop::start(i, upstream.clone())?);
            }
        }
        Ok(Self { loops, next: 0 })
    }

    /// The loop the next client goes to (round robin), or None: the caller's runtime.
    pub fn next(&mut self) -> Option<&Handle> {
        if self.loops.is_empty() {
            return None;
        }
        self.next = (self.next + 1) % self.loops.len();
        Some(&self.loops[self.next].handle)
    }

    /// Stops every loop (dropping its remaining tasks and connections) and waits for
    /// the threads to end.
    pub async fn stop(self) {
        for l in self.loops {
            let _ = l.stop.send(());
            let thread = l.thread;
            let joined = tokio::task::spawn_blocking(move || thread.join());
            if tokio::time::timeout(STOP_WAIT, joined).await.is_err() {
                warn!("an event loop did not stop in time");
            }
        }
    }
}

impl Loop {
    fn start(index: usize, upstream: Arc<Upstream>) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name(format!("respite-loop-{index}"))
            .spawn(move || {
                upstream::set_event_loop(index);
                runtime.block_on(async move {
                    upstream.warm_up();
                    let _ = stopped.await;
                });
                // Dropping the runtime drops its sessions' and connections' tasks.
                drop(runtime);
            })?;
        Ok(Self {
            handle,
            stop,
            thread,
        })
    }
}
