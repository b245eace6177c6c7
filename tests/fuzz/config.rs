//! The proxy configurations the fuzzer runs against, the feature families that can
//! be switched off, and the environment variables of a run.

use std::{collections::BTreeSet, time::Duration};

use crate::{generate::FAMILIES, keys::Ns};

/// A proxy configuration under test and what the generator must know about it.
pub struct Target {
    pub name: &'static str,
    pub namespaces: Vec<Ns>,
    /// Merged over the test proxy's base configuration.
    pub proxy_toml: String,
    /// Extra `redis-server` arguments, for both Redis servers.
    pub redis_args: Vec<String>,
    /// `rename-command` pairs: writes the proxy's command table does not know.
    pub renames: Vec<(&'static str, &'static str)>,
    /// Some namespace has `l1 = true` (wait for the tracking connection first).
    pub l1: bool,
    /// Families off by default here: they hit a known, open bug (family, what).
    /// `RESPITE_FUZZ_FEATURES=+name` (or `known`, `all`) turns one back on.
    pub known_bugs: Vec<(&'static str, &'static str)>,
}

/// `max_ttl` of the rules target's namespaces, in seconds (`"2h"` below).
pub const RULE_MAX_TTL_SECS: i64 = 7200;

const RULES_TOML: &str = r#"
[server]
threads = 2

[upstream]
pool_size = 2

[l1]
coherence = "tracking"

[[namespace]]
name = "zipped"
match = "z:*"
l1 = true
l1_ttl = "1m"
compress = "zstd"
compress_min_size = "16B"
ttl = "1h"
max_ttl = "2h"

[[namespace]]
name = "cached"
match = "c:*"
l1 = true
l1_ttl = "1m"

[[namespace]]
name = "timed"
match = "t:*"
ttl = "1h"
max_ttl = "2h"

[[namespace]]
name = "capped"
match = "m:*"
max_ttl = "2h"
"#;

const RENAMED_TOML: &str = r#"
[server]
threads = 2

[upstream]
pool_size = 2

[[namespace]]
name = "cached"
match = "c:*"
l1 = true
l1_ttl = "1m"

[[namespace]]
name = "kept"
match = "k:*"
l1 = true
l1_ttl = "1m"
"#;

/// Known bugs of current main: (family, what, the targets where it shows). Their
/// families are off by default there, so the CI run stays green until they are fixed:
/// remove an entry when its fix lands (and move its seed in `main.rs` from
/// `KNOWN_BUG_SEEDS` to `REGRESSIONS`).
const KNOWN_BUGS: &[(&str, &str, &[&str])] = &[];

fn known_bugs(target: &str) -> Vec<(&'static str, &'static str)> {
    KNOWN_BUGS
        .iter()
        .filter(|(.., targets)| targets.contains(&target))
        .map(|(family, what, _)| (*family, *what))
        .collect()
}

impl Target {
    pub fn named(name: &str) -> Target {
        let cached = |prefix| Ns {
            l1: true,
            ..Ns::plain(prefix)
        };
        match name {
            "plain" => Target {
                name: "plain",
                namespaces: vec![Ns::plain("a"), Ns::plain("b")],
                proxy_toml: String::new(),
                redis_args: Vec::new(),
                renames: Vec::new(),
                l1: false,
                known_bugs: known_bugs("plain"),
            },
            "rules" => Target {
                name: "rules",
                namespaces: vec![
                    Ns {
                        ttl: true,
                        max_ttl: true,
                        compress: true,
                        l1: true,
                        prefix: "z",
                    },
                    cached("c"),
                    Ns {
                        ttl: true,
                        max_ttl: true,
                        ..Ns::plain("t")
                    },
                    Ns {
                        max_ttl: true,
                        ..Ns::plain("m")
                    },
                    Ns::plain("p"),
                ],
                proxy_toml: RULES_TOML.into(),
                redis_args: Vec::new(),
                renames: Vec::new(),
                l1: true,
                known_bugs: known_bugs("rules"),
            },
            "renamed" => {
                let renames = vec![("HDEL", "FZHDEL"), ("SREM", "FZSREM"), ("LTRIM", "FZLTRIM")];
                let redis_args = renames
                    .iter()
                    .flat_map(|(from, to)| {
                        [
                            "--rename-command".to_string(),
                            from.to_string(),
                            to.to_string(),
                        ]
                    })
                    .collect();
                Target {
                    name: "renamed",
                    namespaces: vec![cached("c"), cached("k"), Ns::plain("p")],
                    proxy_toml: RENAMED_TOML.into(),
                    redis_args,
                    renames,
                    l1: true,
                    known_bugs: known_bugs("renamed"),
                }
            }
            other => panic!("no fuzz target {other:?}: plain, rules, renamed"),
        }
    }

