//! Why an `install` (or the plan phase `simulate` shares) stopped: one enum,
//! each variant saying what happened and, where it helps, what to do.

use std::path::PathBuf;

use atp_registry::copy::CopyError;
use atp_registry::mapping;

use crate::gate::Offence;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Stopped before the first request (the `preflight` module).
    #[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Preflight {
        problems: Vec<crate::preflight::PreflightError>,
    },
    /// SIGINT: the run stopped where it was; what the registry committed stays.
    #[error("interrupted; re-run the same command to finish: installs are resumable")]
    Interrupted,
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error("bundle {path} failed verification; nothing was pushed:\n{}\nhint: do not install this bundle; get a fresh copy from release engineering", .findings.join("\n"))]
    Rejected {
        path: PathBuf,
        findings: Vec<String>,
    },
    #[error("refusing a rollback on channel {channel:?}: sequence {offered} is not newer than the installed {installed}\nhint: install a newer bundle, or pass --allow-downgrade if going back is intended")]
    Rollback {
        channel: String,
        installed: u64,
        offered: u64,
    },
    #[error(transparent)]
    Mapping(#[from] mapping::MappingError),
    #[error(transparent)]
    Registry(#[from] atp_registry::Error),
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error(transparent)]
    Read(#[from] crate::verified::ReadError),
    #[error("delta bundle relies on {} blob(s) the registry {registry} does not have; nothing was pushed:\n{}\nhint: install the base bundle first ({bases})", .missing.len(), .missing.join("\n"))]
    DeltaBaseMissing {
        registry: String,
        missing: Vec<String>,
        bases: String,
    },
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error(transparent)]
    Kustomize(#[from] atp_bundle::kustomize::RenderError),
    #[error("air-gap gate: {} image field(s) in the rendered output would reach outside the site registry; nothing was applied:\n{}\nhint: every image the manifests use must be in the bundle", .offences.len(), .offences.iter().map(|o| format!("  {o}")).collect::<Vec<_>>().join("\n"))]
    Gate { offences: Vec<Offence> },
    #[error(transparent)]
    Apply(#[from] crate::apply::ApplyError),
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
    #[error(transparent)]
    Mirrors(#[from] crate::mirrors::MirrorsError),
    /// `install --mirrors-to`: the install itself is complete and recorded.
    #[error(
        "the bundle is installed (receipt written), but the node mirror configuration was not: {0}"
    )]
    MirrorsAfterInstall(crate::mirrors::MirrorsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
