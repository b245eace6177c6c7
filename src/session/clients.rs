//! respite's own clients, by the id CLIENT ID gives them: what other clients refer to
//! (CLIENT TRACKING … REDIRECT <id>, CLIENT UNBLOCK <id>) and what operators list and
//! kill (CLIENT LIST, CLIENT KILL).
//!
//! Each session publishes its state here after each turn of its loop that dispatched
//! commands or saw its own connection's events (one uncontended lock); a listing reads
//! each state under that lock for the time of one line, so it never waits for a session.
//!
//! `[server] timeout` is kept the way Redis's clientsCron does, off every client's
//! path: once a second [`Clients::nudge_idle`] looks at the published states and
//! signals the clients that look idle longer than the timeout (not blocked, subscribed
//! or monitoring); each checks its own state before it closes ([`Signal::Idle`]).

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::mpsc;

use crate::upstream::PoolKey;

/// Where a client is connected from and to.
pub struct Peer {
    pub ip: Option<IpAddr>,
    pub addr: String,
    pub laddr: String,
    pub fd: i64,
}

impl Peer {
    pub fn new(addr: Option<SocketAddr>, laddr: Option<SocketAddr>, fd: i64) -> Self {
        let show = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
        Peer {
            ip: addr.map(|a| a.ip()),
            addr: show(addr),
            laddr: show(laddr),
            fd,
        }
    }

    /// The addresses and descriptor of an accepted socket (before TLS wraps it).
    pub fn of(stream: &tokio::net::TcpStream) -> Self {
        use std::os::fd::AsRawFd;
        let fd = i64::from(stream.as_raw_fd());
        Self::new(stream.peer_addr().ok(), stream.local_addr().ok(), fd)
    }
}

/// Flags of `CLIENT LIST`, in Redis's order of letters.
pub mod flag {
    pub const MONITOR: u16 = 1 << 0;
    pub const PUBSUB: u16 = 1 << 1;
    pub const MULTI: u16 = 1 << 2;
    pub const BLOCKED: u16 = 1 << 3;
    pub const CLOSING: u16 = 1 << 4;
    pub const NO_EVICT: u16 = 1 << 5;
    pub const TRACKING: u16 = 1 << 6;
    /// Letters of the flags above, in the order Redis writes them.
    pub const LETTERS: [(u16, u8); 7] = [
        (MONITOR, b'O'),
        (PUBSUB, b'P'),
        (MULTI, b'x'),
        (BLOCKED, b'b'),
        (TRACKING, b't'),
        (CLOSING, b'c'),
        (NO_EVICT, b'e'),
    ];
}

/// The last command's name, as `CLIENT LIST`'s `cmd=` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LastCmd {
    Known(&'static str),
    Other(Bytes),
}

impl Default for LastCmd {
    fn default() -> Self {
        LastCmd::Known("NULL")
    }
}

/// What a session publishes of itself.
#[derive(Clone)]
pub struct ClientState {
    pub key: PoolKey,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// Channels, patterns and shard channels subscribed to.
    pub subs: [usize; 3],
    /// Commands queued in MULTI, or -1.
    pub multi: i64,
    /// The client CLIENT TRACKING … REDIRECT names (-1: none).
    pub redir: i64,
    pub flags: u16,
    pub cmd: LastCmd,
    pub last_active: Instant,
    /// Input read and not yet parsed, and the buffer's free room.
    pub qbuf: usize,
    pub qbuf_free: usize,
    /// Bytes in the output buffer, replies queued behind it, and all bytes queued.
    pub obl: usize,
    pub oll: usize,
    pub omem: usize,
    pub net_in: u64,
    pub net_out: u64,
    pub cmds: u64,
}

impl ClientState {
    fn new(key: PoolKey, now: Instant) -> Self {
        ClientState {
            key,
            name: None,
            lib_name: None,
            lib_ver: None,
            subs: [0; 3],
            multi: -1,
            redir: -1,
            flags: 0,
            cmd: LastCmd::default(),
            last_active: now,
            qbuf: 0,
            qbuf_free: 0,
            obl: 0,
            oll: 0,
            omem: 0,
            net_in: 0,
            net_out: 0,
            cmds: 0,
        }
    }

