//! Helpers shared by the `supply_chain_*` tests: an upstream registry whose
//! image carries a supply chain made by the independent writer
//! (`atp_testkit::supply_chain`), bundles of it made by `atp-bundler
//! create`, `atp-installer serve` on a free port, and the checks that say
//! "the site holds the upstream chain and it verifies there".
#![allow(dead_code)]

use atp_testkit::fixtures::{self, BASE};
use atp_testkit::supply_chain::{UpstreamKey, Writer};
use atp_testkit::Registry;
use serde_json::Value;

use crate::common::*;

/// A source registry holding the base image with its supply chain, and a
/// bundle of it made by `atp-bundler create`.
pub struct Upstream {
    pub src: Registry,
    pub key: UpstreamKey,
    pub chain: atp_testkit::supply_chain::SupplyChain,
    pub subject: String,
}

pub fn upstream() -> Upstream {
    let src = Registry::plain();
    let subject = fixtures::push(&src, &BASE, "atp/base");
    let key = UpstreamKey::generate();
    let reference = format!("{}/atp/base:1.0.0", src.host());
    let chain = Writer::new(&src).write_supply_chain("atp/base", &subject, &reference, &key);
    Upstream {
        src,
        key,
        chain,
        subject,
    }
}

pub fn create(w: &Work, up: &Upstream, out: &str, sequence: u64) {
    let spec = format!(
        "metadata: {{name: sc, version: '1.{sequence}'}}\nspec:\n  channel: stable\n  sequence: {sequence}\n  images:\n    - {}/atp/base:1.0.0\n",
        up.src.host()
    );
    std::fs::write(w.path("spec.yaml"), spec).unwrap();
    let o = w.bundler(&[
        "create",
        "--spec",
        "spec.yaml",
        "--key",
        "k.key",
        "--output",
        out,
        "--plain-http",
        &up.src.host(),
    ]);
    assert_ok(&o, "create");
}

pub fn site_puts(reg: &Registry, mark: usize) -> Vec<String> {
    reg.access_log_since(mark)
        .into_iter()
        .filter(|a| a.method == "PUT")
        .map(|a| a.to_string())
        .collect()
}

pub fn digests(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The site holds the upstream supply chain for `repo`: the signature
/// verifies from there and the fallback index lists the SBOM and attestation.
pub fn assert_site_has_the_chain(site: &Registry, repo: &str, up: &Upstream) {
    let sw = Writer::new(site);
    let payload = sw
        .verified_signature(repo, &up.subject, up.key.public_pem_path())
        .unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        up.subject
    );
    let entries = sw.fallback_entries(repo, &up.subject);
    assert_eq!(
        digests(&entries),
        [
            up.chain.sbom.digest.clone(),
            up.chain.attestation.digest.clone()
        ]
    );
}

/// `atp-installer serve` on a free loopback port; killed on drop.
pub struct Served {
    child: std::process::Child,
    pub host: String,
}

impl Served {
    pub fn start(w: &Work, bundle: &str) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let child = w
            .installer_cmd(&["serve", bundle, "--key", "k.pub", "--listen", &host])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let s = Served { child, host };
        for _ in 0..600 {
            if s.get("/v2/").0 == "200" {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("serve did not answer /v2/ within 60s");
    }

    /// GET `path`: the status code and the body.
    pub fn get(&self, path: &str) -> (String, Vec<u8>) {
        let o = std::process::Command::new("curl")
            .args(["-sS", "--noproxy", "*", "-w", "\n%{http_code}"])
            .arg(format!("http://{}{path}", self.host))
            .output()
            .unwrap();
        let mut body = o.stdout;
        let nl = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
        let code = String::from_utf8_lossy(&body[(nl + 1).min(body.len())..]).to_string();
        body.truncate(nl);
        (code, body)
    }
}

impl Served {
    /// GET `path`: the response headers (lower-cased names) and the body.
    pub fn get_with_headers(&self, path: &str) -> (String, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let (h, b) = (dir.path().join("h"), dir.path().join("b"));
        let o = std::process::Command::new("curl")
            .args(["-sS", "--noproxy", "*", "-D"])
            .arg(&h)
            .arg("-o")
            .arg(&b)
            .arg(format!("http://{}{path}", self.host))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let headers = std::fs::read_to_string(&h).unwrap().to_ascii_lowercase();
        (headers, std::fs::read(&b).unwrap())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn create_router(w: &Work, src: &Registry, out: &str, sequence: u64) {
    let spec = format!(
        "metadata: {{name: sc, version: '1.{sequence}'}}\nspec:\n  channel: stable\n  sequence: {sequence}\n  images:\n    - {}/atp/router:1.4.0\n",
        src.host()
    );
    std::fs::write(w.path("router.yaml"), spec).unwrap();
    let o = w.bundler(&[
        "create",
        "--spec",
        "router.yaml",
        "--key",
        "k.key",
        "--output",
        out,
        "--plain-http",
        &src.host(),
    ]);
    assert_ok(&o, "create");
}
