//! cosign's encrypted private-key format: scrypt over the password, then
//! nacl/secretbox over the PKCS#8 DER of the key, in a JSON body under the
//! `ENCRYPTED SIGSTORE PRIVATE KEY` PEM label.
//!
//! The KDF parameters of a key file are untrusted: only cosign's own
//! (N = 2^15 to 2^17, r = 8, p = 1) are accepted, checked before any key
//! derivation. The password never appears in an error.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use pkcs8::der::pem::{self, LineEnding};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{KeyError, SIGSTORE_PRIVATE_LABEL};

/// scrypt parameters written by [`super::keygen`] (cosign's: N = 2^15, r = 8, p = 1).
const LOG_N: u8 = 15;
const ACCEPTED_LOG_N: [u8; 3] = [15, 16, 17];

#[derive(Serialize, Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct KdfParams {
    N: u64,
    r: u64,
    p: u64,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// Encrypt a private key in cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` format.
pub fn encrypt_private(key: &SigningKey, password: &str) -> Result<String, KeyError> {
    let der = key.to_pkcs8_der().map_err(|e| KeyError::Encode {
        reason: e.to_string(),
    })?;
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let secret = derive(password, &salt, LOG_N)?;
    let cipher = XSalsa20Poly1305::new((&secret).into());
    let ciphertext = cipher
        .encrypt((&nonce).into(), der.as_bytes())
        .map_err(|e| KeyError::Encode {
            reason: e.to_string(),
        })?;
    let body = EncryptedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params: KdfParams {
                N: 1 << LOG_N,
                r: 8,
                p: 1,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(ciphertext),
    };
    let json = serde_json::to_vec(&body).map_err(|e| KeyError::Encode {
        reason: e.to_string(),
    })?;
    pem::encode_string(SIGSTORE_PRIVATE_LABEL, LineEnding::LF, &json).map_err(|e| {
        KeyError::Encode {
            reason: e.to_string(),
        }
    })
}

fn derive(password: &str, salt: &[u8], log_n: u8) -> Result<[u8; 32], KeyError> {
    let params = scrypt::Params::new(log_n, 8, 1, 32).map_err(|e| KeyError::Encode {
        reason: e.to_string(),
    })?;
    let mut out = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), salt, &params, &mut out).map_err(|e| KeyError::Encode {
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub(super) fn decrypt(body: &[u8], password: &str, source_name: &str) -> Result<Vec<u8>, KeyError> {
    let bad = |reason: &str| KeyError::BadEncryptedKey {
        source_name: source_name.to_string(),
        reason: reason.to_string(),
    };
    let enc: EncryptedKey =
        serde_json::from_slice(body).map_err(|e| bad(&format!("invalid JSON body: {e}")))?;
    if enc.kdf.name != "scrypt" {
        return Err(bad(&format!("unsupported kdf {:?}", enc.kdf.name)));
    }
    if enc.cipher.name != "nacl/secretbox" {
        return Err(bad(&format!("unsupported cipher {:?}", enc.cipher.name)));
    }
    let KdfParams { N: n, r, p } = enc.kdf.params;
    let log_n = ACCEPTED_LOG_N.into_iter().find(|&l| 1u64 << l == n);
    let log_n = match log_n {
        Some(l) if r == 8 && p == 1 => l,
        _ => {
            return Err(KeyError::UnsafeKdfParams {
                source_name: source_name.to_string(),
                n,
                r,
                p,
            })
        }
    };
    let salt = B64
        .decode(&enc.kdf.salt)
        .map_err(|e| bad(&format!("salt: {e}")))?;
    let nonce = B64
        .decode(&enc.cipher.nonce)
        .map_err(|e| bad(&format!("nonce: {e}")))?;
    if nonce.len() != 24 {
        return Err(bad(&format!("nonce is {} bytes, expected 24", nonce.len())));
    }
    let ciphertext = B64
        .decode(&enc.ciphertext)
        .map_err(|e| bad(&format!("ciphertext: {e}")))?;
    let secret = derive(password, &salt, log_n)?;
    let cipher = XSalsa20Poly1305::new((&secret).into());
    cipher
        .decrypt(nonce[..].into(), &ciphertext[..])
        .map_err(|_| KeyError::WrongPassword {
            source_name: source_name.to_string(),
        })
}
