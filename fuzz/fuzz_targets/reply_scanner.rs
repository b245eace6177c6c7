//! Upstream replies as `ReplyScanner` frames them, against redis-protocol's decoders.
//! The property checked is `respite::props::reply_scanner`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| respite::props::reply_scanner(data));
