//! Where each image lands in a target registry: one mapping shared by
//! `atp-installer install` and `atp-bundler sync`, so both put the same
//! image under the same name.
//!
//!
//! Three documented layouts, all producing names valid under the distribution
//! name grammar:
//! - `nested` (default): `[PREFIX/]<source host>/<source path>`, the host
//!   lower-cased with `:` written as `-` (`127.0.0.1:5000` → `127.0.0.1-5000`).
//!   Distinct sources collide only through that spelling (`127.0.0.1:5000/x`
//!   and `127.0.0.1-5000/x`, or `Quay.IO/x` and `quay.io/x`); such pairs are
//!   refused, naming both.
//! - `flat`: `[PREFIX/]<last path component>`; two sources that would land on
//!   the same name are refused.
//! - an explicit mapping file: `{"source/repo": "target/repo", ...}` (JSON or
//!   YAML, read by [`load_file`]); every source must be listed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How source repositories map to target repositories.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Layout {
    #[default]
    Nested,
    Flat,
    Explicit(BTreeMap<String, String>),
}

/// A source reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub host: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// A mapping file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MappingFileError {
    #[error("cannot read mapping file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mapping file {} is not a JSON or YAML map of source to target repositories: {source}\nhint: write {{\"source/repo\": \"target/repo\", ...}}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
}

/// Read an explicit mapping file: a JSON or YAML map
/// `{"source/repo": "target/repo", ...}`. The one reader of mapping files,
/// for `install --mapping-file`, `sync --mapping-file` and sync's
/// `target.mappingFile`.
pub fn load_file(path: &Path) -> Result<BTreeMap<String, String>, MappingFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| MappingFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_yaml_ng::from_str(&text).map_err(|source| MappingFileError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("{reference:?} is not a normalized image reference (host/path[:tag][@digest])")]
    BadReference { reference: String },
    #[error("{layout}: {first} and {second} would both land on {target}\nhint: {hint}")]
    Collision {
        /// The layout that mapped them: `nested layout`, `flat layout` or `mapping file`.
        layout: &'static str,
        first: String,
        second: String,
        target: String,
        hint: &'static str,
    },
    #[error("mapping file has no entry for {source_repo}\nhint: add \"{source_repo}\": \"<target repo>\" to the mapping file")]
    Unmapped { source_repo: String },
    #[error("target repository {name:?} (for {source_repo}) is not valid under the distribution name grammar\nhint: {hint}")]
    InvalidName {
        name: String,
        source_repo: String,
        hint: String,
    },
}

impl SourceRef {
    /// Split a normalized reference such as `docker.io/atp/router:1.4.0` or
    /// `host:5000/a/b:t@sha256:...`.
    pub fn parse(reference: &str) -> Result<Self, MappingError> {
        let bad = || MappingError::BadReference {
            reference: reference.to_string(),
        };
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (reference, None),
        };
        let (host, path_tag) = rest.split_once('/').ok_or_else(bad)?;
        let (path, tag) = match path_tag.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, Some(t.to_string())),
            _ => (path_tag, None),
        };
        if host.is_empty() || path.is_empty() || (tag.is_none() && digest.is_none()) {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_string(),
            path: path.to_string(),
            tag,
            digest,
        })
    }

    /// `host/path`, the source repository.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.host, self.path)
    }
}

/// Map every source repository to its target repository name (without the
/// registry host). Errors on collisions and invalid names.
pub fn map_repositories<'a>(
    sources: impl IntoIterator<Item = &'a SourceRef>,
    layout: &Layout,
    prefix: Option<&str>,
) -> Result<BTreeMap<String, String>, MappingError> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let prefix = prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty());
    for s in sources {
        let source_repo = s.repository();
        if out.contains_key(&source_repo) {
            continue;
        }
        let mapped = match layout {
            Layout::Nested => format!("{}/{}", sanitize_host(&s.host), s.path),
            Layout::Flat => s.path.rsplit('/').next().unwrap_or(&s.path).to_string(),
            Layout::Explicit(map) => {
                map.get(&source_repo)
                    .cloned()
                    .ok_or_else(|| MappingError::Unmapped {
                        source_repo: source_repo.clone(),
                    })?
            }
        };
        let target = match prefix {
            Some(p) => format!("{p}/{mapped}"),
            None => mapped,
        };
        validate_name(&target).map_err(|hint| MappingError::InvalidName {
            name: target.clone(),
            source_repo: source_repo.clone(),
            hint,
        })?;
        if let Some(first) = taken.get(&target) {
            let (layout, hint) = match layout {
                Layout::Nested => (
                    "nested layout",
                    "the nested layout writes a host in lower case with ':' as '-'; give one of them its own target with a mapping file",
                ),
                Layout::Flat => (
                    "flat layout",
                    "use the default nested layout, or a mapping file",
                ),
                Layout::Explicit(_) => (
                    "mapping file",
                    "give each source its own target in the mapping file",
                ),
            };
            return Err(MappingError::Collision {
                layout,
                first: first.clone(),
                second: source_repo,
                target,
                hint,
            });
        }
        taken.insert(target.clone(), source_repo.clone());
        out.insert(source_repo, target);
    }
    Ok(out)
}

/// `Host:5000` → `host-5000`: a valid path component for any registry host.
pub fn sanitize_host(host: &str) -> String {
    host.to_ascii_lowercase().replace(':', "-")
}

