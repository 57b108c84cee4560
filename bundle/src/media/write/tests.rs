//! Unit tests of `write`.

use super::*;
use crate::media::BundleInput;
use crate::progress::NoProgress;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn writes_signed_volumes_that_read_back_as_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut x = 88_172_645_463_325_252u64;
    let data: Vec<u8> = (0..50_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let tar = dir.path().join("src.bin");
    std::fs::write(&tar, &data).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let key = SigningKey::from_slice(&[5u8; 32]).unwrap();
    for compression in [Compression::None, Compression::ZstdSeekable] {
        let opts = MediaOptions {
            split_size: Some(8192),
            compression,
        };
        let out = write_media(
            &tar,
            &out_dir.join("b.tar"),
            opts,
            &Digest::of(b"index"),
            None,
            &key,
            &NoProgress,
        )
        .unwrap();
        assert!(out.volumes.len() >= 2);
        assert!(names(&out_dir).iter().all(|n| !n.starts_with('.')));
        let input = BundleInput::open(&out.volumes[0], &[], Some(key.verifying_key())).unwrap();
        let mut back = Vec::new();
        io::copy(&mut input.sequential(), &mut back).unwrap();
        assert_eq!(back, data);
        assert!(input.check_volumes().iter().all(|(_, s)| s.is_good()));
    }
    assert!(names(&out_dir).contains(&"b.tar.zst.volumes.json".to_string()));
    assert!(names(&out_dir).contains(&"b.tar.007".to_string()));
}

#[test]
fn too_many_volumes_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("src.bin");
    std::fs::write(&tar, vec![1u8; 4096 * 1000 + 1]).unwrap();
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let key = SigningKey::from_slice(&[5u8; 32]).unwrap();
    let opts = MediaOptions {
        split_size: Some(4096),
        compression: Compression::None,
    };
    let err = write_media(
        &tar,
        &out_dir.join("b.tar"),
        opts,
        &Digest::of(b"i"),
        None,
        &key,
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        MediaWriteError::TooManyVolumes { count: 1001, .. }
    ));
    assert!(names(&out_dir).is_empty());
}
