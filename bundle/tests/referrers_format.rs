//! Referrers in the bundle format (spec 4.1): where they sit in `index.json`
//! and the bundle config, that a rebuild is byte-identical, that a bundle
//! without them is unchanged, that every flipped bit in a referrer's blobs
//! is found, and the verifier's referrer rules, each naming the referrer.

use atp_bundle::assemble::ImageInput;
use atp_bundle::format::{annotation as ann, role, ImageIndex};
use atp_bundle::sample::referrers::{
    annotations_of, build, sample_with_referrers, with_index_edit, ReferrerSample, SBOM_TYPE,
    SIGSTORE_TYPE,
};
use atp_bundle::sample::{sample, sample_created};
use atp_bundle::verify::{verify_reader, FindingKind, Report};
use atp_bundle::Digest;
use p256::ecdsa::SigningKey;

fn key() -> SigningKey {
    SigningKey::from_slice(&[7u8; 32]).unwrap()
}

fn verify(bytes: &[u8]) -> Report {
    verify_reader(bytes, key().verifying_key(), sample_created())
}

fn good() -> ReferrerSample {
    sample_with_referrers(&key()).unwrap()
}

/// The findings that name `digest`, as text.
fn naming(r: &Report, digest: &Digest) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.digest.as_ref() == Some(digest))
        .map(|f| f.message.clone())
        .collect()
}

#[test]
fn referrers_are_top_level_after_the_images_and_listed_per_image() {
    let s = good();
    let index = &s.sample.assembled.index;
    let roles: Vec<&str> = index
        .manifests
        .iter()
        .map(|d| d.annotation(ann::ROLE).unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            role::BUNDLE,
            role::IMAGE,
            role::REFERRER,
            role::REFERRER,
            role::REFERRER
        ]
    );
    let sig = &index.manifests[2];
    assert_eq!(sig.digest, s.signature);
    assert_eq!(
        sig.annotation(ann::SUBJECT),
        Some(s.sample.image_index.to_string().as_str())
    );
    assert_eq!(
        sig.annotation(ann::REFERRER_OF),
        Some(atp_bundle::sample::SAMPLE_REF)
    );
    let hex = &s.sample.image_index.to_string()["sha256:".len()..];
    assert_eq!(
        sig.annotation(ann::REFERRER_TAG),
        Some(format!("sha256-{hex}.sig").as_str())
    );
    assert_eq!(index.manifests[3].artifact_type.as_deref(), Some(SBOM_TYPE));
    assert_eq!(index.manifests[3].annotation(ann::REFERRER_TAG), None);
    assert!(index.manifests[2..]
        .iter()
        .all(|d| d.annotation(ann::REF_NAME).is_none()));

    let entry = &s.sample.assembled.config.images[0];
    let listed: Vec<(&Digest, &Digest, &str)> = entry
        .referrers
        .iter()
        .map(|r| (&r.digest, &r.subject, r.artifact_type.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            (
                &s.signature,
                &s.sample.image_index,
                "application/vnd.oci.image.config.v1+json"
            ),
            (&s.sbom, &s.sample.manifests[0], SBOM_TYPE),
            (&s.nested, &s.sbom, SIGSTORE_TYPE),
        ]
    );

    let r = verify(&s.sample.bytes());
    assert!(r.is_ok(), "{:#?}", r.findings);
    let carried: Vec<&Digest> = r.referrers().map(|t| &t.descriptor.digest).collect();
    assert_eq!(carried, [&s.signature, &s.sbom, &s.nested]);
    // Each referrer's manifest and blobs were verified like an image's.
    for d in [&s.signature, &s.sbom, &s.nested] {
        assert!(r.blobs.iter().any(|b| &b.digest == d), "{d} not verified");
    }
}

#[test]
fn a_rebuild_is_byte_identical_and_a_bundle_without_referrers_is_unchanged() {
    assert_eq!(good().sample.bytes(), good().sample.bytes());
    let plain = sample(&key(), None).unwrap();
    let config = String::from_utf8(plain.assembled.config.to_canonical_json()).unwrap();
    assert!(!config.contains("referrers"), "{config}");
    let index = String::from_utf8(plain.assembled.index_json.clone()).unwrap();
    assert!(!index.contains("referrer"), "{index}");
}

#[test]
fn a_referrer_carried_for_two_images_is_carried_once() {
    let s = good();
    let mut plan = s.plan.clone();
    let mut twin: ImageInput = plan.images[0].clone();
    twin.reference = "docker.io/atp/router:latest".into();
    plan.images.push(twin);
    let b = build(&plan, &s.store, &key(), &s.sample).unwrap();
    assert_eq!(
        b.assembled.index.manifests.len(),
        6,
        "2 images, 3 referrers"
    );
    assert!(b.assembled.config.images[1].referrers.is_empty());
    assert!(verify(&b.bytes()).is_ok());
}

