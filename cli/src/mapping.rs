//! Where images land in the target registry, as flags: `--repo-prefix`,
//! `--layout` and `--mapping-file` (install, simulate and sync), and the
//! one loader of mapping files for the command line. Only turns flags into
//! an [`atp_registry::mapping::Layout`]; the mapping itself lives there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use atp_registry::mapping::Layout;
use clap::{Args, ValueEnum};

/// `--layout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// REGISTRY/[PREFIX/]<source host>/<source path> (never collides)
    Nested,
    /// REGISTRY/[PREFIX/]<last path component> (collisions are refused)
    Flat,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Layout {
        match l {
            LayoutArg::Nested => Layout::Nested,
            LayoutArg::Flat => Layout::Flat,
        }
    }
}

/// How source repositories are named in the target registry.
#[derive(Args, Debug, Clone)]
pub struct MappingArgs {
    /// Put every repository under this path in the target registry.
    #[arg(long, value_name = "PREFIX")]
    pub repo_prefix: Option<String>,
    /// Repository layout in the target registry [default: nested].
    #[arg(long, value_enum, conflicts_with = "mapping_file")]
    pub layout: Option<LayoutArg>,
    /// Explicit mapping, JSON or YAML: {"source/repo": "target/repo"}.
    #[arg(long, value_name = "FILE")]
    pub mapping_file: Option<PathBuf>,
}

impl MappingArgs {
    /// The layout the flags ask for (`None`: neither `--layout` nor
    /// `--mapping-file`), the mapping file read and parsed.
    pub fn layout(&self) -> Result<Option<Layout>> {
        match (&self.mapping_file, self.layout) {
            (Some(path), _) => Ok(Some(Layout::Explicit(load(path)?))),
            (None, l) => Ok(l.map(Layout::from)),
        }
    }
}

/// Read a mapping file: a JSON or YAML map `{"source/repo": "target/repo"}`.
pub fn load(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading mapping file {}", path.display()))?;
    serde_yaml_ng::from_str(&text).with_context(|| {
        format!(
            "mapping file {} is not a JSON or YAML map of source to target repositories",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_mapping_files_load_the_same() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let json = dir.join("m.json");
        let yaml = dir.join("m.yaml");
        std::fs::write(&json, r#"{"docker.io/library/nginx": "web/nginx"}"#).unwrap();
        std::fs::write(&yaml, "docker.io/library/nginx: web/nginx\n").unwrap();
        assert_eq!(load(&json).unwrap(), load(&yaml).unwrap());
        let args = MappingArgs {
            repo_prefix: None,
            layout: None,
            mapping_file: Some(yaml),
        };
        assert!(matches!(args.layout().unwrap(), Some(Layout::Explicit(m)) if m.len() == 1));
    }
}
