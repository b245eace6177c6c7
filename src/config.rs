//! `proxy.toml`: serde structs with defaults, parsing separate from reading the file,
//! and `validate()` that names the key (and line) at fault.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use bytesize::ByteSize;

mod url;
use serde::Deserialize;
pub use url::{Credentials, UpstreamAddr, redact};

/// The whole configuration file.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub l1: L1Config,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default, rename = "namespace")]
    pub namespaces: Vec<NamespaceConfig>,
    /// The file this was loaded from (watched and reloaded); none when built in code.
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
    /// The text it was parsed from, to name the line of a key at fault.
    #[serde(skip)]
    pub text: String,
}

/// Debug output leaves the file's text out (it holds the passwords).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("upstream", &self.upstream)
            .field("l1", &self.l1)
            .field("metrics", &self.metrics)
            .field("log", &self.log)
            .field("admin", &self.admin)
            .field("namespaces", &self.namespaces)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address clients connect to.
    pub listen: String,
    /// Connections beyond this get `-ERR max number of clients reached`.
    pub max_clients: usize,
    /// Connections from one source address beyond this get the same refusal; 0: no
    /// limit per address.
    pub max_clients_per_ip: usize,
    /// A client idle this long is closed, as with Redis's `timeout` (not while it
    /// waits in a blocking command, is subscribed or runs MONITOR); 0 (`"off"`): never.
    #[serde(deserialize_with = "interval")]
    pub timeout: Duration,
    /// Largest bulk string a client may send (Redis: proto-max-bulk-len).
    pub max_bulk_len: ByteSize,
    /// Largest number of arguments in one command.
    pub max_args: usize,
    /// Largest inline command line (Redis: 64 KiB).
    pub max_inline_len: ByteSize,
    /// Commands of one client that may await their reply at once; past this the
    /// proxy stops reading from that client until replies drain.
    pub max_pipeline: usize,
    /// Reply bytes queued for one client (whoever produced them: Redis, L1, pushes)
    /// before the proxy stops reading its commands until it reads its replies.
    pub max_output_buffer: ByteSize,
    /// Reply bytes queued for one client past which it is closed, as Redis's
    /// client-output-buffer-limit does (replies already in flight can take a client
    /// that does not read past `max_output_buffer`).
    pub output_buffer_limit: ByteSize,
    /// How long SIGTERM/SIGINT waits for in-flight requests before exiting.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Event loops (one thread each) serving clients; 0 = half the CPUs (at least
    /// one), leaving the rest to Redis and the application, which usually share the
    /// machine.
    pub threads: usize,
    /// A second address for clients, speaking TLS (needs `tls_cert` and `tls_key`).
    pub tls_listen: Option<String>,
    /// PEM certificate chain the TLS listener presents.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: when set, TLS clients must present a certificate one of
    /// them signed (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// How long a TLS client may take to complete its handshake before it is closed.
    #[serde(with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
}

impl ServerConfig {
    /// Every address clients connect to (what decides whether the proxy is reachable
    /// beyond this host, see [`loopback_only`]).
    pub fn client_listeners(&self) -> Vec<&str> {
        std::iter::once(self.listen.as_str())
            .chain(self.tls_listen.as_deref())
            .collect()
    }

    /// The number of event loops to run.
    pub fn event_loops(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cpus / 2).max(1)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:6380".into(),
            max_clients: 10_000,
            max_clients_per_ip: 0,
            timeout: Duration::ZERO,
            max_bulk_len: ByteSize::mib(512),
            max_args: 1024 * 1024,
            max_inline_len: ByteSize::kib(64),
            max_pipeline: 1024,
            max_output_buffer: ByteSize::mib(16),
            output_buffer_limit: ByteSize::mib(256),
            shutdown_grace: Duration::from_secs(10),
            threads: 0,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_handshake_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// `redis://[user:pass@]host:port[/db]`, or `rediss://…` for TLS.
    pub url: String,
    /// Shared pipelined connections per event loop and (db, user, protocol).
    pub pool_size: usize,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Silence on a connection with requests waiting before respite checks that
    /// Redis is alive (a PING on a new connection). A slow command or a long pipeline
    /// is never cut off while Redis answers.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long that check may take before Redis is declared unreachable and the
    /// waiting requests fail. Redis answers nobody while a script runs, up to its
    /// `busy-reply-threshold` (5 s by default): keep this above it.
    #[serde(with = "humantime_serde")]
    pub liveness_timeout: Duration,
    /// First reconnect delay; doubles up to `max_backoff`, with jitter.
    #[serde(with = "humantime_serde")]
    pub min_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// PEM CA certificates that sign Redis's certificate (`rediss://`); without it,
    /// the system's.
    pub tls_ca: Option<PathBuf>,
    /// PEM certificate chain presented to Redis (when it sets `tls-auth-clients`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// The name Redis's certificate must carry, if not the URL's host.
    pub tls_server_name: Option<String>,
}

