//! Fault-injecting HTTP/1.1 proxy in front of a plain-HTTP registry: resets,
//! 5xx, 416, 429 with `Retry-After` (seconds or HTTP-date), a bandwidth limit
//! on request bodies, rewritten response headers, requests held until the
//! test releases them, and answers trickled a byte at a time, by method and
//! path.
//!
//! It forwards bytes untouched, `Host` included, so the registry builds
//! `Location` headers that point back at the proxy and the client keeps
//! talking to it. Only a header-rewriting fault changes what passes through;
//! other faults either answer instead of the registry (after draining the
//! request body, so the connection stays usable), slow the body down, or cut
//! both connections with a TCP reset. Binds 127.0.0.1 only; runs on its own
//! thread and runtime, and stops when dropped.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// `Retry-After` value of an injected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <n>`.
    Seconds(u64),
    /// `Retry-After: <HTTP-date n seconds from when the answer is sent>`.
    DateIn(u64),
}

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request head and the first `n` request-body bytes, then
    /// reset both connections (`n = 0` resets before the body).
    ResetRequestAfter(u64),
    /// Forward the request, then the response head and `n` response-body
    /// bytes, then reset both connections.
    ResetResponseAfter(u64),
    /// Answer with this status (and optional `Retry-After`) instead of the
    /// registry, after draining the request body.
    Status {
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    /// Forward the request body at no more than `bytes_per_sec` (a slow
    /// link); everything else passes untouched.
    Throttle { bytes_per_sec: u64 },
    /// Forward, then set response header `name` to `value` (replacing it, or
    /// adding it when the registry sent none): a lying registry.
    SetResponseHeader { name: String, value: String },
    /// Forward, then replace `from` by `to` inside response header `name`
    /// (e.g. point an upload `Location` at another host).
    RewriteResponseHeader {
        name: String,
        from: String,
        to: String,
    },
    /// Hold the request (nothing forwarded yet) until [`Proxy::release`],
    /// then pass it through: lets a test act at a known point of a run. A
    /// held request goes on by itself after [`HOLD_LIMIT`].
    Hold,
    /// Forward the request, then send the registry's answer (head and body)
    /// one byte per `every`: a registry that never quite stops answering.
    Trickle { every: Duration },
}

/// The longest a [`Fault::Hold`] holds a request when nobody releases it.
pub const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// One rule: requests with `method` whose path (with query) contains `path`
/// get `fault`, `times` times (forever when `None`), then pass through.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: String,
    pub path: String,
    pub fault: Fault,
    pub times: Option<usize>,
    /// Matching requests to let through before the fault starts.
    pub skip: usize,
    /// Requests that matched and got the fault so far.
    pub hits: usize,
}

impl Rule {
    /// A rule firing once; adjust with [`Rule::times`] or [`Rule::forever`].
    pub fn new(method: &str, path_contains: &str, fault: Fault) -> Rule {
        Rule {
            method: method.to_ascii_uppercase(),
            path: path_contains.to_owned(),
            fault,
            times: Some(1),
            skip: 0,
            hits: 0,
        }
    }
    /// Let the first `n` matching requests through untouched.
    pub fn after(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }
    pub fn forever(mut self) -> Rule {
        self.times = None;
        self
    }
    fn take(&mut self, method: &str, path: &str) -> Option<Fault> {
        let live = self.times.is_none_or(|t| self.hits < t);
        if live && (self.method == "*" || self.method == method) && path.contains(&self.path) {
            if self.skip > 0 {
                self.skip -= 1;
                return None;
            }
            self.hits += 1;
            return Some(self.fault.clone());
        }
        None
    }
}

/// A request the proxy saw, and what it did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEvent {
    pub method: String,
    pub path: String,
    /// `None` when passed through.
    pub fault: Option<Fault>,
    /// Whether the request carried an `Authorization` header.
    pub authorization: bool,
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    events: Vec<ProxyEvent>,
    /// Held requests go on once this is set.
    released: bool,
}

