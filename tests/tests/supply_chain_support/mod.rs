//! Helpers shared by the `supply_chain_*` tests: an upstream registry whose
//! image carries a supply chain made by the independent writer
//! (`atp_testkit::supply_chain`), bundles of any images made by `atp-bundler
//! create` ([`Bundle`], the one place these tests spell that command),
//! `atp-installer serve` on a free port, and the checks that say "the site
//! holds the upstream chain and it verifies there".
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

/// A bundle of the upstream base image, channel `stable`, at `sequence`.
pub fn create(w: &Work, up: &Upstream, out: &str, sequence: u64) {
    Bundle::new(w, &up.src)
        .image(format!("{}/atp/base:1.0.0", up.src.host()))
        .sequence(sequence)
        .create(out);
}

/// `atp-bundler create --key k.key` of `spec` into `out`, reading the
/// sources over plain HTTP from `plain_http` when given, with `extra` flags.
pub fn create_cmd(
    w: &Work,
    spec: &str,
    out: &str,
    plain_http: Option<&str>,
    extra: &[&str],
) -> std::process::Command {
    let mut args = vec!["create", "--spec", spec, "--key", "k.key", "--output", out];
    if let Some(host) = plain_http {
        args.extend(["--plain-http", host]);
    }
    args.extend_from_slice(extra);
    w.bundler_cmd(&args)
}

/// A bundle of images from one source registry (read over plain HTTP):
/// the spec (`name: sc`, channel `stable`, sequence 1, version
/// `1.SEQUENCE` unless set) is written beside the bundle as `OUT.spec.yaml`.
pub struct Bundle<'a> {
    w: &'a Work,
    src: String,
    name: String,
    version: Option<String>,
    channel: String,
    sequence: u64,
    images: Vec<String>,
    args: Vec<String>,
}

impl<'a> Bundle<'a> {
    pub fn new(w: &'a Work, src: &Registry) -> Self {
        Bundle {
            w,
            src: src.host(),
            name: "sc".into(),
            version: None,
            channel: "stable".into(),
            sequence: 1,
            images: Vec::new(),
            args: Vec::new(),
        }
    }

    /// One image: `HOST/repo:tag`, or any item the spec takes.
    pub fn image(mut self, item: impl Into<String>) -> Self {
        self.images.push(item.into());
        self
    }

    pub fn images<S: Into<String>>(mut self, items: impl IntoIterator<Item = S>) -> Self {
        self.images.extend(items.into_iter().map(Into::into));
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn version(mut self, version: &str) -> Self {
        self.version = Some(version.into());
        self
    }

    pub fn channel(mut self, channel: &str) -> Self {
        self.channel = channel.into();
        self
    }

    pub fn sequence(mut self, sequence: u64) -> Self {
        self.sequence = sequence;
        self
    }

    /// More `create` flags (`--base b1.tar`, `--json`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Write the spec and run `create`: its output, whatever it is.
    pub fn output(&self, out: &str) -> std::process::Output {
        let version = (self.version.clone()).unwrap_or_else(|| format!("1.{}", self.sequence));
        let images: String = self.images.iter().map(|i| format!("    - {i}\n")).collect();
        let spec = format!(
            "metadata: {{name: {}, version: '{version}'}}\nspec:\n  channel: {}\n  sequence: {}\n  images:\n{images}",
            self.name, self.channel, self.sequence
        );
        let spec_file = format!("{out}.spec.yaml");
        std::fs::write(self.w.path(&spec_file), spec).unwrap();
        let extra: Vec<&str> = self.args.iter().map(String::as_str).collect();
        create_cmd(self.w, &spec_file, out, Some(&self.src), &extra)
            .output()
            .unwrap()
    }

    /// Write the spec and run `create`, which must succeed.
    pub fn create(&self, out: &str) {
        assert_ok(&self.output(out), &format!("create {out}"));
    }
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