/// Debug output never shows the URL's password (see [`redact`]).
impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("url", &redact(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("liveness_timeout", &self.liveness_timeout)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("tls_server_name", &self.tls_server_name)
            .finish()
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            liveness_timeout: Duration::from_secs(6),
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct L1Config {
    pub max_memory: ByteSize,
    pub coherence: Coherence,
    /// How often `ACL LIST` is compared with its last answer, on the poll's connection
    /// (see `observe::poll`): the entries of a user whose rules changed directly on
    /// Redis go. Zero (`"off"`) never.
    #[serde(deserialize_with = "interval")]
    pub acl_check: Duration,
}

impl Default for L1Config {
    fn default() -> Self {
        Self {
            max_memory: ByteSize::mib(256),
            coherence: Coherence::Tracking,
            acl_check: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Coherence {
    Tracking,
    TtlOnly,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the `/metrics`, `/healthz`, `/readyz` endpoint; none when unset.
    pub listen: Option<String>,
    /// How often Redis's `INFO` (memory, stats, keyspace, clients) is read, on a
    /// connection of its own; zero (`"off"`) never.
    #[serde(deserialize_with = "interval")]
    pub upstream_poll: Duration,
    /// How often the size of each namespace in Redis is estimated (bounded SCAN and
    /// MEMORY USAGE, see `observe::poll`); zero (`"off"`) never.
    #[serde(deserialize_with = "interval")]
    pub namespace_sizes: Duration,
    /// `PUT /loglevel` changes the log level; false: refused with 403.
    pub allow_loglevel: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            upstream_poll: Duration::from_secs(5),
            namespace_sizes: Duration::from_secs(60),
            allow_loglevel: false,
        }
    }
}

/// Shortest and longest interval of `upstream_poll`, `namespace_sizes` and
/// `acl_check` (when on).
pub const INTERVALS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(24 * 3600));

/// A duration (`"5s"`), or `"off"` (or `0`) for zero.
fn interval<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(0) => Ok(Duration::ZERO),
        Raw::Number(n) => Err(D::Error::custom(format!(
            "{n} has no unit: write \"{n}s\", or \"off\""
        ))),
        Raw::Text(t) if t.trim().eq_ignore_ascii_case("off") => Ok(Duration::ZERO),
        Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
            D::Error::custom(format!(
                "`{t}`: {e} (a duration such as \"5s\", or \"off\")"
            ))
        }),
    }
}

/// True when every address in `listeners` (`host:port`) is a loopback one (127.0.0.0/8
/// or `::1`): only processes on this host can connect. An address that does not parse
/// counts as reachable from elsewhere.
pub fn loopback_only<'a>(listeners: impl IntoIterator<Item = &'a str>) -> bool {
    listeners.into_iter().all(|l| {
        l.parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().to_canonical().is_loopback())
    })
}

