//! The documented difference of `max_ttl` namespaces, checked rather than only masked:
//! through the proxy a key there always has a TTL, and never a longer one than the
//! rule allows (README "Namespace policies": `ttl` is added to writes that set none,
//! `max_ttl` clamps, PERSIST is refused). Exempt, as documented: keys written by Lua
//! scripts and functions (they get no default TTL), and keys that RENAME, COPY or MOVE
//! may have brought from such.

use std::collections::HashSet;

use crate::{
    config::{RULE_MAX_TTL_SECS, Target},
    session::upper,
    support::resp::Frame,
};

#[derive(Default)]
pub struct TtlRule {
    /// Key names that may hold a value without a TTL by design.
    exempt: HashSet<Vec<u8>>,
}

impl TtlRule {
    /// Notes the keys a command may leave without a TTL (see the module docs).
    pub fn observe(&mut self, args: &[Vec<u8>]) {
        let name = upper(args.first());
        let keys: &[Vec<u8>] = match name.as_str() {
            "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => {
                let n: usize = args
                    .get(2)
                    .and_then(|n| std::str::from_utf8(n).ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                args.get(3..(3 + n).min(args.len())).unwrap_or_default()
            }
            "RENAME" | "RENAMENX" | "COPY" => args.get(1..3).unwrap_or_default(),
            "MOVE" => args.get(1..2).unwrap_or_default(),
            _ => &[],
        };
        self.exempt.extend(keys.iter().cloned());
    }

    /// Why the proxy's reply to a TTL query breaks the rule, if it does.
    pub fn check(&self, target: &Target, args: &[Vec<u8>], proxy: &Frame) -> Option<String> {
        let name = upper(args.first());
        let scale = match name.as_str() {
            "TTL" => 1,
            "PTTL" => 1000,
            "EXPIRETIME" | "PEXPIRETIME" => 0,
            _ => return None,
        };
        let key = args.get(1)?;
        let ns = target.namespace_of(key)?;
        if !ns.max_ttl || self.exempt.contains(key) {
            return None;
        }
        let Frame::Line(b':', n) = proxy else {
            return None;
        };
        let n: i64 = std::str::from_utf8(n).ok()?.parse().ok()?;
        let shown = String::from_utf8_lossy(key);
        if n == -1 {
            return Some(format!(
                "{name} {shown}: the key has no TTL through the proxy, in a namespace with max_ttl"
            ));
        }
        let max = RULE_MAX_TTL_SECS * scale;
        (scale > 0 && n > max)
            .then(|| format!("{name} {shown}: {n}, beyond the namespace's max_ttl ({max})"))
    }
}
