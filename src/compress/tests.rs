use bytes::Bytes;

use super::envelope::{fletcher16, write_header};
use super::*;

fn json(n: usize) -> Vec<u8> {
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            r#"{{"id":{i},"name":"item {i}","tags":["a","b"],"active":true}},"#
        ));
        i += 1;
    }
    s.into_bytes()
}

#[test]
fn round_trip_both_codecs() {
    for codec in [Compress::Zstd, Compress::Lz4] {
        for n in [300, 1024, 70_000, 3_000_000] {
            let v = json(n);
            let packed = pack(&v, codec, 3).expect("json shrinks");
            assert!(packed.len() < v.len());
            let h = header(&packed).unwrap().unwrap();
            let want = if codec == Compress::Zstd {
                Codec::Zstd
            } else {
                Codec::Lz4
            };
            assert_eq!((h.codec, h.dict_id, h.original_len), (want, 0, v.len()));
            assert_eq!(opened(&packed), v);
        }
    }
}

#[test]
fn short_incompressible_and_none_stay_raw() {
    assert_eq!(pack(b"12345", Compress::Zstd, 3), None);
    assert_eq!(pack(&[b'a'; 31], Compress::Zstd, 3), None);
    let mut x = 88_172_645_463_325_252u64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    assert_eq!(pack(&noise, Compress::Zstd, 3), None);
    assert_eq!(pack(&json(2000), Compress::None, 3), None);
}

/// The value inside `stored`, which must be an envelope.
fn opened(stored: &[u8]) -> Vec<u8> {
    open(stored, DEFAULT_MAX_LEN).unwrap().expect("an envelope")
}

/// Why `stored` cannot be opened.
fn refused(stored: &[u8]) -> OpenError {
    open(stored, DEFAULT_MAX_LEN).expect_err("refused")
}

/// `stored` with a header check that matches its bytes 0..14 again.
fn recheck(mut stored: Vec<u8>) -> Vec<u8> {
    let (s1, s2) = fletcher16(&stored[..14]);
    stored[14] = s1;
    stored[15] = s2;
    stored
}

#[test]
fn look_alikes_are_refused() {
    let v = json(5000);
    let packed = pack(&v, Compress::Zstd, 3).unwrap();
    // Each header byte changed: the header check, or the codec framing, catches it.
    for i in 0..HEADER_LEN {
        let mut bad = packed.clone();
        bad[i] ^= 0x40;
        match open(&bad, DEFAULT_MAX_LEN) {
            Ok(None) => assert!(i < 4, "byte {i}: magic changed, so not an envelope"),
            Ok(Some(_)) => panic!("byte {i}: opened"),
            Err(_) => {}
        }
    }
    // Payload damaged, cut short, or followed by more.
    let mut bad = packed.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert!(matches!(refused(&bad), OpenError::Corrupt { .. }));
    assert!(matches!(
        refused(&packed[..packed.len() - 1]),
        OpenError::Frame { .. }
    ));
    let longer = [&packed[..], b"x"].concat();
    assert!(matches!(refused(&longer), OpenError::Frame { .. }));
    // Just the magic, or the magic and text.
    assert_eq!(refused(b"\xFERSP"), OpenError::Truncated(4));
    assert_eq!(refused(b"\xFERSP\x01 and then some text"), OpenError::Check);
    // Not envelopes at all.
    for other in [&b"\x78\x9c\x01\x02"[..], b"", b"\xFERS", b"plain"] {
        assert_eq!(open(other, DEFAULT_MAX_LEN), Ok(None));
    }
    // Consistent headers this proxy cannot read: a dictionary, a newer version, an
    // unknown codec.
    let mut dict = packed.clone();
    dict[6] = 7;
    let dict = recheck(dict);
    assert_eq!(header(&dict).unwrap().unwrap().dict_id, 7);
    assert_eq!(refused(&dict), OpenError::Dictionary(7));
    let mut version = packed.clone();
    version[4] = 2;
    assert_eq!(refused(&recheck(version)), OpenError::Version(2));
    let mut codec = packed.clone();
    codec[5] = 9;
    assert_eq!(refused(&recheck(codec)), OpenError::Codec(9));
    for e in [
        OpenError::Version(2),
        OpenError::Codec(9),
        OpenError::Dictionary(7),
    ] {
        assert_eq!(e.failure(), Failure::Unsupported);
    }
}

