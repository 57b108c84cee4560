//! The static installer (issue 23): the `crt-static` build runs where
//! nothing else is (an empty chroot: no libc, no loader, no `/etc`), the
//! release's signed `SHA256SUMS` is checked with stock `openssl` and
//! `sha256sum`, and `create --with-installer` carries it so `verify-media`
//! vouches for it.
//!
//! The static binaries are the `static-test` profile build `make static` makes (the
//! Makefile's `test` target runs it first); the first test to need them
//! runs the same cargo command, a no-op when they are current.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use atp_bundle::media::volumes::VOLUMES_FORMAT_V2;
use atp_bundle::media::VolumesFile;
use atp_testkit::cli::{output_with_stdin, Install};
use atp_testkit::Registry;
use common::*;

const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";
/// The Makefile's `STATIC_RUSTFLAGS`, as `make static` passes them.
const STATIC_RUSTFLAGS: &str =
    r#"-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom""#;

/// The folder with the static test `atp-installer` and `atp-bundler`,
/// built once per test run.
fn static_bins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = repo_root();
        // The same flags as `make static`, or each build would undo the other.
        let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
        assert!(
            makefile.contains(&format!("STATIC_RUSTFLAGS := {STATIC_RUSTFLAGS}\n")),
            "the Makefile's STATIC_RUSTFLAGS differ from this test's"
        );
        let target_dir = root.join("target/static");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        // What `cargo test` sets for a test (CARGO_PKG_*, CARGO_MANIFEST_DIR,
        // LD_LIBRARY_PATH, ...) is not passed on: the build must see the
        // environment `make static` sees, or each would rebuild the other's.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let ours = (k.starts_with("CARGO") && k != "CARGO_HOME")
                || (k.starts_with("RUST") && !k.starts_with("RUSTUP"))
                || k == "LD_LIBRARY_PATH"
                || k == "OUT_DIR";
            if ours {
                build.env_remove(k.as_ref());
            }
        }
        let out = build
            .args(["build", "--profile", "static-test"])
            .args(["-p", "atp-installer", "-p", "atp-bundler"])
            .args(["--target", STATIC_TARGET])
            .env("RUSTFLAGS", STATIC_RUSTFLAGS)
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(&root)
            .output()
            .unwrap();
        assert_ok(&out, "static build (make static)");
        target_dir.join(STATIC_TARGET).join("static-test")
    })
}

