//! Issue 8 end to end: `atp-bundler sync` between two real registries. A sync
//! copies every fixture image (skopeo confirms the digests), a second sync
//! moves nothing, `--dry-run` only reads the target and its plan is what the
//! real sync then moves, and synced images land under the same references
//! and digests as bundle-installed ones.

mod common;

use std::process::Output;

use atp_testkit::cli::promtool_accepts;
use atp_testkit::fixtures::{self, IMAGES};
use atp_testkit::Registry;
use common::*;
use serde_json::Value;

/// Seed `src` with every fixture image as `atp/<dir>:<tag>` (the Docker Hub
/// path of each, so `src` acts as a Docker Hub mirror).
fn seed(src: &Registry) {
    for img in IMAGES {
        fixtures::push(src, img, &format!("atp/{}", img.dir));
    }
}

/// `--image` flags for every fixture image, written unqualified.
fn image_flags() -> Vec<String> {
    IMAGES
        .iter()
        .flat_map(|i| ["--image".to_string(), format!("atp/{}:{}", i.dir, i.tag)])
        .collect()
}

fn sync(w: &Work, args: &[String]) -> Output {
    let mut a = vec!["sync".to_string()];
    a.extend(args.iter().cloned());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    w.bundler(&a)
}

/// What a plan or a result says moves, per image: target, digest, blob and
/// manifest actions (timings left out).
fn moves(v: &Value) -> Vec<Value> {
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            serde_json::json!({
                "reference": i["reference"], "target": i["target"], "digest": i["digest"],
                "blobs": i["blobs"], "manifests": i["manifests"], "bytes": i["bytes"],
            })
        })
        .collect()
}

fn writes(reg: &Registry, mark: usize) -> Vec<String> {
    reg.access_log_since(mark)
        .iter()
        .filter(|a| a.method != "GET" && a.method != "HEAD")
        .map(ToString::to_string)
        .collect()
}

