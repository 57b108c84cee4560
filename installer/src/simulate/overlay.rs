//! Simulate's overlay checks: render into a temp dir with the real mapping,
//! the air-gap gate (an image counts as present if the registry has it or
//! the bundle carries it), and the cluster's server-side dry run.

use super::host::measure;
use super::*;

/// Render, gate, and (when asked) the cluster dry run. Returns the bytes
/// and files the render writes, measured.
pub(super) async fn overlay_checks(
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

/// Server-side dry run, when the install would apply: against the cluster
/// install would apply to (`--kubeconfig`, else kubectl's own default).
pub(super) fn cluster_check(opts: &InstallOptions, rendered: &Path, sim: &mut Simulation) {
    let Some(a) = &opts.apply else {
        sim.cluster.skipped = Some(
            "the install would not apply (no --apply), so the cluster was not contacted".into(),
        );
        return;
    };
    let kubeconfig = match &a.kubeconfig {
        Some(k) => k.display().to_string(),
        None => "kubectl's default kubeconfig (KUBECONFIG or ~/.kube/config)".into(),
    };
    let kubectl =
        || atp_bundle::kubectl::cluster_command(a.kubeconfig.as_deref(), a.context.as_deref());
    let reach = kubectl()
        .args(["version", "-o", "json", "--request-timeout=10s"])
        .output();
    match reach {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            sim.cluster.skipped = Some(format!(
                "the cluster in {} is not reachable: {}",
                kubeconfig,
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
