//! Image references, parsed and normalized the Docker way:
//! `nginx` -> `docker.io/library/nginx:latest`,
//! `host:5000/a/b:tag@sha256:...` keeps both tag and digest.
//!
//! Validates the distribution name grammar before anything reaches a URL; never
//! accepts a digest other than `sha256:<64 lowercase hex>`.

use std::fmt;
use std::str::FromStr;

use atp_bundle::Digest;

use crate::error::Error;

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const MAX_NAME_LEN: usize = 255;

/// A repository on a registry: `registry/name`, e.g. `127.0.0.1:5000/atp/router`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    registry: String,
    name: String,
}

/// A full image reference: repository plus tag and/or digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    repository: Repository,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Repository {
    /// Build from parts; both are validated.
    pub fn new(registry: &str, name: &str) -> Result<Self, Error> {
        let input = format!("{registry}/{name}");
        let bad = |reason: &str| Error::InvalidReference {
            input: input.clone(),
            reason: reason.to_string(),
        };
        validate_registry(registry).map_err(bad)?;
        let registry = normalize_registry(registry);
        let name = if registry == DOCKER_HUB && !name.contains('/') {
            format!("library/{name}")
        } else {
            name.to_string()
        };
        validate_path(&name).map_err(bad)?;
        Ok(Self { registry, name })
    }

    /// `host[:port]` as written in references (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The path inside the registry, e.g. `library/nginx`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host to connect to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The same repository with a tag.
    pub fn tag(&self, tag: &str) -> Result<Reference, Error> {
        validate_tag(tag).map_err(|reason| Error::InvalidReference {
            input: format!("{self}:{tag}"),
            reason: reason.into(),
        })?;
        Ok(Reference {
            repository: self.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The same repository pinned to a digest.
    pub fn digest(&self, digest: &Digest) -> Reference {
        Reference {
            repository: self.clone(),
            tag: None,
            digest: Some(digest.clone()),
        }
    }
}

impl FromStr for Repository {
    type Err = Error;
    /// Parse `host/path` (normalized like a reference; no tag or digest).
    fn from_str(s: &str) -> Result<Self, Error> {
        let r: Reference = s.parse()?;
        if r.digest.is_some() || s.rsplit('/').next().is_some_and(|last| last.contains(':')) {
            return Err(Error::InvalidReference {
                input: s.into(),
                reason: "a repository has no tag or digest".into(),
            });
        }
        Ok(r.repository)
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Repository({self})")
    }
}

impl Reference {
    pub fn repository(&self) -> &Repository {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// What goes after `/manifests/`: the digest when there is one, else the tag.
    pub fn url_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".into(),
        }
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(input: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidReference {
            input: input.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => (
                rest,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| bad("digest must be sha256:<64 lowercase hex>"))?,
                ),
            ),
            None => (input, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                validate_tag(t).map_err(bad)?;
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first, path)
            }
            _ => (DOCKER_HUB, name),
        };
        let repository = Repository::new(registry, path).map_err(|e| match e {
            Error::InvalidReference { reason, .. } => bad(&reason),
            e => e,
        })?;
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t,
        };
        Ok(Self {
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

fn normalize_registry(r: &str) -> String {
    match r {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.into(),
        r => r.to_string(),
    }
}

fn validate_tag(t: &str) -> Result<(), &'static str> {
    let mut chars = t.chars();
    let ok_first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok_first
        || t.len() > 128
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    }
    Ok(())
}

fn validate_registry(r: &str) -> Result<(), &'static str> {
    const MSG: &str = "registry must be host[:port]";
    let (host, port) = if let Some(v6) = r.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or(MSG)?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err(MSG);
        }
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or(MSG)?),
        };
        (None, port)
    } else {
        match r.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(MSG);
        }
    }
    if let Some(h) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if h.is_empty() || !h.split('.').all(label_ok) {
            return Err(MSG);
        }
    }
    Ok(())
}

/// `path-component ("/" path-component)*` with
/// `path-component = [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*`.
fn validate_path(p: &str) -> Result<(), &'static str> {
    if p.len() > MAX_NAME_LEN {
        return Err("repository name longer than 255 characters");
    }
    for comp in p.split('/') {
        if !component_ok(comp) {
            return Err("repository path components must be lowercase [a-z0-9] separated by '.', '_', '__' or '-'");
        }
    }
    Ok(())
}

/// One `/`-separated component of a repository name under the distribution
/// grammar (shared with `atp-installer serve`, which checks names it is asked for).
pub fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn normalizes_docker_style() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.25"), "docker.io/library/nginx:1.25");
        assert_eq!(norm("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(
            norm("index.docker.io/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("localhost/a"), "localhost/a:latest");
        assert_eq!(norm("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(
            norm(&format!("127.0.0.1:5000/a/b:tag@{D}")),
            format!("127.0.0.1:5000/a/b:tag@{D}")
        );
        assert_eq!(norm(&format!("quay.io/a@{D}")), format!("quay.io/a@{D}"));
        assert_eq!(norm("[::1]:5000/x"), "[::1]:5000/x:latest");
    }

    #[test]
    fn parts() {
        let r: Reference = format!("host:5000/a/b:v1@{D}").parse().unwrap();
        assert_eq!(r.repository().registry(), "host:5000");
        assert_eq!(r.repository().name(), "a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.url_reference(), D);
        let r: Reference = "nginx".parse().unwrap();
        assert_eq!(r.repository().api_host(), "registry-1.docker.io");
        assert_eq!(r.url_reference(), "latest");
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            "Nginx",
            "a//b",
            "a/b/",
            "a..b",
            "a___b",
            "-a",
            "a-",
            "host:5000/a:t@sha256:00",
            "a:-tag",
            "a:t/b",
            "host:port/a",
            "a@sha512:00",
            "a/../b",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
        let long = format!("h.io/{}", "a".repeat(256));
        assert!(long.parse::<Reference>().is_err());
    }

    #[test]
    fn accepts_separators() {
        for ok in ["a.b", "a_b", "a__b", "a---b", "a-b/c.d_e__f"] {
            assert!(ok.parse::<Reference>().is_ok(), "{ok:?} refused");
        }
    }

    #[test]
    fn repository_from_str() {
        let r: Repository = "127.0.0.1:5000/atp/router".parse().unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/atp/router");
        assert!("127.0.0.1:5000/atp/router:t".parse::<Repository>().is_err());
        assert_eq!(
            "127.0.0.1:5000/atp/router"
                .parse::<Repository>()
                .unwrap()
                .tag("v2")
                .unwrap()
                .to_string(),
            "127.0.0.1:5000/atp/router:v2"
        );
    }
}
