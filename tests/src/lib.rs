//! Test harness for ATP Offline: the real `docker-registry` on 127.0.0.1 in
//! every auth mode, a bearer-token issuer, a fault-injecting proxy, a
//! counting TCP relay, fixture images, helpers to find the built binaries,
//! the command lines the end-to-end tests run them with, and the container
//! runtimes a node pulls with (containerd, podman).
//!
//! Never binds anything but loopback; every process it starts is stopped on drop.

pub mod bins;
pub mod cli;
pub mod containerd;
pub mod dns;
pub mod fixture_gen;
pub mod fixtures;
pub mod pki;
pub mod podman;
pub mod proxy;
pub mod registry;
pub mod relay;
pub mod supply_chain;
pub mod token;

pub use registry::{Access, Auth, Registry, RegistryOptions};

use std::process::{Command, Output};

/// Run `skopeo` isolated from host state: a temp `policy.json` that accepts
/// anything (`--policy`), an empty temp auth file (`REGISTRY_AUTH_FILE`), an
/// empty `registries.conf`, an empty `registries.d` and an empty `DOCKER_CONFIG`.
///
/// Credentials and TLS settings must come from `args` (see
/// [`Registry::skopeo_flags`]). Panics only if skopeo cannot be spawned.
pub fn skopeo(args: &[&str]) -> Output {
    skopeo_command(args)
        .output()
        .expect("running skopeo (is it installed? apt-get install skopeo)")
}

/// The isolated `skopeo` command behind [`skopeo`], for callers that need to
/// adjust it (stdin, extra env) before running it.
pub fn skopeo_command(args: &[&str]) -> Command {
    let dir = skopeo_home();
    let mut cmd = Command::new("skopeo");
    cmd.arg("--policy")
        .arg(dir.join("policy.json"))
        .arg("--registries.d")
        .arg(dir.join("registries.d"))
        .args(args)
        .env("REGISTRY_AUTH_FILE", dir.join("auth.json"))
        .env("CONTAINERS_REGISTRIES_CONF", dir.join("registries.conf"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .env("HOME", dir.join("home"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy");
    cmd
}

/// One isolated skopeo home per test process, created once. skopeo never
/// writes to it (the auth file is only read, as nothing calls `skopeo login`).
fn skopeo_home() -> std::path::PathBuf {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("atp-skopeo-")
            .tempdir()
            .expect("creating skopeo temp dir");
        let p = dir.path();
        std::fs::write(
            p.join("policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .expect("writing policy.json");
        std::fs::write(p.join("auth.json"), r#"{"auths":{}}"#).expect("writing auth.json");
        std::fs::write(p.join("registries.conf"), "").expect("writing registries.conf");
        for d in ["registries.d", "docker", "home"] {
            std::fs::create_dir_all(p.join(d)).expect("creating skopeo dirs");
        }
        dir
    })
    .path()
    .to_path_buf()
}