/// An interval as `respite check` shows it: `5s`, or `off`.
pub fn show_interval(d: Duration) -> String {
    if d.is_zero() {
        "off".into()
    } else {
        humantime::format_duration(d).to_string()
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `respite=debug`; `RUST_LOG` wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[admin]`: the `RESPITE …` commands (see `admin.rs`).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// False: every `RESPITE` subcommand but HELP is refused with `-NOPERM`.
    pub enabled: bool,
    /// When set, a connection must send `RESPITE AUTH <password>` before any other
    /// `RESPITE` subcommand but HELP.
    pub password: Option<String>,
    /// Keys per SCAN page (its COUNT), per UNLINK and per warm-up pipeline; also the
    /// COUNT of the namespace-size sampling's SCAN (`metrics.namespace_sizes`).
    pub batch: usize,
    /// Pause between two batches of DELPATTERN or WARM (and, at least 10 ms, between
    /// the sampling's SCAN pages), so Redis latency stays flat.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
    /// Pub/sub channel DELPATTERN publishes deleted keys on, and that respites with
    /// `coherence = "ttl-only"` listen to; empty: neither.
    pub invalidation_channel: String,
}

/// Debug output never shows the password.
impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let password = self.password.as_ref().map(|_| "<hidden>");
        f.debug_struct("AdminConfig")
            .field("enabled", &self.enabled)
            .field("password", &password)
            .field("batch", &self.batch)
            .field("pause", &self.pause)
            .field("invalidation_channel", &self.invalidation_channel)
            .finish()
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            password: None,
            batch: 1000,
            pause: Duration::from_millis(1),
            invalidation_channel: "__respite:invalidate".into(),
        }
    }
}

/// One `[[namespace]]` rule. Parsed and validated now; applied by later stages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    pub name: String,
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub max_ttl: Option<Duration>,
    #[serde(default)]
    pub l1: bool,
    #[serde(default, with = "humantime_serde")]
    pub l1_ttl: Option<Duration>,
    #[serde(default)]
    pub compress: Option<String>,
    #[serde(default)]
    pub compress_min_size: Option<ByteSize>,
    /// zstd level (1–19); only with `compress = "zstd"`.
    #[serde(default)]
    pub compress_level: Option<i32>,
    #[serde(default, with = "humantime_serde")]
    pub stale_if_error: Option<Duration>,
    #[serde(default)]
    pub lease: bool,
    /// Fill L1 with the namespace's keys in the background after start-up.
    #[serde(default)]
    pub warm: bool,
}

/// A configuration problem, with the key at fault and its line when known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("invalid `{key}`{}: {reason}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Invalid {
        key: String,
        line: Option<usize>,
        reason: String,
    },
}

impl Config {
    /// Reads, parses, applies environment overrides and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::parse(&text)?;
        config.apply_env(|k| std::env::var(k).ok());
        config.validate(&text)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses TOML text without validating.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(parse_error(text, &e)))?;
        config.text = text.to_owned();
        Ok(config)
    }

    /// `RESPITE_LISTEN` and `RESPITE_UPSTREAM` override the file (for containers).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        if let Some(listen) = get("RESPITE_LISTEN") {
            self.server.listen = listen;
        }
        if let Some(url) = get("RESPITE_UPSTREAM") {
            self.upstream.url = url;
        }
    }

    /// Checks values serde cannot; `text` is the file, used to name the line at fault.
    pub fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let invalid = |section: &str, key: &str, reason: String| ConfigError::Invalid {
            key: format!("{section}.{key}"),
            line: find_line(text, section, key),
            reason,
        };
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "server",
                "listen",
                format!("`{}` is not host:port", self.server.listen),
            ));
        }
        for (key, value) in [
            ("max_clients", self.server.max_clients),
            ("max_args", self.server.max_args),
            ("max_pipeline", self.server.max_pipeline),
        ] {
            if value == 0 {
                return Err(invalid("server", key, "must be at least 1".into()));
            }
        }
        let timeout = self.server.timeout;
        if !timeout.is_zero() && timeout < Duration::from_secs(1) {
            return Err(invalid(
                "server",
                "timeout",
                "must be \"off\" (0) or at least 1s".into(),
            ));
        }
        if self.server.threads > 256 {
            return Err(invalid(
                "server",
                "threads",
                "must be between 0 (half the CPUs) and 256".into(),
            ));
        }
        if let Err(e) = UpstreamAddr::parse(&self.upstream.url) {
            return Err(invalid("upstream", "url", e));
        }
        if self.upstream.pool_size == 0 || self.upstream.pool_size > 1024 {
            return Err(invalid(
                "upstream",
                "pool_size",
                "must be between 1 and 1024".into(),
            ));
        }
        if self.upstream.connect_timeout.is_zero() {
            return Err(invalid("upstream", "connect_timeout", "must be > 0".into()));
        }
        if self.upstream.request_timeout.is_zero() {
            return Err(invalid("upstream", "request_timeout", "must be > 0".into()));
        }
        if self.upstream.liveness_timeout.is_zero() {
            return Err(invalid(
                "upstream",
                "liveness_timeout",
                "must be > 0".into(),
            ));
        }
        if let Some(listen) = &self.metrics.listen
            && listen.parse::<SocketAddr>().is_err()
        {
            return Err(invalid(
                "metrics",
                "listen",
                format!("`{listen}` is not host:port"),
            ));
        }
        self.validate_intervals(text)?;
        self.validate_tls(text)?;
        self.validate_admin(text)?;
        self.validate_namespaces(text)
    }

    /// What a rule's fields say of each other (the rules themselves are checked when
    /// they are compiled: `Policy::from_config`).
    fn validate_namespaces(&self, text: &str) -> Result<(), ConfigError> {
        for (i, ns) in self.namespaces.iter().enumerate() {
            if ns.warm && !ns.l1 {
                let reason = format!("rule `{}`: needs `l1 = true` (warming fills L1)", ns.name);
                return Err(ConfigError::in_rule(text, i, "warm", reason));
            }
        }
        Ok(())
    }

    /// `[metrics] upstream_poll` and `namespace_sizes`, `[l1] acl_check`: off, or
    /// within [`INTERVALS`].
    fn validate_intervals(&self, text: &str) -> Result<(), ConfigError> {
        let (min, max) = INTERVALS;
        for (section, key, value) in [
            ("metrics", "upstream_poll", self.metrics.upstream_poll),
            ("metrics", "namespace_sizes", self.metrics.namespace_sizes),
            ("l1", "acl_check", self.l1.acl_check),
        ] {
            if !value.is_zero() && !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid {
                    key: format!("{section}.{key}"),
                    line: find_line(text, section, key),
                    reason: format!(
                        "must be \"off\" or between {} and {}",
                        show_interval(min),
                        show_interval(max)
                    ),
                });
            }
        }
        Ok(())
    }

    /// What the TLS keys say of each other (the files are read by `tls`, when the
    /// listener or the upstream connections are set up, and by `respite check`).
    fn validate_tls(&self, text: &str) -> Result<(), ConfigError> {
        let invalid = |section: &str, key: &str, reason: &str| ConfigError::Invalid {
            key: format!("{section}.{key}"),
            line: find_line(text, section, key),
            reason: reason.into(),
        };
        let server = &self.server;
        if let Some(listen) = &server.tls_listen {
            if listen.parse::<SocketAddr>().is_err() {
                return Err(invalid("server", "tls_listen", "is not host:port"));
            }
            if server.tls_cert.is_none() || server.tls_key.is_none() {
                return Err(invalid(
                    "server",
                    "tls_listen",
                    "needs tls_cert and tls_key",
                ));
            }
        }
        if server.tls_handshake_timeout.is_zero() {
            return Err(invalid("server", "tls_handshake_timeout", "must be > 0"));
        }
        if server.tls_cert.is_some() != server.tls_key.is_some() {
            return Err(invalid(
                "server",
                "tls_cert",
                "tls_cert and tls_key go together",
            ));
        }
        let up = &self.upstream;
        if up.tls_cert.is_some() != up.tls_key.is_some() {
            return Err(invalid(
                "upstream",
                "tls_cert",
                "tls_cert and tls_key go together",
            ));
        }
        // A TLS key with a plaintext URL would be ignored: refused, so that a
        // forgotten `rediss://` cannot silently send everything in clear.
        let tls_url = UpstreamAddr::parse(&up.url).is_ok_and(|a| a.tls);
        let set = [
            ("tls_ca", up.tls_ca.is_some()),
            ("tls_cert", up.tls_cert.is_some()),
            ("tls_server_name", up.tls_server_name.is_some()),
        ];
        if let Some((key, _)) = set.into_iter().find(|(_, set)| *set && !tls_url) {
            return Err(invalid(
                "upstream",
                key,
                "applies to rediss:// URLs only (the url is redis://, plaintext)",
            ));
        }
        Ok(())
    }

    fn validate_admin(&self, text: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: format!("admin.{key}"),
            line: find_line(text, "admin", key),
            reason: reason.into(),
        };
        let admin = &self.admin;
        if admin.password.as_deref() == Some("") {
            return Err(invalid(
                "password",
                "must not be empty (leave it out for none)",
            ));
        }
        if !(1..=100_000).contains(&admin.batch) {
            return Err(invalid("batch", "must be between 1 and 100000"));
        }
        if admin.pause > Duration::from_secs(10) {
            return Err(invalid("pause", "must be at most 10s"));
        }
        Ok(())
    }
}

