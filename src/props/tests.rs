//! The properties of `props.rs` on every `cargo test`: random bytes, and inputs built
//! near the valid ones (encoded commands, reply frames, envelopes, configurations,
//! globs) and then damaged as a fuzzer would. A few seconds in all; `scripts/fuzz`
//! runs the same checks for millions of inputs. Inputs the fuzzer found failing are
//! kept as regression tests at the end.

use proptest::prelude::*;

use super::*;
use crate::protocol::request::encode_command;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// `base` with up to four edits: a byte replaced, inserted or removed, or the rest
/// cut off.
fn damaged(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0..4u8);
    (base, prop::collection::vec(edit, 0..4)).prop_map(|(mut b, edits)| {
        for (at, byte, op) in edits {
            if b.is_empty() {
                b.push(byte);
                continue;
            }
            let at = at.index(b.len());
            match op {
                0 => b[at] = byte,
                1 => b.insert(at, byte),
                2 => {
                    b.remove(at);
                }
                _ => b.truncate(at),
            }
        }
        b
    })
}

/// `control` followed by `rest`, as the checks take their input.
fn steered(control: u8, rest: Vec<u8>) -> Vec<u8> {
    let mut out = vec![control];
    out.extend(rest);
    out
}

/// Commands as clients send them: RESP arrays, or inline lines with quotes and
/// escapes.
fn commands() -> impl Strategy<Value = Vec<u8>> {
    let arg = prop::collection::vec(prop::sample::select(&b"ab \"'\\x0\r\n*$"[..]), 0..12);
    let command = (prop::collection::vec(arg, 0..5), any::<bool>()).prop_map(|(args, inline)| {
        if inline {
            let mut line = args.join(&b' ');
            line.extend_from_slice(b"\r\n");
            line
        } else {
            let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
            encode_command(&args).to_vec()
        }
    });
    prop::collection::vec(command, 1..5).prop_map(|c| c.concat())
}

/// RESP2 and RESP3 reply frames, nested.
fn frames() -> impl Strategy<Value = Vec<u8>> {
    let line = |t: u8| {
        "[a-zA-Z0-9 .:-]{0,8}".prop_map(move |s| [&[t][..], s.as_bytes(), b"\r\n"].concat())
    };
    let leaf = prop_oneof![
        line(b'+'),
        line(b'-'),
        any::<i64>().prop_map(|n| format!(":{n}\r\n").into_bytes()),
        bytes(12).prop_map(|b| bulk(&b).to_vec()),
        Just(b"$-1\r\n".to_vec()),
        Just(b"*-1\r\n".to_vec()),
        Just(b"_\r\n".to_vec()),
        Just(b",3.25\r\n".to_vec()),
        Just(b"#f\r\n".to_vec()),
        Just(b"(123456789012345678901\r\n".to_vec()),
        Just(b"!3\r\nerr\r\n".to_vec()),
        Just(b"=7\r\ntxt:abc\r\n".to_vec()),
    ];
    let agg = |t: u8, items: Vec<Vec<u8>>, n: usize| {
        [
            format!("{}{n}\r\n", char::from(t)).into_bytes(),
            items.concat(),
        ]
        .concat()
    };
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            (
                prop::sample::select(&b"*~>"[..]),
                prop::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(move |(t, v)| {
                    let n = v.len();
                    agg(t, v, n)
                }),
            prop::collection::vec((inner.clone(), inner), 0..3).prop_map(move |pairs| {
                let n = pairs.len();
                agg(
                    b'%',
                    pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                    n,
                )
            }),
        ]
    })
}

/// Values as clients store them: text, runs, bytes, and some that start like an
/// envelope.
fn values() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(300),
        ("[a-z{}\":,]{0,40}", 1..200usize).prop_map(|(s, n)| s.repeat(n).into_bytes()),
        bytes(40).prop_map(|b| [&PREFIX[..], &b].concat()),
        bytes(40).prop_map(|b| [&compress::MAGIC[..], &b].concat()),
    ]
}

