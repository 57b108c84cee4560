//! The broken-bundle corpus in `fixtures/broken/`: every file is refused
//! with the expected finding, every finding is located, and the committed
//! files are exactly what the generator produces today.

use std::path::PathBuf;

use atp_bundle::keys;
use atp_bundle::sample::broken::{corpus, verify_time};
use atp_bundle::verify::{verify_file, verify_reader};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

#[test]
fn every_broken_bundle_is_refused_with_the_right_finding() {
    let public = keys::load_public_file(&fixtures().join("keys/test.pub")).unwrap();
    let test = keys::load_private_file(&fixtures().join("keys/test.key"), "").unwrap();
    let other = keys::load_private_file(&fixtures().join("keys/other.key"), "").unwrap();
    assert_eq!(test.verifying_key(), &public);
    let cases = corpus(&test, &other);
    assert!(cases.len() >= 25);
    let readme = std::fs::read_to_string(fixtures().join("broken/README.md")).unwrap();
    for case in &cases {
        let path = fixtures().join(format!("broken/{}.tar", case.name));
        let committed = std::fs::read(&path).unwrap();
        assert!(
            committed == case.bytes,
            "{} differs from the generator; run `cargo run -p atp-bundle --example gen-broken`",
            case.name
        );
        assert!(readme.contains(&format!("`{}.tar`", case.name)));
        let report = verify_file(&path, &public, verify_time()).unwrap();
        assert!(!report.is_ok(), "{} accepted", case.name);
        assert!(
            report
                .findings
                .iter()
                .any(|f| f.kind == case.kind && f.message.contains(case.fragment)),
            "{}: expected {:?} containing {:?}, got:\n{}",
            case.name,
            case.kind,
            case.fragment,
            report
                .findings
                .iter()
                .map(|f| format!("  {f:?}\n"))
                .collect::<String>()
        );
        for f in &report.findings {
            assert!(
                f.digest.is_some() || f.path.is_some(),
                "{}: finding names neither blob nor path: {f}",
                case.name
            );
            assert!(f.offset <= committed.len() as u64);
        }
    }
}

#[test]
fn findings_name_the_blob_and_its_header_offset() {
    let test = keys::load_private_file(&fixtures().join("keys/test.key"), "").unwrap();
    let other = keys::load_private_file(&fixtures().join("keys/other.key"), "").unwrap();
    let case = corpus(&test, &other)
        .into_iter()
        .find(|c| c.name == "flip-layer")
        .unwrap();
    let r = verify_reader(&case.bytes[..], test.verifying_key(), verify_time());
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    let f = &r.findings[0];
    let d = f.digest.as_ref().unwrap();
    let header = &case.bytes[f.offset as usize..f.offset as usize + 100];
    assert!(header.starts_with(d.blob_path().as_bytes()));
    assert!(f
        .to_string()
        .starts_with(&format!("offset {}: {d}: ", f.offset)));
}

#[test]
fn wrong_key_message_names_both_keys() {
    let test = keys::load_private_file(&fixtures().join("keys/test.key"), "").unwrap();
    let other = keys::load_private_file(&fixtures().join("keys/other.key"), "").unwrap();
    let bytes = std::fs::read(fixtures().join("broken/other-key.tar")).unwrap();
    let r = verify_reader(&bytes[..], test.verifying_key(), verify_time());
    assert_eq!(r.findings.len(), 1);
    let m = &r.findings[0].message;
    assert!(m.contains(&keys::fingerprint(other.verifying_key())), "{m}");
    assert!(m.contains(&keys::fingerprint(test.verifying_key())), "{m}");
    assert!(m.contains("hint:"), "{m}");
    assert!(r.info.is_none() && r.blobs.is_empty());
}
