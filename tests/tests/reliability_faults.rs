//! Issue 10, faults: `atp-installer install` through the fault proxy in front
//! of the real registry. Resets at several byte offsets of a blob upload,
//! runs of 5xx on every method, a registry that never recovers, 429 with
//! `Retry-After` in both forms, 416 on a chunk, a slow link, and a registry
//! killed mid-install. Each ends with the registry holding exactly the
//! bundle's digests (skopeo and HEAD), every blob committed once, or a clear
//! bounded failure.

mod common;
mod reliability_support;

use atp_testkit::proxy::{Fault, RetryAfter, Rule};
use atp_testkit::Registry;
use common::*;
use reliability_support::*;

fn status(status: u16) -> Fault {
    Fault::Status {
        status,
        retry_after: None,
    }
}

#[test]
fn resets_at_several_offsets_of_an_upload_still_commit_each_blob_once() {
    let w = Work::new();
    let (manifest, layer) = big_demo(&w);
    let final_put = format!("digest={}", layer.replace(':', "%3A"));
    let cases: Vec<(&str, Rule)> = vec![
        (
            "1 MiB into the first 16 MiB chunk",
            Rule::new(
                "PATCH",
                "/blobs/uploads/",
                Fault::ResetRequestAfter(1 << 20),
            ),
        ),
        (
            "8 MiB into the first chunk, twice",
            Rule::new(
                "PATCH",
                "/blobs/uploads/",
                Fault::ResetRequestAfter(8 << 20),
            )
            .times(2),
        ),
        (
            "between chunks: the final PUT cut before its body",
            Rule::new("PUT", &final_put, Fault::ResetRequestAfter(0)),
        ),
        (
            "inside the final chunk",
            Rule::new("PUT", &final_put, Fault::ResetRequestAfter(1 << 20)),
        ),
        (
            "a small monolithic blob, 100 bytes in",
            Rule::new("PUT", "/blobs/uploads/", Fault::ResetRequestAfter(100)),
        ),
        (
            "the answer to the last PATCH",
            Rule::new("PATCH", "/blobs/uploads/", Fault::ResetResponseAfter(0)),
        ),
    ];
    for (what, rule) in cases {
        let reg = Registry::plain();
        let p = proxy(&reg);
        p.add(rule);
        let _ = std::fs::remove_dir_all(w.path("state"));
        let out = install_to(&w, &p.host(), &[]);
        assert_ok(&out, what);
        assert_eq!(p.faults().len(), p.rules()[0].hits, "{what}");
        assert!(p.rules()[0].hits >= 1, "{what}: the fault never fired");
        assert_installed(&reg, &manifest, &layer);
    }
}