/// Stored values: envelopes of [`values`] by each codec, damaged.
fn stored() -> impl Strategy<Value = Vec<u8>> {
    let packed = (values(), 0..3usize).prop_map(|(v, c)| {
        let codec = [Compress::Zstd, Compress::Lz4, Compress::None][c];
        compress::pack(&v, codec, 1).unwrap_or(v)
    });
    damaged(packed)
}

/// Configurations near valid ones: every namespace key, with values good and bad.
fn configs() -> impl Strategy<Value = String> {
    let duration = prop::sample::select(vec![
        "",
        "0s",
        "1ms",
        "999us",
        "30s",
        "10m",
        "7d",
        "-1s",
        "5",
        "1h 2m",
        "99999999999d",
    ]);
    let size = prop::sample::select(vec![
        "",
        "0",
        "1",
        "1KiB",
        "512MiB",
        "3 GB",
        "abc",
        "-5",
        "18446744073709551615",
    ]);
    let option = |key: &'static str, v: &str, quoted: bool| match (v, quoted) {
        ("", _) => String::new(),
        (v, true) => format!("{key} = \"{v}\"\n"),
        (v, false) => format!("{key} = {v}\n"),
    };
    let namespace = (
        "[a-z]{0,3}",
        "[a-z:*?\\[\\]^\\\\-]{0,8}",
        (
            duration.clone(),
            duration.clone(),
            duration.clone(),
            duration,
        ),
        (
            size,
            prop::sample::select(vec!["", "zstd", "lz4", "none", "gzip"]),
        ),
        (-2..22i32, any::<(bool, bool, bool)>()),
    )
        .prop_map(
            move |(
                name,
                pattern,
                (ttl, max, l1_ttl, stale),
                (min, codec),
                (level, (l1, lease, warm)),
            )| {
                let mut out = format!("[[namespace]]\nname = \"{name}\"\nmatch = '{pattern}'\n");
                out += &option("ttl", ttl, true);
                out += &option("max_ttl", max, true);
                out += &option("l1_ttl", l1_ttl, true);
                out += &option("stale_if_error", stale, true);
                out += &option("compress_min_size", min, true);
                out += &option("compress", codec, true);
                if codec == "zstd" {
                    out += &option("compress_level", &level.to_string(), false);
                }
                out += &format!("l1 = {l1}\nlease = {lease}\nwarm = {warm}\n");
                out
            },
        );
    let server = prop::sample::select(vec![
        "",
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_bulk_len = \"1KiB\"\n",
        "[server]\nthreads = 300\n",
        "[upstream]\nurl = \"redis://u:p@h:1/3\"\npool_size = 0\n",
        "[upstream]\nurl = \"rediss://[::1]:6379\"\n",
        "[admin]\npassword = \"\"\n",
        "[metrics]\nlisten = \"nope\"\n",
    ]);
    (server, prop::collection::vec(namespace, 0..4))
        .prop_map(|(server, namespaces)| format!("{server}{}", namespaces.concat()))
}

