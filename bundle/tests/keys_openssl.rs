//! Keys and signatures interoperate with the openssl CLI (and so with
//! cosign's sign-blob format): our signatures verify with `openssl dgst`,
//! openssl's keys and signatures load and verify here.

use std::path::Path;
use std::process::Command;

use atp_bundle::keys::{self, KeyError};
use atp_bundle::sign::{self, SignatureError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn our_signature_verifies_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys::keygen("pw").unwrap();
    let key = keys::load_private(&private, "pw").unwrap();
    let payload = br#"{"schemaVersion":2}"#;
    let sig = sign::sign(&key, payload);
    std::fs::write(dir.path().join("k.pub"), &public).unwrap();
    std::fs::write(dir.path().join("payload"), payload).unwrap();
    std::fs::write(dir.path().join("sig.der"), B64.decode(&sig).unwrap()).unwrap();
    let o = openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "k.pub",
            "-signature",
            "sig.der",
            "payload",
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("Verified OK"));
    // And openssl agrees on the key: same SPKI, same fingerprint.
    let o = openssl(
        &["pkey", "-pubin", "-in", "k.pub", "-outform", "DER"],
        dir.path(),
    );
    assert_eq!(
        keys::fingerprint(key.verifying_key()),
        atp_bundle::Digest::of(&o.stdout).to_string()
    );
}

#[test]
fn openssl_genpkey_key_loads_signs_and_its_signatures_verify() {
    let dir = tempfile::tempdir().unwrap();
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k.pem",
        ],
        dir.path(),
    );
    openssl(
        &["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"],
        dir.path(),
    );
    let pem = std::fs::read_to_string(dir.path().join("k.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    let key = keys::load_private_file(&dir.path().join("k.pem"), "ignored").unwrap();
    let public = keys::load_public_file(&dir.path().join("k.pub")).unwrap();
    assert_eq!(key.verifying_key(), &public);

    // Ours -> openssl.
    std::fs::write(dir.path().join("payload"), b"index bytes").unwrap();
    let sig = sign::sign(&key, b"index bytes");
    std::fs::write(dir.path().join("ours.der"), B64.decode(&sig).unwrap()).unwrap();
    openssl(
        &[
            "dgst",
            "-sha256",
            "-verify",
            "k.pub",
            "-signature",
            "ours.der",
            "payload",
        ],
        dir.path(),
    );
    // openssl -> ours (randomized ECDSA, still valid).
    openssl(
        &[
            "dgst",
            "-sha256",
            "-sign",
            "k.pem",
            "-out",
            "theirs.der",
            "payload",
        ],
        dir.path(),
    );
    let theirs = B64.encode(std::fs::read(dir.path().join("theirs.der")).unwrap());
    sign::verify(&public, b"index bytes", &theirs).unwrap();
    assert_eq!(
        sign::verify(&public, b"index bytez", &theirs),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn cosign_format_fields_and_round_trip() {
    let (private, public) = keys::keygen("").unwrap();
    let body = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let json: serde_json::Value = serde_json::from_slice(&B64.decode(body).unwrap()).unwrap();
    assert_eq!(json["kdf"]["name"], "scrypt");
    assert_eq!(
        json["kdf"]["params"],
        serde_json::json!({"N": 32768, "r": 8, "p": 1})
    );
    assert_eq!(
        B64.decode(json["kdf"]["salt"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert_eq!(json["cipher"]["name"], "nacl/secretbox");
    assert_eq!(
        B64.decode(json["cipher"]["nonce"].as_str().unwrap())
            .unwrap()
            .len(),
        24
    );
    // PKCS#8 DER (~138 bytes) + 16-byte Poly1305 tag.
    let ct = B64.decode(json["ciphertext"].as_str().unwrap()).unwrap();
    assert!(ct.len() > 100);
    let key = keys::load_private(&private, "").unwrap();
    let again = keys::encrypt_private(&key, "new password").unwrap();
    assert_ne!(again, private, "fresh salt and nonce each time");
    let back = keys::load_private(&again, "new password").unwrap();
    assert_eq!(back.verifying_key(), &keys::load_public(&public).unwrap());
    assert!(matches!(
        keys::load_private_named(&again, "", "ci.key"),
        Err(KeyError::WrongPassword { .. })
    ));
}

#[test]
fn committed_test_keys_load_with_empty_password() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/keys");
    for name in ["test", "other"] {
        let k = keys::load_private_file(&dir.join(format!("{name}.key")), "").unwrap();
        let p = keys::load_public_file(&dir.join(format!("{name}.pub"))).unwrap();
        assert_eq!(k.verifying_key(), &p);
        let err = keys::load_private_file(&dir.join(format!("{name}.key")), "x").unwrap_err();
        assert!(err.to_string().contains(&format!("{name}.key")), "{err}");
    }
}

#[test]
fn bad_signatures_get_distinct_errors() {
    let (private, _) = keys::keygen("").unwrap();
    let key = keys::load_private(&private, "").unwrap();
    let vk = key.verifying_key();
    assert!(matches!(
        sign::verify(vk, b"p", "@@@@"),
        Err(SignatureError::BadBase64 { .. })
    ));
    assert!(matches!(
        sign::verify(vk, b"p", &B64.encode([0x30, 0x03, 0x02, 0x01, 0x01])),
        Err(SignatureError::BadDer { .. })
    ));
    let other = keys::load_private(&keys::keygen("").unwrap().0, "").unwrap();
    let sig = sign::sign(&other, b"p");
    assert_eq!(sign::verify(vk, b"p", &sig), Err(SignatureError::Mismatch));
}
