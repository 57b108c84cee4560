//! The one error type of `atp-registry`: structured fields, and a `hint:` line
//! telling the user what to do next.
//!
//! Never put a password, token or `Authorization` value in here: URLs are ours
//! (no userinfo, no secrets in query strings) and bodies are never echoed
//! except the registry's own `errors[].code/message`.

use std::path::PathBuf;
use std::time::Duration;

use atp_bundle::digest::{BlobMismatch, Digest};

/// The registry settings a `hint:` names, written in backticks as here. The
/// library does not know how a tool spells them; a command-line tool maps
/// each to the flag (or config key) that sets it before printing.
pub const HINT_SETTINGS: &[&str] = &["`ca_file`", "`plain_http`", "`credentials`"];

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid image reference {input:?}: {reason}\nhint: use [host[:port]/]path[:tag][@sha256:<64 hex>], lowercase path components")]
    InvalidReference { input: String, reason: String },

    #[error("invalid registry settings for {registry}: {reason}")]
    InvalidConfig { registry: String, reason: String },

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{method} {url}: {source}\nhint: {hint}")]
    Transport {
        method: String,
        url: String,
        hint: &'static str,
        #[source]
        source: reqwest::Error,
    },

    #[error("{method} {url}: no progress for {}s (idle timeout): nothing sent and no answer received\nhint: the registry, or something between us, stalled or answers a trickle; it was retried. Raise the idle timeout only for a registry known to be that slow", .idle.as_secs_f64())]
    IdleTimeout {
        method: String,
        url: String,
        idle: Duration,
    },

    #[error("{method} {url}: TLS failure: {source}\nhint: pass the registry's CA with `ca_file` (or `plain_http` for a plain-HTTP registry); TLS errors are not retried")]
    Tls {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("{method} {url}: unexpected HTTP {status}{detail}")]
    Status {
        method: String,
        url: String,
        status: u16,
        /// The registry's `errors[]` codes and messages, when it sent some.
        detail: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    #[error("{method} {url}: authentication failed (HTTP {status}){detail}\nhint: {hint}")]
    Unauthorized {
        method: String,
        url: String,
        status: u16,
        detail: String,
        hint: String,
    },

    #[error("{what} not found: {url}")]
    NotFound { what: String, url: String },

    #[error("gave up on {method} {url} after {attempts} attempts in {elapsed:?}: {last}\nhint: the registry keeps failing; check its health, or raise the retry limits")]
    RetriesExhausted {
        method: String,
        url: String,
        attempts: u32,
        elapsed: Duration,
        last: Box<Error>,
    },

    #[error("{url}: {source}\nhint: the registry or something between us changed the content; nothing was kept")]
    Blob {
        url: String,
        #[source]
        source: BlobMismatch,
    },

    #[error("{url}: manifest digest mismatch: expected {expected}, content hashes to {found}")]
    ManifestDigest {
        url: String,
        expected: Digest,
        found: Digest,
    },

    #[error("{url}: registry reports Docker-Content-Digest {reported}, expected {expected}")]
    ReportedDigest {
        url: String,
        expected: Digest,
        reported: String,
    },

    #[error("{url}: Docker schema 1 manifests are not supported\nhint: re-push the image with a current client (schema 2 or OCI), e.g. `skopeo copy --format v2s2`")]
    Schema1 { url: String },

    #[error("{context}: unsupported manifest media type {media_type:?}\nhint: only OCI image manifest/index and Docker schema 2 manifest/list are accepted")]
    UnsupportedMediaType { context: String, media_type: String },

    #[error("{context}: invalid manifest: {reason}")]
    InvalidManifest { context: String, reason: String },

    #[error("{url}: manifest is {size} bytes, over the {limit} byte limit")]
    ManifestTooLarge { url: String, size: u64, limit: u64 },

    #[error("{url}: protocol error: {reason}")]
    Protocol { url: String, reason: String },

    #[error("refusing to send credentials for {registry} to {host}\nhint: the registry pointed us at another host; credentials are only sent to the registry and its token realm")]
    CrossHost { registry: String, host: String },

    #[error("credential helper docker-credential-{helper} for {registry}: {reason}\nhint: install docker-credential-{helper} on PATH, or remove it from credHelpers/credsStore in the docker config")]
    CredentialHelper {
        helper: String,
        registry: String,
        reason: String,
    },

    #[error("reading the local blob {digest} at offset {offset}: {source}")]
    Source {
        digest: Digest,
        offset: u64,
        #[source]
        source: std::io::Error,
    },

    #[error("writing blob {digest}: {source}")]
    Sink {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// For `Error::Status` and friends: the HTTP status, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } | Error::Unauthorized { status, .. } => Some(*status),
            Error::NotFound { .. } => Some(404),
            Error::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

/// Format the `errors` array of a registry error body as ` (CODE: message; ...)`.
pub(crate) fn registry_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) if !b.errors.is_empty() => {
            let parts: Vec<String> = b
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect();
            let mut s = format!(" ({})", parts.join("; "));
            s.truncate(500);
            s
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_detail_formats_codes() {
        let d =
            registry_detail(br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#);
        assert_eq!(d, " (BLOB_UNKNOWN: blob unknown)");
        assert_eq!(registry_detail(b"<html>"), "");
    }

    #[test]
    fn display_carries_hint() {
        let e = Error::Schema1 {
            url: "http://h/v2/a/manifests/b".into(),
        };
        assert!(e.to_string().contains("\nhint: "));
    }
}
