//! Live reload of `proxy.toml`: the file is watched (its directory, so editors that
//! replace the file and Kubernetes ConfigMap symlink swaps are seen too), and SIGHUP
//! and `RESPITE RELOAD` reload it on demand.
//!
//! A reload reads and validates the whole file first; an invalid file is refused with
//! a logged error and nothing changes. A valid one swaps in the new namespace rules
//! whole (each command looks the rules up as it is dispatched, so the next command of
//! every connection sees them; no connection is dropped), drops the L1 entries of
//! namespaces whose rule changed, and re-establishes tracking if the set of cached
//! prefixes changed, re-applies the log level, and re-reads the TLS certificate
//! files: the listener's (new TLS clients get them; connections already open keep
//! theirs) and, for a `rediss://` upstream, `[upstream] tls_*` (connections opened
//! after the reload use them, open ones continue). Files that cannot be read refuse
//! the reload like an invalid file. Settings that cannot change while running (listen addresses, the rest of
//! upstream, L1 size, admin, metrics address, threads) are reported and left as they
//! were.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::{
    config::{Config, ServerConfig, UpstreamConfig},
    l1::L1,
    metrics::Metrics,
    policy::{Policy, Rule, Rules},
    tls,
    upstream::Upstream,
};

/// How long file events are gathered before reloading (editors write in steps); the
/// file must also read the same twice this far apart.
const SETTLE: Duration = Duration::from_millis(100);

/// What a reload changes.
pub struct Reloader {
    /// The configuration the proxy started with (sections that need a restart are
    /// compared with it).
    pub started: Config,
    pub policy: Arc<Rules>,
    /// What the tracking connection tracks; a reload sends the new namespaces' set.
    pub prefixes: watch::Sender<Option<Vec<Bytes>>>,
    pub l1: Arc<L1>,
    pub metrics: Arc<Metrics>,
    /// Where a `rediss://` upstream's re-read TLS settings go.
    pub upstream: Arc<Upstream>,
    /// The TLS listener's configuration, if it runs.
    pub tls: Option<tls::Live>,
    /// Held while a reload runs: one at a time, whatever triggered it.
    running: Mutex<()>,
}

impl Reloader {
    pub fn new(
        started: Config,
        policy: Arc<Rules>,
        prefixes: watch::Sender<Option<Vec<Bytes>>>,
        l1: Arc<L1>,
        metrics: Arc<Metrics>,
        upstream: Arc<Upstream>,
        tls: Option<tls::Live>,
    ) -> Self {
        Self {
            started,
            policy,
            prefixes,
            l1,
            metrics,
            upstream,
            tls,
            running: Mutex::new(()),
        }
    }

    /// Reloads the configuration file. Ok: a one-line summary; Err: why nothing changed.
    pub fn reload(&self) -> Result<String, String> {
        let Some(path) = self.started.source.as_deref() else {
            return Err("no configuration file to reload (started without --config)".into());
        };
        let _one_at_a_time = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = self.apply(path);
        self.metrics.reloads.record(outcome.is_ok());
        match outcome {
            Ok(summary) => {
                info!(file = %path.display(), "configuration reloaded: {summary}");
                Ok(summary)
            }
            Err(e) => {
                error!(file = %path.display(), "configuration reload refused, the previous rules stay: {e}");
                Err(e)
            }
        }
    }

    fn apply(&self, path: &Path) -> Result<String, String> {
        let new = Config::load(path).map_err(|e| format!("{e:#}"))?;
        let mut policy = Policy::from_config(&new).map_err(|e| e.to_string())?;
        let endpoint = self.upstream.endpoint();
        let tls = endpoint
            .load_tls(&new.upstream)
            .map_err(|e| format!("upstream TLS: {e}"))?;
        // Counters carry over to the rule of the same name.
        policy.attach_stats(&self.metrics.namespaces);
        let certificates = self.certificates(&new)?;
        let mut restart = needs_restart(&self.started, &new);
        if crate::logging::apply_config(&new.log).is_ok() {
            restart.retain(|s| *s != "[log]"); // the level changes now (format: restart)
        }
        if !restart.is_empty() {
            warn!(
                sections = restart.join(", "),
                "these settings changed but apply only after a restart; they are left as they were"
            );
        }
        let rules = policy.rules().len();
        let prefixes = policy.tracking_prefixes();
        let new_policy = Arc::new(policy);
        let old = self.policy.swap(new_policy.clone());
        let dropped = if same_rules(old.rules(), new_policy.rules()) {
            0
        } else {
            let changed = |key: &[u8]| !same_rule(old.lookup(key), new_policy.lookup(key));
            self.l1.remove_where(|_, key| changed(key))
        };
        self.prefixes.send_if_modified(|current| {
            let changed = *current != prefixes;
            *current = prefixes;
            changed
        });
        let mut summary = format!("{rules} namespace rules, {dropped} L1 entries dropped");
        if let Some(tls) = tls {
            endpoint.install(tls);
            summary.push_str("; upstream TLS certificates re-read");
        }
        if let (Some(live), Some(certificates)) = (&self.tls, certificates) {
            live.store(certificates);
            summary.push_str("; TLS certificates re-read");
        }
        if !restart.is_empty() {
            summary.push_str(&format!(
                "; changed but needing a restart: {}",
                restart.join(", ")
            ));
        }
        Ok(summary)
    }
}

