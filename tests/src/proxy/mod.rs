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
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

mod wire;
use wire::*;

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
}
