//! The proxy's HTTP/1.1 wire: request and response heads (read, framed,
//! rewritten by a header fault), bodies copied by their framing under a
//! bandwidth budget, the answers a fault sends instead of the registry, and
//! the TCP reset. Bytes it does not rewrite pass through untouched.

use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Fault, RetryAfter};

/// A parsed HTTP/1.1 message head, with its raw bytes.
pub(super) struct Head {
    pub(super) raw: Vec<u8>,
    pub(super) start: String,
    pub(super) headers: Vec<(String, String)>,
}

impl Head {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub(super) fn framing(&self) -> Framing {
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(n) = self
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            Framing::Length(n)
        } else {
            Framing::None
        }
    }
    pub(super) fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
    /// Apply a header-rewriting fault and rebuild the raw bytes.
    pub(super) fn rewrite(&mut self, fault: &Fault) {
        match fault {
            Fault::SetResponseHeader { name, value } => {
                self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                self.headers.push((name.clone(), value.clone()));
            }
            Fault::RewriteResponseHeader { name, from, to } => {
                for (k, v) in &mut self.headers {
                    if k.eq_ignore_ascii_case(name) {
                        *v = v.replace(from.as_str(), to);
                    }
                }
            }
            _ => return,
        }
        let mut raw = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        self.raw = raw.into_bytes();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Response body delimited by connection close.
    UntilClose,
}

pub(super) async fn read_head<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<Option<Head>> {
    let mut raw = Vec::new();
    loop {
        let n = r.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            bail!("connection closed inside a message head");
        }
        if raw.ends_with(b"\r\n\r\n") || raw == b"\r\n" {
            break;
        }
        if raw.len() > 64 << 10 {
            bail!("message head over 64 KiB");
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Some(Head {
        raw,
        start,
        headers,
    }))
}

/// Copy one body from `r` to `w` (or discard it when `w` is `None`), stopping
/// after `limit` bytes if given. Returns true when the whole body was copied.
pub(super) async fn copy_body<R, W>(
    r: &mut BufReader<R>,
    mut w: Option<&mut W>,
    framing: Framing,
    limit: Option<u64>,
    rate: Option<u64>,
) -> Result<bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut budget = limit.unwrap_or(u64::MAX);
    match framing {
        Framing::None => Ok(true),
        Framing::Length(n) => copy_exact(r, &mut w, n, &mut budget, rate).await,
        Framing::UntilClose => {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = r.read(&mut buf).await?;
                if n == 0 {
                    return Ok(true);
                }
                let take = (n as u64).min(budget) as usize;
                if let Some(w) = w.as_mut() {
                    w.write_all(&buf[..take]).await?;
                }
                budget -= take as u64;
                if budget == 0 {
                    return Ok(false);
                }
            }
        }
        Framing::Chunked => loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line).await?;
            if line.is_empty() {
                bail!("connection closed inside a chunked body");
            }
            let size_text = String::from_utf8_lossy(&line);
            let size_hex = size_text.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size_hex, 16).context("chunk size")?;
            if !write_budgeted(&mut w, &line, &mut budget).await? {
                return Ok(false);
            }
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    let mut t = Vec::new();
                    r.read_until(b'\n', &mut t).await?;
                    if !write_budgeted(&mut w, &t, &mut budget).await? {
                        return Ok(false);
                    }
                    if t == b"\r\n" || t.is_empty() {
                        return Ok(true);
                    }
                }
            }
            if !copy_exact(r, &mut w, size + 2, &mut budget, rate).await? {
                return Ok(false);
            }
        },
    }
}

pub(super) async fn write_budgeted<W: AsyncWrite + Unpin>(
    w: &mut Option<&mut W>,
    bytes: &[u8],
    budget: &mut u64,
) -> Result<bool> {
    let take = (bytes.len() as u64).min(*budget) as usize;
    if let Some(w) = w.as_mut() {
        w.write_all(&bytes[..take]).await?;
    }
    *budget -= take as u64;
    Ok(take == bytes.len())
}

pub(super) async fn copy_exact<R, W>(
    r: &mut BufReader<R>,
    w: &mut Option<&mut W>,
    mut n: u64,
    budget: &mut u64,
    rate: Option<u64>,
) -> Result<bool>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Throttled copies move small slices and sleep for each one's share.
    let step = if rate.is_some() { 16 << 10 } else { 64 << 10 };
    let mut buf = vec![0u8; step];
    while n > 0 {
        let want = n.min(buf.len() as u64).min((*budget).max(1)) as usize;
        let got = r.read(&mut buf[..want]).await?;
        if got == 0 {
            bail!("connection closed inside a body");
        }
        if let Some(rate) = rate {
            let secs = got as f64 / rate.max(1) as f64;
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
        let complete = write_budgeted(w, &buf[..got], budget).await?;
        n -= got as u64;
        if !complete || (*budget == 0 && n > 0) {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(super) fn reset(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

pub(super) fn status_response(status: u16, retry_after: Option<RetryAfter>) -> Vec<u8> {
    let reason = match status {
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    };
    let body = format!(
        r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected HTTP {status} by the atp-testkit fault proxy"}}]}}"#
    );
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    match retry_after {
        Some(RetryAfter::Seconds(s)) => head.push_str(&format!("Retry-After: {s}\r\n")),
        Some(RetryAfter::DateIn(s)) => head.push_str(&format!(
            "Retry-After: {}\r\n",
            httpdate_fmt(SystemTime::now() + Duration::from_secs(s))
        )),
        None => {}
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// RFC 7231 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(super) fn httpdate_fmt(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    d.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .expect("formatting a date")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{Fault, RetryAfter};

    #[test]
    fn injected_answers_are_well_formed() {
        let r = String::from_utf8(status_response(429, Some(RetryAfter::Seconds(1)))).unwrap();
        assert!(r.starts_with("HTTP/1.1 429 Too Many Requests\r\n"));
        assert!(r.contains("\r\nRetry-After: 1\r\n"));
        let r = String::from_utf8(status_response(503, Some(RetryAfter::DateIn(2)))).unwrap();
        let date = r
            .lines()
            .find_map(|l| l.strip_prefix("Retry-After: "))
            .unwrap();
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
    }

    #[test]
    fn header_faults_replace_add_and_rewrite() {
        let mut h = Head {
            raw: Vec::new(),
            start: "HTTP/1.1 201 Created".into(),
            headers: vec![
                ("Location".into(), "http://127.0.0.1:1/v2/a".into()),
                ("Docker-Content-Digest".into(), "sha256:aa".into()),
            ],
        };
        h.rewrite(&Fault::SetResponseHeader {
            name: "Docker-Content-Digest".into(),
            value: "sha256:bb".into(),
        });
        h.rewrite(&Fault::RewriteResponseHeader {
            name: "location".into(),
            from: "127.0.0.1:1".into(),
            to: "127.0.0.1:2".into(),
        });
        let raw = String::from_utf8(h.raw.clone()).unwrap();
        assert_eq!(
            raw,
            "HTTP/1.1 201 Created\r\nLocation: http://127.0.0.1:2/v2/a\r\nDocker-Content-Digest: sha256:bb\r\n\r\n"
        );
    }
}