#[test]
fn runs_of_5xx_on_post_patch_put_and_head_are_retried_to_success() {
    let w = Work::new();
    let (manifest, layer) = big_demo(&w);
    let reg = Registry::plain();
    let p = proxy(&reg);
    p.add(Rule::new("POST", "/blobs/uploads/", status(500)).times(2));
    p.add(Rule::new("PATCH", "/blobs/uploads/", status(502)).times(2));
    p.add(Rule::new("PUT", "/blobs/uploads/", status(503)).times(2));
    p.add(Rule::new("PUT", "/manifests/", status(503)).times(2));
    p.add(Rule::new("HEAD", "/blobs/", status(500)).times(2));
    p.add(Rule::new("HEAD", "/manifests/", status(502)).times(2));
    let out = install_to(&w, &p.host(), &[]);
    assert_ok(&out, "install through 5xx runs");
    for r in p.rules() {
        assert_eq!(r.hits, 2, "{} {} fired {} times", r.method, r.path, r.hits);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tries left"), "no retry was reported: {err}");
    assert_installed(&reg, &manifest, &layer);
}

#[test]
fn a_registry_that_always_answers_500_fails_after_the_retry_budget_with_a_clear_message() {
    let w = Work::new();
    let _ = big_demo(&w);
    let reg = Registry::plain();
    let p = proxy(&reg);
    p.add(Rule::new("POST", "/blobs/uploads/", status(500)).forever());
    let out = install_to(
        &w,
        &p.host(),
        &[
            "--retries",
            "2",
            "--retry-max-time",
            "30",
            "--concurrency",
            "1",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gave up on POST"), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
    assert!(err.contains("unexpected HTTP 500"), "{err}");
    assert!(err.contains("hint: the registry keeps failing"), "{err}");
    // Bounded: exactly 1 + 2 retries of the one upload it tried.
    let posts: Vec<_> = p
        .events()
        .into_iter()
        .filter(|e| e.method == "POST")
        .collect();
    assert_eq!(posts.len(), 3, "{posts:?}");
    // Nothing was committed, no manifest was written, nothing was rendered.
    assert!(commits(&reg).is_empty());
    assert!(!reg.access_log().iter().any(|a| a.method == "PUT"));
    assert!(!w.path("state/render").exists());
}

#[test]
fn retry_after_in_seconds_and_as_a_date_is_honoured_and_capped() {
    let w = Work::new();
    let (manifest, layer) = big_demo(&w);
    let reg = Registry::plain();
    let p = proxy(&reg);
    p.add(Rule::new(
        "PATCH",
        "/blobs/uploads/",
        Fault::Status {
            status: 429,
            retry_after: Some(RetryAfter::Seconds(2)),
        },
    ));
    p.add(Rule::new(
        "PUT",
        "/manifests/",
        Fault::Status {
            status: 503,
            retry_after: Some(RetryAfter::DateIn(3)),
        },
    ));
    let out = install_to(&w, &p.host(), &[]);
    assert_ok(&out, "install through 429 and 503 with Retry-After");
    assert_eq!(p.faults().len(), 2);
    // The retry waits are what the server asked for (whole seconds; the
    // HTTP-date has one-second resolution), not the 0.5 s first backoff.
    let err = String::from_utf8_lossy(&out.stderr);
    let delays = logged_delays(&err);
    assert_eq!(delays.len(), 2, "{err}");
    assert!(delays[0] >= 2.0, "429 Retry-After: 2 gave {delays:?}");
    assert!(
        delays[1] >= 2.0,
        "Retry-After: <date in 3 s> gave {delays:?}"
    );
    assert_installed(&reg, &manifest, &layer);

    // Capped: Retry-After: 3600 is not slept; with a 5 s budget the
    // installer gives up at once, naming the 429.
    let w = Work::new();
    let _ = big_demo(&w);
    let reg = Registry::plain();
    let p = proxy(&reg);
    p.add(
        Rule::new(
            "POST",
            "/blobs/uploads/",
            Fault::Status {
                status: 429,
                retry_after: Some(RetryAfter::Seconds(3600)),
            },
        )
        .forever(),
    );
    let out = install_to(
        &w,
        &p.host(),
        &["--retry-max-time", "5", "--concurrency", "1"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unexpected HTTP 429"), "{err}");
    assert!(err.contains("gave up on POST"), "{err}");
    assert_eq!(
        p.events().iter().filter(|e| e.method == "POST").count(),
        1,
        "a Retry-After beyond the budget must not be waited for"
    );
}

/// Seconds of every `delay=` in the installer's retry warnings.
fn logged_delays(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter(|l| l.contains("retrying"))
        .filter_map(|l| l.split("delay=").nth(1))
        .map(|d| {
            let d = d.split_whitespace().next().unwrap();
            if let Some(ms) = d.strip_suffix("ms") {
                ms.parse::<f64>().unwrap() / 1000.0
            } else {
                d.trim_end_matches('s').parse::<f64>().unwrap()
            }
        })
        .collect()
}

#[test]
fn a_416_on_a_chunk_resyncs_from_the_registry_range() {
    let w = Work::new();
    let (manifest, layer) = big_demo(&w);
    let reg = Registry::plain();
    let p = proxy(&reg);
    p.add(Rule::new("PATCH", "/blobs/uploads/", status(416)));
    let out = install_to(&w, &p.host(), &[]);
    assert_ok(&out, "install through a 416");
    let ev = p.events();
    let at = ev.iter().position(|e| e.fault.is_some()).unwrap();
    assert_eq!(ev[at].method, "PATCH");
    // The next request on that upload asks the registry where it stands.
    let session = ev[at].path.split('?').next().unwrap();
    let next = ev[at + 1..]
        .iter()
        .find(|e| e.path.starts_with(session))
        .unwrap();
    assert_eq!(next.method, "GET", "{ev:?}");
    assert_installed(&reg, &manifest, &layer);
}

#[test]
fn a_slow_link_uploads_without_a_timeout_or_a_retry_and_progress_moves_inside_a_blob() {
    let w = Work::new();
    let (manifest, layer) = big_demo(&w);
    let reg = Registry::plain();
    let p = proxy(&reg);
    // 19 MiB at 2 MiB/s: about 10 s on one blob with bytes flowing.
    for m in ["PATCH", "PUT"] {
        p.add(
            Rule::new(
                m,
                "/blobs/uploads/",
                Fault::Throttle {
                    bytes_per_sec: 2 << 20,
                },
            )
            .forever(),
        );
    }
    let out = install_to(&w, &p.host(), &["--concurrency", "1"]);
    assert_ok(&out, "install over a slow link");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("retrying"), "a timeout fired: {err}");
    assert!(p.faults().iter().any(|e| e.method == "PATCH"));
    // Regression: push progress only moved when a whole blob was done, so a
    // big layer on a slow link looked stuck. The plain progress lines (every
    // 5 s) now show bytes inside the big blob: a count strictly between 0
    // and the total.
    let moving: Vec<(u64, u64)> = err
        .lines()
        .filter_map(|l| l.strip_prefix("push: "))
        .filter_map(|l| {
            let mut it = l.split(' ');
            let done = it.next()?.parse().ok()?;
            let total = it.nth(1)?.parse().ok()?;
            Some((done, total))
        })
        .collect();
    assert!(
        moving.iter().any(|(d, t)| *d > 0 && d < t),
        "no progress inside the blob: {moving:?}\n{err}"
    );
    assert_installed(&reg, &manifest, &layer);
}

#[test]
fn a_registry_killed_mid_install_and_restarted_completes_on_rerun() {
    let w = Work::new();
    let (manifest, layer) = big_demo(&w);
    let mut reg = Registry::plain();
    let p = proxy(&reg);
    // Hold the install in the middle of the big blob: its 16 MiB PATCH is
    // stored, the final PUT keeps failing.
    let final_put = format!("digest={}", layer.replace(':', "%3A"));
    p.add(Rule::new("PUT", &final_put, status(503)).forever());
    let child = spawn_install(&w, &p.host(), &["--retries", "3", "--retry-max-time", "60"]);
    wait_for("the big blob's final PUT", || !p.faults().is_empty());
    reg.kill();
    p.clear();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gave up on"), "{err}");
    assert!(!w.path("state/render").exists());

    reg.restart().unwrap();
    let out = install_to(&w, &p.host(), &[]);
    assert_ok(&out, "re-run after the registry came back");
    assert_installed(&reg, &manifest, &layer);
}