    /// The namespace a key is in (by its prefix).
    pub fn namespace_of(&self, key: &[u8]) -> Option<&Ns> {
        let prefix = key.split(|&b| b == b':').next()?;
        self.namespaces
            .iter()
            .find(|ns| ns.prefix.as_bytes() == prefix)
    }

    /// The name `command` has in this target's Redis, if renamed.
    pub fn renamed(&self, command: &str) -> Option<&'static str> {
        self.renames
            .iter()
            .find(|(from, _)| *from == command)
            .map(|(_, to)| *to)
    }
}

/// Names beyond the families: `lookalike` (values that look like compression
/// envelopes, issue 12 item 5), `tx-select-error` (a SELECT that fails inside MULTI),
/// `relay-rules` (keys under namespace rules on relayed connections, issue 12 item 1),
/// `shared-pipeline` (pipelines of writes and reads of a shared key, issue 12 item 6),
/// `ttl-rules` (the max_ttl invariant checked on TTL replies, `runner/rules.rs`),
/// `keepttl` (SET … KEEPTTL under max_ttl, issue 12 item 9), `tx-subscribe` (a
/// SUBSCRIBE queued in MULTI), `unacked-close` (a protocol error right after a command
/// whose reply was skipped).
const EXTRA_FEATURES: &[&str] = &[
    "lookalike",
    "tx-select-error",
    "relay-rules",
    "shared-pipeline",
    "ttl-rules",
    "keepttl",
    "tx-subscribe",
    "unacked-close",
];

/// The families switched off for a run.
#[derive(Debug, Clone, Default)]
pub struct Features {
    off: BTreeSet<String>,
}

impl Features {
    pub fn on(&self, name: &str) -> bool {
        !self.off.contains(name)
    }

    pub fn off_list(&self) -> String {
        if self.off.is_empty() {
            return "none".into();
        }
        self.off.iter().cloned().collect::<Vec<_>>().join(",")
    }

    /// The target's defaults (its known bugs off), changed by `spec`: a comma list
    /// of `-name` (off), `+name` (on), `all` (everything on), `none` (everything off;
    /// follow with `+name`s), `known` (the known bugs on).
    pub fn for_target(target: &Target, spec: Option<&str>) -> Features {
        let mut off: BTreeSet<String> = target
            .known_bugs
            .iter()
            .map(|(f, _)| f.to_string())
            .collect();
        for item in spec
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match item {
                "all" => off.clear(),
                "known" => target.known_bugs.iter().for_each(|(f, _)| {
                    off.remove(*f);
                }),
                "none" => off = all_features().map(String::from).collect(),
                _ => {
                    let (turn_off, name) = match item.split_at(1) {
                        ("-", name) => (true, name),
                        ("+", name) => (false, name),
                        _ => (false, item),
                    };
                    assert!(
                        all_features().any(|f| f == name),
                        "unknown fuzz feature {name:?}; known: {}",
                        all_features().collect::<Vec<_>>().join(", ")
                    );
                    if turn_off {
                        off.insert(name.to_string());
                    } else {
                        off.remove(name);
                    }
                }
            }
        }
        Features { off }
    }
}

fn all_features() -> impl Iterator<Item = &'static str> {
    FAMILIES
        .iter()
        .map(|(name, ..)| *name)
        .chain(EXTRA_FEATURES.iter().copied())
}

/// A variable of the environment, parsed.
pub fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} does not parse")),
    )
}

/// How long a reply from the proxy may take before it counts as missing.
pub fn proxy_timeout() -> Duration {
    Duration::from_millis(env("RESPITE_FUZZ_TIMEOUT_MS").unwrap_or(3000))
}
