//! What must hold for any input to the parts that read bytes nobody vouches for:
//! client requests, upstream replies, stored values, the configuration file and
//! glob patterns. Each function takes arbitrary bytes and panics when a property
//! breaks. The cargo-fuzz targets (`fuzz/fuzz_targets/`, built with `--cfg fuzzing`)
//! are one call each; the proptests (`props/tests.rs`) run the same checks on every
//! `cargo test`, briefly, so a regression shows without nightly. A failing input
//! found by fuzzing becomes a unit test in `props/tests.rs`.
//!
//! Inputs start with a byte or two that pick how the rest is used (read sizes,
//! limits, codec, where a pattern ends), so that the fuzzer can steer.

use bytes::{Bytes, BytesMut};

use crate::{
    compress::{self, Opener, PREFIX, Restore},
    config::Config,
    policy::{
        Compress, Policy,
        glob::{Glob, reference::stringmatchlen, stringmatch},
    },
    protocol::{
        reply::{ReplyScanner, bulk},
        request::{Limits, Request, RequestParser},
    },
};

/// The longest original an envelope may claim in these checks: a decoder that
/// allocated what a header claims past it would exceed the fuzzer's memory limit.
pub const ENVELOPE_MAX_LEN: usize = 1 << 20;

/// The first byte of `data` (0 when empty) and the rest.
fn split_first(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest),
        None => (0, data),
    }
}