#[test]
fn lengths_that_lie_are_refused() {
    let v = json(5000);
    for codec in [Compress::Zstd, Compress::Lz4] {
        for delta in [1i64, -1, 1 << 20] {
            let mut packed = pack(&v, codec, 3).unwrap();
            let claimed = (v.len() as i64 + delta) as u32;
            packed[10..14].copy_from_slice(&claimed.to_le_bytes());
            let e = refused(&recheck(packed));
            assert!(
                matches!(e, OpenError::Frame { .. }),
                "{codec:?} {delta}: {e}"
            );
            assert_eq!(e.failure(), Failure::Corrupt);
        }
    }
}

/// A header of `codec` claiming `len` bytes, over `payload`.
fn forged(codec: Codec, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    write_header(&mut out, codec, len);
    out.extend_from_slice(payload);
    out
}

#[test]
fn hostile_lengths_are_refused_before_allocating() {
    // The 16-byte value of the report: every GET allocated and zeroed 4 GiB.
    let bare = forged(Codec::Zstd, u32::MAX, b"");
    assert_eq!(bare.len(), 16);
    let e = refused(&bare);
    assert_eq!(
        e,
        OpenError::TooLarge {
            len: u32::MAX as usize,
            max: DEFAULT_MAX_LEN
        }
    );
    assert_eq!(e.failure(), Failure::TooLarge);
    // Under the cap, a short zstd frame stating 500 MB whose one block makes 1,000.
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0xA0];
    frame.extend_from_slice(&500_000_000u32.to_le_bytes());
    frame.extend_from_slice(&[0x43, 0x1F, 0x00, b'x']);
    let e = refused(&forged(Codec::Zstd, 500_000_000, &frame));
    assert!(e.to_string().contains("blocks hold at most 1000"), "{e}");
    // An lz4 block whose sequences make 546 bytes, claimed as 400 MB.
    let lz4 = [0x1F, b'a', 0x01, 0x00, 0xFF, 0xFF, 0x10, 0x00];
    let e = refused(&forged(Codec::Lz4, 400_000_000, &lz4));
    assert!(e.to_string().contains("make 546 bytes"), "{e}");
    // A raw envelope is exactly as long as it says.
    assert!(matches!(
        refused(&forged(Codec::Raw, 10, b"abc")),
        OpenError::WrongLength { want: 10, got: 3 }
    ));
    // The limit is the caller's (server.max_bulk_len).
    let v = json(5000);
    let packed = pack(&v, Compress::Lz4, 1).unwrap();
    let max = v.len() - 1;
    assert!(matches!(
        open(&packed, max),
        Err(OpenError::TooLarge { .. })
    ));
    assert_eq!(open(&packed, v.len()).unwrap().unwrap(), v);
}

#[test]
fn values_that_look_like_envelopes_are_wrapped() {
    let v = json(5000);
    let packed = pack(&v, Compress::Zstd, 1).unwrap();
    let look_alikes: Vec<Vec<u8>> = vec![
        PREFIX.to_vec(),
        MAGIC.to_vec(),
        b"\xFERSP\x01 and then some text".to_vec(),
        forged(Codec::Zstd, u32::MAX, b""),
        forged(Codec::Raw, 3, b"abc"),
        packed.clone(),
        [&packed[..], &json(40_000)[..]].concat(),
    ];
    for value in &look_alikes {
        for codec in [Compress::Zstd, Compress::Lz4, Compress::None] {
            let stored = pack(value, codec, 1).expect("wrapped or compressed");
            assert_eq!(&opened(&stored), value, "{codec:?}");
        }
        let stored = protect(value).unwrap();
        assert_eq!(header(&stored).unwrap().unwrap().codec, Codec::Raw);
        assert_eq!(&opened(&stored), value);
    }
    // Anything else is stored as sent below the threshold.
    for other in [&b"\xFERS"[..], b"", b"RSP", b"\xFFRSP"] {
        assert_eq!(protect(other), None);
    }
}

