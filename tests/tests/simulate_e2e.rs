//! Issue 13 end to end: `atp-installer simulate` changes nothing on the
//! registry or the host, its plan is what a real install then does, it
//! catches every way an install would fail (credentials, CA, an image the
//! bundle lacks, a rollback, an unreachable registry, a full disk), and it
//! passes inside a network namespace that has only loopback. Also
//! `atp-bundler create --simulate`, the connected-side self-check.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use atp_testkit::bins::bin;
use atp_testkit::cli::{registry_flags, which_kubectl};
use atp_testkit::fixtures::{self, IMAGES};
use atp_testkit::{Access, Registry};
use common::*;

/// Run `atp-installer simulate BUNDLE` (or `install --dry-run`) against
/// `reg`, with `flags` instead of the registry's own when given. A
/// `--state-dir` in `extra` replaces the workdir's `state`.
fn simulate_with(
    w: &Work,
    cmd: &[&str],
    bundle: &str,
    flags: &[String],
    password: Option<&str>,
    extra: &[&str],
) -> Output {
    let mut c = match cmd[0] {
        "simulate" => w.simulate(bundle),
        "install" => w.install(bundle),
        other => panic!("not a site command: {other}"),
    };
    c = c
        .site_flags(flags.iter().cloned())
        .args(&cmd[1..])
        .arg("--json");
    let mut extra = extra.to_vec();
    if let Some(i) = extra.iter().position(|a| *a == "--state-dir") {
        c = c.state_dir(extra[i + 1]);
        extra.drain(i..i + 2);
    }
    if let Some(p) = password {
        c = c.password(p);
    }
    c.args(extra).output()
}

fn simulate(w: &Work, reg: &Registry, bundle: &str, extra: &[&str]) -> Output {
    let password = reg.credentials().map(|(_, p)| p);
    simulate_with(
        w,
        &["simulate"],
        bundle,
        &registry_flags(reg),
        password.as_deref(),
        extra,
    )
}

/// Every regular file of the registry's storage, with its size.
fn storage_files(reg: &Registry) -> BTreeSet<(String, u64)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<(String, u64)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert((rel, m.len()));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(reg.storage_dir(), reg.storage_dir(), &mut out);
    out
}

/// Only reads, plus one upload session per repository opened and cancelled
/// (and requests refused with an auth challenge).
fn assert_only_reads_and_cancelled_sessions(log: &[Access], repositories: usize) {
    let (mut opened, mut cancelled) = (0, 0);
    for a in log {
        match a.method.as_str() {
            "GET" | "HEAD" => {}
            // An auth challenge: refused before anything happened.
            _ if a.status == 401 => {}
            "POST" if a.path.ends_with("/blobs/uploads/") && a.status == 202 => opened += 1,
            "DELETE" if a.path.contains("/blobs/uploads/") && a.status == 204 => cancelled += 1,
            _ => panic!("simulate sent a write: {a}\nfull log: {log:#?}"),
        }
    }
    assert_eq!(opened, repositories, "{log:#?}");
    assert_eq!(cancelled, repositories, "{log:#?}");
}

/// The only files simulate may leave in the registry's storage: the hash
/// state docker-registry keeps for a cancelled upload session under
/// `_uploads/` (no blob data; invisible through the API; removed by the
/// registry's upload purging).
fn assert_only_session_residue(before: &BTreeSet<(String, u64)>, after: &BTreeSet<(String, u64)>) {
    let new: Vec<&(String, u64)> = after.difference(before).collect();
    assert!(before.is_subset(after), "simulate removed files");
    for (path, _) in &new {
        let residue = path.contains("/_uploads/") && path.contains("/hashstates/");
        assert!(
            residue,
            "simulate left {path} behind; all new files: {new:?}"
        );
    }
}

/// The repositories `/v2/_catalog` lists.
fn catalog(reg: &Registry) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("http://{}/v2/_catalog", reg.host())])
        .output()
        .unwrap();
    assert_ok(&out, "curl /v2/_catalog");
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["repositories"].clone()
}

/// `(repository, digest)` pairs.
type Placed = BTreeSet<(String, String)>;

