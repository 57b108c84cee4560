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

    /// The connection failed: said in words ([`Cause`]: refused, name not
    /// resolved, reset, timed out) with what to check, then `hint`.
    #[error("{method} {url}: {}\nhint: {hint}", Cause::of(.source))]
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

    /// The TLS handshake failed; [`Cause`] says why (an unknown CA, a name
    /// the certificate does not list, an expired certificate, not TLS at all).
    #[error("{method} {url}: {}; TLS errors are not retried", Cause::of(.source))]
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

/// Why a request never got an answer, in words, and what to check: read from
/// the innermost cause of a transport error (the `io::Error` kind, or the
/// TLS library's text), which is also quoted, so nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// What happened, ending with the innermost cause's own text.
    pub what: String,
    /// What the user should check: printed as a `hint:` line.
    pub check: &'static str,
}

const CHECK_CA: &str =
    "pass the registry's CA with `ca_file` (or `plain_http` for a plain-HTTP registry)";

impl Cause {
    /// Describe a reqwest error by walking its `source()` chain.
    pub fn of(err: &reqwest::Error) -> Cause {
        Self::of_chain(err, err.is_timeout())
    }

    /// Describe any error chain; `timed_out` when the client gave up waiting.
    pub fn of_chain(err: &(dyn std::error::Error + 'static), timed_out: bool) -> Cause {
        let mut io_kind = None;
        let mut dns = false;
        let mut innermost: &(dyn std::error::Error + 'static) = err;
        let mut next = Some(err);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                io_kind = Some(io.kind());
            }
            if e.to_string().to_ascii_lowercase().starts_with("dns error") {
                dns = true;
            }
            innermost = e;
            next = e.source();
        }
        let inner = innermost.to_string();
        let lower = inner.to_ascii_lowercase();
        let tls = |reason: &str, check| Cause {
            what: format!("TLS failure: {reason} ({inner})"),
            check,
        };
        use std::io::ErrorKind as K;
        if lower.contains("unknownissuer") || lower.contains("unknown issuer") {
            return tls(
                "the registry's certificate is not signed by a CA this machine trusts",
                CHECK_CA,
            );
        }
        if lower.contains("notvalidforname") || lower.contains("not valid for name") {
            return tls(
                "the registry's certificate is not valid for the host name in the address",
                "use a host name the certificate lists (its subject alternative names), or have the certificate reissued for this one",
            );
        }
        if lower.contains("expired") || lower.contains("notvalidyet") {
            return tls(
                "the registry's certificate has expired or is not valid yet",
                "renew the registry's certificate, and check this machine's clock",
            );
        }
        if lower.contains("invalidcontenttype")
            || lower.contains("corrupt message")
            || lower.contains("invalid content type")
        {
            return tls(
                "the registry did not answer in TLS",
                "if the registry speaks plain HTTP, say so with `plain_http`; otherwise check the port",
            );
        }
        if lower.contains("certificate") || lower.contains("handshake") || lower.contains("tls") {
            return tls("the registry's certificate was refused", CHECK_CA);
        }
        if dns {
            return Cause {
                what: format!("the host name did not resolve ({inner})"),
                check: "check the registry's host name, and this machine's DNS (/etc/resolv.conf, /etc/hosts)",
            };
        }
        match io_kind {
            Some(K::ConnectionRefused) => Cause {
                what: format!("connection refused ({inner})"),
                check: "check the registry's address and port, and that the registry is running",
            },
            Some(K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof) => {
                Cause {
                    what: format!("the connection was closed early ({inner})"),
                    check: "the registry or a proxy between us dropped the connection; check their logs",
                }
            }
            Some(K::TimedOut) => Cause {
                what: format!("timed out connecting ({inner})"),
                check: "check that the registry is up and that no firewall drops the connection",
            },
            Some(K::NetworkUnreachable | K::HostUnreachable) => Cause {
                what: format!("no route to the registry ({inner})"),
                check: "check this machine's network and routes to the registry",
            },
            _ if timed_out => Cause {
                what: format!("timed out ({inner})"),
                check: "check that the registry is up and that no firewall drops the connection",
            },
            _ => Cause {
                what: inner,
                check: "check the registry's address, and that this machine can reach it",
            },
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\nhint: {}", self.what, self.check)
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

    #[derive(Debug)]
    struct Wrapper(&'static str, std::io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn a_cause_says_what_happened_and_quotes_the_innermost_text() {
        use std::io::{Error as Io, ErrorKind as K};
        let refused = Wrapper("tcp connect error", Io::from(K::ConnectionRefused));
        let c = Cause::of_chain(&refused, false);
        assert!(c.what.starts_with("connection refused ("), "{c}");
        assert!(c.what.contains(&Io::from(K::ConnectionRefused).to_string()));
        let dns = Wrapper("dns error", Io::other("Name or service not known"));
        let c = Cause::of_chain(&dns, false);
        assert!(c.what.starts_with("the host name did not resolve"), "{c}");
        let ca = Wrapper(
            "client error (Connect)",
            Io::new(K::InvalidData, "invalid peer certificate: UnknownIssuer"),
        );
        let c = Cause::of_chain(&ca, false);
        assert!(c.what.contains("not signed by a CA"), "{c}");
        assert_eq!(c.check, CHECK_CA);
        let name = Io::new(K::InvalidData, "invalid peer certificate: NotValidForName");
        assert!(Cause::of_chain(&name, false)
            .what
            .contains("not valid for the host name"));
        assert!(c.to_string().contains("\nhint: "));
    }

    #[test]
    fn display_carries_hint() {
        let e = Error::Schema1 {
            url: "http://h/v2/a/manifests/b".into(),
        };
        assert!(e.to_string().contains("\nhint: "));
    }
}
