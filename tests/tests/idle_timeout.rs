//! Issue 24 (weaker): a registry that trickles its answers must not keep
//! `install` waiting for ever. Each request that makes no progress (nothing
//! sent, no answer) for `--idle-timeout` fails as a transient error, is
//! retried within `--retries`, and the final error names the idle timeout.
//! Asserted by counts (attempts seen by the fault proxy) and messages, not
//! by wall time.

mod common;

use std::time::Duration;

use atp_testkit::proxy::{Fault, Proxy, Rule};
use atp_testkit::Registry;
use common::*;

#[test]
fn a_trickling_registry_hits_the_idle_timeout_and_each_request_is_retried_within_the_budget() {
    let reg = Registry::plain();
    let proxy = Proxy::start(&reg.host()).unwrap();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    // Every blob request's answer comes a byte per 300 ms: each read makes
    // progress, so only a timeout on the whole wait can end it.
    proxy.add(
        Rule::new(
            "*",
            "/blobs/",
            Fault::Trickle {
                every: Duration::from_millis(300),
            },
        )
        .forever(),
    );
    let out = w
        .install("b.tar")
        .plain_http(&proxy.host())
        .args([
            "--idle-timeout",
            "1",
            "--retries",
            "2",
            "--concurrency",
            "1",
        ])
        .output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no progress for 1s (idle timeout)"), "{err}");
    assert!(err.contains("after 3 attempts"), "{err}");
    assert!(err.contains("Raise the idle timeout"), "{err}");
    // The retries were announced while waiting, each naming the timeout.
    let retries = err
        .lines()
        .filter(|l| l.contains("retrying") && l.contains("idle timeout"))
        .count();
    assert_eq!(retries, 2, "{err}");
    // The request that gave up was tried exactly 1 + 2 times.
    let events = proxy.events();
    let first = events
        .iter()
        .find(|e| e.fault.is_some())
        .expect("a blob request reached the proxy");
    let tries = events
        .iter()
        .filter(|e| e.method == first.method && e.path == first.path)
        .count();
    assert_eq!(tries, 3, "{events:?}");
    // Nothing was tagged or rendered.
    assert!(!reg
        .access_log()
        .iter()
        .any(|a| a.method == "PUT" && a.path.contains("/manifests/")));
    assert!(!w.path("state/render").exists());

    // The registry answering promptly again: the same command finishes.
    proxy.clear();
    let out = w
        .install("b.tar")
        .plain_http(&proxy.host())
        .args(["--idle-timeout", "1"])
        .output();
    assert_ok(&out, "install once the registry answers");
}
