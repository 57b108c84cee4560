//! Removable media end to end (issue 7): a bundle split into volumes and/or
//! compressed as seekable zstd is verified, checked with `verify-media`,
//! inspected and installed straight from the volumes against the real
//! registry, and nothing on the source folder changes. Damaged volumes
//! (missing, swapped, truncated, foreign, bit-flipped) are each named.
//! zstd output round-trips through stock `zstd -d`; decompression bombs are
//! refused.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use atp_bundle::media::multi::VolumeHasher;
use atp_bundle::media::VolumesFile;
use atp_testkit::Registry;
use common::*;

const SPLIT: &str = "16384";

/// Names, sizes and mtimes of every file in `dir`.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (m.len(), m.modified().unwrap()),
            )
        })
        .collect()
}

fn volumes_file(p: &Path) -> VolumesFile {
    VolumesFile::parse(&std::fs::read(p).unwrap()).unwrap()
}

/// Make the demo bundle plain (`plain.tar`) and as media in `dir/b.tar*`.
fn demo_media(w: &Work, dir: &str, extra: &[&str]) -> Vec<u8> {
    std::fs::create_dir_all(w.path(dir)).unwrap();
    assert_ok(&w.create_demo("plain.tar", &[]), "create plain");
    let out = format!("{dir}/b.tar");
    assert_ok(&w.create_demo(&out, extra), "create media");
    std::fs::read(w.path("plain.tar")).unwrap()
}