/// Requests parsed from `input` fed `chunk` bytes at a time, and whether parsing
/// ended in a protocol error.
pub(crate) fn parse_requests(input: &[u8], chunk: usize, limits: Limits) -> (Vec<Request>, bool) {
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match parser.next(&mut buf) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// The request parser (RESP arrays and inline commands): never panics, reads the
/// same requests however the bytes are split into reads, and every request it
/// returns is one command whose `raw` bytes (what goes upstream) parse back to the
/// same arguments.
pub fn request_parser(data: &[u8]) {
    let (control, input) = split_first(data);
    let chunk = usize::from(control & 0x3F) + 1;
    let limits = if control & 0x40 == 0 {
        Limits::default()
    } else {
        Limits {
            max_bulk_len: 16,
            max_args: 4,
            max_inline_len: 32,
        }
    };
    let (whole, whole_failed) = parse_requests(input, input.len(), limits);
    let (chunked, chunked_failed) = parse_requests(input, chunk, limits);
    assert_eq!(
        whole, chunked,
        "requests depend on how reads split the bytes"
    );
    assert_eq!(whole_failed, chunked_failed, "errors depend on read sizes");
    for req in &whole {
        assert!(!req.args.is_empty(), "a request without a name");
        assert!(req.args.len() <= limits.max_args);
        // Inline arguments are not bulk strings: re-read with Redis's limits.
        let (again, failed) = parse_requests(&req.raw, req.raw.len(), Limits::default());
        assert!(
            !failed,
            "raw bytes of a request do not parse: {:?}",
            req.raw
        );
        assert_eq!(
            again.len(),
            1,
            "raw bytes of a request hold {}",
            again.len()
        );
        assert_eq!(
            again[0].args, req.args,
            "raw bytes parse to other arguments"
        );
    }
}

/// Frame lengths found by scanning `input` fed `chunk` bytes at a time (the scanner
/// resumes where it stopped), and whether scanning ended in an error.
fn scan_replies(input: &[u8], chunk: usize) -> (Vec<usize>, bool) {
    let mut scanner = ReplyScanner::default();
    let (mut start, mut end) = (0, 0);
    let mut lens = Vec::new();
    while end < input.len() {
        end = (end + chunk.max(1)).min(input.len());
        loop {
            match scanner.scan(&input[start..end]) {
                Ok(Some(len)) => {
                    assert!(len > 0 && start + len <= end, "frame of {len} bytes");
                    lens.push(len);
                    start += len;
                }
                Ok(None) => break,
                Err(_) => return (lens, true),
            }
        }
    }
    (lens, false)
}

/// The reply scanner: never panics, finds the same frames however the bytes
/// arrive, and agrees with redis-protocol's decoders on every frame they accept that
/// Redis may send (not attributes, which redis-protocol attaches to the next frame,
/// nor streamed strings and aggregates or HELLO, which Redis never sends).
pub fn reply_scanner(data: &[u8]) {
    let (control, input) = split_first(data);
    let chunk = usize::from(control) + 1;
    let whole = scan_replies(input, input.len());
    assert_eq!(
        whole,
        scan_replies(input, chunk),
        "frames depend on read sizes"
    );
    if input.contains(&b'|') || !plain_lengths(input) {
        return;
    }
    let decoded = match redis_protocol::resp3::decode::complete::decode_range(input) {
        Ok(Some((frame, len))) => {
            (sent_by_redis(&frame) && read_as_sent(input, len)).then_some(len)
        }
        _ => match redis_protocol::resp2::decode::decode_range(input) {
            Ok(Some((_, len))) => Some(len),
            _ => None,
        },
    };
    if let Some(len) = decoded {
        let first = ReplyScanner::default().scan(input);
        assert_eq!(
            first,
            Ok(Some(len)),
            "redis-protocol decodes a {len}-byte frame"
        );
    }
}

/// Whether redis-protocol reads the frame of `len` bytes at the front of `input` as
/// what it says: its maps and sets are hash tables, so a repeated key or member
/// collapses and the decoder reads past the count the header gave (Redis never
/// repeats one). Such a frame re-encodes shorter than it was.
fn read_as_sent(input: &[u8], len: usize) -> bool {
    use redis_protocol::resp3::types::Resp3Frame;
    matches!(
        redis_protocol::resp3::decode::complete::decode(input),
        Ok(Some((frame, n))) if n == len && Resp3Frame::encode_len(&frame, false) == len
    )
}

/// Whether `frame` is one Redis may send: no streamed parts, no HELLO.
fn sent_by_redis(frame: &redis_protocol::resp3::types::RangeFrame) -> bool {
    use redis_protocol::resp3::types::RangeFrame as F;
    match frame {
        F::Hello { .. } | F::ChunkedString(_) => false,
        F::Array { data, .. } | F::Push { data, .. } => data.iter().all(sent_by_redis),
        F::Set { data, .. } => data.iter().all(sent_by_redis),
        F::Map { data, .. } => data
            .iter()
            .all(|(k, v)| sent_by_redis(k) && sent_by_redis(v)),
        _ => true,
    }
}

/// Whether every number that follows a length or count type byte anywhere in
/// `input` (frames are not always at line starts: the scanner and redis-protocol
/// both skip a bulk string's last two bytes unread) is one as Redis writes it (`-1`,
/// `0`, or up to 18 digits without a leading zero) and no larger than the input.
/// Redis writes no other; redis-protocol also reads `+1`, `007` or 30 digits, which
/// the scanner refuses, and may allocate what a count claims before finding the
/// frame incomplete.
fn plain_lengths(input: &[u8]) -> bool {
    input.iter().enumerate().all(|(i, &kind)| {
        if !b"*$%~>!=".contains(&kind) {
            return true;
        }
        let rest = &input[i + 1..];
        let n = rest
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'-' || **b == b'+')
            .count();
        let digits = &rest[..n];
        let plain = match digits {
            b"" | b"-1" | b"0" => true,
            [b'1'..=b'9', more @ ..] => more.len() < 18 && more.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        plain
            && std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<i64>().ok())
                .is_none_or(|n| n <= input.len() as i64)
    })
}

/// The envelope decoder. Mode 0: the input as a stored value; mode 1: the same with
/// a consistent envelope header written over its first 16 bytes (codec and claimed
/// length from the input), so the payload checks are reached; mode 2: values packed
/// (compressed, or wrapped when they look like envelopes) and opened again.
///
/// Opening never panics, never returns more than [`ENVELOPE_MAX_LEN`] bytes (nor
/// allocates more, which the fuzzer's memory limit checks), refuses exactly the
/// values that start with the magic and are not envelopes, and every read shape
/// either restores or answers the decoding error. What is packed opens to the
/// value.
pub fn envelope(data: &[u8]) {
    let (mode, rest) = split_first(data);
    match mode % 3 {
        0 => open_stored(rest),
        1 => {
            let mut stored = rest.to_vec();
            if stored.len() >= compress::HEADER_LEN {
                stored[..5].copy_from_slice(compress::MAGIC);
                stored[5] %= 3;
                stored[6..10].fill(0);
                let (s1, s2) = compress::fletcher16(&stored[..14]);
                stored[14] = s1;
                stored[15] = s2;
            }
            open_stored(&stored);
        }
        _ => {
            let (choice, value) = split_first(rest);
            let codec = [Compress::Zstd, Compress::Lz4, Compress::None][usize::from(choice % 3)];
            let level = i32::from(choice / 3 % 3) + 1;
            let packed = compress::pack(value, codec, level);
            let stored = packed.as_deref().unwrap_or(value);
            assert!(
                packed.is_some() || !value.starts_with(PREFIX),
                "a value that looks like an envelope is stored as sent"
            );
            let opened = compress::open(stored, usize::MAX).expect("packed values open");
            assert_eq!(opened.as_deref().unwrap_or(stored), value, "round trip");
        }
    }
}

