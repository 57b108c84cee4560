//! Signing keys: generate, encrypt, load and fingerprint NIST P-256 keys in
//! the formats cosign and openssl use (spec section 7).
//!
//! Private keys are written only in cosign's encrypted format (scrypt +
//! nacl/secretbox over PKCS#8 DER). Untrusted KDF parameters are checked
//! before any key derivation, so a hostile key file cannot make us burn
//! minutes of CPU or gigabytes of memory. Passwords never appear in errors
//! or `Debug` output.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use pkcs8::der::pem::LineEnding;
use rand::rngs::OsRng;

mod cosign;
use cosign::decrypt;
pub use cosign::encrypt_private;

/// PEM label cosign writes for encrypted private keys.
pub const SIGSTORE_PRIVATE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// Older cosign label, read too.
pub const COSIGN_PRIVATE_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// Plain PKCS#8 private key (`openssl genpkey`).
pub const PKCS8_PRIVATE_LABEL: &str = "PRIVATE KEY";
/// SubjectPublicKeyInfo public key.
pub const PUBLIC_LABEL: &str = "PUBLIC KEY";

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{source_name}: not a PEM file: {reason}; hint: pass a key made by `atp-bundler keygen`, cosign or openssl")]
    NotPem { source_name: String, reason: String },
    #[error("{source_name}: expected a {expected} PEM block but found {found:?}; hint: {hint}")]
    WrongPemType {
        source_name: String,
        expected: &'static str,
        found: String,
        hint: &'static str,
    },
    #[error("{source_name}: malformed encrypted key: {reason}")]
    BadEncryptedKey { source_name: String, reason: String },
    #[error("{source_name}: refusing scrypt parameters N={n}, r={r}, p={p}: only N of 2^15, 2^16 or 2^17 with r=8 and p=1 are accepted; hint: re-create the key with `atp-bundler keygen` or `cosign generate-key-pair`")]
    UnsafeKdfParams {
        source_name: String,
        n: u64,
        r: u64,
        p: u64,
    },
    #[error("wrong password for {source_name}; hint: set ATP_KEY_PASSWORD (or COSIGN_PASSWORD) to the password the key was created with")]
    WrongPassword { source_name: String },
    #[error("{source_name}: not a NIST P-256 key: {reason}; hint: ATP Offline signs with ECDSA P-256 only (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)")]
    NotP256 { source_name: String, reason: String },
    /// The key parsed, but is another algorithm or curve; `found` says
    /// which ("a P-384 (secp384r1) key", "an RSA key").
    #[error("{source_name}: this is {found}; ATP Offline signs with P-256 (prime256v1) only; hint: make a P-256 key with `atp-bundler keygen` or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`")]
    WrongKeyType { source_name: String, found: String },
    #[error("{source_name}: larger than the {limit}-byte limit for key files; hint: a P-256 key file is under 1 KiB, check that this is the key")]
    TooLarge { source_name: String, limit: u64 },
    #[error("{source_name}: {source}")]
    Io {
        source_name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not encode key: {reason}")]
    Encode { reason: String },
}

/// Generate a key pair: `(private PEM, public PEM)`, the private key
/// encrypted with `password` in cosign's format.
pub fn keygen(password: &str) -> Result<(String, String), KeyError> {
    let key = SigningKey::random(&mut OsRng);
    let private = encrypt_private(&key, password)?;
    Ok((private, public_pem(key.verifying_key())?))
}

