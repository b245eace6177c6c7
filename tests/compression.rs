//! Compression per namespace: values are stored as envelopes and every read path gives
//! back exactly what Redis gives for the value as written.
//!
//! Most tests are differential: the same commands go through the proxy to db 0, where
//! keys match compressing namespaces, and straight to Redis in db 1, where nothing is
//! compressed; the replies must be byte for byte the same (hash replies compare
//! sorted: a compressed hash may use another encoding, so another field order).

mod support;

use support::{
    Client, ServerKind, Stack, contains,
    l1::{stat_int, wait_tracking},
    pseudo_random_bytes, show, wait_until,
};

const TOML: &str = r#"
[l1]
max_memory = "64MiB"

[[namespace]]
name = "docs"
match = "z:*"
compress = "zstd"
compress_min_size = 100

[[namespace]]
name = "fast"
match = "f:*"
compress = "lz4"
compress_min_size = 100

[[namespace]]
name = "cached"
match = "c:*"
compress = "zstd"
compress_level = 9
compress_min_size = 100
l1 = true
l1_ttl = "30s"
"#;

/// [`TOML`] with the metrics endpoint on.
fn with_metrics() -> String {
    format!("{TOML}\n[metrics]\nlisten = \"127.0.0.1:0\"\n")
}

const MAGIC: &[u8] = b"\xFERSP\x01";

/// JSON-like text of exactly `n` bytes, with the repetition real documents have.
fn doc(n: usize) -> Vec<u8> {
    let mut s = Vec::with_capacity(n + 100);
    let mut i = 0;
    while s.len() < n {
        s.extend_from_slice(
            format!(r#"{{"id":{i},"title":"Chapter {i}","tags":["a","b"],"ok":true}},"#).as_bytes(),
        );
        i += 1;
    }
    s.truncate(n);
    s
}

/// Compressible binary: every byte value, CR LF and NUL included.
fn binary(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7) % 256) as u8).collect()
}

/// The values each read path is tried with: around the 100-byte threshold, empty,
/// binary, incompressible.
fn values() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [0, 1, 31, 99, 100, 101, 1000, 70_000]
        .into_iter()
        .map(doc)
        .collect();
    v.push(binary(5000));
    v.push(pseudo_random_bytes(5000, 7));
    v
}

/// A client through the proxy (db 0) and one straight to Redis (db 1).
struct Pair {
    proxy: Client,
    direct: Client,
}

impl Pair {
    fn new(stack: &Stack, resp3: bool) -> Pair {
        let mut pair = Pair {
            proxy: stack.client(),
            direct: stack.direct(),
        };
        pair.direct.assert_cmd("SELECT 1", b"+OK\r\n");
        if resp3 {
            pair.proxy.cmd("HELLO 3");
            pair.direct.cmd("HELLO 3");
        }
        pair
    }

    /// Sends `args` both ways; the replies must be identical.
    fn same(&mut self, args: &[&[u8]]) -> Vec<u8> {
        let p = self.proxy.call(args);
        let d = self.direct.call(args);
        assert_same(args, &p, &d);
        p
    }

    /// Sends every command both ways in one pipeline and compares the replies.
    fn pipeline(&mut self, cmds: &[Vec<&[u8]>]) {
        let mut bytes = Vec::new();
        for c in cmds {
            bytes.extend(support::resp::encode_command(c));
        }
        self.proxy.send_raw(&bytes);
        self.direct.send_raw(&bytes);
        for c in cmds {
            let p = self.proxy.read_reply();
            let d = self.direct.read_reply();
            assert_same(c, &p, &d);
        }
    }
}

fn assert_same(args: &[&[u8]], proxy: &[u8], direct: &[u8]) {
    let name = args[0].to_ascii_uppercase();
    let unordered = [&b"HGETALL"[..], b"HVALS"].contains(&&name[..]);
    let equal = if unordered && proxy.first() != Some(&b'-') {
        support::resp::decode(proxy).sorted() == support::resp::decode(direct).sorted()
    } else {
        proxy == direct
    };
    let at = proxy.iter().zip(direct).take_while(|(a, b)| a == b).count();
    assert!(
        equal,
        "{}:\n proxy  {}\n direct {}\n first difference at byte {at}: proxy {}, direct {}",
        support::resp::show_command(args),
        show(proxy),
        show(direct),
        show(&proxy[at.saturating_sub(40)..proxy.len().min(at + 60)]),
        show(&direct[at.saturating_sub(40)..direct.len().min(at + 60)]),
    );
}