#[test]
fn failures_counted_and_answered_as_errors() {
    let opener = Opener::default();
    let reply = opener.refuse(&OpenError::Corrupt {
        codec: "zstd",
        what: "bad\r\nline".into(),
    });
    assert_eq!(
        &reply[..],
        b"-ERR respite: stored value could not be decoded: zstd payload does not decode: bad  line\r\n"
    );
    opener.refuse(&OpenError::Version(3));
    assert_eq!(opener.failures().get(Failure::Corrupt), 1);
    assert_eq!(opener.failures().get(Failure::Unsupported), 1);
    assert_eq!(opener.failures().get(Failure::TooLarge), 0);
}

/// `restore` on `frame`, as a proxy with the default limit does.
fn apply(restore: Restore, frame: Bytes) -> Bytes {
    restore.apply(frame, &Opener::default())
}

fn bulk(b: &[u8]) -> Bytes {
    crate::protocol::reply::bulk(b)
}

fn env(v: &[u8]) -> Vec<u8> {
    pack(v, Compress::Zstd, 3).unwrap()
}

#[test]
fn restores_reply_shapes() {
    let v = json(3000);
    let e = env(&v);
    assert_eq!(apply(Restore::Value, bulk(&e)), bulk(&v));
    let plain = bulk(b"plain");
    assert_eq!(apply(Restore::Value, plain.clone()), plain);
    let nil = Bytes::from_static(b"$-1\r\n");
    assert_eq!(apply(Restore::Value, nil.clone()), nil);
    let err = Bytes::from_static(b"-WRONGTYPE x\r\n");
    assert_eq!(apply(Restore::Value, err.clone()), err);

    let arr = |parts: &[Bytes]| {
        let mut out = format!("*{}\r\n", parts.len()).into_bytes();
        parts.iter().for_each(|p| out.extend_from_slice(p));
        Bytes::from(out)
    };
    let got = apply(Restore::Values, arr(&[bulk(&e), nil.clone(), bulk(b"x")]));
    assert_eq!(got, arr(&[bulk(&v), nil.clone(), bulk(b"x")]));
    let got = apply(Restore::ValuesAt(vec![1]), arr(&[bulk(&e), bulk(&e)]));
    assert_eq!(got, arr(&[bulk(&e), bulk(&v)]));
    // Nothing to restore: the very same frame.
    let same = arr(&[bulk(b"a"), bulk(b"b")]);
    assert_eq!(apply(Restore::Values, same.clone()).as_ptr(), same.as_ptr());

    // HGETALL: RESP2 flat, RESP3 map; HRANDFIELD WITHVALUES in RESP3: nested pairs.
    let flat = arr(&[bulk(&e), bulk(&e)]);
    assert_eq!(apply(Restore::Pairs, flat), arr(&[bulk(&e), bulk(&v)]));
    let mut map = b"%1\r\n".to_vec();
    map.extend_from_slice(&bulk(b"f"));
    map.extend_from_slice(&bulk(&e));
    let mut want = b"%1\r\n".to_vec();
    want.extend_from_slice(&bulk(b"f"));
    want.extend_from_slice(&bulk(&v));
    assert_eq!(apply(Restore::Pairs, Bytes::from(map)), Bytes::from(want));
    let nested = arr(&[arr(&[bulk(&e), bulk(&e)]), arr(&[bulk(b"g"), bulk(b"w")])]);
    let want = arr(&[arr(&[bulk(&e), bulk(&v)]), arr(&[bulk(b"g"), bulk(b"w")])]);
    assert_eq!(apply(Restore::Pairs, nested), want);
}

