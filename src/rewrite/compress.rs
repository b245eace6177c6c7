//! The compression stage: values written to a compressing namespace go upstream as
//! envelopes (see [`crate::compress`]), reads of such keys get a reply shape that
//! removes them, and in-place changes run through the guard script.
//!
//! Only keys whose rule has `compress` other than `none` are touched; in multi-key
//! commands (MSET, MGET) each key follows its own rule. Every value written to such
//! a key goes through [`pack`], so none that reads would take for an envelope is
//! stored as sent. Argument positions never
//! move for commands with TTL options (SET, SETEX, PSETEX, GETEX), so the TTL stage
//! that runs next finds them where the client put them. Commands with the wrong
//! number of arguments are left alone: Redis answers them with its own error.

use bytes::Bytes;

use super::{post::Shape, stage::Rewrite};
use crate::{
    compress::{
        self, Restore,
        guard::{self, Target},
    },
    error::Error,
    policy::{Compress, Policy, Rule},
    ttl::SET_CONDITIONS,
};

/// Rewrites `rw` for the compressing namespaces of its keys; refuses what cannot be
/// done on compressed values.
pub fn compress_stage(policy: &Policy, rw: &mut Rewrite) -> Result<(), Error> {
    let Some(spec) = rw.class.spec.filter(|_| policy.compresses()) else {
        return Ok(());
    };
    if rw.req.args.len() < 2 || !spec.arity_ok(rw.req.args.len()) {
        return Ok(());
    }
    let compressing = |key: &[u8]| policy.lookup(key).filter(|r| r.compress != Compress::None);
    let args = &rw.req.args;
    match spec.name {
        "mset" | "msetnx" => {
            pack_pairs(policy, rw);
            return Ok(());
        }
        "mget" => {
            let at: Vec<usize> = (1..args.len())
                .filter(|&i| compressing(&args[i]).is_some())
                .map(|i| i - 1)
                .collect();
            if !at.is_empty() {
                rw.shape = Shape::Compressed(Restore::ValuesAt(at));
            }
            return Ok(());
        }
        _ => {}
    }
    if let Some(rule) = compressing(&args[1]) {
        refuse_conditions(spec.name, rule, args)?;
        one_key(spec.name, rule, rw);
    }
    Ok(())
}

/// SET's conditions on the stored value (Valkey 8.1's `IFEQ`, Redis 8's `IFNE`, …)
/// would compare with the envelope, not the value as written: refused, as in-place
/// changes of compressed values are, rather than a silent "not equal".
fn refuse_conditions(name: &str, rule: &Rule, args: &[Bytes]) -> Result<(), Error> {
    if name != "set" {
        return Ok(());
    }
    let Some(cond) = args[3..]
        .iter()
        .find(|a| SET_CONDITIONS.iter().any(|c| a.eq_ignore_ascii_case(c)))
    else {
        return Ok(());
    };
    Err(Error::refused(format!(
        "ERR SET with {} cannot compare with a value respite stores compressed (namespace `{}`): read it with GET and write it with SET",
        String::from_utf8_lossy(cond).to_uppercase(),
        rule.name
    )))
}

/// A command on one key of a compressing namespace: values packed, in-place changes
/// guarded, reads of the stored value restored.
fn one_key(name: &'static str, rule: &Rule, rw: &mut Rewrite) {
    let args = &rw.req.args;
    match name {
        "set" | "setnx" | "getset" => {
            pack_arg(rule, rw, 2);
            let get = args[3..].iter().any(|a| a.eq_ignore_ascii_case(b"GET"));
            if name == "getset" || (name == "set" && get) {
                rw.shape = Shape::Compressed(Restore::Value);
            }
        }
        "setex" | "psetex" | "hsetnx" => pack_arg(rule, rw, 3),
        "hset" | "hmset" => {
            if args.len() % 2 == 0 {
                for i in (3..args.len()).step_by(2) {
                    pack_arg(rule, rw, i);
                }
            }
        }
        name => match guard_target(name) {
            Some(target) => {
                *rw.args_mut() = guard::guarded(args, target, &rule.name);
                if matches!(target, Target::StringInteger | Target::FieldInteger) {
                    rw.shape = Shape::Compressed(Restore::Integer);
                }
            }
            None => {
                if let Some((read, restore)) = read_rewrite(name, args) {
                    if let Some(read) = read {
                        *rw.args_mut() = read;
                    }
                    rw.shape = Shape::Compressed(restore);
                }
            }
        },
    }
}

/// MSET / MSETNX: each value by its own key's rule.
fn pack_pairs(policy: &Policy, rw: &mut Rewrite) {
    if rw.req.args.len() % 2 == 0 {
        return;
    }
    for i in (2..rw.req.args.len()).step_by(2) {
        if let Some(rule) = policy
            .lookup(&rw.req.args[i - 1])
            .filter(|r| r.compress != Compress::None)
        {
            pack_arg(rule, rw, i);
        }
    }
}

