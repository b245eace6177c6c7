//! Watching a running proxy: the HTTP endpoint ([`http`]: `/metrics`, `/healthz`,
//! `/readyz`, `/loglevel`) and the figures `RESPITE STATS` reports ([`stats`]), both
//! read from one [`Status`]: the parts of the proxy whose state is worth reporting,
//! Redis's own among them, which [`poll`] reads off the request path.

mod exporter;
mod health;
pub mod http;
pub mod poll;
mod render;
mod snapshot;
mod stats;
mod status;

pub use health::Readiness;
pub use status::{Parts, Status};