impl Reloader {
    /// The TLS listener's configuration from `new`'s files, if the listener runs and
    /// stays where it is (a new `tls_listen` needs a restart).
    fn certificates(&self, new: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
        if self.tls.is_none() || new.server.tls_listen != self.started.server.tls_listen {
            return Ok(None);
        }
        tls::listener(&new.server).map_err(|e| format!("server TLS: {e}"))
    }
}

/// The sections of `new` that differ from `old` and cannot change while running.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("[server]", fixed(&old.server) != fixed(&new.server)),
        (
            "[upstream]",
            but_tls(&old.upstream) != but_tls(&new.upstream),
        ),
        ("[l1]", old.l1 != new.l1),
        ("[admin]", old.admin != new.admin),
        ("[metrics]", old.metrics != new.metrics),
        ("[log]", old.log != new.log),
    ]
    .into_iter()
    .filter_map(|(section, changed)| changed.then_some(section))
    .collect()
}

/// `[upstream]` without its TLS keys, which a reload applies.
fn but_tls(upstream: &UpstreamConfig) -> UpstreamConfig {
    UpstreamConfig {
        tls_ca: None,
        tls_cert: None,
        tls_key: None,
        tls_server_name: None,
        ..upstream.clone()
    }
}

/// What of `[server]` needs a restart: all but the TLS files (re-read by a reload).
fn fixed(server: &ServerConfig) -> ServerConfig {
    ServerConfig {
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        ..server.clone()
    }
}

fn same_rules(a: &[Rule], b: &[Rule]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_as(y))
}

fn same_rule(a: Option<&Rule>, b: Option<&Rule>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same_as(b),
        _ => false,
    }
}

/// Starts the triggers: the file watcher and SIGHUP. They stop with `stop`.
pub fn spawn_watchers(reloader: Arc<Reloader>, mut stop: watch::Receiver<bool>) {
    let Some(path) = reloader.started.source.clone() else {
        return;
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watcher = watch_file(&path, tx);
    // Installed before returning, so a SIGHUP from now on reloads (and never takes
    // the default action, which ends the process).
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| warn!(error = %e, "cannot handle SIGHUP"))
        .ok();
    tokio::spawn(async move {
        let _watcher = watcher; // watching lasts as long as this task
        let mut last = std::fs::read(&path).ok();
        loop {
            let hangup = async {
                match &mut hup {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = hangup => {
                    info!("SIGHUP: reloading the configuration");
                    let _ = reloader.reload();
                    last = std::fs::read(&path).ok();
                }
                Some(()) = rx.recv() => {
                    // Let the writer finish, then take every event of the burst at once.
                    let now = settled(&path).await;
                    while rx.try_recv().is_ok() {}
                    if now.is_some() && now != last {
                        info!("configuration file changed: reloading");
                        let _ = reloader.reload();
                        last = now;
                    }
                }
            }
        }
    });
}

/// The file's content once two reads `SETTLE` apart agree (an editor that truncates
/// and then writes must not have its half-written file applied), or the last read
/// after a few tries.
async fn settled(path: &Path) -> Option<Vec<u8>> {
    let mut last = None;
    for _ in 0..10 {
        tokio::time::sleep(SETTLE).await;
        let now = std::fs::read(path).ok();
        if now.is_some() && now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Watches the directory holding `path`: a file replaced by rename, or a ConfigMap's
/// `..data` symlink swapped, is seen where a watch on the file itself would go stale.
fn watch_file(path: &Path, tx: mpsc::UnboundedSender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let dir: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name()?.to_owned();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|f| f == name || f.to_string_lossy().starts_with(".."))
        });
        if relevant {
            let _ = tx.send(());
        }
    })
    .map_err(|e| warn!(error = %e, "cannot watch the configuration file; SIGHUP and RESPITE RELOAD still reload it"))
    .ok()?;
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        warn!(error = %e, dir = %dir.display(), "cannot watch the configuration directory; SIGHUP and RESPITE RELOAD still reload it");
        return None;
    }
    Some(watcher)
}
