//! Issue 22, items 1 and 2: what the binaries print when something fails.
//! Each error once, its cause once, the `hint:` lines last; and a hint names
//! the flag the user types, never a setting of the library behind it.

mod common;

use common::*;

/// The stderr lines of `o` after the first `error:` line.
fn error_text(o: &std::process::Output) -> String {
    assert!(!o.status.success(), "expected a failure:\n{}", text(o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let at = err
        .find("error: ")
        .unwrap_or_else(|| panic!("no error line:\n{err}"));
    err[at..].to_string()
}

/// `hint:` lines come after every other line of the error.
fn assert_hints_last(err: &str) {
    let lines: Vec<&str> = err.lines().collect();
    let first_hint = lines.iter().position(|l| l.starts_with("hint: "));
    if let Some(i) = first_hint {
        assert!(
            lines[i..].iter().all(|l| l.starts_with("hint: ")),
            "a line follows the hints:\n{err}"
        );
    }
}

#[test]
fn a_missing_bundle_file_is_said_once() {
    let w = Work::new();
    let not_found = std::io::Error::from_raw_os_error(2).to_string();
    let verify = w.installer(&["verify", "gone.tar", "--key", &w.pubkey()]);
    let inspect = w.bundler(&["inspect", "gone.tar"]);
    for (what, o) in [("verify", verify), ("inspect", inspect)] {
        let err = error_text(&o);
        assert_eq!(err.matches(&not_found).count(), 1, "{what}:\n{err}");
        assert!(err.contains("gone.tar"), "{what}:\n{err}");
        assert_hints_last(&err);
    }
}

#[test]
fn a_wrong_key_password_is_said_once_and_its_hint_last() {
    let w = Work::new();
    let mut keygen = w.bundler_cmd(&["keygen", "--output", "locked"]);
    keygen.env("ATP_KEY_PASSWORD", "the-right-one");
    assert_ok(&keygen.output().unwrap(), "keygen");
    let spec = repo_root().join("manifests/bundle.yaml");
    let mut create = w.bundler_cmd(&[
        "create",
        "--spec",
        spec.to_str().unwrap(),
        "--key",
        "locked.key",
        "--output",
        "b.tar",
    ]);
    create.env("ATP_KEY_PASSWORD", "not-it");
    let err = error_text(&create.output().unwrap());
    assert_eq!(err.matches("wrong password for").count(), 1, "{err}");
    assert_eq!(err.matches("hint: ").count(), 1, "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("hint: set ATP_KEY_PASSWORD"),
        "{err}"
    );
    assert!(!err.contains("not-it"), "the password was printed:\n{err}");
}

#[test]
fn a_tls_failure_hint_names_the_installer_flags() {
    let reg = atp_testkit::Registry::tls();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    // The registry's own CA is not given, so its certificate is not trusted.
    let o = w
        .install("b.tar")
        .site_flags(["--registry".to_string(), reg.host()])
        .output();
    let err = error_text(&o);
    assert!(err.contains("TLS failure"), "{err}");
    assert!(
        err.contains("hint: pass the registry's CA with --registry-ca (or --plain-http"),
        "{err}"
    );
    for setting in atp_registry::error::HINT_SETTINGS {
        assert!(!err.contains(setting), "{setting} is not a flag:\n{err}");
    }
    assert_hints_last(&err);
}

/// `install` against `registry` with `flags`, one try per request: its error.
fn install_error(w: &Work, registry: &str, flags: &[&str]) -> String {
    let mut site = vec![
        "--registry".to_string(),
        registry.to_string(),
        "--retries".into(),
        "0".into(),
    ];
    site.extend(flags.iter().map(|f| f.to_string()));
    error_text(&w.install("b.tar").site_flags(site).output())
}

#[test]
fn an_unreachable_registry_says_connection_refused_and_what_to_check() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = free.local_addr().unwrap().to_string();
    drop(free);
    let err = install_error(&w, &host, &["--plain-http"]);
    assert!(err.contains("connection refused ("), "{err}");
    assert!(
        err.contains(
            "hint: check the registry's address and port, and that the registry is running"
        ),
        "{err}"
    );
    // The wrappers of the cause are not repeated.
    assert!(!err.contains("error sending request"), "{err}");
    assert!(!err.contains("client error (Connect)"), "{err}");
    assert_hints_last(&err);
}

#[test]
fn a_tls_failure_says_why_a_name_mismatch_or_an_unknown_ca() {
    let reg = atp_testkit::Registry::tls();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let ca = reg.ca_cert_path().unwrap();

    // The certificate names 127.0.0.1, localhost and ::1, not 127.0.0.2.
    let relay =
        atp_testkit::relay::Relay::start(std::net::Ipv4Addr::new(127, 0, 0, 2).into(), &reg.host())
            .unwrap();
    let err = install_error(&w, &relay.host(), &["--registry-ca", ca.to_str().unwrap()]);
    assert!(
        err.contains("TLS failure: the registry's certificate is not valid for the host name"),
        "{err}"
    );
    assert!(err.contains("not valid for name \"127.0.0.2\""), "{err}");
    assert!(
        err.contains("hint: use a host name the certificate lists"),
        "{err}"
    );
    assert_hints_last(&err);

    // No CA given: the registry's own CA is unknown here.
    let err = install_error(&w, &reg.host(), &[]);
    assert!(
        err.contains(
            "TLS failure: the registry's certificate is not signed by a CA this machine trusts"
        ),
        "{err}"
    );
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(!err.contains("error sending request"), "{err}");
    assert_hints_last(&err);
}

/// Issue 22, item 8: `create --compress zstd` named the volumes.json and
/// gave the uncompressed size; it says each file written, with its size.
#[test]
fn create_with_media_reports_the_files_written_and_their_sizes() {
    let w = Work::new();
    std::fs::create_dir(w.path("z")).unwrap();
    let o = w.create_demo("z/atp.tar", &["--compress", "zstd"]);
    assert_ok(&o, "create --compress zstd");
    let out = String::from_utf8_lossy(&o.stdout);
    let size = std::fs::metadata(w.path("z/atp.tar.zst")).unwrap().len();
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "wrote z/atp.tar.zst ({size} bytes, the zstd-compressed bundle of "
        )),
        "{out}"
    );
    assert!(
        out.contains("and z/atp.tar.zst.volumes.json with its signature"),
        "{out}"
    );

    std::fs::create_dir(w.path("s")).unwrap();
    let o = w.create_demo(
        "s/atp.tar",
        &["--split-size", "10000", "--compress", "zstd"],
    );
    assert_ok(&o, "create --split-size");
    let out = String::from_utf8_lossy(&o.stdout);
    let volumes: Vec<&str> = out.lines().filter(|l| l.starts_with("volume ")).collect();
    assert!(!volumes.is_empty(), "{out}");
    let mut total = 0;
    for line in &volumes {
        let name = line["volume ".len()..].split(' ').next().unwrap();
        let size = std::fs::metadata(w.path(name)).unwrap().len();
        total += size;
        assert_eq!(*line, format!("volume {name} ({size} bytes)"), "{out}");
    }
    assert!(
        out.starts_with(&format!(
            "wrote {} volumes, {total} bytes in all",
            volumes.len()
        )),
        "{out}"
    );
}
