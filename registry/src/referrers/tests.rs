//! Unit tests of `referrers`: the pure merge, bounded index parsing, the
//! descriptor a referrer is listed with, tag names and `Link` parsing.

use super::wire::next_link;
use super::*;

fn desc(n: u8, artifact: &str) -> Descriptor {
    let mut d = Descriptor::of_bytes(media::OCI_MANIFEST, &[n]);
    d.artifact_type = Some(artifact.to_string());
    d
}

fn index(entries: &[Descriptor]) -> ImageIndex {
    merge_fallback_index(None, entries).unwrap()
}

#[test]
fn tags_follow_the_referrers_tag_schema_and_cosign() {
    let d: Digest = format!("sha256:{}", "ab".repeat(32)).parse().unwrap();
    assert_eq!(fallback_tag(&d), format!("sha256-{}", "ab".repeat(32)));
    assert_eq!(
        cosign_tag(&d, "sig"),
        format!("sha256-{}.sig", "ab".repeat(32))
    );
}

#[test]
fn merge_into_nothing_makes_an_oci_index_and_nothing_added_is_none() {
    assert_eq!(merge_fallback_index(None, &[]), None);
    let a = desc(1, "application/spdx+json");
    let i = merge_fallback_index(None, &[a.clone(), a.clone()]).unwrap();
    assert_eq!(i.schema_version, 2);
    assert_eq!(i.media_type.as_deref(), Some(media::OCI_INDEX));
    assert_eq!(i.manifests, vec![a]);
}

#[test]
fn merge_keeps_existing_entries_in_order_and_appends_new_ones() {
    let foreign = desc(9, "application/vnd.foreign+json").with_annotation("x", "y");
    let (a, b) = (desc(1, "a"), desc(2, "b"));
    let existing = index(&[foreign.clone(), a.clone()]);
    let merged = merge_fallback_index(Some(&existing), &[b.clone(), a.clone()]).unwrap();
    assert_eq!(merged.manifests, vec![foreign, a.clone(), b.clone()]);
    // Already listed: nothing changes, so nothing is written.
    assert_eq!(merge_fallback_index(Some(&merged), &[a, b]), None);
}

#[test]
fn merge_is_deterministic_bytes() {
    let (a, b) = (desc(1, "a"), desc(2, "b"));
    let x = atp_bundle::format::json::to_canonical_vec(&index(&[a.clone(), b.clone()])).unwrap();
    let y = atp_bundle::format::json::to_canonical_vec(&index(&[a, b])).unwrap();
    assert_eq!(x, y);
}

#[test]
fn parse_index_is_bounded() {
    let entries: Vec<_> = (0..5).map(|n| desc(n, "a")).collect();
    let bytes = serde_json::to_vec(&index(&entries)).unwrap();
    assert_eq!(parse_index(media::OCI_INDEX, &bytes, 5).unwrap(), entries);
    // Sniffed when the transport gave no type.
    assert_eq!(parse_index("", &bytes, 5).unwrap().len(), 5);
    let e = parse_index(media::OCI_INDEX, &bytes, 4).unwrap_err();
    assert!(e.contains("5 entries, over the limit of 4"), "{e}");
    let huge = vec![b' '; MAX_INDEX_BYTES as usize + 1];
    let e = parse_index(media::OCI_INDEX, &huge, 5).unwrap_err();
    assert!(e.contains("over the 4194304 byte limit"), "{e}");
}

#[test]
fn parse_index_refuses_what_is_not_an_index() {
    let m = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":1},"layers":[]}"#;
    let e = parse_index(media::OCI_MANIFEST, m, 5).unwrap_err();
    assert!(e.contains("is not an OCI image index"), "{e}");
    let e = parse_index(media::OCI_INDEX, b"<html>not found</html>", 5).unwrap_err();
    assert!(e.contains("not an image index"), "{e}");
    let e = parse_index(
        media::OCI_INDEX,
        br#"{"schemaVersion":1,"manifests":[]}"#,
        5,
    )
    .unwrap_err();
    assert!(e.contains("schemaVersion is 1"), "{e}");
}

#[test]
fn referrer_descriptor_takes_artifact_type_then_config_type_and_annotations() {
    let subject = Digest::of(b"s");
    let art = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"application/spdx+json","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[],"subject":{{"mediaType":"{}","digest":"{subject}","size":1}},"annotations":{{"org.opencontainers.image.created":"2026-01-01T00:00:00Z"}}}}"#,
        media::OCI_MANIFEST,
        media::OCI_EMPTY,
        Digest::of(b"{}"),
        media::OCI_MANIFEST,
    );
    let d = referrer_descriptor(media::OCI_MANIFEST, art.as_bytes()).unwrap();
    assert_eq!(d.digest, Digest::of(art.as_bytes()));
    assert_eq!(d.size, art.len() as u64);
    assert_eq!(d.artifact_type.as_deref(), Some("application/spdx+json"));
    assert_eq!(
        d.annotation("org.opencontainers.image.created"),
        Some("2026-01-01T00:00:00Z")
    );
    assert_eq!(subject_of(art.as_bytes()).unwrap(), Some(subject));
    let sig = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
        media::OCI_MANIFEST,
        Digest::of(b"{}"),
    );
    let d = referrer_descriptor(media::OCI_MANIFEST, sig.as_bytes()).unwrap();
    assert_eq!(
        d.artifact_type.as_deref(),
        Some("application/vnd.oci.image.config.v1+json")
    );
    assert_eq!(subject_of(sig.as_bytes()).unwrap(), None);
}

