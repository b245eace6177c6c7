//! Compiled namespace rules: which `[[namespace]]` of `proxy.toml` governs a key.
//!
//! Rules are Redis globs matched in file order, first match wins. [`Policy::compile`]
//! validates every rule (it is the authority; `config.rs` checks only the basics),
//! fills in defaults and builds an index (see `index.rs`) so that a lookup costs one
//! walk down a radix tree however many rules there are. Everything here is pure:
//! no I/O, no clocks, so reloads build a new `Policy` and swap it in whole.
//!
//! In messages rules are numbered from 1 (the first `[[namespace]]` table is
//! "rule 1"); [`Rule::index`] counts from 0.

pub mod glob;
mod index;
#[cfg(test)]
mod tests;

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use bytes::Bytes;

pub use crate::compress::Compress;
use crate::{
    config::{Config, ConfigError, NamespaceConfig},
    metrics::{NamespaceStats, Namespaces},
};
use glob::{Glob, GlobError};
use index::Index;

/// `l1_ttl` when a rule with `l1 = true` sets none.
pub const DEFAULT_L1_TTL: Duration = Duration::from_secs(60);
/// `compress_min_size` when unset: smaller values rarely shrink.
pub const DEFAULT_COMPRESS_MIN_SIZE: u64 = 1024;

/// One namespace rule, with defaults filled in.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Position in file order, from 0.
    pub index: usize,
    pub name: Arc<str>,
    pub pattern: String,
    /// Added to writes that set no TTL.
    pub ttl: Option<Duration>,
    /// Longer TTLs are clamped to this.
    pub max_ttl: Option<Duration>,
    pub l1: bool,
    /// Longest an L1 copy lives (60s when `l1 = true` and unset).
    pub l1_ttl: Duration,
    pub compress: Compress,
    /// Values shorter than this are stored as they are (1024 when unset).
    pub compress_min_size: u64,
    /// zstd level (1 when unset).
    pub compress_level: i32,
    /// How long past expiry an L1 copy may be served while Redis is unreachable.
    pub stale_if_error: Option<Duration>,
    /// On a miss, one client refills and the others wait for its SET.
    pub lease: bool,
    /// L1 is filled with the namespace's keys after start-up.
    pub warm: bool,
    /// This namespace's counters (hits, misses, L1 bytes, compression); shared with
    /// the rule of the same name in the next policy (see [`Policy::attach_stats`]).
    pub stats: Arc<NamespaceStats>,
}

/// The rule a [`PolicyError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// Position in file order, from 0.
    pub index: usize,
    pub name: String,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.index + 1;
        if self.name.is_empty() {
            write!(f, "namespace (rule {n})")
        } else {
            write!(f, "namespace `{}` (rule {n})", self.name)
        }
    }
}

/// A namespace rule that cannot be compiled, naming the rule and the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{rule}: name: must not be empty")]
    EmptyName { rule: RuleRef },
    #[error("{rule}: name: already used by rule {}", .first + 1)]
    DuplicateName { rule: RuleRef, first: usize },
    #[error("{rule}: match: must not be empty")]
    EmptyMatch { rule: RuleRef },
    #[error("{rule}: match: {source}")]
    BadGlob { rule: RuleRef, source: GlobError },
    #[error(
        "{rule}: {key}: {} is under 1ms, Redis's expiry resolution (a zero TTL deletes the key; leave `{key}` out for none)",
        humantime::format_duration(*.value)
    )]
    TtlTooShort {
        rule: RuleRef,
        key: &'static str,
        value: Duration,
    },
    #[error(
        "{rule}: ttl: {} exceeds max_ttl {}",
        humantime::format_duration(*.ttl),
        humantime::format_duration(*.max_ttl)
    )]
    TtlAboveMaxTtl {
        rule: RuleRef,
        ttl: Duration,
        max_ttl: Duration,
    },
    #[error("{rule}: l1_ttl: must be greater than 0 (set `l1 = false` to not cache)")]
    ZeroL1Ttl { rule: RuleRef },

    #[error("{rule}: compress: `{value}` is not one of zstd, lz4, none")]
    UnknownCompress { rule: RuleRef, value: String },
    #[error(
        "{rule}: compress_level: {level} is not a zstd level from 1 to 19 (or the rule does not use compress = \"zstd\")"
    )]
    BadCompressLevel { rule: RuleRef, level: i32 },
}

