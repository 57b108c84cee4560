//! Fuzz target bodies: each takes arbitrary bytes, feeds them to one parser
//! of untrusted input, and checks the few properties that must hold whatever
//! the input. A panic, an abort or a hang is the bug a fuzzer looks for.
//!
//! Shared by the libFuzzer binaries in `fuzz/fuzz_targets/` (nightly, `cargo
//! fuzz run`, through the `atp-fuzz` crate's re-export) and the stable smoke
//! test `tests/tests/reliability_fuzz.rs`. Never touches the filesystem or
//! the network: every input stays in memory. Not used by the binaries.

use std::path::Path;

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::media;

/// The verifying key every tar input is checked against (the committed test key).
const TEST_PUB: &str = include_str!("../../fixtures/keys/test.pub");

/// The bundle verifier over a whole archive in memory. Accepting an input
/// is fine (a fuzzer will not forge a signature); panicking is not, and a
/// refused input must say why.
pub fn verify_reader(data: &[u8]) {
    let key = atp_bundle::keys::load_public(TEST_PUB).expect("the test key parses");
    let now = time::OffsetDateTime::from_unix_timestamp(1_795_651_200).expect("valid time");
    let report = atp_bundle::verify::verify_reader(data, &key, now);
    if !report.is_ok() {
        assert!(!report.findings.is_empty(), "refused without a finding");
    }
    for f in &report.findings {
        assert!(f.offset <= data.len() as u64, "finding past the end: {f}");
    }
}

/// One ustar header block (the first 512 bytes, zero-padded).
pub fn ustar_header(data: &[u8]) {
    let mut block = [0u8; 512];
    let n = data.len().min(512);
    block[..n].copy_from_slice(&data[..n]);
    let _ = atp_bundle::format::ustar::parse_header(&block);
}

/// `index.json`: the OCI index parser, then the bundle annotations on it.
pub fn index(data: &[u8]) {
    if let Ok(Manifest::Index(i)) = Manifest::parse(media::OCI_INDEX, data, "index.json") {
        let _ = atp_bundle::BundleInfo::from_annotations(&i.annotations);
        for m in &i.manifests {
            let _ = m.annotation(atp_bundle::format::annotation::REF_NAME);
        }
    }
}

/// An image manifest or index under every media type the verifier accepts.
pub fn manifest(data: &[u8]) {
    for mt in [
        media::OCI_MANIFEST,
        media::OCI_INDEX,
        media::DOCKER_MANIFEST,
        media::DOCKER_LIST,
        "application/x-unknown",
    ] {
        if let Ok(m) = Manifest::parse(mt, data, "fuzz") {
            let _ = m.children();
        }
    }
}

/// The bundle spec (YAML), strict parsing and validation only.
pub fn spec(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::spec::Spec::parse(
            text,
            Path::new("/nonexistent/fuzz/bundle.yaml"),
            Path::new("/nonexistent/fuzz"),
        );
    }
}
