//! Namespace TTL rules applied to write commands: `ttl` added to writes that set
//! none, `max_ttl` clamping every way a TTL is set.
//!
//! Pure: given a command, the rule of each key and the clock, [`plan`] says how the
//! command must change. Two tools, chosen per command so the client's reply stays
//! byte-identical to Redis's for the command as sent:
//!
//! - rewriting an argument: `SET k v` gains `PX ms`; `EX 99999` becomes `PX max`;
//!   `SETEX`/`EXPIRE`/`EXPIREAT` become their millisecond forms when clamped (same
//!   reply); `RESTORE`'s ttl argument is filled in or clamped;
//! - `PEXPIRE key ms NX` sent right after the command on the same connection (its
//!   reply dropped) for every other write that may create a key: MSET, HSET, LPUSH,
//!   SADD, ZADD, XADD, INCR, APPEND, COPY/RENAME destinations, `…STORE` commands. NX
//!   makes it a no-op on keys that already expire, and on missing keys.
//!
//! A rule with `max_ttl` and no `ttl` uses `max_ttl` as the default: a key that never
//! expires would outlive any maximum. `PERSIST` and `GETEX … PERSIST` on such keys are
//! refused. Arguments that do not parse are left alone for Redis to reject.

use std::time::Duration;

use bytes::Bytes;

use crate::policy::Rule;

/// What to do with one command.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Replacement arguments (name included), if any changed.
    pub args: Option<Vec<Bytes>>,
    /// `PEXPIRE key ms NX` to send after the command, per key.
    pub expire: Vec<(Bytes, u64)>,
    /// `PEXPIRE key ms LT` to send after those: the key's TTL clamped to `ms` (and set
    /// if it has none), for a write whose own TTL option could not be clamped.
    pub clamp: Vec<(Bytes, u64)>,
}

impl Plan {
    /// The extra commands, encoded as arguments.
    pub fn extra_commands(&self) -> impl Iterator<Item = Vec<Bytes>> + '_ {
        let pexpire = |key: &Bytes, ms: &u64, cond: &'static [u8]| {
            vec![
                Bytes::from_static(b"PEXPIRE"),
                key.clone(),
                Bytes::from(ms.to_string()),
                Bytes::from_static(cond),
            ]
        };
        let nx = self.expire.iter().map(move |(k, ms)| pexpire(k, ms, b"NX"));
        nx.chain(self.clamp.iter().map(move |(k, ms)| pexpire(k, ms, b"LT")))
    }
}

/// Commands that never create a key or set its TTL in a way a default should follow:
/// deletions, pops, TTL commands handled here or on purpose left alone, scripts
/// (their keys may be read-only) and whole-keyspace commands.
const NO_DEFAULT: &[&str] = &[
    "del",
    "unlink",
    "getdel",
    "move",
    "persist",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "getex",
    "set",
    "setex",
    "psetex",
    "restore",
    "restore-asking",
    "hdel",
    "lrem",
    "ltrim",
    "lpop",
    "rpop",
    "blpop",
    "brpop",
    "lmpop",
    "blmpop",
    "srem",
    "spop",
    "zrem",
    "zremrangebyscore",
    "zremrangebyrank",
    "zremrangebylex",
    "zpopmin",
    "zpopmax",
    "bzpopmin",
    "bzpopmax",
    "zmpop",
    "bzmpop",
    "xdel",
    "xtrim",
    "xack",
    "xautoclaim",
    "xclaim",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "flushdb",
    "flushall",
    "swapdb",
];

/// The TTL a rule gives keys written without one.
fn default_ms(rule: &Rule) -> Option<u64> {
    rule.ttl.or(rule.max_ttl).map(ms)
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(i64::MAX as u128) as u64
}

