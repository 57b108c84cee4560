//! libFuzzer entry point for [`atp_fuzz::index`]; see docs/security.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atp_fuzz::index(data));
