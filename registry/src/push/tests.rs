//! Unit tests of `push`.

use super::*;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn sources_reopen_at_offsets() {
    let data = Bytes::from_static(b"0123456789");
    let mut s = String::new();
    data.open(4)
        .await
        .unwrap()
        .read_to_string(&mut s)
        .await
        .unwrap();
    assert_eq!(s, "456789");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, b"HEADER0123456789").unwrap();
    let src = FileSource { path: p, start: 6 };
    let mut s = String::new();
    src.open(3)
        .await
        .unwrap()
        .read_to_string(&mut s)
        .await
        .unwrap();
    assert_eq!(s, "3456789");
}
