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
//! The access log (`access`) is parsed from the registry's own combined-format access
//! lines on stdout, read by a thread per stream, so it is complete and in the
//! order the registry finished the requests.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

mod access;
mod config;
mod prober;

pub use access::{parse_access_line, Access};
use access::{spawn_reader, LogState, Shared, PROBE_MARKER};
use config::{config_yaml, free_port};
use prober::Prober;

use crate::pki::{self, Ca};
use crate::token::{TokenConfig, TokenRequest, TokenServer};

/// Path of the registry binary (Debian's `docker-registry` package).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// `auth.token.service` and the JWT `aud` in token mode.
pub const TOKEN_SERVICE: &str = "atp-test-registry";
/// `auth.token.issuer` and the JWT `iss` in token mode.
pub const TOKEN_ISSUER: &str = "atp-test-issuer";
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
