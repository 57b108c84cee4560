//! Issue 24, the negative tests round 1 left out, each against the real
//! registry and the built binaries: a bundle with no `index.json.sig` at all,
//! the air-gap gate refusing while `--apply` is set (a recording kubectl
//! proves apply never ran), two sources the nested layout maps to one
//! repository, a TLS name mismatch and a wrong CA at `install`, and a corrupt
//! `channels.json` in the state dir. Every refusal must say what is wrong and
//! leave the registry untouched, as its own access log shows.

mod common;

use std::path::Path;

use atp_testkit::fixtures::IMAGES;
use atp_testkit::pki::{self, Ca};
use atp_testkit::relay::Relay;
use atp_testkit::{Access, Registry};
use common::*;

/// Requests that change a registry: every PUT, PATCH, POST and DELETE.
fn writes(log: &[Access]) -> Vec<String> {
    log.iter()
        .filter(|a| matches!(a.method.as_str(), "PUT" | "PATCH" | "POST" | "DELETE"))
        .map(ToString::to_string)
        .collect()
}

/// Copy the tar `from` to `to` without its entry `name`, every other header
/// and body byte for byte.
fn without_entry(from: &Path, to: &Path, name: &str) {
    let mut archive = tar::Archive::new(std::fs::File::open(from).unwrap());
    let mut out = tar::Builder::new(std::fs::File::create(to).unwrap());
    let mut dropped = false;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some(name) {
            dropped = true;
            continue;
        }
        let header = entry.header().clone();
        out.append(&header, &mut entry).unwrap();
    }
    out.finish().unwrap();
    assert!(dropped, "{} holds no {name}", from.display());
}

#[test]
fn a_bundle_without_a_signature_is_refused_by_verify_and_install_and_nothing_is_pushed() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    without_entry(&w.path("b.tar"), &w.path("nosig.tar"), "index.json.sig");

    let out = w.installer(&["verify", "nosig.tar", "--key", &w.pubkey(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v = json(&out);
    assert_eq!(v["ok"], false, "{v:#}");
    let findings = v["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["kind"] == "missing-entry"
            && f["message"].as_str().unwrap().contains("index.json.sig")),
        "{findings:#?}"
    );
    let out = w.installer(&["verify", "nosig.tar", "--key", &w.pubkey()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("index.json.sig"), "{}", text(&out));

    let reg = Registry::plain();
    let mark = reg.access_mark();
    let out = install(&w, &reg, "nosig.tar", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing was pushed") && err.contains("index.json.sig"),
        "{err}"
    );
    let log = reg.access_log_since(mark);
    assert!(log.is_empty(), "requests reached the registry: {log:?}");
    assert!(
        !w.path("state/render").exists(),
        "an unsigned bundle was rendered"
    );
}

#[test]
fn the_air_gap_gate_refuses_with_apply_set_and_kubectl_apply_never_runs() {
    let reg = Registry::plain();
    let w = Work::new();
    // A bundle whose overlay names an image it does not carry.
    create_missing_an_image(&w, "b.tar");

    let log = w.path("kubectl.log");
    let kubectl = recording_kubectl(&w, &log);
    let out = w
        .install("b.tar")
        .registry(&reg)
        .env("ATP_KUBECTL", &kubectl)
        .args(["--apply", "--context", "site"])
        .output();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("air-gap gate"), "{err}");
    assert!(err.contains("docker.io/evil/miner:1"), "{err}");
    assert!(err.contains("nothing was applied"), "{err}");

    // The installer did use the stand-in (to render), and never asked it
    // to apply or to watch a rollout.
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        calls.lines().any(|l| l.starts_with("kustomize")),
        "the stand-in was never run, so it proves nothing: {calls:?}"
    );
    let cluster: Vec<&str> = calls
        .lines()
        .filter(|l| !l.starts_with("kustomize"))
        .collect();
    assert!(cluster.is_empty(), "kubectl was asked to: {cluster:?}");
}