#[test]
fn sync_into_a_basic_auth_target_copies_every_image_then_moves_nothing() {
    let src = Registry::plain();
    seed(&src);
    let tgt = Registry::basic();
    let w = Work::new();
    let (user, pass) = tgt.credentials().unwrap();
    // Target credentials from DOCKER_CONFIG, as every registry client reads them.
    w.docker_login(&tgt.host(), &user, &pass);
    let base = vec![
        "--source-registry".to_string(),
        src.host(),
        "--target-registry".into(),
        tgt.host(),
        "--plain-http".into(),
        src.host(),
        "--plain-http".into(),
        tgt.host(),
        "--json".into(),
    ];

    // Put one image there first, so the plan has skips and mounts to predict.
    let mut args = base.clone();
    args.extend(["--image".into(), "atp/base:1.0.0".into()]);
    let o = sync(&w, &args);
    assert_ok(&o, "sync base");
    assert_eq!(
        json(&o)["images"][0]["target"],
        format!("{}/docker.io/atp/base:1.0.0", tgt.host())
    );

    // --dry-run only reads the target.
    let mut all = base.clone();
    all.extend(image_flags());
    let mark = tgt.access_mark();
    let mut dry = all.clone();
    dry.push("--dry-run".into());
    let o = sync(&w, &dry);
    assert_ok(&o, "sync --dry-run");
    let plan = json(&o);
    assert_eq!(plan["dry_run"], true);
    assert!(
        !tgt.access_log_since(mark).is_empty(),
        "the plan HEADs the target"
    );
    assert_eq!(writes(&tgt, mark), Vec::<String>::new(), "dry run wrote");
    assert_eq!(plan["images"].as_array().unwrap().len(), IMAGES.len());
    assert!(plan["uploaded"].as_u64().unwrap() > 0, "{plan:#}");
    assert!(
        plan["skipped"].as_u64().unwrap() > 0,
        "base blobs are there"
    );
    // The fixtures share a layer with the base image: mounted, not re-sent.
    assert!(plan["mounted"].as_u64().unwrap() > 0, "{plan:#}");
    let plain: Vec<String> = dry.iter().filter(|a| *a != "--json").cloned().collect();
    let o = sync(&w, &plain);
    assert_ok(&o, "sync --dry-run (text)");
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains(&format!(
            "docker.io/atp/router:1.4.0 -> {}/docker.io/atp/router:1.4.0",
            tgt.host()
        )),
        "{t}"
    );
    assert!(t.contains("(dry run: nothing written)"), "{t}");

    // The real sync moves exactly what the plan said.
    let mut real = all.clone();
    real.extend(["--metrics-file".into(), w.s("sync.prom")]);
    let o = sync(&w, &real);
    assert_ok(&o, "sync");
    let done = json(&o);
    assert_eq!(done["dry_run"], false);
    assert_eq!(moves(&done), moves(&plan));
    for k in [
        "uploaded",
        "mounted",
        "skipped",
        "bytes_uploaded",
        "manifests_pushed",
    ] {
        assert_eq!(done[k], plan[k], "{k}");
    }
    // Each blob the plan uploads was POSTed once; mounts went as mounts.
    let uploads = tgt
        .access_log_since(mark)
        .iter()
        .filter(|a| a.method == "PUT" && a.path.contains("/blobs/uploads/"))
        .count() as u64;
    assert_eq!(uploads, done["uploaded"].as_u64().unwrap());
    let mounts = tgt
        .access_log_since(mark)
        .iter()
        .filter(|a| a.method == "POST" && a.path.contains("mount=") && a.status == 201)
        .count() as u64;
    assert_eq!(mounts, done["mounted"].as_u64().unwrap());

    // skopeo sees every image, by digest, under the installer's mapping.
    for img in IMAGES {
        let r = format!("docker.io/atp/{}:{}", img.dir, img.tag);
        assert_eq!(skopeo_digest(&tgt, &r), fixtures::index_digest(img), "{r}");
    }
    promtool_accepts(&w.path("sync.prom"));
    let prom = std::fs::read_to_string(w.path("sync.prom")).unwrap();
    assert!(
        prom.contains(&format!(
            "onprem_image_sync_duration_seconds_count{{image=\"{}/docker.io/atp/router\"}} 1\n",
            tgt.host()
        )),
        "{prom}"
    );

    // A second sync moves zero blobs and pushes no manifest.
    let mark = tgt.access_mark();
    let o = sync(&w, &all);
    assert_ok(&o, "second sync");
    let again = json(&o);
    assert_eq!(
        writes(&tgt, mark),
        Vec::<String>::new(),
        "second sync wrote"
    );
    assert_eq!(again["uploaded"], 0);
    assert_eq!(again["mounted"], 0);
    assert_eq!(again["manifests_pushed"], 0);
    assert!(again["skipped"].as_u64().unwrap() > 0);
}

