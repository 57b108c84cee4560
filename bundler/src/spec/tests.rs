//! The spec parser's unit tests: the documented skeleton, each field's
//! defaults, and typos and bad values refused naming the field.

use super::*;

const SKELETON: &str = r#"
apiVersion: atp-offline/v1        # optional on input
kind: Bundle                      # optional on input
metadata:
  name: atp
  version: 1.4.0
spec:
  channel: stable
  sequence: 7
  expires: 2027-06-30T00:00:00Z   # optional, RFC 3339
  platforms: [linux/amd64]        # optional; default: every platform
  images:
    - docker.io/atp/router:1.4.0
    - oci:images/router:1.4.0
  manifests:                      # optional
    root: manifests
    overlay: overlays/air-gapped
    discoverImages: false
  files:                          # optional
    - name: models
      source: models/
"#;

#[test]
fn accepts_the_documented_skeleton_as_written() {
    let spec = Spec::parse(SKELETON, Path::new("s.yaml"), Path::new("/r")).unwrap();
    assert_eq!(
        (spec.name.as_str(), spec.version.as_str()),
        ("atp", "1.4.0")
    );
    assert_eq!((spec.channel.as_str(), spec.sequence), ("stable", 7));
    assert_eq!(spec.expires.unwrap().unix_timestamp(), 1_814_313_600);
    assert_eq!(spec.platforms, ["linux/amd64"]);
    assert_eq!(
        spec.images[0].source,
        ImageSource::Registry("docker.io/atp/router:1.4.0".into())
    );
    assert_eq!(
        spec.images[1].source,
        ImageSource::OciLayout {
            dir: "/r/images/router".into(),
            tag: Some("1.4.0".into())
        }
    );
    let m = spec.manifests.unwrap();
    assert_eq!(m.root, Path::new("/r/manifests"));
    assert_eq!(m.overlay, "overlays/air-gapped");
    assert_eq!(spec.files[0].source, Path::new("/r/models/"));
}

#[test]
fn accepts_named_images_and_docker_archives() {
    let text = "metadata: {name: a, version: '1'}\nspec:\n  channel: c\n  sequence: 1\n  images:\n    - {source: 'oci:x', name: docker.io/a/b:1}\n    - docker-archive:save.tar\n";
    let spec = Spec::parse(text, Path::new("s"), Path::new("/b")).unwrap();
    assert_eq!(spec.images[0].name.as_deref(), Some("docker.io/a/b:1"));
    assert_eq!(
        spec.images[0].source,
        ImageSource::OciLayout {
            dir: "/b/x".into(),
            tag: None
        }
    );
    assert_eq!(
        spec.images[1].source,
        ImageSource::DockerArchive {
            file: "/b/save.tar".into()
        }
    );
}

#[test]
fn refuses_typos_and_bad_values_naming_the_field() {
    let cases = [
            ("metadata: {name: a, version: '1'}\nspec: {channel: c, sequence: 1, image: [x]}", "image"),
            ("metadata: {name: a, version: '1'}\nspec: {channel: c, sequence: 1, images: [x], expires: tomorrow}", "spec.expires"),
            ("metadata: {name: a, version: '1'}\nspec: {channel: c, sequence: 1, images: [x], platforms: [linux]}", "spec.platforms"),
            ("metadata: {name: 'a b', version: '1'}\nspec: {channel: c, sequence: 1, images: [x]}", "metadata.name"),
            ("metadata: {name: a, version: '1'}\nspec: {channel: c, sequence: 1, images: ['https://x/y']}", "spec.images[0]"),
            ("metadata: {name: a, version: '1'}\nspec: {channel: c, sequence: 1}", "nothing to bundle"),
            ("metadata: {name: a, version: '1'}\nspec: {channel: c, sequence: 1, manifests: {root: m, overlay: ../x}}", "spec.manifests.overlay"),
            ("metadata: {name: a, version: '1'}\nspec: {channel: c, sequence: 1, manifests: {root: m, overlay: o, imageFields: [{kind: W, path: spec.image}, {kind: W, path: 'spec/image'}]}}", "spec.manifests.imageFields[1]"),
        ];
    for (text, needle) in cases {
        let err = Spec::parse(text, Path::new("s.yaml"), Path::new("/")).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn referrers_and_verify_are_read_with_defaults() {
    let text = "metadata: {name: a, version: '1'}\nspec:\n  channel: c\n  sequence: 1\n  images: [r.example/a:1]\n";
    let spec = Spec::parse(text, Path::new("s"), Path::new("/b")).unwrap();
    assert_eq!(spec.referrers, ReferrerOptions::default());
    assert_eq!(spec.referrers.mode, ReferrerMode::All);
    assert!(spec.verify.is_none());
    let text = "metadata: {name: a, version: '1'}\nspec:\n  channel: c\n  sequence: 1\n  referrers: {mode: signatures, artifactTypes: [application/spdx+json]}\n  verify: {key: keys/cosign.pub}\n  images:\n    - r.example/a:1\n    - {source: r.example/b:1, verify: {key: other.pub}}\n";
    let spec = Spec::parse(text, Path::new("s"), Path::new("/b")).unwrap();
    assert_eq!(spec.referrers.mode, ReferrerMode::Signatures);
    assert_eq!(spec.referrers.artifact_types, ["application/spdx+json"]);
    assert_eq!(
        spec.verify_key(&spec.images[0].source),
        Some(Path::new("/b/keys/cosign.pub"))
    );
    assert_eq!(
        spec.verify_key(&spec.images[1].source),
        Some(Path::new("/b/other.pub"))
    );
    let bad = "metadata: {name: a, version: '1'}\nspec: {channel: c, sequence: 1, images: [x], referrers: {mode: some}}";
    let err = Spec::parse(bad, Path::new("s"), Path::new("/")).unwrap_err();
    assert!(err.to_string().contains("unknown variant `some`"), "{err}");
}

#[test]
fn an_unknown_key_in_an_image_entry_is_named() {
    let text = "metadata: {name: a, version: '1'}\nspec:\n  channel: c\n  sequence: 1\n  images:\n    - {source: 'oci:x', nmae: docker.io/a/b:1}\n";
    let err = Spec::parse(text, Path::new("s.yaml"), Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `nmae`"), "{err}");
    assert!(err.contains("`source`") && err.contains("`name`"), "{err}");
    assert!(!err.contains("untagged"), "{err}");
    // Other shapes still say what an entry may be.
    for (entry, needle) in [
        ("[x]", "an image reference, or a map"),
        ("{name: a}", "missing field `source`"),
    ] {
        let text = format!("metadata: {{name: a, version: '1'}}\nspec: {{channel: c, sequence: 1, images: [{entry}]}}");
        let err = Spec::parse(&text, Path::new("s.yaml"), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{entry}: {err}");
    }
}