impl ConfigError {
    /// `key` of the `rule`-th `[[namespace]]` (from 0) is invalid; `text` is the file,
    /// used to name the line.
    pub fn in_rule(text: &str, rule: usize, key: &str, reason: String) -> Self {
        ConfigError::Invalid {
            key: format!("namespace[{rule}].{key}"),
            line: find_rule_line(text, rule, key),
            reason,
        }
    }
}

/// A TOML error as "line L, column C (`key`): message": the key at fault but not the
/// excerpt of the file that `toml` shows (its value may be a password).
fn parse_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(span) = e.span() else {
        return format!("TOML parse error: {message}");
    };
    let before = &text[..span.start.min(text.len())];
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let (line, column) = (before.matches('\n').count() + 1, before.len() - start + 1);
    let at = text[start..].lines().next().unwrap_or_default();
    let key = match at.split_once('=') {
        Some((key, _)) => format!(" (`{}`)", key.trim()),
        None => String::new(),
    };
    format!("TOML parse error at line {line}, column {column}{key}: {message}")
}

/// The 1-based line of `key = …` in the `rule`-th `[[namespace]]` (from 0), or of
/// that rule's header.
fn find_rule_line(text: &str, rule: usize, key: &str) -> Option<usize> {
    let mut seen = 0;
    let mut header = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            if header.is_some() {
                break;
            }
            if line.trim_matches(|c| c == '[' || c == ']').trim() == "namespace" {
                if seen == rule {
                    header = Some(n + 1);
                }
                seen += 1;
            }
        } else if header.is_some()
            && let Some((k, _)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(n + 1);
        }
    }
    header
}

