//! Issue 17 end to end: what `atp-installer install` puts in the site
//! registry is what real node runtimes pull. containerd 1.6 (`ctr image
//! pull`, its own daemon per test) and podman 4.3 pull every image reference
//! of the rendered output, by digest, from the registry in plain HTTP, TLS
//! (the site CA) and basic-auth modes; the digest each reports is the
//! bundle's, and the registry's access log shows the pulls. The demo bundle
//! carries a multi-arch OCI index (router), an OCI manifest (model-loader)
//! and a Docker schema 2 manifest (metrics-exporter).
//!
//! Then `atp-installer mirrors` (and `install --mirrors-to`): with only the
//! generated node config, both runtimes pull the unmodified upstream
//! references (`docker.io/atp/router:1.4.0`, and one from a second upstream)
//! from the site registry.

mod common;

use atp_testkit::containerd::{self, Containerd, Pull};
use atp_testkit::fixtures::{self, IMAGES};
use atp_testkit::podman::{Podman, PodmanPull};
use atp_testkit::{Access, Registry};
use common::*;

/// Install the demo bundle into `reg`; the image references of the rendered
/// output (`REGISTRY/…@sha256:…`), each with the bundle's digest for it.
fn install_demo(w: &Work, reg: &Registry) -> Vec<(String, String)> {
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = install(w, reg, "b.tar", &["--json"]);
    assert_ok(&out, "install");
    let v = json(&out);
    let rendered = std::fs::read_to_string(v["rendered"].as_str().unwrap()).unwrap();
    let refs: Vec<String> = rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .map(|i| i.trim_matches('"').to_owned())
        .collect();
    assert_eq!(refs.len(), 3, "{rendered}");
    refs.into_iter()
        .map(|r| {
            let img = IMAGES
                .iter()
                .find(|i| r.contains(&format!("/docker.io/atp/{}@", i.dir)))
                .unwrap_or_else(|| panic!("{r} is not a demo image"));
            let digest = fixtures::index_digest(img);
            assert!(
                r.ends_with(&format!("@{digest}")),
                "{r} is not pinned to {digest}"
            );
            (r, digest)
        })
        .collect()
}

/// The repository path of `REGISTRY/REPO@DIGEST`.
fn repo_of(reference: &str) -> &str {
    let (no_digest, _) = reference.split_once('@').unwrap();
    no_digest.split_once('/').unwrap().1
}

/// Every repository in `repos` had its manifest and its blobs served (200)
/// in `log`.
fn assert_served(log: &[Access], repos: &[&str], who: &str) {
    for repo in repos {
        let ok = |kind: &str| {
            log.iter().any(|a| {
                a.status == 200
                    && a.method == "GET"
                    && a.path.starts_with(&format!("/v2/{repo}/{kind}/"))
            })
        };
        assert!(
            ok("manifests") && ok("blobs"),
            "{who}: no manifest and blob GETs for {repo} in the access log:\n{}",
            log.iter().map(|a| format!("  {a}\n")).collect::<String>()
        );
    }
}

/// containerd, then podman, pull every reference; each reports the bundle's
/// digest and the registry logs the pulls.
fn both_runtimes_pull(reg: &Registry, refs: &[(String, String)], ctr: &Pull, pod: &PodmanPull) {
    let repos: Vec<&str> = refs.iter().map(|(r, _)| repo_of(r)).collect();

    let daemon = Containerd::start().unwrap();
    let mark = reg.access_mark();
    for (reference, digest) in refs {
        let got = daemon.pull(reference, ctr).unwrap();
        assert_eq!(&got, digest, "containerd pulled {reference}");
    }
    assert_served(&reg.access_log_since(mark), &repos, "containerd");

    let podman = Podman::new().unwrap();
    let mark = reg.access_mark();
    for (reference, digest) in refs {
        let got = podman.pull(reference, pod).unwrap();
        assert_eq!(&got, digest, "podman pulled {reference}");
    }
    assert_served(&reg.access_log_since(mark), &repos, "podman");
}

#[test]
fn runtimes_pull_every_rendered_image_from_a_plain_http_registry() {
    let reg = Registry::plain();
    let w = Work::new();
    let refs = install_demo(&w, &reg);
    both_runtimes_pull(&reg, &refs, &Pull::direct(&reg), &PodmanPull::direct(&reg));
}

#[test]
fn runtimes_pull_every_rendered_image_over_tls_trusting_the_site_ca() {
    let reg = Registry::tls();
    let w = Work::new();
    let refs = install_demo(&w, &reg);
    // containerd as a node has it: certs.d/HOST:PORT/hosts.toml naming the CA.
    let hosts = containerd::site_hosts_dir(&reg, &w.path("certs.d")).unwrap();
    let pod = PodmanPull::direct(&reg);
    assert!(pod.cert_dir.is_some() && !pod.insecure);
    both_runtimes_pull(&reg, &refs, &Pull::hosts_dir(hosts), &pod);
}

