//! Finding credentials for a registry when none were passed on the command
//! line: `DOCKER_CONFIG`/`~/.docker/config.json` (`credHelpers`, `credsStore`,
//! `auths`), then `${XDG_RUNTIME_DIR}/containers/auth.json`.
//!
//! A configured helper that is missing is an error, never a silent fallback to
//! anonymous. Never logs what a helper or file returned.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::config::Credentials;
use crate::error::Error;
use crate::reference::DOCKER_HUB;

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Look up credentials for `registry` (`host[:port]`, `docker.io` for Hub).
pub(crate) async fn lookup(registry: &str) -> Result<Option<Credentials>, Error> {
    if let Some(path) = docker_config_path() {
        if let Some(cfg) = read_config(&path).await? {
            if let Some(c) = from_docker_config(&cfg, registry, &path).await? {
                return Ok(Some(c));
            }
        }
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        let path = PathBuf::from(dir).join("containers/auth.json");
        if let Some(cfg) = read_config(&path).await? {
            return from_auths(&cfg, registry, &path);
        }
    }
    Ok(None)
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

async fn read_config(path: &Path) -> Result<Option<ConfigFile>, Error> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::InvalidConfig {
                registry: path.display().to_string(),
                reason: format!("not a valid auth file: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The server name a helper is asked about.
fn helper_server(registry: &str) -> String {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".into()
    } else {
        registry.into()
    }
}

/// Does an `auths` key (`host`, `https://host/v1/`, ...) name this registry?
pub(crate) fn key_matches(key: &str, registry: &str) -> bool {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    if registry == DOCKER_HUB {
        matches!(k, "docker.io" | "index.docker.io" | "registry-1.docker.io")
    } else {
        k == registry
    }
}

async fn from_docker_config(
    cfg: &ConfigFile,
    registry: &str,
    path: &Path,
) -> Result<Option<Credentials>, Error> {
    if let Some((_, helper)) = cfg
        .cred_helpers
        .iter()
        .find(|(k, _)| key_matches(k, registry))
    {
        return run_helper(helper, registry).await;
    }
    if let Some(store) = cfg.creds_store.as_deref().filter(|s| !s.is_empty()) {
        if let Some(c) = run_helper(store, registry).await? {
            return Ok(Some(c));
        }
    }
    from_auths(cfg, registry, path)
}

fn from_auths(cfg: &ConfigFile, registry: &str, path: &Path) -> Result<Option<Credentials>, Error> {
    let Some((_, entry)) = cfg.auths.iter().find(|(k, _)| key_matches(k, registry)) else {
        return Ok(None);
    };
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials::new(u, p)));
    }
    let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let bad = || Error::InvalidConfig {
        registry: registry.into(),
        reason: format!(
            "{}: auths entry is not base64(user:password)",
            path.display()
        ),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (u, p) = text.split_once(':').ok_or_else(bad)?;
    Ok(Some(Credentials::new(u, p)))
}

async fn run_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, Error> {
    let fail = |reason: String| Error::CredentialHelper {
        helper: helper.into(),
        registry: registry.into(),
        reason,
    };
    if helper.is_empty()
        || !helper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(fail("invalid helper name".into()));
    }
    let mut child = tokio::process::Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(helper_server(registry).as_bytes())
            .await
            .map_err(|e| fail(format!("writing its stdin: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| fail(format!("waiting for it: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase()
            + &String::from_utf8_lossy(&out.stderr).to_lowercase();
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("exited with {}", out.status)));
    }
    let parsed: HelperOutput = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("output is not {\"Username\",\"Secret\"} JSON".into()))?;
    Ok(Some(Credentials::new(parsed.username, parsed.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_keys() {
        assert!(key_matches("https://index.docker.io/v1/", "docker.io"));
        assert!(key_matches("127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(key_matches("https://127.0.0.1:5000", "127.0.0.1:5000"));
        assert!(!key_matches("127.0.0.1:5001", "127.0.0.1:5000"));
        assert!(!key_matches("evil.io", "docker.io"));
    }

    #[tokio::test]
    async fn auths_entry_decodes_and_missing_helper_is_an_error() {
        let cfg: ConfigFile = serde_json::from_str(
            r#"{"auths":{"r.io":{"auth":"YWxpY2U6czNjcjN0"}},"credHelpers":{"h.io":"atp-does-not-exist"}}"#,
        )
        .unwrap();
        let p = Path::new("/x/config.json");
        let c = from_docker_config(&cfg, "r.io", p).await.unwrap().unwrap();
        assert_eq!(c, Credentials::new("alice", "s3cr3t"));
        assert!(from_docker_config(&cfg, "other.io", p)
            .await
            .unwrap()
            .is_none());
        let err = from_docker_config(&cfg, "h.io", p).await.unwrap_err();
        assert!(matches!(err, Error::CredentialHelper { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("docker-credential-atp-does-not-exist"));
    }
}
