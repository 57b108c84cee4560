//! Unit tests of sync's planning: mirror redirects, where referrers and
//! their cosign tags go.

use super::*;

fn reg(r: &str) -> ImageSpec {
    ImageSpec {
        source: ImageSource::Registry(r.into()),
        name: None,
    }
}

fn copy(repo: &str, tag: Option<&str>, bytes: &[u8]) -> ImageCopy {
    let d = Descriptor::new(
        "application/vnd.oci.image.manifest.v1+json",
        Digest::of(bytes),
        bytes.len() as u64,
    );
    ImageCopy {
        source: "src".into(),
        target: Repository::new("site:5000", repo).unwrap(),
        tag: tag.map(String::from),
        root: d.clone(),
        manifests: vec![(d, bytes.to_vec())],
        blobs: Vec::new(),
    }
}

#[test]
fn a_cosign_tagged_referrer_is_copied_by_digest_and_its_tag_kept_for_after_the_copy() {
    // One image under two names; its signature found once.
    let image = copy("a", Some("1"), b"image");
    let mut copies = vec![image.clone(), copy("b", Some("1"), b"image")];
    let mut from = vec!["src".to_string(), "src".to_string()];
    let sig = copy("a", Some("sha256-x.sig"), b"sig");
    let pending = vec![(sig, image.root.digest.clone(), None, "src".to_string())];
    let (additions, tags) = place_referrers(pending, &mut copies, &mut from);
    assert!(additions.is_empty());
    assert_eq!(copies.len(), 4);
    assert!(copies[2..].iter().all(|c| c.tag.is_none()));
    let named: Vec<String> = tags
        .iter()
        .map(|t| format!("{}:{}", t.repo, t.tag))
        .collect();
    assert_eq!(
        named,
        ["site:5000/a:sha256-x.sig", "site:5000/b:sha256-x.sig"]
    );
    assert!(tags.iter().all(|t| t.manifest == b"sig"));
}

#[test]
fn a_mirror_serves_docker_hub_names_which_keep_their_name() {
    let s = redirect(&reg("atp/router:1.4.0"), Some("127.0.0.1:5000")).unwrap();
    assert_eq!(
        s,
        ImageSpec {
            source: ImageSource::Registry("127.0.0.1:5000/atp/router:1.4.0".into()),
            name: Some("docker.io/atp/router:1.4.0".into()),
        }
    );
    let s = redirect(&reg("nginx"), Some("mirror:5000")).unwrap();
    assert_eq!(
        s.source,
        ImageSource::Registry("mirror:5000/library/nginx:latest".into())
    );
    // Other registries, docker.io itself, and a spec's own name stay put.
    let q = reg("quay.io/x/y:1");
    assert_eq!(redirect(&q, Some("mirror:5000")).unwrap(), q);
    let d = reg("atp/router:1.4.0");
    assert_eq!(redirect(&d, Some("docker.io")).unwrap(), d);
    let named = ImageSpec {
        source: ImageSource::Registry("docker.io/vendor/router:1".into()),
        name: Some("docker.io/atp/router:1.4.0".into()),
    };
    assert_eq!(
        redirect(&named, Some("m:1")).unwrap().name.as_deref(),
        Some("docker.io/atp/router:1.4.0")
    );
}
