//! Regression tests for the second adversarial pass (issue 24, defects 2, 3,
//! 7, 8 and the misleading key errors), one per defect, named after what
//! broke. Every test asserts an outcome (a finding, an error and its words),
//! never a duration.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use atp_bundle::assemble::{assemble, blob_order, BundlePlan, ImageInput};
use atp_bundle::format::{annotation as ann, json, media, Descriptor, ImageManifest};
use atp_bundle::keys::{self, KeyError};
use atp_bundle::media::BundleInput;
use atp_bundle::open::Bundle;
use atp_bundle::sample::broken::{fix_checksum, join, split, verify_time, Raw};
use atp_bundle::sample::{sample, sample_created};
use atp_bundle::verify::{verify_file, verify_reader, FindingKind, Report};
use atp_bundle::writer::{bundle_bytes, SignedIndex};
use atp_bundle::{BundleInfo, Digest};
use p256::ecdsa::SigningKey;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn test_key() -> SigningKey {
    keys::load_private_file(&fixtures().join("keys/test.key"), "").unwrap()
}

fn findings(r: &Report) -> String {
    r.findings.iter().map(|f| format!("  {f}\n")).collect()
}

/// Store `size` in a header's size field as GNU base-256, fix the checksum.
fn set_size(h: &mut [u8; 512], size: u64) {
    h[124..136].fill(0);
    h[124] = 0x80;
    h[128..136].copy_from_slice(&size.to_be_bytes());
    fix_checksum(h);
}

// ---- defect 2: sizes near u64::MAX ------------------------------------------

#[test]
fn tar_size_near_u64_max_is_a_finding_not_a_panic() {
    let key = test_key();
    let good = split(&sample(&key, None).unwrap().bytes());
    for size in [u64::MAX, u64::MAX - 10, u64::MAX - 511, u64::MAX - 512] {
        // A blob header (checksum valid) claiming the size.
        let mut e = good.clone();
        set_size(&mut e[3].header, size);
        let bytes = join(&e);
        let r = verify_reader(&bytes[..], key.verifying_key(), verify_time());
        assert!(!r.is_ok());
        assert!(
            r.findings
                .iter()
                .any(|f| f.message.contains(&size.to_string()) && f.message.contains("cannot fit")),
            "size {size}:\n{}",
            findings(&r)
        );
        // The same size in a damaged header (checksum wrong).
        let mut e = good.clone();
        set_size(&mut e[3].header, size);
        e[3].header[148] ^= 1;
        let r = verify_reader(&join(&e)[..], key.verifying_key(), verify_time());
        assert!(
            r.of_kind(FindingKind::BadHeaderChecksum).count() >= 1,
            "{}",
            findings(&r)
        );
        // And in the fixed entries, before the signature.
        for i in 0..3 {
            let mut e = good.clone();
            set_size(&mut e[i].header, size);
            let r = verify_reader(&join(&e)[..], key.verifying_key(), verify_time());
            assert!(!r.is_ok());
        }
        // `inspect` (random access) refuses it by name, without panicking.
        let err = Bundle::open_from(Path::new("b.tar"), std::sync::Arc::new(bytes)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("cannot fit") || msg.contains("past the end"),
            "{msg}"
        );
    }
}

#[test]
fn tar_entry_larger_than_the_file_is_refused_by_inspect() {
    let key = test_key();
    let mut e = split(&sample(&key, None).unwrap().bytes());
    set_size(&mut e[3].header, 1 << 40);
    let err = Bundle::open_from(Path::new("b.tar"), std::sync::Arc::new(join(&e))).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("past the end of the archive"), "{msg}");
    assert!(msg.contains(&(1u64 << 40).to_string()), "{msg}");
}

// ---- defect 3: descriptors that disagree --------------------------------------

/// Re-sign an edited `index.json` and put it back into the archive.
fn resign(entries: &mut [Raw], index: &serde_json::Value, key: &SigningKey) {
    let bytes = json::to_canonical_vec(index).unwrap();
    let sig = atp_bundle::sign::sign(key, &bytes);
    entries[1] = atp_bundle::sample::broken::file("index.json", &bytes);
    entries[2] = atp_bundle::sample::broken::file("index.json.sig", sig.as_bytes());
}

fn index_with_duplicate(edit: impl Fn(&mut serde_json::Value)) -> (Vec<u8>, Digest) {
    let key = test_key();
    let mut e = split(&sample(&key, None).unwrap().bytes());
    let mut index: serde_json::Value = serde_json::from_slice(&e[1].data).unwrap();
    let manifests = index["manifests"].as_array_mut().unwrap();
    let mut dup = manifests[1].clone();
    edit(&mut dup);
    let digest: Digest = dup["digest"].as_str().unwrap().parse().unwrap();
    manifests.insert(2, dup);
    resign(&mut e, &index, &key);
    (join(&e), digest)
}