#[test]
fn runtimes_pull_every_rendered_image_with_basic_auth_credentials() {
    let reg = Registry::basic();
    let w = Work::new();
    let refs = install_demo(&w, &reg);
    let ctr = Pull::direct(&reg);
    assert!(ctr.user.is_some());
    both_runtimes_pull(&reg, &refs, &ctr, &PodmanPull::direct(&reg));
    // Without credentials the same pull is refused: the registry really asks.
    let daemon = Containerd::start().unwrap();
    let anonymous = Pull::direct(&reg).user(None);
    assert!(daemon.pull(&refs[0].0, &anonymous).is_err());
}

/// The demo images plus `ghcr.io/atp/base:1.0.0` (a second upstream), as a
/// bundle `b.tar` in the workdir.
fn create_two_upstreams(w: &Work) {
    let base = format!(
        "{{source: \"oci:{}:{}\", name: \"{SECOND_UPSTREAM}\"}}",
        fixtures::BASE.path().display(),
        fixtures::BASE.tag
    );
    let spec = demo_spec(w, "spec.yaml", 1, &[base]);
    let mut c = w.bundler_cmd(&[
        "create", "--spec", &spec, "--key", "k.key", "--output", "b.tar",
    ]);
    c.env("SOURCE_DATE_EPOCH", "1790000000");
    assert_ok(&c.output().unwrap(), "create");
}

const SECOND_UPSTREAM: &str = "ghcr.io/atp/base:1.0.0";

/// Every upstream reference of the two-upstream bundle, with its digest.
fn upstream_refs() -> Vec<(String, String)> {
    IMAGES
        .iter()
        .map(|i| {
            let r = if i.dir == "base" {
                SECOND_UPSTREAM.to_owned()
            } else {
                i.reference.to_owned()
            };
            (r, fixtures::index_digest(i))
        })
        .collect()
}

/// The site-registry repositories of the upstream references under `prefix`.
fn mirrored_repos(prefix: &str) -> Vec<String> {
    upstream_refs()
        .iter()
        .map(|(r, _)| {
            let repo = r.rsplit_once(':').unwrap().0;
            format!("{prefix}{repo}")
        })
        .collect()
}

/// With only the generated files, containerd (`--hosts-dir
/// DIR/containerd/certs.d`) and podman (`CONTAINERS_REGISTRIES_CONF` = the
/// drop-in, `--cert-dir` its CA folder under TLS) pull every upstream
/// reference by tag and get the bundle's digest, served by the site registry.
fn runtimes_pull_upstream_names(reg: &Registry, dir: &std::path::Path, prefix: &str) {
    let refs = upstream_refs();
    let repos = mirrored_repos(prefix);
    let repos: Vec<&str> = repos.iter().map(String::as_str).collect();

    let daemon = Containerd::start().unwrap();
    let mark = reg.access_mark();
    let how = Pull::hosts_dir(dir.join("containerd/certs.d"));
    for (reference, digest) in &refs {
        let got = daemon.pull(reference, &how).unwrap();
        assert_eq!(&got, digest, "containerd pulled {reference}");
    }
    assert_served(&reg.access_log_since(mark), &repos, "containerd");

    let podman = Podman::new().unwrap();
    let mark = reg.access_mark();
    let how = PodmanPull {
        registries_conf: Some(dir.join("containers/registries.conf.d/50-atp-offline.conf")),
        cert_dir: reg
            .ca_cert_path()
            .map(|_| dir.join("containers/certs.d").join(reg.host())),
        ..PodmanPull::default()
    };
    for (reference, digest) in &refs {
        let got = podman.pull(reference, &how).unwrap();
        assert_eq!(&got, digest, "podman pulled {reference}");
    }
    assert_served(&reg.access_log_since(mark), &repos, "podman");
}

