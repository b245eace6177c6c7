//! Glob matchers against a port of Redis's `stringmatchlen` (util.c).
//! The property checked is `respite::props::glob`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| respite::props::glob(data));
