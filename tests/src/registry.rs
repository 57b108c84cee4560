//! The real CNCF distribution registry (`/usr/bin/docker-registry`) on
//! 127.0.0.1, one process per [`Registry`], in one of four modes: plain HTTP,
//! htpasswd basic auth, TLS, and bearer-token auth (TLS combines with either
//! auth mode).
//!
//! Everything a registry owns (config, storage, certificates, htpasswd, raw
//! log) lives in its own temp dir; it never reads or writes
//! `/etc/docker/registry`. The process is killed on drop. When a test panics
//! the temp dir is kept and its path printed so the raw log can be read.
//!
//! The access log is parsed from the registry's own combined-format access
//! lines on stdout, read by a thread per stream, so it is complete and in the
//! order the registry finished the requests.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::pki::{self, Ca};
use crate::token::{TokenConfig, TokenRequest, TokenServer};

/// Path of the registry binary (Debian's `docker-registry` package).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// `auth.token.service` and the JWT `aud` in token mode.
pub const TOKEN_SERVICE: &str = "atp-test-registry";
/// `auth.token.issuer` and the JWT `iss` in token mode.
pub const TOKEN_ISSUER: &str = "atp-test-issuer";
/// Query string on the harness's own readiness probes, which the access log leaves out.
const PROBE_MARKER: &str = "atp-testkit-readiness-probe";
/// Query string of an access-log barrier request: `PROBE_MARKER&sync=N`.
const SYNC_PREFIX: &str = "atp-testkit-readiness-probe&sync=";

/// The user name in Basic and Token modes.
pub const USER: &str = "atp";

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Auth {
    /// Anonymous pull and push.
    #[default]
    None,
    /// htpasswd (bcrypt) basic auth.
    Basic,
    /// Bearer tokens from the in-process issuer (see [`crate::token`]).
    Token,
}

/// How to start a [`Registry`].
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub auth: Auth,
    /// Serve HTTPS with a per-run CA ([`Registry::ca_cert_path`]).
    pub tls: bool,
    /// Token mode: seconds after issue at which the registry starts refusing a
    /// token with 401 (the issuer compensates for distribution's 60 s
    /// leeway, so this is the real lifetime). Also the `expires_in` answered.
    pub token_ttl_secs: u64,
    /// Allow `DELETE` of manifests and blobs (distribution's
    /// `storage.delete.enabled`); off, the registry answers 405.
    pub deletes: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            auth: Auth::None,
            tls: false,
            token_ttl_secs: 300,
            deletes: true,
        }
    }
}

/// One HTTP request the registry served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub method: String,
    /// Request URI: path and query, as sent.
    pub path: String,
    pub status: u16,
}

impl Access {
    /// True for a request that uploads blob data (`PUT`/`PATCH`/`POST` under `/blobs/uploads/`).
    pub fn is_blob_upload(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "PATCH" | "POST")
            && self.path.contains("/blobs/uploads/")
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.method, self.path, self.status)
    }
}

#[derive(Default)]
struct LogState {
    access: Vec<Access>,
    /// Highest barrier number whose access line the reader has seen.
    sync_seen: u64,
}

struct Shared {
    state: Mutex<LogState>,
    raw: Mutex<File>,
}

/// A running `docker-registry`. Killed on drop.
pub struct Registry {
    opts: RegistryOptions,
    port: u16,
    // `None` only after drop has decided to keep it.
    tmp: Option<tempfile::TempDir>,
    root: PathBuf,
    storage: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    readers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    password: Option<String>,
    ca_pem: Option<String>,
    token: Option<TokenServer>,
    probe: Prober,
    sync_counter: std::sync::atomic::AtomicU64,
}

/// A one-worker tokio runtime and an HTTP client trusting the registry's CA,
/// for the harness's own requests (readiness probes and log barriers). Works
/// whether or not the caller is inside a runtime: requests are spawned onto
/// this runtime and awaited through a channel, never `block_on`.
struct Prober {
    rt: Option<tokio::runtime::Runtime>,
    client: reqwest::Client,
}