/// `(repository, digest)` of each blob upload (committing PUT) and mount in the log.
fn uploads_and_mounts(log: &[Access]) -> (Placed, Placed) {
    let (mut up, mut mounted) = (BTreeSet::new(), BTreeSet::new());
    for a in log.iter().filter(|a| a.status == 201) {
        let Some((repo, rest)) = a
            .path
            .strip_prefix("/v2/")
            .and_then(|p| p.split_once("/blobs/uploads/"))
        else {
            continue;
        };
        let query = rest.split_once('?').map(|(_, q)| q).unwrap_or("");
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(|v| v.replace("%3A", ":"))
        };
        match a.method.as_str() {
            "PUT" => {
                up.insert((repo.to_string(), param("digest").unwrap()));
            }
            "POST" if param("mount").is_some() => {
                mounted.insert((repo.to_string(), param("mount").unwrap()));
            }
            _ => {}
        }
    }
    (up, mounted)
}

/// `(repository, digest)` of the plan's blobs with this action.
fn planned(plan: &serde_json::Value, reg: &Registry, action: &str) -> BTreeSet<(String, String)> {
    let prefix = format!("{}/", reg.host());
    plan["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["action"] == action)
        .map(|b| {
            (
                b["repository"]
                    .as_str()
                    .unwrap()
                    .strip_prefix(&prefix)
                    .unwrap()
                    .to_string(),
                b["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_fails_with(o: &Output, needles: &[&str]) {
    assert_eq!(o.status.code(), Some(1), "{}", text(o));
    let err = stderr(o);
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in:\n{}", text(o));
    }
    let v = json(o);
    assert_eq!(v["ok"], false);
    assert!(!v["findings"].as_array().unwrap().is_empty());
}

#[test]
fn the_plan_changes_nothing_and_is_what_install_then_does_on_an_empty_and_a_half_filled_registry() {
    for half_filled in [false, true] {
        let reg = Registry::plain();
        let w = Work::new();
        assert_ok(&w.create_demo("b.tar", &[]), "create");
        if half_filled {
            // One of the three images is already at its target.
            let router = IMAGES.iter().find(|i| i.dir == "router").unwrap();
            fixtures::push(&reg, router, "docker.io/atp/router");
        }
        let repositories = 3;
        let before = storage_files(&reg);
        let catalog_before = catalog(&reg);
        let mark = reg.access_mark();
        let cmd: &[&str] = if half_filled {
            &["install", "--dry-run"]
        } else {
            &["simulate"]
        };
        let out = simulate_with(&w, cmd, "b.tar", &registry_flags(&reg), None, &[]);
        assert_ok(&out, "simulate");
        let plan = json(&out);
        assert_eq!(plan["ok"], true, "{plan:#}");
        assert_only_reads_and_cancelled_sessions(&reg.access_log_since(mark), repositories);
        assert_only_session_residue(&before, &storage_files(&reg));
        assert_eq!(
            catalog(&reg),
            catalog_before,
            "simulate made a repository visible"
        );
        assert!(!w.path("state").exists(), "simulate created the state dir");
        assert_eq!(plan["images"].as_array().unwrap().len(), 3);
        assert!(plan["cluster"]["skipped"]
            .as_str()
            .unwrap()
            .contains("no --apply"));
        assert!(plan["host"]["kustomize"].as_str().unwrap().starts_with('v'));
        if half_filled {
            assert!(plan["skipped"].as_u64().unwrap() > 0, "{plan:#}");
        } else {
            assert_eq!(plan["skipped"], 0);
            assert_eq!(plan["manifests_skipped"], 0);
        }
        assert!(plan["uploaded"].as_u64().unwrap() > 0);

        // The real install does exactly what the plan said.
        let mark = reg.access_mark();
        let out = install(&w, &reg, "b.tar", &["--json"]);
        assert_ok(&out, "install");
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
        assert_eq!(plan["images"], done["images"]);
        assert_eq!(plan["objects"], done["objects"]);
        let (up, mounted) = uploads_and_mounts(&reg.access_log_since(mark));
        assert_eq!(up, planned(&plan, &reg, "upload"), "uploaded blobs");
        assert_eq!(mounted, planned(&plan, &reg, "mount"), "mounted blobs");

        // Simulating again: everything is there, nothing to do.
        let out = simulate(&w, &reg, "b.tar", &[]);
        assert_ok(&out, "simulate after install");
        let again = json(&out);
        assert_eq!(again["uploaded"], 0);
        assert_eq!(again["mounted"], 0);
        assert_eq!(again["manifests_pushed"], 0);
        assert!(again["rollback"]
            .as_str()
            .unwrap()
            .contains("already installed"));
    }
}

#[test]
fn wrong_credentials_are_caught_and_no_secret_is_printed() {
    let reg = Registry::basic();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let out = simulate_with(
        &w,
        &["simulate"],
        "b.tar",
        &registry_flags(&reg),
        Some("not-the-password"),
        &[],
    );
    assert_fails_with(&out, &["[credentials]", "fix: check --username"]);
    assert!(!text(&out).contains("not-the-password"));
    // The right password passes.
    assert_ok(
        &simulate(&w, &reg, "b.tar", &[]),
        "simulate with the right password",
    );
}

#[test]
fn a_wrong_ca_is_caught() {
    let reg = Registry::tls();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let other = atp_testkit::pki::Ca::generate("some other CA").unwrap();
    let ca = atp_testkit::pki::write(w.dir.path(), "other-ca.crt", &other.cert.pem()).unwrap();
    let flags = vec![
        "--registry".to_string(),
        reg.host(),
        "--registry-ca".into(),
        ca.display().to_string(),
    ];
    let out = simulate_with(&w, &["simulate"], "b.tar", &flags, None, &[]);
    assert_fails_with(&out, &["[tls]", "--registry-ca"]);
    assert!(reg.access_log().is_empty(), "{:?}", reg.access_log());
    assert_ok(
        &simulate(&w, &reg, "b.tar", &[]),
        "simulate with the right CA",
    );
}

#[test]
fn an_unreachable_registry_is_caught() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let flags = vec![
        "--registry".to_string(),
        format!("127.0.0.1:{port}"),
        "--plain-http".into(),
    ];
    let out = simulate_with(&w, &["simulate"], "b.tar", &flags, None, &[]);
    assert_fails_with(&out, &["[registry]", "not reachable", "check --registry"]);
    // The rest of the plan is still shown.
    let objects = json(&out)["objects"].clone();
    assert!(
        objects
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o == "Deployment/atp-system/atp-router"),
        "{objects:#}"
    );
}

#[test]
fn a_lower_sequence_is_caught_and_the_state_dir_is_left_alone() {
    let reg = Registry::plain();
    let w = Work::new();
    for (seq, out) in [(2, "v2.tar"), (1, "v1.tar")] {
        let spec = demo_spec(&w, &format!("s{seq}.yaml"), seq, &[]);
        assert_ok(
            &w.bundler(&["create", "--spec", &spec, "--key", "k.key", "--output", out]),
            "create",
        );
    }
    assert_ok(&install(&w, &reg, "v2.tar", &[]), "install v2");
    let channels = std::fs::read(w.path("state/channels.json")).unwrap();
    let out = simulate(&w, &reg, "v1.tar", &[]);
    assert_fails_with(&out, &["[rollback]", "--allow-downgrade"]);
    assert!(json(&out)["rollback"]
        .as_str()
        .unwrap()
        .contains("refused: sequence 1 is not newer than the installed 2"));
    assert_eq!(
        std::fs::read(w.path("state/channels.json")).unwrap(),
        channels
    );
    assert_ok(
        &simulate(&w, &reg, "v1.tar", &["--allow-downgrade"]),
        "simulate a downgrade that is allowed",
    );
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .unwrap();
        assert_ok(&out, "mount tmpfs (the tests run as root)");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .output();
    }
}

#[test]
fn a_state_dir_on_a_filesystem_too_small_for_the_run_is_caught() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let small = Tmpfs::mount(w.path("small"), "64k");
    let state = small.0.join("state");
    let s = state.display().to_string();
    let out = simulate(&w, &reg, "b.tar", &["--state-dir", &s]);
    assert_fails_with(&out, &["[space]", "--state-dir"]);
    let v = json(&out);
    let check = &v["host"]["state_dir"];
    assert!(
        check["needed_bytes"].as_u64().unwrap() > check["free_bytes"].as_u64().unwrap(),
        "{check:#}"
    );
    assert!(!state.exists(), "simulate created the state dir");
    // It is right: the real install does fail there.
    let out = simulate_with(
        &w,
        &["install"],
        "b.tar",
        &registry_flags(&reg),
        None,
        &["--state-dir", &s],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("No space left on device"),
        "{}",
        text(&out)
    );
    drop(small);
    // With room, the same run passes.
    assert_ok(
        &simulate(&w, &reg, "b.tar", &["--state-dir", &w.s("roomy")]),
        "simulate with room",
    );
}