fn stdout_stderr(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn split_volumes_verify_inspect_and_install_in_place_without_touching_the_media() {
    let reg = Registry::plain();
    let w = Work::new();
    let plain = demo_media(&w, "usb1", &["--split-size", SPLIT]);
    let vf = volumes_file(&w.path("usb1/b.tar.volumes.json"));
    assert!(vf.volumes.len() >= 3, "{} volumes", vf.volumes.len());
    assert_eq!(vf.tar_size, plain.len() as u64);
    // The volumes are the plain bundle's bytes, cut at the split size.
    let mut joined = Vec::new();
    for (i, v) in vf.volumes.iter().enumerate() {
        assert_eq!(v.name, format!("b.tar.{:03}", i + 1));
        let bytes = std::fs::read(w.path(&format!("usb1/{}", v.name))).unwrap();
        assert!(bytes.len() as u64 <= 16384);
        joined.extend(bytes);
    }
    assert_eq!(joined, plain);
    assert!(!w.path("usb1/b.tar").exists());
    let leftovers: Vec<_> = snapshot(&w.path("usb1"))
        .into_keys()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The last volumes travel on a second drive.
    std::fs::create_dir_all(w.path("usb2")).unwrap();
    for v in &vf.volumes[2..] {
        std::fs::rename(
            w.path(&format!("usb1/{}", v.name)),
            w.path(&format!("usb2/{}", v.name)),
        )
        .unwrap();
    }
    let before = (snapshot(&w.path("usb1")), snapshot(&w.path("usb2")));

    let plain_verify = json(&w.installer(&["verify", "plain.tar", "--key", &w.pubkey(), "--json"]));
    for given in [
        "usb1",
        "usb1/b.tar",
        "usb1/b.tar.001",
        "usb1/b.tar.volumes.json",
    ] {
        let out = w.installer(&[
            "verify",
            given,
            "--key",
            &w.pubkey(),
            "--volumes-from",
            "usb2",
            "--json",
        ]);
        assert_ok(&out, given);
        let v = json(&out);
        assert_eq!(v["ok"], true);
        assert_eq!(v["index_digest"], plain_verify["index_digest"]);
        assert_eq!(v["bytes"], plain.len() as u64);
    }
    // Without the second drive, the first volume it holds is named.
    let out = w.installer(&["verify", "usb1", "--key", &w.pubkey()]);
    assert!(!out.status.success());
    let text = stdout_stderr(&out);
    assert!(text.contains("volume b.tar.003: missing"), "{text}");
    assert!(text.contains("--volumes-from"), "{text}");

    let out = w.installer(&[
        "verify-media",
        "usb1",
        "--key",
        &w.pubkey(),
        "--volumes-from",
        "usb2",
        "--json",
    ]);
    assert_ok(&out, "verify-media");
    let m = json(&out);
    assert_eq!(m["ok"], true);
    assert_eq!(m["volumes"].as_array().unwrap().len(), vf.volumes.len());
    assert!(m["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "good"));

    let out = w.bundler(&[
        "inspect",
        "usb1/b.tar.002",
        "--volumes-from",
        "usb2",
        "--json",
    ]);
    assert_ok(&out, "inspect");
    let plain_inspect = json(&w.bundler(&["inspect", "plain.tar", "--json"]));
    let inspected = json(&out);
    assert_eq!(inspected["index_digest"], plain_inspect["index_digest"]);
    assert_eq!(inspected["images"], plain_inspect["images"]);
    assert_eq!(inspected["size"], plain.len() as u64);

    let out = install(&w, &reg, "usb1", &["--volumes-from", "usb2", "--json"]);
    assert_ok(&out, "install from volumes");
    let summary = json(&out);
    let images = summary["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    for img in images {
        let target = img["target"].as_str().unwrap();
        let reference = target.strip_prefix(&format!("{}/", reg.host())).unwrap();
        assert_eq!(
            skopeo_digest(&reg, reference),
            img["digest"].as_str().unwrap()
        );
    }

    let after = (snapshot(&w.path("usb1")), snapshot(&w.path("usb2")));
    assert_eq!(before, after, "the source media changed");
}

/// Copy the good volumes of `from` into a fresh folder `to`.
fn copy_dir(w: &Work, from: &str, to: &str) {
    std::fs::create_dir_all(w.path(to)).unwrap();
    for e in std::fs::read_dir(w.path(from)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), w.path(to).join(e.file_name())).unwrap();
    }
}

#[test]
fn each_damaged_volume_is_named() {
    let w = Work::new();
    demo_media(&w, "good", &["--split-size", SPLIT]);
    // Another bundle (other content, other sequence) split the same way.
    let spec = demo_spec(&w, "other.yaml", 7, &[]);
    std::fs::create_dir_all(w.path("other")).unwrap();
    let mut c = w.bundler_cmd(&[
        "create",
        "--spec",
        &spec,
        "--key",
        "k.key",
        "--output",
        "other/b.tar",
        "--split-size",
        SPLIT,
    ]);
    assert_ok(&c.output().unwrap(), "create other");
    let vf = volumes_file(&w.path("good/b.tar.volumes.json"));
    assert!(vf.volumes.len() >= 4);

    type Damage = fn(&Work, &str);
    /// Name, how to damage the copy, and the status expected per volume.
    type Case<'a> = (&'a str, Damage, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (
            "missing",
            |w, d| std::fs::remove_file(w.path(&format!("{d}/b.tar.002"))).unwrap(),
            &[("b.tar.002", "missing")],
        ),
        (
            "swapped",
            |w, d| {
                let (a, b) = (
                    w.path(&format!("{d}/b.tar.002")),
                    w.path(&format!("{d}/b.tar.003")),
                );
                let t = w.path(&format!("{d}/tmp"));
                std::fs::rename(&a, &t).unwrap();
                std::fs::rename(&b, &a).unwrap();
                std::fs::rename(&t, &b).unwrap();
            },
            &[("b.tar.002", "foreign"), ("b.tar.003", "foreign")],
        ),
        (
            "truncated",
            |w, d| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(w.path(&format!("{d}/b.tar.003")))
                    .unwrap();
                f.set_len(10_000).unwrap();
            },
            &[("b.tar.003", "truncated")],
        ),
        (
            "foreign",
            |w, d| {
                std::fs::copy(w.path("other/b.tar.002"), w.path(&format!("{d}/b.tar.002")))
                    .unwrap();
            },
            &[("b.tar.002", "foreign")],
        ),
        (
            "bit-flipped",
            |w, d| {
                let p = w.path(&format!("{d}/b.tar.004"));
                let mut b = std::fs::read(&p).unwrap();
                b[5000] ^= 0x10;
                std::fs::write(&p, b).unwrap();
            },
            &[("b.tar.004", "corrupt")],
        ),
    ];
    for (case, damage, expected) in cases {
        copy_dir(&w, "good", case);
        damage(&w, case);
        let before = snapshot(&w.path(case));

        let out = w.installer(&["verify-media", case, "--key", &w.pubkey(), "--json"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{case}: {}",
            stdout_stderr(&out)
        );
        let m = json(&out);
        assert_eq!(m["ok"], false, "{case}");
        for v in m["volumes"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap();
            let want = expected
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("good", |(_, s)| *s);
            assert_eq!(v["status"], want, "{case}: {name}: {v}");
        }
        let text = text(&w.installer(&["verify-media", case, "--key", &w.pubkey()]));
        for (name, status) in *expected {
            assert!(
                text.contains(&format!("volume {name}: {status}")),
                "{case}: {text}"
            );
        }

        // verify (and so install) refuses it, naming each bad volume.
        let out = w.installer(&["verify", case, "--key", &w.pubkey()]);
        assert!(!out.status.success(), "{case}");
        let said = stdout_stderr(&out);
        for (name, _) in *expected {
            assert!(said.contains(name), "{case}: {said}");
        }
        assert_eq!(before, snapshot(&w.path(case)), "{case}: media changed");
    }
}

