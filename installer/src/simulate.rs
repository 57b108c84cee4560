//! `atp-installer simulate` (also `install --dry-run`): every step of
//! `install` except the writes, and a plan of what the real run would do.
//!
//! The plan phase is `install::prepare` itself (verify, rollback verdict,
//! mapping, push plans), so simulate and install cannot drift apart. Then:
//! - registry: TCP reachability, then push permission per target repository,
//!   proven by opening a blob upload session and cancelling it at once
//!   (`Client::probe_push`), which also proves TLS and credentials; then a
//!   HEAD for every blob and manifest, predicting skip / mount / upload the
//!   way `push::push_all` decides them;
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

/// How push permission is checked, for the plan and the docs.
pub const PUSH_CHECK: &str = "opened a blob upload session (POST /v2/<repo>/blobs/uploads/) per target repository and cancelled it at once (DELETE)";

/// Something that would make the real install fail, and what to do about it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// Which check: `bundle`, `rollback`, `registry`, `tls`, `credentials`,
    /// `push`, `delta`, `host`, `space`, `overlay`, `air-gap gate`, `cluster`.
    pub check: String,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}\n  fix: {}", self.check, self.problem, self.fix)
    }
}

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
    let verified = crate::install::verify(opts, progress).await;
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

/// kubectl and its kustomize version (rendering needs both).
fn host_tools(sim: &mut Simulation) {
    let bin = std::env::var_os("ATP_KUBECTL").unwrap_or_else(|| "kubectl".into());
    match std::process::Command::new(&bin)
        .args(["version", "--client", "-o", "json"])
        .output()
    {
        Ok(out) if out.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            sim.host.kubectl = v["clientVersion"]["gitVersion"]
                .as_str()
                .map(str::to_string)
                .or(Some("unknown version".into()));
            sim.host.kustomize = v["kustomizeVersion"].as_str().map(str::to_string);
            if sim.host.kustomize.is_none() {
                sim.findings.push(Finding {
                    check: "host".into(),
                    problem: format!("{} reports no built-in kustomize", bin.to_string_lossy()),
                    fix: "install kubectl 1.21 or newer (kustomize v5 is built in)".into(),
                });
            }
        }
        Ok(out) => sim.findings.push(Finding {
            check: "host".into(),
            problem: format!(
                "`{} version --client` failed: {}",
                bin.to_string_lossy(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            fix: "install a working kubectl on PATH (or point ATP_KUBECTL at one)".into(),
        }),
        Err(e) => sim.findings.push(Finding {
            check: "host".into(),
            problem: format!("cannot run {}: {e}", bin.to_string_lossy()),
            fix: "install kubectl (kustomize v5 is built in) and put it on PATH".into(),
        }),
    }
}

/// `host[:port]` → (host, port), default port by scheme.
fn host_port(registry: &str, plain_http: bool) -> (String, u16) {
    let default = if plain_http { 80 } else { 443 };
    if let Some(rest) = registry.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            let port = p.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h.to_string(), port.unwrap_or(default));
        }
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_string(), p.parse().unwrap_or(default)),
        _ => (registry.to_string(), default),
    }
}