/// A bundle whose overlay uses `docker.io/evil/miner:1`, which it does not
/// carry. `create`'s own gate is fooled by a kubectl stand-in that hides the
/// line on its first run only (as a careless tool might); later runs see
/// the truth.
fn bundle_missing_an_image(w: &Work, extra_create: &[&str]) -> Output {
    let spec = spec_with_an_unbundled_image(w);
    let filter = w.path("kubectl-once");
    let mark = w.path("kubectl-once.used");
    let _ = std::fs::remove_file(&mark);
    std::fs::write(
        &filter,
        format!(
            "#!/bin/sh\nif [ -e {m} ]; then exec kubectl \"$@\"; fi\ntouch {m}\nkubectl \"$@\" | grep -v evil/miner\n",
            m = mark.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&filter, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut args = vec![
        "create", "--spec", &spec, "--key", "k.key", "--output", "b.tar",
    ];
    args.extend_from_slice(extra_create);
    let mut c = w.bundler_cmd(&args);
    c.env("ATP_KUBECTL", &filter);
    c.output().unwrap()
}

#[test]
fn an_overlay_image_missing_from_the_bundle_is_caught_at_both_ends() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&bundle_missing_an_image(&w, &[]), "create (gate fooled)");
    let out = simulate(&w, &reg, "b.tar", &[]);
    assert_fails_with(
        &out,
        &[
            "[air-gap gate]",
            "Deployment/atp-system/atp-router",
            "spec.template.spec.containers[1].image",
            "docker.io/evil/miner:1",
            "does not point at the site registry",
        ],
    );

    // The connected side: create --simulate refuses to call it shippable.
    let w = Work::new();
    let out = bundle_missing_an_image(&w, &["--simulate"]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("is not self-sufficient"), "{err}");
    assert!(
        err.contains("Deployment/atp-system/atp-router spec.template.spec.containers[1].image: \"docker.io/evil/miner:1\" is not carried by the bundle"),
        "{err}"
    );
    assert!(err.contains("do not ship it"), "{err}");
}

