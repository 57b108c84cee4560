//! Issue 24 at the command line, for the bundle crate's defects: a bundle
//! that is a FIFO, a pipe or a device (refused with the right diagnosis,
//! never waited on), a key file without end (`--key /dev/zero`), a key of
//! another curve, a tar size near `u64::MAX` and a signed `index.json` whose
//! descriptors disagree.
//!
//! Every run of a binary is bounded: it is killed after a generous limit
//! and the test fails if it had not exited. Outcomes are asserted (exit
//! codes, messages), never durations.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use atp_bundle::format::{json, ustar};
use atp_bundle::sample::{sample, sample_created};
use atp_testkit::bins::bin;

/// Far beyond what any of these runs needs; only a hang reaches it.
const BOUND: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn test_pub() -> PathBuf {
    repo_root().join("fixtures/keys/test.pub")
}

fn test_key() -> p256::ecdsa::SigningKey {
    atp_bundle::keys::load_private_file(&repo_root().join("fixtures/keys/test.key"), "").unwrap()
}

fn cmd(name: &str, args: &[&str], dir: &Path) -> Command {
    let mut c = Command::new(bin(name));
    c.args(args)
        .env_remove("RUST_LOG")
        .env("DOCKER_CONFIG", dir.join("docker"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Wait for `child` at most [`BOUND`]; kill it and fail the test if it is
/// still running then.
fn finish(mut child: Child, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} did not exit within {BOUND:?} (killed); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run(name: &str, args: &[&str], dir: &Path) -> Output {
    let child = cmd(name, args, dir).spawn().unwrap();
    finish(child, &format!("{name} {args:?}"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// Write the sample bundle, with `edit` applied to its entries, to `path`.
fn sample_bundle(path: &Path, edit: impl FnOnce(&mut Vec<(Vec<u8>, Vec<u8>)>)) {
    let bytes = sample(&test_key(), None).unwrap().bytes();
    // (header, data) pairs.
    let mut entries = Vec::new();
    let mut off = 0usize;
    loop {
        let h = bytes[off..off + 512].to_vec();
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let raw = ustar::parse_header(h.as_slice().try_into().unwrap());
        let size = raw.size.unwrap() as usize;
        entries.push((h, bytes[off + 512..off + 512 + size].to_vec()));
        off += 512 + ustar::padded(size as u64) as usize;
    }
    edit(&mut entries);
    let mut out = Vec::new();
    for (h, d) in &entries {
        out.extend_from_slice(h);
        out.extend_from_slice(d);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    std::fs::write(path, out).unwrap();
}

fn header(name: &str, data: &[u8]) -> Vec<u8> {
    let mtime = sample_created().unix_timestamp() as u64;
    ustar::header(name, data.len() as u64, mtime)
        .unwrap()
        .to_vec()
}

#[test]
fn verify_inspect_and_install_refuse_a_fifo_without_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("bundle.tar");
    mkfifo(&fifo);
    let f = fifo.to_str().unwrap();
    let key = test_pub();
    let key = key.to_str().unwrap();
    for (name, args) in [
        ("atp-installer", vec!["verify", f, "--key", key]),
        ("atp-installer", vec!["verify", f, "--key", key, "--json"]),
        ("atp-bundler", vec!["inspect", f]),
        (
            "atp-installer",
            vec![
                "install",
                f,
                "--key",
                key,
                "--registry",
                "127.0.0.1:9",
                "--state-dir",
                "state",
            ],
        ),
    ] {
        let out = run(name, &args, dir.path());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{name} {args:?}: {err}");
        assert!(
            err.contains(&format!("{f} is a FIFO, not a regular file")),
            "{name} {args:?}: {err}"
        );
        assert!(
            err.contains("hint: copy the bundle to a file first"),
            "{err}"
        );
        assert!(!err.contains("incomplete"), "{err}");
    }
}

#[test]
fn verify_refuses_dev_zero_and_a_pipe_as_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let key = test_pub();
    let key = key.to_str().unwrap();
    let out = run(
        "atp-installer",
        &["verify", "/dev/zero", "--key", key],
        dir.path(),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/zero is a character device, not a regular file"),
        "{err}"
    );
    assert!(!err.contains("incomplete"), "{err}");

    // A real bundle piped in on stdin: a pipe, refused by name.
    let bundle = dir.path().join("good.tar");
    sample_bundle(&bundle, |_| {});
    let mut c = cmd(
        "atp-installer",
        &["verify", "/dev/stdin", "--key", key],
        dir.path(),
    );
    c.stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = std::fs::read(&bundle).unwrap();
    // The installer may exit before reading; a broken pipe is fine here.
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&data);
    });
    let out = finish(child, "verify /dev/stdin");
    let _ = writer.join();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    assert!(!err.contains("incomplete"), "{err}");
}

#[test]
fn verify_with_key_dev_zero_stops_at_the_key_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("good.tar");
    sample_bundle(&bundle, |_| {});
    let out = run(
        "atp-installer",
        &["verify", bundle.to_str().unwrap(), "--key", "/dev/zero"],
        dir.path(),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("65536-byte limit for key files"), "{err}");
}

#[test]
fn verify_names_a_p384_key_instead_of_the_p256_oid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "k.pem",
        ][..],
        &["pkey", "-in", "k.pem", "-pubout", "-out", "k.pub"][..],
    ] {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let bundle = d.join("good.tar");
    sample_bundle(&bundle, |_| {});
    let out = run(
        "atp-installer",
        &["verify", bundle.to_str().unwrap(), "--key", "k.pub"],
        d,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("this is a P-384 (secp384r1) key"), "{err}");
    assert!(
        err.contains("ATP Offline signs with P-256 (prime256v1)"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(!err.contains("1.2.840.10045.3.1.7"), "{err}");
}

#[test]
fn a_tar_size_near_u64_max_is_a_finding_in_verify_and_an_error_in_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("huge.tar");
    let size = u64::MAX - 10;
    sample_bundle(&bundle, |e| {
        let h = &mut e[3].0;
        h[124..136].fill(0);
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
        let mut block = [0u8; 512];
        block.copy_from_slice(h);
        let sum = ustar::checksum(&block);
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    });
    let b = bundle.to_str().unwrap();
    let key = test_pub();
    let out = run(
        "atp-installer",
        &["verify", b, "--key", key.to_str().unwrap(), "--json"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| {
            let m = f["message"].as_str().unwrap();
            m.contains(&size.to_string()) && m.contains("cannot fit")
        }),
        "{findings:?}"
    );
    let out = run("atp-bundler", &["inspect", b], dir.path());
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot fit"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn verify_refuses_an_index_listing_one_digest_with_two_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("dup.tar");
    let key = test_key();
    let mut digest = String::new();
    sample_bundle(&bundle, |e| {
        let mut index: serde_json::Value = serde_json::from_slice(&e[1].1).unwrap();
        let manifests = index["manifests"].as_array_mut().unwrap();
        let mut dup = manifests[1].clone();
        dup["size"] = (dup["size"].as_u64().unwrap() + 1).into();
        dup["annotations"]["org.opencontainers.image.ref.name"] =
            "docker.io/atp/router:other".into();
        digest = dup["digest"].as_str().unwrap().to_string();
        manifests.insert(2, dup);
        let bytes = json::to_canonical_vec(&index).unwrap();
        let sig = atp_bundle::sign::sign(&key, &bytes);
        e[1] = (header("index.json", &bytes), bytes);
        e[2] = (header("index.json.sig", sig.as_bytes()), sig.into_bytes());
    });
    let test_pub = test_pub();
    let out = run(
        "atp-installer",
        &[
            "verify",
            bundle.to_str().unwrap(),
            "--key",
            test_pub.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = v["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["kind"] == "bad-index"
            && f["digest"] == digest.as_str()
            && f["message"].as_str().unwrap().contains("disagree")),
        "{findings:?}"
    );
}
