//! Credential sources against a real basic-auth registry: docker config
//! `auths`, `credHelpers` and `credsStore` (a fake `docker-credential-*` on
//! PATH), `${XDG_RUNTIME_DIR}/containers/auth.json`, explicit settings winning
//! over all of them, and a configured but missing helper being an error.
//!
//! One test function: it changes process-wide environment variables.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use atp_registry::{
    Client, ClientOptions, Credentials, DefaultCredentials, Error, Reference, RegistryConfig,
    RetryPolicy,
};
use atp_testkit::{fixtures, Registry};
use base64::Engine as _;

fn client(reg: &Registry, explicit: Option<Credentials>) -> Client {
    let mut o = ClientOptions {
        default_creds: DefaultCredentials::DockerConfig,
        retry: RetryPolicy::fast(),
        ..Default::default()
    };
    o.registries.insert(
        reg.host(),
        RegistryConfig {
            plain_http: true,
            credentials: explicit,
            ..Default::default()
        },
    );
    Client::new(o).unwrap()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_flags_then_docker_config_then_containers_auth() {
    let reg = Registry::basic();
    let host = reg.host();
    let (user, password) = reg.credentials().unwrap();
    let img = &fixtures::IMAGES[0];
    fixtures::push(&reg, img, "atp/base");
    let r: Reference = format!("{host}/atp/base:{}", img.tag).parse().unwrap();
    let want: atp_registry::Digest = img.digest().parse().unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("docker");
    let xdg = tmp.path().join("xdg");
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-atptest");
    write(
        &helper,
        &format!(
            "#!/bin/sh\nread host\nif [ \"$1\" = get ] && [ \"$host\" = \"{host}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$host\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n"
        ),
    );
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);
    std::env::set_var("DOCKER_CONFIG", &docker);
    std::env::set_var("XDG_RUNTIME_DIR", &xdg);
    let config = docker.join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));

    // 1. docker config `auths`.
    write(
        &config,
        &format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    );
    assert_eq!(
        client(&reg, None).get_manifest(&r).await.unwrap().digest,
        want
    );

    // 2. Explicit credentials win over the config, even when wrong.
    let err = client(&reg, Some(Credentials::new(&user, "wrong")))
        .get_manifest(&r)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");

    // 3. `credHelpers` for this host, ahead of `auths`.
    write(
        &config,
        &format!(
            r#"{{"auths":{{"{host}":{{"auth":"eDp5"}}}},"credHelpers":{{"{host}":"atptest"}}}}"#
        ),
    );
    assert_eq!(
        client(&reg, None).get_manifest(&r).await.unwrap().digest,
        want
    );

    // 4. `credsStore` for every host.
    write(&config, r#"{"credsStore":"atptest"}"#);
    assert_eq!(
        client(&reg, None).get_manifest(&r).await.unwrap().digest,
        want
    );

    // 5. A configured helper that is not installed is an error, not anonymous.
    write(
        &config,
        &format!(r#"{{"credHelpers":{{"{host}":"atp-missing"}}}}"#),
    );
    let err = client(&reg, None).get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, Error::CredentialHelper { .. }), "{err}");
    assert!(
        err.to_string().contains("docker-credential-atp-missing"),
        "{err}"
    );

    // 6. No docker config: `${XDG_RUNTIME_DIR}/containers/auth.json`.
    std::fs::remove_file(&config).unwrap();
    write(
        &xdg.join("containers/auth.json"),
        &format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    );
    assert_eq!(
        client(&reg, None).get_manifest(&r).await.unwrap().digest,
        want
    );

    // 7. Nothing anywhere: anonymous, refused with a hint to log in.
    std::fs::remove_file(xdg.join("containers/auth.json")).unwrap();
    let err = client(&reg, None).get_manifest(&r).await.unwrap_err();
    assert!(err.to_string().contains("docker login"), "{err}");
}
