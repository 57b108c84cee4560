//! `spec.verify` (issue 19): before an image crosses the gap, check that the
//! source holds a cosign simple-signing signature of it by the given P-256
//! key, the check a site's admission policy would run. The signature is read
//! from cosign's tag `sha256-<hex>.sig` of the digest upstream signed (the
//! image's root; for a pruned index, the source index), each payload layer
//! fetched digest-checked and bounded, its `dev.cosignproject.cosign/signature`
//! verified over the payload bytes with the project's own P-256 code
//! (`atp_bundle::sign::verify`), and the payload's
//! `critical.image.docker-manifest-digest` compared with that digest.
//!
//! [`judge`] is the pure rule; [`verify_image`] fetches. Never trusts a
//! payload before its signature verified.

use std::collections::HashMap;
use std::path::PathBuf;

use atp_bundle::format::manifest::Manifest;
use atp_bundle::format::referrer::cosign_tag;
use atp_bundle::format::{annotation as ann, media};
use atp_bundle::Digest;
use atp_registry::{Client, Repository};
use p256::ecdsa::VerifyingKey;

use crate::resolve::{Origin, ResolvedImage};
use crate::spec::Spec;

/// A simple-signing payload larger than this is not read.
pub const MAX_PAYLOAD: u64 = 64 << 10;

/// Why an image's upstream signature does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No signature tag, or one without a simple-signing layer.
    NoSignature,
    /// Signatures, but none verifies with the key.
    WrongKey { signatures: usize },
    /// A signature by the key, but its payload names another digest.
    OtherDigest { named: String },
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("image {image}: spec.verify: {}\nhint: {}", problem_text(.problem, .tag, .key, .expected), problem_hint(.problem))]
    Refused {
        image: String,
        tag: String,
        key: PathBuf,
        expected: Digest,
        problem: Problem,
    },
    #[error("image {image}: spec.verify needs a registry source (an OCI layout or docker archive carries no signatures)\nhint: read the image from its registry, or drop spec.verify for it")]
    NotARegistry { image: String },
    #[error("spec.verify key {path}: {source}\nhint: give the publisher's cosign public key (PEM, P-256), e.g. cosign.pub")]
    Key {
        path: PathBuf,
        #[source]
        source: atp_bundle::keys::KeyError,
    },
    #[error("image {image}: spec.verify: reading {what}: {source}")]
    Registry {
        image: String,
        what: String,
        #[source]
        source: atp_registry::Error,
    },
}

fn problem_text(p: &Problem, tag: &str, key: &std::path::Path, expected: &Digest) -> String {
    match p {
        Problem::NoSignature => format!("no cosign signature of {expected} in the source (tag {tag} holds no simple-signing signature)"),
        Problem::WrongKey { signatures } => format!(
            "{signatures} signature(s) under {tag}, none made by the key {}",
            key.display()
        ),
        Problem::OtherDigest { named } => format!(
            "the signature by {} under {tag} names the manifest digest {named}, not the image's {expected}",
            key.display()
        ),
    }
}

fn problem_hint(p: &Problem) -> &'static str {
    match p {
        Problem::NoSignature => {
            "sign the image upstream (cosign sign --key ...), or drop spec.verify for it"
        }
        Problem::WrongKey { .. } => "check that spec.verify names the publisher's public key",
        Problem::OtherDigest { .. } => {
            "the signature was copied from another image: do not carry this image"
        }
    }
}

/// The rule: `signatures` are (payload bytes, base64 signature) pairs from
/// the `.sig` manifest's simple-signing layers; `Ok` when one verifies
/// with `key` and its payload names `expected`.
pub fn judge(
    expected: &Digest,
    key: &VerifyingKey,
    signatures: &[(Vec<u8>, String)],
) -> Result<(), Problem> {
    let mut other = None;
    for (payload, sig) in signatures {
        if atp_bundle::sign::verify(key, payload, sig).is_err() {
            continue;
        }
        let named = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| {
                v["critical"]["image"]["docker-manifest-digest"]
                    .as_str()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "(none: the payload is not simple-signing JSON)".into());
        if named == expected.to_string() {
            return Ok(());
        }
        other.get_or_insert(named);
    }
    Err(match other {
        Some(named) => Problem::OtherDigest { named },
        None if signatures.is_empty() => Problem::NoSignature,
        None => Problem::WrongKey {
            signatures: signatures.len(),
        },
    })
}