/// Every write and read path for value `v` under key prefix `p`, as commands.
fn script(p: &str, v: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let k = |s: &str| format!("{p}{s}").into_bytes();
    let v = v.to_vec();
    vec![
        vec![b"SET".to_vec(), k("s"), v.clone()],
        vec![b"GET".to_vec(), k("s")],
        vec![b"GET".to_vec(), k("s")],
        vec![b"STRLEN".to_vec(), k("s")],
        vec![b"STRLEN".to_vec(), k("s")],
        vec![b"GETRANGE".to_vec(), k("s"), b"0".to_vec(), b"10".to_vec()],
        vec![b"GETRANGE".to_vec(), k("s"), b"-5".to_vec(), b"-1".to_vec()],
        vec![b"GETRANGE".to_vec(), k("s"), b"5".to_vec(), b"2".to_vec()],
        vec![b"GETRANGE".to_vec(), k("s"), b"0".to_vec(), b"-1".to_vec()],
        vec![b"GETRANGE".to_vec(), k("s"), b"+1".to_vec(), b"2".to_vec()],
        vec![b"SUBSTR".to_vec(), k("s"), b"1".to_vec(), b"3".to_vec()],
        vec![
            b"MGET".to_vec(),
            k("s"),
            k("missing"),
            k("s"),
            b"plain:x".to_vec(),
        ],
        vec![b"GETEX".to_vec(), k("s")],
        vec![b"SET".to_vec(), k("s"), v.clone(), b"GET".to_vec()],
        vec![
            b"SET".to_vec(),
            k("g"),
            v.clone(),
            b"NX".to_vec(),
            b"GET".to_vec(),
        ],
        vec![b"GETSET".to_vec(), k("s"), v.clone()],
        vec![b"SETEX".to_vec(), k("e"), b"100".to_vec(), v.clone()],
        vec![b"GET".to_vec(), k("e")],
        vec![b"PSETEX".to_vec(), k("e"), b"100000".to_vec(), v.clone()],
        vec![b"GET".to_vec(), k("e")],
        vec![b"SETNX".to_vec(), k("s"), b"other".to_vec()],
        vec![b"SETNX".to_vec(), k("n"), v.clone()],
        vec![b"GET".to_vec(), k("n")],
        vec![
            b"MSET".to_vec(),
            k("m1"),
            v.clone(),
            k("m2"),
            b"short".to_vec(),
        ],
        vec![b"MGET".to_vec(), k("m1"), k("m2")],
        vec![b"MSETNX".to_vec(), k("m3"), v.clone(), k("m4"), v.clone()],
        vec![b"MGET".to_vec(), k("m3"), k("m4"), k("m1")],
        vec![
            b"HSET".to_vec(),
            k("h"),
            b"f".to_vec(),
            v.clone(),
            b"g".to_vec(),
            b"short".to_vec(),
        ],
        vec![b"HGET".to_vec(), k("h"), b"f".to_vec()],
        vec![b"HGET".to_vec(), k("h"), b"f".to_vec()],
        vec![
            b"HMGET".to_vec(),
            k("h"),
            b"f".to_vec(),
            b"g".to_vec(),
            b"nope".to_vec(),
        ],
        vec![b"HGETALL".to_vec(), k("h")],
        vec![b"HVALS".to_vec(), k("h")],
        vec![b"HSTRLEN".to_vec(), k("h"), b"f".to_vec()],
        vec![b"HSTRLEN".to_vec(), k("h"), b"nope".to_vec()],
        vec![b"HSETNX".to_vec(), k("h"), b"f2".to_vec(), v.clone()],
        vec![b"HMSET".to_vec(), k("h"), b"f3".to_vec(), v.clone()],
        vec![b"HGETALL".to_vec(), k("h")],
        vec![b"HGETALL".to_vec(), k("h")],
        vec![b"HSET".to_vec(), k("h1"), b"f".to_vec(), v.clone()],
        vec![
            b"HRANDFIELD".to_vec(),
            k("h1"),
            b"1".to_vec(),
            b"WITHVALUES".to_vec(),
        ],
        vec![
            b"HRANDFIELD".to_vec(),
            k("h1"),
            b"-2".to_vec(),
            b"WITHVALUES".to_vec(),
        ],
        vec![b"STRLEN".to_vec(), k("h")],
        vec![b"GETDEL".to_vec(), k("s")],
        vec![b"GET".to_vec(), k("s")],
        vec![b"STRLEN".to_vec(), k("s")],
        vec![b"GETRANGE".to_vec(), k("s"), b"0".to_vec(), b"1".to_vec()],
        vec![b"HSTRLEN".to_vec(), k("missing"), b"f".to_vec()],
    ]
}

fn refs(cmd: &[Vec<u8>]) -> Vec<&[u8]> {
    cmd.iter().map(Vec::as_slice).collect()
}

fn cleanup(pair: &mut Pair) {
    pair.proxy.cmd("FLUSHALL");
}

#[test]
fn every_read_path_round_trips_resp2_and_resp3() {
    let stack = Stack::start_with(TOML);
    for resp3 in [false, true] {
        let mut pair = Pair::new(&stack, resp3);
        for prefix in ["z:", "f:", "c:"] {
            for v in values() {
                for cmd in script(prefix, &v) {
                    pair.same(&refs(&cmd));
                }
                cleanup(&mut pair);
            }
        }
    }
}