fn static_installer() -> PathBuf {
    static_bins().join("atp-installer")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

/// `chroot ROOT PROGRAM ARGS...` with nothing from our environment.
fn in_chroot(root: &Path, program: &str, args: &[std::ffi::OsString]) -> Command {
    // By absolute path: with PATH set for the child, Command looks the
    // program up on the child's PATH ("/" here).
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("chroot(8) is installed (coreutils)");
    let mut c = Command::new(chroot);
    c.arg(root)
        .arg(program)
        .args(args)
        .env_clear()
        .env("HOME", "/tmp")
        .env("TMPDIR", "/tmp")
        .env("PATH", "/")
        .env("ATP_KUBECTL", "/kubectl");
    c
}

fn flip_a_byte(p: &Path, at: usize) {
    let mut bytes = std::fs::read(p).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(p, bytes).unwrap();
}

#[test]
fn static_installer_runs_version_verify_and_install_in_an_empty_chroot() {
    let installer = static_installer();
    let file = run(Command::new("file").arg("-L").arg(&installer));
    let file = text(&file);
    assert!(
        file.contains("statically linked") || file.contains("static-pie linked"),
        "{file}"
    );
    let ldd = text(&run(Command::new("ldd").arg(&installer)));
    assert!(
        ldd.contains("not a dynamic executable") || ldd.contains("statically linked"),
        "ldd lists libraries: {ldd}"
    );

    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");

    let root = install_chroot(&w, &installer);
    // The dynamic build cannot even start there: the chroot is really empty.
    std::fs::copy(
        atp_testkit::bins::bin("atp-installer"),
        root.join("dynamic"),
    )
    .unwrap();
    let dynamic = run(&mut in_chroot(&root, "/dynamic", &["--version".into()]));
    assert!(
        !dynamic.status.success(),
        "the dynamic installer started in the empty chroot"
    );
    std::fs::remove_file(root.join("dynamic")).unwrap();

    let version = run(&mut in_chroot(
        &root,
        "/atp-installer",
        &["--version".into()],
    ));
    assert_ok(&version, "--version in the chroot");
    assert!(
        text(&version).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        text(&version)
    );

    let verify = run(&mut in_chroot(
        &root,
        "/atp-installer",
        &[
            "verify".into(),
            "/b.tar".into(),
            "--key".into(),
            "/k.pub".into(),
        ],
    ));
    assert_ok(&verify, "verify in the chroot");

    add_dev_null(&root);
    // The registry by IP literal (127.0.0.1:PORT): no resolver needed.
    assert!(reg.host().starts_with("127.0.0.1:"), "{}", reg.host());
    let install = Install::new("/b.tar")
        .key("/k.pub")
        .state_dir("/tmp/state")
        .registry(&reg)
        .render_to("/tmp/render");
    let out = output_with_stdin(
        in_chroot(&root, "/atp-installer", &install.argv()),
        reg.credentials().map(|(_, p)| p).as_deref(),
    );
    assert_ok(&out, "install in the chroot");
    assert!(
        std::fs::read_dir(root.join("tmp/render")).unwrap().count() > 0,
        "nothing rendered"
    );
    // What the chroot pushed is in the registry, by the bundle's digests.
    assert_demo_images(&reg);
}

/// The chroot: the binary, the bundle, the key, an empty /tmp. kubectl
/// renders every install that ships manifests; it is the site's own tool
/// (a static Go binary), given as ATP_KUBECTL, and only install runs it.
fn install_chroot(w: &Work, installer: &Path) -> PathBuf {
    let root = w.path("root");
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy(installer, root.join("atp-installer")).unwrap();
    std::fs::copy(w.path("b.tar"), root.join("b.tar")).unwrap();
    std::fs::copy(w.pubkey(), root.join("k.pub")).unwrap();
    std::fs::copy(which_kubectl_path(), root.join("kubectl")).unwrap();
    root
}

/// install starts kubectl, whose stdin std sets to /dev/null: the one
/// device node every host has (--version and verify run without it).
fn add_dev_null(root: &Path) {
    std::fs::create_dir(root.join("dev")).unwrap();
    assert_ok(
        &run(Command::new("mknod")
            .arg(root.join("dev/null"))
            .args(["-m", "666", "c", "1", "3"])),
        "mknod /dev/null",
    );
}

/// Installs from the chroot to a plain-HTTP registry named `host:PORT`.
fn install_by_name(root: &Path, host: &str, reg: &Registry, render: &str) -> Output {
    let port = reg.host().rsplit(':').next().unwrap().to_string();
    let install = Install::new("/b.tar")
        .key("/k.pub")
        .state_dir(format!("/tmp/state-{host}"))
        .plain_http(&format!("{host}:{port}"))
        .render_to(render);
    in_chroot(root, "/atp-installer", &install.argv())
        .output()
        .unwrap()
}

/// Host names resolve with nothing of glibc's: `/etc/hosts` first, then
/// the nameserver `/etc/resolv.conf` names, read by the binary itself (no
/// NSS module could load in the chroot). A name neither knows is an error
/// that names it.
#[test]
fn static_installer_resolves_names_through_hosts_and_dns_without_nss() {
    let installer = static_installer();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let root = install_chroot(&w, &installer);
    add_dev_null(&root);
    // Any 127/8 address is loopback on Linux: one nobody else uses for DNS.
    let dns = atp_testkit::dns::Dns::start(
        "127.0.53.1:53",
        &[("dns-registry.test", std::net::Ipv4Addr::LOCALHOST)],
    )
    .expect("bind 127.0.53.1:53 (the tests run as root, as chroot needs)");
    std::fs::create_dir(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 hosts-registry.test\n").unwrap();
    std::fs::write(root.join("etc/resolv.conf"), "nameserver 127.0.53.1\n").unwrap();

    let by_hosts = Registry::plain();
    let out = install_by_name(&root, "hosts-registry.test", &by_hosts, "/tmp/r1");
    assert_ok(&out, "install to hosts-registry.test (from /etc/hosts)");
    let by_dns = Registry::plain();
    let out = install_by_name(&root, "dns-registry.test", &by_dns, "/tmp/r2");
    assert_ok(&out, "install to dns-registry.test (from the nameserver)");
    assert_demo_images(&by_hosts);
    assert_demo_images(&by_dns);
    // The nameserver answers NXDOMAIN for hosts-registry.test (it may be
    // asked for its IPv6 address): that install could only find the
    // registry through /etc/hosts. dns-registry.test is only in the
    // nameserver.
    let asked = dns.names_asked();
    assert!(asked.iter().any(|n| n == "dns-registry.test"), "{asked:?}");

    let out = install_by_name(&root, "nowhere.test", &by_dns, "/tmp/r3");
    assert!(!out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("nowhere.test"), "{t}");
    assert!(!t.contains("panicked"), "{t}");
}

/// Where the real kubectl is (followed through links: it is copied).
fn which_kubectl_path() -> PathBuf {
    let k = atp_testkit::cli::which_kubectl();
    assert!(!k.is_empty(), "kubectl is not on PATH");
    std::fs::canonicalize(k).unwrap()
}

#[test]
fn release_sums_are_signed_for_openssl_and_catch_a_flipped_byte() {
    let bins = static_bins();
    let w = Work::new();
    let dist = w.path("dist");
    let out = run(Command::new(repo_root().join("scripts/release.sh"))
        .env("RELEASE_KEY", w.key())
        .env("ATP_KEY_PASSWORD", "")
        .env("RELEASE_BIN_DIR", bins)
        .env("DIST", &dist)
        .current_dir(repo_root()));
    assert_ok(&out, "scripts/release.sh");
    let mut names: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "SHA256SUMS.sig",
            "atp-bundler",
            "atp-installer"
        ]
    );

    // Everything in dist/ is readable by all: it is published.
    use std::os::unix::fs::PermissionsExt as _;
    for n in &names {
        let mode = std::fs::metadata(dist.join(n))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o444, 0o444, "{n}: mode {mode:o}");
    }

    // docs/guide.md's commands, as a site runs them.
    let sig_b64 = std::fs::read_to_string(dist.join("SHA256SUMS.sig")).unwrap();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig_b64.trim())
        .unwrap();
    std::fs::write(w.path("sig.der"), der).unwrap();
    let openssl = |sums: &Path| {
        run(Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(w.pubkey())
            .arg("-signature")
            .arg(w.path("sig.der"))
            .arg(sums))
    };
    let ok = openssl(&dist.join("SHA256SUMS"));
    assert_ok(&ok, "openssl dgst -verify");
    assert!(text(&ok).contains("Verified OK"), "{}", text(&ok));
    let sums = run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dist));
    assert_ok(&sums, "sha256sum -c");

    // A flipped byte in the binary: the sums check names it.
    flip_a_byte(&dist.join("atp-installer"), 4096);
    let bad = run(Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dist));
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("atp-installer: FAILED"),
        "{}",
        text(&bad)
    );
    // A sums file edited to match: the signature no longer verifies.
    let edited = w.path("SHA256SUMS.edited");
    let mut s = std::fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    s.replace_range(0..1, if s.starts_with('0') { "1" } else { "0" });
    std::fs::write(&edited, s).unwrap();
    let refused = openssl(&edited);
    assert!(!refused.status.success(), "{}", text(&refused));
}

