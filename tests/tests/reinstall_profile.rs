//! Issue 21, re-install: an install reports where its time went
//! (`timings_ms`, one number per phase; no test asserts a time), and a
//! re-install into a registry that already holds everything still verifies
//! every byte first: a flipped layer byte fails it, naming the blob, before
//! anything reaches the registry or the state dir.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use atp_bundle::Digest;
use atp_testkit::Registry;
use common::*;

/// The phases `timings_ms` reports, in the order they run, and the total.
const PHASES: [&str; 11] = [
    "verify",
    "plan",
    "registry_check",
    "copy",
    "referrers",
    "files",
    "render",
    "gate",
    "apply",
    "state",
    "total",
];

#[test]
fn install_json_reports_every_phase_in_milliseconds_and_the_plain_output_ends_with_them() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    for what in ["install", "re-install"] {
        let out = install(&w, &reg, "b.tar", &["--json"]);
        assert_ok(&out, what);
        let done = json(&out);
        let t = done["timings_ms"]
            .as_object()
            .expect("timings_ms is an object");
        let keys: Vec<&str> = t.keys().map(String::as_str).collect();
        let mut want = PHASES.to_vec();
        want.sort();
        let mut got = keys.clone();
        got.sort();
        assert_eq!(got, want, "{what}: {done:#}");
        for (k, v) in t {
            let ms = v.as_f64().unwrap_or_else(|| panic!("{what}: {k} is {v}"));
            assert!(ms >= 0.0, "{what}: {k} is {ms}");
        }
    }
    // Without --json (and not quiet) the last line on stderr says the same.
    let out = install(&w, &reg, "b.tar", &[]);
    assert_ok(&out, "re-install");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("timings (ms): verify "), "{err}");
    for phase in PHASES {
        assert!(last.contains(phase), "{phase} missing from {last:?}");
    }
    // Quiet: no such line.
    let out = install(&w, &reg, "b.tar", &["-q"]);
    assert_ok(&out, "quiet re-install");
    assert!(!text(&out).contains("timings (ms)"), "{}", text(&out));
}

/// Every file under `dir`, with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The largest layer of the bundle, and where its data starts.
fn largest_layer(bundle: &Path) -> (Digest, u64, u64) {
    let opened = atp_bundle::open::Bundle::open(bundle).unwrap();
    let e = opened
        .entries
        .iter()
        .filter(|e| e.path.starts_with("blobs/sha256/"))
        .max_by_key(|e| e.size)
        .unwrap()
        .clone();
    let digest: Digest = format!("sha256:{}", e.path.trim_start_matches("blobs/sha256/"))
        .parse()
        .unwrap();
    (digest, e.header_offset + 512, e.size)
}

#[test]
fn a_flipped_layer_byte_fails_a_reinstall_into_a_registry_that_has_it_all_and_changes_nothing() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    assert_ok(&install(&w, &reg, "b.tar", &[]), "install");
    let state_before = tree(&w.path("state"));

    let (digest, data, size) = largest_layer(&w.path("b.tar"));
    let mut bytes = std::fs::read(w.path("b.tar")).unwrap();
    bytes[(data + size / 2) as usize] ^= 0x01;
    std::fs::write(w.path("b.tar"), &bytes).unwrap();

    let mark = reg.access_mark();
    let out = install(&w, &reg, "b.tar", &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed verification") && err.contains("nothing was pushed"),
        "{err}"
    );
    assert!(
        err.contains(&digest.to_string()),
        "the culprit is named: {err}"
    );
    assert_eq!(
        reg.access_log_since(mark),
        vec![],
        "requests reached the registry"
    );
    // The state dir is as the first install left it, but for the run
    // counted as failed in the metrics.
    let mut state_after = tree(&w.path("state"));
    let mut before = state_before;
    for m in ["metrics.json", "lock"] {
        before.remove(m);
        state_after.remove(m);
    }
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        state_after.keys().collect::<Vec<_>>()
    );
    assert!(before == state_after, "the state dir changed");
}
