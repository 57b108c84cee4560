//! Issue 19, the site side: upstream signatures, SBOMs and attestations
//! written by the independent writer (`atp_testkit::supply_chain`: openssl
//! and curl, no code under test) reach the site registry with their images,
//! and the signature fetched from the site verifies with `openssl dgst
//! -verify` against the upstream key.

mod common;

use atp_testkit::fixtures::{self, BASE};
use atp_testkit::supply_chain::{fallback_tag, UpstreamKey, Writer, OCI_INDEX, SIMPLE_SIGNING};
use atp_testkit::{skopeo, Registry};
use serde_json::Value;

#[test]
fn the_independent_writer_leaves_what_cosign_and_an_oci_client_would() {
    let reg = Registry::plain();
    let subject = fixtures::push(&reg, &BASE, "atp/base");
    let key = UpstreamKey::generate();
    let w = Writer::new(&reg);
    let chain = w.write_supply_chain("atp/base", &subject, "docker.io/atp/base:1.0.0", &key);

    // skopeo reads the signature tag as an ordinary manifest.
    let sig_ref = format!(
        "docker://{}/atp/base:{}.sig",
        reg.host(),
        fallback_tag(&subject)
    );
    let out = skopeo(&["inspect", "--raw", "--tls-verify=false", &sig_ref]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, chain.signature.bytes);
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["layers"][0]["mediaType"], SIMPLE_SIGNING);

    // The signature verifies with openssl and names the image's digest.
    let payload = w
        .verified_signature("atp/base", &subject, key.public_pem_path())
        .unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        subject
    );
    assert_eq!(
        payload["critical"]["identity"]["docker-reference"],
        "docker.io/atp/base:1.0.0"
    );
    // ... and not against another key.
    let other = UpstreamKey::generate();
    let e = w
        .verified_signature("atp/base", &subject, other.public_pem_path())
        .unwrap_err();
    assert!(e.contains("does not verify"), "{e}");

    // The fallback index lists the SBOM and the attestation, with subjects.
    let idx = w.get_manifest("atp/base", &fallback_tag(&subject)).unwrap();
    assert_eq!(idx, chain.fallback_index.bytes);
    let idx: Value = serde_json::from_slice(&idx).unwrap();
    assert_eq!(idx["mediaType"], OCI_INDEX);
    let listed: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [&chain.sbom.digest, &chain.attestation.digest]);
    for a in [&chain.sbom, &chain.attestation] {
        let m: Value =
            serde_json::from_slice(&w.get_manifest("atp/base", &a.digest).unwrap()).unwrap();
        assert_eq!(m["subject"]["digest"], subject);
        assert_eq!(m["artifactType"], a.artifact_type);
    }
}