#[test]
fn every_bit_flip_in_a_referrer_blob_is_detected() {
    let s = good();
    let bytes = s.sample.bytes();
    let r = verify(&bytes);
    assert!(r.is_ok());
    // Every blob only a referrer brings: three manifests, the signature's
    // config and three layers (the empty config `{}` is the sample's too).
    let before: std::collections::HashSet<Digest> = sample(&key(), None)
        .unwrap()
        .blobs
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    let mine: Vec<_> = r
        .blobs
        .iter()
        .filter(|b| {
            !before.contains(&b.digest) && !s.sample.assembled.generated.contains_key(&b.digest)
        })
        .cloned()
        .collect();
    assert_eq!(mine.len(), 7);
    let mut flips = 0;
    for b in &mine {
        for i in 0..b.size {
            let mut bad = bytes.clone();
            let at = (b.data_offset + i) as usize;
            bad[at] ^= 1 << (i % 8);
            let r = verify(&bad);
            assert!(!r.is_ok(), "flip in {} at byte {i} undetected", b.digest);
            flips += 1;
        }
    }
    assert!(flips > 500);
}

fn edited(edit: impl FnOnce(&mut ImageIndex, &ReferrerSample)) -> (ReferrerSample, Report) {
    let s = good();
    let bytes = with_index_edit(&s.sample, &key(), |i| edit(i, &s));
    let r = verify(&bytes);
    (s, r)
}

#[test]
fn a_referrer_of_an_image_the_bundle_does_not_carry_is_a_finding() {
    let (s, r) = edited(|i, s| {
        annotations_of(i, &s.sbom).insert(ann::REFERRER_OF.into(), "docker.io/other:1".into());
    });
    let m = naming(&r, &s.sbom);
    assert!(
        m.iter()
            .any(|m| m.contains("\"docker.io/other:1\", which is not an image of this bundle")),
        "{m:#?}"
    );
    assert!(r.of_kind(FindingKind::BadIndex).count() >= 1);
}

#[test]
fn a_subject_that_is_not_a_manifest_of_the_bundle_is_a_finding() {
    let (s, r) = edited(|i, s| {
        let layer = s.sample.layers[0].to_string();
        annotations_of(i, &s.sbom).insert(ann::SUBJECT.into(), layer);
    });
    let m = naming(&r, &s.sbom);
    assert!(
        m.iter()
            .any(|m| m.contains("which is not a manifest of this bundle")),
        "{m:#?}"
    );
    // Its own subject field disagrees too, and the config no longer agrees.
    assert!(
        m.iter()
            .any(|m| m.contains("referrer manifest names subject")),
        "{m:#?}"
    );
    assert!(r.findings.iter().any(|f| f
        .message
        .contains("which index.json does not carry as such")));
}

#[test]
fn a_subject_annotation_that_disagrees_with_the_manifest_is_a_finding() {
    let (s, r) = edited(|i, s| {
        let other = s.sample.manifests[1].to_string();
        annotations_of(i, &s.sbom).insert(ann::SUBJECT.into(), other);
    });
    let m = naming(&r, &s.sbom);
    assert_eq!(m.len(), 1, "{:#?}", r.findings);
    assert!(
        m[0].contains(&format!(
            "referrer manifest names subject {}, but index.json says it refers to {}",
            s.sample.manifests[0], s.sample.manifests[1]
        )),
        "{m:#?}"
    );
}

#[test]
fn a_referrer_whose_subject_is_another_image_is_a_finding() {
    let s = good();
    let mut plan = s.plan.clone();
    // A second image, the arm64 manifest on its own; the SBOM (of amd64)
    // claimed for it.
    let arm = &s.sample.manifests[1];
    let sbom = plan.images[0].referrers.remove(1);
    plan.images[0].referrers.pop(); // the nested one follows the SBOM
    let mut other = plan.images[0].clone();
    other.reference = "docker.io/atp/arm:1".into();
    other.descriptor = atp_bundle::format::Descriptor::of_bytes(
        atp_bundle::format::media::OCI_MANIFEST,
        &s.store[arm],
    );
    other.referrers = vec![sbom];
    plan.images.push(other);
    let b = build(&plan, &s.store, &key(), &s.sample).unwrap();
    let r = verify(&b.bytes());
    let m = naming(&r, &s.sbom);
    assert_eq!(m.len(), 1, "{:#?}", r.findings);
    assert!(
        m[0].contains(&format!(
            "refers to {}, a manifest of another image than \"docker.io/atp/arm:1\"",
            s.sample.manifests[0]
        )),
        "{m:#?}"
    );
}

#[test]
fn referrers_before_an_image_or_with_a_foreign_cosign_tag_are_findings() {
    let (s, r) = edited(|i, _| i.manifests.swap(1, 2));
    assert!(
        naming(&r, &s.sample.image_index)
            .iter()
            .any(|m| m.contains("role \"image\" comes after role \"referrer\"")),
        "{:#?}",
        r.findings
    );
    let (s, r) = edited(|i, s| {
        let tag = format!("sha256-{}.sig", "0".repeat(64));
        annotations_of(i, &s.signature).insert(ann::REFERRER_TAG.into(), tag);
    });
    assert!(
        naming(&r, &s.signature)
            .iter()
            .any(|m| m.contains("is not cosign's tag for its subject")),
        "{:#?}",
        r.findings
    );
    let (s, r) = edited(|i, s| {
        annotations_of(i, &s.nested).remove(ann::SUBJECT);
    });
    assert!(
        naming(&r, &s.nested)
            .iter()
            .any(|m| m.contains("no dev.atp-offline.subject annotation")),
        "{:#?}",
        r.findings
    );
}