#[test]
fn create_simulate_passes_for_the_demo_bundle() {
    let w = Work::new();
    let out = w.create_demo("b.tar", &["--simulate", "--json"]);
    assert_ok(&out, "create --simulate");
    let v = json(&out);
    let check = &v["selfcheck"];
    assert_eq!(check["ok"], true, "{check:#}");
    assert_eq!(check["overlay"], "overlays/air-gapped");
    assert_eq!(check["image_fields"], 3);
    let out = w.create_demo("c.tar", &["--simulate"]);
    assert_ok(&out, "create --simulate (text)");
    assert!(String::from_utf8_lossy(&out.stdout).contains("every image carried"));
}

#[test]
fn the_cluster_step_runs_a_server_side_dry_run_or_says_why_it_was_skipped() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    // A stand-in kubectl: real kubectl for kustomize and client version; a
    // cluster that answers unless UNREACHABLE is set.
    let bindir = w.path("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    let log = w.path("kubectl.log");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$*\" in\n  kustomize*|*--client*) exec {real} \"$@\";;\n  *' version '*) if [ -n \"$UNREACHABLE\" ]; then echo 'The connection to the server 10.0.0.1:6443 was refused' >&2; exit 1; fi; echo '{{}}';;\n  *' apply '*) echo 'deployment.apps/atp-router serverside-applied (server dry run)';;\nesac\nexit 0\n",
        log = log.display(),
        real = which_kubectl()
    );
    std::fs::write(bindir.join("kubectl"), script).unwrap();
    std::fs::set_permissions(
        bindir.join("kubectl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bindir.display(), std::env::var("PATH").unwrap());
    let run = |unreachable: bool| {
        let mut c = w.simulate("b.tar").registry(&reg).env("PATH", &path).args([
            "--json",
            "--apply",
            "--kubeconfig",
            "/etc/site/kubeconfig",
            "--context",
            "site",
        ]);
        if unreachable {
            c = c.env("UNREACHABLE", "1");
        }
        c.output()
    };
    let out = run(false);
    assert_ok(&out, "simulate --apply");
    let v = json(&out);
    assert_eq!(v["cluster"]["checked"], true, "{v:#}");
    assert!(v["cluster"]["output"]
        .as_str()
        .unwrap()
        .contains("serverside-applied (server dry run)"));
    let calls = std::fs::read_to_string(&log).unwrap();
    let apply: Vec<&str> = calls.lines().filter(|l| l.contains(" apply ")).collect();
    assert_eq!(apply.len(), 1, "{calls}");
    assert!(
        apply[0].starts_with("--kubeconfig /etc/site/kubeconfig --context site apply --server-side --field-manager=atp-installer --dry-run=server -f ")
            && apply[0].ends_with("rendered.yaml"),
        "{}",
        apply[0]
    );
    assert!(!calls.lines().any(|l| l.contains("rollout")), "{calls}");

    let out = run(true);
    assert_ok(&out, "simulate --apply with the cluster down");
    let v = json(&out);
    assert_eq!(v["cluster"]["checked"], false);
    let why = v["cluster"]["skipped"].as_str().unwrap();
    assert!(
        why.contains("not reachable") && why.contains("connection to the server"),
        "{why}"
    );
}

#[test]
fn simulate_passes_in_a_network_namespace_with_only_loopback() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let storage = w.path("registry");
    std::fs::create_dir_all(&storage).unwrap();
    let config = w.path("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:5000\n",
            storage.display()
        ),
    )
    .unwrap();
    let script = format!(
        r#"set -u
ip link set lo up
ip -o link show > {links}
{registry} serve {config} > {reglog} 2>&1 &
rpid=$!
for i in $(seq 1 100); do
  curl -sf http://127.0.0.1:5000/v2/ > /dev/null && break
  sleep 0.1
done
{installer} simulate {bundle} --key {key} --registry 127.0.0.1:5000 --plain-http --state-dir {state} --json > {plan}
echo $? > {rc}
{installer} install {bundle} --key {key} --registry 127.0.0.1:5000 --plain-http --state-dir {state} --json > {done}
echo $? >> {rc}
kill $rpid
wait $rpid 2>/dev/null
exit 0
"#,
        links = w.s("links"),
        registry = atp_testkit::registry::REGISTRY_BIN,
        config = config.display(),
        reglog = w.s("registry.log"),
        installer = bin("atp-installer").display(),
        bundle = w.s("b.tar"),
        key = w.pubkey(),
        state = w.s("state"),
        plan = w.s("plan.json"),
        done = w.s("done.json"),
        rc = w.s("rc"),
    );
    let out = std::process::Command::new("unshare")
        .args(["--net", "sh", "-c", &script])
        .current_dir(w.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_ok(&out, "unshare --net");
    let links = std::fs::read_to_string(w.path("links")).unwrap();
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains(": lo:"), "{links}");
    let rc = std::fs::read_to_string(w.path("rc")).unwrap();
    let reglog = std::fs::read_to_string(w.path("registry.log")).unwrap_or_default();
    assert_eq!(rc, "0\n0\n", "{}\nregistry log:\n{reglog}", text(&out));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("plan.json")).unwrap()).unwrap();
    let done: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.path("done.json")).unwrap()).unwrap();
    assert_eq!(plan["ok"], true, "{plan:#}");
    assert_eq!(plan["uploaded"], done["uploaded"]);
    assert_eq!(plan["mounted"], done["mounted"]);
    assert_eq!(plan["manifests_pushed"], done["manifests_pushed"]);
}

