//! respite: a transparent Redis-protocol caching proxy.
//!
//! A command travels through these components, in order:
//!
//! - [`server`]: accepts client connections, enforces `max_clients`, drains on shutdown.
//! - [`session`]: one task per client: RESP2/RESP3 framing ([`protocol`]), pipelining with
//!   replies in request order, per-client state (db, user, protocol, MULTI, WATCH, pub/sub).
//! - [`command`]: the command table: name -> kind, routing and key positions.
//! - [`policy`]: the namespace rule for each key (l1, l1_ttl, ttl, max_ttl, compress…).
//! - [`l1`]: the in-process cache of replies, its generations, miss coalescing and the
//!   CLIENT TRACKING connection that keeps it coherent.
//! - [`compress`]: values of compressing namespaces stored as envelopes; replies
//!   restored on the way back (before L1 stores them).
//! - [`upstream`]: pooled pipelined connections to Redis (one pool per db, user and
//!   protocol), dedicated connections for stateful clients, reconnect with backoff.
//!
//! Side paths: [`admin`] (the long `RESPITE` operations: pattern deletes fanned out to
//! every respite, cache warming), and [`cli`] (the `respite stats|delpattern|…`
//! subcommands, talking to a running proxy).
//!
//! Configuration lives in [`config`] (`proxy.toml`). [`metrics`] declares every metric
//! and serves `/metrics`, `/healthz` and `/readyz`; [`logging`] sets up logs and their
//! runtime level. `props` (built for tests and fuzzing only) holds the properties the
//! proptests and the `fuzz/` targets check on arbitrary input.

pub mod admin;
pub mod cli;
pub mod command;
pub mod compress;
pub mod config;
pub mod error;
pub mod invalidation;
pub mod l1;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod ops;
pub mod policy;
#[cfg(any(test, fuzzing))]
pub mod props;
pub mod protocol;
pub mod reload;
pub mod rewrite;
pub mod server;
pub mod session;
pub mod tls;
pub mod ttl;
pub mod upstream;

pub use config::Config;
pub use server::run;
