//! Shared helpers for the end-to-end tests: run the built binaries, make keys
//! and specs in a temp workdir, and read JSON output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atp_testkit::bins::bin;
use atp_testkit::cli::Install;
use atp_testkit::fixtures;

/// A temp workdir with a signing key pair (empty password).
pub struct Work {
    pub dir: tempfile::TempDir,
}

impl Default for Work {
    fn default() -> Self {
        Self::new()
    }
}

impl Work {
    pub fn new() -> Work {
        let w = Work {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = w.bundler(&[
            "keygen",
            "--no-password",
            "--output",
            w.path("k").to_str().unwrap(),
        ]);
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

    /// Create `out`: a signed bundle of one file set (`models/a.bin`) and
    /// nothing else (no images, no manifests), from the spec `spec.yaml`.
    pub fn create_models_only(&self, out: &str) {
        let models = self.path("models");
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(models.join("a.bin"), b"weights").unwrap();
        let spec = format!(
            "metadata: {{name: m, version: '1'}}\nspec:\n  channel: models\n  sequence: 1\n  files:\n    - {{name: models, source: \"{}\"}}\n",
            models.display()
        );
        std::fs::write(self.path("spec.yaml"), spec).unwrap();
        let o = self.bundler(&[
            "create",
            "--spec",
            "spec.yaml",
            "--key",
            "k.key",
            "--output",
            out,
        ]);
        assert!(o.status.success(), "create failed: {}", text(&o));
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

    /// `atp-installer install BUNDLE --key k.pub --state-dir state` run in
    /// the workdir, as [`Work::installer_cmd`] runs it; add the registry and
    /// the rest on the builder.
    pub fn install(&self, bundle: &str) -> Install {
        self.in_workdir(Install::new(bundle))
    }

    /// [`Work::install`] for `atp-installer simulate BUNDLE`.
    pub fn simulate(&self, bundle: &str) -> Install {
        self.in_workdir(Install::simulate(bundle))
    }

    fn in_workdir(&self, c: Install) -> Install {
        c.key(self.pubkey())
            .state_dir(self.path("state"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
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

/// skopeo finds every demo image (but the base) in `reg` under the nested
/// mapping, by the digest the fixtures give it.
pub fn assert_demo_images(reg: &atp_testkit::Registry) {
    use atp_testkit::fixtures::{index_digest, IMAGES};
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        let repo = format!("docker.io/atp/{}:{}", img.dir, img.tag);
        assert_eq!(skopeo_digest(reg, &repo), index_digest(img), "{repo}");
    }
}

/// Write a spec in the workdir: the demo images and manifests with absolute
/// paths, at the given sequence, plus `extra_images` spec lines.
pub fn demo_spec(w: &Work, name: &str, sequence: u64, extra_images: &[String]) -> String {
    let root = repo_root();
    let mut images = String::new();
    for img in fixtures::IMAGES.iter().filter(|i| i.dir != "base") {
        images.push_str(&format!(
            "    - {{source: \"oci:{}:{}\", name: \"{}\"}}\n",
            img.path().display(),
            img.tag,
            img.reference
        ));
    }
    for e in extra_images {
        images.push_str(&format!("    - {e}\n"));
    }
    let spec = format!(
        "metadata: {{name: atp, version: 1.4.{sequence}}}\nspec:\n  channel: stable\n  sequence: {sequence}\n  images:\n{images}  manifests:\n    root: {}\n    overlay: overlays/air-gapped\n",
        root.join("manifests").display()
    );
    std::fs::write(w.path(name), spec).unwrap();
    w.s(name)
}

/// An OCI layout with one image of `layers` random layers of `size` bytes
/// each (deterministic per seed), tagged `1.0`.
pub fn big_layout(dir: &Path, layers: usize, size: usize, seed: u8) -> PathBuf {
    use atp_bundle::Digest;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = Digest::of(bytes);
        std::fs::write(blobs.join(d.hex()), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(seed);
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for _ in 0..layers {
        let mut data = vec![0u8; size];
        for chunk in data.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let b = state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let (d, n) = put(&data);
        diff_ids.push(d.clone());
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (cd, cn) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn}, "layers": descs});
    let (md, mn) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "1.0"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    dir.to_path_buf()
}

/// Run `atp-installer install BUNDLE` against `reg` (state in `state`),
/// feeding the password on stdin.
pub fn install(w: &Work, reg: &atp_testkit::Registry, bundle: &str, extra: &[&str]) -> Output {
    w.install(bundle).registry(reg).args(extra).output()
}

/// Copy a folder tree (regular files and folders only).
pub fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A copy of the repo's manifests whose overlay adds a container with
/// `docker.io/evil/miner:1`, an image no spec carries, and a demo spec
/// (`spec.yaml`) over that copy. Returns the spec's path. Callers fool
/// `create`'s own gate with a kubectl stand-in to get such a bundle made.
pub fn spec_with_an_unbundled_image(w: &Work) -> String {
    let tree = w.path("m");
    copy_dir(&repo_root().join("manifests"), &tree);
    std::fs::write(
        tree.join("overlays/air-gapped/sneaky.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: atp-router}\nspec:\n  template:\n    spec:\n      containers:\n      - name: miner\n        image: docker.io/evil/miner:1\n",
    )
    .unwrap();
    let k = tree.join("overlays/air-gapped/kustomization.yaml");
    let body = std::fs::read_to_string(&k).unwrap();
    std::fs::write(
        &k,
        body.replace("patches:\n", "patches:\n  - path: sneaky.yaml\n"),
    )
    .unwrap();
    let spec = demo_spec(w, "spec.yaml", 1, &[]);
    let body = std::fs::read_to_string(&spec).unwrap().replace(
        &repo_root().join("manifests").display().to_string(),
        &tree.display().to_string(),
    );
    std::fs::write(&spec, body).unwrap();
    spec
}

/// Create `out` from [`spec_with_an_unbundled_image`], its create-time
/// completeness check fooled by a kubectl stand-in that hides the unbundled
/// image's line, as a bundle from a careless tool would be made. The
/// installer's air-gap gate must still catch it.
pub fn create_missing_an_image(w: &Work, out: &str) {
    use std::os::unix::fs::PermissionsExt;
    let spec = spec_with_an_unbundled_image(w);
    let filter = w.path("kubectl-filter");
    std::fs::write(&filter, "#!/bin/sh\nkubectl \"$@\" | grep -v evil/miner\n").unwrap();
    std::fs::set_permissions(&filter, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = w.bundler_cmd(&["create", "--spec", &spec, "--key", "k.key", "--output", out]);
    c.env("ATP_KUBECTL", &filter);
    assert_ok(&c.output().unwrap(), "create (completeness check fooled)");
}

/// A stand-in for kubectl in the workdir that appends its arguments to
/// `log` and hands `kustomize` to the real kubectl; anything else (apply,
/// rollout) only succeeds. Returns its path, for `ATP_KUBECTL`.
pub fn recording_kubectl(w: &Work, log: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = w.path("recording-kubectl");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$*\" >> {log}\nif [ \"$1\" = kustomize ]; then exec {real} \"$@\"; fi\nexit 0\n",
            log = log.display(),
            real = atp_testkit::cli::which_kubectl()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}