/// Reachability, then TLS, credentials and push permission per target
/// repository. `None` when the registry cannot be used at all.
async fn registry_checks(
    opts: &InstallOptions,
    prepared: &Prepared,
    sim: &mut Simulation,
) -> Option<Client> {
    let (host, port) = host_port(&opts.site.registry, opts.site.plain_http);
    let connect = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await;
    let reason = match connect {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 10 s".into()),
    };
    if let Some(reason) = reason {
        sim.findings.push(Finding {
            check: "registry".into(),
            problem: format!("the registry {} is not reachable ({host} port {port}): {reason}", opts.site.registry),
            fix: "check --registry (host and port), that the registry is running, and that this machine may connect to it".into(),
        });
        sim.notes
            .push("registry checks skipped: the registry is not reachable".into());
        return None;
    }
    let client = match opts.site.client() {
        Ok(c) => c,
        Err(e) => {
            sim.findings.push(finding(
                "tls",
                &e,
                "check --registry-ca points at a readable PEM file",
            ));
            return None;
        }
    };
    let mut repos: Vec<&Repository> = Vec::new();
    for p in &prepared.plan.images {
        if !repos.contains(&&p.target) {
            repos.push(&p.target);
        }
    }
    for repo in repos {
        match client.probe_push(repo).await {
            Ok(p) if p.allowed => {
                if !p.cancelled {
                    sim.notes.push(format!(
                        "the probe upload session in {repo} could not be cancelled; the registry drops stale sessions itself"
                    ));
                }
            }
            Ok(_) => sim.findings.push(Finding {
                check: "push".into(),
                problem: format!("the registry refuses pushes to {repo} (HTTP 403)"),
                fix: "grant these credentials push rights on the repository, or pick another --repo-prefix".into(),
            }),
            Err(e) => {
                sim.findings.push(registry_finding(&e, opts));
                sim.notes.push("registry checks stopped at the first failure".into());
                return None;
            }
        }
    }
    Some(client)
}

fn registry_finding(e: &atp_registry::Error, opts: &InstallOptions) -> Finding {
    use atp_registry::Error as E;
    let inner = match e {
        E::RetriesExhausted { last, .. } => last.as_ref(),
        other => other,
    };
    match inner {
        E::Tls { .. } => finding(
            "tls",
            e,
            "",
        )
        .with_fix(if opts.site.plain_http {
            "the registry speaks TLS: drop --plain-http and pass its CA with --registry-ca".into()
        } else {
            format!(
                "pass the CA that signed the certificate of {} with --registry-ca (or --plain-http if it speaks plain HTTP)",
                opts.site.registry
            )
        }),
        E::Unauthorized { .. } => finding("credentials", e, "").with_fix(format!(
            "check --username and the password given on standard input for {}",
            opts.site.registry
        )),
        E::Transport { .. } => finding("registry", e, "check that the registry is up and reachable"),
        _ => finding("registry", e, "check the registry's health and settings"),
    }
}

impl Finding {
    fn with_fix(mut self, fix: String) -> Self {
        self.fix = fix;
        self
    }
}

/// Predict, for every blob and manifest, what the copy engine will do:
/// its own decision step, HEAD requests only.
async fn plan_blobs(
    client: &Client,
    opts: &InstallOptions,
    prepared: &Prepared,
    sim: &mut Simulation,
) {
    if let Err(e) = crate::delta::check(client, &opts.state_dir, prepared, false).await {
        sim.findings.push(install_finding(&e));
    }
    let decided = match copy::decide(client, &prepared.plan, opts.site.concurrency).await {
        Ok(d) => d,
        Err(copy::CopyError::Registry { cause, .. }) => {
            sim.findings.push(registry_finding(&cause, opts));
            return;
        }
        Err(e) => {
            sim.findings.push(install_finding(&e.into()));
            return;
        }
    };
    let stats = decided.stats();
    sim.uploaded = stats.uploaded;
    sim.mounted = stats.mounted;
    sim.skipped = stats.skipped;
    sim.bytes_uploaded = stats.bytes_uploaded;
    sim.bytes_mounted = stats.bytes_mounted;
    sim.bytes_skipped = stats.bytes_skipped;
    sim.manifests_pushed = stats.manifests_pushed;
    sim.manifests_skipped = stats.manifests_skipped;
    sim.blobs = decided.blobs;
    sim.manifests = decided.manifests;
}

