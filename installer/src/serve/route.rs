//! What a request path asks for: the OCI distribution pull API's routes, the
//! repository name, tag and digest grammars, and the `Range` and `Accept`
//! headers.
//!
//! Pure parsing, no I/O. Everything a client sends is validated here before
//! it is looked up: a name outside the distribution grammar (`..`, `%2e`,
//! upper case, empty components) or a digest that is not `sha256:` and 64
//! lowercase hex characters never reaches the content index.

use atp_bundle::Digest;

/// One route of the pull API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags { name: String },
    /// `/v2/<name>/manifests/<tag|digest>`.
    Manifest { name: String, reference: Reference },
    /// `/v2/<name>/blobs/<digest>`.
    Blob { name: String, digest: Digest },
    /// `/v2/<name>/referrers/<digest>`.
    Referrers { name: String, digest: Digest },
}

/// A manifest is asked for by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// Why a path is not a route; each maps to an OCI error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    /// Not under `/v2/`, or no known route: 404 `NOT_FOUND`.
    NotFound,
    /// `NAME_INVALID` (400).
    Name(String),
    /// `DIGEST_INVALID` (400).
    Digest(String),
    /// `TAG_INVALID` (400).
    Tag(String),
}

/// Parse a request path (without the query).
pub fn parse(path: &str) -> Result<Route, BadPath> {
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Route::Base),
        Some(r) => r.strip_prefix('/').ok_or(BadPath::NotFound)?,
        None => return Err(BadPath::NotFound),
    };
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    if segs.len() < 3 {
        return Err(BadPath::NotFound);
    }
    let (head, tail) = segs.split_at(segs.len() - 2);
    let name = head.join("/");
    let (kind, last) = (tail[0], tail[1]);
    let route = match kind {
        "tags" if last == "list" => {
            check_name(&name)?;
            Route::Tags { name }
        }
        "manifests" => {
            check_name(&name)?;
            let reference = if last.contains(':') {
                Reference::Digest(digest(last)?)
            } else if is_tag(last) {
                Reference::Tag(last.to_owned())
            } else {
                return Err(BadPath::Tag(last.to_owned()));
            };
            Route::Manifest { name, reference }
        }
        "blobs" => {
            check_name(&name)?;
            Route::Blob {
                name,
                digest: digest(last)?,
            }
        }
        "referrers" => {
            check_name(&name)?;
            Route::Referrers {
                name,
                digest: digest(last)?,
            }
        }
        _ => return Err(BadPath::NotFound),
    };
    Ok(route)
}

fn digest(s: &str) -> Result<Digest, BadPath> {
    s.parse().map_err(|_| BadPath::Digest(s.to_owned()))
}

/// The distribution spec's name grammar: `/`-separated components of
/// lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`.
fn check_name(name: &str) -> Result<(), BadPath> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(atp_registry::reference::component_ok);
    if ok {
        Ok(())
    } else {
        Err(BadPath::Name(name.chars().take(100).collect()))
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'))
}

/// What a `Range` header asks of a blob of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No range, or one this server ignores (several ranges): the whole blob.
    Whole,
    /// Bytes `start..=end`, both within the blob.
    Part { start: u64, end: u64 },
    /// Nothing of it is in the blob: 416.
    Unsatisfiable,
}

/// Parse `bytes=a-b`, `bytes=a-` or `bytes=-n` against `size`.
pub fn range(header: Option<&str>, size: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => match num(b) {
            Some(0) => return RangeAsk::Unsatisfiable,
            Some(n) => (size.saturating_sub(n), size.saturating_sub(1)),
            None => return RangeAsk::Whole,
        },
        (false, true) => match num(a) {
            Some(s) => (s, size.saturating_sub(1)),
            None => return RangeAsk::Whole,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e => (s, e.min(size.saturating_sub(1))),
            _ => return RangeAsk::Whole,
        },
        (true, true) => return RangeAsk::Whole,
    };
    if size == 0 || start >= size {
        RangeAsk::Unsatisfiable
    } else {
        RangeAsk::Part { start, end }
    }
}

