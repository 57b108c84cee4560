//! Real `podman` (Debian's package, 4.3) for the end-to-end tests: pulls into
//! a storage root of its own (`--root`, `--runroot` under a temp dir, the vfs
//! driver), isolated from host state like [`crate::skopeo`]: its own
//! `containers.conf`, `storage.conf`, `registries.conf` (empty unless a test
//! gives one), signature policy and auth file.
//!
//! Pulls only; running containers is out of reach in this sandbox (no
//! cgroups). Never reads or writes `/etc/containers` or `/var/lib/containers`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

use crate::Registry;

/// A podman with its own storage. The temp dir goes on drop.
pub struct Podman {
    tmp: tempfile::TempDir,
}

/// How `podman pull` reaches the registry.
#[derive(Debug, Clone, Default)]
pub struct PodmanPull {
    /// `CONTAINERS_REGISTRIES_CONF` (an empty file when `None`).
    pub registries_conf: Option<PathBuf>,
    /// `--tls-verify=false` (plain HTTP or an untrusted certificate).
    pub insecure: bool,
    /// `--cert-dir DIR` (`DIR/*.crt` are trusted CAs).
    pub cert_dir: Option<PathBuf>,
    /// `--creds USER:PASSWORD`.
    pub creds: Option<(String, String)>,
}

impl PodmanPull {
    /// Straight at `reg`: `--tls-verify=false` for plain HTTP, its CA dir
    /// under TLS, and its credentials when it has any.
    pub fn direct(reg: &Registry) -> PodmanPull {
        PodmanPull {
            registries_conf: None,
            insecure: !reg.options().tls,
            cert_dir: reg.cert_dir(),
            creds: reg.credentials(),
        }
    }
}

impl Podman {
    pub fn new() -> Result<Podman> {
        let tmp = tempfile::Builder::new()
            .prefix("atp-podman-")
            .tempdir()
            .context("creating the podman temp dir")?;
        let p = tmp.path();
        for d in ["root", "run", "home", "tmp"] {
            std::fs::create_dir_all(p.join(d))?;
        }
        std::fs::write(
            p.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )?;
        std::fs::write(p.join("auth.json"), r#"{"auths":{}}"#)?;
        std::fs::write(p.join("registries.conf"), "")?;
        std::fs::write(p.join("containers.conf"), "")?;
        std::fs::write(
            p.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = {:?}\ngraphroot = {:?}\n",
                p.join("run").display().to_string(),
                p.join("root").display().to_string()
            ),
        )?;
        Ok(Podman { tmp })
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `podman --root … --runroot … ARGS` with the isolated environment;
    /// `CONTAINERS_REGISTRIES_CONF` is `registries_conf` or the empty file.
    pub fn command(&self, registries_conf: Option<&Path>, args: &[&str]) -> Command {
        let p = self.dir();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(p.join("root"))
            .arg("--runroot")
            .arg(p.join("run"))
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--cgroup-manager")
            .arg("cgroupfs")
            .arg("--events-backend")
            .arg("none")
            .args(args)
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                registries_conf
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| p.join("registries.conf")),
            )
            .env("CONTAINERS_CONF", p.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", p.join("storage.conf"))
            .env("REGISTRY_AUTH_FILE", p.join("auth.json"))
            .env("HOME", p.join("home"))
            .env("TMPDIR", p.join("tmp"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy");
        cmd
    }

    fn run(&self, registries_conf: Option<&Path>, args: &[&str]) -> Result<Output> {
        let out = self
            .command(registries_conf, args)
            .output()
            .context("running podman (is it installed? scripts/install-deps.sh)")?;
        if !out.status.success() {
            bail!(
                "podman {} failed ({}):\n{}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    /// `podman pull [flags] REFERENCE`, then the manifest digest podman
    /// recorded for it (`podman image inspect --format {{.Digest}}`).
    pub fn pull(&self, reference: &str, how: &PodmanPull) -> Result<String> {
        let mut args: Vec<String> = vec!["pull".into(), "--quiet".into()];
        args.push("--signature-policy".into());
        args.push(self.dir().join("policy.json").display().to_string());
        if how.insecure {
            args.push("--tls-verify=false".into());
        }
        if let Some(d) = &how.cert_dir {
            args.push("--cert-dir".into());
            args.push(d.display().to_string());
        }
        if let Some((u, p)) = &how.creds {
            args.push("--creds".into());
            args.push(format!("{u}:{p}"));
        }
        args.push(reference.into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let conf = how.registries_conf.as_deref();
        self.run(conf, &argv)?;
        let out = self.run(
            conf,
            &["image", "inspect", "--format", "{{.Digest}}", reference],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}