/// Render, gate, and (when asked) the cluster dry run. Returns the bytes
/// and files the render writes, measured.
async fn overlay_checks(
    opts: &InstallOptions,
    prepared: &Prepared,
    client: Option<&Client>,
    dir: &Path,
    sim: &mut Simulation,
) -> (u64, u64) {
    let rendered = match prepared.render_overlay(&opts.site, dir) {
        Ok(Some(r)) => r,
        Ok(None) => {
            sim.notes
                .push("the bundle ships no manifests: nothing to render or apply".into());
            sim.cluster.skipped = Some("the bundle ships no manifests".into());
            return (0, 0);
        }
        Err(e) => {
            sim.findings.push(install_finding(&e));
            return (0, 0);
        }
    };
    sim.objects = rendered.objects.iter().map(ToString::to_string).collect();

    // Present: carried by the bundle (it will be pushed) or already in the registry.
    let mut known: HashSet<(String, Digest)> = HashSet::new();
    for p in &prepared.plan.images {
        for (d, _) in &p.manifests {
            known.insert((p.target.name().to_string(), d.digest.clone()));
        }
    }
    if let Some(client) = client {
        let objects = atp_bundle::kustomize::parse_objects(&rendered.yaml, dir).unwrap_or_default();
        let prefix = format!("{}/", opts.site.registry);
        for u in atp_bundle::kustomize::image_uses(&objects, &rendered.image_fields) {
            let Some((repo, digest)) = u
                .image
                .strip_prefix(&prefix)
                .and_then(|r| r.split_once('@'))
            else {
                continue;
            };
            let repo = repo.split(':').next().unwrap_or(repo).to_string();
            let (Ok(digest), Ok(r)) = (digest.parse::<Digest>(), opts.site.repository(&repo))
            else {
                continue;
            };
            if known.contains(&(repo.clone(), digest.clone())) {
                continue;
            }
            if let Ok(Some(_)) = client.manifest_exists(&r, &digest.to_string()).await {
                known.insert((repo, digest));
            }
        }
    }
    match gate::check(&rendered.yaml, &opts.site.registry, &rendered.image_fields, Presence::Known(&known)).await {
        Ok(offences) if !offences.is_empty() => sim.findings.push(Finding {
            check: "air-gap gate".into(),
            problem: format!(
                "{} image field(s) in the rendered output would reach outside the site registry:\n{}",
                offences.len(),
                offences.iter().map(|o| format!("    {o}")).collect::<Vec<_>>().join("\n")
            ),
            fix: "every image the manifests use must be in the bundle: ask release engineering to add the images named above (atp-bundler create --simulate catches this before shipping)".into(),
        }),
        Ok(_) => {}
        Err(e) => sim.findings.push(finding("overlay", &e, "check the rendered output")),
    }

    cluster_check(opts, &rendered.path, sim);
    measure(dir)
}

/// Server-side dry run, when the install would apply and a kubeconfig is given.
fn cluster_check(opts: &InstallOptions, rendered: &Path, sim: &mut Simulation) {
    let Some(a) = &opts.apply else {
        sim.cluster.skipped = Some(
            "the install would not apply (no --apply), so the cluster was not contacted".into(),
        );
        return;
    };
    let Some(kubeconfig) = &a.kubeconfig else {
        sim.cluster.skipped = Some(
            "no --kubeconfig given; pass one to check the cluster with a server-side dry run"
                .into(),
        );
        return;
    };
    let bin = std::env::var_os("ATP_KUBECTL").unwrap_or_else(|| "kubectl".into());
    let kubectl = || {
        let mut c = std::process::Command::new(&bin);
        c.arg("--kubeconfig").arg(kubeconfig);
        if let Some(ctx) = &a.context {
            c.arg("--context").arg(ctx);
        }
        c
    };
    let reach = kubectl()
        .args(["version", "-o", "json", "--request-timeout=10s"])
        .output();
    match reach {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            sim.cluster.skipped = Some(format!(
                "the cluster in {} is not reachable: {}",
                kubeconfig.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return;
        }
        Err(e) => {
            sim.cluster.skipped = Some(format!("cannot run kubectl: {e}"));
            return;
        }
    }
    sim.cluster.checked = true;
    let out = kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager=atp-installer",
            "--dry-run=server",
            "-f",
        ])
        .arg(rendered)
        .output();
    match out {
        Ok(o) => {
            sim.cluster.output = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
            .trim()
            .to_string();
            if !o.status.success() {
                sim.findings.push(Finding {
                    check: "cluster".into(),
                    problem: format!("the server-side dry run failed:\n{}", sim.cluster.output),
                    fix: "fix what the API server names above (permissions, missing CRDs or namespaces, admission policies)".into(),
                });
            }
        }
        Err(e) => sim.findings.push(Finding {
            check: "cluster".into(),
            problem: format!("cannot run kubectl: {e}"),
            fix: "install kubectl and put it on PATH".into(),
        }),
    }
}

