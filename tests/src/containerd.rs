//! A real containerd 1.6 (Debian's `containerd` package) for the end-to-end
//! tests: one daemon per [`Containerd`], as root, with its own config, so its
//! root, state, gRPC and ttrpc sockets all live in a temp dir, and `ctr` to
//! pull through it the way a node's runtime pulls.
//!
//! The CRI plugin and the snapshotters this sandbox cannot offer are
//! disabled; the overlayfs snapshotter unpacks what is pulled. Running
//! containers is out of reach here (no cgroups), pulling and unpacking is not.
//!
//! Never touches `/etc/containerd`, `/var/lib/containerd` or
//! `/run/containerd`; the daemon is stopped by its PID on drop (SIGTERM,
//! then SIGKILL), never by name. When a test panics the temp dir is kept
//! and its path printed so the daemon's log can be read.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::Registry;

/// Path of the containerd daemon.
pub const CONTAINERD_BIN: &str = "/usr/bin/containerd";
/// Path of its command-line client.
pub const CTR_BIN: &str = "/usr/bin/ctr";

/// Plugins left out: the CRI (it wants cgroups and CNI), snapshotters that
/// need block devices or filesystems this sandbox does not have, tracing.
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

/// A running containerd. Stopped on drop.
pub struct Containerd {
    // `None` only after drop has decided to keep it.
    tmp: Option<tempfile::TempDir>,
    socket: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

/// How `ctr image pull` reaches the registry.
#[derive(Debug, Clone, Default)]
pub struct Pull {
    /// `--hosts-dir DIR`: per-registry `hosts.toml` (mirrors, CA, scheme).
    pub hosts_dir: Option<PathBuf>,
    /// `--plain-http`.
    pub plain_http: bool,
    /// `--tlscacert CA` (not with `hosts_dir`, which carries its own).
    pub ca: Option<PathBuf>,
    /// `--user USER:PASSWORD`.
    pub user: Option<(String, String)>,
}

impl Pull {
    /// Straight at `reg`: `--plain-http` or `--tlscacert` with its CA, and
    /// its credentials when it has any.
    pub fn direct(reg: &Registry) -> Pull {
        Pull {
            hosts_dir: None,
            plain_http: !reg.options().tls,
            ca: reg.ca_cert_path(),
            user: reg.credentials(),
        }
    }

    /// Through a hosts dir only (what a node configured by `certs.d` does),
    /// with `reg`'s credentials when it has any.
    pub fn hosts_dir(dir: impl Into<PathBuf>) -> Pull {
        Pull {
            hosts_dir: Some(dir.into()),
            ..Pull::default()
        }
    }