#[test]
fn values_are_stored_as_envelopes() {
    let stack = Stack::start_with(TOML);
    let mut c = stack.client();
    let mut d = stack.direct();
    for (key, v) in [
        ("z:doc", doc(20_000)),
        ("f:doc", doc(20_000)),
        ("c:doc", doc(20_000)),
    ] {
        c.call(&[&b"SET"[..], key.as_bytes(), &v]);
        c.call(&[&b"HSET"[..], b"z:hash", key.as_bytes(), &v]);
        let stored = support::resp::decode(&d.call(&["GET", key]));
        let stored = stored.text().unwrap();
        assert!(stored.starts_with(MAGIC), "{key}: {}", show(stored));
        assert!(stored.len() * 5 < v.len(), "{key}: {} bytes", stored.len());
        let field = support::resp::decode(&d.call(&["HGET", "z:hash", key]));
        assert!(field.text().unwrap().starts_with(MAGIC));
    }
    // Below the threshold, incompressible, numbers, other namespaces: as written.
    let noise = pseudo_random_bytes(5000, 3);
    for (key, v) in [
        ("z:short", doc(99)),
        ("z:noise", noise),
        ("z:num", b"12345678901234567890".to_vec()),
        ("plain:doc", doc(20_000)),
    ] {
        c.call(&[&b"SET"[..], key.as_bytes(), &v]);
        let stored = support::resp::decode(&d.call(&["GET", key]));
        assert_eq!(stored.text().unwrap(), &v[..], "{key}");
    }
    // The counters: bytes as sent and as stored, per namespace.
    let before = stat_int(&mut c, "compress_docs_bytes_in");
    let after = stat_int(&mut c, "compress_docs_bytes_out");
    assert!(
        before >= 40_000 + 5000 && after < before / 2,
        "{before} {after}"
    );
    assert!(stat_int(&mut c, "compress_fast_bytes_in") >= 20_000);
}

#[test]
fn values_of_several_megabytes() {
    let stack = Stack::start_with(TOML);
    let mut pair = Pair::new(&stack, false);
    let big = doc(4 << 20);
    for prefix in ["z:", "f:", "c:"] {
        let k = format!("{prefix}big");
        let k = k.as_bytes();
        pair.same(&[b"SET", k, &big]);
        pair.same(&[b"GET", k]);
        pair.same(&[b"GET", k]);
        pair.same(&[b"STRLEN", k]);
        pair.same(&[b"GETRANGE", k, b"4000000", b"4000100"]);
        pair.same(&[b"MGET", k, k]);
        pair.same(&[b"HSET", b"z:bh", b"f", &big]);
        pair.same(&[b"HGETALL", b"z:bh"]);
    }
    let stored = support::resp::decode(&stack.direct().call(&["GET", "z:big"]));
    assert!(stored.text().unwrap().len() < big.len() / 10);
}

#[test]
fn inside_multi_exec_and_pipelines() {
    let stack = Stack::start_with(TOML);
    for resp3 in [false, true] {
        let mut pair = Pair::new(&stack, resp3);
        for prefix in ["z:", "c:"] {
            for v in [doc(5000), doc(10)] {
                let cmds = script(prefix, &v);
                pair.same(&[b"MULTI"]);
                for cmd in &cmds {
                    pair.same(&refs(cmd));
                }
                pair.same(&[b"EXEC"]);
                cleanup(&mut pair);
                let cmds: Vec<Vec<&[u8]>> = cmds.iter().map(|c| refs(c)).collect();
                pair.pipeline(&cmds);
                cleanup(&mut pair);
            }
        }
    }
}

/// Fletcher-16 as the envelope header uses it.
fn fletcher(bytes: &[u8]) -> [u8; 2] {
    let (mut a, mut b) = (0u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 255;
        b = (b + a) % 255;
    }
    [a as u8, b as u8]
}

/// An envelope header: magic, version 1, `codec`, no dictionary, `len`, check bytes.
fn header(codec: u8, len: u32) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.push(codec);
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(&len.to_le_bytes());
    let check = fletcher(&h);
    h.extend_from_slice(&check);
    h
}

#[test]
fn values_not_written_by_respite_read_back_unchanged() {
    let mut zlib_pickle = b"\x78\x9c".to_vec();
    zlib_pickle.extend_from_slice(&pseudo_random_bytes(3000, 11));
    let mut almost = b"\xFERS".to_vec();
    almost.extend_from_slice(&doc(300));
    let foreign = [
        ("raw", doc(5000)),
        ("zlib", zlib_pickle),
        ("almost", almost),
        ("zstd", zstd::bulk::compress(&doc(5000), 3).unwrap()),
    ];
    let stack = Stack::start_with(TOML);
    let mut d = stack.direct();
    let mut c = stack.client();
    for prefix in ["z:", "c:"] {
        for (name, v) in &foreign {
            let key = format!("{prefix}{name}");
            let k = key.as_bytes();
            d.call(&[&b"SET"[..], k, v]);
            d.call(&[
                &b"HSET"[..],
                format!("{prefix}h").as_bytes(),
                name.as_bytes(),
                v,
            ]);
            for _ in 0..2 {
                assert_eq!(c.call(&[&b"GET"[..], k]), bulk(v), "GET {key}");
                let n = format!(":{}\r\n", v.len());
                assert_eq!(c.call(&[&b"STRLEN"[..], k]), n.as_bytes(), "STRLEN {key}");
                let range = c.call(&[&b"GETRANGE"[..], k, b"0", b"5"]);
                assert_eq!(range, bulk(&v[..v.len().min(6)]), "GETRANGE {key}");
                let mget = c.call(&[&b"MGET"[..], k]);
                assert_eq!(mget[4..], bulk(v)[..], "MGET {key}");
                let field = c.call(&[
                    &b"HGET"[..],
                    format!("{prefix}h").as_bytes(),
                    name.as_bytes(),
                ]);
                assert_eq!(field, bulk(v), "HGET {key}");
            }
            // Not ours, so in-place changes are Redis's business.
            let mut want = v.clone();
            want.extend_from_slice(b"!");
            let n = format!(":{}\r\n", want.len());
            assert_eq!(c.call(&[&b"APPEND"[..], k, b"!"]), n.as_bytes(), "{key}");
            assert_eq!(c.call(&[&b"GET"[..], k]), bulk(&want));
        }
    }
}