#[test]
fn synced_and_bundle_installed_images_land_under_the_same_references_and_digests() {
    let src = Registry::plain();
    seed(&src);
    let synced = Registry::plain();
    let installed = Registry::plain();
    let w = Work::new();

    // The bundle: the demo spec (fixture layouts, overlay), installed.
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let o = install(&w, &installed, "b.tar", &["--json"]);
    assert_ok(&o, "install");
    let inst = json(&o);

    // Sync the same images from the mirror, by a spec with registry names
    // whose overlay supplies the model loader (discoverImages).
    let spec = format!(
        "metadata: {{name: atp, version: 1.4.0}}\nspec:\n  channel: stable\n  sequence: 1\n  images:\n    - atp/router:1.4.0\n    - docker.io/atp/metrics-exporter:0.9.2\n  manifests:\n    root: {}\n    overlay: overlays/air-gapped\n    discoverImages: true\n",
        repo_root().join("manifests").display()
    );
    std::fs::write(w.path("spec.yaml"), spec).unwrap();
    let o = sync(
        &w,
        &[
            "--spec".into(),
            w.s("spec.yaml"),
            "--source-registry".into(),
            src.host(),
            "--target-registry".into(),
            synced.host(),
            "--plain-http".into(),
            src.host(),
            "--plain-http".into(),
            synced.host(),
            "--concurrency".into(),
            "3".into(),
            "--json".into(),
        ],
    );
    assert_ok(&o, "sync --spec");
    let sy = json(&o);

    let strip = |v: &Value, host: &str| -> Vec<(String, String, String)> {
        let mut l: Vec<_> = v["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let source = i["source"].as_str().or(i["reference"].as_str()).unwrap();
                let target = i["target"].as_str().unwrap();
                (
                    source.to_string(),
                    target
                        .strip_prefix(&format!("{host}/"))
                        .unwrap_or_else(|| panic!("{target} is not on {host}"))
                        .to_string(),
                    i["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        l.sort();
        l
    };
    let a = strip(&inst, &installed.host());
    let b = strip(&sy, &synced.host());
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(a, b);
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        let r = format!("docker.io/atp/{}:{}", img.dir, img.tag);
        let d = fixtures::index_digest(img);
        assert_eq!(skopeo_digest(&synced, &r), d, "{r}");
        assert_eq!(skopeo_digest(&installed, &r), d, "{r}");
    }

    // Installing the bundle into the synced registry finds everything there.
    let mark = synced.access_mark();
    let w2 = Work::new();
    assert_ok(&w2.create_demo("b.tar", &[]), "create");
    let o = install(&w2, &synced, "b.tar", &["--json"]);
    assert_ok(&o, "install over a synced registry");
    assert_eq!(json(&o)["uploaded"], 0);
    assert_eq!(json(&o)["manifests_pushed"], 0);
    assert_eq!(writes(&synced, mark), Vec::<String>::new());
}

#[test]
fn a_config_file_with_env_credentials_drives_sync_and_flags_override_it() {
    let src = Registry::plain();
    seed(&src);
    let tgt = Registry::basic();
    let w = Work::new();
    let (user, pass) = tgt.credentials().unwrap();
    let config = format!(
        "kind: SyncConfig\nsource: {{registry: \"{src}\"}}\ntarget:\n  registry: 127.0.0.1:1\n  repoPrefix: mirror\nimages:\n  - atp/router:1.4.0\n  - atp/model-loader:1.4.0\nconcurrency: 2\nregistries:\n  \"{src}\": {{plainHttp: true}}\n  \"{tgt}\":\n    plainHttp: true\n    credentials: {{usernameEnv: SYNC_USER, passwordEnv: SYNC_PASSWORD}}\n",
        src = src.host(),
        tgt = tgt.host()
    );
    std::fs::write(w.path("sync.yaml"), config).unwrap();
    let target = tgt.host();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "sync",
            "--config",
            "sync.yaml",
            "--target-registry",
            &target,
            "--json",
        ];
        args.extend_from_slice(extra);
        w.bundler_cmd(&args)
            .env("SYNC_USER", &user)
            .env("SYNC_PASSWORD", &pass)
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert_ok(&o, "sync --config");
    let v = json(&o);
    let targets: Vec<&str> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            format!("{}/mirror/docker.io/atp/router:1.4.0", tgt.host()),
            format!("{}/mirror/docker.io/atp/model-loader:1.4.0", tgt.host()),
        ]
    );
    assert_eq!(
        skopeo_digest(&tgt, "mirror/docker.io/atp/router:1.4.0"),
        fixtures::index_digest(&fixtures::ROUTER)
    );
    // The password never reaches the output.
    assert!(!text(&o).contains(&pass));

    // Flags win: --image replaces the file's list, --repo-prefix its prefix.
    let o = run(&[
        "--image",
        "atp/metrics-exporter:0.9.2",
        "--repo-prefix",
        "x",
    ]);
    assert_ok(&o, "sync --config with overrides");
    let v = json(&o);
    assert_eq!(v["images"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["images"][0]["target"],
        format!("{}/x/docker.io/atp/metrics-exporter:0.9.2", tgt.host())
    );

    // Without the password variable the error names it, not a value: a dry
    // run into that registry uses its credentials.
    let o = w
        .bundler_cmd(&[
            "sync",
            "--config",
            "sync.yaml",
            "--target-registry",
            &target,
            "--dry-run",
        ])
        .env_remove("SYNC_PASSWORD")
        .env("SYNC_USER", &user)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o).contains("SYNC_PASSWORD is not set"),
        "{}",
        text(&o)
    );
}

