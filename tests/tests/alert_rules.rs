//! The alert rules the manifests ship (`manifests/base/prometheusrule.yaml`),
//! as the air-gapped overlay renders them: `promtool check rules` accepts
//! them, and `promtool test rules` runs `tests/promtool/atp-alerts.test.yaml`
//! over them, where every alert fires after its `for:` and stays silent on
//! healthy series.
//!
//! Renders locally with the real kubectl; writes only to a temp folder.

use std::path::{Path, PathBuf};
use std::process::Command;

use atp_testkit::cli::which_kubectl;
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The PrometheusRule of the rendered air-gapped overlay.
fn rendered_rule() -> Value {
    let dir = workspace().join("manifests/overlays/air-gapped");
    let out = Command::new(which_kubectl())
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("running kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let rules: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|o| o["kind"] == "PrometheusRule")
        .collect();
    assert_eq!(rules.len(), 1, "one PrometheusRule expected");
    rules.into_iter().next().unwrap()
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running promtool (apt-get install prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Every alert: `alert`, `for`, a severity and both annotations.
fn alerts(rule: &Value) -> Vec<&Value> {
    rule["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect()
}

#[test]
fn the_rendered_rules_pass_promtool_check_and_every_unit_test() {
    let rule = rendered_rule();
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "atp-system");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    for a in alerts(&rule) {
        let name = a["alert"].as_str().expect("every rule is an alert");
        assert!(a["for"].is_string(), "{name} has no for:");
        assert!(
            matches!(
                a["labels"]["severity"].as_str(),
                Some("warning" | "critical")
            ),
            "{name}"
        );
        for k in ["summary", "description"] {
            assert!(a["annotations"][k].is_string(), "{name} has no {k}");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let groups = serde_json::json!({ "groups": rule["spec"]["groups"] });
    std::fs::write(
        dir.path().join("atp-alerts.rules.yaml"),
        serde_json::to_string_pretty(&groups).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        workspace().join("tests/promtool/atp-alerts.test.yaml"),
        dir.path().join("atp-alerts.test.yaml"),
    )
    .unwrap();
    let checked = promtool(&["check", "rules", "atp-alerts.rules.yaml"], dir.path());
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts(&rule).len())),
        "{checked}"
    );
    let tested = promtool(&["test", "rules", "atp-alerts.test.yaml"], dir.path());
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The unit tests cover every alert both ways: a case where it fires and a
/// case where it must not (pending before its `for:`, or healthy series).
#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let rule = rendered_rule();
    let text =
        std::fs::read_to_string(workspace().join("tests/promtool/atp-alerts.test.yaml")).unwrap();
    let tests: Value = serde_yaml_ng::from_str(&text).unwrap();
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    for a in alerts(&rule) {
        let name = a["alert"].as_str().unwrap();
        let of: Vec<&&Value> = cases.iter().filter(|c| c["alertname"] == name).collect();
        let fires = of
            .iter()
            .any(|c| c["exp_alerts"].as_array().is_some_and(|e| !e.is_empty()));
        let silent = of
            .iter()
            .any(|c| c["exp_alerts"].as_array().is_some_and(Vec::is_empty));
        assert!(fires && silent, "{name}: fires {fires}, silent {silent}");
    }
}
