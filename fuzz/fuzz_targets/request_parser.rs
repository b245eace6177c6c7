//! Client requests (RESP arrays and inline lines) as `RequestParser` reads them.
//! The property checked is `respite::props::request_parser`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| respite::props::request_parser(data));