/// The distribution name grammar: `/`-separated components of
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, at most 255 characters in all.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.len() > 255 {
        return Err(format!(
            "it is {} characters long; the limit is 255",
            name.len()
        ));
    }
    for comp in name.split('/') {
        if !crate::reference::component_ok(comp) {
            return Err(format!(
                "component {comp:?} must be lowercase letters and digits, separated by '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(list: &[&str]) -> Vec<SourceRef> {
        list.iter().map(|r| SourceRef::parse(r).unwrap()).collect()
    }

    #[test]
    fn parses_normalized_references() {
        let r = SourceRef::parse("127.0.0.1:5000/a/b:1.0@sha256:abc").unwrap();
        assert_eq!(
            (
                r.host.as_str(),
                r.path.as_str(),
                r.tag.as_deref(),
                r.digest.as_deref()
            ),
            ("127.0.0.1:5000", "a/b", Some("1.0"), Some("sha256:abc"))
        );
        let r = SourceRef::parse("docker.io/library/nginx:latest").unwrap();
        assert_eq!(r.repository(), "docker.io/library/nginx");
        assert!(SourceRef::parse("nginx").is_err());
    }

    #[test]
    fn nested_layout_keeps_host_and_path_and_never_collides() {
        let srcs = refs(&[
            "docker.io/atp/router:1.4.0",
            "127.0.0.1:5000/atp/router:1.4.0",
            "Quay.IO/x/y:1",
        ]);
        let m = map_repositories(&srcs, &Layout::Nested, Some("mirror/")).unwrap();
        assert_eq!(m["docker.io/atp/router"], "mirror/docker.io/atp/router");
        assert_eq!(
            m["127.0.0.1:5000/atp/router"],
            "mirror/127.0.0.1-5000/atp/router"
        );
        assert_eq!(m["Quay.IO/x/y"], "mirror/quay.io/x/y");
    }

    #[test]
    fn nested_layout_refuses_a_host_spelled_two_ways_naming_both() {
        // Regression: the nested layout writes ':' as '-', so these two land
        // on one repository; the error used to blame the flat layout and
        // advise the nested one.
        for pair in [
            ["127.0.0.1:5000/x:1", "127.0.0.1-5000/x:1"],
            ["Quay.IO/x/y:1", "quay.io/x/y:1"],
        ] {
            let err = map_repositories(&refs(&pair), &Layout::Nested, None).unwrap_err();
            let text = err.to_string();
            let first = pair[0].rsplit_once(':').unwrap().0;
            let second = pair[1].rsplit_once(':').unwrap().0;
            assert!(text.starts_with("nested layout: "), "{text}");
            assert!(
                text.contains(&format!("{first} and {second} would both land on ")),
                "{text}"
            );
            assert!(text.contains("mapping file"), "{text}");
            assert!(!text.contains("use the default nested layout"), "{text}");
        }
    }

    #[test]
    fn a_mapping_file_giving_two_sources_one_target_is_refused() {
        let srcs = refs(&["docker.io/a/x:1", "docker.io/b/x:1"]);
        let map = Layout::Explicit(
            [
                ("docker.io/a/x".into(), "site/x".into()),
                ("docker.io/b/x".into(), "site/x".into()),
            ]
            .into(),
        );
        let err = map_repositories(&srcs, &map, None).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "mapping file: docker.io/a/x and docker.io/b/x would both land on site/x"
            ),
            "{err}"
        );
    }

    #[test]
    fn flat_layout_refuses_collisions_naming_both_sources() {
        let srcs = refs(&["docker.io/atp/router:1", "ghcr.io/other/router:2"]);
        let err = map_repositories(&srcs, &Layout::Flat, None).unwrap_err();
        assert!(
            matches!(&err, MappingError::Collision { layout: "flat layout", first, second, target, .. }
                if first == "docker.io/atp/router" && second == "ghcr.io/other/router" && target == "router"),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("hint: use the default nested layout"));
        let ok = map_repositories(&srcs[..1], &Layout::Flat, Some("atp")).unwrap();
        assert_eq!(ok["docker.io/atp/router"], "atp/router");
    }

    #[test]
    fn explicit_layout_requires_every_source_and_valid_names() {
        let srcs = refs(&["docker.io/atp/router:1"]);
        let empty = Layout::Explicit(BTreeMap::new());
        assert!(matches!(
            map_repositories(&srcs, &empty, None),
            Err(MappingError::Unmapped { .. })
        ));
        let bad = Layout::Explicit([("docker.io/atp/router".into(), "Bad/Name".into())].into());
        assert!(matches!(
            map_repositories(&srcs, &bad, None),
            Err(MappingError::InvalidName { .. })
        ));
    }

    #[test]
    fn name_grammar() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "127.0.0.1-5000/x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a/", "-a", "a..b", "a___b", "a:b", "a._b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_and_yaml_mapping_files_read_the_same_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("m.json");
        let yaml = dir.path().join("m.yaml");
        std::fs::write(&json, r#"{"docker.io/library/nginx": "web/nginx"}"#).unwrap();
        std::fs::write(&yaml, "docker.io/library/nginx: web/nginx\n").unwrap();
        let m = load_file(&json).unwrap();
        assert_eq!(m, load_file(&yaml).unwrap());
        assert_eq!(m["docker.io/library/nginx"], "web/nginx");
        let list = dir.path().join("list.yaml");
        std::fs::write(&list, "- a\n- b\n").unwrap();
        for bad in [dir.path().join("gone.json"), list] {
            let e = load_file(&bad).unwrap_err().to_string();
            assert!(e.contains(&bad.display().to_string()), "{e}");
        }
    }
}