/// Every file under `dir`, relative, with its contents.
fn tree(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `atp-installer mirrors b.tar` against `reg` (no credentials: the files
/// carry none), the mapping flags in `extra`.
fn mirrors_cmd(
    w: &Work,
    reg: &Registry,
    output: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "mirrors".to_string(),
        "b.tar".into(),
        "--key".into(),
        w.pubkey(),
        "--registry".into(),
        reg.host(),
        "--output".into(),
        output.display().to_string(),
    ];
    match reg.ca_cert_path() {
        Some(ca) => args.extend(["--registry-ca".into(), ca.display().to_string()]),
        None => args.push("--plain-http".into()),
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    w.installer(&argv)
}

#[test]
fn mirror_config_alone_lets_both_runtimes_pull_upstream_references_over_plain_http() {
    let reg = Registry::plain();
    let w = Work::new();
    create_two_upstreams(&w);
    // Beside the bundle's folder, not in it.
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("mirrors");
    let installed = install(&w, &reg, "b.tar", &["--mirrors-to", dir.to_str().unwrap()]);
    assert_ok(&installed, "install --mirrors-to");

    let hosts =
        std::fs::read_to_string(dir.join("containerd/certs.d/docker.io/hosts.toml")).unwrap();
    assert!(
        hosts.contains(&format!("[host.\"http://{}/v2/docker.io\"]", reg.host()))
            && hosts.contains("override_path = true"),
        "{hosts}"
    );
    assert!(dir.join("containerd/certs.d/ghcr.io/hosts.toml").is_file());
    let conf =
        std::fs::read_to_string(dir.join("containers/registries.conf.d/50-atp-offline.conf"))
            .unwrap();
    assert!(conf.contains("insecure = true"), "{conf}");
    assert!(std::fs::read_to_string(dir.join("README.md"))
        .unwrap()
        .contains("/etc/containerd/certs.d"));

    // The `mirrors` command writes the very same files from the bundle alone.
    let again = out.path().join("again");
    assert_ok(&mirrors_cmd(&w, &reg, &again, &[]), "mirrors");
    assert_eq!(tree(&dir), tree(&again));
    // And so does it from the install's receipt, without the bundle.
    let from_receipt = out.path().join("from-receipt");
    let o = w.installer(&[
        "mirrors",
        "--state-dir",
        &w.s("state"),
        "--registry",
        &reg.host(),
        "--plain-http",
        "--output",
        from_receipt.to_str().unwrap(),
    ]);
    assert_ok(&o, "mirrors --state-dir");
    assert_eq!(tree(&dir), tree(&from_receipt));

    runtimes_pull_upstream_names(&reg, &dir, "");
}

#[test]
fn mirror_config_with_a_repo_prefix_and_the_site_ca_works_over_tls() {
    let reg = Registry::tls();
    let w = Work::new();
    create_two_upstreams(&w);
    let install_out = install(&w, &reg, "b.tar", &["--repo-prefix", "site"]);
    assert_ok(&install_out, "install");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("mirrors");
    let made = mirrors_cmd(&w, &reg, &dir, &["--repo-prefix", "site", "--json"]);
    assert_ok(&made, "mirrors");
    let v = json(&made);
    let hosts: Vec<&str> = v["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["docker.io", "ghcr.io"]);
    let toml = std::fs::read_to_string(dir.join("containerd/certs.d/ghcr.io/hosts.toml")).unwrap();
    assert!(
        toml.contains(&format!(
            "[host.\"https://{}/v2/site/ghcr.io\"]",
            reg.host()
        )) && toml.contains("ca = \"site-ca.crt\""),
        "{toml}"
    );
    let conf =
        std::fs::read_to_string(dir.join("containers/registries.conf.d/50-atp-offline.conf"))
            .unwrap();
    assert!(!conf.contains("insecure"), "{conf}");

    // The refs of the first upstream land under site/docker.io/…, the second's under site/ghcr.io/….
    let refs = mirrored_repos("site/");
    assert!(
        refs.contains(&"site/ghcr.io/atp/base".to_string()),
        "{refs:?}"
    );
    runtimes_pull_upstream_names(&reg, &dir, "site/");
}

#[test]
fn mirrors_refuses_what_a_prefix_cannot_express_and_output_on_the_bundles_media() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = tempfile::tempdir().unwrap();

    // The flat layout renames docker.io/atp/router to router: named, nothing written.
    let dir = out.path().join("flat");
    let o = mirrors_cmd(&w, &reg, &dir, &["--layout", "flat"]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for i in IMAGES.iter().filter(|i| i.dir != "base") {
        assert!(err.contains(i.reference), "{err}");
    }
    assert!(err.contains(&format!("{}/router", reg.host())), "{err}");
    assert!(!dir.exists());

    // A mapping file that keeps paths under one prefix per upstream is fine.
    let map = w.path("map.yaml");
    std::fs::write(
        &map,
        "docker.io/atp/router: mirror/atp/router\ndocker.io/atp/model-loader: mirror/atp/model-loader\ndocker.io/atp/metrics-exporter: mirror/atp/metrics-exporter\n",
    )
    .unwrap();
    let dir = out.path().join("mapped");
    let o = mirrors_cmd(&w, &reg, &dir, &["--mapping-file", map.to_str().unwrap()]);
    assert_ok(&o, "mirrors --mapping-file");
    let hosts =
        std::fs::read_to_string(dir.join("containerd/certs.d/docker.io/hosts.toml")).unwrap();
    assert!(hosts.contains("/v2/mirror\"]"), "{hosts}");

    // --output on the bundle's own folder is refused before anything is written.
    let o = mirrors_cmd(&w, &reg, &w.path("node-config"), &[]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("inside the bundle's folder"),
        "{}",
        text(&o)
    );
    assert!(!w.path("node-config").exists());
    let leftovers: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".atp-mirrors"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
