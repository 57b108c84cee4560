//! Which bundled image a manifest's image spelling means: the one rule shared
//! by `create`'s completeness check, `create --simulate`'s self-check and the
//! installer's render, so the three can never disagree.
//!
//! A spelling means a bundled image when, once normalized the Docker way, it
//! is the image's reference (`atp/router:1.4.0` and
//! `docker.io/atp/router:1.4.0` are one image), or when it pins a digest
//! equal to the image's carried digest or to the source digest it had before
//! its platforms were pruned.
//!
//! When several images match, the closest wins: the exact reference, then a
//! pinned digest under the image's own `name:tag`, then under its own name,
//! then under any name. Two images equally close is an error naming both,
//! never a silent pick (two names for one digest, asked for by a third
//! name). Normalizing is the registry crate's job (`atp_registry::Reference`);
//! this module only compares, and never parses a reference beyond splitting
//! off its `@digest` and its `:tag`.

use crate::Digest;

/// A bundled image as the matcher sees it.
#[derive(Debug, Clone, Copy)]
pub struct Carried<'a> {
    /// Normalized source reference, e.g. `docker.io/atp/router:1.4.0`.
    pub reference: &'a str,
    /// Digest of the top manifest or index the bundle carries.
    pub digest: &'a Digest,
    /// Digest of the source index before platform pruning, when pruned.
    pub source_digest: Option<&'a Digest>,
}

/// The digest a normalized spelling pins (`...@sha256:...`), if any.
pub fn pinned_digest(normalized: &str) -> Option<Digest> {
    normalized
        .split_once('@')
        .and_then(|(_, d)| d.parse::<Digest>().ok())
}

/// A spelling two bundled images match equally well.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image {spelling} could mean two bundled images, {first} and {second}\nhint: spell it as one of them exactly (name and tag), or pin it under that image's name")]
pub struct Ambiguous {
    /// The spelling, normalized.
    pub spelling: String,
    /// The two candidates' references.
    pub first: String,
    pub second: String,
}

