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
    Preflight { problems: Vec<PreflightError> },
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
    Mirrors(#[from] MirrorsError),
    /// `install --mirrors-to`: the install itself is complete and recorded.
    #[error(
        "the bundle is installed (receipt written), but the node mirror configuration was not: {0}"
    )]
    MirrorsAfterInstall(MirrorsError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why no mirror configuration was written (`mirrors`, `install --mirrors-to`).
#[derive(Debug, thiserror::Error)]
pub enum MirrorsError {
    #[error("upstream registry {host:?} (of {reference}) cannot be a folder name under certs.d: {why}; nothing was written\nhint: mirror configuration needs a lower-case host[:port] name; deploy this bundle with the rewritten references (install's rendered output) instead")]
    BadUpstream {
        host: String,
        reference: String,
        why: &'static str,
    },
    #[error("site registry {registry:?} is not a usable host[:port] name: {why}")]
    BadSite { registry: String, why: &'static str },
    #[error("{reference} comes from the site registry {registry} itself; a mirror for it would redirect the site registry's own (rewritten) references; nothing was written\nhint: deploy this bundle with the rewritten references (install's rendered output)")]
    SiteIsUpstream { registry: String, reference: String },
    #[error("{} image(s) land where a per-registry mirror cannot point (a mirror only adds one path prefix per upstream registry); nothing was written:\n{}\nhint: use the nested layout (the default, with or without --repo-prefix) or a mapping file that keeps each source path under one prefix per upstream registry; or deploy with the rewritten references (install's rendered output)", .items.len(), .items.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
    Inexpressible { items: Vec<String> },
    #[error("the mirrors of {first} ({first_location}) and {second} ({second_location}) overlap: {second}'s images would also be found as {first}/{suffix}/…; nothing was written\nhint: give each upstream registry its own prefix (the nested layout does)")]
    Overlap {
        first: String,
        first_location: String,
        second: String,
        second_location: String,
        suffix: String,
    },
    #[error("--output {output} is inside the bundle's folder {bundle_dir}; nothing was written\nhint: write the mirror configuration to local disk, not to the bundle's media")]
    OutputInBundle {
        output: PathBuf,
        bundle_dir: PathBuf,
    },
    #[error("--output {output} exists and is not an earlier mirror configuration; nothing was written\nhint: name a new folder (or an empty one)")]
    OutputTaken { output: PathBuf },
    #[error("no install into {registry} is recorded in {state_dir}; nothing was written\nhint: give the bundle (FILE.tar --key PREFIX.pub) instead, or the --state-dir and --registry the install used")]
    NoReceipt {
        state_dir: PathBuf,
        registry: String,
    },
    #[error(
        "receipt {receipt}: image target {target:?} is not in the registry {registry} it records"
    )]
    ForeignTarget {
        receipt: String,
        target: String,
        registry: String,
    },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why a run was stopped before its first request.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("--registry {given:?}: {reason}; nothing was sent\nhint: {hint}")]
    Registry {
        given: String,
        reason: String,
        hint: &'static str,
    },
    #[error("{flag} {}: {reason}; nothing was sent to the registry\nhint: {hint}", .path.display())]
    Output {
        flag: &'static str,
        path: PathBuf,
        reason: String,
        hint: String,
    },
    #[error(transparent)]
    Mirrors(MirrorsError),
    #[error("{tool} not found ({looked}); it is needed to {needed}; nothing was sent to the registry\nhint: install kubectl 1.21 or newer (kustomize v5 is built in) on PATH, or point ATP_KUBECTL at one")]
    Tool {
        tool: String,
        looked: String,
        needed: String,
    },
}
