//! Regressions of the copy engine (issue 16): a simulation never writes, in
//! any spelling, and what a dry run predicts is what the run then does.

mod common;

use atp_testkit::{Access, Registry};
use common::*;

/// Requests that write: every PUT and PATCH, and every POST other than an
/// upload session the simulation's push-permission probe opens and cancels.
fn writes(log: &[Access]) -> Vec<&Access> {
    let opened = log
        .iter()
        .filter(|a| a.method == "POST" && a.status == 202)
        .count();
    let cancelled = log
        .iter()
        .filter(|a| a.method == "DELETE" && a.path.contains("/blobs/uploads/"))
        .count();
    assert_eq!(
        opened, cancelled,
        "an upload session was left open: {log:#?}"
    );
    log.iter()
        .filter(|a| a.status != 401)
        .filter(|a| matches!(a.method.as_str(), "PUT" | "PATCH"))
        .chain(
            log.iter()
                .filter(|a| a.method == "POST" && !(a.status == 202 || a.status == 401)),
        )
        .collect()
}

#[test]
fn simulate_single_pass_writes_nothing_in_either_spelling() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    for spelling in [vec!["--single-pass"], vec!["--dry-run", "--single-pass"]] {
        let mark = reg.access_mark();
        let cmd = if spelling[0] == "--dry-run" {
            w.install("b.tar")
        } else {
            w.simulate("b.tar")
        };
        let out = cmd.registry(&reg).args(&spelling).arg("--json").output();
        assert_ok(&out, &format!("{spelling:?}"));
        let plan = json(&out);
        assert_eq!(plan["ok"], true, "{plan:#}");
        assert!(plan["uploaded"].as_u64().unwrap() > 0, "{plan:#}");
        let log = reg.access_log_since(mark);
        let w = writes(&log);
        assert!(w.is_empty(), "{spelling:?} wrote to the registry: {w:#?}");
        let blob_puts = log.iter().filter(|a| a.method == "PUT").count();
        assert_eq!(blob_puts, 0, "{spelling:?}: {log:#?}");
    }
    assert!(
        !w.path("state").exists(),
        "a simulation created the state dir"
    );
}

#[test]
fn single_pass_install_does_what_its_simulation_predicted() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = w
        .simulate("b.tar")
        .registry(&reg)
        .args(["--single-pass", "--json"])
        .output();
    assert_ok(&out, "simulate");
    let plan = json(&out);
    let out = w
        .install("b.tar")
        .registry(&reg)
        .args(["--single-pass", "--json"])
        .output();
    assert_ok(&out, "install --single-pass");
    let done = json(&out);
    for k in [
        "uploaded",
        "skipped",
        "mounted",
        "bytes_uploaded",
        "manifests_pushed",
        "manifests_skipped",
    ] {
        assert_eq!(plan[k], done[k], "{k}: plan {plan:#}\ninstall {done:#}");
    }
    // Again: everything is in place, nothing moves.
    let out = w
        .install("b.tar")
        .registry(&reg)
        .args(["--single-pass", "--json"])
        .output();
    assert_ok(&out, "second install --single-pass");
    let again = json(&out);
    assert_eq!(again["uploaded"], 0, "{again:#}");
    assert_eq!(again["mounted"], 0, "{again:#}");
    assert_eq!(again["manifests_pushed"], 0, "{again:#}");
}
