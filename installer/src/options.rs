//! What `install` and `simulate` are asked to do: the bundle, the key, the
//! site registry ([`Site`]), and the optional steps. Built by the CLI; each
//! step takes the narrow part it needs.

use std::path::PathBuf;

use crate::apply::ApplyOptions;
use crate::site::Site;

/// Everything `install` (and `simulate`) needs.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub bundle: PathBuf,
    /// More folders to look for volumes in (`--volumes-from`).
    pub volumes_from: Vec<PathBuf>,
    pub key: PathBuf,
    pub site: Site,
    pub render_to: Option<PathBuf>,
    pub apply: Option<ApplyOptions>,
    pub state_dir: PathBuf,
    pub metrics_file: Option<PathBuf>,
    pub allow_downgrade: bool,
    /// Verify and push in one read of the media (the `single_pass` module).
    pub single_pass: bool,
    pub files: FilesOptions,
    /// Also write node mirror configuration here (the `mirrors` module).
    pub mirrors_to: Option<PathBuf>,
}

/// The model-file steps (the `files` module).
#[derive(Debug, Clone, Default)]
pub struct FilesOptions {
    /// Write the bundle's file sets under this folder (`DIR/<set>/<path>`).
    pub model_cache_dir: Option<PathBuf>,
    /// Push the file-set artifacts to the registry, mapped like images.
    pub to_registry: bool,
    /// With `model_cache_dir`: remove files the bundle's sets no longer list.
    pub prune: bool,
}
