//! Issue 24 (weaker): an install stopped by SIGINT (Ctrl-C) during a push
//! says what happened and how to finish, exits 130, and is counted as a
//! failed deploy; a corrupt `metrics.json` in the state dir is kept aside
//! (`metrics.json.corrupt-<time>`) with a warning, never silently reset.

mod common;

use std::path::Path;
use std::time::Duration;

use atp_testkit::proxy::{Fault, Proxy, Rule};
use atp_testkit::Registry;
use common::*;

fn metrics(state: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(state.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn sigint_during_a_push_says_how_to_finish_exits_130_and_counts_a_failed_deploy() {
    let reg = Registry::plain();
    let proxy = Proxy::start(&reg.host()).unwrap();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let prom = w.path("atp.prom");
    // The first upload is held: the install is mid-push when the signal comes.
    proxy.add(Rule::new("POST", "/blobs/uploads/", Fault::Hold));
    let child = w
        .install("b.tar")
        .plain_http(&proxy.host())
        .args(["--metrics-file", prom.to_str().unwrap()])
        .spawn();
    let held = proxy.wait_for("POST", "/blobs/uploads/", Duration::from_secs(120));
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    proxy.release();
    assert!(held, "no upload started: {}", text(&out));

    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interrupted; re-run the same command to finish: installs are resumable"),
        "{err}"
    );
    let m = metrics(&w.path("state"));
    assert_eq!(m["deploys_total"], 1, "{m:#}");
    assert_eq!(m["deploy_failed_total"], 1, "{m:#}");
    let text_metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text_metrics.contains("onprem_deploy_failed_total 1\n"),
        "{text_metrics}"
    );

    // As promised: the same command finishes the install.
    proxy.clear();
    let out = w
        .install("b.tar")
        .plain_http(&proxy.host())
        .args(["--metrics-file", prom.to_str().unwrap()])
        .output();
    assert_ok(&out, "re-run after SIGINT");
    let m = metrics(&w.path("state"));
    assert_eq!(m["deploys_total"], 2, "{m:#}");
    assert_eq!(m["deploy_success_total"], 1, "{m:#}");
}

#[test]
fn a_corrupt_metrics_file_is_kept_aside_with_a_warning_not_silently_reset() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let state = w.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let garbage = b"{\"deploys_total\": 41, \"deploy_succ";
    std::fs::write(state.join("metrics.json"), garbage).unwrap();

    let out = install(&w, &reg, "b.tar", &[]);
    assert_ok(&out, "install");
    let err = String::from_utf8_lossy(&out.stderr);
    let aside: Vec<String> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("metrics.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(state.join(&aside[0])).unwrap(), garbage);
    assert!(err.contains("is not valid metrics"), "{err}");
    assert!(
        err.contains(&aside[0]),
        "the warning names the kept file: {err}"
    );
    // The new counters start from this run.
    let m = metrics(&state);
    assert_eq!(m["deploys_total"], 1, "{m:#}");
    assert_eq!(m["deploy_success_total"], 1, "{m:#}");
}
