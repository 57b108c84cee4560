//! Where images land in the target registry, as flags: `--repo-prefix`,
//! `--layout` and `--mapping-file` (install, simulate and sync), and the
//! layout they ask for. Only turns flags into an
//! [`atp_registry::mapping::Layout`]; the mapping and the mapping-file
//! reader live there.

use std::path::PathBuf;

use anyhow::Result;
use atp_registry::mapping::{self, Layout};
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
            (Some(path), _) => Ok(Some(Layout::Explicit(mapping::load_file(path)?))),
            (None, l) => Ok(l.map(Layout::from)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_file_wins_and_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let yaml = tmp.path().join("m.yaml");
        std::fs::write(&yaml, "docker.io/library/nginx: web/nginx\n").unwrap();
        let args = MappingArgs {
            repo_prefix: None,
            layout: Some(LayoutArg::Flat),
            mapping_file: Some(yaml),
        };
        assert!(matches!(args.layout().unwrap(), Some(Layout::Explicit(m)) if m.len() == 1));
    }
}
