//! The site registry and how to reach it: address, transport, credentials,
//! where images land (prefix and layout), concurrency and retries. One type
//! shared by `install`, `simulate` and `inventory`, and the one place that
//! builds a client for it.
//!
//! The password never appears in `Debug` output, logs or errors.

use std::path::PathBuf;

use atp_registry::mapping::Layout;
use atp_registry::{Client, ClientOptions, Credentials, RegistryConfig, Repository, RetryPolicy};

/// A username and password for the site registry. `Debug` redacts the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct SiteCredentials {
    pub username: String,
    password: String,
}

impl SiteCredentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for SiteCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The site registry.
#[derive(Debug, Clone)]
pub struct Site {
    /// `host[:port]`.
    pub registry: String,
    /// Plain HTTP, only when asked for this registry.
    pub plain_http: bool,
    /// An extra CA to trust for this registry.
    pub registry_ca: Option<PathBuf>,
    pub credentials: Option<SiteCredentials>,
    /// Where images land: a repository prefix and the name layout.
    pub repo_prefix: Option<String>,
    pub layout: Layout,
    /// Requests (and blob transfers) in flight.
    pub concurrency: usize,
    /// Retry policy override (tests use fast retries).
    pub retry: Option<RetryPolicy>,
}

impl Site {
    /// An anonymous, TLS-verified site registry with default settings.
    pub fn new(registry: impl Into<String>) -> Self {
        Self {
            registry: registry.into(),
            plain_http: false,
            registry_ca: None,
            credentials: None,
            repo_prefix: None,
            layout: Layout::default(),
            concurrency: 8,
            retry: None,
        }
    }

    /// A client for this registry: plain HTTP only when asked, the extra
    /// CA, the credentials, concurrency and retries.
    pub fn client(&self) -> Result<Client, atp_registry::Error> {
        let mut copts = ClientOptions {
            concurrency: self.concurrency.max(1),
            ..ClientOptions::default()
        };
        if let Some(r) = &self.retry {
            copts.retry = r.clone();
        }
        copts.registries.insert(
            self.registry.clone(),
            RegistryConfig {
                plain_http: self.plain_http,
                ca_file: self.registry_ca.clone(),
                credentials: self
                    .credentials
                    .as_ref()
                    .map(|c| Credentials::new(&c.username, c.password())),
                ..Default::default()
            },
        );
        Client::new(copts)
    }

    /// The repository `name` (already mapped) of this registry.
    pub fn repository(&self, name: &str) -> Result<Repository, atp_registry::Error> {
        Repository::new(&self.registry, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let mut site = Site::new("127.0.0.1:5000");
        site.credentials = Some(SiteCredentials::new("admin", "s3cr3t-pw"));
        let shown = format!("{site:?} {:#?}", site.credentials);
        assert!(shown.contains("admin"), "{shown}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    }
}
