//! libFuzzer entry point for [`atp_fuzz::manifest`]; see docs/security.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| atp_fuzz::manifest(data));