    /// The same with `--user`.
    pub fn user(mut self, creds: Option<(String, String)>) -> Pull {
        self.user = creds;
        self
    }
}

impl Containerd {
    /// Start containerd with a config of its own and wait until `ctr version`
    /// answers on its socket (at most 30 s).
    pub fn start() -> Result<Containerd> {
        let tmp = tempfile::Builder::new()
            .prefix("atp-containerd-")
            .tempdir()
            .context("creating the containerd temp dir")?;
        let dir = tmp.path();
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        let disabled: Vec<String> = DISABLED_PLUGINS.iter().map(|p| format!("{p:?}")).collect();
        let text = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\ndisabled_plugins = [{disabled}]\n\n\
             [grpc]\n  address = {sock:?}\n\n[ttrpc]\n  address = {ttrpc:?}\n\n\
             [debug]\n  address = \"\"\n\n[metrics]\n  address = \"\"\n",
            root = dir.join("root").display().to_string(),
            state = dir.join("state").display().to_string(),
            disabled = disabled.join(", "),
            sock = socket.display().to_string(),
            ttrpc = dir.join("containerd.sock.ttrpc").display().to_string(),
        );
        std::fs::write(&config, text).context("writing the containerd config")?;
        let log_path = dir.join("containerd.log");
        let log = File::create(&log_path).context("creating the containerd log")?;
        let child = Command::new(CONTAINERD_BIN)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .spawn()
            .context("starting containerd (is it installed? scripts/install-deps.sh)")?;
        let mut c = Containerd {
            tmp: Some(tmp),
            socket,
            log_path,
            child: Some(child),
        };
        c.wait_ready()?;
        Ok(c)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "containerd exited at start ({status}); log {}:\n{}",
                        self.log_path.display(),
                        std::fs::read_to_string(&self.log_path).unwrap_or_default()
                    );
                }
            }
            if self.socket.exists() && self.ctr(&["version"]).status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer on {} within 30 s; log {}",
                    self.socket.display(),
                    self.log_path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The gRPC socket (`ctr --address`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// `ctr --address SOCKET ARGS...`, run to the end.
    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command(args)
            .output()
            .expect("running ctr (is containerd installed? scripts/install-deps.sh)")
    }

    /// The `ctr` command behind [`Containerd::ctr`], with no proxy settings.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CTR_BIN);
        cmd.arg("--address")
            .arg(&self.socket)
            .args(args)
            .env_remove("CONTAINERD_ADDRESS")
            .env_remove("CONTAINERD_NAMESPACE")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy");
        cmd
    }

    /// `ctr image pull [flags] REFERENCE` (fetch and unpack for this
    /// machine's platform), then the digest containerd recorded for it.
    pub fn pull(&self, reference: &str, how: &Pull) -> Result<String> {
        let mut args: Vec<String> = vec!["image".into(), "pull".into()];
        if let Some(d) = &how.hosts_dir {
            args.push("--hosts-dir".into());
            args.push(d.display().to_string());
        }
        if how.plain_http {
            args.push("--plain-http".into());
        }
        if let Some(ca) = &how.ca {
            args.push("--tlscacert".into());
            args.push(ca.display().to_string());
        }
        if let Some((u, p)) = &how.user {
            args.push("--user".into());
            args.push(format!("{u}:{p}"));
        }
        args.push(reference.into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.ctr(&argv);
        if !out.status.success() {
            bail!(
                "ctr image pull {reference} failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.digest(reference)
    }

    /// The digest of image `name` as `ctr image ls` lists it.
    pub fn digest(&self, name: &str) -> Result<String> {
        let out = self.ctr(&["image", "ls"]);
        if !out.status.success() {
            bail!(
                "ctr image ls failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        parse_image_ls(&text, name)
            .with_context(|| format!("{name} is not in `ctr image ls`:\n{text}"))
    }

    /// Stop the daemon: SIGTERM by PID, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            if let Some(tmp) = self.tmp.take() {
                let kept = tmp.keep();
                eprintln!("containerd: kept {} (log containerd.log)", kept.display());
            }
        }
    }
}

/// The DIGEST column of the `ctr image ls` row whose REF is `name`.
pub fn parse_image_ls(text: &str, name: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let mut cols = line.split_whitespace();
        if cols.next()? != name {
            return None;
        }
        cols.next()?; // TYPE
        cols.next().map(str::to_owned)
    })
}

/// Write `DIR/HOST:PORT/hosts.toml` for `reg` itself (its scheme, and its CA
/// under TLS), so `ctr --hosts-dir DIR` reaches it the way a node with that
/// file in `/etc/containerd/certs.d` does. Returns `DIR`.
pub fn site_hosts_dir(reg: &Registry, dir: &Path) -> Result<PathBuf> {
    let host_dir = dir.join(reg.host());
    std::fs::create_dir_all(&host_dir)
        .with_context(|| format!("creating {}", host_dir.display()))?;
    let mut text = format!(
        "server = {url:?}\n\n[host.{url:?}]\n  capabilities = [\"pull\", \"resolve\"]\n",
        url = reg.url()
    );
    if let Some(ca) = reg.ca_cert_path() {
        text.push_str(&format!("  ca = {:?}\n", ca.display().to_string()));
    }
    std::fs::write(host_dir.join("hosts.toml"), text)
        .with_context(|| format!("writing {}/hosts.toml", host_dir.display()))?;
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_digest_of_the_named_row() {
        let text = "REF TYPE DIGEST SIZE PLATFORMS LABELS\n\
            127.0.0.1:5000/a:1 application/vnd.oci.image.index.v1+json sha256:aa 6.2 KiB linux/amd64 -\n\
            docker.io/atp/router:1.4.0 application/vnd.oci.image.index.v1+json sha256:bb 6.2 KiB linux/amd64 -\n";
        assert_eq!(
            parse_image_ls(text, "docker.io/atp/router:1.4.0").as_deref(),
            Some("sha256:bb")
        );
        assert_eq!(parse_image_ls(text, "docker.io/atp/router"), None);
    }
}