/// Decode the first PEM block of `pem_text` as openssl reads it: text
/// before `-----BEGIN` and after the matching `-----END` is ignored (comment
/// lines), body lines may have any length (one-line base64 included), and
/// CRLF line ends are fine. Legacy PEM headers (`Proc-Type:`) are refused.
fn decode_pem(pem_text: &str, source_name: &str) -> Result<(String, Vec<u8>), KeyError> {
    let not = |reason: String| KeyError::NotPem {
        source_name: source_name.to_string(),
        reason,
    };
    if pem_text.trim().is_empty() {
        return Err(not("the file is empty".into()));
    }
    if pem_text.contains('\0') {
        return Err(not("it holds binary data (NUL bytes), not PEM text".into()));
    }
    let mut lines = pem_text.lines().map(str::trim_end);
    let Some(label) = lines.by_ref().find_map(|l| {
        l.strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
    }) else {
        let compact: String = pem_text.split_whitespace().collect();
        let bare = B64.decode(compact.as_bytes()).is_ok();
        return Err(not(if bare {
            "no -----BEGIN ...----- line; it looks like bare base64: put it between -----BEGIN PUBLIC KEY----- and -----END PUBLIC KEY----- lines".into()
        } else {
            "no -----BEGIN ...----- line".into()
        }));
    };
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    let mut closed = false;
    for l in lines {
        if l == end {
            closed = true;
            break;
        }
        if l.contains(':') {
            return Err(not(format!(
                "the {label} block has PEM headers ({l:?}); legacy encrypted PEM keys are not supported"
            )));
        }
        body.push_str(l);
    }
    if !closed {
        return Err(not(format!("no {end} line after -----BEGIN {label}-----")));
    }
    let der = B64
        .decode(body.as_bytes())
        .map_err(|e| not(format!("the base64 of the {label} block is invalid: {e}")))?;
    Ok((label.to_string(), der))
}

/// Read a key file, at most [`crate::small_input::MAX_KEY_FILE`] bytes.
fn read_key_file(path: &std::path::Path) -> Result<(String, String), KeyError> {
    use crate::small_input::{read_file, SmallInputError, MAX_KEY_FILE};
    let name = path.display().to_string();
    let bytes = read_file(path, MAX_KEY_FILE, "key files").map_err(|e| match e {
        SmallInputError::TooLarge { limit, .. } => KeyError::TooLarge {
            source_name: name.clone(),
            limit,
        },
        SmallInputError::Io { source, .. } => KeyError::Io {
            source_name: name.clone(),
            source,
        },
        SmallInputError::NotRegular { kind, .. } => KeyError::Io {
            source_name: name.clone(),
            source: std::io::Error::other(format!("is a {kind}")),
        },
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let der = e.as_bytes().first() == Some(&0x30);
            return Err(KeyError::NotPem {
                source_name: name,
                reason: if der {
                    "binary (DER) data, not PEM text; convert it with `openssl pkey -inform DER -in KEY -out KEY.pem` (add -pubin for a public key)".into()
                } else {
                    "binary data, not PEM text".into()
                },
            });
        }
    };
    Ok((name, text))
}

/// What key a DER `AlgorithmIdentifier` names, in words, or `None` when it
/// is the P-256 key we want (so the failure is something else).
fn describe_algorithm(alg: &pkcs8::AlgorithmIdentifierRef<'_>) -> Option<String> {
    let oid = alg.oid.to_string();
    let found = match oid.as_str() {
        // id-ecPublicKey: the curve decides.
        "1.2.840.10045.2.1" => {
            let curve = alg.parameters_oid().map(|o| o.to_string()).ok();
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => return None,
                Some("1.3.132.0.34") => "a P-384 (secp384r1) key".to_string(),
                Some("1.3.132.0.35") => "a P-521 (secp521r1) key".to_string(),
                Some("1.3.132.0.10") => "a secp256k1 key".to_string(),
                Some("1.3.36.3.3.2.8.1.1.7") => "a brainpoolP256r1 key".to_string(),
                Some(other) => format!("an EC key on curve {other}"),
                None => "an EC key with explicit curve parameters (not a named curve)".to_string(),
            }
        }
        "1.2.840.113549.1.1.1" => "an RSA key".to_string(),
        "1.2.840.113549.1.1.10" => "an RSA-PSS key".to_string(),
        "1.2.840.10040.4.1" => "a DSA key".to_string(),
        "1.3.101.112" => "an Ed25519 key".to_string(),
        "1.3.101.113" => "an Ed448 key".to_string(),
        "1.3.101.110" => "an X25519 key".to_string(),
        "1.3.101.111" => "an X448 key".to_string(),
        other => format!("a key of algorithm {other}"),
    };
    Some(found)
}

