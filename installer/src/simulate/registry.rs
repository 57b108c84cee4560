//! Simulate's registry checks: reachability, TLS and credentials, push
//! permission per repository (an upload session opened and cancelled), and
//! the copy engine's decisions (HEAD only).

use super::*;

/// `host[:port]` → (host, port), default port by scheme.
pub(super) fn host_port(registry: &str, plain_http: bool) -> (String, u16) {
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
pub(super) async fn registry_checks(
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

pub(super) fn registry_finding(e: &atp_registry::Error, opts: &InstallOptions) -> Finding {
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
pub(super) async fn plan_blobs(
    client: &Client,
    opts: &InstallOptions,
    prepared: &Prepared,
    sim: &mut Simulation,
) {
    if let Err(e) = crate::delta::check(client, &opts.state_dir, prepared, false).await {
        sim.findings.push(install_finding(&e));
    }
    let decided = match copy::decide(client, &prepared.push_plan(), opts.site.concurrency).await {
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
    cosign_tags(client, opts, prepared, sim).await;
    fallback_indexes(client, opts, prepared, sim).await;
}

/// What install's cosign tag step would do, by reads only.
async fn cosign_tags(
    client: &Client,
    opts: &InstallOptions,
    prepared: &Prepared,
    sim: &mut Simulation,
) {
    use atp_registry::referrers::{plan_cosign_tag, CosignPlan};
    for (repo, tag, bytes, _) in prepared.cosign_tags() {
        let outcome = match plan_cosign_tag(client, repo, tag, bytes).await {
            Ok(CosignPlan::Write) => "to write",
            Ok(CosignPlan::Merge(_)) => "to merge",
            Ok(CosignPlan::Unchanged) => "unchanged",
            Err(e) => {
                sim.findings.push(registry_finding(&e, opts));
                "refused"
            }
        };
        sim.referrers.tags.push(crate::prepare::TagOutcome {
            tag: format!("{repo}:{tag}"),
            outcome,
        });
    }
}

/// What install's fallback tag index step would do, by reads only.
async fn fallback_indexes(
    client: &Client,
    opts: &InstallOptions,
    prepared: &Prepared,
    sim: &mut Simulation,
) {
    use atp_registry::referrers::{fallback_tag, plan_fallback_index, FallbackPlan};
    for (repo, subject, add) in prepared.fallback_additions() {
        let outcome = match plan_fallback_index(client, repo, subject, &add).await {
            Ok(FallbackPlan::Write { .. }) => "to write",
            Ok(FallbackPlan::Unchanged) => "unchanged",
            Ok(FallbackPlan::ApiSupported) => "referrers-api",
            Err(e) => {
                sim.findings.push(registry_finding(&e, opts));
                "refused"
            }
        };
        sim.referrers.indexes.push(crate::prepare::IndexOutcome {
            index: format!("{repo}:{}", fallback_tag(subject)),
            outcome,
        });
    }
}