#[test]
fn against_a_token_registry_push_permission_is_asked_with_a_push_scope_per_repository() {
    let reg = Registry::token();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let before = storage_files(&reg);
    let mark = reg.access_mark();
    let out = simulate(&w, &reg, "b.tar", &[]);
    assert_ok(&out, "simulate (token auth)");
    assert_eq!(json(&out)["ok"], true);
    assert_only_reads_and_cancelled_sessions(&reg.access_log_since(mark), 3);
    assert_only_session_residue(&before, &storage_files(&reg));
    let pushes: BTreeSet<String> = reg
        .token_requests()
        .iter()
        .filter(|t| t.status == 200)
        .flat_map(|t| t.scopes.clone())
        .filter(|s| s.ends_with(":pull,push") || s.ends_with(":push,pull"))
        .collect();
    for img in ["router", "model-loader", "metrics-exporter"] {
        assert!(
            pushes
                .iter()
                .any(|s| s.contains(&format!("docker.io/atp/{img}:"))),
            "no push-scoped token for {img}: {pushes:?}"
        );
    }
    // Wrong password: caught as a credentials problem.
    let out = simulate_with(
        &w,
        &["simulate"],
        "b.tar",
        &registry_flags(&reg),
        Some("wrong"),
        &[],
    );
    assert_fails_with(&out, &["[credentials]"]);
}

