//! The TTL stage: defaults and clamps (see [`crate::ttl`]).

use std::time::{SystemTime, UNIX_EPOCH};

use super::stage::Rewrite;
use crate::{command::Kind, error::Error, policy::Policy, ttl};

pub fn ttl_stage(policy: &Policy, rw: &mut Rewrite) -> Result<(), Error> {
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
    .map_err(Error::refused)?;
    rw.extras.extend(plan.extra_commands());
    if let Some(args) = plan.args.filter(|_| !renamed) {
        rw.args = Some(args);
    }
    Ok(())
}