    /// The ACL user the client is authenticated as.
    pub fn user(&self) -> &str {
        self.key
            .creds
            .as_ref()
            .and_then(|c| c.user.as_deref())
            .unwrap_or("default")
    }

    /// `CLIENT KILL TYPE`/`CLIENT LIST TYPE`: respite's clients are never replicas.
    pub fn is_pubsub(&self) -> bool {
        self.flags & flag::PUBSUB != 0
    }
}

/// What a session is asked to do by others (see [`ClientEntry::take_signal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    None,
    /// It looked idle past `[server] timeout` since it ran its `cmds`-th command: it
    /// closes if it ran none since, read nothing for that long and owes no reply.
    Idle {
        cmds: u64,
    },
    /// `CLIENT KILL`: close now.
    Kill,
}

/// One client, as other sessions see it.
pub struct ClientEntry {
    pub id: u64,
    pub born: Instant,
    pub peer: Peer,
    /// The `CLIENT ID` in Redis of the client's own upstream connection (0: none).
    upstream_id: AtomicI64,
    /// Another client's `CLIENT TRACKING … REDIRECT` names this one: its own
    /// connection is kept (Redis sends the invalidations there).
    redirect_target: AtomicBool,
    /// Set by `CLIENT KILL`.
    killed: AtomicBool,
    /// The idle sweep's nudge: 1 + the commands it saw the client run (0: none).
    idle_nudge: AtomicU64,
    /// Wakes the session to take its signal (a full channel: a wake is pending).
    wake: mpsc::Sender<()>,
    state: Mutex<ClientState>,
}

impl ClientEntry {
    pub fn set_upstream_id(&self, id: i64) {
        self.upstream_id.store(id, Ordering::Release);
    }

    pub fn upstream_id(&self) -> i64 {
        self.upstream_id.load(Ordering::Acquire)
    }

    pub fn is_redirect_target(&self) -> bool {
        self.redirect_target.load(Ordering::Acquire)
    }

    /// Runs `f` on the published state.
    pub fn update(&self, f: impl FnOnce(&mut ClientState)) {
        f(&mut self.state.lock().expect("client state"));
    }

    pub fn state(&self) -> ClientState {
        self.state.lock().expect("client state").clone()
    }

    /// Asks the session to close the connection (`CLIENT KILL`). False if it was
    /// already asked.
    pub fn kill(&self) -> bool {
        if self.killed.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Full: a wake is pending already. Closed: the session is gone.
        !matches!(
            self.wake.try_send(()),
            Err(mpsc::error::TrySendError::Closed(()))
        )
    }

    /// Asks the session to close if it is still idle (see [`Signal::Idle`]).
    fn nudge_idle(&self, cmds: u64) {
        self.idle_nudge.store(cmds + 1, Ordering::Release);
        let _ = self.wake.try_send(());
    }

    /// What the session was asked since it last looked (once woken).
    pub fn take_signal(&self) -> Signal {
        if self.killed.load(Ordering::Acquire) {
            return Signal::Kill;
        }
        match self.idle_nudge.swap(0, Ordering::AcqRel) {
            0 => Signal::None,
            n => Signal::Idle { cmds: n - 1 },
        }
    }
}

/// Whether the upstream knows `CLIENT SETINFO` (Redis 7.2+, Valkey).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetInfo {
    Unknown = 0,
    Supported = 1,
    Unsupported = 2,
}

/// Every connected client.
#[derive(Default)]
pub struct Clients {
    by_id: DashMap<u64, Arc<ClientEntry>>,
    /// One of the upstream's `CLIENT LIST` lines: its fields and their order.
    template: arc_swap::ArcSwapOption<String>,
    setinfo: AtomicU8,
    /// Held while a listing is written.
    pub listing: Mutex<()>,
}

