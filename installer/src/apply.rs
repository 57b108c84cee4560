//! `--apply`: hand the rendered output to the real `kubectl` (server-side
//! apply, field manager `atp-installer`), then wait for every workload's
//! rollout. A kubectl failure fails the install with kubectl's own message.
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

/// Apply `rendered` and wait for each workload in `objects`.
pub fn apply(
    rendered: &Path,
    objects: &[ObjectRef],
    opts: &ApplyOptions,
) -> Result<Vec<String>, ApplyError> {
    let mut log = Vec::new();
    let mut c = kubectl(opts);
    c.args([
        "apply",
        "--server-side",
        "--field-manager=atp-installer",
        "-f",
    ])
    .arg(rendered);
    log.push(run(
        c,
        "apply".into(),
        "check the cluster is reachable (kubectl cluster-info) and that you may create these objects",
    )?);
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
        log.push(run(
            c,
            format!("rollout status {}", o),
            "see docs/guide.md, Troubleshooting: kubectl describe pod and kubectl logs show why pods do not start",
        )?);
    }
    Ok(log)
}