/// Globs: patterns and keys over the bytes that reach every branch.
fn globs() -> impl Strategy<Value = Vec<u8>> {
    const ALPHABET: &[u8] = b"abAB?*[]^-\\Z_\xe9";
    let over = |n| prop::collection::vec(prop::sample::select(ALPHABET), 0..n);
    (over(12), over(10), any::<bool>()).prop_map(|(pattern, key, nocase)| {
        let control = (pattern.len() as u8) << 1 | u8::from(nocase);
        [vec![control], pattern, key].concat()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn request_parser_any_bytes(data in bytes(300)) {
        request_parser(&data);
    }

    #[test]
    fn request_parser_commands(control in any::<u8>(), wire in damaged(commands())) {
        request_parser(&steered(control, wire));
    }

    #[test]
    fn reply_scanner_any_bytes(data in bytes(300)) {
        reply_scanner(&data);
    }

    #[test]
    fn reply_scanner_frames(control in any::<u8>(), wire in damaged(prop::collection::vec(frames(), 1..4).prop_map(|f| f.concat()))) {
        reply_scanner(&steered(control, wire));
    }

    #[test]
    fn envelope_any_bytes(mode in 0..2u8, data in bytes(300)) {
        envelope(&steered(mode, data));
    }

    #[test]
    fn envelope_damaged(mode in 0..2u8, data in stored()) {
        envelope(&steered(mode, data));
    }

    #[test]
    fn envelope_round_trip(choice in any::<u8>(), value in values()) {
        envelope(&steered(2, steered(choice, value)));
    }

    #[test]
    fn config_near_valid(text in configs()) {
        config(text.as_bytes());
    }

    #[test]
    fn config_damaged(text in damaged(Just(include_bytes!("../../proxy.toml").to_vec()))) {
        config(&text);
    }

    #[test]
    fn glob_against_redis(data in globs()) {
        glob(&data);
    }

    #[test]
    fn glob_any_bytes(data in bytes(64)) {
        glob(&data);
    }
}

/// Inputs `scripts/fuzz` found, kept so that they run on every `cargo test`.
#[test]
fn fuzz_findings() {
    // reply_scanner: redis-protocol decodes RESP3's end-of-stream marker `.`, which
    // Redis never sends (a false alarm of the differential check, now excluded).
    reply_scanner(b"\x07.\0\0\0\0TTTTTTTTTTTTTTTTT\r\n");
    // reply_scanner: a count written `+1`, which redis-protocol reads and the scanner
    // refuses (Redis never writes one: excluded too).
    reply_scanner(b"\x07%2\r\n+a\r\n:1\r\n+b\r\n*+1\r\n:0\r\n");
    // reply_scanner: the same `+1` after a bulk string whose CRLF is two other bytes
    // (both skip them unread).
    reply_scanner(b"\x07*3\r\n$1\r\na\xa0\n$1\r\na\xa0\x08*+1\r\n:1\r\n");
    // reply_scanner: likewise a count of 36 digits with leading zeros.
    reply_scanner(b"\x07*000000000000000000000000000000000001\r\n$3\r\nfoo\r\n\x02");
    // reply_scanner: a map repeating a key (`:1` twice), which redis-protocol's hash
    // map collapses, so it reads the frame as other than it is (here it takes `.`
    // for the pair's end). Redis never repeats one: frames that re-encode to another
    // length are excluded. (The fuzzer's 395-byte input, minimised.)
    reply_scanner(b"\x07%3\r\n+\r\n-\r\n:1\r\n-\r\n:1\r\n.\r\n");
    // request_parser: a line arriving one byte per read was rescanned on every read
    // (see `lines_arriving_in_small_reads_are_scanned_once` in protocol/request.rs).
    request_parser(&[&[0x00][..], &[b'a'; 3000][..], b"\r\n"].concat());
}

#[test]
fn hostile_envelopes() {
    // The 16-byte header claiming 4 GiB of issue 12 (item 5), in every mode.
    let mut header = compress::MAGIC.to_vec();
    header.extend_from_slice(&[1, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    let (s1, s2) = crate::compress::fletcher16(&header);
    header.extend_from_slice(&[s1, s2]);
    for mode in 0..2 {
        envelope(&steered(mode, header.clone()));
    }
    assert!(compress::open(&header, usize::MAX).is_err());
}

#[test]
fn the_sample_configurations_load() {
    for text in [
        include_str!("../../proxy.toml"),
        include_str!("../../deploy/docker/proxy.toml"),
    ] {
        let config = Config::parse(text).unwrap();
        config.validate(text).unwrap();
        super::config(text.as_bytes());
    }
}