impl PolicyError {
    /// The rule at fault.
    pub fn rule(&self) -> &RuleRef {
        match self {
            PolicyError::EmptyName { rule }
            | PolicyError::DuplicateName { rule, .. }
            | PolicyError::EmptyMatch { rule }
            | PolicyError::BadGlob { rule, .. }
            | PolicyError::TtlTooShort { rule, .. }
            | PolicyError::TtlAboveMaxTtl { rule, .. }
            | PolicyError::ZeroL1Ttl { rule }
            | PolicyError::UnknownCompress { rule, .. }
            | PolicyError::BadCompressLevel { rule, .. } => rule,
        }
    }

    /// The `proxy.toml` key at fault, to point at its line.
    pub fn key(&self) -> &'static str {
        match self {
            PolicyError::EmptyName { .. } | PolicyError::DuplicateName { .. } => "name",
            PolicyError::EmptyMatch { .. } | PolicyError::BadGlob { .. } => "match",
            PolicyError::TtlTooShort { key, .. } => key,
            PolicyError::TtlAboveMaxTtl { .. } => "ttl",
            PolicyError::ZeroL1Ttl { .. } => "l1_ttl",
            PolicyError::UnknownCompress { .. } => "compress",
            PolicyError::BadCompressLevel { .. } => "compress_level",
        }
    }
}

/// The rules in force: a reload swaps in a new set whole.
pub type Rules = arc_swap::ArcSwap<Policy>;

/// The compiled rules of one configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    index: Index,
    has_l1: bool,
    /// Some rule changes what is written (ttl, max_ttl, compress).
    rewrites: bool,
    /// Some rule compresses.
    compresses: bool,
    /// Values at least this long are compressed off the event loop.
    offload_min: usize,
    tracking: Option<Vec<Bytes>>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::empty()
    }
}

impl Policy {
    /// Validates `namespaces` (in file order) and builds the lookup structures.
    pub fn compile(namespaces: &[NamespaceConfig]) -> Result<Policy, PolicyError> {
        let mut names = HashMap::new();
        let mut rules = Vec::with_capacity(namespaces.len());
        let mut globs = Vec::with_capacity(namespaces.len());
        for (index, ns) in namespaces.iter().enumerate() {
            let (rule, glob) = compile_rule(index, ns)?;
            if let Some(&first) = names.get(ns.name.as_str()) {
                let rule = RuleRef {
                    index,
                    name: ns.name.clone(),
                };
                return Err(PolicyError::DuplicateName { rule, first });
            }
            names.insert(ns.name.as_str(), index);
            rules.push(rule);
            globs.push(glob);
        }
        let tracking = tracking_prefixes(rules.iter().zip(&globs));
        Ok(Policy {
            has_l1: rules.iter().any(|r| r.l1),
            rewrites: rules
                .iter()
                .any(|r| r.ttl.is_some() || r.max_ttl.is_some() || r.compress != Compress::None),
            compresses: rules.iter().any(|r| r.compress != Compress::None),
            offload_min: rules
                .iter()
                .map(Rule::offload_min)
                .min()
                .unwrap_or(usize::MAX),
            index: Index::build(&globs),
            rules,
            tracking,
        })
    }

    /// The rules of a configuration, or the key (and line of its file) at fault.
    pub fn from_config(config: &Config) -> Result<Policy, ConfigError> {
        Self::compile(&config.namespaces)
            .map_err(|e| ConfigError::in_rule(&config.text, e.rule().index, e.key(), e.to_string()))
    }

    /// No rules: every key passes through unchanged.
    pub fn empty() -> Policy {
        Policy {
            rules: Vec::new(),
            index: Index::build([]),
            has_l1: false,
            rewrites: false,
            compresses: false,
            offload_min: usize::MAX,
            tracking: Some(Vec::new()),
        }
    }

