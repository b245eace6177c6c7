//! Commands the built-in table does not know — newer than Redis 7.2 (`HGETDEL`,
//! `HSETEX`…), module commands, renamed ones — learned from the upstream's own
//! `COMMAND INFO <name>` the first time a client sends one. Until the answer is in,
//! such a command is taken to write any key of its db (the session flushes that db's
//! L1 entries); afterwards it is classified like a table command: a read with its
//! keys, or a write of exactly its keys. A command whose keys `COMMAND INFO` cannot
//! place (`movablekeys`, no key range) stays unknown, and stays conservative.
//!
//! Names are bounded ([`MAX_LEARNED`] of at most [`MAX_NAME`] bytes), so a client
//! sending random names cannot grow this table; past the bound, nothing more is asked.

use std::{
    collections::HashMap,
    sync::{LazyLock, RwLock},
};

use bytes::Bytes;

use super::spec::{Keys, Kind, Spec};
use crate::protocol::reply::array_elements;

/// Most names remembered (answered or being asked).
pub const MAX_LEARNED: usize = 512;
/// Longest name asked about.
pub const MAX_NAME: usize = 64;

#[derive(Clone, Copy)]
enum State {
    /// `COMMAND INFO` was sent; not answered yet.
    Asking,
    /// Redis's answer: the spec, or None when its keys cannot be placed (or Redis does
    /// not know the command either).
    Known(Option<&'static Spec>),
}

static LEARNED: LazyLock<RwLock<HashMap<Box<[u8]>, State>>> = LazyLock::new(RwLock::default);

/// The learned spec of `name` (any case), if Redis described it.
pub fn spec(name: &[u8]) -> Option<&'static Spec> {
    let map = LEARNED.read().expect("learned");
    if map.is_empty() {
        return None;
    }
    match map.get(&name.to_ascii_lowercase()[..]) {
        Some(State::Known(spec)) => *spec,
        _ => None,
    }
}

/// True if the caller should send `COMMAND INFO name` now (then [`learn`] the reply):
/// the name is new, short enough, and there is room. Marks it as being asked.
pub fn should_ask(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME {
        return false;
    }
    let key = name.to_ascii_lowercase().into_boxed_slice();
    let mut map = LEARNED.write().expect("learned");
    if map.len() >= MAX_LEARNED || map.contains_key(&key) {
        return false;
    }
    map.insert(key, State::Asking);
    true
}

/// Records Redis's reply to `COMMAND INFO name` (an error or a failed request: `None`,
/// and the name may be asked again).
pub fn learn(name: &[u8], reply: Option<&Bytes>) {
    let key = name.to_ascii_lowercase().into_boxed_slice();
    let mut map = LEARNED.write().expect("learned");
    match reply {
        Some(reply) => {
            let spec = parse_info(name, reply).map(|s| &*Box::leak(Box::new(s)));
            map.insert(key, State::Known(spec));
        }
        None => {
            map.remove(&key);
        }
    }
}

/// How many commands were learned with their keys.
pub fn count() -> usize {
    let map = LEARNED.read().expect("learned");
    map.values()
        .filter(|s| matches!(s, State::Known(Some(_))))
        .count()
}

/// The spec in a `COMMAND INFO` reply (`*1` of `[name, arity, flags, first, last,
/// step, …]`), named `name` as the client sends it.
fn parse_info(name: &[u8], reply: &Bytes) -> Option<Spec> {
    let entry = array_elements(reply)?.into_iter().next()?;
    let fields = array_elements(&entry)?;
    let arity = integer(fields.get(1)?)?;
    let flags: Vec<Bytes> = array_elements(fields.get(2)?)?;
    let has = |flag: &str| {
        flags
            .iter()
            .any(|f| simple(f).eq_ignore_ascii_case(flag.as_bytes()))
    };
    let (first, last, step) = (
        integer(fields.get(3)?)?,
        integer(fields.get(4)?)?,
        integer(fields.get(5)?)?,
    );
    if has("movablekeys") || first <= 0 || step <= 0 {
        return None; // keys this table cannot place: stays unknown
    }
    let kind = if has("write") {
        Kind::Write
    } else if has("readonly") {
        Kind::Read
    } else {
        return None;
    };
    let keys = Keys::Range {
        first: first as usize,
        last: last as isize,
        step: step as usize,
    };
    let name: &'static str = Box::leak(String::from_utf8_lossy(name).to_lowercase().into());
    Some(Spec::new(name, kind, arity as i32, keys))
}

fn integer(frame: &Bytes) -> Option<i64> {
    std::str::from_utf8(frame.strip_prefix(b":")?.strip_suffix(b"\r\n")?)
        .ok()?
        .parse()
        .ok()
}

/// The text of a simple-string frame (`+write\r\n`), else empty.
fn simple(frame: &Bytes) -> &[u8] {
    frame
        .strip_prefix(b"+")
        .and_then(|f| f.strip_suffix(b"\r\n"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis 7.0's `COMMAND INFO ltrim` (as seen under a renamed name).
    const LTRIM: &[u8] = b"*1\r\n*10\r\n$5\r\nltrim\r\n:4\r\n*1\r\n+write\r\n:1\r\n:1\r\n:1\r\n\
*2\r\n$6\r\n@write\r\n$5\r\n@list\r\n*0\r\n*0\r\n*0\r\n";

    #[test]
    fn a_write_with_a_key_range_is_learned() {
        let spec = parse_info(b"FZLTRIM", &Bytes::from_static(LTRIM)).unwrap();
        assert_eq!(spec.name, "fzltrim");
        assert_eq!(spec.kind, Kind::Write);
        let args: Vec<Bytes> = ["FZLTRIM", "l", "0", "1"]
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        assert_eq!(spec.keys.positions(&args), [1]);
    }

    #[test]
    fn movable_keys_and_unknown_commands_are_not() {
        let movable = b"*1\r\n*10\r\n$4\r\nsort\r\n:-2\r\n*2\r\n+write\r\n+movablekeys\r\n\
:1\r\n:1\r\n:1\r\n*0\r\n*0\r\n*0\r\n*0\r\n";
        assert!(parse_info(b"xsort", &Bytes::from_static(movable)).is_none());
        assert!(parse_info(b"nope", &Bytes::from_static(b"*1\r\n*-1\r\n")).is_none());
        assert!(parse_info(b"nope", &Bytes::from_static(b"-ERR x\r\n")).is_none());
    }

    #[test]
    fn names_are_bounded() {
        assert!(!should_ask(&[b'x'; MAX_NAME + 1]));
        assert!(!should_ask(b""));
        assert!(should_ask(b"learned-test-name"));
        assert!(!should_ask(b"LEARNED-TEST-NAME"), "asked once");
        learn(b"learned-test-name", Some(&Bytes::from_static(LTRIM)));
        assert_eq!(spec(b"Learned-Test-Name").unwrap().kind, Kind::Write);
    }
}
