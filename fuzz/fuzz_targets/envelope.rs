//! Stored values as the compression envelope decoder opens them (allocation bounded).
//! The property checked is `respite::props::envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| respite::props::envelope(data));