#[test]
fn nothing_to_sync_and_a_missing_target_are_refused_with_hints() {
    let w = Work::new();
    let o = w.bundler(&["sync", "--target-registry", "127.0.0.1:1"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no images to sync"), "{}", text(&o));
    assert!(text(&o).contains("hint:"), "{}", text(&o));
    let o = w.bundler(&["sync", "--image", "atp/router:1.4.0"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--registry HOST"), "{}", text(&o));
}

#[test]
fn a_source_reset_mid_blob_and_a_target_503_are_retried_and_the_sync_completes() {
    use atp_testkit::proxy::{Fault, Proxy, RetryAfter, Rule};
    let src = Registry::plain();
    fixtures::push(&src, &fixtures::ROUTER, "atp/router");
    let tgt = Registry::plain();
    let sp = Proxy::start(&src.host()).unwrap();
    let tp = Proxy::start(&tgt.host()).unwrap();
    // The router's largest layer: its source body is cut after 1000 bytes.
    let layer = std::fs::read_dir(fixtures::ROUTER.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap())
        .max_by_key(|e| (e.metadata().unwrap().len(), e.file_name()))
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    sp.add(Rule::new(
        "GET",
        &format!("/blobs/sha256:{layer}"),
        Fault::ResetResponseAfter(1000),
    ));
    // And the target refuses the first blob upload once.
    tp.add(Rule::new(
        "PUT",
        "/blobs/uploads/",
        Fault::Status {
            status: 503,
            retry_after: Some(RetryAfter::Seconds(0)),
        },
    ));
    let w = Work::new();
    let o = sync(
        &w,
        &[
            "--image".into(),
            "atp/router:1.4.0".into(),
            "--source-registry".into(),
            sp.host(),
            "--target-registry".into(),
            tp.host(),
            "--plain-http".into(),
            sp.host(),
            "--plain-http".into(),
            tp.host(),
            "--concurrency".into(),
            "1".into(),
            "--json".into(),
        ],
    );
    assert_ok(&o, "sync through faults");
    assert_eq!(sp.faults().len(), 1, "{:?}", sp.events());
    assert_eq!(tp.faults().len(), 1, "{:?}", tp.events());
    assert_eq!(
        skopeo_digest(&tgt, "docker.io/atp/router:1.4.0"),
        fixtures::index_digest(&fixtures::ROUTER)
    );
    // The retried layer went up whole: the registry accepted its digest.
    let v = json(&o);
    assert!(v["images"][0]["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["digest"] == format!("sha256:{layer}") && b["action"] == "upload"));
    assert!(text(&o).contains("retrying"), "{}", text(&o));
}

#[test]
fn a_token_auth_source_and_a_tls_target_with_shared_layers_mounted() {
    let src = Registry::token();
    seed(&src);
    let tgt = Registry::tls();
    let w = Work::new();
    // Source credentials from DOCKER_CONFIG; the target is anonymous over TLS.
    let (user, pass) = src.credentials().unwrap();
    w.docker_login(&src.host(), &user, &pass);
    let mut args = vec![
        "--source-registry".to_string(),
        src.host(),
        "--plain-http".into(),
        src.host(),
        "--target-registry".into(),
        tgt.host(),
        "--target-ca".into(),
        tgt.ca_cert_path().unwrap().display().to_string(),
        "--json".into(),
    ];
    args.extend(image_flags());
    let o = sync(&w, &args);
    assert_ok(&o, "sync token -> tls");
    let v = json(&o);
    for img in IMAGES {
        let r = format!("docker.io/atp/{}:{}", img.dir, img.tag);
        assert_eq!(skopeo_digest(&tgt, &r), fixtures::index_digest(img), "{r}");
    }
    // A layer several fixtures share is uploaded once and mounted elsewhere.
    assert!(v["mounted"].as_u64().unwrap() > 0, "{v:#}");
    let mounts = tgt
        .access_log()
        .iter()
        .filter(|a| a.method == "POST" && a.path.contains("mount=") && a.status == 201)
        .count() as u64;
    assert_eq!(mounts, v["mounted"].as_u64().unwrap());
    assert!(!src.token_requests().is_empty());
}

#[test]
fn the_demo_spec_syncs_straight_from_its_oci_layouts() {
    let tgt = Registry::plain();
    let w = Work::new();
    let spec = repo_root().join("manifests/bundle.yaml");
    let o = sync(
        &w,
        &[
            "--spec".into(),
            spec.display().to_string(),
            "--target-registry".into(),
            tgt.host(),
            "--plain-http".into(),
            tgt.host(),
            "--json".into(),
        ],
    );
    assert_ok(&o, "sync --spec manifests/bundle.yaml");
    let v = json(&o);
    assert_eq!(v["images"].as_array().unwrap().len(), 3, "{v:#}");
    for i in v["images"].as_array().unwrap() {
        assert!(i["from"].as_str().unwrap().starts_with("oci:"), "{i}");
    }
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        let r = format!("docker.io/atp/{}:{}", img.dir, img.tag);
        assert_eq!(skopeo_digest(&tgt, &r), fixtures::index_digest(img), "{r}");
    }
}

/// Issue 22, item 9: the shipped sample config could not even dry-run
/// without `ATP_SYNC_USERNAME`, the credentials of a registry the run, with
/// its target given by a flag, never talks to (nor its CA file, not there).
#[test]
fn the_shipped_sample_config_dry_runs_against_the_demo_without_credentials() {
    let src = Registry::plain();
    seed(&src);
    let tgt = Registry::plain();
    let w = Work::new();
    let sample = repo_root().join("manifests/sync-config.yaml");
    let (s, t) = (src.host(), tgt.host());
    let o = w
        .bundler_cmd(&[
            "sync",
            "--config",
            sample.to_str().unwrap(),
            "--source-registry",
            &s,
            "--plain-http",
            &s,
            // The site registry as install spells it (issue 22, item 6).
            "--registry",
            &t,
            "--plain-http",
            "--dry-run",
            "--json",
        ])
        .env_remove("ATP_SYNC_USERNAME")
        .env_remove("ATP_SYNC_PASSWORD")
        .output()
        .unwrap();
    assert_ok(&o, "sync --config manifests/sync-config.yaml --dry-run");
    let v = json(&o);
    assert_eq!(v["dry_run"], true);
    assert!(!v["images"].as_array().unwrap().is_empty(), "{v:#}");
}

/// Issue 22, item 6: sync spells the site registry's flags as install does;
/// the `--target-*` spellings still work and are not shown.
#[test]
fn sync_names_the_site_registry_as_install_does_and_hides_the_old_spellings() {
    let w = Work::new();
    let help = String::from_utf8_lossy(&w.bundler(&["sync", "--help"]).stdout).into_owned();
    for flag in [
        "--registry <",
        "--registry-ca",
        "--username",
        "--password-stdin",
        "--plain-http",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    assert!(!help.contains("--target-"), "{help}");
    let installer =
        String::from_utf8_lossy(&w.installer(&["install", "--help"]).stdout).into_owned();
    for flag in [
        "--registry <",
        "--registry-ca",
        "--username",
        "--password-stdin",
        "--plain-http",
    ] {
        assert!(installer.contains(flag), "install has no {flag}");
    }
}
