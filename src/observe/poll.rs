//! Redis's own state, read off the request path: `INFO` every `[metrics]
//! upstream_poll` (memory and maxmemory, the eviction policy, evicted and expired keys,
//! keyspace hits and misses, keys per db, connected clients: [`info`]) and each
//! namespace's size in Redis, estimated by sampling every `[metrics] namespace_sizes`
//! ([`sizes`]). `/metrics` and `RESPITE STATS` render the last answers, kept in
//! [`RedisState`].
//!
//! Both run in one background task, started with the proxy and ended at shutdown, on
//! one connection of their own ([`side`]): set up like every upstream connection (the
//! URL's db and credentials), named `respite-stats` in `CLIENT LIST`, one command (or
//! one pipeline) in flight at a time, reopened at the next turn after any failure.
//! No client ever waits for it. A command Redis refuses (an ACL without `INFO` or
//! `MEMORY`, say) is logged once at warn, and the rest goes on without it.
//!
//! After the first answered poll, [`info::warnings`] logs what in Redis's memory
//! settings can hurt a cache: no maxmemory, a policy that evicts keys without a TTL,
//! or one that fails writes.
//!
//! The same connection runs the ACL check every `[l1] acl_check` ([`acl`]): `ACL
//! LIST` compared with its last answer, so L1 drops the entries of a user whose rules
//! changed directly on Redis.

mod acl;
pub mod info;
mod side;
pub mod sizes;
mod state;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::sync::watch;
use tracing::warn;

use crate::{config::Config, l1::L1, policy::Rules, upstream::Upstream};
use side::Side;
use sizes::Sampler;
pub use state::{RedisState, Size};

/// Starts the poll, the sampler and the ACL check (those whose interval is not zero)
/// until `stop` changes; the poll's and the sampler's answers are in the returned
/// state, the ACL check drops entries of `l1`.
pub fn spawn(
    config: &Config,
    upstream: &Arc<Upstream>,
    policy: &Arc<Rules>,
    l1: &Arc<L1>,
    mut stop: watch::Receiver<bool>,
) -> Arc<RedisState> {
    let state = Arc::new(RedisState::default());
    let (poll_every, sample_every) = (config.metrics.upstream_poll, config.metrics.namespace_sizes);
    let acl_every = config.l1.acl_check;
    if poll_every.is_zero() && sample_every.is_zero() && acl_every.is_zero() {
        return state;
    }
    state
        .polling
        .store(!poll_every.is_zero(), Ordering::Relaxed);
    let sampler = Sampler {
        policy: policy.clone(),
        batch: config.admin.batch,
        pause: config.admin.pause.max(sizes::MIN_PAUSE),
    };
    let (st, l1, upstream) = (state.clone(), l1.clone(), upstream.clone());
    tokio::spawn(async move {
        let side = Side::new(upstream);
        let all = async {
            tokio::join!(
                poll(&side, &st, poll_every),
                sizes::run(&side, &st, &sampler, sample_every),
                acl::run(&side, &l1, acl_every),
            )
        };
        tokio::select! {
            _ = all => {}
            _ = stop.changed() => {}
        }
    });
    state
}

/// Polls INFO every `every` (from now); logs [`info::warnings`] after the first answer.
async fn poll(side: &Side, state: &RedisState, every: Duration) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned = false;
    loop {
        tick.tick().await;
        let info = info::poll(side).await;
        if let Some(info) = info.as_ref().filter(|_| !warned) {
            warned = true;
            for warning in info::warnings(info) {
                warn!(
                    used_memory = info.used_memory,
                    maxmemory = info.maxmemory,
                    maxmemory_policy = info.maxmemory_policy.as_deref(),
                    "{warning}"
                );
            }
        }
        state.answered(info);
    }
}