#[test]
fn index_listing_one_digest_with_two_sizes_is_refused() {
    let (bytes, digest) = index_with_duplicate(|d| {
        d["size"] = (d["size"].as_u64().unwrap() + 1).into();
        d["annotations"][ann::REF_NAME] = "docker.io/atp/router:other".into();
    });
    let r = verify_reader(&bytes[..], test_key().verifying_key(), verify_time());
    let f = r
        .findings
        .iter()
        .find(|f| f.digest.as_ref() == Some(&digest) && f.kind == FindingKind::BadIndex)
        .unwrap_or_else(|| panic!("no bad-index finding for {digest}:\n{}", findings(&r)));
    assert!(f.message.contains("disagree"), "{f}");
    assert!(f.message.contains("bytes"), "{f}");
}

#[test]
fn index_listing_one_digest_with_two_media_types_is_refused() {
    let (bytes, digest) = index_with_duplicate(|d| {
        d["mediaType"] = media::OCI_MANIFEST.into();
        d["annotations"][ann::REF_NAME] = "docker.io/atp/router:other".into();
    });
    let r = verify_reader(&bytes[..], test_key().verifying_key(), verify_time());
    let f = r
        .findings
        .iter()
        .find(|f| f.digest.as_ref() == Some(&digest) && f.kind == FindingKind::BadIndex)
        .unwrap_or_else(|| panic!("no bad-index finding for {digest}:\n{}", findings(&r)));
    assert!(f.message.contains(media::OCI_MANIFEST), "{f}");
    assert!(f.message.contains(media::OCI_INDEX), "{f}");
}

#[test]
fn index_listing_one_image_under_two_names_still_verifies() {
    // Same digest, same size and type, another name: legitimate.
    let (bytes, _) = index_with_duplicate(|d| {
        d["annotations"][ann::REF_NAME] = "docker.io/atp/router:stable".into();
    });
    let r = verify_reader(&bytes[..], test_key().verifying_key(), verify_time());
    assert!(r.is_ok(), "{}", findings(&r));
}

/// A bundle of two images whose manifests share one layer but announce it
/// with `size_b` / `type_b` in the second image.
fn two_images_sharing_a_layer(size_b: Option<u64>, type_b: Option<&str>) -> (Vec<u8>, Digest) {
    let key = test_key();
    let layer = b"shared layer bytes".repeat(40);
    let mut store: HashMap<Digest, Vec<u8>> = HashMap::new();
    let mut put = |bytes: Vec<u8>, mt: &str| {
        let d = Descriptor::of_bytes(mt, &bytes);
        store.insert(d.digest.clone(), bytes);
        d
    };
    let layer_desc = put(layer, "application/vnd.oci.image.layer.v1.tar+gzip");
    let mut images = Vec::new();
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let config = put(
            format!(r#"{{"architecture":"amd64","os":"linux","n":{i}}}"#).into_bytes(),
            "application/vnd.oci.image.config.v1+json",
        );
        let mut l = layer_desc.clone();
        if i == 1 {
            if let Some(s) = size_b {
                l.size = s;
            }
            if let Some(t) = type_b {
                l.media_type = t.into();
            }
        }
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            artifact_type: None,
            config,
            layers: vec![l],
            annotations: Default::default(),
        };
        let d = put(json::to_canonical_vec(&m).unwrap(), media::OCI_MANIFEST);
        images.push(ImageInput {
            reference: format!("docker.io/atp/{name}:1"),
            descriptor: d,
            source_digest: None,
            platforms: Vec::new(),
            used_by: Vec::new(),
            referrers: Vec::new(),
        });
    }
    let plan = BundlePlan {
        info: BundleInfo {
            name: "atp".into(),
            version: "1.0.0".into(),
            channel: "stable".into(),
            sequence: 1,
            created: sample_created(),
            expires: None,
            key_fingerprint: String::new(),
            platforms: Vec::new(),
            delta: false,
        },
        images,
        file_sets: Vec::new(),
        kustomize: None,
        delta: None,
    };
    let assembled = assemble(&plan, &key).unwrap();
    store.extend(assembled.generated.clone());
    let order = blob_order(&assembled.index, &store, &Default::default()).unwrap();
    let blobs: Vec<(Digest, Vec<u8>)> = order
        .into_iter()
        .map(|(d, _)| {
            let b = store[&d].clone();
            (d, b)
        })
        .collect();
    let signed = SignedIndex {
        index_json: assembled.index_json,
        signature: assembled.signature,
    };
    (bundle_bytes(&signed, &blobs).unwrap(), layer_desc.digest)
}

