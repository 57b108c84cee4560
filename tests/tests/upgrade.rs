//! A state dir left by an earlier installer keeps working: a re-run of the
//! same bundle converges instead of refusing what the installer itself made.

mod common;

use atp_testkit::Registry;
use common::*;

#[test]
fn a_render_dir_from_before_the_marker_is_replaced_by_a_rerun() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = w.install("b.tar").registry(&reg).arg("--json").output();
    assert_ok(&out, "first install");
    let index = json(&out)["index_digest"].as_str().unwrap().to_string();
    let dir = w
        .path("state/render")
        .join(index.trim_start_matches("sha256:"));
    let marker = dir.join(".atp-installer-render");
    assert!(marker.is_file(), "the render dir has no marker");
    // An older installer left no marker.
    std::fs::remove_file(&marker).unwrap();
    let out = w.install("b.tar").registry(&reg).arg("--json").output();
    assert_ok(&out, "re-run over an older render dir");
    let again = json(&out);
    assert_eq!(again["uploaded"], 0, "{again:#}");
    assert_eq!(again["manifests_pushed"], 0, "{again:#}");
    assert!(dir.join("rendered.yaml").is_file());
    assert!(marker.is_file());
}
