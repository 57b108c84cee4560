//! Credentials never leave the registry's origin: when a (hostile or
//! misconfigured) registry answers an upload with a `Location` on another
//! host, the client follows it without `Authorization`. A relative
//! `Location` stays on the registry and keeps its credentials.

mod support;

use atp_registry::{Bytes, Credentials, Digest, PushOutcome, Repository};
use support::{client, resp, serve, Seen};

/// A registry that wants Basic auth and sends uploads to `location`.
async fn registry(location: String) -> (String, Seen) {
    serve(move |req| {
        if !req.has_auth() {
            return resp(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"r\"\r\n",
                b"",
            );
        }
        if req.line.starts_with("HEAD ") {
            resp("404 Not Found", "", b"")
        } else if req.line.starts_with("POST ") {
            resp("202 Accepted", &format!("Location: {location}\r\n"), b"")
        } else if req.line.starts_with("PUT ") {
            resp("201 Created", "", b"")
        } else {
            resp("400 Bad Request", "", b"")
        }
    })
    .await
}

fn creds() -> Option<Credentials> {
    Some(Credentials::new("u", "p"))
}

#[tokio::test]
async fn credentials_stay_on_the_registry_origin() {
    let (other, other_seen) = serve(|_| resp("201 Created", "", b"")).await;
    let (host, seen) = registry(format!("http://{other}/upload/1?_state=x")).await;
    let c = client(&host, creds());
    let repo: Repository = format!("{host}/a/b").parse().unwrap();
    let blob = Bytes::from_static(b"hello");
    let d = Digest::of(&blob);
    let out = c.push_blob(&repo, &d, 5, &blob, &[]).await.unwrap();
    assert_eq!(out, PushOutcome::Uploaded);
    let other_seen = other_seen.lock().unwrap().clone();
    assert_eq!(other_seen.len(), 1, "{other_seen:?}");
    assert!(other_seen[0]
        .line
        .starts_with("PUT /upload/1?_state=x&digest=sha256%3A"));
    assert!(
        !other_seen[0].has_auth(),
        "credentials sent to another host"
    );
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.line.starts_with("POST") && r.has_auth()));
}

#[tokio::test]
async fn a_relative_location_stays_on_the_registry_with_credentials() {
    let (host, seen) = registry("/v2/a/b/blobs/uploads/u1?_state=y".into()).await;
    let c = client(&host, creds());
    let repo: Repository = format!("{host}/a/b").parse().unwrap();
    let blob = Bytes::from_static(b"hello");
    let d = Digest::of(&blob);
    c.push_blob(&repo, &d, 5, &blob, &[]).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let put = seen.iter().find(|r| {
        r.line
            .starts_with("PUT /v2/a/b/blobs/uploads/u1?_state=y&digest=")
            && r.has_auth()
    });
    assert!(put.is_some(), "{seen:?}");
}