#[test]
fn len_range_integer() {
    let v = json(3000);
    let e = env(&v);
    let n = format!(":{}\r\n", v.len());
    assert_eq!(&apply(Restore::Len, bulk(&e))[..], n.as_bytes());
    assert_eq!(&apply(Restore::Len, bulk(b"abc"))[..], b":3\r\n");
    assert_eq!(
        &apply(Restore::Len, Bytes::from_static(b"_\r\n"))[..],
        b":0\r\n"
    );
    assert_eq!(apply(Restore::Range(0, 4), bulk(&e)), bulk(&v[..5]));
    assert_eq!(
        apply(Restore::Range(-3, -1), bulk(&e)),
        bulk(&v[v.len() - 3..])
    );
    assert_eq!(
        &apply(Restore::Range(0, 1), Bytes::from_static(b"$-1\r\n"))[..],
        b"$0\r\n\r\n"
    );
    assert_eq!(
        &apply(Restore::Integer, Bytes::from_static(b"*1\r\n$2\r\n42\r\n"))[..],
        b":42\r\n"
    );
    let err = Bytes::from_static(b"-ERR x\r\n");
    assert_eq!(apply(Restore::Integer, err.clone()), err);
}

#[test]
fn getrange_like_redis() {
    let v = b"Hello World";
    let r = |a, b| String::from_utf8(reply::getrange(v, a, b).to_vec()).unwrap();
    assert_eq!(r(0, 4), "Hello");
    assert_eq!(r(-3, -1), "rld");
    assert_eq!(r(0, -1), "Hello World");
    assert_eq!(r(10, 100), "d");
    assert_eq!(r(5, 3), "");
    assert_eq!(r(-1, -5), "");
    assert_eq!(r(-100, 2), "Hel");
    assert_eq!(r(20, 30), "");
    assert_eq!(reply::getrange(b"", 0, -1), b"");
}

#[test]
fn guard_script_checks_the_same_header() {
    // The script's literal magic, and the start of its raw header, are the Rust ones.
    assert!(guard::SCRIPT.contains("'\\254RSP'"));
    assert!(guard::SCRIPT.contains("'\\254RSP\\1\\0\\0\\0\\0\\0'"));
    assert_eq!(PREFIX, b"\xFERSP");
    assert_eq!(MAGIC, b"\xFERSP\x01");
    assert_eq!(
        &protect(b"\xFERSP").unwrap()[..10],
        b"\xFERSP\x01\0\0\0\0\0"
    );
    assert_eq!(HEADER_LEN, 16);
}

#[test]
fn restoring_refuses_the_whole_reply() {
    let e = env(&json(3000));
    let mut bad = e.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    let arr = |parts: &[Bytes]| {
        let mut out = format!("*{}\r\n", parts.len()).into_bytes();
        parts.iter().for_each(|p| out.extend_from_slice(p));
        Bytes::from(out)
    };
    let refused = |reply: Bytes| {
        assert!(
            reply.starts_with(b"-ERR respite: stored value could not be decoded: "),
            "{reply:?}"
        );
    };
    refused(apply(Restore::Value, bulk(&bad)));
    refused(apply(Restore::Len, bulk(&bad)));
    refused(apply(Restore::Range(0, 1), bulk(&bad)));
    refused(apply(Restore::Values, arr(&[bulk(&e), bulk(&bad)])));
    refused(apply(
        Restore::ValuesAt(vec![1]),
        arr(&[bulk(b"x"), bulk(&bad)]),
    ));
    refused(apply(Restore::Pairs, arr(&[bulk(b"f"), bulk(&bad)])));
    // A position not restored is not looked at.
    let not_ours = arr(&[bulk(&bad), bulk(b"x")]);
    assert_eq!(
        apply(Restore::ValuesAt(vec![1]), not_ours.clone()),
        not_ours
    );
    // The limit applies to every shape.
    let small = Opener::new(100, Default::default());
    for r in [Restore::Value, Restore::Len, Restore::Range(0, 1)] {
        refused(r.apply(bulk(&e), &small));
    }
    assert_eq!(small.failures().get(Failure::TooLarge), 3);
}