#[test]
fn next_link_reads_rel_next_only() {
    assert_eq!(
        next_link(r#"</v2/a/referrers/sha256:x?n=2&last=y>; rel="next""#).as_deref(),
        Some("/v2/a/referrers/sha256:x?n=2&last=y")
    );
    assert_eq!(next_link(r#"</v2/a>; rel="prev""#), None);
    assert_eq!(next_link("garbage"), None);
}

fn cosign_manifest(layers: &[(&str, u8)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(mt, n)| {
            serde_json::json!({
                "mediaType": mt,
                "digest": Digest::of(&[*n]).to_string(),
                "size": 1,
                "annotations": {"dev.cosignproject.cosign/signature": format!("sig{n}")}
            })
        })
        .collect();
    let config = cosign_config(&layers);
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": Digest::of(&config).to_string(), "size": config.len()},
        "layers": layers,
    }))
    .unwrap()
}

const SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

#[test]
fn a_cosign_merge_keeps_the_sites_layers_first_then_appends_the_carried_ones() {
    let site = cosign_manifest(&[(SIGNING, 1)]);
    let carried = cosign_manifest(&[(SIGNING, 2), (SIGNING, 1)]);
    let m = merge_cosign_manifest(&site, media::OCI_MANIFEST, &carried)
        .unwrap()
        .unwrap();
    assert_eq!(m.media_type, media::OCI_MANIFEST);
    assert_eq!(m.layers, 2);
    let v: serde_json::Value = serde_json::from_slice(&m.manifest).unwrap();
    let digests: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let (d1, d2) = (Digest::of(&[1]).to_string(), Digest::of(&[2]).to_string());
    assert_eq!(digests, [d1.as_str(), d2.as_str()]);
    // Each layer keeps its annotations (the signature).
    assert_eq!(
        v["layers"][1]["annotations"]["dev.cosignproject.cosign/signature"],
        "sig2"
    );
    // The config is cosign's, listing both layers, and the manifest names it.
    let c: serde_json::Value = serde_json::from_slice(&m.config).unwrap();
    assert_eq!(c["rootfs"]["diff_ids"], serde_json::json!([d1, d2]));
    assert_eq!(c["history"].as_array().unwrap().len(), 2);
    assert_eq!(v["config"]["digest"], Digest::of(&m.config).to_string());
    assert_eq!(v["config"]["size"], m.config.len());
    // Merging again changes nothing.
    assert_eq!(
        merge_cosign_manifest(&m.manifest, "", &carried).unwrap(),
        None
    );
}

#[test]
fn a_cosign_merge_refuses_what_is_not_a_cosign_manifest_of_the_same_kind() {
    let carried = cosign_manifest(&[(SIGNING, 2)]);
    let other = cosign_manifest(&[("application/vnd.dsse.envelope.v1+json", 1)]);
    let e = merge_cosign_manifest(&other, media::OCI_MANIFEST, &carried).unwrap_err();
    assert!(e.contains("dsse"), "{e}");
    let idx = serde_json::to_vec(&index(&[desc(1, "x")])).unwrap();
    let e = merge_cosign_manifest(&idx, media::OCI_INDEX, &carried).unwrap_err();
    assert!(e.contains("not an image manifest"), "{e}");
    let e = merge_cosign_manifest(b"{", media::OCI_MANIFEST, &carried).unwrap_err();
    assert!(e.contains("does not parse"), "{e}");
    let empty = cosign_manifest(&[]);
    let e = merge_cosign_manifest(&empty, media::OCI_MANIFEST, &carried).unwrap_err();
    assert!(e.contains("no layers"), "{e}");
}

#[test]
fn pruning_a_fallback_index_keeps_the_others_in_order_and_empties_to_a_delete() {
    let (a, b, c) = (desc(1, "x"), desc(2, "y"), desc(3, "z"));
    let i = index(&[a.clone(), b.clone(), c.clone()]);
    match prune_fallback_index(&i, std::slice::from_ref(&b.digest)) {
        Pruned::Rest(rest) => assert_eq!(rest.manifests, [a.clone(), c.clone()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        prune_fallback_index(&i, &[desc(9, "q").digest]),
        Pruned::Unchanged
    );
    assert_eq!(
        prune_fallback_index(&i, &[a.digest, b.digest, c.digest]),
        Pruned::Empty
    );
}