#[test]
fn zstd_bundle_verifies_installs_and_round_trips_through_zstd_d() {
    let reg = Registry::plain();
    let w = Work::new();
    let plain = demo_media(&w, "z", &["--compress", "zstd"]);
    let zst = w.path("z/b.tar.zst");
    assert!(zst.is_file());
    assert!(w.path("z/b.tar.zst.volumes.json").is_file());
    let out = std::process::Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .arg(&zst)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, plain, "zstd -d gives other bytes");

    let before = snapshot(&w.path("z"));
    for given in ["z/b.tar.zst", "z"] {
        let out = w.installer(&["verify", given, "--key", &w.pubkey(), "--json"]);
        assert_ok(&out, given);
        assert_eq!(json(&out)["bytes"], plain.len() as u64);
    }
    let out = install(&w, &reg, "z/b.tar.zst", &["--json"]);
    assert_ok(&out, "install zstd");
    for img in json(&out)["images"].as_array().unwrap() {
        let target = img["target"].as_str().unwrap();
        let reference = target.strip_prefix(&format!("{}/", reg.host())).unwrap();
        assert_eq!(
            skopeo_digest(&reg, reference),
            img["digest"].as_str().unwrap()
        );
    }
    assert_eq!(before, snapshot(&w.path("z")));

    // Compressed and split: the volumes, joined, are the zstd stream.
    std::fs::create_dir_all(w.path("zs")).unwrap();
    assert_ok(
        &w.create_demo("zs/b.tar", &["--compress", "zstd", "--split-size", "8192"]),
        "create zstd split",
    );
    let vf = volumes_file(&w.path("zs/b.tar.zst.volumes.json"));
    assert!(vf.volumes.len() >= 2, "{} volumes", vf.volumes.len());
    let mut joined = Vec::new();
    for v in &vf.volumes {
        assert!(v.name.starts_with("b.tar.zst."));
        joined.extend(std::fs::read(w.path(&format!("zs/{}", v.name))).unwrap());
    }
    assert_eq!(joined, std::fs::read(&zst).unwrap());
    assert_ok(
        &w.installer(&["verify", "zs", "--key", &w.pubkey()]),
        "verify zstd split",
    );
    assert_ok(
        &w.installer(&["verify-media", "zs", "--key", &w.pubkey()]),
        "verify-media zstd split",
    );
}

/// Re-describe `dir/b.tar.zst` in a freshly signed volumes.json after
/// `edit` changed the stream and/or the description.
fn resign(w: &Work, dir: &str, edit: impl FnOnce(&mut Vec<u8>, &mut VolumesFile)) {
    let vj = w.path(&format!("{dir}/b.tar.zst.volumes.json"));
    let mut vf = volumes_file(&vj);
    let zst = w.path(&format!("{dir}/b.tar.zst"));
    let mut stream = std::fs::read(&zst).unwrap();
    edit(&mut stream, &mut vf);
    std::fs::write(&zst, &stream).unwrap();
    let mut h = VolumeHasher::new(vf.volumes[0].chunk_size);
    h.update(&stream);
    let (sha, size, chunks) = h.finish();
    vf.volumes[0].sha256 = sha;
    vf.volumes[0].size = size;
    vf.volumes[0].chunks = chunks;
    vf.stream_size = size;
    let bytes = vf.to_bytes();
    let key = atp_bundle::keys::load_private_file(&w.path("k.key"), "").unwrap();
    std::fs::write(&vj, &bytes).unwrap();
    std::fs::write(
        w.path(&format!("{dir}/b.tar.zst.volumes.json.sig")),
        VolumesFile::sign(&bytes, &key),
    )
    .unwrap();
}

#[test]
fn zstd_bombs_are_refused() {
    let w = Work::new();
    let plain = demo_media(&w, "z", &["--compress", "zstd"]);

    // The signed size is smaller than what the stream decompresses to.
    copy_dir(&w, "z", "small");
    resign(&w, "small", |_, vf| vf.tar_size -= 512);
    let out = w.installer(&["verify", "small", "--key", &w.pubkey()]);
    assert!(!out.status.success());
    let said = stdout_stderr(&out);
    assert!(said.contains("decompresses to"), "{said}");
    assert!(
        said.contains(&format!("records {}", plain.len() - 512)),
        "{said}"
    );

    // A frame that decompresses to more than its seek-table entry says
    // (the total kept equal to the signed size by a second, empty-ish frame).
    copy_dir(&w, "z", "bomb");
    resign(&w, "bomb", |stream, vf| {
        let n = stream.len();
        // Footer: frames u32, descriptor u8, magic u32; entry: c u32, d u32.
        let frames = u32::from_le_bytes(stream[n - 9..n - 5].try_into().unwrap());
        assert_eq!(frames, 1);
        let d_at = n - 9 - 4;
        let d = u32::from_le_bytes(stream[d_at..d_at + 4].try_into().unwrap());
        stream[d_at..d_at + 4].copy_from_slice(&(d - 4096).to_le_bytes());
        vf.tar_size -= 4096;
    });
    let out = w.installer(&["verify", "bomb", "--key", &w.pubkey()]);
    assert!(!out.status.success());
    let said = stdout_stderr(&out);
    assert!(said.contains("more than"), "{said}");
    assert!(said.contains("zstd frame 0"), "{said}");

    // A zstd stream without a seek table is not accepted.
    let raw = zstd::bulk::compress(&plain, 3).unwrap();
    std::fs::write(w.path("raw.tar.zst"), raw).unwrap();
    let out = w.installer(&["verify", "raw.tar.zst", "--key", &w.pubkey()]);
    assert!(!out.status.success());
    assert!(stdout_stderr(&out).contains("not a seekable zstd stream"));
}
