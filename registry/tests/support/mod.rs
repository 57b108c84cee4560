//! A tiny raw-HTTP/1.1 server on 127.0.0.1 for "bad registry" tests: each
//! connection serves one request, answered by a closure, and every request is
//! recorded. Never binds anything but loopback.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use atp_registry::{
    Client, ClientOptions, Credentials, DefaultCredentials, RegistryConfig, RetryPolicy,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    /// `METHOD /path?query HTTP/1.1`
    pub line: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn has_auth(&self) -> bool {
        self.header("authorization").is_some()
    }
}

pub type Seen = Arc<Mutex<Vec<Req>>>;

/// Serve `answer(request) -> raw response bytes` until the runtime ends.
pub async fn serve<F>(answer: F) -> (String, Seen)
where
    F: Fn(&Req) -> Vec<u8> + Send + Sync + 'static,
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
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).await.unwrap();
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                    }
                }
                let req = Req {
                    line: line.trim().to_owned(),
                    headers,
                };
                let len: usize = req
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                rec.lock().unwrap().push(req.clone());
                let resp = answer(&req);
                let _ = r.get_mut().write_all(&resp).await;
            });
        }
    });
    (host, seen)
}

/// A response with `Connection: close` and the given extra header lines.
pub fn resp(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A plain-HTTP client for `host`, optionally with credentials.
pub fn client(host: &str, creds: Option<Credentials>) -> Client {
    let mut o = ClientOptions {
        default_creds: DefaultCredentials::None,
        retry: RetryPolicy::fast(),
        ..Default::default()
    };
    o.registries.insert(
        host.into(),
        RegistryConfig {
            plain_http: true,
            credentials: creds,
            ..Default::default()
        },
    );
    Client::new(o).unwrap()
}
