//! libFuzzer entry point for [`atp_fuzz::spec`]; see docs/security.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atp_fuzz::spec(data));
