//! `atp-installer simulate` (also `install --dry-run`): every step of
//! `install` except the writes, and a plan of what the real run would do.
//!
//! The plan phase is install's own (`install::verify`, then
//! `prepare::prepare`: rollback verdict, mapping, copy plan), so simulate and
//! install cannot drift apart. A simulation always verifies the default way,
//! even with `--single-pass`, which would push while verifying. Then:
//! - registry: TCP reachability, then push permission per target repository,
//!   proven by opening a blob upload session and cancelling it at once
//!   (`Client::probe_push`), which also proves TLS and credentials; then a
//!   HEAD for every blob and manifest: the copy engine's own decision step
//!   (`atp_registry::copy::decide`), so the plan is what install does;
//!   the carried referrers are in that plan (cosign's by digest), each
//!   cosign tag is planned as install merges it
//!   (`atp_registry::referrers::plan_cosign_tag`), and each subject's fallback tag
//!   index is read and merged as install would, without the PUT
//!   (`atp_registry::referrers::plan_fallback_index`);
//! - host: kubectl and its kustomize version; free space and inodes where
//!   the state and render dirs live, against what the run writes;
//! - overlay: rendered into a temp dir with the real mapping, then the
//!   air-gap gate, counting an image as present if the registry has it or
//!   the bundle carries it;
//! - cluster: `kubectl apply --server-side --dry-run=server`, only with
//!   `--apply --kubeconfig` and a reachable cluster; otherwise it says why not.
//!
//! Must never change anything: no blob data, manifest or tag is sent; the
//! state dir is read, never created or locked; the render goes to a temp dir
//! that is removed. The one request that is not a read is the cancelled
//! upload session above.
//!
//! Files: this one (the report types and the order of checks), `registry`
//! (reachability, push permission, the copy decisions), `overlay` (render,
//! gate, cluster dry run), `host` (tools, free space), `text` (the plan as
//! text).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atp_bundle::progress::Progress;
use atp_bundle::Digest;
use atp_registry::copy;
pub use atp_registry::copy::{Action, BlobStep, ManifestStep};
use atp_registry::{Client, Repository};
use serde::Serialize;

use crate::error::InstallError;
use crate::gate::{self, Presence};
use crate::options::InstallOptions;
use crate::prepare::{self, Prepared};
use crate::state::{self, PushedImage, SequenceCheck};

mod host;
mod overlay;
mod registry;
mod text;

use host::{host_tools, space_checks};
use overlay::overlay_checks;
use registry::{plan_blobs, registry_checks};

/// How push permission is checked, for the plan and the docs.
pub const PUSH_CHECK: &str = "opened a blob upload session (POST /v2/<repo>/blobs/uploads/) per target repository and cancelled it at once (DELETE)";

pub use crate::preflight::Finding;

