//! An in-process TCP hop between the proxy and Redis that can cut, refuse,
//! black-hole or delay traffic.

use std::{
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

const PASS: u8 = 0;
const REFUSE: u8 = 1;
const BLACKHOLE: u8 = 2;
/// Bytes of client-to-server traffic kept for `wait_seen`.
const SEEN_CAP: usize = 1 << 20;

pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept_thread: Option<JoinHandle<()>>,
}

struct State {
    target: SocketAddr,
    mode: AtomicU8,
    delay_us: AtomicU64,
    stopping: AtomicBool,
    accepted: AtomicUsize,
    /// Both ends of every live connection, so `cut` can close them.
    conns: Mutex<Vec<TcpStream>>,
    seen_upstream: Mutex<Vec<u8>>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let listener = super::ports::bind_loopback();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            target,
            mode: AtomicU8::new(PASS),
            delay_us: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            conns: Mutex::new(Vec::new()),
            seen_upstream: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        let accept_thread = std::thread::Builder::new()
            .name("fault-accept".into())
            .spawn(move || accept_loop(listener, s))
            .unwrap();
        FaultProxy {
            addr,
            state,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Closes every current connection (both sides see the connection end).
    pub fn cut(&self) {
        let conns = std::mem::take(&mut *self.state.conns.lock().unwrap());
        for c in conns {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// New connections are reset at once (existing ones are left alone).
    pub fn block(&self) {
        self.state.mode.store(REFUSE, Ordering::SeqCst);
    }

    /// New connections are accepted but nothing is forwarded either way, like a
    /// network partition.
    pub fn blackhole(&self) {
        self.state.mode.store(BLACKHOLE, Ordering::SeqCst);
    }

    /// New connections are forwarded again.
    pub fn unblock(&self) {
        self.state.mode.store(PASS, Ordering::SeqCst);
    }

    /// Every chunk read from either side waits this long before it is written on.
    pub fn delay(&self, d: Duration) {
        self.state
            .delay_us
            .store(d.as_micros() as u64, Ordering::SeqCst);
    }

    /// Connections accepted so far, in any mode.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Waits until `needle` has been sent towards the target (it may still be held
    /// by `delay`).
    pub fn wait_seen(&self, needle: &[u8], within: Duration) -> bool {
        super::wait_until(within, || {
            self.state
                .seen_upstream
                .lock()
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
        })
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        self.cut();
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = stream else { continue };
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let _ = client.set_nodelay(true);
        match state.mode.load(Ordering::SeqCst) {
            REFUSE => {
                let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                drop(client);
            }
            BLACKHOLE => {
                remember(&state, &client);
                std::thread::spawn(move || {
                    let mut client = client;
                    let mut sink = [0u8; 4096];
                    while matches!(client.read(&mut sink), Ok(n) if n > 0) {}
                });
            }
            _ => {
                let Ok(server) = TcpStream::connect(state.target) else {
                    let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
                    continue;
                };
                let _ = server.set_nodelay(true);
                remember(&state, &client);
                remember(&state, &server);
                spawn_pump(&client, &server, &state, true);
                spawn_pump(&server, &client, &state, false);
            }
        }
    }
}

fn remember(state: &State, s: &TcpStream) {
    if let Ok(c) = s.try_clone() {
        state.conns.lock().unwrap().push(c);
    }
}

fn spawn_pump(from: &TcpStream, to: &TcpStream, state: &Arc<State>, upstream: bool) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let state = state.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if upstream {
                let mut seen = state.seen_upstream.lock().unwrap();
                seen.extend_from_slice(&buf[..n]);
                if seen.len() > SEEN_CAP {
                    let excess = seen.len() - SEEN_CAP;
                    seen.drain(..excess);
                }
            }
            let delay = state.delay_us.load(Ordering::SeqCst);
            if delay > 0 {
                std::thread::sleep(Duration::from_micros(delay));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
