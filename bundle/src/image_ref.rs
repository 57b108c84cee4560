//! Which bundled image a manifest's image spelling means: the one rule shared
//! by `create`'s completeness check, `create --simulate`'s self-check and the
//! installer's render, so the three can never disagree.
//!
//! A spelling means a bundled image when, once normalized the Docker way, it
//! is the image's reference (`atp/router:1.4.0` and
//! `docker.io/atp/router:1.4.0` are one image), or when it pins a digest
//! equal to the image's carried digest or to the source digest it had before
//! its platforms were pruned. Normalizing is the registry crate's job
//! (`atp_registry::Reference`); this module only compares, and never parses
//! a reference beyond finding its `@digest`.

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

/// Position of the first carried image that `normalized` (a spelling already
/// normalized the Docker way) means, or `None` when the bundle lacks it.
pub fn find<'a>(normalized: &str, carried: impl IntoIterator<Item = Carried<'a>>) -> Option<usize> {
    let pinned = pinned_digest(normalized);
    carried.into_iter().position(|c| {
        c.reference == normalized
            || pinned
                .as_ref()
                .is_some_and(|d| c.digest == d || c.source_digest == Some(d))
    })
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
        assert_eq!(find("docker.io/atp/a:1", carried), Some(0));
        assert_eq!(find("docker.io/atp/b:2", carried), Some(1));
        // Any name with the carried digest, or the digest before pruning.
        assert_eq!(find(&format!("docker.io/other/x@{a}"), carried), Some(0));
        assert_eq!(find(&format!("docker.io/atp/b:2@{b}"), carried), Some(1));
        assert_eq!(
            find(&format!("docker.io/atp/b@{pruned_from}"), carried),
            Some(1)
        );
        // Another tag, or an unknown digest under a known name, is not carried.
        assert_eq!(find("docker.io/atp/a:2", carried), None);
        let other = Digest::of(b"other");
        assert_eq!(find(&format!("docker.io/atp/a@{other}"), carried), None);
        assert_eq!(find("docker.io/atp/a:1", []), None);
    }

    #[test]
    fn the_first_of_two_matches_wins() {
        let d = Digest::of(b"same");
        let carried = [
            Carried {
                reference: "docker.io/x/one:1",
                digest: &d,
                source_digest: None,
            },
            Carried {
                reference: "docker.io/x/two:1",
                digest: &d,
                source_digest: None,
            },
        ];
        assert_eq!(find(&format!("docker.io/x/two@{d}"), carried), Some(0));
        assert_eq!(find("docker.io/x/two:1", carried), Some(1));
    }

    #[test]
    fn pinned_digest_ignores_a_malformed_pin() {
        let d = Digest::of(b"x");
        assert_eq!(pinned_digest(&format!("h/r:t@{d}")), Some(d));
        assert_eq!(pinned_digest("h/r:t@sha256:00"), None);
        assert_eq!(pinned_digest("h/r:t"), None);
    }
}
