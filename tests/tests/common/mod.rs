//! Shared helpers for the end-to-end tests: run the built binaries, make keys
//! and specs in a temp workdir, and read JSON output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atp_testkit::bins::bin;
use atp_testkit::fixtures;

/// A temp workdir with a signing key pair (empty password).
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Work {
    pub fn new() -> Work {
        let w = Work {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = w.bundler(&["keygen", "--output", w.path("k").to_str().unwrap()]);
        assert_ok(&out, "keygen");
        w
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    pub fn key(&self) -> String {
        self.s("k.key")
    }

    pub fn pubkey(&self) -> String {
        self.s("k.pub")
    }

    pub fn bundler(&self, args: &[&str]) -> Output {
        self.bundler_cmd(args).output().unwrap()
    }

    pub fn bundler_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("atp-bundler"));
        c.args(args)
            .env("ATP_KEY_PASSWORD", "")
            .env("DOCKER_CONFIG", self.path("docker"))
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
        c
    }

    pub fn installer(&self, args: &[&str]) -> Output {
        self.installer_cmd(args).output().unwrap()
    }

    pub fn installer_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("atp-installer"));
        c.args(args)
            .env("DOCKER_CONFIG", self.path("docker"))
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
        c
    }

    /// `create` the demo spec (committed fixture layouts + manifests) into `out`.
    pub fn create_demo(&self, out: &str, extra: &[&str]) -> Output {
        let spec = repo_root().join("manifests/bundle.yaml");
        let mut args = vec![
            "create",
            "--spec",
            spec.to_str().unwrap(),
            "--key",
            "k.key",
            "--output",
            out,
        ];
        args.extend_from_slice(extra);
        let mut c = self.bundler_cmd(&args);
        c.env("SOURCE_DATE_EPOCH", "1790000000");
        c.output().unwrap()
    }

    /// Write DOCKER_CONFIG/config.json with basic credentials for `host`.
    pub fn docker_login(&self, host: &str, user: &str, password: &str) {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let cfg = serde_json::json!({"auths": {host: {"auth": auth}}});
        std::fs::create_dir_all(self.path("docker")).unwrap();
        std::fs::write(self.path("docker/config.json"), cfg.to_string()).unwrap();
    }
}

pub fn repo_root() -> PathBuf {
    fixtures::fixtures_dir().parent().unwrap().to_path_buf()
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what} failed: {}", text(o));
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

pub fn sha256_file(p: &Path) -> String {
    atp_bundle::Digest::of(&std::fs::read(p).unwrap()).to_string()
}

/// Manifest digest of `docker://REF` as skopeo sees it.
pub fn skopeo_digest(reg: &atp_testkit::Registry, reference: &str) -> String {
    let mut args = vec!["inspect".to_string(), "--raw".to_string()];
    args.extend(reg.skopeo_flags());
    args.push(format!("docker://{}/{reference}", reg.host()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = atp_testkit::skopeo(&a);
    assert_ok(&o, &format!("skopeo inspect {reference}"));
    atp_bundle::Digest::of(&o.stdout).to_string()
}
