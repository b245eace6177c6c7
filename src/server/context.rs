//! Everything a running proxy is made of, built once from the configuration and its
//! compiled rules, then handed down: each layer gets only the parts it uses.

use std::sync::{Arc, atomic::AtomicUsize};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::{
    admin::Admin,
    compress::Opener,
    config::{Coherence, Config},
    invalidation::{LinkState, broadcast, tracking},
    l1::{L1, user_of},
    metrics::Metrics,
    observe::{Parts, Status, poll},
    ops::{
        Operations,
        warm::{self, Warmer},
    },
    policy::{Policy, Rules},
    reload::{self, Reloader},
    session, tls,
    upstream::Upstream,
};

pub struct Built {
    pub session: Arc<session::Context>,
    pub status: Arc<Status>,
    pub upstream: Arc<Upstream>,
}

/// What the other layers see of the TLS listener: its address (`RESPITE STATS`) and
/// its configuration (replaced by a reload).
pub struct TlsParts {
    pub addr: std::net::SocketAddr,
    pub live: tls::Live,
}

/// Builds the proxy's parts and starts its background tasks (tracking or the
/// invalidation listener, config watchers, start-up warming, the poll of Redis's own
/// state), which end when `stop` turns true.
pub fn build(
    config: Config,
    mut policy: Policy,
    tls: Option<TlsParts>,
    stop: &watch::Receiver<bool>,
) -> Result<Built, String> {
    let metrics = Arc::new(Metrics::default());
    let upstream = Upstream::new(&config.upstream)?;
    policy.attach_stats(&metrics.namespaces);
    let tracked = config.l1.coherence == Coherence::Tracking;
    // Always there, even with no cached namespace yet: a reload may add one.
    let l1 = L1::with_namespaces(
        config.l1.max_memory.as_u64(),
        !tracked,
        metrics.namespaces.clone(),
        upstream.credentials_of_url().as_deref(),
    );
    // Before the first connection: a user whose AUTH Redis refuses after it worked
    // had an ACL change, and its cached replies go.
    let dropped = l1.clone();
    upstream.on_refused(Arc::new(move |key| {
        dropped.drop_users([user_of(key.creds.as_deref())]);
    }));
    upstream.warm_up();
    let (prefixes, prefixes_rx) = watch::channel(policy.tracking_prefixes());
    let policy: Arc<Rules> = Arc::new(ArcSwap::from_pointee(policy));
    let tracking =
        tracked.then(|| tracking::spawn(l1.clone(), upstream.clone(), prefixes_rx, stop.clone()));
    let channel = listener(&config, &l1, &upstream, stop);
    let operations = Arc::new(Operations::default());
    let warming = Arc::new(AtomicUsize::new(0));
    let opener = Opener::new(config.server.max_bulk_len.as_u64() as usize, Arc::default());
    let redis = poll::spawn(&config, &upstream, &policy, &l1, stop.clone());
    let status = Arc::new(Status::new(Parts {
        metrics: metrics.clone(),
        upstream: upstream.clone(),
        l1: l1.clone(),
        policy: policy.clone(),
        tracking: tracking.clone(),
        channel: channel.clone(),
        operations: operations.clone(),
        warming: warming.clone(),
        max_clients: config.server.max_clients,
        tls_listen: tls.as_ref().map(|t| t.addr),
        opener: opener.clone(),
        redis,
    }));
    let warmer = Arc::new(Warmer {
        upstream: upstream.clone(),
        l1: l1.clone(),
        policy: policy.clone(),
        operations,
        batch: config.admin.batch,
        pause: config.admin.pause,
        opener: opener.clone(),
    });
    let fills_stick = {
        let (upstream, tracking, channel) = (upstream.clone(), tracking, channel);
        let up = |s: &Option<Arc<LinkState>>| s.as_ref().is_none_or(|s| s.is_up());
        move || upstream.is_up() && up(&tracking) && up(&channel)
    };
    warm::spawn_on_start(warmer.clone(), warming, fills_stick, stop.clone());
    let reloader = Arc::new(Reloader::new(
        config.clone(),
        policy.clone(),
        prefixes,
        l1.clone(),
        metrics.clone(),
        upstream.clone(),
        tls.map(|t| t.live),
    ));
    if config.source.is_some() {
        reload::spawn_watchers(reloader.clone(), stop.clone());
    }
    let admin = Arc::new(Admin::new(
        config.admin.clone(),
        &config.server.client_listeners(),
        status.clone(),
        reloader,
        warmer,
    ));
    let session = Arc::new(session::Context {
        limits: config.server.clone(),
        upstream: upstream.clone(),
        policy,
        l1,
        metrics,
        admin,
        clients: Arc::default(),
        opener,
    });
    Ok(Built {
        session,
        status,
        upstream,
    })
}

/// The invalidation listener, when this respite needs it: an L1 kept by
/// `coherence = "ttl-only"`, and a channel name.
fn listener(
    config: &Config,
    l1: &Arc<L1>,
    upstream: &Arc<Upstream>,
    stop: &watch::Receiver<bool>,
) -> Option<Arc<LinkState>> {
    let channel = &config.admin.invalidation_channel;
    if config.l1.coherence != Coherence::TtlOnly || channel.is_empty() {
        return None;
    }
    Some(broadcast::spawn_listener(
        l1.clone(),
        upstream.clone(),
        channel.clone(),
        stop.clone(),
    ))
}
