//! Namespace rules applied to the commands a client sends: what actually goes
//! upstream for each command (see `post.rs` for how the reply comes back).
//!
//! A command passes through two rewriting stages, each free to leave it alone:
//! compression (values stored as an envelope, replies restored) and TTLs (a default
//! added, long ones clamped, `PEXPIRE key ms NX` extras). A stage may also refuse a
//! command with an error the client gets instead of a reply from Redis.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;

use super::{
    compress::compress_stage,
    post::{Outgoing, Shape},
};
use crate::{
    command::{Classified, Kind},
    policy::Policy,
    protocol::{
        reply,
        request::{Request, encode_command},
    },
    ttl,
};

/// A command on its way through the rewriting stages.
pub(super) struct Rewrite<'a> {
    pub req: &'a Request,
    pub class: &'a Classified,
    /// Replaced arguments; `None` while the client's own are kept.
    pub args: Option<Vec<Bytes>>,
    /// Commands sent right after, on the same connection; replies dropped.
    pub extras: Vec<Vec<Bytes>>,
    /// How the reply is restored.
    pub shape: Shape,
}

impl Rewrite<'_> {
    /// The arguments as they will be sent.
    pub fn args(&self) -> &[Bytes] {
        self.args.as_deref().unwrap_or(&self.req.args)
    }

    /// The arguments, to be changed.
    pub fn args_mut(&mut self) -> &mut Vec<Bytes> {
        self.args.get_or_insert_with(|| self.req.args.clone())
    }

    fn finish(self) -> Outgoing {
        if self.args.is_none() && self.extras.is_empty() && self.shape == Shape::Raw {
            return Outgoing::plain(self.req);
        }
        let mut cmd = match &self.args {
            Some(args) => encode_command(args).to_vec(),
            None => self.req.raw.to_vec(),
        };
        for extra in &self.extras {
            cmd.extend_from_slice(&encode_command(extra));
        }
        Outgoing::with_extras(Bytes::from(cmd), self.extras.len() as u32, self.shape)
    }
}

/// The bytes to send for `req` under the rules of `policy`, or the error reply the
/// client gets instead. A write carrying a value large enough to take the event
/// loop away from its other clients for a millisecond or more while it is
/// compressed (see `Policy::offload_min`) is rewritten on the blocking pool; this
/// client's later commands wait for it, as they wait for any earlier command.
pub(super) async fn outgoing(
    req: &Request,
    class: &Classified,
    policy: &Arc<Policy>,
) -> Result<Outgoing, Bytes> {
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
        .unwrap_or_else(|_| Err(reply::error("ERR respite could not compress the value")))
}

/// `req` through the rewriting stages: what to send, or the client's error reply.
fn rewrite(req: &Request, class: &Classified, policy: &Policy) -> Result<Outgoing, Bytes> {
    if !policy.rewrites() {
        return Ok(Outgoing::plain(req));
    }
    let mut rw = Rewrite {
        req,
        class,
        args: None,
        extras: Vec::new(),
        shape: Shape::Raw,
    };
    compress_stage(policy, &mut rw); // session/compress.rs
    ttl_stage(policy, &mut rw)?;
    Ok(rw.finish())
}

/// TTL defaults and clamps (see `ttl.rs`).
fn ttl_stage(policy: &Policy, rw: &mut Rewrite) -> Result<(), Bytes> {
    if rw.class.kind != Kind::Write && rw.class.kind != Kind::Blocking {
        return Ok(());
    }
    let Some(spec) = rw.class.effective() else {
        return Ok(());
    };
    // The compression stage may have turned the command into another (an in-place
    // change into a guarded EVAL): plan on the client's own command then, keeping
    // only the extras (no command it renames carries a TTL argument).
    let renamed = !rw.args()[0].eq_ignore_ascii_case(&rw.req.args[0]);
    let args = if renamed { &rw.req.args[..] } else { rw.args() };
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let plan = ttl::plan(
        spec.name,
        args,
        || rw.class.write_keys(args),
        |k| policy.lookup(k),
        now_ms,
    )
    .map_err(|e| reply::error(&e))?;
    rw.extras.extend(plan.extra_commands());
    if let Some(args) = plan.args.filter(|_| !renamed) {
        rw.args = Some(args);
    }
    Ok(())
}