#[test]
fn manifests_announcing_one_layer_with_two_sizes_are_refused() {
    let (good, _) = two_images_sharing_a_layer(None, None);
    let r = verify_reader(&good[..], test_key().verifying_key(), verify_time());
    assert!(r.is_ok(), "{}", findings(&r));

    let (bytes, layer) = two_images_sharing_a_layer(Some(5), None);
    let r = verify_reader(&bytes[..], test_key().verifying_key(), verify_time());
    let f = r
        .findings
        .iter()
        .find(|f| f.digest.as_ref() == Some(&layer) && f.kind == FindingKind::BadManifest)
        .unwrap_or_else(|| panic!("no bad-manifest finding for {layer}:\n{}", findings(&r)));
    assert!(f.message.contains("5 bytes"), "{f}");
    assert!(f.message.contains("720 bytes"), "{f}");
}

#[test]
fn a_layer_announced_as_a_manifest_elsewhere_is_refused() {
    let (bytes, layer) = two_images_sharing_a_layer(None, Some(media::OCI_MANIFEST));
    let r = verify_reader(&bytes[..], test_key().verifying_key(), verify_time());
    assert!(
        r.findings
            .iter()
            .any(|f| f.digest.as_ref() == Some(&layer) && f.message.contains("disagree")),
        "{}",
        findings(&r)
    );
}

#[test]
fn a_layer_shared_by_docker_and_oci_manifests_still_verifies() {
    // The same gzip bytes under the Docker and the OCI layer type: only the
    // bytes are pushed, so this is not a disagreement.
    let (bytes, _) = two_images_sharing_a_layer(
        None,
        Some("application/vnd.docker.image.rootfs.diff.tar.gzip"),
    );
    let r = verify_reader(&bytes[..], test_key().verifying_key(), verify_time());
    assert!(r.is_ok(), "{}", findings(&r));
}

// ---- defect 7: bounded small inputs, and key errors ----------------------------

#[test]
fn key_from_dev_zero_hits_the_key_size_limit() {
    let err = keys::load_public_file(Path::new("/dev/zero")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, KeyError::TooLarge { .. }), "{msg}");
    assert!(msg.contains("/dev/zero"), "{msg}");
    assert!(msg.contains("65536-byte limit for key files"), "{msg}");
    let err = keys::load_private_file(Path::new("/dev/zero"), "").unwrap_err();
    assert!(matches!(err, KeyError::TooLarge { .. }), "{err}");
}

#[test]
fn volumes_json_and_its_signature_are_read_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let vj = dir.path().join("b.tar.volumes.json");
    std::os::unix::fs::symlink("/dev/zero", &vj).unwrap();
    let err = atp_bundle::media::input::read_volumes_file(&vj, None).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("character device"), "{msg}");

    // A real volumes.json with a huge signature beside it.
    std::fs::remove_file(&vj).unwrap();
    std::fs::write(&vj, b"{}").unwrap();
    let sig = dir.path().join("b.tar.volumes.json.sig");
    std::fs::write(&sig, vec![b'A'; 8192]).unwrap();
    let key = test_key();
    let err =
        atp_bundle::media::input::read_volumes_file(&vj, Some(key.verifying_key())).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("4096-byte limit"), "{msg}");
    assert!(msg.contains("volumes.json.sig"), "{msg}");
}

fn openssl(args: &[&str], dir: &Path) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Make `NAME.pem` (private) and `NAME.pub` with `openssl genpkey ARGS`.
fn openssl_key(dir: &Path, name: &str, args: &[&str]) {
    let out = format!("{name}.pem");
    let mut a = vec!["genpkey"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-out", &out]);
    openssl(&a, dir);
    openssl(
        &[
            "pkey",
            "-in",
            &out,
            "-pubout",
            "-out",
            &format!("{name}.pub"),
        ],
        dir,
    );
}

#[test]
fn key_errors_name_the_key_type_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_key(
        d,
        "p384",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    openssl_key(
        d,
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    );
    openssl_key(d, "ed", &["-algorithm", "ED25519"]);
    for (name, found) in [
        ("p384", "P-384 (secp384r1)"),
        ("rsa", "an RSA key"),
        ("ed", "an Ed25519 key"),
    ] {
        for err in [
            keys::load_public_file(&d.join(format!("{name}.pub"))).unwrap_err(),
            keys::load_private_file(&d.join(format!("{name}.pem")), "").unwrap_err(),
        ] {
            let msg = err.to_string();
            assert!(matches!(err, KeyError::WrongKeyType { .. }), "{msg}");
            assert!(msg.contains(found), "{name}: {msg}");
            assert!(
                msg.contains("ATP Offline signs with P-256 (prime256v1)"),
                "{msg}"
            );
            assert!(msg.contains("hint:"), "{msg}");
            // Never the OID of what we wanted instead of what was found.
            assert!(!msg.contains("1.2.840.10045.3.1.7"), "{msg}");
        }
    }
}

#[test]
fn empty_key_file_is_called_empty() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k.pub");
    std::fs::write(&p, b"").unwrap();
    let msg = keys::load_public_file(&p).unwrap_err().to_string();
    assert!(msg.contains("is empty"), "{msg}");
    assert!(!msg.contains("NUL"), "{msg}");
    std::fs::write(&p, b"\n  \n").unwrap();
    let msg = keys::load_public_file(&p).unwrap_err().to_string();
    assert!(msg.contains("is empty"), "{msg}");
}