/// This instance's `/metrics` text.
fn scrape(stack: &Stack) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(stack.proxy.metrics_addr()).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// The value of the sample `name` (with its labels, as rendered) in a scrape; 0 when
/// absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

const DECODE_ERRORS: &str = "respite_compression_decode_errors_total";

/// The decoding errors counted so far, all reasons.
fn decode_errors(stack: &Stack) -> f64 {
    let text = scrape(stack);
    ["too_large", "unsupported", "corrupt"]
        .iter()
        .map(|r| sample(&text, &format!("{DECODE_ERRORS}{{reason=\"{r}\"}}")))
        .sum()
}

/// The most memory this process has held at once (the proxy runs in it).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

fn assert_decode_error(reply: &[u8], what: &str) {
    assert!(
        reply.starts_with(b"-ERR respite: stored value could not be decoded"),
        "{what}: {}",
        show(reply)
    );
}

/// Every read of `key` (a string) and of field `f` of `hash` must answer the
/// decoding error.
fn assert_reads_refused(c: &mut Client, key: &[u8], hash: &[u8], what: &str) {
    for cmd in [
        vec![&b"GET"[..], key],
        vec![b"STRLEN", key],
        vec![b"GETRANGE", key, b"0", b"3"],
        vec![b"MGET", key, b"z:missing"],
        vec![b"GETEX", key],
        vec![b"HGET", hash, b"f"],
        vec![b"HMGET", hash, b"f"],
        vec![b"HGETALL", hash],
        vec![b"HSTRLEN", hash, b"f"],
    ] {
        let reply = c.call(&cmd);
        assert_decode_error(&reply, &format!("{what}: {}", show(&cmd.concat())));
    }
}

#[test]
fn hostile_lengths_are_refused_without_allocating_them() {
    // Anyone who can write to Redis can store these; the check bytes are public.
    let mut zstd_liar = header(1, 500_000_000);
    // A zstd frame saying 500,000,000 bytes (single segment, 4-byte content size)
    // whose one RLE block makes 1,000.
    zstd_liar.extend_from_slice(&[0x28, 0xB5, 0x2F, 0xFD, 0xA0]);
    zstd_liar.extend_from_slice(&500_000_000u32.to_le_bytes());
    zstd_liar.extend_from_slice(&[0x43, 0x1F, 0x00, b'x']);
    let mut lz4_liar = header(2, 400_000_000);
    lz4_liar.extend_from_slice(&[0x1F, b'a', 0x01, 0x00, 0xFF, 0xFF, 0x10]);
    let hostile = [
        ("bare", header(1, u32::MAX)),
        ("lz4", header(2, u32::MAX)),
        ("zstd_liar", zstd_liar),
        ("lz4_liar", lz4_liar),
    ];
    let stack = Stack::start_with(&with_metrics());
    let mut d = stack.direct();
    let mut c = stack.client();
    let errors = decode_errors(&stack);
    let peak = peak_rss();
    for prefix in ["z:", "f:", "c:"] {
        for (name, v) in &hostile {
            let key = format!("{prefix}{name}");
            let hash = format!("{prefix}h{name}");
            d.call(&[&b"SET"[..], key.as_bytes(), v]);
            d.call(&[&b"HSET"[..], hash.as_bytes(), b"f", v]);
            for _ in 0..3 {
                assert_reads_refused(&mut c, key.as_bytes(), hash.as_bytes(), &key);
            }
        }
    }
    // Nothing near the lengths claimed was held (4 GiB each, zeroed, before).
    let grew = peak_rss().saturating_sub(peak);
    assert!(grew < 1 << 30, "peak RSS grew by {grew} bytes");
    // Each refusal counted (the L1 namespace too: errors are never cached).
    let counted = decode_errors(&stack) - errors;
    assert!(
        counted >= (3 * 4 * 3 * 9) as f64,
        "{counted} decoding errors counted"
    );
    // The proxy still serves.
    c.assert_cmd("PING", b"+PONG\r\n");
}