impl Clients {
    /// Registers client `id`; it is listed until [`Clients::remove`]. The receiver
    /// wakes when another client kills it or the idle sweep nudges it: then
    /// [`ClientEntry::take_signal`] says which.
    pub fn add(&self, id: u64, peer: Peer, key: PoolKey) -> (Arc<ClientEntry>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel(1);
        let born = Instant::now();
        let entry = Arc::new(ClientEntry {
            id,
            born,
            peer,
            upstream_id: AtomicI64::new(0),
            redirect_target: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            idle_nudge: AtomicU64::new(0),
            wake: tx,
            state: Mutex::new(ClientState::new(key, born)),
        });
        self.by_id.insert(id, entry.clone());
        (entry, rx)
    }

    pub fn remove(&self, id: u64) {
        self.by_id.remove(&id);
    }

    /// How many clients are connected.
    pub fn count(&self) -> usize {
        self.by_id.len()
    }

    /// Calls `f` on every client, in order of id, with its state (locked only while
    /// `f` runs on it: a listing never copies a state nor holds one for long).
    pub fn each(&self, mut f: impl FnMut(&ClientEntry, &ClientState)) {
        let mut all: Vec<Arc<ClientEntry>> = self.by_id.iter().map(|e| e.value().clone()).collect();
        all.sort_unstable_by_key(|e| e.id);
        for e in all {
            f(&e, &e.state.lock().expect("client state"));
        }
    }

    /// Nudges every client whose published state says it has been idle longer than
    /// `timeout` at `now` and is not blocked, subscribed or monitoring (Redis's
    /// clientsCronHandleTimeout); how many.
    pub fn nudge_idle(&self, timeout: Duration, now: Instant) -> usize {
        let exempt = flag::BLOCKED | flag::PUBSUB | flag::MONITOR;
        let mut nudged = 0;
        for e in self.by_id.iter() {
            let idle = {
                let s = e.state.lock().expect("client state");
                let over = now.saturating_duration_since(s.last_active) > timeout;
                (over && s.flags & exempt == 0).then_some(s.cmds)
            };
            if let Some(cmds) = idle {
                e.nudge_idle(cmds);
                nudged += 1;
            }
        }
        nudged
    }

    /// The upstream connection id that stands for respite client `id` in commands
    /// sent to Redis: its own connection's, or one Redis surely has not given
    /// (Redis then answers as for a client that does not exist).
    pub fn upstream_id_of(&self, id: &[u8]) -> i64 {
        self.entry_of(id)
            .map(|e| e.upstream_id())
            .filter(|&up| up > 0)
            .unwrap_or(i64::MAX)
    }

    /// Like [`Clients::upstream_id_of`], and a subscribed client keeps that connection
    /// while Redis may send it another client's invalidations. Only a subscribed one:
    /// anyone may name any id, and a client kept on its own connection loses L1.
    pub fn redirect_to(&self, id: &[u8]) -> i64 {
        if let Some(e) = self.entry_of(id).filter(|e| e.state().is_pubsub()) {
            e.redirect_target.store(true, Ordering::Release);
        }
        self.upstream_id_of(id)
    }

    fn entry_of(&self, id: &[u8]) -> Option<Arc<ClientEntry>> {
        let id = std::str::from_utf8(id).ok()?.parse::<u64>().ok()?;
        self.by_id.get(&id).map(|e| e.value().clone())
    }

    /// One of the upstream's `CLIENT LIST` lines, once seen.
    pub fn template(&self) -> Option<Arc<String>> {
        self.template.load_full()
    }

    /// Keeps one of the upstream's `CLIENT LIST` lines as the model of respite's.
    pub fn learn_template(&self, line: &str) {
        let known = self.template.load();
        if line.starts_with("id=") && known.as_deref().is_none_or(|t| t != line) {
            self.template.store(Some(Arc::new(line.to_string())));
        }
    }

    pub fn setinfo(&self) -> SetInfo {
        match self.setinfo.load(Ordering::Acquire) {
            1 => SetInfo::Supported,
            2 => SetInfo::Unsupported,
            _ => SetInfo::Unknown,
        }
    }

    pub fn set_setinfo(&self, s: SetInfo) {
        self.setinfo.store(s as u8, Ordering::Release);
    }
}