/// Check every image that `spec.verify` (or its own `verify`) names a key
/// for, in order; the first refusal stops `create`. An image discovered
/// from the overlay is held to the global key.
pub async fn verify_spec(spec: &Spec, images: &[ResolvedImage]) -> Result<(), UpstreamError> {
    let mut loaded: HashMap<PathBuf, VerifyingKey> = HashMap::new();
    for img in images {
        let key_path = spec
            .images
            .iter()
            .map(|i| &i.source)
            .find(|s| crate::resolve::label(s) == img.source)
            .and_then(|s| spec.verify_key(s))
            .or(spec.verify.as_deref());
        let Some(path) = key_path else {
            continue;
        };
        if !loaded.contains_key(path) {
            let key =
                atp_bundle::keys::load_public_file(path).map_err(|source| UpstreamError::Key {
                    path: path.to_path_buf(),
                    source,
                })?;
            loaded.insert(path.to_path_buf(), key);
        }
        verify_image(img, &loaded[path], path).await?;
        tracing::info!(image = %img.reference, key = %path.display(), "spec.verify: upstream signature holds");
    }
    Ok(())
}

/// Check `img` against `key` (read from `key_path`), as the module doc says.
pub async fn verify_image(
    img: &ResolvedImage,
    key: &VerifyingKey,
    key_path: &std::path::Path,
) -> Result<(), UpstreamError> {
    let Origin::Registry(client, repo) = &img.origin else {
        return Err(UpstreamError::NotARegistry {
            image: img.reference.clone(),
        });
    };
    let expected = img.source_digest.clone().unwrap_or(img.root.digest.clone());
    let tag = cosign_tag(&expected, atp_bundle::format::referrer::SIGNATURE_SUFFIX);
    let signatures = read_signatures(client, repo, img, &tag).await?;
    judge(&expected, key, &signatures).map_err(|problem| UpstreamError::Refused {
        image: img.reference.clone(),
        tag,
        key: key_path.to_path_buf(),
        expected,
        problem,
    })
}

async fn read_signatures(
    client: &Client,
    repo: &Repository,
    img: &ResolvedImage,
    tag: &str,
) -> Result<Vec<(Vec<u8>, String)>, UpstreamError> {
    let err = |what: String| {
        let image = img.reference.clone();
        move |source| UpstreamError::Registry {
            image,
            what,
            source,
        }
    };
    if client
        .manifest_exists(repo, tag)
        .await
        .map_err(err(format!("{repo}:{tag}")))?
        .is_none()
    {
        return Ok(Vec::new());
    }
    let reference = repo.tag(tag).map_err(err(format!("{repo}:{tag}")))?;
    let m = client
        .get_manifest(&reference)
        .await
        .map_err(err(format!("{repo}:{tag}")))?;
    let Ok(Manifest::Image(manifest)) = Manifest::parse(&m.media_type, &m.bytes, tag) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for layer in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == media::COSIGN_SIMPLE_SIGNING && l.size <= MAX_PAYLOAD)
    {
        let Some(sig) = layer.annotation(ann::COSIGN_SIGNATURE) else {
            continue;
        };
        let mut payload = Vec::new();
        client
            .fetch_blob_to(repo, &layer.digest, layer.size, &mut payload)
            .await
            .map_err(err(format!("the signature payload {}", layer.digest)))?;
        out.push((payload, sig.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;

    fn payload(d: &Digest) -> Vec<u8> {
        format!(r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"cosign container image signature"}},"optional":null}}"#).into_bytes()
    }

    #[test]
    fn judges_key_and_digest() {
        let ours = SigningKey::from_slice(&[3u8; 32]).unwrap();
        let theirs = SigningKey::from_slice(&[4u8; 32]).unwrap();
        let d = Digest::of(b"image");
        let other = Digest::of(b"other");
        let signed = |k: &SigningKey, p: Vec<u8>| {
            let s = atp_bundle::sign::sign(k, &p);
            (p, s)
        };
        let vk = ours.verifying_key();
        assert_eq!(judge(&d, vk, &[]), Err(Problem::NoSignature));
        assert_eq!(judge(&d, vk, &[signed(&ours, payload(&d))]), Ok(()));
        assert_eq!(
            judge(&d, vk, &[signed(&theirs, payload(&d))]),
            Err(Problem::WrongKey { signatures: 1 })
        );
        assert_eq!(
            judge(&d, vk, &[signed(&ours, payload(&other))]),
            Err(Problem::OtherDigest {
                named: other.to_string()
            })
        );
        // One good signature among others is enough.
        assert_eq!(
            judge(
                &d,
                vk,
                &[signed(&theirs, payload(&d)), signed(&ours, payload(&d))]
            ),
            Ok(())
        );
        // A payload edited after signing does not verify.
        let (mut p, s) = signed(&ours, payload(&d));
        p[10] ^= 1;
        assert_eq!(
            judge(&d, vk, &[(p, s)]),
            Err(Problem::WrongKey { signatures: 1 })
        );
    }
}