/// Bytes (in 4 KiB blocks) and files under `dir`.
fn measure(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0, 0);
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        files += 1;
        if e.file_type().is_file() {
            bytes += e
                .metadata()
                .map(|m| m.len().div_ceil(4096) * 4096)
                .unwrap_or(0);
        }
    }
    (bytes, files)
}

/// The nearest existing directory at or above `path`.
fn existing_ancestor(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut p = abs.as_path();
    loop {
        if p.is_dir() {
            return p.to_path_buf();
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return PathBuf::from("/"),
        }
    }
}

fn space(
    path: &Path,
    needed_bytes: u64,
    needed_inodes: u64,
    what: &str,
    sim: &mut Simulation,
) -> Option<SpaceCheck> {
    let measured = existing_ancestor(path);
    let st = match rustix::fs::statvfs(&measured) {
        Ok(s) => s,
        Err(e) => {
            sim.findings.push(Finding {
                check: "space".into(),
                problem: format!("cannot measure free space at {}: {e}", measured.display()),
                fix: format!("make sure the {what} {} can be created", path.display()),
            });
            return None;
        }
    };
    let free_bytes = st.f_bavail.saturating_mul(st.f_frsize);
    let free_inodes = (st.f_files > 0).then_some(st.f_favail);
    let check = SpaceCheck {
        path: path.to_path_buf(),
        measured: measured.clone(),
        free_bytes,
        needed_bytes,
        free_inodes,
        needed_inodes,
    };
    if free_bytes < needed_bytes || free_inodes.is_some_and(|f| f < needed_inodes) {
        sim.findings.push(Finding {
            check: "space".into(),
            problem: format!(
                "the {what} {} is on a filesystem with {free_bytes} bytes{} free; the install writes about {needed_bytes} bytes in {needed_inodes} files there",
                path.display(),
                free_inodes.map(|i| format!(" and {i} inodes")).unwrap_or_default()
            ),
            fix: format!("free space on {} or pass a {} on a larger filesystem", measured.display(), match what {
                "state dir" => "--state-dir",
                "model cache dir" => "--model-cache-dir",
                _ => "--render-to",
            }),
        });
    }
    if rustix::fs::access(&measured, rustix::fs::Access::WRITE_OK).is_err() {
        sim.findings.push(Finding {
            check: "space".into(),
            problem: format!(
                "the {what} {} cannot be written ({} is not writable)",
                path.display(),
                measured.display()
            ),
            fix: format!(
                "run as a user who may write {}, or pick another directory",
                measured.display()
            ),
        });
    }
    Some(check)
}

