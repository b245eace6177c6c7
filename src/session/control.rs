//! What the session hands to the layers above it: the `RESPITE …` commands.

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::{
    error::{Error, Reply},
    protocol::request::Request,
    upstream::PoolKey,
};

/// Answers `RESPITE …` (implemented in `admin.rs`, above this layer).
pub trait AdminCommands: Send + Sync {
    fn call(&self, req: &Request, caller: &AdminCaller) -> AdminAnswer;
}

/// The client a `RESPITE` command comes from.
pub struct AdminCaller<'a> {
    pub key: &'a PoolKey,
    pub client_name: Option<&'a Bytes>,
    /// Where it connects from (unknown: `None`).
    pub ip: Option<std::net::IpAddr>,
    /// It sent a valid `RESPITE AUTH`.
    pub authenticated: bool,
}

impl AdminCaller<'_> {
    /// The client's name, or empty.
    pub fn name(&self) -> String {
        self.client_name
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default()
    }
}

pub enum AdminAnswer {
    Reply(Result<Bytes, Error>),
    /// A long operation: its reply arrives when it ends.
    Later(oneshot::Receiver<Reply>),
    /// `RESPITE AUTH` with the right password: `+OK`, and the connection may now use
    /// every subcommand.
    Authenticated,
}
