//! Client settings: per-registry transport and credentials, retry policy and
//! the one concurrency knob for blob transfers.
//!
//! `Debug` of anything holding a password prints `<redacted>`; never derive
//! `Debug` on a type that holds a secret.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::retry::RetryPolicy;

/// A username and password (or token used as password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Settings for one registry, keyed by `host[:port]` in [`ClientOptions::registries`].
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    /// Talk plain HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Extra PEM CA bundle to trust for this registry (added to native roots).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Explicit credentials (from flags); win over every credential store.
    pub credentials: Option<Credentials>,
}

/// Where credentials come from when a registry has none configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DefaultCredentials {
    /// `DOCKER_CONFIG`/`~/.docker/config.json` (auths, credHelpers, credsStore),
    /// then `${XDG_RUNTIME_DIR}/containers/auth.json`.
    #[default]
    DockerConfig,
    /// Anonymous unless configured per registry.
    None,
}

/// Everything [`crate::Client::new`] needs.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Per-registry settings, keyed by `host[:port]` as written in references.
    pub registries: HashMap<String, RegistryConfig>,
    /// Settings for registries not in `registries` (and token realms).
    pub default_registry: RegistryConfig,
    /// Fallback credential sources.
    pub default_creds: DefaultCredentials,
    pub retry: RetryPolicy,
    /// Blob transfers in flight at once, across the whole client.
    pub concurrency: usize,
    pub user_agent: String,
    /// Blobs up to this size are uploaded with one PUT; larger ones in chunks.
    pub monolithic_max: u64,
    /// Chunk size for chunked uploads (raised to `OCI-Chunk-Min-Length`).
    pub chunk_size: u64,
    pub connect_timeout: Duration,
    /// Idle time allowed between reads of a response body (at least the
    /// retry policy's `idle_timeout`, which bounds the wait for an answer).
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            registries: HashMap::new(),
            default_registry: RegistryConfig::default(),
            default_creds: DefaultCredentials::DockerConfig,
            retry: RetryPolicy::default(),
            concurrency: 4,
            user_agent: concat!("atp-offline/", env!("CARGO_PKG_VERSION")).into(),
            monolithic_max: 16 << 20,
            chunk_size: 16 << 20,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
        }
    }
}

impl ClientOptions {
    /// Settings for a registry (`host[:port]`).
    pub fn registry(&self, host: &str) -> &RegistryConfig {
        self.registries.get(host).unwrap_or(&self.default_registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let mut o = ClientOptions::default();
        o.registries.insert(
            "r:5000".into(),
            RegistryConfig {
                credentials: Some(Credentials::new("alice", "hunter2-secret")),
                ..Default::default()
            },
        );
        let s = format!("{o:?}");
        assert!(s.contains("alice"));
        assert!(!s.contains("hunter2-secret"), "{s}");
        assert!(s.contains("<redacted>"));
    }
}
