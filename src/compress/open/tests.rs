use super::*;

/// Bytes of every kind the codecs see: runs, text, noise.
fn sample(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match (i / 4096) % 3 {
                0 => 0,
                1 => b"the quick brown fox "[i % 20],
                _ => (x >> 24) as u8,
            }
        })
        .collect()
}

#[test]
fn zstd_frames_of_every_shape_are_measured() {
    for n in [
        0,
        1,
        31,
        100,
        1000,
        128 * 1024,
        128 * 1024 + 1,
        1 << 20,
        3 << 20,
    ] {
        for level in [1, 3, 19] {
            let v = sample(n, n as u64 + 1);
            let mut c = zstd::bulk::Compressor::new(level).unwrap();
            c.include_checksum(level != 3).unwrap();
            let frame = c.compress(&v).unwrap();
            let (content, bound) = zstd_frame(&frame).unwrap();
            assert_eq!(content, n as u64, "{n} at {level}");
            assert!(bound >= content, "{n} at {level}: bound {bound}");
            // Cut anywhere, or followed by anything: refused.
            for cut in [1, 3, frame.len() / 2] {
                assert!(zstd_frame(&frame[..frame.len() - cut]).is_err());
            }
            assert!(zstd_frame(&[&frame[..], &[0]].concat()).is_err());
        }
    }
}

#[test]
fn zstd_frames_without_a_size_or_with_a_dictionary_are_refused() {
    // A streamed frame need not state its content size: one raw block of "a".
    let streamed = [0x28, 0xB5, 0x2F, 0xFD, 0x00, 0x00, 0x09, 0x00, 0x00, b'a'];
    assert!(zstd_frame(&streamed).unwrap_err().contains("content size"));
    // The same with a 1-byte size.
    let sized = [0x28, 0xB5, 0x2F, 0xFD, 0x20, 0x01, 0x09, 0x00, 0x00, b'a'];
    assert_eq!(zstd_frame(&sized), Ok((1, 1)));
    assert_eq!(
        zstd::bulk::decompress(&sized, 10).unwrap(),
        b"a",
        "the hand-made frame is valid"
    );
    // Dictionary 5 (a 1-byte id).
    let dict = [
        0x28, 0xB5, 0x2F, 0xFD, 0x21, 0x05, 0x01, 0x09, 0x00, 0x00, b'a',
    ];
    assert!(zstd_frame(&dict).unwrap_err().contains("dictionary 5"));
    assert!(zstd_frame(b"\x28\xB5\x2F").is_err());
    assert!(zstd_frame(b"not zstd").is_err());
}

#[test]
fn lz4_blocks_are_measured_exactly() {
    for n in [1, 12, 13, 100, 5000, 70_000, 1 << 20] {
        let v = sample(n, n as u64);
        let block = lz4_flex::block::compress(&v);
        assert_eq!(lz4_len(&block).unwrap(), n as u64, "{n}");
        for cut in [1, 2, block.len() / 2] {
            if cut < block.len() {
                // A shorter block is either refused or measured shorter.
                if let Ok(m) = lz4_len(&block[..block.len() - cut]) {
                    assert!(m < n as u64);
                }
            }
        }
    }
    // Zeros: the best lz4 does, about 255 to 1.
    let zeros = lz4_flex::block::compress(&vec![0u8; 1 << 20]);
    assert_eq!(lz4_len(&zeros).unwrap(), 1 << 20);
    assert!(zeros.len() > (1 << 20) / 256, "{}", zeros.len());
    assert!(lz4_len(b"").is_err());
    // A match before anything was written, and one with offset 0.
    assert!(
        lz4_len(&[0x04, 0x01, 0x00])
            .unwrap_err()
            .contains("offset 1")
    );
    assert!(
        lz4_len(&[0x14, b'a', 0x00, 0x00])
            .unwrap_err()
            .contains("offset 0")
    );
}

#[test]
fn decoding_keeps_what_out_held_before() {
    let v = sample(200_000, 5);
    for codec in [crate::policy::Compress::Zstd, crate::policy::Compress::Lz4] {
        let packed = super::super::pack(&v, codec, 1).unwrap();
        let mut out = b"prefix".to_vec();
        assert!(open_into(&packed, &mut out, usize::MAX).unwrap());
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..], &v[..]);
        let mut bad = packed.clone();
        let at = bad.len() - 10;
        bad[at] ^= 0xFF;
        let mut out = b"prefix".to_vec();
        assert!(open_into(&bad, &mut out, usize::MAX).is_err());
        assert_eq!(out, b"prefix");
    }
}