/// Replaces argument `i` by its envelope when the rule compresses it.
fn pack_arg(rule: &Rule, rw: &mut Rewrite, i: usize) {
    if let Some(packed) = pack(rule, &rw.args()[i]) {
        rw.args_mut()[i] = packed;
    }
}

/// The envelope for `value` under `rule`, counted in the namespace's stats; None
/// when it is stored as sent. A value shorter than `compress_min_size` is not
/// compressed, but one that a read would take for an envelope is stored in one.
fn pack(rule: &Rule, value: &Bytes) -> Option<Bytes> {
    if (value.len() as u64) < rule.compress_min_size {
        return compress::protect(value).map(Bytes::from);
    }
    let packed = compress::pack(value, rule.compress, rule.compress_level);
    let stored = packed.as_ref().map_or(value.len(), Vec::len);
    rule.stats
        .compress_in
        .fetch_add(value.len() as u64, std::sync::atomic::Ordering::Relaxed);
    rule.stats
        .compress_out
        .fetch_add(stored as u64, std::sync::atomic::Ordering::Relaxed);
    packed.map(Bytes::from)
}

/// [`read_rewrite`] for an L1 fill of `args` (a cacheable read of a key whose rule
/// compresses).
pub fn fill_rewrite(args: &[Bytes]) -> Option<(Option<Vec<Bytes>>, Restore)> {
    let spec = crate::command::lookup(&args[0]).filter(|s| s.arity_ok(args.len()))?;
    read_rewrite(spec.name, args)
}

/// Reads that restore a value: the command to send instead (None: as sent) and how
/// to restore its reply. `name` is the table's name of `args[0]`, and `args` has the
/// right number of arguments.
fn read_rewrite(name: &str, args: &[Bytes]) -> Option<(Option<Vec<Bytes>>, Restore)> {
    let get = |cmd: &'static [u8], n: usize| {
        let mut read = vec![Bytes::from_static(cmd)];
        read.extend_from_slice(&args[1..n]);
        Some(read)
    };
    Some(match name {
        "get" | "getex" | "getdel" | "hget" => (None, Restore::Value),
        "hmget" | "hvals" => (None, Restore::Values),
        "hgetall" => (None, Restore::Pairs),
        "hrandfield" if args.len() == 4 && args[3].eq_ignore_ascii_case(b"WITHVALUES") => {
            (None, Restore::Pairs)
        }
        "strlen" => (get(b"GET", 2), Restore::Len),
        "hstrlen" => (get(b"HGET", 3), Restore::Len),
        "getrange" | "substr" => {
            // Malformed indexes: Redis answers with its own error.
            let start = redis_integer(&args[2])?;
            let end = redis_integer(&args[3])?;
            (get(b"GET", 2), Restore::Range(start, end))
        }
        _ => return None,
    })
}

/// The in-place changes that run through the guard script.
fn guard_target(name: &str) -> Option<Target> {
    Some(match name {
        "append" | "setrange" | "setbit" | "bitfield" | "incrbyfloat" => Target::String,
        "incr" | "incrby" | "decr" | "decrby" => Target::StringInteger,
        "hincrbyfloat" => Target::Field,
        "hincrby" => Target::FieldInteger,
        _ => return None,
    })
}

/// An integer as Redis's `string2ll` accepts it: canonical decimal, no sign `+`, no
/// leading zeros, no spaces.
fn redis_integer(arg: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(arg).ok()?;
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::from(a.to_owned())).collect()
    }

    #[test]
    fn integers_as_redis_parses_them() {
        assert_eq!(redis_integer(b"0"), Some(0));
        assert_eq!(redis_integer(b"-5"), Some(-5));
        for bad in [
            "+5",
            "05",
            "-0",
            " 1",
            "1 ",
            "",
            "x",
            "99999999999999999999",
        ] {
            assert_eq!(redis_integer(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn reads_rewritten() {
        let (cmd, r) = fill_rewrite(&args("strlen k")).unwrap();
        assert_eq!(cmd.unwrap(), args("GET k"));
        assert_eq!(r, Restore::Len);
        let (cmd, r) = fill_rewrite(&args("HSTRLEN k f")).unwrap();
        assert_eq!(cmd.unwrap(), args("HGET k f"));
        assert_eq!(r, Restore::Len);
        let (cmd, r) = fill_rewrite(&args("GETRANGE k -3 -1")).unwrap();
        assert_eq!(cmd.unwrap(), args("GET k"));
        assert_eq!(r, Restore::Range(-3, -1));
        assert!(fill_rewrite(&args("GETRANGE k a 1")).is_none());
        assert_eq!(
            fill_rewrite(&args("hrandfield k 3 withvalues")).unwrap().1,
            Restore::Pairs
        );
        assert!(fill_rewrite(&args("HRANDFIELD k 3")).is_none());
        assert!(fill_rewrite(&args("LRANGE k 0 1")).is_none());
    }
}