/// The error for a PKCS#8 private key that is not P-256.
fn private_key_error(der: &[u8], reason: String, source_name: &str) -> KeyError {
    let found = pkcs8::PrivateKeyInfo::try_from(der)
        .ok()
        .and_then(|info| describe_algorithm(&info.algorithm));
    match found {
        Some(found) => KeyError::WrongKeyType {
            source_name: source_name.to_string(),
            found,
        },
        None => KeyError::NotP256 {
            source_name: source_name.to_string(),
            reason,
        },
    }
}

/// The error for a SubjectPublicKeyInfo that is not P-256.
fn public_key_error(der: &[u8], reason: String, source_name: &str) -> KeyError {
    let found = pkcs8::SubjectPublicKeyInfoRef::try_from(der)
        .ok()
        .and_then(|spki| describe_algorithm(&spki.algorithm));
    match found {
        Some(found) => KeyError::WrongKeyType {
            source_name: source_name.to_string(),
            found,
        },
        None => KeyError::NotP256 {
            source_name: source_name.to_string(),
            reason,
        },
    }
}

/// Load a private key from PEM text; errors call it "private key".
pub fn load_private(pem_text: &str, password: &str) -> Result<SigningKey, KeyError> {
    load_private_named(pem_text, password, "private key")
}

/// Load a private key from a file; errors name the path.
pub fn load_private_file(path: &std::path::Path, password: &str) -> Result<SigningKey, KeyError> {
    let (name, text) = read_key_file(path)?;
    load_private_named(&text, password, &name)
}

/// Load a private key: cosign encrypted (`ENCRYPTED SIGSTORE PRIVATE KEY` or
/// `ENCRYPTED COSIGN PRIVATE KEY`) or plain PKCS#8 `PRIVATE KEY`.
/// `source_name` names the key in errors.
pub fn load_private_named(
    pem_text: &str,
    password: &str,
    source_name: &str,
) -> Result<SigningKey, KeyError> {
    let (label, body) = decode_pem(pem_text, source_name)?;
    match label.as_str() {
        SIGSTORE_PRIVATE_LABEL | COSIGN_PRIVATE_LABEL => {
            let der = decrypt(&body, password, source_name)?;
            SigningKey::from_pkcs8_der(&der)
                .map_err(|e| private_key_error(&der, e.to_string(), source_name))
        }
        PKCS8_PRIVATE_LABEL => SigningKey::from_pkcs8_der(&body)
            .map_err(|e| private_key_error(&body, e.to_string(), source_name)),
        "RSA PRIVATE KEY" => Err(KeyError::WrongKeyType {
            source_name: source_name.to_string(),
            found: "an RSA key".into(),
        }),
        "DSA PRIVATE KEY" => Err(KeyError::WrongKeyType {
            source_name: source_name.to_string(),
            found: "a DSA key".into(),
        }),
        other => Err(KeyError::WrongPemType {
            source_name: source_name.to_string(),
            expected: "private key (ENCRYPTED SIGSTORE PRIVATE KEY, ENCRYPTED COSIGN PRIVATE KEY or PRIVATE KEY)",
            found: other.to_string(),
            hint: if other == PUBLIC_LABEL {
                "this is a public key; pass the private key (the .key file) for signing"
            } else if other == "EC PRIVATE KEY" {
                "convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`"
            } else {
                "create a key with `atp-bundler keygen`"
            },
        }),
    }
}

/// Load a public key (`PUBLIC KEY` PEM).
pub fn load_public(pem_text: &str) -> Result<VerifyingKey, KeyError> {
    load_public_named(pem_text, "public key")
}

/// Load a public key from a file; errors name the path.
pub fn load_public_file(path: &std::path::Path) -> Result<VerifyingKey, KeyError> {
    let (name, text) = read_key_file(path)?;
    load_public_named(&text, &name)
}

/// Load a public key; `source_name` names it in errors.
pub fn load_public_named(pem_text: &str, source_name: &str) -> Result<VerifyingKey, KeyError> {
    let (label, der) = decode_pem(pem_text, source_name)?;
    if label == "RSA PUBLIC KEY" {
        return Err(KeyError::WrongKeyType {
            source_name: source_name.to_string(),
            found: "an RSA key".into(),
        });
    }
    if label != PUBLIC_LABEL {
        return Err(KeyError::WrongPemType {
            source_name: source_name.to_string(),
            expected: "PUBLIC KEY",
            found: label.clone(),
            hint: if label.contains("PRIVATE") {
                "this is a private key; pass the public key (the .pub file) to verify"
            } else {
                "pass the .pub file written by `atp-bundler keygen` or `cosign generate-key-pair`"
            },
        });
    }
    VerifyingKey::from_public_key_der(&der)
        .map_err(|e| public_key_error(&der, e.to_string(), source_name))
}

