//! A real server on a free loopback port, killed when dropped: `redis-server` by
//! default, `valkey-server` with `RESPITE_TEST_SERVER=valkey` (see [`super::server`]).

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use super::{
    client::Client,
    server::{self, ServerInfo, ServerKind},
};

const START_DEADLINE: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// The port Redis also speaks TLS on (`start_tls`).
    tls_port: Option<u16>,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts with extra `--option value` arguments.
    pub fn start_with(args: &[&str]) -> RedisServer {
        Self::start_inner(args, false)
    }

    /// Starts speaking TLS on a second port ([`RedisServer::tls_port`]) besides its
    /// plain one (kept for direct checks). `args` name the certificate files
    /// (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`) and more options;
    /// a restart reads the files again.
    pub fn start_tls(args: &[&str]) -> RedisServer {
        Self::start_inner(args, true)
    }

    fn start_inner(args: &[&str], tls: bool) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: 0,
            tls_port: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            dir: tempfile::tempdir().expect("tempdir for redis"),
        };
        // A port picked this way can be taken by someone else before Redis binds it:
        // try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            server.port = super::ports::reserve();
            server.tls_port = tls.then(super::ports::reserve);
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => {
                    server.release_ports();
                    last_error = e;
                }
            }
        }
        panic!("could not start {}: {last_error}", binary().display());
    }

    fn release_ports(&self) {
        super::ports::release(self.port);
        if let Some(port) = self.tls_port {
            super::ports::release(port);
        }
    }

    /// The TLS port of a server started with `start_tls`.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("started with start_tls")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A new direct connection to this Redis.
    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    /// Kills the server (SIGKILL: an outage, not a clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with the same options (and no data).
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old socket may linger for a moment; retry until the deadline.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("redis restart on port {} failed, retrying: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("could not restart redis on port {}: {e}", self.port),
            }
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Polls `INFO clients` until `blocked_clients` equals `n`.
    pub fn wait_blocked_clients(&self, n: usize, within: Duration) {
        let mut c = self.client();
        let ok = super::wait_until(within, || {
            info_field(&mut c, "clients", "blocked_clients") == Some(n as i64)
        });
        assert!(
            ok,
            "redis did not reach blocked_clients:{n} within {within:?} (now {:?})",
            info_field(&mut c, "clients", "blocked_clients")
        );
    }

    /// What `INFO server` of this server says it is.
    pub fn info(&self) -> ServerInfo {
        ServerInfo::from_info(&self.client().call(&["INFO", "server"]))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("redis.log");
        let binary = binary();
        let mut cmd = Command::new(binary);
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            // DEBUG SLEEP/PROTOCOL help tests hold a request in flight or see every type.
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(&self.args)
            .args(
                self.tls_port
                    .map(|p| ["--tls-port".to_owned(), p.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("{} exited with {status}: {log}", binary.display()));
            }
            if ping(self.addr()) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} on port {} did not answer PING",
                    binary.display(),
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        self.release_ports();
    }
}

/// The server binary `RESPITE_TEST_SERVER` picks, found once per test process.
fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| server::selected().binary())
}

/// A port nobody listens on right now (and that no stopped Redis of this process is
/// waiting to restart on).
pub fn free_port() -> u16 {
    super::ports::bind_loopback().local_addr().unwrap().port()
}

fn ping(addr: SocketAddr) -> bool {
    let Ok(mut c) = Client::try_connect(addr) else {
        return false;
    };
    c.set_read_timeout(Duration::from_millis(500));
    c.try_send_raw(b"*1\r\n$4\r\nPING\r\n").is_ok()
        // With --requirepass, NOAUTH also shows the server is up.
        && c.try_read_reply()
            .is_ok_and(|r| r == b"+PONG\r\n" || r.starts_with(b"-NOAUTH"))
}

/// An integer field of `INFO <section>`.
pub fn info_field(c: &mut Client, section: &str, field: &str) -> Option<i64> {
    let reply = c.call(&["INFO", section]);
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
}