    /// The first rule in file order whose pattern matches `key`.
    #[inline]
    pub fn lookup(&self, key: &[u8]) -> Option<&Rule> {
        self.index.lookup(key).map(|i| &self.rules[i])
    }

    /// Points every rule at the counters of its namespace name in `namespaces`
    /// (registering new names), so counters survive a reload: call it on a new policy
    /// before swapping it in.
    pub fn attach_stats(&mut self, namespaces: &Namespaces) {
        for rule in &mut self.rules {
            rule.stats = namespaces.get_or_register(&rule.name);
        }
    }

    /// All rules in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether any rule caches in L1.
    pub fn has_l1(&self) -> bool {
        self.has_l1
    }

    /// Whether any rule changes what is written (ttl, max_ttl, compress): when not,
    /// commands need no look at the rules on their way out.
    pub fn rewrites(&self) -> bool {
        self.rewrites
    }

    /// Whether any rule compresses values.
    pub fn compresses(&self) -> bool {
        self.compresses
    }

    /// Writes with an argument at least this long are rewritten off the event loop
    /// (`usize::MAX` when no rule compresses).
    pub fn offload_min(&self) -> usize {
        self.offload_min
    }

    /// The literal prefixes to track for the L1 rules (`CLIENT TRACKING ON BCAST
    /// PREFIX …`), sorted, without any prefix that extends another (Redis refuses
    /// overlapping prefixes). `None` when an L1 rule's pattern starts with a
    /// wildcard: then every key must be tracked. Empty when no rule uses L1.
    pub fn tracking_prefixes(&self) -> Option<Vec<Bytes>> {
        self.tracking.clone()
    }

    /// What the proxy does with `key`, for `RESPITE EXPLAIN` and `respite explain`.
    pub fn explain(&self, key: &[u8]) -> String {
        match self.lookup(key) {
            None => "no rule: passed through unchanged".to_owned(),
            Some(rule) => format!(
                "namespace `{}` (rule {}, match `{}`): {}",
                rule.name,
                rule.index + 1,
                rule.pattern,
                rule.describe()
            ),
        }
    }
}

impl Rule {
    /// The value length from which compressing under this rule takes a millisecond
    /// or more on the development machine (JSON: zstd level 1 packs 350 MB/s, level
    /// 19 about 1.3 MB/s; lz4 420 MB/s), so it is done off the event loop.
    pub fn offload_min(&self) -> usize {
        match (self.compress, self.compress_level) {
            (Compress::None, _) => usize::MAX,
            (Compress::Zstd, 10..) => 1024,
            (Compress::Zstd, 4..) => 64 * 1024,
            _ => 256 * 1024,
        }
    }

    /// Whether `other` has the same pattern and settings (its position aside).
    pub fn same_as(&self, other: &Rule) -> bool {
        self.name == other.name
            && self.pattern == other.pattern
            && self.ttl == other.ttl
            && self.max_ttl == other.max_ttl
            && self.l1 == other.l1
            && self.l1_ttl == other.l1_ttl
            && self.compress == other.compress
            && self.compress_min_size == other.compress_min_size
            && self.stale_if_error == other.stale_if_error
            && self.lease == other.lease
    }

    /// What this rule does, in words: one clause per setting.
    pub fn describe(&self) -> String {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let mut parts = vec![
            match (self.ttl, self.max_ttl) {
                (Some(ttl), _) => format!("ttl {} added to writes that set none", d(ttl)),
                (None, Some(max)) => format!("max_ttl {} added to writes that set none", d(max)),
                (None, None) => "no ttl added".to_owned(),
            },
            match self.max_ttl {
                Some(max) => format!("TTLs capped at {} and PERSIST refused", d(max)),
                None => "TTLs not capped".to_owned(),
            },
            if self.l1 {
                format!("cached in L1 for up to {}", d(self.l1_ttl))
            } else {
                "not cached in L1".to_owned()
            },
            match self.compress {
                Compress::None => "not compressed".to_owned(),
                Compress::Zstd => format!(
                    "values of {} bytes or more compressed with zstd level {}",
                    self.compress_min_size, self.compress_level
                ),
                c => format!(
                    "values of {} bytes or more compressed with {}",
                    self.compress_min_size,
                    c.as_str()
                ),
            },
        ];
        match (self.stale_if_error, self.l1) {
            (Some(s), true) => parts.push(format!(
                "L1 copies served up to {} past expiry while Redis is unreachable",
                d(s)
            )),
            (Some(s), false) => parts.push(format!("stale_if_error {} unused without l1", d(s))),
            (None, _) => {}
        }
        if self.lease {
            parts.push("on a miss one client refills while the others wait".to_owned());
        }
        parts.join("; ")
    }
}

