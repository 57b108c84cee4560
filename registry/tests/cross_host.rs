//! Credentials never leave the registry's origin: when a (hostile or
//! misconfigured) registry answers an upload with a `Location` on another
//! host, the client follows it without `Authorization`. A relative
//! `Location` stays on the registry and keeps its credentials.
//!
//! Uses two tiny raw-HTTP servers on 127.0.0.1 that record what they get.

use std::sync::{Arc, Mutex};

use atp_registry::{
    Bytes, Client, ClientOptions, Credentials, DefaultCredentials, Digest, PushOutcome,
    RegistryConfig, Repository, RetryPolicy,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

type Seen = Arc<Mutex<Vec<(String, bool)>>>;

/// Serve `answer(request_line, has_auth) -> raw response` forever; record
/// each request line and whether it carried `Authorization`.
async fn serve<F>(answer: F) -> (String, Seen)
where
    F: Fn(&str, bool) -> String + Send + Sync + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = l.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let rec = seen.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let rec = rec.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                let (mut auth, mut len) = (false, 0usize);
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).await.unwrap();
                    let lower = h.to_ascii_lowercase();
                    auth |= lower.starts_with("authorization:");
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if h == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                let line = line.trim().to_owned();
                rec.lock().unwrap().push((line.clone(), auth));
                let resp = answer(&line, auth);
                r.get_mut().write_all(resp.as_bytes()).await.unwrap();
            });
        }
    });
    (host, seen)
}

fn resp(status: &str, headers: &str) -> String {
    format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
}

fn client(host: &str) -> Client {
    let mut o = ClientOptions {
        default_creds: DefaultCredentials::None,
        retry: RetryPolicy::fast(),
        ..Default::default()
    };
    o.registries.insert(
        host.into(),
        RegistryConfig {
            plain_http: true,
            credentials: Some(Credentials::new("u", "p")),
            ..Default::default()
        },
    );
    Client::new(o).unwrap()
}

/// A registry that wants Basic auth and sends uploads to `location`.
async fn registry(location: String) -> (String, Seen) {
    serve(move |line, auth| {
        if !auth {
            return resp(
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"r\"\r\n",
            );
        }
        if line.starts_with("HEAD ") {
            resp("404 Not Found", "")
        } else if line.starts_with("POST ") {
            resp("202 Accepted", &format!("Location: {location}\r\n"))
        } else if line.starts_with("PUT ") {
            resp("201 Created", "")
        } else {
            resp("400 Bad Request", "")
        }
    })
    .await
}

#[tokio::test]
async fn credentials_stay_on_the_registry_origin() {
    let (other, other_seen) = serve(|_, _| resp("201 Created", "")).await;
    let (host, seen) = registry(format!("http://{other}/upload/1?_state=x")).await;
    let c = client(&host);
    let repo: Repository = format!("{host}/a/b").parse().unwrap();
    let blob = Bytes::from_static(b"hello");
    let d = Digest::of(&blob);
    let out = c.push_blob(&repo, &d, 5, &blob, &[]).await.unwrap();
    assert_eq!(out, PushOutcome::Uploaded);
    let other_seen = other_seen.lock().unwrap().clone();
    assert_eq!(other_seen.len(), 1, "{other_seen:?}");
    assert!(other_seen[0]
        .0
        .starts_with("PUT /upload/1?_state=x&digest=sha256%3A"));
    assert!(!other_seen[0].1, "credentials sent to another host");
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|(l, auth)| l.starts_with("POST") && *auth));
}

#[tokio::test]
async fn a_relative_location_stays_on_the_registry_with_credentials() {
    let (host, seen) = registry("/v2/a/b/blobs/uploads/u1?_state=y".into()).await;
    let c = client(&host);
    let repo: Repository = format!("{host}/a/b").parse().unwrap();
    let blob = Bytes::from_static(b"hello");
    let d = Digest::of(&blob);
    c.push_blob(&repo, &d, 5, &blob, &[]).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let put = seen
        .iter()
        .find(|(l, auth)| l.starts_with("PUT /v2/a/b/blobs/uploads/u1?_state=y&digest=") && *auth);
    assert!(put.is_some(), "{seen:?}");
}