/// Free space against what the run writes, on the filesystem holding `path`.
#[derive(Debug, Clone, Serialize)]
pub struct SpaceCheck {
    pub path: PathBuf,
    /// The existing directory that was measured (`path` or its nearest ancestor).
    pub measured: PathBuf,
    pub free_bytes: u64,
    pub needed_bytes: u64,
    pub free_inodes: Option<u64>,
    pub needed_inodes: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct HostReport {
    pub kubectl: Option<String>,
    pub kustomize: Option<String>,
    pub state_dir: Option<SpaceCheck>,
    /// Only when `--render-to` puts the render outside the state dir.
    pub render_dir: Option<SpaceCheck>,
    /// Only with `--model-cache-dir`: every file of the bundle's file sets.
    pub model_cache_dir: Option<SpaceCheck>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ClusterReport {
    pub checked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub output: String,
}

/// The plan: what a real install would do, and everything that stops it.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Simulation {
    /// True only if a real install would succeed as far as can be known.
    pub ok: bool,
    pub bundle: PathBuf,
    pub index_digest: Option<Digest>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub channel: Option<String>,
    pub sequence: Option<u64>,
    /// The rollback verdict against the state dir.
    pub rollback: Option<String>,
    pub registry: String,
    pub push_check: String,
    pub images: Vec<PushedImage>,
    pub blobs: Vec<BlobStep>,
    pub manifests: Vec<ManifestStep>,
    pub uploaded: u64,
    pub mounted: u64,
    pub skipped: u64,
    pub bytes_uploaded: u64,
    pub bytes_mounted: u64,
    pub bytes_skipped: u64,
    pub manifests_pushed: u64,
    pub manifests_skipped: u64,
    /// The carried referrers (their blobs and manifests are in `blobs` and
    /// `manifests`), and what each subject's fallback tag index would get.
    pub referrers: crate::prepare::ReferrersOutcome,
    /// Objects the rendered overlay holds, i.e. what `--apply` would apply.
    pub objects: Vec<String>,
    pub host: HostReport,
    pub cluster: ClusterReport,
    /// Things to know that do not stop the install.
    pub notes: Vec<String>,
    pub findings: Vec<Finding>,
}

/// Split an error's text into the problem and its `hint:`.
fn finding(check: &str, err: &dyn std::fmt::Display, default_fix: &str) -> Finding {
    let text = err.to_string();
    let (problem, fix) = match text.split_once("\nhint: ") {
        Some((p, h)) => (p.to_string(), h.trim().to_string()),
        None => (text, default_fix.to_string()),
    };
    Finding {
        check: check.into(),
        problem,
        fix,
    }
}

fn install_finding(e: &InstallError) -> Finding {
    let check = match e {
        InstallError::Rejected { .. } | InstallError::Verify(_) | InstallError::Read(_) => "bundle",
        InstallError::State(_) => "state dir",
        InstallError::Rollback { .. } => "rollback",
        InstallError::Mapping(_) => "mapping",
        InstallError::DeltaBaseMissing { .. } => "delta",
        InstallError::Render(_) | InstallError::Kustomize(_) => "overlay",
        InstallError::Gate { .. } => "air-gap gate",
        _ => "install",
    };
    finding(
        check,
        e,
        "see the message above; run `atp-installer verify` for the bundle alone",
    )
}

/// Run the simulation. Problems are findings in the result, not errors.
pub async fn simulate(opts: &InstallOptions, progress: Arc<dyn Progress>) -> Simulation {
    let mut sim = Simulation {
        bundle: opts.bundle.clone(),
        registry: opts.site.registry.clone(),
        push_check: PUSH_CHECK.into(),
        ..Default::default()
    };
    host_tools(&mut sim);
    sim.findings
        .extend(crate::preflight::simulate_findings(opts));

    // Bundle: the very plan phase of `install`. Rollbacks are reported, not
    // fatal, so the rest of the plan is still shown.
    let lookup = |info: &atp_bundle::BundleInfo, index: &Digest| {
        state::peek_sequence(
            &opts.state_dir,
            &info.channel,
            &info.key_fingerprint,
            info.sequence,
            &index.to_string(),
        )
    };
    // A simulation verifies the bundle the default way whatever the flags
    // say: `--single-pass` pushes as it verifies, and a simulation never
    // writes. The plan is the same in both modes.
    let verified = crate::prepare::verify(opts, progress).await;
    let prepared =
        match verified.and_then(|bundle| prepare::prepare(bundle, &opts.site, &lookup, true)) {
            Ok(p) => p,
            Err(e) => {
                sim.findings.push(install_finding(&e));
                sim.ok = false;
                return sim;
            }
        };
    let info = &prepared.info;
    sim.index_digest = Some(prepared.index_digest.clone());
    sim.name = Some(info.name.clone());
    sim.version = Some(info.version.clone());
    sim.channel = Some(info.channel.clone());
    sim.sequence = Some(info.sequence);
    sim.images = prepared.pushed_images();
    sim.referrers.pushed = prepared.pushed_referrers();
    sim.rollback = Some(match prepared.sequence {
        SequenceCheck::First => format!("first install on channel {:?}", info.channel),
        SequenceCheck::Newer { installed } => {
            format!(
                "sequence {} is newer than the installed {installed}",
                info.sequence
            )
        }
        SequenceCheck::Same => {
            "this very bundle is already installed; a re-run re-checks it".into()
        }
        SequenceCheck::Rollback { installed, offered } => {
            if opts.allow_downgrade {
                format!("downgrade from {installed} to {offered}, allowed by --allow-downgrade")
            } else {
                sim.findings.push(install_finding(&InstallError::Rollback {
                    channel: info.channel.clone(),
                    installed,
                    offered,
                }));
                format!("refused: sequence {offered} is not newer than the installed {installed}")
            }
        }
    });

    // Registry.
    let client = match registry_checks(opts, &prepared, &mut sim).await {
        Some(c) => {
            plan_blobs(&c, opts, &prepared, &mut sim).await;
            Some(c)
        }
        None => None,
    };

    // Overlay, gate and cluster, in a temp dir that is removed afterwards.
    let mut render_bytes = (0u64, 0u64);
    match tempfile::Builder::new().prefix("atp-simulate-").tempdir() {
        Ok(tmp) => {
            render_bytes =
                overlay_checks(opts, &prepared, client.as_ref(), tmp.path(), &mut sim).await;
        }
        Err(e) => sim.findings.push(finding(
            "host",
            &format!("cannot make a temp dir to render into: {e}"),
            "set TMPDIR to a writable directory",
        )),
    }

    space_checks(opts, &prepared, render_bytes, &mut sim);
    sim.ok = sim.findings.is_empty();
    sim
}

#[cfg(test)]
mod tests {
    use super::host::space;
    use super::registry::host_port;
    use super::*;

    #[test]
    fn registry_host_and_port_by_scheme() {
        assert_eq!(
            host_port("127.0.0.1:5000", true),
            ("127.0.0.1".into(), 5000)
        );
        assert_eq!(host_port("reg.site", false), ("reg.site".into(), 443));
        assert_eq!(host_port("reg.site", true), ("reg.site".into(), 80));
        assert_eq!(host_port("[::1]:5001", false), ("::1".into(), 5001));
    }

    #[test]
    fn findings_take_the_hint_as_the_fix() {
        let f = finding("x", &"it broke\nhint: do this", "default");
        assert_eq!(
            (f.problem.as_str(), f.fix.as_str()),
            ("it broke", "do this")
        );
        let f = finding("x", &"it broke", "default");
        assert_eq!(f.fix, "default");
    }

    #[test]
    fn space_is_measured_on_the_nearest_existing_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let mut sim = Simulation::default();
        let c = space(&dir.path().join("a/b/c"), 1, 1, "state dir", &mut sim).unwrap();
        assert_eq!(c.measured, dir.path());
        assert!(sim.findings.is_empty(), "{:?}", sim.findings);
        assert!(!dir.path().join("a").exists());
        space(dir.path(), u64::MAX, 1, "state dir", &mut sim);
        assert_eq!(sim.findings.len(), 1);
        assert!(sim.findings[0].fix.contains("--state-dir"));
    }
}
