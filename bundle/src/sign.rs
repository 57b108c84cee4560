//! Signatures over `index.json`: base64 of an ASN.1 DER ECDSA P-256 /
//! SHA-256 signature, deterministic per RFC 6979 (spec section 7), the same
//! bytes `cosign sign-blob` writes and `openssl dgst -verify` accepts.
//!
//! Verification is strict: only canonical base64 (padding, no white space)
//! is accepted, so the signature entry has exactly one valid spelling.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("signature is not valid base64: {reason}; hint: index.json.sig must hold standard base64 with padding and no line breaks")]
    BadBase64 { reason: String },
    #[error("signature is not an ASN.1 DER ECDSA signature: {reason}")]
    BadDer { reason: String },
    #[error("signature does not match the payload for this key; hint: the signed file was modified, or it was signed by another key")]
    Mismatch,
}

/// Sign `payload`; returns the base64 text for `index.json.sig`.
pub fn sign(key: &SigningKey, payload: &[u8]) -> String {
    let sig: Signature = key.sign(payload);
    B64.encode(sig.to_der().as_bytes())
}

/// Verify the base64 signature `sig_b64` over `payload`.
pub fn verify(key: &VerifyingKey, payload: &[u8], sig_b64: &str) -> Result<(), SignatureError> {
    let der = B64
        .decode(sig_b64.as_bytes())
        .map_err(|e| SignatureError::BadBase64 {
            reason: e.to_string(),
        })?;
    if B64.encode(&der) != sig_b64 {
        return Err(SignatureError::BadBase64 {
            reason: "not the canonical encoding".to_string(),
        });
    }
    let sig = Signature::from_der(&der).map_err(|e| SignatureError::BadDer {
        reason: e.to_string(),
    })?;
    if sig.to_der().as_bytes() != der.as_slice() {
        return Err(SignatureError::BadDer {
            reason: "not the canonical DER encoding".to_string(),
        });
    }
    key.verify(payload, &sig)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    #[test]
    fn deterministic_and_verifies() {
        let k = key();
        let a = sign(&k, b"payload");
        assert_eq!(a, sign(&k, b"payload"));
        verify(k.verifying_key(), b"payload", &a).unwrap();
        assert_eq!(
            verify(k.verifying_key(), b"payloae", &a),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn distinct_errors() {
        let k = key();
        assert!(matches!(
            verify(k.verifying_key(), b"p", "not base64!"),
            Err(SignatureError::BadBase64 { .. })
        ));
        assert!(matches!(
            verify(k.verifying_key(), b"p", &B64.encode(b"hello")),
            Err(SignatureError::BadDer { .. })
        ));
        let good = sign(&k, b"p");
        assert!(matches!(
            verify(k.verifying_key(), b"p", &format!("{good}\n")),
            Err(SignatureError::BadBase64 { .. })
        ));
    }
}