/// Media types an OCI manifest request must name in `Accept` to get one.
const OCI_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Whether a client whose `Accept` header lines are `accept` may be sent a
/// manifest of `media_type`, as distribution v2.8 decides: an OCI manifest
/// or index only to a client that names its exact type (parameters such as
/// `q` are ignored, as distribution ignores them). Where serve is kinder
/// than distribution: a request with no `Accept` at all, or with `*/*`,
/// gets any manifest, as it always has; and a Docker manifest or list is
/// always sent as it is (distribution rewrites one asked for by tag to
/// schema 1, which a served bundle never invents).
pub fn accepts<'a>(accept: impl IntoIterator<Item = &'a str>, media_type: &str) -> bool {
    if !OCI_TYPES.contains(&media_type) {
        return true;
    }
    let mut any = false;
    for line in accept {
        any = true;
        for item in line.split(',') {
            let t = item.split(';').next().unwrap_or("").trim();
            if t == "*/*" || t.eq_ignore_ascii_case(media_type) {
                return true;
            }
        }
    }
    !any
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn routes() {
        assert_eq!(parse("/v2/"), Ok(Route::Base));
        assert_eq!(parse("/v2"), Ok(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Ok(Route::Catalog));
        assert_eq!(
            parse("/v2/atp/router/tags/list"),
            Ok(Route::Tags {
                name: "atp/router".into()
            })
        );
        assert_eq!(
            parse("/v2/a/b/manifests/1.4.0"),
            Ok(Route::Manifest {
                name: "a/b".into(),
                reference: Reference::Tag("1.4.0".into())
            })
        );
        let blob = parse(&format!("/v2/a/blobs/blobs/{D}")).unwrap();
        assert_eq!(
            blob,
            Route::Blob {
                name: "a/blobs".into(),
                digest: D.parse().unwrap()
            }
        );
        assert_eq!(parse("/v1/x"), Err(BadPath::NotFound));
        assert_eq!(parse("/v2/a/other/x"), Err(BadPath::NotFound));
    }

    #[test]
    fn refuses_bad_names_digests_and_tags() {
        for name in [
            "..",
            "a/../b",
            "a/%2e%2e/b",
            "A/b",
            "a//b",
            "a-",
            "_a",
            "a..b",
            "a___b",
        ] {
            let p = format!("/v2/{name}/manifests/latest");
            assert!(matches!(parse(&p), Err(BadPath::Name(_))), "{p}");
        }
        for name in ["a.b", "a_b", "a__b", "a---b", "x/y-z/0"] {
            assert!(parse(&format!("/v2/{name}/tags/list")).is_ok(), "{name}");
        }
        for d in ["sha512:00", "sha256:abc", &D.to_uppercase(), "md5:x"] {
            let p = format!("/v2/a/blobs/{d}");
            assert!(matches!(parse(&p), Err(BadPath::Digest(_))), "{p}");
        }
        assert!(matches!(
            parse("/v2/a/manifests/.hidden"),
            Err(BadPath::Tag(_))
        ));
    }

    #[test]
    fn accept_as_distribution_decides() {
        let oci = OCI_TYPES[0];
        let idx = OCI_TYPES[1];
        let docker = "application/vnd.docker.distribution.manifest.v2+json";
        assert!(accepts([], oci), "no Accept: served as always");
        assert!(accepts([oci], oci));
        assert!(accepts(
            ["text/html, application/vnd.oci.image.manifest.v1+json;q=0.5"],
            oci
        ));
        assert!(accepts(["text/html", oci], oci), "several header lines");
        assert!(accepts(["*/*"], idx));
        assert!(!accepts([oci], idx));
        assert!(!accepts([idx, docker], oci));
        assert!(!accepts(["application/json"], oci));
        assert!(!accepts(["application/*"], oci));
        assert!(!accepts([""], oci), "an empty Accept names nothing");
        assert!(accepts([oci], docker), "Docker types are never refused");
        assert!(accepts([], docker));
    }

    #[test]
    fn ranges() {
        assert_eq!(range(None, 10), RangeAsk::Whole);
        assert_eq!(
            range(Some("bytes=0-3"), 10),
            RangeAsk::Part { start: 0, end: 3 }
        );
        assert_eq!(
            range(Some("bytes=4-"), 10),
            RangeAsk::Part { start: 4, end: 9 }
        );
        assert_eq!(
            range(Some("bytes=-3"), 10),
            RangeAsk::Part { start: 7, end: 9 }
        );
        assert_eq!(
            range(Some("bytes=5-100"), 10),
            RangeAsk::Part { start: 5, end: 9 }
        );
        assert_eq!(range(Some("bytes=10-20"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(range(Some("bytes=0-1,4-5"), 10), RangeAsk::Whole);
        assert_eq!(range(Some("bytes=5-2"), 10), RangeAsk::Whole);
        assert_eq!(range(Some("items=0-1"), 10), RangeAsk::Whole);
    }
}