#[test]
fn two_sources_the_nested_layout_maps_to_one_repository_are_refused_naming_both() {
    let reg = Registry::plain();
    let w = Work::new();
    let image = |dir: &str| IMAGES.iter().find(|i| i.dir == dir).unwrap();
    let (a, b) = (image("router"), image("model-loader"));
    // `:` in a host is written as `-` by the nested layout, so both land on
    // `127.0.0.1-5000/x`.
    let spec = format!(
        "metadata: {{name: clash, version: '1'}}\nspec:\n  channel: stable\n  sequence: 1\n  images:\n    - {{source: \"oci:{}:{}\", name: \"127.0.0.1:5000/x:1\"}}\n    - {{source: \"oci:{}:{}\", name: \"127.0.0.1-5000/x:1\"}}\n",
        a.path().display(),
        a.tag,
        b.path().display(),
        b.tag
    );
    std::fs::write(w.path("clash.yaml"), spec).unwrap();
    assert_ok(
        &w.bundler(&[
            "create",
            "--spec",
            "clash.yaml",
            "--key",
            "k.key",
            "--output",
            "clash.tar",
        ]),
        "create",
    );

    let mark = reg.access_mark();
    let out = install(&w, &reg, "clash.tar", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let named_both = [
        "127.0.0.1:5000/x and 127.0.0.1-5000/x",
        "127.0.0.1-5000/x and 127.0.0.1:5000/x",
    ]
    .iter()
    .any(|pair| err.contains(&format!("{pair} would both land on 127.0.0.1-5000/x")));
    assert!(named_both, "{err}");
    // Said of the layout in use, with advice that fits it (the message used
    // to blame the flat layout and advise the nested one).
    assert!(err.contains("nested layout: "), "{err}");
    assert!(!err.contains("flat layout"), "{err}");
    assert!(err.contains("mapping file"), "{err}");
    let written = writes(&reg.access_log_since(mark));
    assert!(
        written.is_empty(),
        "the registry was written to: {written:?}"
    );
}

/// The install stopped at a TLS failure with `host` and a hint. The cause
/// (a certificate that does not name the host, or one no given CA signed) is
/// asserted in `cli_messages.rs` (issue 22, item 3).
fn assert_tls_refusal(err: &str, host: &str) {
    assert!(err.contains(&format!("https://{host}/v2/")), "{err}");
    assert!(err.contains("TLS failure"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(err.contains("TLS errors are not retried"), "{err}");
}

#[test]
fn a_tls_name_mismatch_and_a_wrong_ca_fail_install_clearly_and_push_nothing() {
    let reg = Registry::tls();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let ca = reg.ca_cert_path().unwrap();

    // The registry's certificate names 127.0.0.1, localhost and ::1; reached
    // as 127.0.0.2 (through a relay), the right CA still must not do.
    let relay = Relay::start(std::net::Ipv4Addr::new(127, 0, 0, 2).into(), &reg.host()).unwrap();
    let mark = reg.access_mark();
    let out = w
        .install("b.tar")
        .site_flags([
            "--registry".to_string(),
            relay.host(),
            "--registry-ca".into(),
            ca.display().to_string(),
        ])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_tls_refusal(&String::from_utf8_lossy(&out.stderr), &relay.host());
    assert!(
        relay.connections() >= 1,
        "the install never reached the relay"
    );
    let log = reg.access_log_since(mark);
    assert!(log.is_empty(), "requests completed: {log:?}");

    // A CA that did not sign the registry's certificate.
    let other = Ca::generate("Some other CA").unwrap();
    let other_ca = pki::write(w.dir.path(), "other-ca.crt", &other.cert.pem()).unwrap();
    let mark = reg.access_mark();
    let out = w
        .install("b.tar")
        .site_flags([
            "--registry".to_string(),
            reg.host(),
            "--registry-ca".into(),
            other_ca.display().to_string(),
        ])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_tls_refusal(&String::from_utf8_lossy(&out.stderr), &reg.host());
    let log = reg.access_log_since(mark);
    assert!(log.is_empty(), "requests completed: {log:?}");
    assert!(
        !w.path("state/render").exists(),
        "rendered without a registry"
    );
}

#[test]
fn a_corrupt_channels_json_fails_closed_and_is_left_as_it_was() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let first = Registry::plain();
    assert_ok(&install(&w, &first, "b.tar", &[]), "first install");
    let channels = w.path("state/channels.json");
    let good = std::fs::read(&channels).unwrap();
    assert!(!good.is_empty());

    // A second site registry: whatever reaches it comes from the run with
    // the corrupt state.
    let reg = Registry::plain();
    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("cut in half", good[..good.len() / 2].to_vec()),
        ("not JSON", b"\x00\xffnot json".to_vec()),
        (
            "a sequence that is not a number",
            br#"{"stable x": {"sequence": "seven", "index": "sha256:00"}}"#.to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        std::fs::write(&channels, &bytes).unwrap();
        let mark = reg.access_mark();
        let out = install(&w, &reg, "b.tar", &[]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("channels.json") && err.contains("corrupt"),
            "{what}: {err}"
        );
        assert!(err.contains("hint:"), "{what}: {err}");
        let written = writes(&reg.access_log_since(mark));
        assert!(
            written.is_empty(),
            "{what}: the registry was written to: {written:?}"
        );
        assert_eq!(
            std::fs::read(&channels).unwrap(),
            bytes,
            "{what}: channels.json was rewritten"
        );

        // simulate fails closed too, and changes nothing either.
        let out = w.simulate("b.tar").registry(&reg).output();
        assert!(!out.status.success(), "{what}: simulate: {}", text(&out));
        assert!(
            text(&out).contains("corrupt"),
            "{what}: simulate: {}",
            text(&out)
        );
        assert_eq!(std::fs::read(&channels).unwrap(), bytes, "{what}");
    }
}
