//! Property tests: no input panics the parsers, and how bytes are split into reads
//! never changes what is parsed.

use bytes::BytesMut;
use proptest::prelude::*;

use super::{
    reply::ReplyScanner,
    request::{Limits, Request, encode_command},
};

fn parse_chunked(input: &[u8], chunk: usize) -> (Vec<Request>, bool) {
    crate::props::parse_requests(input, chunk, Limits::default())
}

fn arb_args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..8)
}

proptest! {
    #[test]
    fn request_parser_never_panics(input in prop::collection::vec(any::<u8>(), 0..512), chunk in 1usize..64) {
        let _ = parse_chunked(&input, chunk);
    }

    #[test]
    fn resp_commands_round_trip_in_any_chunking(cmds in prop::collection::vec(arb_args(), 1..6), chunk in 1usize..50) {
        let mut wire = Vec::new();
        for c in &cmds {
            let args: Vec<bytes::Bytes> = c.iter().map(|a| bytes::Bytes::from(a.clone())).collect();
            wire.extend_from_slice(&encode_command(&args));
        }
        let (parsed, failed) = parse_chunked(&wire, chunk);
        prop_assert!(!failed);
        let got: Vec<Vec<Vec<u8>>> = parsed.iter().map(|r| r.args.iter().map(|a| a.to_vec()).collect()).collect();
        prop_assert_eq!(got, cmds);
    }

    #[test]
    fn reply_scanner_never_panics(input in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut s = ReplyScanner::default();
        for cut in 0..=input.len() {
            if s.scan(&input[..cut]).is_err() {
                break;
            }
        }
    }

    #[test]
    fn reply_scanner_frames_concatenations(n in 1usize..20, chunk in 1usize..30) {
        let frames: &[&[u8]] = &[b"+OK\r\n", b"$3\r\nabc\r\n", b"*2\r\n:1\r\n$-1\r\n", b"%1\r\n+a\r\n~1\r\n_\r\n", b">2\r\n+p\r\n:2\r\n"];
        let mut wire = Vec::new();
        let mut lens = Vec::new();
        for i in 0..n {
            let f = frames[i % frames.len()];
            wire.extend_from_slice(f);
            lens.push(f.len());
        }
        let mut s = ReplyScanner::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(len) = s.scan(&buf).unwrap() {
                let _ = buf.split_to(len);
                got.push(len);
            }
        }
        prop_assert_eq!(got, lens);
    }
}
