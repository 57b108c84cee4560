//! Issue 24 (weaker) and issue 22 item 4: what `install` can know before its
//! first request, it checks before its first request. Output paths
//! (`--metrics-file`, `--render-to`, `--state-dir`, `--model-cache-dir`),
//! the `--registry` spelling, and the kubectl a bundle with manifests needs
//! even without `--apply`. Each refusal names the flag and what to type
//! instead, and the registry's own access log shows no request at all.

mod common;

use std::path::Path;

use atp_testkit::Registry;
use common::*;

/// Run `install` with `extra` flags and the site flags of `reg` (or
/// `site`, when given); assert it failed before any request reached `reg`,
/// and return its stderr.
fn refused_before_any_request(
    w: &Work,
    reg: &Registry,
    site: Option<&[&str]>,
    extra: &[&str],
    env: &[(&str, &str)],
) -> String {
    let mark = reg.access_mark();
    let mut c = w.install("b.tar").registry(reg).args(extra);
    if let Some(site) = site {
        c = c.site_flags(site.iter().copied());
    }
    for (k, v) in env {
        c = c.env(k, v);
    }
    let out = c.output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let log = reg.access_log_since(mark);
    assert!(
        log.is_empty(),
        "requests reached the registry: {log:?}\n{}",
        text(&out)
    );
    let receipts = std::fs::read_dir(w.path("state/receipts"))
        .into_iter()
        .flatten()
        .count();
    assert_eq!(receipts, 0, "a receipt was written");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn metrics_failed(state: &Path) -> u64 {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("metrics.json")).unwrap()).unwrap();
    m["deploy_failed_total"].as_u64().unwrap()
}

#[test]
fn output_paths_are_checked_before_the_first_request() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let a_file = w.path("a-file");
    std::fs::write(&a_file, b"x").unwrap();
    let users = w.path("users-folder");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(users.join("kustomization.yaml"), b"resources: []\n").unwrap();
    let folder = w.s("users-folder");
    let file = w.s("a-file");
    let under_file = format!("{file}/m.prom");

    // --metrics-file on a folder: once exit 1 after a "successful" install.
    let err = refused_before_any_request(&w, &reg, None, &["--metrics-file", &folder], &[]);
    assert!(
        err.contains("--metrics-file") && err.contains("is a folder"),
        "{err}"
    );
    assert!(err.contains("takes a file name"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");

    let err = refused_before_any_request(&w, &reg, None, &["--metrics-file", &under_file], &[]);
    assert!(err.contains("is not a folder"), "{err}");

    let err = refused_before_any_request(&w, &reg, None, &["--render-to", &file], &[]);
    assert!(
        err.contains("--render-to") && err.contains("not a folder"),
        "{err}"
    );
    let err = refused_before_any_request(&w, &reg, None, &["--render-to", &folder], &[]);
    assert!(
        err.contains("--render-to") && err.contains("render marker"),
        "{err}"
    );
    // The user's folder is untouched.
    assert_eq!(std::fs::read_dir(&users).unwrap().count(), 1);

    let err = refused_before_any_request(&w, &reg, None, &["--mirrors-to", &file], &[]);
    assert!(
        err.contains("is not an earlier mirror configuration"),
        "{err}"
    );

    let err = refused_before_any_request(&w, &reg, None, &["--model-cache-dir", &file], &[]);
    assert!(
        err.contains("--model-cache-dir") && err.contains("not a folder"),
        "{err}"
    );

    // Every problem at once, not one per run.
    let err = refused_before_any_request(
        &w,
        &reg,
        None,
        &["--metrics-file", &folder, "--render-to", &file],
        &[],
    );
    assert!(
        err.contains("--metrics-file") && err.contains("--render-to"),
        "{err}"
    );

    // --state-dir on a file.
    let mark = reg.access_mark();
    let key = w.pubkey();
    let host = reg.host();
    let out = w
        .installer_cmd(&[
            "install",
            "b.tar",
            "--key",
            &key,
            "--state-dir",
            &file,
            "--registry",
            &host,
            "--plain-http",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--state-dir") && err.contains("not a folder"),
        "{err}"
    );
    assert!(reg.access_log_since(mark).is_empty());

    // simulate reports the same, as findings.
    let out = w
        .simulate("b.tar")
        .registry(&reg)
        .args(["--metrics-file", &folder])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("[outputs] --metrics-file") && all.contains("is a folder"),
        "{all}"
    );
}

#[test]
fn a_registry_url_is_refused_before_verification_as_a_registry_not_an_image() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let url = format!("http://{}", reg.host());
    let err = refused_before_any_request(
        &w,
        &reg,
        Some(&["--registry", &url, "--plain-http"]),
        &[],
        &[],
    );
    assert!(
        err.contains("--registry") && err.contains("is a URL (http://)"),
        "{err}"
    );
    assert!(err.contains("--plain-http"), "{err}");
    assert!(!err.contains("image reference"), "{err}");
    // Refused before verification: no verification output, no finding.
    assert!(!err.contains("verif"), "{err}");

    let with_path = format!("{}/team", reg.host());
    let err = refused_before_any_request(
        &w,
        &reg,
        Some(&["--registry", &with_path, "--plain-http"]),
        &[],
        &[],
    );
    assert!(err.contains("--repo-prefix"), "{err}");
}

#[test]
fn a_missing_kubectl_is_found_before_the_first_request_even_without_apply() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");

    // ATP_KUBECTL naming nothing.
    let missing = w.s("no-such-kubectl");
    let err = refused_before_any_request(&w, &reg, None, &[], &[("ATP_KUBECTL", &missing)]);
    assert!(err.contains("no-such-kubectl not found"), "{err}");
    assert!(
        err.contains("kubectl kustomize") && err.contains("even without --apply"),
        "{err}"
    );
    assert!(err.contains("nothing was sent to the registry"), "{err}");
    assert!(
        err.contains("hint:") && err.contains("ATP_KUBECTL"),
        "{err}"
    );
    // A run that verified the bundle counts as a failed deploy.
    assert_eq!(metrics_failed(&w.path("state")), 1);

    // No kubectl on PATH.
    let empty = w.path("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let mark = reg.access_mark();
    let out = w
        .install("b.tar")
        .registry(&reg)
        .env_remove("ATP_KUBECTL")
        .env("PATH", &empty)
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kubectl not found (on PATH)"), "{err}");
    assert!(reg.access_log_since(mark).is_empty());

    // With --single-pass and --apply, before verification starts.
    let mark = reg.access_mark();
    let out = w
        .install("b.tar")
        .registry(&reg)
        .env("ATP_KUBECTL", &missing)
        .args(["--single-pass", "--apply"])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("apply"), "{}", text(&out));
    assert!(reg.access_log_since(mark).is_empty());
}

#[test]
fn a_bundle_without_manifests_installs_without_kubectl() {
    let reg = Registry::plain();
    let w = Work::new();
    w.create_models_only("b.tar");
    let out = w
        .install("b.tar")
        .registry(&reg)
        .env("ATP_KUBECTL", w.path("no-such-kubectl"))
        .arg("--files-to-registry")
        .output();
    assert_ok(
        &out,
        "install of a bundle without manifests, without kubectl",
    );
}
