//! Namespace rules applied to the commands a client sends: what actually goes
//! upstream for each command ([`post`] says how the reply comes back).
//!
//! A command passes through two rewriting stages, each free to leave it alone:
//! compression (values stored as an envelope, replies restored) and TTLs (a default
//! added, long ones clamped, `PEXPIRE key ms NX` extras). A stage may also refuse a
//! command with an error the client gets instead of a reply from Redis.

mod compress;
mod post;
mod stage;
mod ttl;

use std::sync::Arc;

pub use compress::fill_rewrite;
pub use post::{Outgoing, Post, Queued, Shape};
use stage::Rewrite;

use crate::{
    command::{Classified, Kind},
    error::Error,
    policy::Policy,
    protocol::request::Request,
};

/// The bytes to send for `req` under the rules of `policy`, or the error reply the
/// client gets instead. A write carrying a value large enough to take the event
/// loop away from its other clients for a millisecond or more while it is
/// compressed (see `Policy::offload_min`) is rewritten on the blocking pool; this
/// client's later commands wait for it, as they wait for any earlier command.
pub async fn outgoing(
    req: &Request,
    class: &Classified,
    policy: &Arc<Policy>,
) -> Result<Outgoing, Error> {
    let heavy = class.kind == Kind::Write
        && policy.compresses()
        && req
            .args
            .iter()
            .skip(2)
            .any(|a| a.len() >= policy.offload_min());
    if !heavy {
        return rewrite(req, class, policy);
    }
    let (req, class, policy) = (req.clone(), *class, policy.clone());
    tokio::task::spawn_blocking(move || rewrite(&req, &class, &policy))
        .await
        .unwrap_or_else(|_| Err(Error::internal("could not compress the value")))
}

/// `req` through the rewriting stages: what to send, or the client's error reply.
fn rewrite(req: &Request, class: &Classified, policy: &Policy) -> Result<Outgoing, Error> {
    if !policy.rewrites() {
        return Ok(Outgoing::plain(req));
    }
    let mut rw = Rewrite::new(req, class);
    compress::compress_stage(policy, &mut rw)?;
    ttl::ttl_stage(policy, &mut rw)?;
    Ok(rw.finish())
}