/// Plans `args` (a write command, `name` its lower-case table name) under the rules
/// `rule_of` gives each key; `now_ms` gives Unix time in milliseconds, asked only for
/// an absolute time to clamp or fill in. `write_keys`
/// gives the argument positions of the keys the command may write. Err: the command
/// is refused with this message.
pub fn plan<'r>(
    name: &str,
    args: &[Bytes],
    write_keys: impl FnOnce() -> Vec<usize>,
    rule_of: impl Fn(&[u8]) -> Option<&'r Rule>,
    now_ms: impl Fn() -> u64,
) -> Result<Plan, String> {
    let now_ms: &dyn Fn() -> u64 = &now_ms;
    let key_rule = |i: usize| args.get(i).and_then(|k| rule_of(k));
    let mut plan = Plan::default();
    match name {
        "set" => {
            if let Some(rule) = key_rule(1) {
                set(args, rule, now_ms, &mut plan);
            }
        }
        "setex" | "psetex" if args.len() == 4 => {
            if let Some(max) = key_rule(1).and_then(|r| r.max_ttl).map(ms) {
                plan.args = setex(name, args, max);
            }
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" if args.len() >= 3 => {
            if let Some(max) = key_rule(1).and_then(|r| r.max_ttl).map(ms) {
                plan.args = expire(name, args, max, now_ms);
            }
        }
        "getex" => {
            if let Some(rule) = key_rule(1) {
                plan.args = getex(args, rule, now_ms)?;
            }
        }
        "persist" => {
            if let Some(rule) = key_rule(1).filter(|r| r.max_ttl.is_some()) {
                return Err(refusal("PERSIST", rule));
            }
        }
        "restore" | "restore-asking" => {
            if let Some(rule) = key_rule(1) {
                plan.args = restore(args, rule, now_ms);
            }
        }
        _ if NO_DEFAULT.contains(&name) => {}
        _ => {
            for i in write_keys() {
                let Some(key) = args.get(i) else { continue };
                if let Some(ttl) = rule_of(key).and_then(default_ms)
                    && !plan.expire.iter().any(|(k, _)| k == key)
                {
                    plan.expire.push((key.clone(), ttl));
                }
            }
        }
    }
    Ok(plan)
}

/// SETEX/PSETEX with its TTL clamped to `max` (ms), as PSETEX; None if within it.
fn setex(name: &str, args: &[Bytes], max: u64) -> Option<Vec<Bytes>> {
    let unit = if name == "setex" { 1000 } else { 1 };
    let clamped = clamp_relative(&args[2], unit, max)?;
    Some(vec![
        Bytes::from_static(b"PSETEX"),
        args[1].clone(),
        clamped,
        args[3].clone(),
    ])
}

/// EXPIRE & co with the TTL clamped to `max` (ms), in milliseconds; None if within it.
fn expire(name: &str, args: &[Bytes], max: u64, now_ms: &dyn Fn() -> u64) -> Option<Vec<Bytes>> {
    let unit = if name.starts_with('p') { 1 } else { 1000 };
    let absolute = name.ends_with("at");
    let value = if absolute {
        clamp_absolute(&args[2], unit, max, now_ms)
    } else {
        clamp_relative(&args[2], unit, max)
    }?;
    let mut new = args.to_vec();
    new[0] = Bytes::from_static(if absolute { b"PEXPIREAT" } else { b"PEXPIRE" });
    new[2] = value;
    Some(new)
}

/// The error for a command that would make a key of a `max_ttl` rule persistent.
fn refusal(what: &str, rule: &Rule) -> String {
    let max = rule.max_ttl.map(humantime::format_duration);
    format!(
        "ERR {what} refused by respite: namespace '{}' (rule {}, match '{}') has max_ttl {}, so its keys must expire",
        rule.name,
        rule.index + 1,
        rule.pattern,
        max.map(|m| m.to_string()).unwrap_or_default()
    )
}

/// Where SET's TTL option is, once its arguments are understood.
enum SetTtl {
    None,
    Keep,
    /// Index of the option name; its value follows.
    At(usize),
}

/// Conditions of SET that take a value (Valkey 8.1's IFEQ, Redis 8's IF…).
pub const SET_CONDITIONS: [&[u8]; 4] = [b"IFEQ", b"IFNE", b"IFDEQ", b"IFDNE"];