fn open_stored(stored: &[u8]) {
    let opened = compress::open(stored, ENVELOPE_MAX_LEN);
    match &opened {
        Ok(Some(value)) => assert!(value.len() <= ENVELOPE_MAX_LEN),
        Ok(None) => assert!(!stored.starts_with(PREFIX)),
        Err(_) => assert!(stored.starts_with(PREFIX)),
    }
    let opener = Opener::new(ENVELOPE_MAX_LEN, Default::default());
    let frame = bulk(stored);
    let reply = Restore::Value.apply(frame.clone(), &opener);
    match &opened {
        Ok(Some(value)) => assert_eq!(reply, bulk(value)),
        Ok(None) => assert_eq!(reply, frame),
        Err(_) => assert!(reply.starts_with(b"-ERR respite: stored value could not be decoded")),
    }
    let len = Restore::Len.apply(frame.clone(), &opener);
    if let Ok(Some(value)) = &opened {
        assert_eq!(len, Bytes::from(format!(":{}\r\n", value.len())));
    }
    let _ = Restore::Range(-5, 3).apply(frame.clone(), &opener);
    let mut array = b"*2\r\n".to_vec();
    array.extend_from_slice(&frame);
    array.extend_from_slice(&frame);
    let _ = Restore::Pairs.apply(Bytes::from(array), &opener);
}

/// The configuration loader: `Config::parse` and `validate` never panic on any
/// text, and rules that compile (`respite check` and `explain` count on it) can
/// describe themselves and look keys up.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text) else {
        return;
    };
    if config.validate(text).is_err() {
        return;
    }
    let Ok(policy) = Policy::from_config(&config) else {
        return; // a rule error, reported with its line
    };
    for rule in policy.rules() {
        let _ = rule.describe();
        let _ = policy.explain(rule.pattern.as_bytes());
    }
    for key in [&b""[..], b"a", b"user:1:bookmarks", b"\xFF*?[x]"] {
        let _ = policy.lookup(key);
        let _ = policy.explain(key);
    }
    let _ = policy.tracking_prefixes();
    let _ = config.server.event_loops();
}

/// The glob matchers against Redis's own algorithm ([`stringmatchlen`], ported from
/// `util.c`): [`stringmatch`] in both case modes, [`Glob::redis`] as `KEYS` lists
/// (the pattern `*` lists the empty key too), [`Glob::new`] whenever it accepts the
/// pattern, and the literal prefix and suffix every matching key must carry.
/// The first byte: bit 0 is `nocase`, the rest where the pattern ends.
pub fn glob(data: &[u8]) {
    let (control, rest) = split_first(data);
    let nocase = control & 1 == 1;
    let at = usize::from(control >> 1).min(rest.len());
    let (pattern, key) = rest.split_at(at);
    // The reference recurses once per `*`: keep its inputs modest.
    let key = &key[..key.len().min(256)];
    let expected = stringmatchlen(pattern, key, nocase);
    assert_eq!(stringmatch(pattern, key, nocase), expected, "stringmatch");
    if nocase {
        return;
    }
    let keys = pattern == b"*" || expected;
    let lenient = Glob::redis(pattern);
    assert_eq!(lenient.matches(key), keys, "Glob::redis");
    if let Ok(strict) = Glob::new(pattern) {
        assert_eq!(strict.matches(key), keys, "Glob::new");
    }
    if keys && !key.is_empty() {
        assert!(key.starts_with(lenient.literal_prefix()), "prefix");
        assert!(key.ends_with(lenient.literal_suffix()), "suffix");
    }
    if lenient.is_literal() {
        assert_eq!(
            lenient.matches(key),
            key == lenient.literal_prefix(),
            "literal"
        );
    }
    if lenient.is_prefix() {
        let prefix = lenient.literal_prefix();
        let listed = key.starts_with(prefix) && (!key.is_empty() || pattern == b"*");
        assert_eq!(lenient.matches(key), listed, "prefix pattern");
    }
}

#[cfg(test)]
mod tests;
