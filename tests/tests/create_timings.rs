//! `atp-bundler create` says where its time went (issue 21): `timings_ms` in
//! the `--json` summary, one phase a key, each a whole number of
//! milliseconds, and the same as one log line on stderr unless `--quiet`.
//! Asserts the keys and their types, never a time.

mod common;

use common::*;

/// The phases `create` reports, in the order it runs them; `make bench`
/// records these keys.
const PHASES: [&str; 10] = [
    "resolve",
    "referrers",
    "plan",
    "download",
    "commit",
    "fsync",
    "read_back",
    "rename",
    "volumes",
    "total",
];

#[test]
fn create_json_has_a_number_of_milliseconds_for_every_phase() {
    let w = Work::new();
    let o = w.create_demo("b.tar", &["--json"]);
    assert_ok(&o, "create");
    let v = json(&o);
    let t = v["timings_ms"]
        .as_object()
        .unwrap_or_else(|| panic!("no timings_ms object: {v:#}"));
    for p in PHASES {
        assert!(t[p].is_u64(), "timings_ms.{p} is not a whole number: {t:?}");
    }
    assert_eq!(t.len(), PHASES.len(), "unexpected keys: {t:?}");
    // No volumes were asked for.
    assert_eq!(t["volumes"], 0);
}

#[test]
fn create_logs_its_timings_unless_quiet() {
    let w = Work::new();
    let o = w.create_demo("b.tar", &[]);
    assert_ok(&o, "create");
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("create took"))
        .unwrap_or_else(|| panic!("no timings line: {}", text(&o)));
    for p in ["resolve", "download", "commit", "read-back", "total"] {
        assert!(line.contains(&format!("{p} ")), "{p} missing: {line}");
    }

    let o = w.create_demo("c.tar", &["--quiet"]);
    assert_ok(&o, "create --quiet");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("create took"),
        "{}",
        text(&o)
    );
}

#[test]
fn split_create_times_its_volumes() {
    let w = Work::new();
    let o = w.create_demo("v.tar", &["--split-size", "65536", "--json"]);
    assert_ok(&o, "create --split-size");
    let t = &json(&o)["timings_ms"];
    for p in PHASES {
        assert!(t[p].is_u64(), "timings_ms.{p} is not a whole number: {t:?}");
    }
}