/// SET key value [NX|XX|IFEQ v…] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL].
fn set(args: &[Bytes], rule: &Rule, now_ms: &dyn Fn() -> u64, plan: &mut Plan) {
    if args.len() < 3 {
        return;
    }
    let key = &args[1];
    let ttl = match set_ttl(args) {
        SetOptions::Understood(ttl) => ttl,
        // An option this table does not know: the write is sent as it is, and the
        // key's TTL is settled by the extras (a default where none is set, clamped).
        SetOptions::Unknown => {
            plan.expire
                .extend(default_ms(rule).map(|ms| (key.clone(), ms)));
            plan.clamp
                .extend(rule.max_ttl.map(|max| (key.clone(), ms(max))));
            return;
        }
        // A known option without its value: the server refuses the SET and the key
        // stays as it was, TTL included.
        SetOptions::Malformed => return,
    };
    match ttl {
        // Under max_ttl every key must expire: one without a TTL (a new key keeps
        // none) gets the default. (Under a plain `ttl` a key kept as it was is left so.)
        SetTtl::Keep if rule.max_ttl.is_some() => {
            plan.expire
                .extend(default_ms(rule).map(|ms| (key.clone(), ms)));
        }
        SetTtl::Keep => {}
        SetTtl::None => {
            if let Some(ttl) = default_ms(rule) {
                let mut new = args.to_vec();
                new.push(Bytes::from_static(b"PX"));
                new.push(Bytes::from(ttl.to_string()));
                plan.args = Some(new);
            }
        }
        SetTtl::At(at) => {
            let Some(max) = rule.max_ttl.map(ms) else {
                return;
            };
            if let Some((name, value)) = clamp_option(&args[at], &args[at + 1], max, now_ms) {
                let mut new = args.to_vec();
                new[at] = Bytes::from_static(name);
                new[at + 1] = value;
                plan.args = Some(new);
            }
        }
    }
}

/// What SET's options say about its TTL.
enum SetOptions {
    Understood(SetTtl),
    /// An option this table does not know.
    Unknown,
    /// A known option that needs a value comes last.
    Malformed,
}

/// SET's TTL option, reading its options from the fourth argument on.
fn set_ttl(args: &[Bytes]) -> SetOptions {
    const TTLS: [&[u8]; 4] = [b"EX", b"PX", b"EXAT", b"PXAT"];
    let mut ttl = SetTtl::None;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        let takes_value = SET_CONDITIONS.iter().chain(&TTLS).any(|o| is(opt, o));
        if is(opt, b"NX") || is(opt, b"XX") || is(opt, b"GET") {
            i += 1;
        } else if is(opt, b"KEEPTTL") {
            ttl = SetTtl::Keep;
            i += 1;
        } else if !takes_value {
            return SetOptions::Unknown;
        } else if i + 1 == args.len() {
            return SetOptions::Malformed;
        } else {
            if TTLS.iter().any(|o| is(opt, o)) {
                ttl = SetTtl::At(i);
            }
            i += 2;
        }
    }
    SetOptions::Understood(ttl)
}

/// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST].
fn getex(
    args: &[Bytes],
    rule: &Rule,
    now_ms: &dyn Fn() -> u64,
) -> Result<Option<Vec<Bytes>>, String> {
    if args.len() == 3 && is(&args[2], b"PERSIST") && rule.max_ttl.is_some() {
        return Err(refusal("GETEX PERSIST", rule));
    }
    let (Some(max), 4) = (rule.max_ttl.map(ms), args.len()) else {
        return Ok(None);
    };
    let clamped = clamp_option(&args[2], &args[3], max, now_ms);
    Ok(clamped.map(|(name, value)| {
        vec![
            args[0].clone(),
            args[1].clone(),
            Bytes::from_static(name),
            value,
        ]
    }))
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f].
fn restore(args: &[Bytes], rule: &Rule, now_ms: &dyn Fn() -> u64) -> Option<Vec<Bytes>> {
    if args.len() < 4 {
        return None;
    }
    let absolute = args[4..].iter().any(|a| is(a, b"ABSTTL"));
    let ttl = parse(&args[2])?;
    let value = if ttl == 0 {
        let default = default_ms(rule)?;
        if absolute {
            now_ms() + default
        } else {
            default
        }
    } else {
        let max = rule.max_ttl.map(ms)?;
        let limit = if absolute { now_ms() + max } else { max };
        if ttl <= 0 || ttl as u64 <= limit {
            return None;
        }
        limit
    };
    let mut new = args.to_vec();
    new[2] = Bytes::from(value.to_string());
    Some(new)
}

/// `EX|PX|EXAT|PXAT value` past `max` ms, as the millisecond option and its clamped
/// value; None when it is within `max`, unparsable, or not such an option.
fn clamp_option(
    opt: &[u8],
    value: &[u8],
    max: u64,
    now_ms: &dyn Fn() -> u64,
) -> Option<(&'static [u8], Bytes)> {
    if is(opt, b"EX") || is(opt, b"PX") {
        let unit = if is(opt, b"EX") { 1000 } else { 1 };
        Some((b"PX", clamp_relative(value, unit, max)?))
    } else if is(opt, b"EXAT") || is(opt, b"PXAT") {
        let unit = if is(opt, b"EXAT") { 1000 } else { 1 };
        Some((b"PXAT", clamp_absolute(value, unit, max, now_ms)?))
    } else {
        None
    }
}