/// Free space where the install writes: receipt, channels, metrics and lock
/// in the state dir; the render (measured from the simulated one) in the
/// render dir, which by default is inside the state dir.
fn space_checks(
    opts: &InstallOptions,
    prepared: &Prepared,
    render: (u64, u64),
    sim: &mut Simulation,
) {
    let report = &prepared.bundle.report;
    let files_json = report
        .config
        .as_ref()
        .map(|c| serde_json::to_vec(&c.files).map(|v| v.len()).unwrap_or(0))
        .unwrap_or(0) as u64;
    let receipt = 2048
        + files_json
        + 80 * (report.blobs.len() + report.omitted.len() + sim.objects.len()) as u64
        + 300 * sim.images.len() as u64;
    let block = |n: u64| n.div_ceil(4096).max(1) * 4096;
    // receipts/<hex>.json, channels.json, metrics.json, lock, plus temp files of atomic writes.
    let mut state_bytes = block(receipt) * 2 + 4 * 4096;
    let mut state_files = 6;
    let (render_bytes, render_files) = render;
    match &opts.render_to {
        None => {
            state_bytes += render_bytes;
            state_files += render_files;
        }
        Some(dir) => {
            sim.host.render_dir = space(dir, render_bytes, render_files, "render dir", sim);
        }
    }
    sim.host.state_dir = space(&opts.state_dir, state_bytes, state_files, "state dir", sim);
    if let Some(dir) = &opts.files.model_cache_dir {
        // An upper bound: files already there and unchanged are not rewritten.
        let files = report.config.as_ref().map(|c| &c.files[..]).unwrap_or(&[]);
        let bytes = files.iter().map(|f| block(f.size)).sum();
        sim.host.model_cache_dir = space(dir, bytes, files.len() as u64, "model cache dir", sim);
    }
    if opts.files.to_registry {
        sim.notes.push(
            "--files-to-registry: the file-set artifacts are not part of the blob plan above; push permission is checked for the image repositories only".into(),
        );
    }
}

impl Simulation {
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        match &self.index_digest {
            Some(d) => {
                let _ = writeln!(
                    s,
                    "bundle {} {} ({} #{}) {d}: verified",
                    self.name.as_deref().unwrap_or("?"),
                    self.version.as_deref().unwrap_or("?"),
                    self.channel.as_deref().unwrap_or("?"),
                    self.sequence.unwrap_or(0),
                );
            }
            None => {
                let _ = writeln!(s, "bundle {}: not verified", self.bundle.display());
            }
        }
        if let Some(r) = &self.rollback {
            let _ = writeln!(s, "rollback check: {r}");
        }
        let _ = writeln!(
            s,
            "registry {}: push permission checked: {}",
            self.registry, self.push_check
        );
        if !self.images.is_empty() {
            let _ = writeln!(s, "images:");
            for i in &self.images {
                let _ = writeln!(s, "  {} -> {} ({})", i.source, i.target, i.digest);
            }
        }
        let _ = writeln!(
            s,
            "blobs: {} to upload ({} bytes), {} to mount ({} bytes), {} already there ({} bytes)",
            self.uploaded,
            self.bytes_uploaded,
            self.mounted,
            self.bytes_mounted,
            self.skipped,
            self.bytes_skipped
        );
        let _ = writeln!(
            s,
            "manifests: {} to push, {} already there",
            self.manifests_pushed, self.manifests_skipped
        );
        if !self.objects.is_empty() {
            let _ = writeln!(s, "objects to apply ({}):", self.objects.len());
            for o in &self.objects {
                let _ = writeln!(s, "  {o}");
            }
        }
        let _ = writeln!(
            s,
            "host: kubectl {} (kustomize {})",
            self.host.kubectl.as_deref().unwrap_or("missing"),
            self.host.kustomize.as_deref().unwrap_or("missing")
        );
        for c in [
            &self.host.state_dir,
            &self.host.render_dir,
            &self.host.model_cache_dir,
        ]
        .into_iter()
        .flatten()
        {
            let _ = writeln!(
                s,
                "  {}: {} bytes free, about {} needed",
                c.path.display(),
                c.free_bytes,
                c.needed_bytes
            );
        }
        match &self.cluster.skipped {
            Some(why) => {
                let _ = writeln!(s, "cluster: skipped: {why}");
            }
            None if self.cluster.checked => {
                let _ = writeln!(s, "cluster: server-side dry run:\n{}", self.cluster.output);
            }
            None => {}
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        if self.ok {
            let _ = writeln!(s, "OK: a real install would succeed as far as can be known without writing; nothing was changed");
        } else {
            let _ = writeln!(
                s,
                "FAILED: {} problem(s) would stop the install:",
                self.findings.len()
            );
            for f in &self.findings {
                let _ = writeln!(s, "  {f}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
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