#[test]
fn public_keys_openssl_accepts_load_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_key(
        d,
        "k",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let pem = std::fs::read_to_string(d.join("k.pub")).unwrap();
    let want = keys::load_public(&pem).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let variants = [
        ("comment", format!("# release key, 2026\n{pem}")),
        ("trailing", format!("{pem}rotated yearly\n")),
        (
            "one-line",
            format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"),
        ),
        ("crlf", pem.replace('\n', "\r\n")),
        (
            "76-columns",
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n{}\n-----END PUBLIC KEY-----\n",
                &body[..76],
                &body[76..]
            ),
        ),
    ];
    for (what, text) in &variants {
        let p = d.join(format!("{what}.pub"));
        std::fs::write(&p, text).unwrap();
        // openssl accepts each of these...
        openssl(&["pkey", "-pubin", "-in", p.to_str().unwrap(), "-noout"], d);
        // ...and so do we, to the same key.
        let got = keys::load_public_file(&p).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, want, "{what}");
    }
    // Bare base64 without the PEM lines: openssl refuses it, and we say why.
    let msg = keys::load_public(&body).unwrap_err().to_string();
    assert!(msg.contains("BEGIN"), "{msg}");
}

// ---- defect 8: a bundle that is not a regular file ------------------------------

/// Run `f` on a thread; fail the test if it has not returned after a
/// generous bound (the defect was an endless block).
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("still blocked after 120 s: a non-regular bundle must be refused up front")
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

#[test]
fn fifo_bundle_without_a_writer_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("bundle.tar");
    mkfifo(&fifo);
    let p = fifo.clone();
    let msg = bounded(move || BundleInput::open(&p, &[], None).unwrap_err().to_string());
    assert!(msg.contains("is a FIFO, not a regular file"), "{msg}");
    assert!(
        msg.contains("hint: copy the bundle to a file first"),
        "{msg}"
    );
    assert!(!msg.contains("incomplete"), "{msg}");

    let p = fifo.clone();
    let key = test_key();
    let msg = bounded(move || {
        verify_file(&p, key.verifying_key(), verify_time())
            .unwrap_err()
            .to_string()
    });
    assert!(msg.contains("is a FIFO"), "{msg}");

    let p = fifo.clone();
    let msg = bounded(move || Bundle::open(&p).unwrap_err().to_string());
    assert!(msg.contains("is a FIFO"), "{msg}");

    // A FIFO named like volumes.json is refused the same way.
    let vj = dir.path().join("x.tar.volumes.json");
    mkfifo(&vj);
    let msg = bounded(move || BundleInput::open(&vj, &[], None).unwrap_err().to_string());
    assert!(msg.contains("is a FIFO"), "{msg}");
}

#[test]
fn character_device_bundle_is_not_called_incomplete() {
    for dev in ["/dev/zero", "/dev/null"] {
        let msg = BundleInput::open(Path::new(dev), &[], None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("{dev} is a character device, not a regular file")),
            "{msg}"
        );
        assert!(msg.contains("hint:"), "{msg}");
        assert!(!msg.contains("incomplete"), "{msg}");
    }
    // Through a symlink (as /dev/stdin is), the target's kind is what counts.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("b.tar");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let msg = BundleInput::open(&link, &[], None).unwrap_err().to_string();
    assert!(msg.contains("character device"), "{msg}");
}

#[test]
fn pipe_as_bundle_is_refused() {
    // An anonymous pipe, as `atp-installer verify /dev/stdin < <(cat b.tar)`.
    let mut child = Command::new("sleep")
        .arg("30")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let path = PathBuf::from(format!("/proc/{pid}/fd/1"));
    let p = path.clone();
    let msg = bounded(move || BundleInput::open(&p, &[], None).unwrap_err().to_string());
    let _ = child.kill();
    let _ = child.wait();
    assert!(msg.contains("is a FIFO"), "{msg}");
}
