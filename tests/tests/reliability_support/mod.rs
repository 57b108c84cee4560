//! Helpers shared by the `reliability_*` tests: a demo bundle that also
//! carries one image with a multi-chunk layer, installs through a fault proxy,
//! and the checks that say "the registry holds exactly what the bundle holds".
//!
//! Never talks to anything but 127.0.0.1; never changes the product.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use atp_testkit::cli::Install;
use atp_testkit::fixtures::{self, IMAGES};
use atp_testkit::proxy::Proxy;
use atp_testkit::Registry;

use crate::common::*;

/// Size of the big layer: over the client's 16 MiB monolithic limit, so it
/// goes up as one 16 MiB PATCH and a final PUT with the rest.
pub const BIG_LAYER: usize = (16 << 20) + (3 << 20);

/// The demo bundle plus `docker.io/atp/big:1.0` (one layer of [`BIG_LAYER`]
/// bytes), created as `b.tar` in `w`. Returns the big image's manifest
/// digest and its layer digest.
pub fn big_demo(w: &Work) -> (String, String) {
    big_layout(&w.path("big"), 1, BIG_LAYER, 7);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("big/index.json")).unwrap()).unwrap();
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            w.path("big/blobs/sha256")
                .join(manifest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let extra = format!(
        "{{source: \"oci:{}:1.0\", name: \"docker.io/atp/big:1.0\"}}",
        w.path("big").display()
    );
    let spec = demo_spec(w, "spec.yaml", 1, &[extra]);
    let mut c = w.bundler_cmd(&[
        "create", "--spec", &spec, "--key", "k.key", "--output", "b.tar",
    ]);
    c.env("SOURCE_DATE_EPOCH", "1790000000");
    assert_ok(&c.output().unwrap(), "create");
    (manifest, layer)
}

/// `install b.tar` against `host` over plain HTTP (a proxy or a plain
/// registry), state in `state`, then `extra`.
pub fn install_at(w: &Work, host: &str, extra: &[&str]) -> Install {
    w.install("b.tar").plain_http(host).args(extra)
}

/// Run an install against `host` to the end.
pub fn install_to(w: &Work, host: &str, extra: &[&str]) -> Output {
    install_at(w, host, extra).output()
}

/// Start an install against `host` in the background.
pub fn spawn_install(w: &Work, host: &str, extra: &[&str]) -> Child {
    install_at(w, host, extra).spawn()
}

/// Poll `cond` every 10 ms for up to 90 s.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Blob commits (`PUT .../blobs/uploads/...?digest=` answered 201) per digest.
pub fn commits(reg: &Registry) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for a in reg.access_log() {
        if a.method == "PUT" && a.path.contains("/blobs/uploads/") && a.status == 201 {
            if let Some(d) = a.path.split("digest=").nth(1) {
                let d = d.split('&').next().unwrap().replace("%3A", ":");
                *out.entry(d).or_default() += 1;
            }
        }
    }
    out
}

/// The registry holds every image of the bundle by the right digest (skopeo
/// reads each manifest by tag), and the big layer was committed exactly once.
pub fn assert_installed(reg: &Registry, big_manifest: &str, big_layer: &str) {
    for img in IMAGES.iter().filter(|i| i.dir != "base") {
        let repo = format!("docker.io/atp/{}:{}", img.dir, img.tag);
        assert_eq!(
            skopeo_digest(reg, &repo),
            fixtures::index_digest(img),
            "{repo}"
        );
    }
    assert_eq!(skopeo_digest(reg, "docker.io/atp/big:1.0"), big_manifest);
    let c = commits(reg);
    assert_eq!(c.get(big_layer), Some(&1), "big layer commits: {c:?}");
    assert!(
        c.values().all(|n| *n == 1),
        "a blob was committed twice: {c:?}"
    );
    // HEAD on the big layer through the registry's own API.
    let head = head(reg, &format!("/v2/docker.io/atp/big/blobs/{big_layer}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("docker-content-digest: {big_layer}")),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-length: {BIG_LAYER}")),
        "{head}"
    );
}

/// A raw `HEAD path` to the (plain) registry; the response head as text.
pub fn head(reg: &Registry, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(reg.host()).unwrap();
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        reg.host()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A proxy in front of `reg`.
pub fn proxy(reg: &Registry) -> Proxy {
    Proxy::start(&reg.host()).unwrap()
}

/// `rendered.yaml` of the last install in `state`, with `host` replaced by
/// `REGISTRY` so runs against different registries compare.
pub fn rendered(w: &Work, state: &str, host: &str) -> String {
    let dir = w.path(state).join("render");
    let mut found = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path().join("rendered.yaml");
        if p.is_file() {
            found.push(p);
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    std::fs::read_to_string(&found[0])
        .unwrap()
        .replace(host, "REGISTRY")
}
