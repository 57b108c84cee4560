//! A key that cosign itself wrote signs a bundle (issue 24, test suite): the
//! published Kubewarden test pair in `fixtures/keys/cosign-kubewarden.*`
//! (`ENCRYPTED COSIGN PRIVATE KEY`, scrypt 2^15, password `kubewarden`) is
//! read by `atp-bundler create` with the password from `COSIGN_PASSWORD`, the
//! bundle verifies with the cosign `.pub`, and openssl verifies the signature
//! over `index.json` with that same `.pub`. Never writes to `fixtures/`.

mod common;

use std::process::Command;

use base64::Engine as _;
use common::*;

const PASSWORD: &str = "kubewarden";

fn fixture_key(ext: &str) -> String {
    repo_root()
        .join(format!("fixtures/keys/cosign-kubewarden.{ext}"))
        .to_string_lossy()
        .into_owned()
}

/// `atp-bundler create` of the demo spec into `out`, signed with the cosign
/// key; the password is set by `env` (both password variables are cleared
/// first).
fn create_with_cosign_key(w: &Work, out: &str, env: &[(&str, &str)]) -> std::process::Output {
    let spec = repo_root().join("manifests/bundle.yaml");
    let key = fixture_key("key");
    let mut c = w.bundler_cmd(&[
        "create",
        "--spec",
        spec.to_str().unwrap(),
        "--key",
        &key,
        "--output",
        out,
    ]);
    c.env_remove("ATP_KEY_PASSWORD")
        .env_remove("COSIGN_PASSWORD")
        .env("SOURCE_DATE_EPOCH", "1790000000");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[test]
fn a_key_made_by_cosign_signs_a_bundle_that_verify_and_openssl_accept() {
    let w = Work::new();
    let public = fixture_key("pub");

    // The wrong password is named as such, and nothing is created.
    let o = create_with_cosign_key(&w, "wrong.tar", &[("COSIGN_PASSWORD", "not-it")]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrong password for"), "{}", text(&o));
    assert!(err.contains("cosign-kubewarden.key"), "{}", text(&o));
    assert!(!err.contains("not-it"), "the password was echoed: {err}");
    assert!(!w.path("wrong.tar").exists());

    // cosign's own variable is enough (ATP_KEY_PASSWORD is unset).
    let o = create_with_cosign_key(&w, "b.tar", &[("COSIGN_PASSWORD", PASSWORD)]);
    assert_ok(&o, "create with the cosign key");

    let o = w.installer(&["verify", "b.tar", "--key", &public, "--json"]);
    assert_ok(&o, "verify with the cosign .pub");
    let report = json(&o);
    assert_eq!(report["ok"], true, "{report}");

    // The fingerprint in the signed index is that of cosign's .pub (the
    // SHA-256 of its DER SubjectPublicKeyInfo, as openssl writes it).
    let der = Command::new("openssl")
        .args(["pkey", "-pubin", "-in", &public, "-outform", "DER"])
        .output()
        .unwrap();
    assert_ok(&der, "openssl pkey");
    let fingerprint = atp_bundle::Digest::of(&der.stdout).to_string();
    assert_eq!(report["key_fingerprint"], fingerprint.as_str(), "{report}");

    // The work dir's own key is another signer: refused.
    let o = w.installer(&["verify", "b.tar", "--key", "k.pub"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // openssl verifies the signature over the exact index.json bytes with
    // the cosign .pub.
    let t = Command::new("tar")
        .args(["xf", "b.tar", "index.json", "index.json.sig"])
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert_ok(&t, "tar x");
    let sig = std::fs::read_to_string(w.path("index.json.sig")).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig.trim())
        .unwrap();
    std::fs::write(w.path("sig.der"), der).unwrap();
    let v = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            &public,
            "-signature",
            "sig.der",
            "index.json",
        ])
        .current_dir(w.dir.path())
        .output()
        .unwrap();
    assert_ok(&v, "openssl dgst -verify");
    assert!(String::from_utf8_lossy(&v.stdout).contains("Verified OK"));

    // ATP_KEY_PASSWORD wins over COSIGN_PASSWORD when both are set.
    let o = create_with_cosign_key(
        &w,
        "c.tar",
        &[
            ("ATP_KEY_PASSWORD", PASSWORD),
            ("COSIGN_PASSWORD", "not-it"),
        ],
    );
    assert_ok(&o, "create with ATP_KEY_PASSWORD");
    // Same inputs, same time, deterministic (RFC 6979) signature: same bytes.
    assert_eq!(
        std::fs::read(w.path("c.tar")).unwrap(),
        std::fs::read(w.path("b.tar")).unwrap()
    );
}