/// A relative TTL (`value` in units of `unit` ms) longer than `max` ms, as `max` ms.
fn clamp_relative(value: &[u8], unit: u64, max: u64) -> Option<Bytes> {
    let v = parse(value)?;
    let v_ms = (v as i128) * (unit as i128);
    (v_ms > max as i128).then(|| Bytes::from(max.to_string()))
}

/// An absolute expiry (Unix time in units of `unit` ms) further than `max` ms from
/// now, as the Unix time in ms `max` from now.
fn clamp_absolute(value: &[u8], unit: u64, max: u64, now_ms: &dyn Fn() -> u64) -> Option<Bytes> {
    let v = parse(value)?;
    let at_ms = (v as i128) * (unit as i128);
    let limit = now_ms() + max;
    (at_ms > limit as i128).then(|| Bytes::from(limit.to_string()))
}

fn parse(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn is(arg: &[u8], word: &[u8]) -> bool {
    arg.eq_ignore_ascii_case(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{command, config::NamespaceConfig, policy::Policy};

    const NOW: u64 = 1_700_000_000_000;

    fn policy() -> Policy {
        let ns: Vec<NamespaceConfig> = toml::from_str::<toml::Table>(
            r#"
            [[namespace]]
            name = "both"
            match = "b:*"
            ttl = "1h"
            max_ttl = "1d"
            [[namespace]]
            name = "default"
            match = "d:*"
            ttl = "10s"
            [[namespace]]
            name = "max"
            match = "m:*"
            max_ttl = "1m"
            "#,
        )
        .unwrap()["namespace"]
            .clone()
            .try_into()
            .unwrap();
        Policy::compile(&ns).unwrap()
    }

    fn run(line: &str) -> Result<Plan, String> {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let policy = policy();
        let class = command::classify(&args);
        let name = class.effective().map_or("", |s| s.name);
        plan(
            name,
            &args,
            || command::write_keys(&args),
            |k| policy.lookup(k),
            || NOW,
        )
    }

    fn rewritten(line: &str) -> Option<String> {
        run(line).unwrap().args.map(|a| {
            a.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    fn expires(line: &str) -> Vec<(String, u64)> {
        run(line)
            .unwrap()
            .expire
            .into_iter()
            .map(|(k, ms)| (String::from_utf8_lossy(&k).into_owned(), ms))
            .collect()
    }

    #[test]
    fn set_gets_the_default_or_a_clamp() {
        assert_eq!(
            rewritten("SET d:1 v").as_deref(),
            Some("SET d:1 v PX 10000")
        );
        assert_eq!(
            rewritten("set b:1 v nx get").as_deref(),
            Some("set b:1 v nx get PX 3600000")
        );
        // max_ttl alone is the default
        assert_eq!(
            rewritten("SET m:1 v").as_deref(),
            Some("SET m:1 v PX 60000")
        );
        assert_eq!(rewritten("SET b:1 v KEEPTTL"), None);
        assert_eq!(rewritten("SET b:1 v EX 10"), None);
        assert_eq!(
            rewritten("SET b:1 v EX 100000").as_deref(),
            Some("SET b:1 v PX 86400000")
        );
        assert_eq!(
            rewritten("SET m:1 v XX pxat 99999999999999").as_deref(),
            Some("SET m:1 v XX PXAT 1700000060000")
        );
        assert_eq!(rewritten("SET d:1 v EX 100000"), None, "no max_ttl");
        assert_eq!(rewritten("SET other v"), None);
        assert_eq!(
            rewritten("SET d:1 v BOGUS"),
            None,
            "Redis answers syntax errors"
        );
        assert_eq!(rewritten("SET b:1 v EX notanumber"), None);
    }

    #[test]
    fn set_options_it_does_not_rewrite_still_get_the_rule() {
        // KEEPTTL keeps a TTL the key may not have: under max_ttl, a key without one
        // gets the default.
        assert_eq!(expires("SET m:1 v KEEPTTL"), [("m:1".into(), 60_000)]);
        assert!(expires("SET d:1 v KEEPTTL").is_empty());
        assert_eq!(
            rewritten("SET d:1 new IFEQ old").as_deref(),
            Some("SET d:1 new IFEQ old PX 10000")
        );
        assert_eq!(
            rewritten("SET m:1 new IFEQ old EX 99999").as_deref(),
            Some("SET m:1 new IFEQ old PX 60000")
        );
        // An option it does not know: a default where none is set, and a clamp.
        let plan = run("SET m:1 v SOMEDAY").unwrap();
        assert_eq!(plan.args, None);
        let extras: Vec<String> = plan
            .extra_commands()
            .map(|c| String::from_utf8_lossy(&c.join(&b" "[..])).into_owned())
            .collect();
        assert_eq!(extras, ["PEXPIRE m:1 60000 NX", "PEXPIRE m:1 60000 LT"]);
        // A known option without its value: the server refuses the SET, so nothing.
        for line in ["SET m:1 v IFEQ", "SET m:1 v EX", "SET d:1 v NX PX"] {
            assert_eq!(run(line).unwrap(), Plan::default(), "{line}");
        }
    }

    #[test]
    fn expire_family_is_clamped_in_milliseconds() {
        assert_eq!(
            rewritten("EXPIRE m:1 3600 NX").as_deref(),
            Some("PEXPIRE m:1 60000 NX")
        );
        assert_eq!(rewritten("EXPIRE m:1 30"), None);
        assert_eq!(rewritten("EXPIRE m:1 -1"), None);
        assert_eq!(
            rewritten("PEXPIREAT m:1 99999999999999").as_deref(),
            Some("PEXPIREAT m:1 1700000060000")
        );
        assert_eq!(
            rewritten("EXPIREAT m:1 99999999999 GT").as_deref(),
            Some("PEXPIREAT m:1 1700000060000 GT")
        );
        assert_eq!(rewritten("EXPIRE d:1 99999"), None);
        assert_eq!(
            rewritten("SETEX m:1 3600 v").as_deref(),
            Some("PSETEX m:1 60000 v")
        );
        assert_eq!(rewritten("PSETEX m:1 500 v"), None);
        assert_eq!(
            rewritten("GETEX m:1 EX 3600").as_deref(),
            Some("GETEX m:1 PX 60000")
        );
        assert_eq!(rewritten("GETEX m:1"), None);
    }

    #[test]
    fn persist_is_refused_under_max_ttl() {
        let err = run("PERSIST m:1").unwrap_err();
        assert!(err.contains("'max'") && err.contains("rule 3"), "{err}");
        assert!(run("GETEX b:1 PERSIST").is_err());
        assert_eq!(run("PERSIST d:1").unwrap(), Plan::default());
        assert_eq!(run("GETEX d:1 PERSIST").unwrap(), Plan::default());
    }

    #[test]
    fn restore_ttl_is_filled_or_clamped() {
        assert_eq!(
            rewritten("RESTORE d:1 0 payload").as_deref(),
            Some("RESTORE d:1 10000 payload")
        );
        assert_eq!(
            rewritten("RESTORE d:1 0 payload REPLACE ABSTTL").as_deref(),
            Some("RESTORE d:1 1700000010000 payload REPLACE ABSTTL")
        );
        assert_eq!(
            rewritten("RESTORE m:1 99999999 payload").as_deref(),
            Some("RESTORE m:1 60000 payload")
        );
        assert_eq!(rewritten("RESTORE m:1 5000 payload"), None);
    }

    #[test]
    fn other_writes_get_pexpire_nx_per_key() {
        assert_eq!(
            expires("MSET d:1 a x b b:1 c d:1 e"),
            vec![("d:1".into(), 10_000), ("b:1".into(), 3_600_000)]
        );
        assert_eq!(expires("HSET m:h f v"), vec![("m:h".into(), 60_000)]);
        assert_eq!(expires("LPUSH d:l a b"), vec![("d:l".into(), 10_000)]);
        assert_eq!(expires("INCR d:n"), vec![("d:n".into(), 10_000)]);
        assert_eq!(
            expires("COPY src d:dst"),
            vec![("d:dst".into(), 10_000)],
            "only the destination is written"
        );
        assert_eq!(
            expires("SUNIONSTORE d:dst x y"),
            vec![("d:dst".into(), 10_000)]
        );
        assert!(expires("DEL d:1").is_empty());
        assert!(expires("HDEL d:h f").is_empty());
        assert!(expires("EVAL x 1 d:1").is_empty());
        assert!(expires("HSET other f v").is_empty());
        let plan = run("SADD d:s m").unwrap();
        let extra: Vec<Vec<Bytes>> = plan.extra_commands().collect();
        assert_eq!(
            extra,
            vec![vec![
                Bytes::from_static(b"PEXPIRE"),
                Bytes::from_static(b"d:s"),
                Bytes::from_static(b"10000"),
                Bytes::from_static(b"NX")
            ]]
        );
    }
}
