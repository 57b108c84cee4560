//! The one place that builds `kubectl` commands, for both binaries: which
//! kubectl (`ATP_KUBECTL`, else `kubectl` on `PATH`) and how the cluster is
//! chosen (`--kubeconfig` and `--context` when given, else kubectl's own
//! `KUBECONFIG` / `~/.kube/config` and current context).
//!
//! Only builds commands and looks the binary up; it never runs one, never
//! reads or rewrites a kubeconfig, and adds no flag it was not given.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable naming the kubectl to run.
pub const ENV: &str = "ATP_KUBECTL";

/// The kubectl to run: `ATP_KUBECTL` when set and not empty, else `kubectl`
/// (which the OS looks up on `PATH`).
pub fn binary() -> OsString {
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "kubectl".into())
}

/// `kubectl` with no cluster flags, for client-side subcommands
/// (`kustomize`, `version --client`).
pub fn command() -> Command {
    Command::new(binary())
}

/// `kubectl [--kubeconfig K] [--context C]`, for subcommands that talk to a
/// cluster. Without either, kubectl picks its own config and context.
pub fn cluster_command(kubeconfig: Option<&Path>, context: Option<&str>) -> Command {
    let mut c = command();
    if let Some(k) = kubeconfig {
        c.arg("--kubeconfig").arg(k);
    }
    if let Some(ctx) = context {
        c.arg("--context").arg(ctx);
    }
    c
}

/// Where [`binary`] resolves, checked before anything is sent anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The binary as configured (`ATP_KUBECTL`'s value or `kubectl`).
    pub tool: OsString,
    /// Where it was looked for, for messages: `ATP_KUBECTL` or `on PATH`.
    pub looked: &'static str,
    /// The executable file found, if any.
    pub found: Option<PathBuf>,
}

/// Look [`binary`] up the way the OS will run it: a path (anything with a
/// `/`) as is, a bare name in each `PATH` entry.
pub fn locate() -> Located {
    let tool = binary();
    let tool_path = Path::new(&tool);
    let (looked, found) = if tool_path.components().count() > 1 {
        (
            ENV,
            is_executable(tool_path).then(|| tool_path.to_path_buf()),
        )
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let hit = std::env::split_paths(&path)
            .map(|d| d.join(tool_path))
            .find(|p| is_executable(p));
        ("on PATH", hit)
    };
    Located {
        tool,
        looked,
        found,
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_flags_only_when_given() {
        let args = |c: &Command| {
            c.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        assert!(args(&cluster_command(None, None)).is_empty());
        let c = cluster_command(Some(Path::new("/k/config")), Some("site"));
        assert_eq!(args(&c), ["--kubeconfig", "/k/config", "--context", "site"]);
        assert_eq!(
            args(&cluster_command(None, Some("site"))),
            ["--context", "site"]
        );
    }
}
