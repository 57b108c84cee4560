//! A good bundle built from synthetic blobs: verifies clean, is
//! deterministic, lists entries in spec order and reads as an OCI archive.

use std::process::Command;

use atp_bundle::format::media;
use atp_bundle::sample::{sample, sample_created, sample_with_delta, SAMPLE_REF};
use atp_bundle::verify::{verify_reader, FindingKind};
use atp_bundle::writer::{write_bundle, BundleWriter, WriteError};
use atp_bundle::{open::Bundle, Digest};
use p256::ecdsa::SigningKey;
use time::Duration;

fn key() -> SigningKey {
    SigningKey::from_slice(&[42u8; 32]).unwrap()
}

#[test]
fn good_bundle_verifies_clean_and_lists_in_spec_order() {
    let k = key();
    let s = sample(&k, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.tar");
    let report = write_bundle(
        &out,
        &s.signed(),
        &s.blobs,
        k.verifying_key(),
        sample_created(),
    )
    .unwrap();
    assert!(report.is_ok(), "{:#?}", report.findings);
    assert_eq!(report.blobs.len(), s.blobs.len());
    assert_eq!(report.info.as_ref().unwrap().sequence, 7);
    assert_eq!(report.images().next().unwrap().reference, SAMPLE_REF);
    assert_eq!(
        report.config.as_ref().unwrap().images[0].digest,
        s.image_index
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes, s.bytes());
    assert_eq!(report.total_bytes, bytes.len() as u64);

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    // Nothing but the output in the directory (temp file renamed away).
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b.tar"]);

    // `tar tf` order: fixed entries, then depth-first blobs.
    let tar = Command::new("tar").arg("tf").arg(&out).output().unwrap();
    assert!(tar.status.success());
    let listed: Vec<String> = String::from_utf8(tar.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut want = vec![
        "oci-layout".to_string(),
        "index.json".into(),
        "index.json.sig".into(),
    ];
    want.extend(s.blobs.iter().map(|(d, _)| d.blob_path()));
    assert_eq!(listed, want);

    // The DFS order: bundle artifact, its config, kustomize; image index,
    // manifest 1, config 1, shared layer, own layer 1, manifest 2, config 2,
    // own layer 2 (shared layer skipped); file set manifest, empty config, file.
    let order: Vec<&Digest> = s.blobs.iter().map(|(d, _)| d).collect();
    assert_eq!(order[3], &s.image_index);
    assert_eq!(
        &order[4..11],
        &[
            &s.manifests[0],
            &s.configs[0],
            &s.layers[0],
            &s.layers[1],
            &s.manifests[1],
            &s.configs[1],
            &s.layers[2]
        ]
    );
    assert_eq!(order.len(), 14);
}

#[test]
fn same_inputs_give_identical_bytes_and_signatures() {
    let k = key();
    let a = sample(&k, None).unwrap();
    let b = sample(&k, None).unwrap();
    assert_eq!(a.assembled.signature, b.assembled.signature);
    assert_eq!(a.bytes(), b.bytes());
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (dir.path().join("1.tar"), dir.path().join("2.tar"));
    write_bundle(
        &p1,
        &a.signed(),
        &a.blobs,
        k.verifying_key(),
        sample_created(),
    )
    .unwrap();
    write_bundle(
        &p2,
        &b.signed(),
        &b.blobs,
        k.verifying_key(),
        sample_created(),
    )
    .unwrap();
    assert_eq!(std::fs::read(p1).unwrap(), std::fs::read(p2).unwrap());
}

#[test]
fn concurrent_slots_fill_a_bundle() {
    let k = key();
    let s = sample(&k, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.tar");
    let order: Vec<(Digest, u64)> = s
        .blobs
        .iter()
        .map(|(d, b)| (d.clone(), b.len() as u64))
        .collect();
    let w = BundleWriter::create(&out, &s.signed(), &order).unwrap();
    assert_eq!(w.layout().total_size, s.bytes().len() as u64);
    std::thread::scope(|scope| {
        for (d, bytes) in s.blobs.iter().rev() {
            let mut slot = w.slot(d).unwrap();
            scope.spawn(move || {
                use std::io::Write;
                for chunk in bytes.chunks(100) {
                    slot.write_all(chunk).unwrap();
                }
                slot.finish().unwrap();
            });
        }
    });
    assert!(w.pending().is_empty());
    w.commit(k.verifying_key(), sample_created()).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), s.bytes());
}

#[test]
fn writer_refuses_bad_blobs_and_leaves_no_file() {
    use std::io::Write;
    let k = key();
    let s = sample(&k, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.tar");
    let order: Vec<(Digest, u64)> = s
        .blobs
        .iter()
        .map(|(d, b)| (d.clone(), b.len() as u64))
        .collect();
    let w = BundleWriter::create(&out, &s.signed(), &order).unwrap();
    let temp = w.temp_path().to_path_buf();
    assert!(temp
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with(".d.tar.partial-"));
    let (d, bytes) = &s.blobs[5];
    // Wrong content, same size: digest mismatch naming the blob.
    let mut slot = w.slot(d).unwrap();
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    slot.write_all(&bad).unwrap();
    match slot.finish() {
        Err(WriteError::DigestMismatch { digest, .. }) => assert_eq!(&digest, d),
        other => panic!("{other:?}"),
    }
    // Too much data: size mismatch.
    let mut slot = w.slot(d).unwrap();
    let mut long = bytes.clone();
    long.push(0);
    assert!(slot.write_all(&long).is_err());
    assert!(matches!(
        slot.finish(),
        Err(WriteError::SizeMismatch { .. })
    ));
    // Too little.
    let mut slot = w.slot(d).unwrap();
    slot.write_all(&bytes[1..]).unwrap();
    assert!(matches!(
        slot.finish(),
        Err(WriteError::SizeMismatch { .. })
    ));
    // A slot can't be claimed twice at once.
    let held = w.slot(d).unwrap();
    assert!(matches!(w.slot(d), Err(WriteError::SlotTaken { .. })));
    drop(held);
    assert!(matches!(
        w.slot(&Digest::of(b"nope")),
        Err(WriteError::UnknownBlob { .. })
    ));
    // Commit with pending blobs fails; nothing under the final name.
    let err = w.commit(k.verifying_key(), sample_created()).unwrap_err();
    assert!(matches!(err, WriteError::Incomplete { .. }), "{err}");
    assert!(!out.exists());
    assert!(!temp.exists(), "temp file left behind");
}

#[test]
fn dropped_writer_removes_temp_file() {
    let k = key();
    let s = sample(&k, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("e.tar");
    let order: Vec<(Digest, u64)> = s
        .blobs
        .iter()
        .map(|(d, b)| (d.clone(), b.len() as u64))
        .collect();
    let w = BundleWriter::create(&out, &s.signed(), &order).unwrap();
    let temp = w.temp_path().to_path_buf();
    assert!(temp.exists());
    drop(w);
    assert!(!temp.exists());
    assert!(!out.exists());
}

#[test]
fn delta_bundle_reports_omitted_layers() {
    let k = key();
    let s = sample_with_delta(&k, None, true).unwrap();
    let r = verify_reader(&s.bytes()[..], k.verifying_key(), sample_created());
    assert!(r.is_ok(), "{:#?}", r.findings);
    assert_eq!(r.omitted, vec![s.layers[0].clone()]);
    assert!(r.info.unwrap().delta);
}

#[test]
fn expired_bundle_is_reported_but_still_checked() {
    let k = key();
    let s = sample(&k, Some(sample_created() + Duration::days(1))).unwrap();
    let ok = verify_reader(&s.bytes()[..], k.verifying_key(), sample_created());
    assert!(ok.is_ok());
    let late = verify_reader(
        &s.bytes()[..],
        k.verifying_key(),
        sample_created() + Duration::days(2),
    );
    let kinds: Vec<_> = late.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [FindingKind::Expired]);
    assert!(late.findings[0].message.contains("hint:"));
    assert_eq!(late.blobs.len(), s.blobs.len());
}

#[test]
fn open_reads_index_config_and_blobs_without_key() {
    let k = key();
    let s = sample(&k, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f.tar");
    write_bundle(
        &out,
        &s.signed(),
        &s.blobs,
        k.verifying_key(),
        sample_created(),
    )
    .unwrap();
    let b = Bundle::open(&out).unwrap();
    assert_eq!(b.info.name, "atp");
    assert_eq!(b.config.as_ref().unwrap().files[0].path, "llm/weights.bin");
    assert_eq!(b.blobs.len(), s.blobs.len());
    for (d, bytes) in &s.blobs {
        let loc = b.blob(d).unwrap();
        assert_eq!(&b.read_blob(loc).unwrap(), bytes);
        let mut via_reader = Vec::new();
        std::io::Read::read_to_end(&mut b.blob_reader(loc), &mut via_reader).unwrap();
        assert_eq!(&via_reader, bytes);
    }
    let idx = b.blob(&s.image_index).unwrap();
    assert_eq!(idx.media_type, media::OCI_INDEX);
    // Locations from open() agree with the verifier's.
    let r = verify_reader(
        &std::fs::read(&out).unwrap()[..],
        k.verifying_key(),
        sample_created(),
    );
    assert_eq!(r.blobs, b.blobs);
}

#[test]
fn skopeo_reads_the_bundle_as_an_oci_archive() {
    let k = key();
    let s = sample(&k, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.tar");
    write_bundle(
        &out,
        &s.signed(),
        &s.blobs,
        k.verifying_key(),
        sample_created(),
    )
    .unwrap();
    let o = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}:{SAMPLE_REF}", out.display()))
        .output()
        .expect("skopeo is installed");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(Digest::of(&o.stdout), s.image_index);
    let o = Command::new("skopeo")
        .args([
            "inspect",
            "--override-arch",
            "arm64",
            "--override-os",
            "linux",
        ])
        .arg(format!("oci-archive:{}:{SAMPLE_REF}", out.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    // The synthetic layers aren't real tarballs, but inspect only needs
    // manifests and config.
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // skopeo reports the digest of the reference (the image index).
    assert_eq!(v["Digest"], s.image_index.to_string());
    assert_eq!(v["Architecture"], "arm64");
}

#[test]
fn commit_reports_the_re_read_as_progress() {
    use std::sync::atomic::{AtomicU64, Ordering};
    #[derive(Default)]
    struct Count(AtomicU64, AtomicU64);
    impl atp_bundle::progress::Progress for Count {
        fn phase(&self, _name: &str, total: u64, _items: u64) {
            self.1.store(total, Ordering::Relaxed);
        }
        fn advance(&self, bytes: u64) {
            self.0.fetch_add(bytes, Ordering::Relaxed);
        }
    }
    let k = key();
    let s = sample(&k, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.tar");
    let order: Vec<(Digest, u64)> = s
        .blobs
        .iter()
        .map(|(d, b)| (d.clone(), b.len() as u64))
        .collect();
    let w = BundleWriter::create(&out, &s.signed(), &order).unwrap();
    for (d, b) in &s.blobs {
        let mut slot = w.slot(d).unwrap();
        std::io::Write::write_all(&mut slot, b).unwrap();
        slot.finish().unwrap();
    }
    let count = Count::default();
    w.commit_with_progress(k.verifying_key(), sample_created(), &count)
        .unwrap();
    let len = std::fs::metadata(&out).unwrap().len();
    assert_eq!(count.0.load(Ordering::Relaxed), len);
    assert_eq!(count.1.load(Ordering::Relaxed), len);
}

#[test]
fn commit_refuses_an_expired_bundle_and_leaves_nothing() {
    let k = key();
    let s = sample(&k, Some(sample_created() + Duration::hours(1))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.tar");
    let err = write_bundle(
        &out,
        &s.signed(),
        &s.blobs,
        k.verifying_key(),
        sample_created() + Duration::hours(2),
    )
    .unwrap_err();
    match &err {
        WriteError::Reverify { findings } => assert_eq!(findings[0].kind, FindingKind::Expired),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("hint:"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn visitor_sees_every_verified_blob_and_its_bytes() {
    use atp_bundle::verify::{verify_reader_with, BlobLocation, VisitBlob};
    use std::collections::HashMap;
    #[derive(Default)]
    struct Seen {
        data: HashMap<Digest, Vec<u8>>,
        verified: Vec<BlobLocation>,
        rejected: Vec<Digest>,
    }
    impl VisitBlob for Seen {
        fn data(&mut self, d: &Digest, chunk: &[u8]) {
            self.data
                .entry(d.clone())
                .or_default()
                .extend_from_slice(chunk);
        }
        fn verified(&mut self, loc: &BlobLocation) {
            self.verified.push(loc.clone());
        }
        fn rejected(&mut self, d: &Digest) {
            self.rejected.push(d.clone());
        }
    }
    let k = key();
    let s = sample(&k, None).unwrap();
    let mut bytes = s.bytes();
    let mut seen = Seen::default();
    let r = verify_reader_with(&bytes[..], k.verifying_key(), sample_created(), &mut seen);
    assert!(r.is_ok());
    assert_eq!(seen.verified, r.blobs);
    for (d, b) in &s.blobs {
        assert_eq!(&seen.data[d], b);
    }
    for loc in &seen.verified {
        let at = loc.data_offset as usize;
        assert_eq!(Digest::of(&bytes[at..at + loc.size as usize]), loc.digest);
    }
    // Corrupt one layer: it is rejected, never verified.
    let victim = seen
        .verified
        .iter()
        .find(|l| l.digest == s.layers[2])
        .unwrap()
        .clone();
    bytes[victim.data_offset as usize] ^= 1;
    let mut seen = Seen::default();
    let r = verify_reader_with(&bytes[..], k.verifying_key(), sample_created(), &mut seen);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(seen.rejected, vec![victim.digest.clone()]);
    assert!(seen.verified.iter().all(|l| l.digest != victim.digest));
}
