//! What a failed seed prints: the seed, target, client, step, command, both replies,
//! the client's last commands, and the command line that reruns that seed alone.

use std::fmt::Write;

use crate::runner::Spec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The proxy answered differently from Redis.
    Divergence,
    /// A model (read-your-writes, delivery) rejects what the proxy answered.
    Model,
    /// Redis itself did not answer as the fuzzer expected: the fuzzer is wrong.
    FuzzerBug,
}

#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: Kind,
    pub client: usize,
    /// `step 12` or `step 12.3` (the 4th command of a pipeline) and the command.
    pub step: String,
    pub redis: String,
    pub proxy: String,
    /// The client's last commands, oldest first, with Redis's replies.
    pub context: Vec<String>,
}

impl Failure {
    /// A model violation on one side: on Redis's own side it is the model that is
    /// wrong.
    pub fn model(side: &str, v: crate::model::Violation, context: Vec<String>) -> Failure {
        let direct = side == "redis";
        let (redis, proxy) = if direct {
            (v.what, String::new())
        } else {
            (String::new(), v.what)
        };
        Failure {
            kind: if direct { Kind::FuzzerBug } else { Kind::Model },
            client: v.at.client,
            step: v.at.step,
            redis,
            proxy,
            context,
        }
    }
}

/// The environment that reruns `spec` (the whole seed; add `RESPITE_FUZZ_ONLY=<client>`
/// to run one client's sequence alone).
pub fn rerun_line(spec: &Spec) -> String {
    let mut line = format!(
        "RESPITE_FUZZ_SEED={} RESPITE_FUZZ_CONFIG={} RESPITE_FUZZ_COMMANDS={} RESPITE_FUZZ_CLIENTS={}",
        spec.seed, spec.target.name, spec.commands, spec.clients
    );
    if let Some(f) = &spec.features_env {
        let _ = write!(line, " RESPITE_FUZZ_FEATURES='{f}'");
    }
    if spec.ryw_all {
        line.push_str(" RESPITE_FUZZ_RYW=all");
    }
    line.push_str(" cargo test --test fuzz env_run -- --ignored --nocapture");
    line
}

pub fn render(spec: &Spec, failures: &[Failure]) -> String {
    let mut out = String::new();
    for f in failures.iter().take(6) {
        let title = match f.kind {
            Kind::Divergence => "divergence",
            Kind::Model => "model violation",
            Kind::FuzzerBug => "FUZZER BUG (Redis itself failed the fuzzer's expectations)",
        };
        let _ = writeln!(
            out,
            "fuzz {title}: target={} seed={} client={} {}",
            spec.target.name, spec.seed, f.client, f.step
        );
        if !f.redis.is_empty() {
            let _ = writeln!(out, "    redis: {}", f.redis);
        }
        if !f.proxy.is_empty() {
            let _ = writeln!(out, "    proxy: {}", f.proxy);
        }
        if !f.context.is_empty() {
            let _ = writeln!(
                out,
                "    last commands of client {} (with Redis's replies):",
                f.client
            );
            for line in &f.context {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    if failures.len() > 6 {
        let _ = writeln!(out, "… and {} more", failures.len() - 6);
    }
    let _ = writeln!(out, "features off: {}", spec.features.off_list());
    let _ = writeln!(out, "rerun: {}", rerun_line(spec));
    out
}
