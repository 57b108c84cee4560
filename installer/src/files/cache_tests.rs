//! Unit tests of the model cache writer: writes, skips, refusals of links
//! and mismatches, prune.

use std::collections::HashMap;
use std::fs;
use std::io;

use super::cache::*;
use super::*;
use atp_bundle::format::Descriptor;
use atp_bundle::progress::NoProgress;

/// A set of in-memory files and a request to write it under `dir`.
fn request(dir: &Path, files: &[(&str, &[u8])]) -> (CacheRequest, HashMap<Digest, Vec<u8>>) {
    let mut blobs = HashMap::new();
    let mut locations = HashMap::new();
    let mut set_files = Vec::new();
    for (i, (path, bytes)) in files.iter().enumerate() {
        let digest = Digest::of(bytes);
        blobs.insert(digest.clone(), bytes.to_vec());
        locations.insert(
            digest.clone(),
            BlobLocation {
                digest: digest.clone(),
                size: bytes.len() as u64,
                media_type: atp_bundle::format::media::FILE_LAYER.into(),
                header_offset: i as u64 * 512,
                data_offset: i as u64 * 512 + 512,
            },
        );
        set_files.push(SetFile {
            path: path.to_string(),
            digest,
            size: bytes.len() as u64,
        });
    }
    let req = CacheRequest {
        dir: dir.to_path_buf(),
        prune: false,
        sets: vec![FileSet {
            name: "models".into(),
            reference: "atp-offline/files/models:1".into(),
            descriptor: Descriptor::of_bytes(atp_bundle::format::media::OCI_MANIFEST, b"{}"),
            files: set_files,
        }],
        locations,
        omitted: HashSet::new(),
    };
    (req, blobs)
}

fn run(req: &CacheRequest, blobs: &HashMap<Digest, Vec<u8>>) -> Result<CacheSummary, FilesError> {
    let open = |loc: &BlobLocation| -> io::Result<Box<dyn Read + '_>> {
        Ok(Box::new(io::Cursor::new(blobs[&loc.digest].clone())))
    };
    write_cache(req, &open, Arc::new(NoProgress))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            e.path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

#[test]
fn writes_then_skips_what_is_already_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (req, blobs) = request(tmp.path(), &[("a/b/w.bin", b"weights"), ("e", b"")]);
    let s = run(&req, &blobs).unwrap();
    assert_eq!((s.written, s.unchanged, s.bytes_written), (2, 0, 7));
    assert_eq!(
        fs::read(tmp.path().join("models/a/b/w.bin")).unwrap(),
        b"weights"
    );
    assert_eq!(
        entries(tmp.path()),
        [
            "models",
            "models/a",
            "models/a/b",
            "models/a/b/w.bin",
            "models/e"
        ]
    );
    let s = run(&req, &blobs).unwrap();
    assert_eq!((s.written, s.unchanged), (0, 2));
}

#[test]
fn a_payload_that_does_not_match_leaves_the_previous_version() {
    let tmp = tempfile::tempdir().unwrap();
    let (req, mut blobs) = request(tmp.path(), &[("w.bin", b"new weights")]);
    fs::create_dir_all(tmp.path().join("models")).unwrap();
    fs::write(tmp.path().join("models/w.bin"), b"old weights").unwrap();
    let d = Digest::of(b"new weights");
    // Same size, other bytes: caught by digest.
    blobs.insert(d.clone(), b"new weighTs".to_vec());
    let err = run(&req, &blobs).unwrap_err();
    assert!(
        matches!(&err, FilesError::Mismatch { stage, .. } if stage.contains("payload")),
        "{err}"
    );
    // Longer: caught by size, as soon as it runs over.
    blobs.insert(d, b"new weights and more".to_vec());
    let err = run(&req, &blobs).unwrap_err();
    assert!(matches!(&err, FilesError::Mismatch { .. }), "{err}");
    assert_eq!(
        fs::read(tmp.path().join("models/w.bin")).unwrap(),
        b"old weights"
    );
    assert_eq!(
        entries(tmp.path()),
        ["models", "models/w.bin"],
        "no temp file left"
    );
}

#[test]
fn refuses_links_out_and_checks_everything_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    fs::create_dir_all(cache.join("models")).unwrap();
    std::os::unix::fs::symlink(out.path(), cache.join("models/z")).unwrap();
    let (req, blobs) = request(&cache, &[("a.bin", b"a"), ("z/w.bin", b"w")]);
    let err = run(&req, &blobs).unwrap_err().to_string();
    assert!(err.contains("outside") && err.contains("models/z"), "{err}");
    assert!(
        !cache.join("models/a.bin").exists(),
        "a.bin sorts first but was written"
    );
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);

    // A link that stays inside the cache is a folder like any other.
    fs::remove_file(cache.join("models/z")).unwrap();
    fs::create_dir_all(cache.join("models/real")).unwrap();
    std::os::unix::fs::symlink(cache.join("models/real"), cache.join("models/z")).unwrap();
    run(&req, &blobs).unwrap();
    assert_eq!(fs::read(cache.join("models/real/w.bin")).unwrap(), b"w");
}

#[test]
fn prune_removes_only_unlisted_regular_files_of_the_set() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join("victim"), b"v").unwrap();
    let (mut req, blobs) = request(tmp.path(), &[("keep.bin", b"k")]);
    fs::create_dir_all(tmp.path().join("models/old")).unwrap();
    fs::write(tmp.path().join("models/old/gone.bin"), b"g").unwrap();
    fs::create_dir_all(tmp.path().join("other")).unwrap();
    fs::write(tmp.path().join("other/x"), b"x").unwrap();
    std::os::unix::fs::symlink(out.path(), tmp.path().join("models/outlink")).unwrap();
    std::os::unix::fs::symlink(out.path().join("victim"), tmp.path().join("models/flink")).unwrap();
    req.prune = true;
    let s = run(&req, &blobs).unwrap();
    assert_eq!(s.pruned, ["models/old/gone.bin"]);
    assert_eq!(
        entries(tmp.path()),
        [
            "models",
            "models/flink",
            "models/keep.bin",
            "models/old",
            "models/outlink",
            "other",
            "other/x"
        ]
    );
    assert_eq!(fs::read(out.path().join("victim")).unwrap(), b"v");
}

#[test]
fn a_delta_file_missing_from_the_cache_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut req, blobs) = request(tmp.path(), &[("a", b"a"), ("w", b"w")]);
    let d = Digest::of(b"w");
    req.locations.remove(&d);
    req.omitted.insert(d.clone());
    let err = run(&req, &blobs).unwrap_err();
    assert!(matches!(err, FilesError::NotCarried { .. }), "{err}");
    assert!(!tmp.path().join("models/a").exists());
    // Once the cache has it, the delta installs.
    fs::create_dir_all(tmp.path().join("models")).unwrap();
    fs::write(tmp.path().join("models/w"), b"w").unwrap();
    let s = run(&req, &blobs).unwrap();
    assert_eq!((s.written, s.unchanged), (1, 1));
}
