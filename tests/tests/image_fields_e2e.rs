//! Images inside custom resources (`spec.manifests.imageFields`) at the
//! site (issue 16, bug 2): the fields travel in the signed bundle, `install`
//! rewrites them to the site registry pinned by digest, and the air-gap gate
//! refuses one that names an image the bundle does not carry.
//!
//! Also `--render-to` on an existing folder (issue 24, defect 6): a folder of
//! the user's files is refused and left as it was, and nothing is written
//! through a link inside it.
//!
//! Runs the built binaries against the real `docker-registry` and the real
//! `kubectl kustomize`; `--apply` goes to a recording stand-in for kubectl.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use atp_testkit::fixtures::{self, IMAGES};
use atp_testkit::Registry;
use common::*;

/// The custom resource the overlay adds: a `Workload` whose workers name
/// their images at `spec.workers[].image`, a path no built-in rule knows.
fn workload(worker_images: &[&str]) -> String {
    let workers: String = worker_images
        .iter()
        .map(|i| format!("  - name: w{}\n    image: {i}\n", i.len()))
        .collect();
    format!("apiVersion: example.com/v1\nkind: Workload\nmetadata:\n  name: batch\nspec:\n  workers:\n{workers}")
}

/// A copy of the repo's manifests whose overlay also ships `workload`, and a
/// demo spec (`spec.yaml`) over it that declares the Workload's image field.
fn spec_with_a_workload(w: &Work, workload: &str) -> String {
    let tree = w.path("m");
    copy_dir(&repo_root().join("manifests"), &tree);
    let overlay = tree.join("overlays/air-gapped");
    std::fs::write(overlay.join("workload.yaml"), workload).unwrap();
    let k = overlay.join("kustomization.yaml");
    let body = std::fs::read_to_string(&k).unwrap();
    assert!(body.contains("  - networkpolicy-egress.yaml\n"), "{body}");
    std::fs::write(
        &k,
        body.replace(
            "  - networkpolicy-egress.yaml\n",
            "  - networkpolicy-egress.yaml\n  - workload.yaml\n",
        ),
    )
    .unwrap();
    let spec = demo_spec(w, "spec.yaml", 1, &[]);
    let body = std::fs::read_to_string(&spec).unwrap();
    let body = body
        .replace(
            &repo_root().join("manifests").display().to_string(),
            &tree.display().to_string(),
        )
        .replace(
            "    overlay: overlays/air-gapped\n",
            "    overlay: overlays/air-gapped\n    imageFields:\n      - {kind: Workload, path: \"spec.workers[].image\"}\n",
        );
    assert!(body.contains("imageFields"), "{body}");
    std::fs::write(&spec, body).unwrap();
    spec
}

/// The `Workload` objects of a rendered file, as JSON.
fn workloads(rendered: &Path) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    let yaml = std::fs::read_to_string(rendered).unwrap();
    serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|d| serde_json::Value::deserialize(d).unwrap())
        .filter(|v| v["kind"] == "Workload")
        .collect()
}

fn fixture(dir: &str) -> &'static fixtures::FixtureImage {
    IMAGES.iter().find(|i| i.dir == dir).unwrap()
}

#[test]
fn a_custom_resource_image_field_is_installed_as_the_site_registry_digest() {
    let reg = Registry::plain();
    let w = Work::new();
    // Spelled two ways, as manifests do: short, and fully qualified.
    let spec = spec_with_a_workload(
        &w,
        &workload(&["atp/model-loader:1.4.0", "docker.io/atp/router:1.4.0"]),
    );
    assert_ok(
        &w.bundler(&[
            "create", "--spec", &spec, "--key", "k.key", "--output", "b.tar",
        ]),
        "create",
    );
    // The signed bundle config records the field for the site.
    let bundle = atp_bundle::open::Bundle::open(&w.path("b.tar")).unwrap();
    let fields = bundle.config.as_ref().unwrap().image_fields();
    assert_eq!(
        fields,
        [atp_bundle::format::ImageField {
            kind: "Workload".into(),
            path: "spec.workers[].image".into(),
        }]
    );

    let out = install(&w, &reg, "b.tar", &["--json"]);
    assert_ok(&out, "install");
    let v = json(&out);
    let rendered = Path::new(v["rendered"].as_str().unwrap());
    let found = workloads(rendered);
    assert_eq!(found.len(), 1, "{found:?}");
    let workers = found[0]["spec"]["workers"].as_array().unwrap();
    let want = |dir: &str| {
        let img = fixture(dir);
        format!(
            "{}/docker.io/atp/{dir}@{}",
            reg.host(),
            fixtures::index_digest(img)
        )
    };
    assert_eq!(workers[0]["image"], want("model-loader"));
    assert_eq!(workers[1]["image"], want("router"));
}

