//! Issue 10, SIGKILL: the installer killed mid-blob, between blobs, during
//! the manifests and during the render. Every re-run must end in the same
//! state as one uninterrupted run: the same digests in the registry (skopeo)
//! and a byte-identical `rendered.yaml`.
//!
//! The fault proxy holds the installer at each point (a 503 that never
//! ends), so the kill lands where intended rather than wherever a race puts
//! it; the render point uses a kubectl stand-in that waits.

mod common;
mod reliability_support;

use std::os::unix::fs::PermissionsExt;

use atp_testkit::proxy::{Fault, Rule};
use atp_testkit::Registry;
use common::*;
use reliability_support::*;

fn hold() -> Fault {
    Fault::Status {
        status: 503,
        retry_after: None,
    }
}

#[test]
fn every_rerun_after_a_sigkill_matches_an_uninterrupted_install() {
    let w = Work::new();
    let (manifest, layer) = big_demo(&w);

    // The reference: one uninterrupted run.
    let reference = Registry::plain();
    let out = install_to(&w, &reference.host(), &[]);
    assert_ok(&out, "uninterrupted install");
    assert_installed(&reference, &manifest, &layer);
    let want = rendered(&w, "state", &reference.host());
    std::fs::remove_dir_all(w.path("state")).unwrap();

    let final_put = format!("digest={}", layer.replace(':', "%3A"));
    // (point, rule holding the installer there, extra flags)
    let points: Vec<(&str, Option<Rule>, Vec<&str>)> = vec![
        (
            "mid-blob (16 MiB stored, final PUT pending)",
            Some(Rule::new("PUT", &final_put, hold()).forever()),
            vec![],
        ),
        (
            "between blobs (two committed, the next session refused)",
            Some(
                Rule::new("POST", "/blobs/uploads/", hold())
                    .after(2)
                    .forever(),
            ),
            vec!["--concurrency", "1"],
        ),
        (
            "during manifests (one written, the rest refused)",
            Some(Rule::new("PUT", "/manifests/", hold()).after(1).forever()),
            vec!["--concurrency", "1"],
        ),
        ("during render (kubectl kustomize running)", None, vec![]),
    ];
    let marker = w.path("kustomize-started");
    let stand_in = w.path("slow-kubectl");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\nif [ \"$1\" = kustomize ] && [ ! -e {m}.done ]; then touch {m} {m}.done; sleep 20; fi\nexec kubectl \"$@\"\n",
            m = marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&stand_in, std::fs::Permissions::from_mode(0o755)).unwrap();

    for (point, rule, flags) in points {
        let reg = Registry::plain();
        let p = proxy(&reg);
        let held = rule.is_some();
        if let Some(r) = rule {
            p.add(r);
        }
        let mut cmd = install_at(&w, &p.host(), &flags).command();
        if !held {
            cmd.env("ATP_KUBECTL", &stand_in);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if held {
            wait_for(point, || !p.faults().is_empty());
        } else {
            wait_for(point, || marker.exists());
        }
        child.kill().unwrap(); // SIGKILL
        assert!(
            !child.wait().unwrap().success(),
            "{point}: finished before the kill"
        );
        p.clear();
        let before_rerun = commits(&reg);

        let out = install_to(&w, &p.host(), &[]);
        assert_ok(&out, &format!("re-run after a kill {point}"));
        assert_installed(&reg, &manifest, &layer);
        // Blobs the killed run committed were not uploaded again.
        let after = commits(&reg);
        for (d, n) in &before_rerun {
            assert_eq!(after.get(d), Some(n), "{point}: {d} uploaded again");
        }
        assert_eq!(
            rendered(&w, "state", &p.host()),
            want,
            "{point}: rendered.yaml differs from the uninterrupted run"
        );
        std::fs::remove_dir_all(w.path("state")).unwrap();
        let _ = std::fs::remove_file(&marker);
    }
}