impl Prober {
    fn new(ca_pem: Option<&str>) -> Result<Prober> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("registry-probe")
            .enable_all()
            .build()
            .context("building the probe runtime")?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(0)
            .no_proxy();
        if let Some(ca) = ca_pem {
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes())?);
        }
        // Build inside the runtime so anything the client spawns lands there.
        let _guard = rt.enter();
        let client = builder.build().context("building the probe client")?;
        drop(_guard);
        Ok(Prober {
            rt: Some(rt),
            client,
        })
    }

    /// GET `url`; the status code, or the error text.
    fn get(&self, url: &str) -> std::result::Result<u16, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        let client = self.client.clone();
        let url = url.to_owned();
        self.rt.as_ref().unwrap().spawn(async move {
            let r = client.get(&url).send().await;
            let _ = tx.send(r.map(|r| r.status().as_u16()).map_err(|e| format!("{e:#}")));
        });
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| Err("probe timed out".to_owned()))
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's context panics; this does not.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Registry {
    /// Start a registry and wait until `/v2/` answers (200 or 401).
    ///
    /// Synchronous; safe to call from inside a `#[tokio::test]` (the readiness
    /// probe runs its own runtime on a separate thread).
    pub fn start(opts: RegistryOptions) -> Result<Registry> {
        let tmp = tempfile::Builder::new()
            .prefix("atp-registry-")
            .tempdir()
            .context("creating the registry temp dir")?;
        let root = tmp.path().to_path_buf();
        let storage = root.join("storage");
        std::fs::create_dir_all(&storage)
            .with_context(|| format!("creating {}", storage.display()))?;
        let log_path = root.join("registry.log");
        let raw =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

        let password = match opts.auth {
            Auth::None => None,
            Auth::Basic | Auth::Token => Some(hex::encode(rand::random::<[u8; 12]>())),
        };

        // TLS: a CA per run and a server certificate for 127.0.0.1/localhost.
        let mut tls_files = None;
        let mut ca_pem = None;
        if opts.tls {
            let ca = Ca::generate("ATP test registry CA")?;
            let server = ca.issue("127.0.0.1", &["127.0.0.1", "localhost", "::1"])?;
            let certs = root.join("certs");
            let tls = root.join("tls");
            for d in [&certs, &tls] {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            }
            pki::write(&certs, "ca.crt", &ca.cert.pem())?;
            let crt = pki::write(&tls, "server.crt", &server.cert.pem())?;
            let key = pki::write(&tls, "server.key", &server.key.serialize_pem())?;
            ca_pem = Some(ca.cert.pem());
            tls_files = Some((crt, key));
        }

        // Auth material.
        let mut token = None;
        let auth_yaml = match opts.auth {
            Auth::None => String::new(),
            Auth::Basic => {
                let hash = bcrypt::hash_with_result(password.as_deref().unwrap(), 5)?
                    .format_for_version(bcrypt::Version::TwoY);
                let htpasswd = pki::write(&root, "htpasswd", &format!("{USER}:{hash}\n"))?;
                format!(
                    "auth:\n  htpasswd:\n    realm: atp-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
            Auth::Token => {
                let ca = Ca::generate("ATP test token CA")?;
                let signer = ca.issue("atp-token-signer", &[])?;
                let bundle = pki::write(&root, "token-ca.crt", &ca.cert.pem())?;
                let server = TokenServer::start(TokenConfig {
                    user: USER.to_owned(),
                    password: password.clone().unwrap(),
                    service: TOKEN_SERVICE.to_owned(),
                    issuer: TOKEN_ISSUER.to_owned(),
                    ttl_secs: opts.token_ttl_secs,
                    signer,
                })?;
                let yaml = format!(
                    "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    server.realm(),
                    bundle.display()
                );
                token = Some(server);
                yaml
            }
        };

        let shared = Arc::new(Shared {
            state: Mutex::new(LogState::default()),
            raw: Mutex::new(raw),
        });
        let config_path = root.join("config.yml");
        let probe = Prober::new(ca_pem.as_deref())?;
        let mut reg = Registry {
            opts,
            port: 0,
            tmp: Some(tmp),
            root,
            storage: storage.clone(),
            config_path,
            log_path,
            child: None,
            readers: Vec::new(),
            shared,
            password,
            ca_pem,
            token,
            probe,
            sync_counter: std::sync::atomic::AtomicU64::new(0),
        };

        // A free port can be taken by a parallel test between probing and the
        // registry's bind; pick another one when that happens.
        let mut last_err = None;
        for _ in 0..5 {
            reg.port = free_port()?;
            let config = config_yaml(
                reg.port,
                &storage,
                tls_files.as_ref(),
                &auth_yaml,
                reg.opts.deletes,
            );
            std::fs::write(&reg.config_path, config)
                .with_context(|| format!("writing {}", reg.config_path.display()))?;
            match reg.spawn_and_wait() {
                Ok(()) => return Ok(reg),
                Err(e) => {
                    reg.kill();
                    let raw = std::fs::read_to_string(&reg.log_path).unwrap_or_default();
                    if raw.contains("address already in use") {
                        last_err = Some(e);
                        continue;
                    }
                    return Err(e.context(format!(
                        "registry failed to start; raw log {}:\n{raw}",
                        reg.log_path.display()
                    )));
                }
            }
        }
        Err(last_err
            .unwrap()
            .context("no free port for the registry after 5 tries"))
    }

    /// Plain HTTP, anonymous. Panics if it cannot start.
    pub fn plain() -> Registry {
        Registry::start(RegistryOptions::default()).expect("starting plain registry")
    }

    /// Plain HTTP with htpasswd basic auth. Panics if it cannot start.
    pub fn basic() -> Registry {
        Registry::start(RegistryOptions {
            auth: Auth::Basic,
            ..Default::default()
        })
        .expect("starting basic-auth registry")
    }

    /// HTTPS with a per-run CA, anonymous. Panics if it cannot start.
    pub fn tls() -> Registry {
        Registry::start(RegistryOptions {
            tls: true,
            ..Default::default()
        })
        .expect("starting TLS registry")
    }

    /// Plain HTTP with bearer-token auth. Panics if it cannot start.
    pub fn token() -> Registry {
        Registry::start(RegistryOptions {
            auth: Auth::Token,
            ..Default::default()
        })
        .expect("starting token-auth registry")
    }

    /// The options it was started with.
    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.opts.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// User and password in Basic and Token modes.
    pub fn credentials(&self) -> Option<(String, String)> {
        self.password.clone().map(|p| (USER.to_owned(), p))
    }

    /// PEM CA that signed the TLS server certificate.
    pub fn ca_cert_path(&self) -> Option<PathBuf> {
        self.opts
            .tls
            .then(|| self.root.join("certs").join("ca.crt"))
    }

    /// The CA certificate as PEM text.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Directory holding only `ca.crt`, for `skopeo --cert-dir`.
    pub fn cert_dir(&self) -> Option<PathBuf> {
        self.opts.tls.then(|| self.root.join("certs"))
    }

    /// Token realm URL in Token mode.
    pub fn token_realm(&self) -> Option<String> {
        self.token.as_ref().map(TokenServer::realm)
    }

    /// Every request the token issuer answered, in order (Token mode).
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.token
            .as_ref()
            .map(TokenServer::requests)
            .unwrap_or_default()
    }

    /// Flags for `skopeo inspect` and other single-image commands:
    /// `--tls-verify=false` for plain HTTP, `--cert-dir DIR` for TLS, and
    /// `--creds USER:PASSWORD` when auth is on.
    pub fn skopeo_flags(&self) -> Vec<String> {
        self.flags_with_prefix("")
    }

    /// Same as [`Registry::skopeo_flags`] for the source side of `skopeo copy`.
    pub fn skopeo_src_flags(&self) -> Vec<String> {
        self.flags_with_prefix("src-")
    }

    /// Same as [`Registry::skopeo_flags`] for the destination side of `skopeo copy`.
    pub fn skopeo_dest_flags(&self) -> Vec<String> {
        self.flags_with_prefix("dest-")
    }

    fn flags_with_prefix(&self, p: &str) -> Vec<String> {
        let mut flags = Vec::new();
        match self.cert_dir() {
            Some(dir) => {
                flags.push(format!("--{p}cert-dir"));
                flags.push(dir.display().to_string());
            }
            None => flags.push(format!("--{p}tls-verify=false")),
        }
        if let Some((u, pw)) = self.credentials() {
            flags.push(format!("--{p}creds"));
            flags.push(format!("{u}:{pw}"));
        }
        flags
    }

    /// Every HTTP request the registry served so far, in the order it
    /// finished them (the harness's own readiness probes left out, so a fresh
    /// registry has an empty log).
    ///
    /// First sends a marked barrier request (left out of the log) and waits
    /// until its line arrives, so every request whose response the caller has
    /// already seen is included.
    pub fn access_log(&self) -> Vec<Access> {
        self.sync_log();
        self.shared.state.lock().unwrap().access.clone()
    }

    /// A mark for [`Registry::access_log_since`]: the number of requests so far.
    pub fn access_mark(&self) -> usize {
        self.sync_log();
        self.shared.state.lock().unwrap().access.len()
    }

    /// Requests served after `mark` was taken.
    pub fn access_log_since(&self, mark: usize) -> Vec<Access> {
        let log = self.access_log();
        log.get(mark..).map(<[Access]>::to_vec).unwrap_or_default()
    }

    /// Path of the registry's raw stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Path of the generated registry config.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Filesystem storage root of the registry.
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// SIGKILL the registry process. Storage, config and port are kept.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// Start the registry again on the same port, storage and config.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.kill();
                    if Instant::now() > deadline {
                        return Err(e.context(format!(
                            "restarting registry; raw log {}",
                            self.log_path.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let mut child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&self.config_path)
            .current_dir(&self.root)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawning {REGISTRY_BIN}"))?;
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        self.readers
            .push(spawn_reader(stdout, self.shared.clone(), self.port, "out"));
        self.readers
            .push(spawn_reader(stderr, self.shared.clone(), self.port, "err"));
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let url = format!("{}/v2/?{PROBE_MARKER}", self.url());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait()? {
                bail!("docker-registry exited during startup with {status}");
            }
            let last = match self.probe.get(&url) {
                Ok(200 | 401) => return Ok(()),
                Ok(status) => format!("status {status}"),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                bail!("{url} did not answer 200/401 within 20s (last: {last})");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Make sure every request the registry finished before this call is in
    /// the access log: send a marked barrier request and wait for the reader
    /// to see its line (the log is one FIFO pipe).
    ///
    /// A registry that is not running ([`Registry::kill`]) needs no barrier:
    /// its readers were joined, so the log is complete. A running registry
    /// whose barrier fails panics: a log that might be incomplete must never
    /// let a "nothing reached the registry" check pass.
    fn sync_log(&self) {
        if self.child.is_none() {
            return;
        }
        let n = self
            .sync_counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let url = format!("{}/v2/?{SYNC_PREFIX}{n}", self.url());
        if let Err(e) = self.probe.get(&url) {
            panic!(
                "access-log barrier to registry {} failed ({e}); the access log may be \
                 incomplete, so no check on it can be trusted (raw log {})",
                self.host(),
                self.log_path.display()
            );
        }
        // Generous: only a stalled reader thread takes anywhere near this long.
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.shared.state.lock().unwrap().sync_seen < n {
            assert!(
                Instant::now() < deadline,
                "access-log barrier {n} to registry {} was answered but its log line never \
                 arrived within 60 s; the access log may be incomplete (raw log {})",
                self.host(),
                self.log_path.display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // Lines of requests that finished concurrently with the barrier may
        // trail it by a hair.
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            if let Some(tmp) = self.tmp.take() {
                let kept = tmp.keep();
                eprintln!(
                    "registry {} log kept at {} (config {})",
                    self.host(),
                    kept.join("registry.log").display(),
                    kept.join("config.yml").display()
                );
            }
        }
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("probing for a free port")?;
    Ok(l.local_addr()?.port())
}

fn config_yaml(
    port: u16,
    storage: &Path,
    tls: Option<&(PathBuf, PathBuf)>,
    auth_yaml: &str,
    deletes: bool,
) -> String {
    let mut y = String::new();
    let _ = write!(
        y,
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {deletes}\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n  cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: atp-testkit-not-a-secret\n",
        storage.display()
    );
    if let Some((crt, key)) = tls {
        let _ = write!(
            y,
            "  tls:\n    certificate: {}\n    key: {}\n",
            crt.display(),
            key.display()
        );
    }
    y.push_str(auth_yaml);
    y
}

fn spawn_reader(
    stream: impl std::io::Read + Send + 'static,
    shared: Arc<Shared>,
    port: u16,
    tag: &'static str,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("registry-{port}-{tag}"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                {
                    let mut raw = shared.raw.lock().unwrap();
                    let _ = writeln!(raw, "{line}");
                }
                let mut state = shared.state.lock().unwrap();
                if let Some(a) = parse_access_line(line) {
                    // The harness's own probes and barriers are not the test's traffic.
                    if let Some(q) = a.path.split_once('?').map(|(_, q)| q) {
                        if let Some(n) = q.strip_prefix(SYNC_PREFIX).and_then(|n| n.parse().ok()) {
                            state.sync_seen = state.sync_seen.max(n);
                        }
                    }
                    if !a.path.contains(PROBE_MARKER) {
                        state.access.push(a);
                    }
                }
            }
        })
        .expect("spawning registry log reader")
}

/// Parse one Apache combined-format line as gorilla/handlers writes it:
/// `127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 401 87 "referer" "agent"`.
pub fn parse_access_line(line: &str) -> Option<Access> {
    let first = line.chars().next()?;
    if !(first.is_ascii_hexdigit() || first == '[' || first == ':') {
        return None;
    }
    let start = line.find("] \"")? + 3;
    let rest = &line[start..];
    let end = rest.find('"')?;
    let request = &rest[..end];
    let mut parts = request.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
    Some(Access {
        method,
        path,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_combined_access_line() {
        let a = parse_access_line(
            r#"127.0.0.1 - - [26/Nov/2026:03:55:00 +0000] "PUT /v2/atp/router/manifests/1.4.0 HTTP/1.1" 201 0 "" "skopeo/1.9.3""#,
        )
        .unwrap();
        assert_eq!(a.method, "PUT");
        assert_eq!(a.path, "/v2/atp/router/manifests/1.4.0");
        assert_eq!(a.status, 201);
    }

    #[test]
    fn ignores_logrus_lines() {
        assert!(parse_access_line(
            r#"time="2026-11-26T03:55:00Z" level=info msg="response completed""#
        )
        .is_none());
    }
}
