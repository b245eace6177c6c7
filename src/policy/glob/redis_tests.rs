//! [`stringmatch`] and [`Glob`] against a real `redis-server`: random keys over a
//! small alphabet (metacharacters included), random patterns over the same, and
//! `KEYS pattern` compared with filtering the keys through our matchers.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::Child,
};

use proptest::{
    strategy::{Strategy, ValueTree},
    test_runner::{Config, TestRunner},
};

use super::{Glob, stringmatch};

/// Keys and patterns are drawn from these bytes; metacharacters are frequent so
/// patterns often hold classes, ranges and escapes. `\xe9` is negative as a C char.
const ALPHABET: &[u8] = b"abc?*[]^-\\\xe9";
const KEYS: usize = 400;
const PATTERNS: u32 = 3000;

/// A `redis-server` child on a free port, killed on drop.
struct Redis {
    child: Child,
    conn: BufReader<TcpStream>,
}

impl Redis {
    fn start() -> Redis {
        let (child, stream) = crate::protocol::test_redis::spawn();
        Redis {
            child,
            conn: BufReader::new(stream),
        }
    }

    /// Sends one command and reads its reply (flattened: the bulk strings of an
    /// array, or one entry for a simple reply).
    fn call(&mut self, args: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.conn.get_mut().write_all(&out).unwrap();
        let line = self.line();
        match line.first() {
            Some(b'*') => (0..parse_len(&line)).map(|_| self.bulk()).collect(),
            Some(b'+' | b':') => vec![line[1..].to_vec()],
            _ => panic!("unexpected reply {:?}", String::from_utf8_lossy(&line)),
        }
    }

    fn bulk(&mut self) -> Vec<u8> {
        let line = self.line();
        assert_eq!(
            line.first(),
            Some(&b'$'),
            "{:?}",
            String::from_utf8_lossy(&line)
        );
        let mut data = vec![0; parse_len(&line) + 2];
        self.conn.read_exact(&mut data).unwrap();
        data.truncate(data.len() - 2);
        data
    }

    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.conn.read_until(b'\n', &mut line).unwrap();
        line.truncate(line.len().saturating_sub(2));
        line
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_len(line: &[u8]) -> usize {
    std::str::from_utf8(&line[1..]).unwrap().parse().unwrap()
}

fn bytes(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::sample::select(ALPHABET), len)
}

#[test]
fn matchers_agree_with_redis_keys() {
    let mut redis = Redis::start();
    let mut runner = TestRunner::deterministic();
    let mut keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|_| bytes(0..7).new_tree(&mut runner).unwrap().current())
        .collect();
    keys.push(Vec::new()); // the empty key: only `*` and the empty pattern list it
    keys.sort();
    keys.dedup();
    let mut mset: Vec<&[u8]> = vec![b"MSET"];
    for key in &keys {
        mset.extend([key.as_slice(), b"v"]);
    }
    assert_eq!(redis.call(&mset), vec![b"OK".to_vec()]);

    let config = Config {
        cases: PATTERNS,
        failure_persistence: None,
        ..Config::default()
    };
    let redis = std::cell::RefCell::new(redis);
    let result = TestRunner::new(config).run(&bytes(0..9), |pattern| {
        let mut listed = redis.borrow_mut().call(&[b"KEYS", &pattern]);
        listed.sort();
        let filter = |pred: &dyn Fn(&[u8]) -> bool| -> Vec<Vec<u8>> {
            keys.iter().filter(|k| pred(k)).cloned().collect()
        };
        let keys_star = pattern == b"*"; // KEYS lists every key for `*` without matching
        let ours = filter(&|k| keys_star || stringmatch(&pattern, k, false));
        proptest::prop_assert_eq!(&ours, &listed, "stringmatch");
        let glob = Glob::redis(&pattern);
        proptest::prop_assert_eq!(&filter(&|k| glob.matches(k)), &listed, "Glob::redis");
        if let Ok(strict) = Glob::new(&pattern) {
            proptest::prop_assert_eq!(&filter(&|k| strict.matches(k)), &listed, "Glob::new");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