#[test]
fn the_text_plan_names_images_objects_and_each_problem_with_its_fix() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let simulate = w
        .simulate("b.tar")
        .key("k.pub")
        .state_dir("state")
        .plain_http(&reg.host());
    let out = simulate.output();
    assert_ok(&out, "simulate (text)");
    let plan = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "rollback check: first install on channel \"stable\"",
        "docker.io/atp/router:1.4.0 -> ",
        "blobs: ",
        " to upload (",
        "objects to apply (",
        "Deployment/atp-system/atp-router",
        "host: kubectl v",
        "cluster: skipped: the install would not apply",
        "OK: a real install would succeed",
    ] {
        assert!(plan.contains(needle), "missing {needle:?} in:\n{plan}");
    }
    drop(reg);
    let out = simulate.output();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("FAILED: 1 problem(s) would stop the install:"),
        "{plan}"
    );
    assert!(
        plan.contains("[registry] the registry 127.0.0.1:"),
        "{plan}"
    );
    assert!(plan.contains("  fix: check --registry"), "{plan}");
}

#[test]
fn a_model_cache_dir_too_small_for_the_bundles_files_is_caught() {
    let reg = Registry::plain();
    let w = Work::new();
    std::fs::create_dir_all(w.path("models")).unwrap();
    std::fs::write(w.path("models/weights.bin"), vec![7u8; 300 << 10]).unwrap();
    let spec = format!(
        "metadata: {{name: atp-models, version: '1.0'}}\nspec:\n  channel: models\n  sequence: 1\n  files:\n    - {{name: models, source: \"{}\"}}\n",
        w.path("models").display()
    );
    std::fs::write(w.path("m.yaml"), spec).unwrap();
    assert_ok(
        &w.bundler(&[
            "create", "--spec", "m.yaml", "--key", "k.key", "--output", "m.tar",
        ]),
        "create",
    );
    let small = Tmpfs::mount(w.path("small"), "64k");
    let cache = small.0.join("models").display().to_string();
    let out = simulate(&w, &reg, "m.tar", &["--model-cache-dir", &cache]);
    assert_fails_with(&out, &["[space]", "--model-cache-dir"]);
    let check = json(&out)["host"]["model_cache_dir"].clone();
    assert_eq!(check["needed_bytes"], 300 << 10, "{check:#}");
    assert!(!small.0.join("models").exists());
    drop(small);
    assert_ok(
        &simulate(&w, &reg, "m.tar", &["--model-cache-dir", &w.s("cache")]),
        "simulate with room for the model cache",
    );
}

/// Issue 22, item 7: `simulate --apply` without `--kubeconfig` skipped the
/// cluster check, while `install --apply` uses kubectl's default kubeconfig.
/// Both now talk to the same cluster, the same way.
#[test]
fn simulate_apply_without_a_kubeconfig_checks_the_cluster_install_would_apply_to() {
    let reg = Registry::plain();
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    // A stand-in kubectl that records its arguments: the real one for
    // kustomize and its client version, a cluster that answers otherwise.
    let log = w.path("kubectl.log");
    let kubectl = w.path("kubectl");
    std::fs::write(
        &kubectl,
        format!(
            "#!/bin/sh\necho \"$*\" >> {log}\ncase \"$*\" in\n  kustomize*|*--client*) exec {real} \"$@\";;\n  *version*) echo '{{}}';;\nesac\nexit 0\n",
            log = log.display(),
            real = which_kubectl()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = w
        .simulate("b.tar")
        .registry(&reg)
        .env("ATP_KUBECTL", &kubectl)
        .args(["--json", "--apply"])
        .output();
    assert_ok(&out, "simulate --apply");
    let v = json(&out);
    assert_eq!(v["cluster"]["checked"], true, "{v:#}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let simulated: Vec<&str> = calls.lines().filter(|l| l.contains("apply ")).collect();
    assert_eq!(simulated.len(), 1, "{calls}");
    assert!(
        simulated[0]
            .starts_with("apply --server-side --field-manager=atp-installer --dry-run=server -f "),
        "{}",
        simulated[0]
    );

    std::fs::remove_file(&log).unwrap();
    let out = w
        .install("b.tar")
        .registry(&reg)
        .env("ATP_KUBECTL", &kubectl)
        .args(["--json", "--apply"])
        .output();
    assert_ok(&out, "install --apply");
    let calls = std::fs::read_to_string(&log).unwrap();
    let applied: Vec<&str> = calls.lines().filter(|l| l.starts_with("apply ")).collect();
    assert!(!applied.is_empty(), "{calls}");
    // Neither names a kubeconfig: both use kubectl's own default.
    assert!(!calls.contains("--kubeconfig"), "{calls}");
}