#[test]
fn damaged_envelopes_answer_an_error_and_are_counted() {
    let stack = Stack::start_with(&with_metrics());
    let mut d = stack.direct();
    let mut c = stack.client();
    let v = doc(20_000);
    for prefix in ["z:", "f:", "c:"] {
        let key = format!("{prefix}doc");
        let hash = format!("{prefix}hdoc");
        let (k, h) = (key.as_bytes(), hash.as_bytes());
        c.call(&[&b"SET"[..], k, &v]);
        c.call(&[&b"HSET"[..], h, b"f", &v]);
        assert_eq!(c.call(&[&b"GET"[..], k]), bulk(&v));
        let stored = support::resp::decode(&d.call(&[&b"GET"[..], k]));
        let stored = stored.text().unwrap().to_vec();
        assert!(stored.starts_with(MAGIC));
        let damages: Vec<(&str, Vec<u8>)> = vec![
            ("payload byte", {
                let mut s = stored.clone();
                let mid = s.len() / 2;
                s[mid] ^= 0x21;
                s
            }),
            ("cut short", stored[..stored.len() - 3].to_vec()),
            ("bytes after", [&stored[..], b"xyz"].concat()),
            ("header byte", {
                let mut s = stored.clone();
                s[11] ^= 1;
                s
            }),
            ("version 9", {
                let mut s = stored.clone();
                s[4] = 9;
                let check = fletcher(&s[..14]);
                s[14..16].copy_from_slice(&check);
                s
            }),
            ("just the magic", MAGIC.to_vec()),
            (
                "raw with a wrong length",
                [&header(0, 10)[..], b"abc"].concat(),
            ),
        ];
        for (what, bad) in damages {
            let before = decode_errors(&stack);
            d.call(&[&b"SET"[..], k, &bad]);
            d.call(&[&b"HSET"[..], h, b"f", &bad]);
            // c: is cached: the direct writes reach its L1 with tracking's invalidation.
            let seen = wait_until(std::time::Duration::from_secs(10), || {
                c.call(&[&b"GET"[..], k]) != bulk(&v)
                    && c.call(&[&b"HGET"[..], h, b"f"]) != bulk(&v)
            });
            assert!(
                seen,
                "{key}: {what}: the direct writes never reached the L1"
            );
            assert_reads_refused(&mut c, k, h, &format!("{key}: {what}"));
            assert!(decode_errors(&stack) > before, "{key}: {what} not counted");
        }
        // Written again through the proxy: read back as written.
        c.call(&[&b"SET"[..], k, &v]);
        assert_eq!(c.call(&[&b"GET"[..], k]), bulk(&v));
    }
    let text = scrape(&stack);
    assert!(
        text.contains(&format!("# TYPE {DECODE_ERRORS} counter")),
        "{text}"
    );
    assert!(sample(&text, &format!("{DECODE_ERRORS}{{reason=\"corrupt\"}}")) > 0.0);
    assert!(sample(&text, &format!("{DECODE_ERRORS}{{reason=\"unsupported\"}}")) > 0.0);
}

/// Values a client may well write that start like an envelope, or are one.
fn look_alikes() -> Vec<Vec<u8>> {
    let packed = respite::compress::pack(&doc(5000), respite::policy::Compress::Zstd, 1)
        .expect("a document shrinks");
    let mut forged = header(1, 200);
    forged.extend_from_slice(&[0x55; 200]);
    vec![
        MAGIC.to_vec(),
        b"\xFERSP".to_vec(),
        [MAGIC, b"short"].concat(),
        [MAGIC, &doc(500)[..]].concat(),
        header(1, u32::MAX),
        header(0, 3),
        [&header(0, 5)[..], b"hello"].concat(),
        forged,
        packed.clone(),
        respite::compress::pack(&doc(300), respite::policy::Compress::Lz4, 1).unwrap(),
        [&packed[..], &doc(50_000)[..]].concat(),
    ]
}

#[test]
fn client_values_that_look_like_envelopes_round_trip() {
    let stack = Stack::start_with(TOML);
    for resp3 in [false, true] {
        let mut pair = Pair::new(&stack, resp3);
        for prefix in ["z:", "f:", "c:"] {
            for v in look_alikes() {
                for cmd in script(prefix, &v) {
                    pair.same(&refs(&cmd));
                }
                cleanup(&mut pair);
            }
        }
    }
    // Inside MULTI and pipelined too (without the hash reads whose field order may
    // differ: EXEC's elements are compared as sent).
    let mut pair = Pair::new(&stack, false);
    for v in look_alikes() {
        let mut cmds = script("c:", &v);
        cmds.retain(|c| !matches!(&c[0][..], b"HGETALL" | b"HVALS"));
        pair.same(&[b"MULTI"]);
        for cmd in &cmds {
            pair.same(&refs(cmd));
        }
        pair.same(&[b"EXEC"]);
        cleanup(&mut pair);
        let cmds: Vec<Vec<&[u8]>> = cmds.iter().map(|c| refs(c)).collect();
        pair.pipeline(&cmds);
        cleanup(&mut pair);
    }
}

