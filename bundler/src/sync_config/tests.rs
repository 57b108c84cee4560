//! Unit tests of `sync_config`.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_shipped_example_parses_and_every_key_is_known() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/sync-config.yaml");
    let c = SyncConfig::load(&p).unwrap();
    assert_eq!(c.source.registry.as_deref(), Some("docker.io"));
    assert_eq!(
        c.target.registry.as_deref(),
        Some("registry.internal.company.com")
    );
    assert_eq!(c.concurrency, Some(3));
    assert!(c.spec.as_ref().unwrap().is_absolute());
    assert!(!c.registries.is_empty());
}

#[test]
fn unknown_keys_are_refused_and_relative_paths_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "c.yaml",
        "target: {registry: r, repoPrefx: x}\n",
    );
    let err = SyncConfig::load(&p).unwrap_err().to_string();
    assert!(err.contains("repoPrefx"), "{err}");
    let p = write(
        dir.path(),
        "c.yaml",
        "spec: sub/bundle.yaml\nregistries:\n  r:5000: {ca: ca.pem}\n",
    );
    let c = SyncConfig::load(&p).unwrap();
    assert_eq!(c.spec.unwrap(), dir.path().join("sub/bundle.yaml"));
    assert_eq!(
        c.registries["r:5000"].ca.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
}

#[test]
fn flags_override_the_file() {
    let c: SyncConfig = serde_yaml_ng::from_str(
        "source: {registry: mirror:5000}\ntarget: {registry: t:1, repoPrefix: p, layout: flat}\nimages: [a/b:1]\nconcurrency: 3\nregistries:\n  t:1: {plainHttp: true}\n",
    )
    .unwrap();
    let o = resolve_options(Some(&c), Overrides::default()).unwrap();
    assert_eq!(
        (
            o.source_registry.as_deref(),
            o.target_registry.as_str(),
            o.repo_prefix.as_deref(),
            o.concurrency
        ),
        (Some("mirror:5000"), "t:1", Some("p"), 3)
    );
    assert_eq!(o.layout, Layout::Flat);
    assert_eq!(o.images, ["a/b:1"]);
    assert!(o.registries["t:1"].plain_http);
    let o = resolve_options(
        Some(&c),
        Overrides {
            target_registry: Some("t:2".into()),
            images: vec!["c/d:2".into()],
            concurrency: Some(7),
            layout: Some(Layout::Nested),
            plain_http: vec!["t:2".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (o.target_registry.as_str(), o.concurrency, &o.layout),
        ("t:2", 7, &Layout::Nested)
    );
    assert_eq!(o.images, ["c/d:2"]);
    assert!(o.registries["t:2"].plain_http);
}

#[test]
fn credentials_come_from_the_environment_or_a_file_and_never_print() {
    let dir = tempfile::tempdir().unwrap();
    let pw = write(dir.path(), "pw", "s3cret-value\n");
    let c = read_credentials(
        "r",
        &CredentialsRef {
            username: Some("bot".into()),
            password_file: Some(pw),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(c, Credentials::new("bot", "s3cret-value"));
    assert!(!format!("{c:?}").contains("s3cret"));
    let err = read_credentials(
        "r",
        &CredentialsRef {
            username: Some("bot".into()),
            password_env: Some("ATP_SYNC_TEST_SURELY_UNSET".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ATP_SYNC_TEST_SURELY_UNSET is not set"),
        "{err}"
    );
    let err = read_credentials("r", &CredentialsRef::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("username"), "{err}");
}

#[test]
fn a_target_registry_is_required() {
    let err = resolve_options(None, Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--registry HOST"), "{err}");
}
