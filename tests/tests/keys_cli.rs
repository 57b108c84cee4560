//! Issue 22, items 10 and 12: keygen never writes a key with an empty
//! password nobody asked for (a variable, a prompt on the terminal, or
//! `--no-password`), and `atp-bundler fingerprint` prints the fingerprint
//! that `verify` shows.

mod common;

use std::process::{Command, Stdio};

use atp_testkit::bins::bin;
use common::*;

/// `atp-bundler keygen --output PREFIX` in `w` with no password variable
/// and standard input not a terminal, plus `extra`.
fn keygen_off_a_terminal(w: &Work, prefix: &str, extra: &[&str]) -> std::process::Output {
    let mut c = w.bundler_cmd(&["keygen", "--output", prefix]);
    c.args(extra)
        .env_remove("ATP_KEY_PASSWORD")
        .env_remove("COSIGN_PASSWORD")
        .stdin(Stdio::null());
    c.output().unwrap()
}

#[test]
fn keygen_off_a_terminal_without_a_password_refuses_and_writes_nothing() {
    let w = Work::new();
    let o = keygen_off_a_terminal(&w, "n", &[]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no password for the new key"), "{err}");
    assert!(
        err.contains("hint: set ATP_KEY_PASSWORD, or pass --no-password"),
        "{err}"
    );
    assert!(!w.path("n.key").exists() && !w.path("n.pub").exists());

    // A variable set but empty is not a request for an empty password either.
    let mut c = w.bundler_cmd(&["keygen", "--output", "n"]);
    c.env("ATP_KEY_PASSWORD", "").stdin(Stdio::null());
    let o = c.output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--no-password"));
    assert!(!w.path("n.key").exists());
}

#[test]
fn keygen_no_password_writes_a_key_that_signs_with_the_empty_password() {
    let w = Work::new();
    let o = keygen_off_a_terminal(&w, "n", &["--no-password"]);
    assert_ok(&o, "keygen --no-password");
    let mut create = w.bundler_cmd(&[
        "create",
        "--spec",
        repo_root().join("manifests/bundle.yaml").to_str().unwrap(),
        "--key",
        "n.key",
        "--output",
        "b.tar",
    ]);
    create.env("ATP_KEY_PASSWORD", "");
    assert_ok(&create.output().unwrap(), "create with the empty password");
}

#[test]
fn keygen_on_a_terminal_asks_twice_and_uses_what_was_typed() {
    let w = Work::new();
    // `script` gives keygen a terminal; the answers come after the prompts.
    let cmd = format!(
        "{} keygen --output {}",
        bin("atp-bundler").display(),
        w.s("t")
    );
    let typed = "sleep 1; printf 'typed-pw\\n'; sleep 1; printf 'typed-pw\\n'; sleep 1";
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("({typed}) | script -qec \"$0\" /dev/null"))
        .arg(&cmd)
        .env_remove("ATP_KEY_PASSWORD")
        .env_remove("COSIGN_PASSWORD")
        .current_dir(w.dir.path())
        .output()
        .expect("script (util-linux) runs");
    assert_ok(&o, "keygen on a terminal");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Password for the new key:"), "{out}");
    assert!(out.contains("The same password again:"), "{out}");
    assert!(!out.contains("typed-pw"), "the password was echoed:\n{out}");
    for (password, works) in [("typed-pw", true), ("", false)] {
        let mut create = w.bundler_cmd(&[
            "create",
            "--spec",
            repo_root().join("manifests/bundle.yaml").to_str().unwrap(),
            "--key",
            "t.key",
            "--output",
            &format!("b-{works}.tar"),
        ]);
        create.env("ATP_KEY_PASSWORD", password);
        let o = create.output().unwrap();
        assert_eq!(
            o.status.success(),
            works,
            "password {password:?}: {}",
            text(&o)
        );
    }
}

#[test]
fn fingerprint_prints_what_verify_shows() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let verify = w.installer(&["verify", "b.tar", "--key", &w.pubkey(), "--json"]);
    assert_ok(&verify, "verify");
    let shown = json(&verify)["key_fingerprint"]
        .as_str()
        .expect("verify --json has key_fingerprint")
        .to_string();
    assert!(shown.starts_with("sha256:"), "{shown}");

    let o = w.bundler(&["fingerprint", &w.pubkey()]);
    assert_ok(&o, "fingerprint");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), shown);

    let o = w.bundler(&["fingerprint", &w.pubkey(), "--json"]);
    assert_ok(&o, "fingerprint --json");
    assert_eq!(json(&o)["fingerprint"], shown.as_str());

    // The private key is not a public key: said, with the file's name.
    let o = w.bundler(&["fingerprint", &w.key()]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("k.key"),
        "{}",
        text(&o)
    );
}
