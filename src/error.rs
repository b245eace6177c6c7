//! The proxy's one error type, and the one place it becomes a reply.
//!
//! Every failure a client can see is an [`Error`]: it says who caused it ([`Cause`]),
//! whether sending the command again is safe ([`Error::retryable`]), a short label for
//! logs and metrics ([`Error::as_str`]), and the Redis-style reply the client gets
//! ([`Error::to_reply`]). Redis's own refusals travel as [`Error::Redis`] with its
//! reply bytes, so the client sees exactly what Redis said.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

use crate::protocol::reply;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Redis cannot be reached now; the command was not sent.
    #[error("upstream unavailable: {0}")]
    Unavailable(Arc<str>),
    /// The connection failed with the command sent: it may have been applied.
    #[error("upstream connection lost; the command may or may not have been applied")]
    ConnectionLost,
    /// Redis stayed silent, and did not answer a liveness check either.
    #[error("upstream timeout after {0:?}; the command may or may not have been applied")]
    Timeout(Duration),
    /// Redis sent bytes that are not RESP.
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(Arc<str>),
    /// Redis refused (a command the proxy sent for itself, or a connection's setup):
    /// its own error reply.
    #[error("{}", String::from_utf8_lossy(.0).trim_start_matches(['-', '!']).trim_end())]
    Redis(Bytes),
    /// The proxy refuses the client's command (a rule, a limit, arguments it must
    /// parse), with a Redis-style message: `ERR …`, `NOPERM …`, or `…` (`ERR` added).
    #[error("{0}")]
    Refused(Arc<str>),
    /// The proxy itself failed.
    #[error("respite internal error: {0}")]
    Internal(Arc<str>),
}

/// Who caused an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Client,
    Upstream,
    Proxy,
}

/// The label of every error kind, in declaration order (metrics pre-register them).
pub const KINDS: [&str; 7] = [
    "unavailable",
    "connection_lost",
    "timeout",
    "protocol",
    "rejected",
    "refused",
    "internal",
];

impl Error {
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::Unavailable(Arc::from(msg.into()))
    }

    pub fn refused(msg: impl Into<String>) -> Self {
        Self::Refused(Arc::from(msg.into()))
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::Internal(Arc::from(msg.into()))
    }

    pub fn upstream_protocol(msg: impl Into<String>) -> Self {
        Self::UpstreamProtocol(Arc::from(msg.into()))
    }

    pub fn cause(&self) -> Cause {
        match self {
            Self::Refused(_) => Cause::Client,
            Self::Internal(_) => Cause::Proxy,
            _ => Cause::Upstream,
        }
    }

    /// True when the command surely did not run, so sending it again is safe.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// True when Redis could not be reached or did not answer (an outage): not when
    /// it answered with a refusal (`WRONGPASS` to a connection's AUTH, say).
    /// `stale_if_error` serves cached values in place of these only.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::ConnectionLost | Self::Timeout(_)
        )
    }

    /// A short label for logs and metrics (one of [`KINDS`]).
    pub fn as_str(&self) -> &'static str {
        KINDS[self.index()]
    }

    /// The position of this kind in [`KINDS`].
    pub fn index(&self) -> usize {
        match self {
            Self::Unavailable(_) => 0,
            Self::ConnectionLost => 1,
            Self::Timeout(_) => 2,
            Self::UpstreamProtocol(_) => 3,
            Self::Redis(_) => 4,
            Self::Refused(_) => 5,
            Self::Internal(_) => 6,
        }
    }

    /// The reply the client gets instead of the one it asked for.
    pub fn to_reply(&self) -> Bytes {
        match self {
            Self::Redis(frame) => frame.clone(),
            other => reply::error(&other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a request gets back: the reply's exact bytes, or why there is none.
pub type Reply = Result<Bytes>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        assert_eq!(
            &Error::refused("NOPERM not allowed").to_reply()[..],
            b"-NOPERM not allowed\r\n"
        );
        assert_eq!(
            &Error::refused("bad thing").to_reply()[..],
            b"-ERR bad thing\r\n"
        );
        let redis = Bytes::from_static(b"-WRONGPASS invalid\r\n");
        assert_eq!(Error::Redis(redis.clone()).to_reply(), redis);
        assert_eq!(Error::Redis(redis).to_string(), "WRONGPASS invalid");
        assert!(
            Error::ConnectionLost
                .to_reply()
                .starts_with(b"-ERR upstream connection lost")
        );
    }

    #[test]
    fn labels_follow_kinds() {
        let all = [
            Error::unavailable("x"),
            Error::ConnectionLost,
            Error::Timeout(Duration::ZERO),
            Error::upstream_protocol("x"),
            Error::Redis(Bytes::new()),
            Error::refused("x"),
            Error::internal("x"),
        ];
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.index(), i);
        }
        assert!(Error::unavailable("x").retryable() && !Error::ConnectionLost.retryable());
        assert!(Error::ConnectionLost.is_outage() && Error::Timeout(Duration::ZERO).is_outage());
        let refused = Error::Redis(Bytes::from_static(b"-WRONGPASS invalid\r\n"));
        assert!(!refused.is_outage() && !Error::refused("x").is_outage());
        assert_eq!(Error::refused("x").cause(), Cause::Client);
    }
}
