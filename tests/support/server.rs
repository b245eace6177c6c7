//! Which server the tests run against, and what it says it is.
//!
//! `RESPITE_TEST_SERVER=redis` (the default) starts `/usr/bin/redis-server`;
//! `RESPITE_TEST_SERVER=valkey` starts `valkey-server` from `PATH` (scripts/deps
//! installs Valkey 8.1 in /usr/local/bin). `RESPITE_TEST_SERVER_BIN` overrides the
//! binary of either kind. Everything else (ports, arguments, data directory, restart)
//! is the same for both.
//!
//! Tests that depend on one server's features or replies ask [`server`] and say so
//! with [`skip_unless`]; differential tests compare with the same server and need
//! neither. Checks of known differences that respite does not handle yet are left out
//! on the server concerned with [`skip_pending`].

use std::{fmt, io::Write, path::PathBuf, sync::OnceLock};

pub const SERVER_ENV: &str = "RESPITE_TEST_SERVER";
pub const SERVER_BIN_ENV: &str = "RESPITE_TEST_SERVER_BIN";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Redis,
    Valkey,
}

impl ServerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Redis => "redis",
            ServerKind::Valkey => "valkey",
        }
    }

    /// The binary to start for this kind.
    pub fn binary(self) -> PathBuf {
        if let Some(bin) = std::env::var_os(SERVER_BIN_ENV) {
            return bin.into();
        }
        match self {
            ServerKind::Redis => "/usr/bin/redis-server".into(),
            ServerKind::Valkey => on_path("valkey-server").unwrap_or_else(|| {
                panic!("{SERVER_ENV}=valkey: no valkey-server on PATH (scripts/deps installs it)")
            }),
        }
    }
}

/// The kind `RESPITE_TEST_SERVER` asks for.
pub fn selected() -> ServerKind {
    match std::env::var(SERVER_ENV).as_deref() {
        Err(_) | Ok("") | Ok("redis") => ServerKind::Redis,
        Ok("valkey") => ServerKind::Valkey,
        Ok(other) => panic!("{SERVER_ENV}={other}: expected redis or valkey"),
    }
}

/// A server's kind and version, from `INFO server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    pub kind: ServerKind,
    /// (major, minor, patch)
    pub version: (u32, u32, u32),
}

impl ServerInfo {
    /// Parses an `INFO server` reply. Valkey also reports `redis_version` (the Redis
    /// version it is compatible with, 7.2.4); `server_name` and `valkey_version` tell it.
    pub fn from_info(reply: &[u8]) -> ServerInfo {
        let text = String::from_utf8_lossy(reply);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let valkey = field("server_name") == Some("valkey") || field("valkey_version").is_some();
        let (kind, version) = if valkey {
            (ServerKind::Valkey, field("valkey_version"))
        } else {
            (ServerKind::Redis, field("redis_version"))
        };
        let version = version
            .and_then(parse_version)
            .unwrap_or_else(|| panic!("no {} version in INFO server:\n{text}", kind.as_str()));
        ServerInfo { kind, version }
    }

    pub fn is_valkey(&self) -> bool {
        self.kind == ServerKind::Valkey
    }

    /// True for `kind` at version `min` (major, minor) or later.
    pub fn at_least(&self, kind: ServerKind, min: (u32, u32)) -> bool {
        self.kind == kind && (self.version.0, self.version.1) >= min
    }
}

impl fmt::Display for ServerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.version;
        write!(f, "{} {major}.{minor}.{patch}", self.kind.as_str())
    }
}

/// The server the tests run against: one is started the first time to ask it.
pub fn server() -> ServerInfo {
    static INFO: OnceLock<ServerInfo> = OnceLock::new();
    *INFO.get_or_init(|| {
        let info = super::RedisServer::start().info();
        assert_eq!(
            info.kind,
            selected(),
            "{SERVER_ENV} asks for {} but {} answered",
            selected().as_str(),
            info
        );
        info
    })
}

/// The kind of [`server`].
pub fn server_kind() -> ServerKind {
    server().kind
}

/// True, after printing why, when the tests do not run against `kind` at `min`
/// (major, minor) or later: the test returns there without checking anything.
pub fn skip_unless(kind: ServerKind, min: (u32, u32), why: &str) -> bool {
    let info = server();
    if info.at_least(kind, min) {
        return false;
    }
    let (kind, major, minor) = (kind.as_str(), min.0, min.1);
    report(&format!(
        "skipped, needs {kind} {major}.{minor} or later ({why})"
    ));
    true
}

/// Set to run the checks [`skip_pending`] leaves out (they fail until src is fixed).
pub const PENDING_ENV: &str = "RESPITE_TEST_PENDING";

/// True, after printing why, when the tests run against `kind`, where respite is known
/// to differ from the server in a way src does not handle yet (`why` says how), and
/// `RESPITE_TEST_PENDING` is not set: the caller leaves the check out. With the
/// variable set the check runs and fails, until src is fixed and the call removed.
pub fn skip_pending(kind: ServerKind, why: &str) -> bool {
    if std::env::var_os(PENDING_ENV).is_some() || server_kind() != kind {
        return false;
    }
    report(&format!(
        "left out until src is fixed ({PENDING_ENV}=1 runs it): {why}"
    ));
    true
}

/// `<test> on <server>: <what>`, on the real stderr: the test harness captures
/// `eprintln!` of passing tests, not this, so every skip shows in the run's output.
fn report(what: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("?");
    let _ = writeln!(std::io::stderr(), "{test} on {}: {what}", server());
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}
