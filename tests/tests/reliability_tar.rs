//! Issue 10, tar tricks the fixture corpus does not hold, and truncation at
//! many offsets, at the command line: a symlink followed by a same-named
//! directory and a file through it, a hard link to an entry inside the
//! archive, a PAX header whose `size` contradicts the ustar size. `verify`
//! names each, `install` sends nothing, and nothing appears where a link
//! points: the verifier reads, it never extracts.

mod common;

use atp_testkit::Registry;
use common::*;

fn header(path: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_790_000_000);
    if let Some(l) = link {
        h.set_link_name(l).unwrap();
    }
    h.set_cksum();
    h
}

/// A tar holding a real bundle's `oci-layout` first, then `tricks`.
fn tricky(outside: &std::path::Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    b.append(
        &header(
            "oci-layout",
            tar::EntryType::Regular,
            layout.len() as u64,
            None,
        ),
        &layout[..],
    )
    .unwrap();
    // A symlink to a folder outside, then a directory and a file of the same name.
    let target = outside.display().to_string();
    b.append(
        &header("blobs", tar::EntryType::Symlink, 0, Some(&target)),
        &[][..],
    )
    .unwrap();
    b.append(
        &header("blobs/", tar::EntryType::Directory, 0, None),
        &[][..],
    )
    .unwrap();
    b.append(
        &header("blobs/planted", tar::EntryType::Regular, 5, None),
        &b"owned"[..],
    )
    .unwrap();
    // A hard link to an entry inside the archive.
    b.append(
        &header(
            "blobs/sha256/again",
            tar::EntryType::Link,
            0,
            Some("oci-layout"),
        ),
        &[][..],
    )
    .unwrap();
    // A PAX header claiming 3 bytes for an entry whose ustar size is 9.
    let pax = b"11 size=3\n";
    b.append(
        &header(
            "PaxHeaders/x",
            tar::EntryType::XHeader,
            pax.len() as u64,
            None,
        ),
        &pax[..],
    )
    .unwrap();
    b.append(
        &header("blobs/sha256/paxed", tar::EntryType::Regular, 9, None),
        &b"123456789"[..],
    )
    .unwrap();
    b.into_inner().unwrap()
}

#[test]
fn links_directories_and_contradicting_pax_are_refused_and_nothing_is_extracted() {
    let w = Work::new();
    let outside = w.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(w.path("t.tar"), tricky(&outside)).unwrap();
    let out = w.installer(&["verify", "t.tar", "--key", "k.pub", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    let findings: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (kind, fragment) in [
        ("forbidden-entry-type", "symbolic link entry to"),
        ("forbidden-entry-type", "directory"),
        ("forbidden-entry-type", "hard link entry to \"oci-layout\""),
        ("extended-header", "PAX extended header of 10 bytes"),
    ] {
        assert!(
            findings
                .iter()
                .any(|(k, m)| k == kind && m.contains(fragment)),
            "no {kind} finding with {fragment:?}: {findings:#?}"
        );
    }
    let reg = Registry::plain();
    let out = install(&w, &reg, "t.tar", &["--render-to", &w.s("render")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was pushed"));
    assert!(reg.access_log().is_empty(), "{:?}", reg.access_log());
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was extracted"
    );
    assert!(!w.path("render").exists() && !w.path("blobs").exists());
}

#[test]
fn a_demo_bundle_cut_at_any_offset_is_refused() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let good = std::fs::read(w.path("b.tar")).unwrap();
    let key = atp_bundle::keys::load_public_file(&w.path("k.pub")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let len = good.len();
    // Every 512-byte boundary, one byte either side of it, and the middle of each block.
    let mut cuts = Vec::new();
    for b in (0..len).step_by(512) {
        cuts.extend([b, b + 1, b + 256, b.saturating_sub(1)]);
    }
    cuts.retain(|c| *c < len);
    cuts.sort_unstable();
    cuts.dedup();
    assert!(cuts.len() > 400);
    for cut in cuts {
        let r = atp_bundle::verify::verify_reader(&good[..cut], &key, now);
        assert!(!r.is_ok(), "cut at {cut} of {len} accepted");
    }
    // At the command line: the last end block missing.
    std::fs::write(w.path("cut.tar"), &good[..len - 512]).unwrap();
    let out = w.installer(&["verify", "cut.tar", "--key", "k.pub"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("copy is incomplete"), "{}", text(&out));
}
