//! TEMPORARY stand-in, replaced by the real compiled-policy module.
use std::{sync::Arc, time::Duration};

use crate::config::NamespaceConfig;

#[derive(Debug, Clone)]
pub struct Rule {
    pub index: usize,
    pub name: Arc<str>,
    pub pattern: String,
    pub ttl: Option<Duration>,
    pub max_ttl: Option<Duration>,
    pub l1: bool,
    pub l1_ttl: Duration,
    pub stale_if_error: Option<Duration>,
    pub lease: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(String);

pub struct Policy {
    rules: Vec<Rule>,
}

impl Policy {
    pub fn compile(namespaces: &[NamespaceConfig]) -> Result<Policy, PolicyError> {
        let rules = namespaces
            .iter()
            .enumerate()
            .map(|(index, n)| Rule {
                index,
                name: Arc::from(n.name.as_str()),
                pattern: n.pattern.clone(),
                ttl: n.ttl,
                max_ttl: n.max_ttl,
                l1: n.l1,
                l1_ttl: n.l1_ttl.unwrap_or(Duration::from_secs(60)),
                stale_if_error: n.stale_if_error,
                lease: n.lease,
            })
            .collect();
        Ok(Policy { rules })
    }
    pub fn empty() -> Policy {
        Policy { rules: vec![] }
    }
    pub fn lookup(&self, key: &[u8]) -> Option<&Rule> {
        self.rules.iter().find(|r| {
            let p = r.pattern.as_bytes();
            match p.strip_suffix(b"*") {
                Some(prefix) if !prefix.contains(&b'*') => key.starts_with(prefix),
                _ => p == key,
            }
        })
    }
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    pub fn has_l1(&self) -> bool {
        self.rules.iter().any(|r| r.l1)
    }
    pub fn tracking_prefixes(&self) -> Option<Vec<bytes::Bytes>> {
        let mut out = Vec::new();
        for r in self.rules.iter().filter(|r| r.l1) {
            let p = r.pattern.as_bytes();
            let lit: Vec<u8> = p
                .iter()
                .take_while(|c| !b"*?[\\".contains(c))
                .copied()
                .collect();
            if lit.is_empty() {
                return None;
            }
            out.push(bytes::Bytes::from(lit));
        }
        Some(out)
    }
}