#[test]
fn an_unbundled_image_in_a_custom_resource_field_is_refused_by_the_air_gap_gate() {
    let reg = Registry::plain();
    let w = Work::new();
    let spec = spec_with_a_workload(
        &w,
        &workload(&["docker.io/atp/router:1.4.0", "docker.io/evil/miner:1"]),
    );
    // create's own completeness check reads the same field and would refuse
    // this overlay; a kubectl stand-in hides the line from it, as a bundle
    // from a careless tool would be made. The installer must still refuse.
    let filter = w.path("kubectl-filter");
    std::fs::write(&filter, "#!/bin/sh\nkubectl \"$@\" | grep -v evil/miner\n").unwrap();
    std::fs::set_permissions(&filter, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = w.bundler_cmd(&[
        "create", "--spec", &spec, "--key", "k.key", "--output", "b.tar",
    ]);
    c.env("ATP_KUBECTL", &filter);
    assert_ok(&c.output().unwrap(), "create (completeness check bypassed)");

    // A recording kubectl: renders with the real one, logs everything else.
    let log = w.path("kubectl.log");
    let recorder = w.path("kubectl-recorder");
    std::fs::write(
        &recorder,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nif [ \"$1\" = kustomize ]; then exec kubectl \"$@\"; fi\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&recorder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (key, state, host) = (w.pubkey(), w.s("state"), reg.host());
    let out = w
        .installer_cmd(&[
            "install",
            "b.tar",
            "--key",
            &key,
            "--state-dir",
            &state,
            "--registry",
            &host,
            "--plain-http",
            "--apply",
            "--kubeconfig",
            "/etc/site/kubeconfig",
        ])
        .env("ATP_KUBECTL", &recorder)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("air-gap gate"), "{err}");
    assert!(
        err.contains("Workload/atp-system/batch spec.workers[1].image"),
        "{err}"
    );
    assert!(err.contains("docker.io/evil/miner:1"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");
    // Only renders reached kubectl: never an apply.
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        calls.lines().all(|l| l.starts_with("kustomize ")),
        "{calls}"
    );
}

#[test]
fn render_to_refuses_a_folder_of_user_files_and_writes_nothing_through_its_links() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");

    // The user's folder: their own kustomization, and `secrets` linking to
    // a folder elsewhere.
    let mine = w.path("mine");
    let elsewhere = w.path("elsewhere");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(mine.join("kustomization.yaml"), "# mine\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, mine.join("secrets")).unwrap();
    let out = install(&w, &reg, "b.tar", &["--render-to", &w.s("mine")]);
    assert!(!out.status.success(), "{}", text(&out));
    // The user's files are as they were, and nothing went through the link.
    assert_eq!(
        std::fs::read_to_string(mine.join("kustomization.yaml")).unwrap(),
        "# mine\n"
    );
    assert!(std::fs::symlink_metadata(mine.join("secrets"))
        .unwrap()
        .file_type()
        .is_symlink());
    let leaked: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().collect();
    assert!(leaked.is_empty(), "written through the link: {leaked:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("render dir") && err.contains("did not make"),
        "{err}"
    );
    assert!(
        !std::fs::read_dir(w.dir.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".atp-render")),
        "a temp folder was left beside it"
    );

    // A new folder is rendered into, and a later render replaces it.
    for _ in 0..2 {
        let out = install(&w, &reg, "b.tar", &["--json", "--render-to", &w.s("r")]);
        assert_ok(&out, "install --render-to r");
        assert_eq!(
            json(&out)["rendered"].as_str().unwrap(),
            w.path("r/rendered.yaml").to_str().unwrap()
        );
        assert!(w.path("r/.atp-installer-render").is_file());
    }
}