#[test]
fn in_place_changes_that_make_look_alikes_round_trip() {
    // APPEND, SETRANGE, SETBIT and BITFIELD can make a value start like an envelope,
    // or change one that does: it must still read back as Redis has it.
    let stack = Stack::start_with(TOML);
    let mut pair = Pair::new(&stack, false);
    for p in ["z:", "c:"] {
        let k = |s: &str| format!("{p}{s}").into_bytes();
        let (a, r, b, w, n, h) = (k("a"), k("r"), k("b"), k("w"), k("n"), k("h"));
        let cmds: Vec<Vec<&[u8]>> = vec![
            vec![b"APPEND", &a, b"\xFE"],
            vec![b"GET", &a],
            vec![b"APPEND", &a, b"RSP\x01 and more"],
            vec![b"GET", &a],
            vec![b"STRLEN", &a],
            vec![b"APPEND", &a, b"!"],
            vec![b"GET", &a],
            vec![b"GETRANGE", &a, b"0", b"4"],
            vec![b"SETRANGE", &a, b"0", b"x"],
            vec![b"GET", &a],
            vec![b"SETRANGE", &a, b"0", b"\xFE"],
            vec![b"GET", &a],
            vec![b"SET", &r, b"?RSP\x01\x00 plain text here"],
            vec![b"SETRANGE", &r, b"0", b"\xFE"],
            vec![b"GET", &r],
            vec![b"MGET", &r, &a],
            vec![b"SETBIT", &b, b"0", b"1"],
            vec![b"SET", &w, b"\x7ERSP"],
            vec![b"SETBIT", &w, b"0", b"1"],
            vec![b"GET", &w],
            vec![b"SETBIT", &w, b"0", b"0"],
            vec![b"GET", &w],
            vec![b"BITFIELD", &w, b"SET", b"u8", b"0", b"254"],
            vec![b"GET", &w],
            vec![b"BITFIELD", &w, b"GET", b"u8", b"8"],
            vec![b"SET", &n, b"\xFERSP\x01"],
            vec![b"INCR", &n],
            vec![b"INCRBYFLOAT", &n, b"1"],
            vec![b"GET", &n],
            vec![b"HSET", &h, b"f", b"\xFERSP"],
            vec![b"HINCRBY", &h, b"f", b"1"],
            vec![b"HINCRBYFLOAT", &h, b"f", b"1"],
            vec![b"HGET", &h, b"f"],
            vec![b"EXPIRE", &a, b"1000"],
            vec![b"APPEND", &a, b"?"],
            vec![b"TTL", &a],
            vec![b"GET", &a],
        ];
        for cmd in &cmds {
            pair.same(cmd);
        }
        cleanup(&mut pair);
    }
}

fn bulk(v: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", v.len()).into_bytes();
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn in_place_changes_of_envelopes_are_refused() {
    let stack = Stack::start_with(TOML);
    let mut c = stack.client();
    let v = doc(3000);
    for prefix in ["z:", "f:", "c:"] {
        let key = format!("{prefix}doc");
        let hash = format!("{prefix}hash");
        let (k, h) = (key.as_bytes(), hash.as_bytes());
        c.call(&[&b"SET"[..], k, &v]);
        c.call(&[&b"HSET"[..], h, b"f", &v]);
        let namespace = match prefix {
            "z:" => "docs",
            "f:" => "fast",
            _ => "cached",
        };
        let refused: Vec<Vec<&[u8]>> = vec![
            vec![b"APPEND", k, b"x"],
            vec![b"SETRANGE", k, b"3", b"xy"],
            vec![b"SETBIT", k, b"7", b"1"],
            vec![b"BITFIELD", k, b"SET", b"u8", b"0", b"255"],
            vec![b"INCR", k],
            vec![b"INCRBY", k, b"2"],
            vec![b"DECR", k],
            vec![b"DECRBY", k, b"2"],
            vec![b"INCRBYFLOAT", k, b"1.5"],
            vec![b"HINCRBY", h, b"f", b"1"],
            vec![b"HINCRBYFLOAT", h, b"f", b"1.5"],
        ];
        for cmd in &refused {
            let reply = c.call(cmd);
            let name = String::from_utf8_lossy(cmd[0]).to_string();
            assert!(
                reply.starts_with(b"-ERR ")
                    && contains(&reply, name.as_bytes())
                    && contains(&reply, format!("namespace `{namespace}`").as_bytes()),
                "{name} {key}: {}",
                show(&reply)
            );
        }
        // Unchanged, and still readable.
        assert_eq!(c.call(&[&b"GET"[..], k]), bulk(&v));
        assert_eq!(c.call(&[&b"HGET"[..], h, b"f"]), bulk(&v));
        // Inside MULTI: that command's element is the error, the others run.
        c.assert_cmd("MULTI", b"+OK\r\n");
        c.call(&[&b"APPEND"[..], k, b"x"]);
        c.call(&[&b"GET"[..], k]);
        c.call(&[&b"INCR"[..], format!("{prefix}counter").as_bytes()]);
        let exec = support::resp::decode(&c.cmd("EXEC"));
        let parts = exec.children();
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[0], support::Frame::Line(b'-', e) if contains(e, b"APPEND")));
        assert_eq!(parts[1].text().unwrap(), &v[..]);
        assert_eq!(parts[2], support::Frame::Line(b':', b"1".to_vec()));
    }
}

