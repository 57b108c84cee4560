//! `--apply`: hand the rendered output to the real `kubectl` (server-side
//! apply, field manager `atp-installer`), then wait for every workload's
//! rollout; and, for `uninstall`, delete recorded objects one by one. A
//! kubectl failure fails the command with kubectl's own message. Every
//! call is built by `atp_bundle::kubectl`; the dry-run plans list the same
//! calls without running them.
//!
//! No Kubernetes API server runs in our test environment; this boundary is
//! tested with a recording stand-in for `kubectl` on PATH (see docs/guide.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use atp_bundle::kustomize::ObjectRef;

/// Where and how to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    /// Rollout wait per workload, e.g. `300s`.
    pub timeout: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot run kubectl: {0}\nhint: install kubectl and put it on PATH")]
    Spawn(std::io::Error),
    #[error("kubectl {step} failed (exit {code}):\n{stderr}\nhint: {hint}")]
    Failed {
        step: String,
        code: i32,
        stderr: String,
        hint: &'static str,
    },
}

fn kubectl(opts: &ApplyOptions) -> Command {
    atp_bundle::kubectl::cluster_command(opts.kubeconfig.as_deref(), opts.context.as_deref())
}

fn run(mut c: Command, step: String, hint: &'static str) -> Result<String, ApplyError> {
    let out = c.output().map_err(ApplyError::Spawn)?;
    if !out.status.success() {
        return Err(ApplyError::Failed {
            step,
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            hint,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One kubectl call: the command, what to call the step, what to advise.
struct Step {
    command: Command,
    name: String,
    hint: &'static str,
}

/// The calls of [`apply`], in order: the server-side apply, then a rollout
/// wait per workload.
fn apply_steps(rendered: &Path, objects: &[ObjectRef], opts: &ApplyOptions) -> Vec<Step> {
    let mut c = kubectl(opts);
    c.args([
        "apply",
        "--server-side",
        "--field-manager=atp-installer",
        "-f",
    ])
    .arg(rendered);
    let mut steps = vec![Step {
        command: c,
        name: "apply".into(),
        hint: "check the cluster is reachable (kubectl cluster-info) and that you may create these objects",
    }];
    for o in objects
        .iter()
        .filter(|o| matches!(o.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet"))
    {
        let mut c = kubectl(opts);
        c.arg("rollout")
            .arg("status")
            .arg(format!("{}/{}", o.kind.to_lowercase(), o.name))
            .arg(format!("--timeout={}", opts.timeout));
        if o.namespace != "-" {
            c.arg("-n").arg(&o.namespace);
        }
        steps.push(Step {
            command: c,
            name: format!("rollout status {}", o),
            hint: "see docs/guide.md, Troubleshooting: kubectl describe pod and kubectl logs show why pods do not start",
        });
    }
    steps
}

/// The calls of [`delete`]: one `kubectl delete` per object, in the order
/// given; an object already gone is not an error.
fn delete_steps(objects: &[ObjectRef], opts: &ApplyOptions) -> Vec<Step> {
    objects
        .iter()
        .map(|o| {
            let mut c = kubectl(opts);
            c.arg("delete")
                .arg(format!("{}/{}", o.kind.to_lowercase(), o.name))
                .arg("--ignore-not-found=true");
            if o.namespace != "-" {
                c.arg("-n").arg(&o.namespace);
            }
            Step {
                command: c,
                name: format!("delete {o}"),
                hint: "check the cluster is reachable (kubectl cluster-info) and that you may delete these objects; run uninstall again to finish",
            }
        })
        .collect()
}

fn run_all(steps: Vec<Step>) -> Result<Vec<String>, ApplyError> {
    steps
        .into_iter()
        .map(|s| run(s.command, s.name, s.hint))
        .collect()
}

/// A command as a shell line, for dry runs and reports.
fn shown(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Apply `rendered` and wait for each workload in `objects`.
pub fn apply(
    rendered: &Path,
    objects: &[ObjectRef],
    opts: &ApplyOptions,
) -> Result<Vec<String>, ApplyError> {
    run_all(apply_steps(rendered, objects, opts))
}

/// The kubectl command lines [`apply`] would run (nothing is run).
pub fn apply_plan(rendered: &Path, objects: &[ObjectRef], opts: &ApplyOptions) -> Vec<String> {
    apply_steps(rendered, objects, opts)
        .iter()
        .map(|s| shown(&s.command))
        .collect()
}

/// Delete `objects` one by one, in the order given, stopping at the first
/// kubectl failure.
pub fn delete(objects: &[ObjectRef], opts: &ApplyOptions) -> Result<Vec<String>, ApplyError> {
    run_all(delete_steps(objects, opts))
}

/// The kubectl command lines [`delete`] would run (nothing is run).
pub fn delete_plan(objects: &[ObjectRef], opts: &ApplyOptions) -> Vec<String> {
    delete_steps(objects, opts)
        .iter()
        .map(|s| shown(&s.command))
        .collect()
}

/// An object as a receipt records it, `Kind/namespace/name` (`-` for a
/// cluster-scoped object), back into an [`ObjectRef`].
pub fn parse_object(s: &str) -> Option<ObjectRef> {
    let mut parts = s.splitn(3, '/');
    let (kind, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    (!kind.is_empty() && !namespace.is_empty() && !name.is_empty()).then(|| ObjectRef {
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
    })
}
