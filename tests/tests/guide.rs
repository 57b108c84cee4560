//! Every shell block in docs/guide.md that needs no cluster runs against the
//! current binaries, in document order, in one sandbox: unmarked blocks and
//! `<!-- needs: bundle -->` blocks (which only need the key and bundle that
//! earlier blocks made). Those that name the example site registry
//! `registry.site.example:5000` run against a harness registry (TLS, basic
//! auth) put in its place, with its CA and user, and a state dir in the
//! sandbox, so the documented flags cannot drift. Blocks marked
//! `<!-- needs: cluster -->` are listed and counted but not run: no
//! Kubernetes API server exists here, and the guide says so.

mod common;

use std::process::Command;

use atp_testkit::{Auth, Registry, RegistryOptions};
use common::*;

/// The site registry the guide's examples name.
const SITE_REGISTRY: &str = "registry.site.example:5000";

struct Block {
    line: usize,
    marker: Option<String>,
    body: String,
}

fn sh_blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut marker = None;
    let mut lines = md.lines().enumerate();
    while let Some((i, l)) = lines.next() {
        let t = l.trim();
        if let Some(m) = t.strip_prefix("<!-- needs:") {
            marker = Some(m.trim_end_matches("-->").trim().to_string());
            continue;
        }
        if t == "```sh" || t == "```bash" {
            let mut body = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            out.push(Block {
                line: i + 1,
                marker: marker.take(),
                body,
            });
        } else if !t.is_empty() {
            marker = None;
        }
    }
    out
}

#[test]
fn the_guides_commands_work_against_the_current_code() {
    let root = repo_root();
    let md = std::fs::read_to_string(root.join("docs/guide.md")).unwrap();
    let blocks = sh_blocks(&md);
    assert!(
        blocks.len() >= 10,
        "found only {} shell blocks",
        blocks.len()
    );
    let sandbox = tempfile::tempdir().unwrap();
    for dir in ["manifests", "fixtures", ".venv"] {
        std::os::unix::fs::symlink(root.join(dir), sandbox.path().join(dir)).unwrap();
    }
    let bins = atp_testkit::bins::bin("atp-bundler");
    let path = format!(
        "{}:{}",
        bins.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let site = Registry::start(RegistryOptions {
        auth: Auth::Basic,
        tls: true,
        ..Default::default()
    })
    .expect("starting the site registry");
    let (user, password) = site.credentials().unwrap();
    // `~` of those blocks: local disk, outside the bundle's folder.
    let home = tempfile::tempdir().unwrap();
    let ca = site.ca_cert_path().unwrap();
    let (mut ran, mut skipped, mut on_site) = (Vec::new(), Vec::new(), Vec::new());
    for b in &blocks {
        let runnable = matches!(b.marker.as_deref(), None | Some("bundle"));
        if !runnable {
            skipped.push(b.line);
            continue;
        }
        let body = if b.body.contains(SITE_REGISTRY) {
            on_site.push(b.line);
            // The harness registry, its CA and user in the example's place;
            // install's and simulate's state dir in the sandbox, not /var/lib.
            format!(
                "atp-installer() {{ case \"$1\" in install|simulate) command atp-installer \"$@\" --state-dir \"$PWD/state\";; *) command atp-installer \"$@\";; esac; }}\n{}",
                b.body
                    .replace(SITE_REGISTRY, &site.host())
                    .replace("/etc/pki/site-ca.crt", ca.to_str().unwrap())
                    .replace("--username atp-push", &format!("--username {user}"))
            )
        } else {
            b.body.clone()
        };
        assert!(
            !body.contains("registry.site.example"),
            "docs/guide.md:{} names the example registry other than as {SITE_REGISTRY}",
            b.line
        );
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &body])
            .current_dir(sandbox.path())
            .env("PATH", &path)
            .env("REGISTRY_PASSWORD", &password)
            .env("HOME", home.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "guide block at docs/guide.md:{} failed:\n{}\n{}",
            b.line,
            b.body,
            text(&out)
        );
        ran.push(b.line);
    }
    // The bundle path of the guide really ran: keygen, create, inspect, verify, openssl.
    for must in [
        "atp-release.pub",
        "atp-1.4.0.tar",
        "atp-1.4.0.json",
        "index.json",
    ] {
        assert!(
            sandbox.path().join(must).exists(),
            "{must} not made; ran blocks at lines {ran:?}"
        );
    }
    assert!(ran.len() >= 5, "ran {ran:?}, skipped {skipped:?}");
    // install, simulate and mirrors ran against the site registry.
    assert!(on_site.len() >= 3, "against the site registry: {on_site:?}");
    assert!(
        sandbox.path().join("rendered/rendered.yaml").is_file(),
        "the guide's install rendered nothing"
    );
}