/// Position of the carried image that `normalized` (a spelling already
/// normalized the Docker way) means, `None` when the bundle lacks it, or
/// [`Ambiguous`] when two match it equally well.
pub fn find<'a>(
    normalized: &str,
    carried: impl IntoIterator<Item = Carried<'a>>,
) -> Result<Option<usize>, Ambiguous> {
    let pinned = pinned_digest(normalized);
    let mut best: Option<(u8, usize, &'a str)> = None;
    let mut tie: Option<&'a str> = None;
    for (i, c) in carried.into_iter().enumerate() {
        let score = closeness(normalized, pinned.as_ref(), &c);
        if score == 0 {
            continue;
        }
        match best {
            Some((s, _, _)) if s > score => {}
            Some((s, _, r)) if s == score => {
                if r != c.reference && tie.is_none() {
                    tie = Some(c.reference);
                }
            }
            _ => {
                best = Some((score, i, c.reference));
                tie = None;
            }
        }
    }
    match (best, tie) {
        (Some((_, _, first)), Some(second)) => Err(Ambiguous {
            spelling: normalized.to_string(),
            first: first.to_string(),
            second: second.to_string(),
        }),
        (best, _) => Ok(best.map(|(_, i, _)| i)),
    }
}

/// How closely `normalized` means `c`: 0 not at all, 4 its exact reference;
/// a pinned digest it carries scores 3 under its `name:tag`, 2 under its
/// name, 1 under another name.
fn closeness(normalized: &str, pinned: Option<&Digest>, c: &Carried<'_>) -> u8 {
    if c.reference == normalized {
        return 4;
    }
    let Some(d) = pinned else { return 0 };
    if c.digest != d && c.source_digest != Some(d) {
        return 0;
    }
    let (spelled, carried) = (without_digest(normalized), without_digest(c.reference));
    if spelled == carried {
        3
    } else if without_tag(spelled) == without_tag(carried) {
        2
    } else {
        1
    }
}

fn without_digest(r: &str) -> &str {
    r.split_once('@').map_or(r, |(n, _)| n)
}

/// `host/repo:tag` → `host/repo`; a `:` before the last `/` is a port.
fn without_tag(r: &str) -> &str {
    match r.rfind(':') {
        Some(i) if !r[i..].contains('/') => &r[..i],
        _ => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_by_reference_or_by_either_pinned_digest() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let pruned_from = Digest::of(b"b-multi");
        let carried = [
            Carried {
                reference: "docker.io/atp/a:1",
                digest: &a,
                source_digest: None,
            },
            Carried {
                reference: "docker.io/atp/b:2",
                digest: &b,
                source_digest: Some(&pruned_from),
            },
        ];
        let find = |s: &str, c: &[Carried<'_>]| find(s, c.iter().copied()).unwrap();
        assert_eq!(find("docker.io/atp/a:1", &carried), Some(0));
        assert_eq!(find("docker.io/atp/b:2", &carried), Some(1));
        // Any name with the carried digest, or the digest before pruning.
        assert_eq!(find(&format!("docker.io/other/x@{a}"), &carried), Some(0));
        assert_eq!(find(&format!("docker.io/atp/b:2@{b}"), &carried), Some(1));
        assert_eq!(
            find(&format!("docker.io/atp/b@{pruned_from}"), &carried),
            Some(1)
        );
        // Another tag, or an unknown digest under a known name, is not carried.
        assert_eq!(find("docker.io/atp/a:2", &carried), None);
        let other = Digest::of(b"other");
        assert_eq!(find(&format!("docker.io/atp/a@{other}"), &carried), None);
        assert_eq!(find("docker.io/atp/a:1", &[]), None);
    }

    fn carried<'a>(reference: &'a str, digest: &'a Digest) -> Carried<'a> {
        Carried {
            reference,
            digest,
            source_digest: None,
        }
    }

    /// Two images with one digest (a release and its alias): a pin under one
    /// image's own name means that image, whichever comes first.
    #[test]
    fn a_pin_under_an_images_own_name_beats_an_earlier_same_digest() {
        let d = Digest::of(b"same");
        let c = [
            carried("docker.io/x/one:1", &d),
            carried("docker.io/x/two:1", &d),
        ];
        assert_eq!(find(&format!("docker.io/x/two@{d}"), c), Ok(Some(1)));
        assert_eq!(find(&format!("docker.io/x/one@{d}"), c), Ok(Some(0)));
        assert_eq!(find(&format!("docker.io/x/two:1@{d}"), c), Ok(Some(1)));
        assert_eq!(find("docker.io/x/two:1", c), Ok(Some(1)));
        // Two tags of one name, one digest: the tag spelled wins.
        let r = [
            carried("docker.io/atp/router:1.4.0", &d),
            carried("docker.io/atp/router:1.4.0-debug", &d),
        ];
        let debug = format!("docker.io/atp/router:1.4.0-debug@{d}");
        assert_eq!(find(&debug, r), Ok(Some(1)));
        assert_eq!(find("docker.io/atp/router:1.4.0", r), Ok(Some(0)));
        // A port is not a tag.
        let p = [
            carried("127.0.0.1:5000/a:1", &d),
            carried("127.0.0.1:5001/a:1", &d),
        ];
        assert_eq!(find(&format!("127.0.0.1:5001/a@{d}"), p), Ok(Some(1)));
    }

    /// A pin under a third name matches both equally: an error naming both.
    #[test]
    fn an_equally_close_pair_is_an_error_naming_both() {
        let d = Digest::of(b"same");
        let c = [
            carried("docker.io/x/one:1", &d),
            carried("docker.io/x/two:1", &d),
        ];
        let err = find(&format!("docker.io/x/three@{d}"), c).unwrap_err();
        assert_eq!(
            (err.first.as_str(), err.second.as_str()),
            ("docker.io/x/one:1", "docker.io/x/two:1")
        );
        let shown = err.to_string();
        assert!(
            shown.contains("docker.io/x/one:1") && shown.contains("docker.io/x/two:1"),
            "{shown}"
        );
        assert!(shown.contains("hint:"), "{shown}");
        // Two tags of one name, pinned under the bare name: both as close.
        let r = [
            carried("docker.io/atp/router:1.4.0", &d),
            carried("docker.io/atp/router:1.4.0-debug", &d),
        ];
        assert!(find(&format!("docker.io/atp/router@{d}"), r).is_err());
    }

    #[test]
    fn pinned_digest_ignores_a_malformed_pin() {
        let d = Digest::of(b"x");
        assert_eq!(pinned_digest(&format!("h/r:t@{d}")), Some(d));
        assert_eq!(pinned_digest("h/r:t@sha256:00"), None);
        assert_eq!(pinned_digest("h/r:t"), None);
    }
}