/// The 1-based line of `key = …` inside `[section]` (or `[[section]]`), if present.
fn find_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned();
        } else if current == section
            && let Some((k, _)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(n + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why `validate` refuses `text` (which must parse).
    fn refused(text: &str) -> String {
        let c = Config::parse(text).unwrap();
        c.validate(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        c.validate("").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:6380");
        assert_eq!(c.upstream.pool_size, 1);
    }

    #[test]
    fn reference_file_is_valid() {
        let text = include_str!("../proxy.toml");
        let c = Config::parse(text).unwrap();
        c.validate(text).unwrap();
        assert!(!c.namespaces.is_empty());
    }

    #[test]
    fn unknown_key_is_named_with_line() {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n";
        let err = Config::parse(text).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn invalid_value_names_key_and_line() {
        let text = "[upstream]\nurl = \"redis://x:1\"\npool_size = 0\n";
        let c = Config::parse(text).unwrap();
        let err = c.validate(text).unwrap_err().to_string();
        assert!(err.contains("upstream.pool_size"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn thread_count_is_bounded() {
        let text = "[server]\nthreads = 1000\n";
        let err = refused(text);
        assert!(err.contains("server.threads"), "{err}");
        let text = "[server]\nthreads = 4\n";
        let c = Config::parse(text).unwrap();
        c.validate(text).unwrap();
        assert_eq!(c.server.event_loops(), 4);
    }

    #[test]
    fn polling_intervals_take_durations_or_off() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.metrics.upstream_poll, Duration::from_secs(5));
        assert_eq!(c.metrics.namespace_sizes, Duration::from_secs(60));
        let text = "[metrics]\nupstream_poll = \"off\"\nnamespace_sizes = 0\n";
        let c = Config::parse(text).unwrap();
        c.validate(text).unwrap();
        assert_eq!(c.metrics.upstream_poll, Duration::ZERO);
        assert_eq!(c.metrics.namespace_sizes, Duration::ZERO);
        let text = "[metrics]\nupstream_poll = \"250ms\"\nnamespace_sizes = \"2m\"\n";
        let c = Config::parse(text).unwrap();
        c.validate(text).unwrap();
        assert_eq!(c.metrics.upstream_poll, Duration::from_millis(250));
        assert_eq!(c.metrics.namespace_sizes, Duration::from_secs(120));
        assert_eq!(show_interval(c.metrics.namespace_sizes), "2m");
        assert_eq!(show_interval(Duration::ZERO), "off");
        for bad in ["5", "\"soon\"", "true"] {
            let text = format!("[metrics]\nupstream_poll = {bad}\n");
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains("upstream_poll"), "{bad}: {err}");
        }
        let text = "[metrics]\nlisten = \"127.0.0.1:1\"\nnamespace_sizes = \"10ms\"\n";
        let err = refused(text);
        assert!(err.contains("metrics.namespace_sizes"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn acl_check_is_an_interval() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.l1.acl_check, Duration::from_secs(1));
        let text = "[l1]\nacl_check = \"off\"\n";
        let c = Config::parse(text).unwrap();
        c.validate(text).unwrap();
        assert_eq!(c.l1.acl_check, Duration::ZERO);
        let text = "[l1]\nmax_memory = \"1MiB\"\nacl_check = \"1ms\"\n";
        let err = refused(text);
        assert!(
            err.contains("l1.acl_check") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn debug_output_hides_passwords() {
        let text =
            "[upstream]\nurl = \"redis://u:up-secret@h:1\"\n[admin]\npassword = \"adm-secret\"\n";
        let shown = format!("{:?}", Config::parse(text).unwrap());
        assert!(shown.contains("redis://u:***@h:1"), "{shown}");
        assert!(
            !shown.contains("up-secret") && !shown.contains("adm-secret"),
            "{shown}"
        );
    }

    #[test]
    fn parse_errors_do_not_quote_the_file() {
        let text = "[admin]\nbatch = 1\npassword = \"s3cret\n";
        let err = Config::parse(text).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let text = "[upstream]\nurl = \"redis://:s3cret@h\"\nbogus = 1\n";
        let err = Config::parse(text).unwrap_err().to_string();
        assert!(err.contains("bogus") && err.contains("line 3"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn loopback_listeners() {
        assert!(loopback_only(["127.0.0.1:6380"]));
        assert!(loopback_only(["127.3.2.1:1", "[::1]:6380"]));
        assert!(loopback_only(["[::ffff:127.0.0.1]:6380"]));
        assert!(!loopback_only(["0.0.0.0:6380"]));
        assert!(!loopback_only(["[::]:6380"]));
        assert!(!loopback_only(["127.0.0.1:6380", "10.0.0.1:6380"]));
        assert!(!loopback_only(["localhost:6380"]));
        let mut server = ServerConfig::default();
        assert!(loopback_only(server.client_listeners()));
        server.tls_listen = Some("0.0.0.0:6390".into());
        assert!(!loopback_only(server.client_listeners()));
    }

    #[test]
    fn client_limits_and_timeout() {
        let c = Config::parse("").unwrap();
        assert_eq!(
            (c.server.max_clients_per_ip, c.server.timeout),
            (0, Duration::ZERO)
        );
        let text = "[server]\nmax_clients_per_ip = 10\ntimeout = \"5m\"\n";
        let c = Config::parse(text).unwrap();
        c.validate(text).unwrap();
        assert_eq!(c.server.timeout, Duration::from_secs(300));
        assert_eq!(c.server.max_clients_per_ip, 10);
        let text = "[server]\ntimeout = 0\n";
        assert_eq!(Config::parse(text).unwrap().server.timeout, Duration::ZERO);
        let text = "[server]\nlisten = \"127.0.0.1:1\"\ntimeout = \"10ms\"\n";
        let err = Config::parse(text).unwrap().validate(text).unwrap_err();
        assert!(
            err.to_string().contains("`server.timeout` (line 3)"),
            "{err}"
        );
        assert!(Config::parse("[server]\ntimeout = 5\n").is_err(), "no unit");
    }

    #[test]
    fn upstream_tls_keys_need_a_rediss_url() {
        let text = "[upstream]\nurl = \"rediss://r:6379\"\ntls_ca = \"/ca.pem\"\n";
        Config::parse(text).unwrap().validate(text).unwrap();
        let text = "[upstream]\nurl = \"redis://r:6379\"\ntls_ca = \"/ca.pem\"\n";
        let err = refused(text);
        assert!(
            err.contains("upstream.tls_ca") && err.contains("rediss://"),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let mut c = Config::parse("").unwrap();
        c.apply_env(|k| match k {
            "RESPITE_LISTEN" => Some("0.0.0.0:7000".into()),
            "RESPITE_UPSTREAM" => Some("redis://r:6379/2".into()),
            _ => None,
        });
        assert_eq!(c.server.listen, "0.0.0.0:7000");
        assert_eq!(c.upstream.url, "redis://r:6379/2");
    }
}
