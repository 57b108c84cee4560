//! The `org.opencontainers.image.ref.name` values the bundle gives its own
//! artifacts: the bundle artifact `atp-offline/bundle:<version>` and each file
//! set `atp-offline/files/<name>:<version>` (spec 3.2). Writers build them and
//! readers parse them here, so the two sides cannot drift.
//!
//! Only spells and splits names; it never decides whether a set name is safe
//! as a folder (the installer does).

use std::fmt;

/// Prefix of a file set's reference name.
pub const FILE_SET_PREFIX: &str = "atp-offline/files/";
/// Prefix of the bundle artifact's reference name.
pub const BUNDLE_PREFIX: &str = "atp-offline/bundle:";

/// The reference name of the bundle artifact for a release version.
pub fn bundle_ref_name(version: &str) -> String {
    format!("{BUNDLE_PREFIX}{version}")
}

/// A file set's reference name: `atp-offline/files/<name>:<version>`.
/// `Display` builds it, [`FileSetRef::parse`] splits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSetRef<'a> {
    pub name: &'a str,
    pub version: &'a str,
}

impl<'a> FileSetRef<'a> {
    /// Split a reference name; `None` unless it is
    /// `atp-offline/files/<name>:<version>` with both parts non-empty. The
    /// name ends at the first `:` (a set name never holds one; a version may).
    pub fn parse(reference: &'a str) -> Option<Self> {
        let (name, version) = reference.strip_prefix(FILE_SET_PREFIX)?.split_once(':')?;
        (!name.is_empty() && !version.is_empty()).then_some(Self { name, version })
    }
}

impl fmt::Display for FileSetRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FILE_SET_PREFIX}{}:{}", self.name, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_set_ref_round_trips_and_refuses_other_names() {
        let r = FileSetRef {
            name: "models",
            version: "1.4.0",
        };
        let s = r.to_string();
        assert_eq!(s, "atp-offline/files/models:1.4.0");
        assert_eq!(FileSetRef::parse(&s), Some(r));
        for bad in [
            "atp-offline/bundle:1.4.0",
            "atp-offline/files/models",
            "atp-offline/files/:1.4.0",
            "atp-offline/files/models:",
            "docker.io/library/nginx:latest",
        ] {
            assert_eq!(FileSetRef::parse(bad), None, "{bad}");
        }
        assert_eq!(bundle_ref_name("2.0.0"), "atp-offline/bundle:2.0.0");
    }
}
