//! A registry that lies: wrong digests, schema 1, ignored `Range`, short or
//! corrupt blobs. Each must be refused with a precise error, never accepted.

mod support;

use atp_registry::{Digest, Error, Reference, Repository};
use support::{client, resp, serve};
use tokio::io::AsyncReadExt;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn manifest() -> Vec<u8> {
    let d = Digest::of(b"{}");
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{d}","size":2}},"layers":[]}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn manifests_that_do_not_match_are_refused() {
    let good = manifest();
    let good_digest = Digest::of(&good);
    let body = good.clone();
    let (host, _) = serve(move |req| {
        let ct = format!("Content-Type: {OCI_MANIFEST}\r\n");
        if req.line.contains("/manifests/lying-header") {
            let lie = format!(
                "{ct}Docker-Content-Digest: {}\r\n",
                Digest::of(b"something else")
            );
            resp("200 OK", &lie, &body)
        } else if req.line.contains("/manifests/schema1") {
            resp(
                "200 OK",
                "Content-Type: application/vnd.docker.distribution.manifest.v1+prettyjws\r\n",
                br#"{"schemaVersion":1,"name":"a","tag":"schema1","fsLayers":[]}"#,
            )
        } else if req.line.contains("/manifests/sha256:") {
            // Whatever digest was asked for, serve other bytes.
            resp("200 OK", &ct, &body[..body.len() - 1])
        } else if req.line.contains("/manifests/good") {
            resp("200 OK", &ct, &body)
        } else {
            resp("404 Not Found", "", b"")
        }
    })
    .await;
    let c = client(&host, None);
    let r = |s: &str| -> Reference { format!("{host}/a/{s}").parse().unwrap() };

    let m = c.get_manifest(&r("b:good")).await.unwrap();
    assert_eq!(m.digest, good_digest);
    assert_eq!(m.media_type, OCI_MANIFEST);
    assert_eq!(&m.bytes[..], &good[..]);

    let err = c.get_manifest(&r("b:lying-header")).await.unwrap_err();
    assert!(matches!(err, Error::ReportedDigest { .. }), "{err}");

    let err = c.get_manifest(&r("b:schema1")).await.unwrap_err();
    assert!(matches!(err, Error::Schema1 { .. }), "{err}");
    assert!(err.to_string().contains("hint:"), "{err}");

    let err = c
        .get_manifest(&r(&format!("b@{good_digest}")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ManifestDigest { .. }), "{err}");
}

#[tokio::test]
async fn blobs_that_do_not_match_are_refused() {
    let data = b"0123456789".to_vec();
    let d = Digest::of(&data);
    let served = data.clone();
    let (host, seen) = serve(move |req| {
        let range = req.header("range").is_some();
        if req.line.contains("/corrupt/") {
            resp("200 OK", "", b"0123456780")
        } else if req.line.contains("/flaky") && !range {
            // Announces 10 bytes, sends 5, hangs up.
            let mut r = resp("200 OK", "", &served);
            r.truncate(r.len() - 5);
            r
        } else if req.line.contains("/flaky-ignores-range/") {
            resp("200 OK", "", &served)
        } else if req.line.contains("/flaky-wrong-range/") {
            resp(
                "206 Partial Content",
                "Content-Range: bytes 4-9/10\r\n",
                &served[4..],
            )
        } else if req.line.contains("/flaky-good-range/") {
            resp(
                "206 Partial Content",
                "Content-Range: bytes 5-9/10\r\n",
                &served[5..],
            )
        } else {
            resp("200 OK", "", &served)
        }
    })
    .await;
    let c = client(&host, None);
    let repo = |s: &str| -> Repository { format!("{host}/{s}").parse().unwrap() };

    // Right bytes: fine, both ways.
    let mut out = Vec::new();
    c.fetch_blob_to(&repo("a/good"), &d, 10, &mut out)
        .await
        .unwrap();
    assert_eq!(out, data);

    // Wrong content: digest mismatch, reported at the end of the stream.
    let err = c
        .fetch_blob_to(&repo("a/corrupt"), &d, 10, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Blob {
                source: atp_bundle::digest::BlobMismatch::Digest { .. },
                ..
            }
        ),
        "{err}"
    );
    let mut r = c
        .blob_reader(&repo("a/corrupt"), &d, 10)
        .await
        .unwrap()
        .into_async_read();
    let io = r.read_to_end(&mut Vec::new()).await.unwrap_err();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidData);

    // Announced size disagrees with Content-Length: refused before reading.
    let err = c
        .fetch_blob_to(&repo("a/good"), &d, 11, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Blob {
                source: atp_bundle::digest::BlobMismatch::Size { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .all(|r| r.header("range").is_none()));
}
