//! `fetch_blob_to_checking_sink`: the download path of `atp-bundler create`,
//! which leaves the digest check to the bundle writer's slot (so each byte is
//! hashed once) but still enforces the size and resumes with `Range`.

mod support;

use atp_registry::{Digest, Error, Repository};
use support::{client, resp, serve};

#[tokio::test]
async fn bytes_pass_through_sizes_are_enforced_and_drops_resume() {
    let data = b"0123456789".to_vec();
    let d = Digest::of(&data);
    let served = data.clone();
    let (host, seen) = serve(move |req| {
        let range = req.header("range").is_some();
        if req.line.contains("/corrupt/") {
            resp("200 OK", "", b"0123456780")
        } else if req.line.contains("/long/") {
            resp("200 OK", "", b"0123456789A")
        } else if req.line.contains("/flaky/") && !range {
            // Announces 10 bytes, sends 5, hangs up.
            let mut r = resp("200 OK", "", &served);
            r.truncate(r.len() - 5);
            r
        } else if req.line.contains("/flaky/") {
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

    let mut out = Vec::new();
    c.fetch_blob_to_checking_sink(&repo("a/good"), &d, 10, &mut out)
        .await
        .unwrap();
    assert_eq!(out, data);

    // Wrong content of the right size reaches the sink unjudged: the sink
    // (a bundle slot) is the one that hashes and refuses it.
    let mut out = Vec::new();
    c.fetch_blob_to_checking_sink(&repo("a/corrupt"), &d, 10, &mut out)
        .await
        .unwrap();
    assert_eq!(out, b"0123456780");
    assert_ne!(Digest::of(&out), d);

    // More bytes than announced: refused, and the sink never gets byte 11.
    let mut out = Vec::new();
    let err = c
        .fetch_blob_to_checking_sink(&repo("a/long"), &d, 10, &mut out)
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
    assert!(out.len() <= 10, "{} bytes reached the sink", out.len());

    // A dropped connection resumes at the byte count it got, with Range.
    let mut out = Vec::new();
    c.fetch_blob_to_checking_sink(&repo("a/flaky"), &d, 10, &mut out)
        .await
        .unwrap();
    assert_eq!(out, data);
    let ranges: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.line.contains("/flaky/"))
        .filter_map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, ["bytes=5-"]);
}
