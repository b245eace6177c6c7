//! Shared helpers for the integration tests: a real `redis-server` (or `valkey-server`)
//! on a free port, the proxy in-process on port 0, a small synchronous RESP client, a
//! TCP fault injector and the differential script runner.
//!
//! Each test file includes this with `mod support;` and uses a part of it.
//!
//! The server matrix: `RESPITE_TEST_SERVER=valkey` runs the tests against
//! `valkey-server` instead of `redis-server` (scripts/test runs the core suites both
//! ways; see `server.rs`).
//!
//! Environment knobs, for diagnosing a failure (never needed to run the suite):
//! - `RUST_LOG=respite=debug` shows the proxy's logs in a failing test's output.
//! - `RESPITE_TEST_SHOW_REPLIES=1` prints every reply of a differential script's
//!   direct run (to review what a script really checks).
//! - `RESPITE_TEST_DIRECT=redis` points "proxy" clients straight at Redis, to check
//!   what real Redis answers to a test; proxy-only tests (limits, faults) then fail.
#![allow(dead_code, unused_imports)]

pub mod admin;
pub mod binary;
pub mod client;
pub mod fault;
pub mod l1;
pub mod ports;
pub mod proxy;
pub mod redis;
pub mod resp;
pub mod script;
pub mod server;
pub mod tls;

use std::time::{Duration, Instant};

pub use client::Client;
pub use fault::FaultProxy;
pub use proxy::Proxy;
pub use redis::RedisServer;
pub use resp::{Frame, show};
pub use server::{ServerInfo, ServerKind, server, server_kind, skip_pending, skip_unless};

/// Polls `cond` every few milliseconds until it holds or `within` passes.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// Logs from the proxy when `RUST_LOG` is set (captured per test by the harness).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A started Redis with the proxy in front of it.
pub struct Stack {
    pub proxy: Proxy,
    pub redis: RedisServer,
}

impl Stack {
    pub fn start() -> Stack {
        Self::start_with("")
    }

    /// `extra_toml` is merged over the proxy's base configuration.
    pub fn start_with(extra_toml: &str) -> Stack {
        Self::start_with_redis(&[], extra_toml)
    }

    /// Also passes `redis_args` (`--option value` pairs) to `redis-server`.
    pub fn start_with_redis(redis_args: &[&str], extra_toml: &str) -> Stack {
        let redis = RedisServer::start_with(redis_args);
        let proxy = Proxy::start(&redis.url(), extra_toml);
        Stack { proxy, redis }
    }

    /// A client through the proxy.
    pub fn client(&self) -> Client {
        self.proxy.client()
    }

    /// A client straight to Redis.
    pub fn direct(&self) -> Client {
        self.redis.client()
    }
}

/// Bytes that stay the same from run to run (xorshift), for large values.
pub fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