/// Valkey 8.1's `SET key value IFEQ old` compares `old` with the stored bytes. Through
/// the proxy it must compare with the value as written, not its envelope: the reply and
/// the outcome are Valkey's for an uncompressed key, or the command is refused with a
/// clear error as in-place changes are; never a silent "not equal".
#[test]
fn set_ifeq_compares_with_the_value_as_written() {
    if support::skip_unless(ServerKind::Valkey, (8, 1), "SET … IFEQ") {
        return;
    }
    let stack = Stack::start_with(TOML);
    let mut p = Pair::new(&stack, false);
    let (old, new) = (doc(3000), doc(2000));
    for prefix in ["z:", "f:", "c:"] {
        let key = format!("{prefix}ifeq");
        let k = key.as_bytes();
        p.same(&[b"SET", k, &old]);
        p.same(&[b"GET", k]);
        let args: [&[u8]; 5] = [b"SET", k, &new, b"IFEQ", &old];
        let through = p.proxy.call(&args);
        if through.starts_with(b"-ERR ") {
            assert!(contains(&through, b"IFEQ"), "{key}: {}", show(&through));
            assert_eq!(p.proxy.call(&[&b"GET"[..], k]), bulk(&old), "{key}");
            continue;
        }
        assert_same(&args, &through, &p.direct.call(&args));
        p.same(&[b"GET", k]);
        // A comparison that fails changes nothing.
        p.same(&[b"SET", k, &old, b"IFEQ", &old]);
        p.same(&[b"GET", k]);
        p.same(&[b"SET", k, &old, b"IFEQ", &new, b"GET"]);
        p.same(&[b"GET", k]);
    }
}

#[test]
fn counters_and_short_values_behave_as_in_redis() {
    let stack = Stack::start_with(TOML);
    for resp3 in [false, true] {
        let mut pair = Pair::new(&stack, resp3);
        for p in ["z:", "c:"] {
            let k = |s: &str| format!("{p}{s}").into_bytes();
            let (n, big, s, b) = (k("n"), k("big"), k("s"), k("b"));
            let (h, hh, new, fresh) = (k("h"), k("hh"), k("new"), k("fresh"));
            let cmds: Vec<Vec<&[u8]>> = vec![
                vec![b"SET", &n, b"10"],
                vec![b"INCR", &n],
                vec![b"INCRBY", &n, b"5"],
                vec![b"DECR", &n],
                vec![b"DECRBY", &n, b"3"],
                vec![b"INCRBYFLOAT", &n, b"1.5"],
                vec![b"GET", &n],
                vec![b"INCR", &fresh],
                vec![b"SET", &big, b"9007199254740993"],
                vec![b"INCRBY", &big, b"2"],
                vec![b"INCR", &big],
                vec![b"INCRBY", &big, b"9223372036854775000"],
                vec![b"APPEND", &s, b"hello"],
                vec![b"APPEND", &s, b" world"],
                vec![b"SETRANGE", &s, b"2", b"XY"],
                vec![b"SETRANGE", &new, b"3", b"ab"],
                vec![b"GET", &new],
                vec![b"SETBIT", &b, b"7", b"1"],
                vec![
                    b"BITFIELD",
                    &b,
                    b"INCRBY",
                    b"u8",
                    b"0",
                    b"1",
                    b"GET",
                    b"u8",
                    b"0",
                ],
                vec![
                    b"BITFIELD",
                    &b,
                    b"OVERFLOW",
                    b"FAIL",
                    b"INCRBY",
                    b"u2",
                    b"0",
                    b"5",
                ],
                vec![b"HINCRBY", &h, b"f", b"2"],
                vec![b"HINCRBY", &h, b"", b"2"],
                vec![b"HINCRBYFLOAT", &h, b"g", b"1.5"],
                vec![b"HGETALL", &h],
                // Redis's own errors, unchanged.
                vec![b"INCR", &s],
                vec![b"INCRBYFLOAT", &s, b"1"],
                vec![b"HSET", &hh, b"x", b"y"],
                vec![b"APPEND", &hh, b"x"],
                vec![b"INCR", &hh],
                vec![b"SETBIT", &hh, b"1", b"1"],
                vec![b"HINCRBY", &s, b"f", b"1"],
                vec![b"HINCRBY", &h, b"g", b"1"],
                vec![b"SETRANGE", &s, b"-1", b"x"],
                vec![b"BITFIELD", &b, b"FOO"],
                vec![b"INCRBY", &n, b"x"],
                vec![b"GETRANGE", &s, b"a", b"1"],
                vec![b"GET", &s],
                vec![b"STRLEN", &hh],
                vec![b"GETRANGE", &hh, b"0", b"1"],
                vec![b"HSTRLEN", &s, b"f"],
            ];
            // Wrong numbers of arguments: Redis's errors (and EXECABORT in MULTI).
            let bad: Vec<Vec<&[u8]>> = vec![
                vec![b"APPEND", &s],
                vec![b"INCR"],
                vec![b"GETRANGE", &s, b"1"],
                vec![b"STRLEN", &s, &s],
                vec![b"HINCRBY", &h, b"f"],
            ];
            for cmd in cmds.iter().chain(&bad) {
                pair.same(cmd);
            }
            cleanup(&mut pair);
            pair.same(&[b"MULTI"]);
            for cmd in &cmds {
                pair.same(cmd);
            }
            pair.same(&[b"EXEC"]);
            pair.same(&[b"MULTI"]);
            for cmd in bad.iter().chain(&cmds[..3]) {
                pair.same(cmd);
            }
            pair.same(&[b"EXEC"]);
            pair.same(&[b"DISCARD"]);
            cleanup(&mut pair);
        }
    }
}

