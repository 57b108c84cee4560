//! The site's lifecycle after install (issue 20), against the real registry
//! and a kubectl stand-in that records every call and keeps a copy of every
//! file it is asked to apply: `status` shows the installed history,
//! `rollback --to previous --apply` re-applies exactly the earlier release's
//! rendered bytes (and refuses, applying nothing, when one of its images is
//! gone from the registry), `uninstall --apply` deletes exactly the objects
//! the applied release recorded, and a corrupt or missing receipt is named.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use atp_testkit::cli::{registry_flags, which_kubectl};
use atp_testkit::Registry;
use common::*;

/// A kubectl stand-in: appends its arguments to `kubectl.log`, copies each
/// file given to `-f` into `applied/N.yaml`, hands `kustomize` to the real
/// kubectl and succeeds at everything else.
fn copying_kubectl(w: &Work) -> PathBuf {
    let path = w.path("kubectl-stand-in");
    std::fs::create_dir_all(w.path("applied")).unwrap();
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$*\" >> {log}\nif [ \"$1\" = kustomize ]; then exec {real} \"$@\"; fi\nprev=\nfor a in \"$@\"; do\n  if [ \"$prev\" = -f ]; then n=$(ls {dir} | wc -l); cp \"$a\" {dir}/$n.yaml; fi\n  prev=\"$a\"\ndone\nexit 0\n",
            log = w.path("kubectl.log").display(),
            dir = w.path("applied").display(),
            real = which_kubectl()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The stand-in's calls so far, one line each, renders left out.
fn cluster_calls(w: &Work) -> Vec<String> {
    std::fs::read_to_string(w.path("kubectl.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("kustomize"))
        .map(str::to_string)
        .collect()
}

/// The files applied so far, in order.
fn applied(w: &Work) -> Vec<Vec<u8>> {
    let mut n = 0;
    let mut out = Vec::new();
    while let Ok(b) = std::fs::read(w.path(&format!("applied/{n}.yaml"))) {
        out.push(b);
        n += 1;
    }
    out
}

/// Bundle `v{seq}.tar`: the demo images and a copy of the manifests whose
/// overlay carries the release in an annotation, so each release renders
/// differently.
fn release(w: &Work, seq: u64) -> String {
    let tree = w.path(&format!("m{seq}"));
    copy_dir(&repo_root().join("manifests"), &tree);
    let k = tree.join("overlays/air-gapped/kustomization.yaml");
    let body = std::fs::read_to_string(&k).unwrap();
    std::fs::write(
        &k,
        format!("{body}commonAnnotations:\n  atp.example/release: \"{seq}\"\n"),
    )
    .unwrap();
    let spec = demo_spec(w, &format!("v{seq}.yaml"), seq, &[]);
    let body = std::fs::read_to_string(&spec).unwrap().replace(
        &repo_root().join("manifests").display().to_string(),
        &tree.display().to_string(),
    );
    std::fs::write(&spec, body).unwrap();
    let out = format!("v{seq}.tar");
    let mut c = w.bundler_cmd(&[
        "create", "--spec", &spec, "--key", "k.key", "--output", &out,
    ]);
    c.env("SOURCE_DATE_EPOCH", "1790000000");
    assert_ok(&c.output().unwrap(), "create");
    out
}

/// Install v1 (rendered under the state dir) and v2 (rendered to
/// `--render-to out2`), both applied through the stand-in.
fn two_releases(w: &Work, reg: &Registry, kubectl: &Path) {
    let (v1, v2) = (release(w, 1), release(w, 2));
    let out = w
        .install(&v1)
        .registry(reg)
        .env("ATP_KUBECTL", kubectl)
        .args(["--apply", "--context", "site"])
        .output();
    assert_ok(&out, "install v1");
    let out = w
        .install(&v2)
        .registry(reg)
        .render_to(w.path("out2"))
        .env("ATP_KUBECTL", kubectl)
        .args(["--apply", "--context", "site"])
        .output();
    assert_ok(&out, "install v2");
    assert_eq!(applied(w).len(), 2, "{:?}", cluster_calls(w));
}

/// The receipt of sequence `seq`, parsed.
fn receipt(w: &Work, seq: u64) -> (PathBuf, serde_json::Value) {
    for e in std::fs::read_dir(w.path("state/receipts")).unwrap() {
        let p = e.unwrap().path();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        if v["sequence"] == seq {
            return (p, v);
        }
    }
    panic!("no receipt of sequence {seq}");
}

/// `atp-installer SUBCOMMAND --state-dir state ...` with the stand-in.
fn run(w: &Work, kubectl: &Path, args: &[&str]) -> std::process::Output {
    let state = w.s("state");
    let mut all = vec![args[0], "--state-dir", &state];
    all.extend_from_slice(&args[1..]);
    w.installer_cmd(&all)
        .env("ATP_KUBECTL", kubectl)
        .output()
        .unwrap()
}

/// `rollback` (or `status`) with the site flags of `reg` (plain HTTP here).
fn with_site(reg: &Registry, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(ToString::to_string).collect();
    v.extend(registry_flags(reg));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn status_shows_both_releases_and_rollback_applies_exactly_the_previous_render() {
    let reg = Registry::plain();
    let w = Work::new();
    let kubectl = copying_kubectl(&w);
    two_releases(&w, &reg, &kubectl);
    let v1_render = applied(&w)[0].clone();
    let (_, r1) = receipt(&w, 1);
    let (_, r2) = receipt(&w, 2);
    // v2 was rendered elsewhere and still kept, pinned, in the state dir.
    let kept2 = w
        .path("state")
        .join(r2["kept_render"]["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&kept2).unwrap(), applied(&w)[1]);
    assert_eq!(
        r2["kept_render"]["digest"],
        atp_bundle::Digest::of(&applied(&w)[1]).to_string()
    );
    assert!(r1["key_fingerprint"].is_string(), "{r1:#}");

    // Text: both releases, v2 in the cluster, the registry whole.
    let out = run(&w, &kubectl, &strs(&with_site(&reg, &["status"])));
    assert_ok(&out, "status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("channel stable: installed sequence 2, in the cluster 2"),
        "{stdout}"
    );
    for v in ["1.4.1", "1.4.2"] {
        assert!(stdout.contains(v), "{stdout}");
    }
    assert!(
        stdout.contains("current release 2") && stdout.contains("previous release 1"),
        "{stdout}"
    );
    assert!(!stdout.contains("not present"), "{stdout}");
    // JSON: the same, field by field.
    let out = run(&w, &kubectl, &["status", "--json"]);
    let v = json(&out);
    let c = &v["channels"][0];
    let seqs: Vec<u64> = c["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2], "{v:#}");
    for e in c["history"].as_array().unwrap() {
        assert_eq!(e["rendered_kept"], true, "{e:#}");
        assert_eq!(e["applied"], true, "{e:#}");
        assert!(e["key_fingerprint"].is_string(), "{e:#}");
    }
    assert_eq!(c["deployed_sequence"], 2);

    // A dry run checks and prints, and runs nothing.
    let calls_before = cluster_calls(&w);
    let out = run(
        &w,
        &kubectl,
        &strs(&with_site(
            &reg,
            &["rollback", "--to", "previous", "--dry-run"],
        )),
    );
    assert_ok(&out, "rollback --dry-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would roll back") && stdout.contains("apply --server-side"),
        "{stdout}"
    );
    assert_eq!(cluster_calls(&w), calls_before);

    let out = run(
        &w,
        &kubectl,
        &strs(&with_site(
            &reg,
            &[
                "rollback",
                "--to",
                "previous",
                "--apply",
                "--context",
                "site",
            ],
        )),
    );
    assert_ok(&out, "rollback --apply");
    let files = applied(&w);
    assert_eq!(files.len(), 3, "{:?}", cluster_calls(&w));
    assert!(
        files[2] == v1_render,
        "the rollback applied other bytes than v1's render"
    );
    let calls = cluster_calls(&w);
    let last = calls[calls_before.len()..].to_vec();
    assert!(
        last[0].starts_with("--context site apply --server-side"),
        "{last:?}"
    );
    assert!(
        last[1..].iter().all(|c| c.contains("rollout status")),
        "{last:?}"
    );

    // In the cluster: v1; installed: still 2, so v1's bundle is still
    // refused by install.
    let v = json(&run(&w, &kubectl, &["status", "--json"]));
    let c = &v["channels"][0];
    assert_eq!(
        (
            c["deployed_sequence"].as_u64(),
            c["installed_sequence"].as_u64()
        ),
        (Some(1), Some(2)),
        "{v:#}"
    );
    assert_eq!(c["events"][0]["kind"], "rollback");
    assert_eq!(
        (
            c["events"][0]["from"].as_u64(),
            c["events"][0]["to"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let out = w
        .install("v1.tar")
        .registry(&reg)
        .env("ATP_KUBECTL", &kubectl)
        .output();
    assert!(!out.status.success(), "{}", text(&out));

    // No release below 1.
    let out = run(
        &w,
        &kubectl,
        &strs(&with_site(
            &reg,
            &["rollback", "--to", "previous", "--apply"],
        )),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no release below sequence 1"),
        "{}",
        text(&out)
    );
}

#[test]
fn rollback_refuses_naming_an_image_gone_from_the_registry_and_applies_nothing() {
    let reg = Registry::plain();
    let w = Work::new();
    let kubectl = copying_kubectl(&w);
    two_releases(&w, &reg, &kubectl);
    // Delete one of v1's images through the registry API.
    let (_, r1) = receipt(&w, 1);
    let image = &r1["images"][0];
    let target = image["target"].as_str().unwrap();
    let repo = target
        .split('@')
        .next()
        .unwrap()
        .rsplit_once(':')
        .map_or(
            target,
            |(r, tag)| if tag.contains('/') { target } else { r },
        );
    let digest = image["digest"].as_str().unwrap();
    let mut args = vec!["delete".to_string()];
    args.extend(reg.skopeo_flags());
    args.push(format!("docker://{repo}@{digest}"));
    let out = atp_testkit::skopeo(&strs(&args));
    assert_ok(&out, "skopeo delete");

    let calls_before = cluster_calls(&w);
    let out = run(
        &w,
        &kubectl,
        &strs(&with_site(&reg, &["rollback", "--to", "1", "--apply"])),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to roll back to sequence 1"), "{err}");
    assert!(err.contains(&format!("{repo}@{digest}")), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    assert_eq!(cluster_calls(&w), calls_before, "kubectl was run");
    assert!(
        !w.path("state/events").exists(),
        "a refused rollback was recorded"
    );

    // status says so too, and exits 2.
    let out = run(&w, &kubectl, &strs(&with_site(&reg, &["status"])));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{repo}@{digest}: missing")),
        "{stdout}"
    );
}

#[test]
fn uninstall_deletes_exactly_the_recorded_objects_prunes_the_registry_and_a_bad_receipt_is_named() {
    let reg = Registry::plain();
    let w = Work::new();
    let kubectl = copying_kubectl(&w);
    two_releases(&w, &reg, &kubectl);
    let (r2_path, r2) = receipt(&w, 2);
    let recorded: Vec<String> = r2["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    assert!(
        recorded
            .iter()
            .any(|o| o.starts_with("PersistentVolumeClaim/")),
        "{recorded:?}"
    );

    // The manifests the receipts name: with --prune-registry they go too.
    let pushed: Vec<String> = json(&run(
        &w,
        &kubectl,
        &strs(&with_site(&reg, &["status", "--json"])),
    ))["channels"][0]["registry"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["images"].as_array().unwrap().clone())
        .map(|i| i["image"].as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(!pushed.is_empty());

    // A dry run lists the same commands and manifests, and changes nothing.
    let calls_before = cluster_calls(&w).len();
    let out = run(
        &w,
        &kubectl,
        &strs(&with_site(
            &reg,
            &[
                "uninstall",
                "--dry-run",
                "--delete-data",
                "--prune-registry",
                "--json",
                "--context",
                "site",
            ],
        )),
    );
    assert_ok(&out, "uninstall --dry-run");
    let dry = json(&out);
    assert_eq!(cluster_calls(&w).len(), calls_before);
    assert_ok(
        &run(&w, &kubectl, &strs(&with_site(&reg, &["status"]))),
        "status after a dry run: every image still there",
    );

    let out = run(
        &w,
        &kubectl,
        &strs(&with_site(
            &reg,
            &[
                "uninstall",
                "--apply",
                "--delete-data",
                "--prune-registry",
                "--json",
                "--context",
                "site",
            ],
        )),
    );
    assert_ok(&out, "uninstall");
    let report = json(&out);
    assert_eq!(report["commands"], dry["commands"]);
    assert_eq!(report["prune"]["deleted"], dry["prune"]["deleted"]);
    let mut pruned: Vec<String> = report["prune"]["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    pruned.sort();
    assert_eq!(pruned, pushed, "{report:#}");
    let out = run(&w, &kubectl, &strs(&with_site(&reg, &["status"])));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    for m in &pushed {
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("{m}: missing")),
            "{}",
            text(&out)
        );
    }
    let deleted: Vec<String> = cluster_calls(&w)[calls_before..].to_vec();
    // One delete per recorded object, nothing else, each exactly once.
    let mut got: Vec<String> = deleted
        .iter()
        .map(|c| {
            let words: Vec<&str> = c.split_whitespace().collect();
            assert_eq!(&words[..3], ["--context", "site", "delete"], "{c}");
            let (kind, name) = words[3].split_once('/').unwrap();
            let ns = words
                .iter()
                .position(|w| *w == "-n")
                .map_or("-", |i| words[i + 1]);
            let kind = recorded
                .iter()
                .map(|o| o.split('/').next().unwrap())
                .find(|k| k.to_lowercase() == kind)
                .unwrap_or_else(|| panic!("deleted a kind never recorded: {c}"));
            format!("{kind}/{ns}/{name}")
        })
        .collect();
    assert_eq!(report["deleted"].as_array().unwrap().len(), got.len());
    // Dependents first: the namespace last, workloads before services.
    assert!(got.last().unwrap().starts_with("Namespace/"), "{got:?}");
    let pos = |k: &str| got.iter().position(|o| o.starts_with(k)).unwrap();
    assert!(pos("Deployment/") < pos("Service/"), "{got:?}");
    got.sort();
    let mut want = recorded.clone();
    want.sort();
    assert_eq!(got, want);

    // Nothing left in the cluster as far as the state dir knows.
    let out = run(&w, &kubectl, &["uninstall", "--apply"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no release is in the cluster"));

    // A corrupt receipt: every lifecycle command names the file.
    let good = std::fs::read(&r2_path).unwrap();
    std::fs::write(&r2_path, b"{\"name\": ").unwrap();
    for args in [
        vec!["status".to_string()],
        vec!["uninstall".to_string(), "--dry-run".to_string()],
        with_site(&reg, &["rollback", "--dry-run"]),
    ] {
        let out = run(&w, &kubectl, &strs(&args));
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&r2_path.display().to_string()) && err.contains("corrupt"),
            "{err}"
        );
    }
    // A missing one (channels.json still names it).
    std::fs::remove_file(&r2_path).unwrap();
    let out = run(&w, &kubectl, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&r2_path.display().to_string()) && err.contains("missing"),
        "{err}"
    );
    std::fs::write(&r2_path, good).unwrap();
    assert_ok(
        &run(&w, &kubectl, &["status"]),
        "status with the receipt back",
    );
}

#[test]
fn prune_registry_says_so_when_the_registry_allows_no_deletes_and_removes_nothing() {
    let reg = Registry::start(atp_testkit::RegistryOptions {
        deletes: false,
        ..Default::default()
    })
    .unwrap();
    let w = Work::new();
    let kubectl = copying_kubectl(&w);
    let v1 = release(&w, 1);
    let out = w
        .install(&v1)
        .registry(&reg)
        .env("ATP_KUBECTL", &kubectl)
        .args(["--apply"])
        .output();
    assert_ok(&out, "install v1");
    let out = run(
        &w,
        &kubectl,
        &strs(&with_site(
            &reg,
            &["uninstall", "--apply", "--prune-registry"],
        )),
    );
    assert_ok(&out, "uninstall --prune-registry");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the registry does not allow deletes")
            && stdout.contains("nothing was pruned"),
        "{}",
        text(&out)
    );
    assert_ok(
        &run(&w, &kubectl, &strs(&with_site(&reg, &["status"]))),
        "status: every image still there",
    );
}
