//! `proxy.toml` text through `Config::parse`, `validate` and the compiled rules.
//! The property checked is `respite::props::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| respite::props::config(data));