/// Checks one rule (all but name uniqueness) and fills in its defaults.
fn compile_rule(index: usize, ns: &NamespaceConfig) -> Result<(Rule, Glob), PolicyError> {
    let rule = || RuleRef {
        index,
        name: ns.name.clone(),
    };
    if ns.name.is_empty() {
        return Err(PolicyError::EmptyName { rule: rule() });
    }
    if ns.pattern.is_empty() {
        return Err(PolicyError::EmptyMatch { rule: rule() });
    }
    let glob = Glob::new(ns.pattern.as_bytes()).map_err(|source| PolicyError::BadGlob {
        rule: rule(),
        source,
    })?;
    for (key, value) in [("ttl", ns.ttl), ("max_ttl", ns.max_ttl)] {
        if let Some(value) = value
            && value < Duration::from_millis(1)
        {
            return Err(PolicyError::TtlTooShort {
                rule: rule(),
                key,
                value,
            });
        }
    }
    if let (Some(ttl), Some(max_ttl)) = (ns.ttl, ns.max_ttl)
        && ttl > max_ttl
    {
        return Err(PolicyError::TtlAboveMaxTtl {
            rule: rule(),
            ttl,
            max_ttl,
        });
    }
    if ns.l1_ttl.is_some_and(|t| t.is_zero()) {
        return Err(PolicyError::ZeroL1Ttl { rule: rule() });
    }

    let compress = match &ns.compress {
        None => Compress::None,
        Some(name) => Compress::parse(name).ok_or_else(|| PolicyError::UnknownCompress {
            rule: rule(),
            value: name.clone(),
        })?,
    };
    let compress_level = ns
        .compress_level
        .unwrap_or(crate::compress::DEFAULT_ZSTD_LEVEL);
    if ns.compress_level.is_some()
        && (compress != Compress::Zstd || !crate::compress::ZSTD_LEVELS.contains(&compress_level))
    {
        return Err(PolicyError::BadCompressLevel {
            rule: rule(),
            level: compress_level,
        });
    }
    let rule = Rule {
        index,
        name: Arc::from(ns.name.as_str()),
        pattern: ns.pattern.clone(),
        ttl: ns.ttl,
        max_ttl: ns.max_ttl,
        l1: ns.l1,
        l1_ttl: ns.l1_ttl.unwrap_or(DEFAULT_L1_TTL),
        compress,
        compress_min_size: ns
            .compress_min_size
            .map_or(DEFAULT_COMPRESS_MIN_SIZE, |s| s.as_u64()),
        compress_level,
        stale_if_error: ns.stale_if_error,
        lease: ns.lease,
        warm: ns.warm,
        stats: Arc::default(),
    };
    Ok((rule, glob))
}

/// See [`Policy::tracking_prefixes`].
fn tracking_prefixes<'a>(rules: impl Iterator<Item = (&'a Rule, &'a Glob)>) -> Option<Vec<Bytes>> {
    let mut prefixes = Vec::new();
    for (_, glob) in rules.filter(|(rule, _)| rule.l1) {
        if glob.literal_prefix().is_empty() {
            return None;
        }
        prefixes.push(glob.literal_prefix());
    }
    prefixes.sort_unstable();
    // Sorted, a prefix comes right before the run of entries extending it.
    let mut kept: Vec<&[u8]> = Vec::with_capacity(prefixes.len());
    for p in prefixes {
        if !kept.last().is_some_and(|last| p.starts_with(last)) {
            kept.push(p);
        }
    }
    Some(kept.into_iter().map(Bytes::copy_from_slice).collect())
}