#[test]
fn l1_holds_restored_values() {
    let stack = Stack::start_with(TOML);
    let mut c = stack.client();
    // L1 fills only once tracking is up.
    wait_tracking(&mut c, "up", std::time::Duration::from_secs(5));
    let v = doc(8000);
    c.call(&[&b"SET"[..], b"c:k", &v]);
    c.call(&[&b"HSET"[..], b"c:h", b"f", &v]);
    let hits = stat_int(&mut c, "l1_hits");
    for _ in 0..3 {
        assert_eq!(c.call(&[&b"GET"[..], b"c:k"]), bulk(&v));
        assert_eq!(c.call(&[&b"HGET"[..], b"c:h", b"f"]), bulk(&v));
        assert_eq!(c.call(&[&b"STRLEN"[..], b"c:k"]), b":8000\r\n");
        assert_eq!(
            c.call(&[&b"GETRANGE"[..], b"c:k", b"-3", b"-1"]),
            bulk(&v[7997..])
        );
        let mget = c.call(&[&b"MGET"[..], b"c:k", b"z:none", b"c:k"]);
        let mut want = b"*3\r\n".to_vec();
        want.extend(bulk(&v));
        want.extend_from_slice(b"$-1\r\n");
        want.extend(bulk(&v));
        assert_eq!(mget, want);
    }
    assert!(stat_int(&mut c, "l1_hits") >= hits + 10);
    // A write through the proxy is seen at once, restored.
    let v2 = doc(9000);
    c.call(&[&b"SET"[..], b"c:k", &v2]);
    assert_eq!(c.call(&[&b"GET"[..], b"c:k"]), bulk(&v2));
    assert_eq!(c.call(&[&b"STRLEN"[..], b"c:k"]), b":9000\r\n");
}

/// Text that compresses like real JSON (words from a small vocabulary, numbers) but
/// takes zstd's slow levels a while: `n` bytes.
fn varied_doc(n: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
        "lambda", "mu",
    ];
    let noise = pseudo_random_bytes(n / 4 + 16, 11);
    let mut s = Vec::with_capacity(n + 64);
    let mut i = 0;
    while s.len() < n {
        let (a, b) = (noise[i % noise.len()], noise[(i + 1) % noise.len()]);
        s.extend_from_slice(
            format!(
                r#"{{"id":{i},"name":"{}{}","score":{}.{},"text":"{} {} {}"}},"#,
                WORDS[a as usize % 12],
                u16::from_le_bytes([a, b]),
                b,
                a,
                WORDS[b as usize % 12],
                WORDS[(a ^ b) as usize % 12],
                WORDS[(a / 3) as usize % 12],
            )
            .as_bytes(),
        );
        i += 2;
    }
    s.truncate(n);
    s
}

#[test]
fn slow_compression_does_not_hold_up_other_clients() {
    // One event loop, and a namespace compressing at zstd's slowest level: 3 MB take
    // seconds to pack. Meanwhile another client of the same loop is answered at once.
    let stack = Stack::start_with(
        r#"
[server]
threads = 1

[[namespace]]
name = "archive"
match = "s:*"
compress = "zstd"
compress_level = 19
compress_min_size = 100
"#,
    );
    let value = varied_doc(3 << 20);
    let mut writer = stack.client();
    // Seconds on an idle machine; more than the default 10 s read timeout on a busy one.
    writer.set_read_timeout(std::time::Duration::from_secs(60));
    let started = std::time::Instant::now();
    let expected = value.clone();
    let write = std::thread::spawn(move || {
        writer.send(&[&b"SET"[..], b"s:big", &value]);
        let reply = writer.read_reply();
        (reply, writer)
    });
    let mut pinger = stack.client();
    pinger.set_read_timeout(std::time::Duration::from_secs(30));
    let mut slowest = std::time::Duration::ZERO;
    let mut pings = 0;
    while !write.is_finished() {
        let t = std::time::Instant::now();
        pinger.assert_cmd("PING", b"+PONG\r\n");
        slowest = slowest.max(t.elapsed());
        pings += 1;
    }
    let took = started.elapsed();
    let (reply, mut writer) = write.join().unwrap();
    assert_eq!(reply, b"+OK\r\n");
    assert!(
        took >= std::time::Duration::from_millis(900),
        "the SET took only {took:?}: too fast to show anything, make the value bigger"
    );
    assert!(
        slowest < took / 3,
        "a PING waited {slowest:?} while a SET was compressed for {took:?} ({pings} PINGs)"
    );
    // And the value is stored compressed, and reads back whole.
    let stored = stack.direct().call(&["STRLEN", "s:big"]);
    let stored: usize = String::from_utf8_lossy(&stored[1..stored.len() - 2])
        .parse()
        .unwrap();
    assert!(stored < expected.len() / 3, "stored {stored} bytes");
    assert_eq!(writer.call(&["GET", "s:big"]), bulk(&expected));
}