#[test]
fn create_with_installer_carries_it_and_verify_media_names_it() {
    let w = Work::new();
    // The stripped static installer: what `make release` ships.
    let installer = w.path("atp-installer");
    assert_ok(
        &run(Command::new("strip")
            .arg("-o")
            .arg(&installer)
            .arg(static_installer())),
        "strip",
    );
    let carried_bytes = std::fs::read(&installer).unwrap();

    // Split: listed and signed in volumes.json (format /2).
    std::fs::create_dir_all(w.path("usb")).unwrap();
    let out = w.create_demo(
        "usb/b.tar",
        &[
            "--split-size",
            "16384",
            "--with-installer",
            installer.to_str().unwrap(),
        ],
    );
    assert_ok(&out, "create --split-size --with-installer");
    assert!(text(&out).contains("installer"), "{}", text(&out));
    let carried = w.path("usb/atp-installer");
    assert_eq!(std::fs::read(&carried).unwrap(), carried_bytes);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&carried).unwrap().permissions().mode() & 0o111,
        0o111
    );
    let vf = VolumesFile::parse(&std::fs::read(w.path("usb/b.tar.volumes.json")).unwrap()).unwrap();
    assert_eq!(vf.format, VOLUMES_FORMAT_V2);
    let listed = vf.installer.expect("volumes.json lists the installer");
    assert_eq!(listed.name, "atp-installer");
    assert_eq!(listed.size, carried_bytes.len() as u64);

    let good = w.installer(&["verify-media", "usb", "--key", &w.pubkey()]);
    assert_ok(&good, "verify-media");
    assert!(
        text(&good).contains("installer atp-installer: good"),
        "{}",
        text(&good)
    );
    let good_json = json(&w.installer(&["verify-media", "usb", "--key", &w.pubkey(), "--json"]));
    assert_eq!(good_json["ok"], true);
    assert_eq!(good_json["installer"]["name"], "atp-installer");
    // The bundle itself still reads from the format /2 volumes.
    assert_ok(
        &w.installer(&["verify", "usb/b.tar.volumes.json", "--key", &w.pubkey()]),
        "verify the volumes",
    );

    flip_a_byte(&carried, carried_bytes.len() / 2);
    let bad = w.installer(&["verify-media", "usb", "--key", &w.pubkey()]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let t = text(&bad);
    assert!(t.contains("installer atp-installer: corrupt"), "{t}");
    assert!(t.contains("FAILED: the installer atp-installer"), "{t}");
    // The volumes themselves are still good.
    assert!(!t.contains("volume b.tar.001: corrupt"), "{t}");

    // Plain (no --split-size, no --compress): the tar stays as it is, one
    // volume of a signed volumes.json that lists the installer too, so
    // verify-media vouches for the binary beside a plain bundle as well.
    std::fs::create_dir_all(w.path("plain")).unwrap();
    let out = w.create_demo(
        "plain/b.tar",
        &[
            "--with-installer",
            installer.to_str().unwrap(),
            "--simulate",
        ],
    );
    assert_ok(&out, "create --with-installer --simulate");
    assert!(
        text(&out).contains("listed in the signed volumes.json"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(w.path("plain/atp-installer")).unwrap(),
        carried_bytes
    );
    let vf =
        VolumesFile::parse(&std::fs::read(w.path("plain/b.tar.volumes.json")).unwrap()).unwrap();
    assert_eq!(vf.format, VOLUMES_FORMAT_V2);
    assert_eq!(vf.split_size, None);
    let names: Vec<&str> = vf.volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["b.tar"]);
    // The tar is the same plain bundle it would be without the installer.
    std::fs::create_dir_all(w.path("alone")).unwrap();
    let plain_alone = w.create_demo("alone/b.tar", &[]);
    assert_ok(&plain_alone, "create without --with-installer");
    assert_eq!(
        std::fs::read(w.path("plain/b.tar")).unwrap(),
        std::fs::read(w.path("alone/b.tar")).unwrap()
    );
    assert!(!w.path("alone/b.tar.volumes.json").exists());
    assert_ok(
        &w.installer(&["verify", "plain/b.tar", "--key", &w.pubkey()]),
        "verify the plain tar",
    );
    let good = w.installer(&["verify-media", "plain", "--key", &w.pubkey()]);
    assert_ok(&good, "verify-media of a plain bundle");
    assert!(
        text(&good).contains("installer atp-installer: good"),
        "{}",
        text(&good)
    );
    flip_a_byte(&w.path("plain/atp-installer"), carried_bytes.len() / 3);
    let bad = w.installer(&["verify-media", "plain", "--key", &w.pubkey()]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("installer atp-installer: corrupt"),
        "{}",
        text(&bad)
    );
}
