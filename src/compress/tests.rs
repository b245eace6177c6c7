use bytes::Bytes;

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
            let h = header(&packed).unwrap();
            assert_eq!((h.codec, h.dict_id, h.original_len), (codec, 0, v.len()));
            assert_eq!(open(&packed).unwrap(), v);
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

#[test]
fn look_alikes_are_not_ours() {
    let v = json(5000);
    let packed = pack(&v, Compress::Zstd, 3).unwrap();
    // Each header byte changed: the header check or the payload catches it.
    for i in 0..HEADER_LEN {
        let mut bad = packed.clone();
        bad[i] ^= 0x40;
        assert_eq!(open(&bad), None, "byte {i}");
    }
    // Payload damaged, or cut short.
    let mut bad = packed.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert_eq!(open(&bad), None);
    assert_eq!(open(&packed[..packed.len() - 1]), None);
    // Just the magic, and things that are no envelope at all.
    assert_eq!(open(b"\xFERSP\x01 and then some text"), None);
    assert_eq!(open(b"\x78\x9c\x01\x02"), None);
    assert_eq!(open(b""), None);
    // A consistent header with a dictionary this proxy does not have.
    let mut dict = packed.clone();
    dict[6] = 7;
    let (s1, s2) = fletcher16(&dict[..14]);
    dict[14] = s1;
    dict[15] = s2;
    assert_eq!(header(&dict).unwrap().dict_id, 7);
    assert_eq!(open(&dict), None);
}

#[test]
fn lz4_lies_about_length() {
    let v = json(5000);
    let mut packed = pack(&v, Compress::Lz4, 3).unwrap();
    packed[10..14].copy_from_slice(&(v.len() as u32 + 1).to_le_bytes());
    let (s1, s2) = fletcher16(&packed[..14]);
    packed[14] = s1;
    packed[15] = s2;
    assert_eq!(open(&packed), None);
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
    assert_eq!(Restore::Value.apply(bulk(&e)), bulk(&v));
    let plain = bulk(b"plain");
    assert_eq!(Restore::Value.apply(plain.clone()), plain);
    let nil = Bytes::from_static(b"$-1\r\n");
    assert_eq!(Restore::Value.apply(nil.clone()), nil);
    let err = Bytes::from_static(b"-WRONGTYPE x\r\n");
    assert_eq!(Restore::Value.apply(err.clone()), err);

    let arr = |parts: &[Bytes]| {
        let mut out = format!("*{}\r\n", parts.len()).into_bytes();
        parts.iter().for_each(|p| out.extend_from_slice(p));
        Bytes::from(out)
    };
    let got = Restore::Values.apply(arr(&[bulk(&e), nil.clone(), bulk(b"x")]));
    assert_eq!(got, arr(&[bulk(&v), nil.clone(), bulk(b"x")]));
    let got = Restore::ValuesAt(vec![1]).apply(arr(&[bulk(&e), bulk(&e)]));
    assert_eq!(got, arr(&[bulk(&e), bulk(&v)]));
    // Nothing to restore: the very same frame.
    let same = arr(&[bulk(b"a"), bulk(b"b")]);
    assert_eq!(Restore::Values.apply(same.clone()).as_ptr(), same.as_ptr());

    // HGETALL: RESP2 flat, RESP3 map; HRANDFIELD WITHVALUES in RESP3: nested pairs.
    let flat = arr(&[bulk(&e), bulk(&e)]);
    assert_eq!(Restore::Pairs.apply(flat), arr(&[bulk(&e), bulk(&v)]));
    let mut map = b"%1\r\n".to_vec();
    map.extend_from_slice(&bulk(b"f"));
    map.extend_from_slice(&bulk(&e));
    let mut want = b"%1\r\n".to_vec();
    want.extend_from_slice(&bulk(b"f"));
    want.extend_from_slice(&bulk(&v));
    assert_eq!(Restore::Pairs.apply(Bytes::from(map)), Bytes::from(want));
    let nested = arr(&[arr(&[bulk(&e), bulk(&e)]), arr(&[bulk(b"g"), bulk(b"w")])]);
    let want = arr(&[arr(&[bulk(&e), bulk(&v)]), arr(&[bulk(b"g"), bulk(b"w")])]);
    assert_eq!(Restore::Pairs.apply(nested), want);
}

#[test]
fn len_range_integer() {
    let v = json(3000);
    let e = env(&v);
    let n = format!(":{}\r\n", v.len());
    assert_eq!(&Restore::Len.apply(bulk(&e))[..], n.as_bytes());
    assert_eq!(&Restore::Len.apply(bulk(b"abc"))[..], b":3\r\n");
    assert_eq!(
        &Restore::Len.apply(Bytes::from_static(b"_\r\n"))[..],
        b":0\r\n"
    );
    assert_eq!(Restore::Range(0, 4).apply(bulk(&e)), bulk(&v[..5]));
    assert_eq!(
        Restore::Range(-3, -1).apply(bulk(&e)),
        bulk(&v[v.len() - 3..])
    );
    assert_eq!(
        &Restore::Range(0, 1).apply(Bytes::from_static(b"$-1\r\n"))[..],
        b"$0\r\n\r\n"
    );
    assert_eq!(
        &Restore::Integer.apply(Bytes::from_static(b"*1\r\n$2\r\n42\r\n"))[..],
        b":42\r\n"
    );
    let err = Bytes::from_static(b"-ERR x\r\n");
    assert_eq!(Restore::Integer.apply(err.clone()), err);
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
    // The script's literal magic is the Rust one.
    assert!(guard::SCRIPT.contains("'\\254RSP\\1'"));
    assert_eq!(MAGIC, b"\xFERSP\x01");
    assert_eq!(HEADER_LEN, 16);
}