/// PEM `PUBLIC KEY` text of a verifying key.
pub fn public_pem(key: &VerifyingKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode {
            reason: e.to_string(),
        })
}

/// `sha256:<hex>` of the key's SubjectPublicKeyInfo DER.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("a P-256 public key always encodes");
    crate::Digest::of(der.as_bytes()).to_string()
}

/// The key password from `ATP_KEY_PASSWORD`, else `COSIGN_PASSWORD`; `None`
/// when neither is set. An empty password is a valid value.
pub fn password_from_env() -> Option<String> {
    std::env::var("ATP_KEY_PASSWORD")
        .ok()
        .or_else(|| std::env::var("COSIGN_PASSWORD").ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkcs8::der::pem;

    #[test]
    fn cosign_round_trip_and_wrong_password() {
        let (private, public) = keygen("hunter2").unwrap();
        assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let sk = load_private(&private, "hunter2").unwrap();
        let vk = load_public(&public).unwrap();
        assert_eq!(sk.verifying_key(), &vk);
        let err = load_private_named(&private, "nope", "release.key").unwrap_err();
        assert!(matches!(err, KeyError::WrongPassword { .. }));
        let msg = err.to_string();
        assert!(msg.starts_with("wrong password for release.key"), "{msg}");
        assert!(msg.contains("hint: set ATP_KEY_PASSWORD"), "{msg}");
        assert!(!msg.contains("nope"));
    }

    #[test]
    fn old_cosign_label_is_read() {
        let (private, _) = keygen("").unwrap();
        let renamed = private.replace(SIGSTORE_PRIVATE_LABEL, COSIGN_PRIVATE_LABEL);
        assert!(load_private(&renamed, "").is_ok());
    }

    #[test]
    fn huge_scrypt_n_is_refused_before_deriving() {
        let (private, _) = keygen("").unwrap();
        let (_, body) = pem::decode_vec(private.as_bytes()).unwrap();
        for (n, r, p) in [
            (1u64 << 30, 8, 1),
            (1 << 15, 16, 1),
            (1 << 15, 8, 2),
            (1 << 14, 8, 1),
        ] {
            // The salt is made unreadable too: scrypt cannot run without it,
            // so getting the parameter refusal (and not a salt error) shows
            // the parameters are judged before anything is derived.
            let mut json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            json["kdf"]["params"] = serde_json::json!({"N": n, "r": r, "p": p});
            json["kdf"]["salt"] = "not base64!".into();
            let pem_text = pem::encode_string(
                SIGSTORE_PRIVATE_LABEL,
                LineEnding::LF,
                json.to_string().as_bytes(),
            )
            .unwrap();
            let err = load_private(&pem_text, "").unwrap_err();
            assert!(
                matches!(err, KeyError::UnsafeKdfParams { n: en, r: er, p: ep, .. }
                    if (en, er, ep) == (n, r, p)),
                "{err}"
            );
        }
    }

    #[test]
    fn wrong_pem_types_are_named() {
        let (private, public) = keygen("").unwrap();
        let err = load_private(&public, "").unwrap_err();
        assert!(err.to_string().contains("found \"PUBLIC KEY\""), "{err}");
        assert!(
            err.to_string().contains("hint: this is a public key"),
            "{err}"
        );
        let err = load_public(&private).unwrap_err();
        assert!(err.to_string().contains("this is a private key"), "{err}");
        assert!(matches!(load_public("hello"), Err(KeyError::NotPem { .. })));
    }

    #[test]
    fn fingerprint_is_sha256_of_spki() {
        let (_, public) = keygen("").unwrap();
        let vk = load_public(&public).unwrap();
        let (_, der) = pem::decode_vec(public.as_bytes()).unwrap();
        assert_eq!(fingerprint(&vk), crate::Digest::of(&der).to_string());
    }
}
