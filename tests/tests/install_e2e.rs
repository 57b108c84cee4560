//! Issue 5 end to end: `atp-installer install` into the real registry in
//! plain, basic-auth and TLS modes; idempotent re-runs, resume after a kill,
//! fail-closed verification, rollback refusal, the air-gap gate, metrics that
//! promtool accepts, and the kubectl boundary through a recording stand-in.

mod common;

use std::os::unix::fs::PermissionsExt;

use atp_testkit::cli::{promtool_accepts, which_kubectl};
use atp_testkit::fixtures::{self, IMAGES};
use atp_testkit::{Registry, RegistryOptions};
use common::*;

fn check_installed(w: &Work, reg: &Registry, out: &std::process::Output) -> serde_json::Value {
    assert_ok(out, "install");
    let v = json(out);
    // skopeo confirms every pushed image by digest, under the documented mapping.
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        let repo = format!("docker.io/atp/{}:{}", img.dir, img.tag);
        assert_eq!(
            skopeo_digest(reg, &repo),
            fixtures::index_digest(img),
            "{repo}"
        );
        let listed = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["source"] == img.reference)
            .unwrap_or_else(|| panic!("{} not in summary", img.reference));
        assert_eq!(listed["target"], format!("{}/{repo}", reg.host()));
        assert_eq!(listed["digest"], fixtures::index_digest(img));
    }
    // rendered.yaml holds only site-registry, digest-pinned images.
    let rendered = std::path::PathBuf::from(v["rendered"].as_str().unwrap());
    let yaml = std::fs::read_to_string(&rendered).unwrap();
    let images: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert_eq!(images.len(), 3, "{yaml}");
    for i in &images {
        assert!(
            i.starts_with(&format!("{}/", reg.host())) && i.contains("@sha256:"),
            "{i}"
        );
    }
    let mode = std::fs::metadata(&rendered).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // The secrets are generated only with something to hold: the pull
    // secret with credentials, registry-certs with a CA (issue 22, item 11).
    let mut want = Vec::new();
    if reg.credentials().is_some() {
        want.push("atp-registry-pull");
    }
    if reg.ca_cert_path().is_some() {
        want.push("registry-certs");
    }
    let generated: Vec<&str> = v["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(generated, want, "{v:#}");
    let secrets: Vec<&str> = yaml
        .split("\n---\n")
        .filter(|doc| doc.lines().any(|l| l == "kind: Secret"))
        .collect();
    assert_eq!(secrets.len(), want.len(), "{yaml}");
    for name in want {
        assert!(
            secrets
                .iter()
                .any(|d| d.contains(&format!("  name: {name}\n"))),
            "{name} not rendered:\n{yaml}"
        );
    }
    assert!(!yaml.contains(r#"{"auths":{}}"#), "{yaml}");
    // The receipt names the bundle.
    let receipt = w.path("state/receipts").join(format!(
        "{}.json",
        v["index_digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    ));
    assert!(receipt.is_file(), "{}", receipt.display());
    v
}

#[test]
fn installs_into_plain_basic_and_tls_registries_and_reruns_upload_nothing() {
    for reg in [Registry::plain(), Registry::basic(), Registry::tls()] {
        let w = Work::new();
        assert_ok(&w.create_demo("b.tar", &[]), "create");
        let out = install(
            &w,
            &reg,
            "b.tar",
            &["--json", "--metrics-file", &w.s("m.prom")],
        );
        let first = check_installed(&w, &reg, &out);
        assert!(first["uploaded"].as_u64().unwrap() > 0);
        promtool_accepts(&w.path("m.prom"));
        let prom = std::fs::read_to_string(w.path("m.prom")).unwrap();
        assert!(prom.contains("onprem_deploy_success_total 1\n"), "{prom}");

        // A second run uploads zero blobs and zero manifests.
        let mark = reg.access_mark();
        let out = install(
            &w,
            &reg,
            "b.tar",
            &["--json", "--metrics-file", &w.s("m.prom")],
        );
        let second = check_installed(&w, &reg, &out);
        let writes: Vec<String> = reg
            .access_log_since(mark)
            .iter()
            .filter(|a| a.is_blob_upload() || a.method == "PUT")
            .map(ToString::to_string)
            .collect();
        assert!(writes.is_empty(), "second run wrote: {writes:?}");
        assert_eq!(second["uploaded"], 0);
        assert_eq!(second["manifests_pushed"], 0);
        let prom = std::fs::read_to_string(w.path("m.prom")).unwrap();
        assert!(prom.contains("onprem_deploys_total 2\n"), "{prom}");
        promtool_accepts(&w.path("m.prom"));
    }
}

#[test]
fn wrong_credentials_fail_with_a_clear_message_and_no_secret_in_output() {
    let reg = Registry::basic();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = w
        .install("b.tar")
        .key("k.pub")
        .state_dir("state")
        .registry(&reg)
        .password("hunter2-wrong")
        .output();
    assert!(!out.status.success());
    let t = text(&out);
    assert!(!t.contains("hunter2-wrong"), "{t}");
    assert!(
        t.contains("401") || t.to_lowercase().contains("credentials"),
        "{t}"
    );
}

#[test]
fn a_flipped_byte_in_a_layer_sends_zero_requests_to_the_registry() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let mut bytes = std::fs::read(w.path("b.tar")).unwrap();
    // The last blob is a layer; flip a byte inside its data.
    let end = bytes.len() - 1024;
    let mut pos = end - 1;
    while bytes[pos] == 0 {
        pos -= 1;
    }
    bytes[pos - 8] ^= 0xff;
    std::fs::write(w.path("bad.tar"), &bytes).unwrap();
    let mark = reg.access_mark();
    let out = install(&w, &reg, "bad.tar", &["--metrics-file", &w.s("m.prom")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed verification") && err.contains("nothing was pushed"),
        "{err}"
    );
    assert_eq!(
        reg.access_log_since(mark),
        vec![],
        "requests reached the registry"
    );
    let prom = std::fs::read_to_string(w.path("m.prom")).unwrap();
    assert!(prom.contains("onprem_deploy_failed_total 1\n"), "{prom}");
}

#[test]
fn a_lower_sequence_on_the_same_channel_is_refused() {
    let reg = Registry::plain();
    let w = Work::new();
    let s2 = demo_spec(&w, "s2.yaml", 2, &[]);
    let s1 = demo_spec(&w, "s1.yaml", 1, &[]);
    for (spec, out) in [(&s2, "v2.tar"), (&s1, "v1.tar")] {
        assert_ok(
            &w.bundler(&["create", "--spec", spec, "--key", "k.key", "--output", out]),
            "create",
        );
    }
    assert_ok(&install(&w, &reg, "v2.tar", &[]), "install v2");
    // The very same bundle again is a no-op.
    assert_ok(&install(&w, &reg, "v2.tar", &[]), "reinstall v2");
    let mark = reg.access_mark();
    let out = install(&w, &reg, "v1.tar", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing a rollback") && err.contains("--allow-downgrade"),
        "{err}"
    );
    assert!(reg.access_log_since(mark).is_empty());
    assert_ok(
        &install(&w, &reg, "v1.tar", &["--allow-downgrade"]),
        "downgrade",
    );
}

#[test]
fn an_overlay_image_not_in_the_bundle_fails_the_air_gap_gate_naming_the_object() {
    let reg = Registry::plain();
    let w = Work::new();
    // An overlay with an extra container whose image the bundle lacks, made
    // past create's own check: the installer's gate must still catch it.
    create_missing_an_image(&w, "b.tar");

    let out = install(&w, &reg, "b.tar", &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("air-gap gate"), "{err}");
    assert!(err.contains("Deployment/atp-system/atp-router"), "{err}");
    assert!(err.contains("docker.io/evil/miner:1"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
}

#[test]
fn an_install_killed_mid_push_completes_when_run_again() {
    let reg = Registry::plain();
    let w = Work::new();
    big_layout(&w.path("big"), 12, 6 << 20, 1);
    let spec = format!(
        "metadata: {{name: big, version: '1'}}\nspec:\n  channel: stable\n  sequence: 1\n  images:\n    - {{source: \"oci:{}:1.0\", name: docker.io/atp/big:1.0}}\n",
        w.path("big").display()
    );
    std::fs::write(w.path("big.yaml"), spec).unwrap();
    assert_ok(
        &w.bundler(&[
            "create", "--spec", "big.yaml", "--key", "k.key", "--output", "big.tar",
        ]),
        "create",
    );
    let mut child = w
        .install("big.tar")
        .registry(&reg)
        .args(["--concurrency", "2"])
        .command()
        .spawn()
        .unwrap();
    // Kill it as soon as the first blob is committed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let committed = reg
            .access_log()
            .iter()
            .filter(|a| a.method == "PUT" && a.path.contains("/blobs/uploads/") && a.status == 201)
            .count();
        if committed >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no blob was ever committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the install finished before it could be killed"
    );
    // No manifest was pushed by the killed run.
    assert!(!reg
        .access_log()
        .iter()
        .any(|a| a.method == "PUT" && a.path.contains("/manifests/")));

    let out = install(&w, &reg, "big.tar", &["--json"]);
    assert_ok(&out, "re-run");
    let v = json(&out);
    assert!(v["skipped"].as_u64().unwrap() >= 1, "{v}");
    let want = atp_bundle::Digest::of(
        &std::fs::read(
            w.path("big/blobs/sha256").join(
                serde_json::from_slice::<serde_json::Value>(
                    &std::fs::read(w.path("big/index.json")).unwrap(),
                )
                .unwrap()["manifests"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            ),
        )
        .unwrap(),
    )
    .to_string();
    assert_eq!(skopeo_digest(&reg, "docker.io/atp/big:1.0"), want);
    let o = atp_testkit::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/docker.io/atp/big:1.0", reg.host()),
        &format!("oci:{}:x", w.s("copy")),
    ]);
    assert_ok(&o, "skopeo copy (every blob checked by digest)");
}

#[test]
fn apply_runs_kubectl_server_side_then_waits_for_rollouts() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    // A recording stand-in for kubectl: logs its arguments, delegates
    // `kustomize` to the real kubectl, and succeeds for apply and rollout.
    let bin = w.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = which_kubectl();
    let log = w.path("kubectl.log");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {log}\nif [ \"$1\" = kustomize ]; then exec {real} \"$@\"; fi\nif [ -n \"$FAIL_APPLY\" ] && echo \"$*\" | grep -q ' apply '; then echo 'error: the server has asked for the client to provide credentials' >&2; exit 1; fi\nexit 0\n",
        log = log.display()
    );
    std::fs::write(bin.join("kubectl"), script).unwrap();
    std::fs::set_permissions(bin.join("kubectl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let apply = w.install("b.tar").registry(&reg).env("PATH", &path).args([
        "--apply",
        "--kubeconfig",
        "/etc/site/kubeconfig",
        "--context",
        "site",
        "--rollout-timeout",
        "90s",
    ]);
    let out = apply.output();
    assert_ok(&out, "install --apply");
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls
        .lines()
        .filter(|l| !l.starts_with("kustomize"))
        .collect();
    let rendered = w.path("state/render");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].starts_with("--kubeconfig /etc/site/kubeconfig --context site apply --server-side --field-manager=atp-installer -f "), "{}", calls[0]);
    assert!(
        calls[0].contains(&rendered.display().to_string()) && calls[0].ends_with("rendered.yaml")
    );
    assert_eq!(calls[1], "--kubeconfig /etc/site/kubeconfig --context site rollout status deployment/atp-router --timeout=90s -n atp-system");

    // A kubectl failure fails the install with kubectl's message.
    let out = apply.env("FAIL_APPLY", "1").output();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kubectl apply failed") && err.contains("provide credentials"),
        "{err}"
    );
}

#[test]
fn token_auth_registry_install_round_trips() {
    let reg = Registry::start(RegistryOptions {
        auth: atp_testkit::Auth::Token,
        ..Default::default()
    })
    .unwrap();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = install(&w, &reg, "b.tar", &["--json"]);
    check_installed(&w, &reg, &out);
}

#[test]
fn single_pass_installs_and_a_late_bad_blob_pushes_no_manifest() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = install(&w, &reg, "b.tar", &["--single-pass", "--json"]);
    let v = check_installed(&w, &reg, &out);
    assert!(v["uploaded"].as_u64().unwrap() > 0, "{v}");

    // A flipped byte in the last blob: earlier blobs may land (that is the
    // documented trade-off), but no manifest and no tag is pushed.
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let mut bytes = std::fs::read(w.path("b.tar")).unwrap();
    let mut pos = bytes.len() - 1024 - 1;
    while bytes[pos] == 0 {
        pos -= 1;
    }
    bytes[pos - 8] ^= 0xff;
    std::fs::write(w.path("bad.tar"), &bytes).unwrap();
    let out = install(&w, &reg, "bad.tar", &["--single-pass"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed verification"), "{err}");
    let manifest_writes: Vec<String> = reg
        .access_log()
        .iter()
        .filter(|a| a.method == "PUT" && a.path.contains("/manifests/"))
        .map(ToString::to_string)
        .collect();
    assert!(manifest_writes.is_empty(), "{manifest_writes:?}");
    assert!(!w.path("state/render").exists(), "nothing may be rendered");
    // Blobs that verified before the bad one were pushed while verifying:
    // that is what single-pass buys on slow media.
    assert!(
        reg.access_log().iter().any(|a| a.is_blob_upload()),
        "single-pass pushed nothing while verifying"
    );
}