/// A running proxy. Stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Start a proxy on 127.0.0.1 in front of `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Result<Proxy> {
        let upstream: SocketAddr = upstream
            .parse()
            .with_context(|| format!("upstream {upstream:?} must be ip:port"))?;
        if !upstream.ip().is_loopback() {
            bail!("the proxy only forwards to loopback, not {upstream}");
        }
        let listener = StdListener::bind("127.0.0.1:0").context("binding the proxy")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, stopped) = oneshot::channel();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("atp-fault-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("proxy listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = accept_loop(listener, upstream, sh) => {}
                    }
                });
            })
            .context("spawning the proxy thread")?;
        Ok(Proxy {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Add a rule; rules are tried in the order added.
    pub fn add(&self, rule: Rule) {
        self.shared.lock().unwrap().rules.push(rule);
    }

    /// Remove all rules.
    pub fn clear(&self) {
        self.shared.lock().unwrap().rules.clear();
    }

    /// The rules with their hit counts.
    pub fn rules(&self) -> Vec<Rule> {
        self.shared.lock().unwrap().rules.clone()
    }

    /// Every request seen, in arrival order.
    pub fn events(&self) -> Vec<ProxyEvent> {
        self.shared.lock().unwrap().events.clone()
    }

    /// Let every held request ([`Fault::Hold`]) go on, and hold no more.
    pub fn release(&self) {
        self.shared.lock().unwrap().released = true;
    }

    /// Wait (up to `limit`) until a request matching `method` and `path`
    /// (as in [`Rule`]) has arrived; true when one did.
    pub fn wait_for(&self, method: &str, path_contains: &str, limit: Duration) -> bool {
        let method = method.to_ascii_uppercase();
        let deadline = std::time::Instant::now() + limit;
        loop {
            let seen = self
                .events()
                .iter()
                .any(|e| (method == "*" || e.method == method) && e.path.contains(path_contains));
            if seen {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Requests that got a fault.
    pub fn faults(&self) -> Vec<ProxyEvent> {
        self.events()
            .into_iter()
            .filter(|e| e.fault.is_some())
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Mutex<Shared>>) {
    while let Ok((client, _)) = listener.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = serve(client, upstream, shared).await;
        });
    }
}

/// A parsed HTTP/1.1 message head, with its raw bytes.
struct Head {
    raw: Vec<u8>,
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn framing(&self) -> Framing {
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
    fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
    /// Apply a header-rewriting fault and rebuild the raw bytes.
    fn rewrite(&mut self, fault: &Fault) {
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
enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Response body delimited by connection close.
    UntilClose,
}

async fn read_head<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<Option<Head>> {
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
async fn copy_body<R, W>(
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

async fn write_budgeted<W: AsyncWrite + Unpin>(
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

async fn copy_exact<R, W>(
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

fn reset(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

fn status_response(status: u16, retry_after: Option<RetryAfter>) -> Vec<u8> {
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
fn httpdate_fmt(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    d.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .expect("formatting a date")
}

async fn serve(client: TcpStream, upstream: SocketAddr, shared: Arc<Mutex<Shared>>) -> Result<()> {
    let _ = client.set_nodelay(true);
    let (cr, mut cw) = client.into_split();
    let mut cr = BufReader::new(cr);
    let mut up: Option<(
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    )> = None;
    loop {
        let Some(req) = read_head(&mut cr).await? else {
            return Ok(());
        };
        let mut parts = req.start.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let fault = {
            let mut sh = shared.lock().unwrap();
            let fault = sh.rules.iter_mut().find_map(|r| r.take(&method, &path));
            sh.events.push(ProxyEvent {
                method: method.clone(),
                path: path.clone(),
                fault: fault.clone(),
                authorization: req.header("authorization").is_some(),
            });
            fault
        };
        if fault == Some(Fault::Hold) {
            let since = std::time::Instant::now();
            while !shared.lock().unwrap().released && since.elapsed() < HOLD_LIMIT {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let req_framing = req.framing();
        if let Some(Fault::Status {
            status,
            retry_after,
        }) = fault
        {
            copy_body::<_, tokio::net::tcp::OwnedWriteHalf>(&mut cr, None, req_framing, None, None)
                .await?;
            cw.write_all(&status_response(status, retry_after)).await?;
            cw.flush().await?;
            continue;
        }
        if up.is_none() {
            let s = TcpStream::connect(upstream).await?;
            let _ = s.set_nodelay(true);
            let (r, w) = s.into_split();
            up = Some((BufReader::new(r), w));
        }
        let (ur, uw) = up.as_mut().expect("connected");
        uw.write_all(&req.raw).await?;
        let limit = match fault {
            Some(Fault::ResetRequestAfter(n)) => Some(n),
            _ => None,
        };
        let rate = match fault {
            Some(Fault::Throttle { bytes_per_sec }) => Some(bytes_per_sec),
            _ => None,
        };
        let whole = copy_body(&mut cr, Some(uw), req_framing, limit, rate).await?;
        uw.flush().await?;
        if limit.is_some() {
            // Give the registry a moment to take the partial body, then cut.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = whole;
            return abort(cr, cw, up).await;
        }
        let Some(mut resp) = read_head(ur).await? else {
            bail!("upstream closed before answering");
        };
        let status: u16 = resp
            .start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let no_body =
            method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status);
        let framing = match resp.framing() {
            _ if no_body => Framing::None,
            Framing::None => Framing::UntilClose,
            f => f,
        };
        if let Some(f) = &fault {
            resp.rewrite(f);
        }
        if let Some(Fault::Trickle { every }) = fault {
            // The head, then the body, a byte at a time; ends when the
            // client gives up (the write fails) or the answer is out.
            let mut body = Vec::new();
            copy_body(ur, Some(&mut body), framing, None, None).await?;
            for b in resp.raw.iter().chain(&body) {
                tokio::time::sleep(every).await;
                cw.write_all(std::slice::from_ref(b)).await?;
                cw.flush().await?;
            }
            if framing == Framing::UntilClose || resp.wants_close() || req.wants_close() {
                return Ok(());
            }
            continue;
        }
        cw.write_all(&resp.raw).await?;
        let limit = match fault {
            Some(Fault::ResetResponseAfter(n)) => Some(n),
            _ => None,
        };
        copy_body(ur, Some(&mut cw), framing, limit, None).await?;
        cw.flush().await?;
        if limit.is_some() {
            return abort(cr, cw, up).await;
        }
        if framing == Framing::UntilClose || resp.wants_close() || req.wants_close() {
            return Ok(());
        }
    }
}

/// Reset both connections (RST, not FIN).
async fn abort(
    cr: BufReader<tokio::net::tcp::OwnedReadHalf>,
    cw: tokio::net::tcp::OwnedWriteHalf,
    up: Option<(
        BufReader<tokio::net::tcp::OwnedReadHalf>,
        tokio::net::tcp::OwnedWriteHalf,
    )>,
) -> Result<()> {
    if let Ok(s) = cr.into_inner().reunite(cw) {
        reset(&s);
    }
    if let Some((r, w)) = up {
        if let Ok(s) = r.into_inner().reunite(w) {
            reset(&s);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_the_given_number_of_times() {
        let mut r = Rule::new(
            "patch",
            "/blobs/uploads/",
            Fault::Status {
                status: 503,
                retry_after: None,
            },
        )
        .times(2);
        assert!(r.take("PATCH", "/v2/a/blobs/uploads/x").is_some());
        assert!(r.take("PUT", "/v2/a/blobs/uploads/x").is_none());
        assert!(r.take("PATCH", "/v2/a/blobs/uploads/y").is_some());
        assert!(r.take("PATCH", "/v2/a/blobs/uploads/z").is_none());
        assert_eq!(r.hits, 2);
    }

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
