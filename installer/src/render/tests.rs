//! Unit tests of the render: image matching, custom-resource image fields,
//! the generated secrets, the render dir's safety, unpacking.

use super::*;

#[test]
fn image_names_as_kustomize_matches_them() {
    assert_eq!(
        image_name("docker.io/atp/router:1.4.0"),
        "docker.io/atp/router"
    );
    assert_eq!(image_name("atp/model-loader:1.4.0"), "atp/model-loader");
    assert_eq!(image_name("host:5000/a/b:1@sha256:00"), "host:5000/a/b");
    assert_eq!(image_name("nginx"), "nginx");
}

#[test]
fn spellings_match_by_normalized_reference_or_digest() {
    let d = Digest::of(b"x");
    let imgs = vec![PlacedImage {
        source: "docker.io/atp/model-loader:1.4.0".into(),
        digest: d.clone(),
        source_digest: None,
        target_repo: "r/docker.io/atp/model-loader".into(),
    }];
    let found = |s: &str| match_image(s, &imgs).unwrap().is_some();
    assert!(found("atp/model-loader:1.4.0"));
    assert!(found("docker.io/atp/model-loader:1.4.0"));
    assert!(found(&format!("other/x@{d}")));
    assert!(!found("atp/model-loader:1.3.0"));
}

/// `create` counts an untagged spelling as `:latest`; the render must
/// rewrite it too, or the site pulls what create said was carried.
#[test]
fn an_untagged_spelling_means_latest_as_create_has_it() {
    let imgs = vec![PlacedImage {
        source: "docker.io/library/nginx:latest".into(),
        digest: Digest::of(b"n"),
        source_digest: None,
        target_repo: "r/docker.io/library/nginx".into(),
    }];
    assert!(match_image("nginx", &imgs).unwrap().is_some());
    assert!(match_image("docker.io/library/nginx", &imgs)
        .unwrap()
        .is_some());
}

/// Two bundled names for one digest, asked for by a third: an error naming
/// both, never the first; a pin under one's own name means that one.
#[test]
fn an_ambiguous_spelling_is_refused_naming_both() {
    let d = Digest::of(b"same");
    let placed = |source: &str| PlacedImage {
        source: source.into(),
        digest: d.clone(),
        source_digest: None,
        target_repo: format!("r/{source}"),
    };
    let imgs = vec![
        placed("docker.io/atp/router:1.4.0"),
        placed("docker.io/atp/router:1.4.0-debug"),
    ];
    let pinned = format!("atp/router:1.4.0-debug@{d}");
    let img = match_image(&pinned, &imgs).unwrap().unwrap();
    assert_eq!(img.source, "docker.io/atp/router:1.4.0-debug");
    let err = match_image(&format!("atp/router@{d}"), &imgs).unwrap_err();
    let shown = err.to_string();
    assert!(
        shown.contains("docker.io/atp/router:1.4.0 ")
            && shown.contains("docker.io/atp/router:1.4.0-debug"),
        "{shown}"
    );
}

/// A kustomize tree with a Deployment and a custom resource holding
/// images at `spec.workers[].image`, as a tar.
fn tree_tar() -> Vec<u8> {
    let files: [(&str, &str); 3] = [
        (
            "o/kustomization.yaml",
            "resources: [app.yaml, workload.yaml]\n",
        ),
        (
            "o/app.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: ns}\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: 'atp/app:1'}]\n",
        ),
        (
            "o/workload.yaml",
            "apiVersion: example.com/v1\nkind: Workload\nmetadata: {name: w, namespace: ns}\nspec:\n  workers: [{image: 'docker.io/atp/worker:2'}, {image: 'atp/app:1'}]\n",
        ),
    ];
    let mut b = tar::Builder::new(Vec::new());
    for (path, body) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn placed() -> Vec<PlacedImage> {
    ["docker.io/atp/app:1", "docker.io/atp/worker:2"]
        .iter()
        .map(|r| PlacedImage {
            source: r.to_string(),
            digest: Digest::of(r.as_bytes()),
            source_digest: None,
            target_repo: format!("reg:5000/{}", r.split(':').next().unwrap()),
        })
        .collect()
}

fn render_to(out: &Path, fields: &[ExtraField]) -> Result<Rendered, RenderError> {
    let tar = tree_tar();
    let images = placed();
    render(&RenderRequest {
        kustomize_tar: &tar,
        overlay: "o",
        images: &images,
        registry: "reg:5000",
        registry_ca: None,
        credentials: Some(("u", "p")),
        image_fields: fields,
        out_dir: out,
    })
}

fn workers() -> Vec<ExtraField> {
    vec![ExtraField {
        kind: "Workload".into(),
        path: "spec.workers[].image".into(),
    }]
}

#[test]
fn custom_resource_image_fields_are_rewritten_to_the_site_registry() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let r = render_to(&out, &workers()).unwrap();
    let want = |img: &PlacedImage| format!("{}@{}", img.target_repo, img.digest);
    let imgs = placed();
    let objects = kustomize::parse_objects(&r.yaml, &out).unwrap();
    let uses = kustomize::image_uses(&objects, &workers());
    let got: Vec<(&str, &str)> = uses
        .iter()
        .map(|u| (u.field.as_str(), u.image.as_str()))
        .collect();
    let (app, worker) = (want(&imgs[0]), want(&imgs[1]));
    assert_eq!(
        got,
        [
            ("spec.template.spec.containers[0].image", app.as_str()),
            ("spec.workers[0].image", worker.as_str()),
            ("spec.workers[1].image", app.as_str()),
        ]
    );
    assert_eq!(r.image_fields, workers());
    assert_eq!(r.path, out.join("rendered.yaml"));
    assert_eq!(std::fs::read_to_string(&r.path).unwrap(), r.yaml);

    // Without the fields, the custom resource keeps its outside images.
    let plain = render_to(&dir.path().join("plain"), &[]).unwrap();
    assert!(
        plain.yaml.contains("image: docker.io/atp/worker:2"),
        "{}",
        plain.yaml
    );
}

#[test]
fn a_malformed_image_field_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let bad = [ExtraField {
        kind: "Workload".into(),
        path: "spec/workers".into(),
    }];
    let err = render_to(&out, &bad).unwrap_err();
    assert!(matches!(err, RenderError::BadImageField { .. }), "{err}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn render_to_refuses_a_folder_of_user_files_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mine");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(out.join("kustomization.yaml"), "my own\n").unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("secrets")).unwrap();
    let err = render_to(&out, &[]).unwrap_err();
    assert!(matches!(err, RenderError::OutDir { .. }), "{err}");
    assert!(err.to_string().contains("did not make"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("kustomization.yaml")).unwrap(),
        "my own\n"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // Nothing left beside it either.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["elsewhere", "mine"]);
}

#[test]
fn render_to_refuses_a_link_and_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let err = render_to(&link, &[]).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = render_to(&file, &[]).unwrap_err();
    assert!(err.to_string().contains("not a folder"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn render_to_replaces_its_own_render_without_following_links_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    // An empty folder is taken.
    std::fs::create_dir_all(&out).unwrap();
    render_to(&out, &[]).unwrap();
    assert!(out.join(MARKER).is_file());
    assert!(out.join("secrets/dockerconfig.json").is_file());
    // A link planted in an earlier render is removed, never followed.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("keep"), "k").unwrap();
    std::fs::remove_dir_all(out.join("secrets")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("secrets")).unwrap();
    std::fs::write(out.join("stale"), "old").unwrap();
    let r = render_to(&out, &[]).unwrap();
    assert!(r.path.is_file());
    assert!(!out.join("stale").exists());
    let secrets = std::fs::symlink_metadata(out.join("secrets")).unwrap();
    assert!(secrets.is_dir(), "secrets is a fresh folder again");
    let mut left: Vec<String> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["keep"]);
    // No temp folder is left beside it.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["elsewhere", "r"]);
}

#[test]
fn unpack_refuses_path_tricks() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../evil.y");
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = unpack(&bytes, &dir.path().join("t")).unwrap_err();
    assert!(matches!(err, RenderError::UnsafePath { .. }), "{err}");
    assert!(!dir.path().join("evil.y").exists());
}

/// A tree whose Deployment mounts `registry-certs`, `optional` as given.
fn tree_mounting_certs(optional: bool) -> Vec<u8> {
    let app = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app, namespace: ns}}\nspec:\n  template:\n    spec:\n      containers: [{{name: a, image: 'atp/app:1'}}]\n      volumes: [{{name: c, secret: {{secretName: registry-certs, optional: {optional}}}}}]\n"
    );
    let files = [
        (
            "o/kustomization.yaml",
            "resources: [app.yaml]\n".to_string(),
        ),
        ("o/app.yaml", app),
    ];
    let mut b = tar::Builder::new(Vec::new());
    for (path, body) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, body.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

fn render_secrets(
    out: &Path,
    tar: &[u8],
    ca: Option<&Path>,
    credentials: Option<(&str, &str)>,
) -> Rendered {
    let images = placed();
    render(&RenderRequest {
        kustomize_tar: tar,
        overlay: "o",
        images: &images,
        registry: "reg:5000",
        registry_ca: ca,
        credentials,
        image_fields: &[],
        out_dir: out,
    })
    .unwrap()
}

fn secret_names(r: &Rendered) -> Vec<&'static str> {
    r.secrets.iter().map(|s| s.name).collect()
}

/// Secret objects in a rendered YAML, by name.
fn rendered_secrets(yaml: &str) -> Vec<String> {
    let objects = kustomize::parse_objects(yaml, Path::new(".")).unwrap();
    objects
        .iter()
        .filter(|o| o.kind() == "Secret")
        .map(|o| o.value["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn no_credentials_and_no_ca_generate_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let r = render_secrets(&out, &tree_tar(), None, None);
    assert!(r.secrets.is_empty(), "{:?}", r.secrets);
    assert!(rendered_secrets(&r.yaml).is_empty(), "{}", r.yaml);
    assert!(!r.yaml.contains("imagePullSecrets"), "{}", r.yaml);
    assert!(!out.join("secrets").exists());
    let k = std::fs::read_to_string(out.join("kustomization.yaml")).unwrap();
    assert!(!k.contains("secretGenerator"), "{k}");
}

#[test]
fn each_secret_is_generated_only_with_something_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
    )
    .unwrap();

    let r = render_secrets(&dir.path().join("a"), &tree_tar(), Some(&ca), None);
    assert_eq!(secret_names(&r), [CERTS_SECRET]);
    assert_eq!(rendered_secrets(&r.yaml), [CERTS_SECRET]);
    assert!(!r.yaml.contains("imagePullSecrets"), "{}", r.yaml);
    assert_eq!(
        std::fs::read(dir.path().join("a/secrets/ca.crt")).unwrap(),
        std::fs::read(&ca).unwrap()
    );

    let r = render_secrets(
        &dir.path().join("b"),
        &tree_tar(),
        None,
        Some(("puller", "s3cr3t")),
    );
    assert_eq!(secret_names(&r), [PULL_SECRET]);
    assert_eq!(rendered_secrets(&r.yaml), [PULL_SECRET]);
    assert!(r.yaml.contains("imagePullSecrets"), "{}", r.yaml);
    assert!(r.secrets[0].holds.contains("puller"), "{:?}", r.secrets);
    assert!(!r.secrets[0].holds.contains("s3cr3t"), "{:?}", r.secrets);
    assert!(!dir.path().join("b/secrets/ca.crt").exists());
}

#[test]
fn an_overlay_mounting_registry_certs_unconditionally_still_gets_it() {
    let dir = tempfile::tempdir().unwrap();
    // Marked optional: nothing to generate.
    let r = render_secrets(
        &dir.path().join("a"),
        &tree_mounting_certs(true),
        None,
        None,
    );
    assert!(r.secrets.is_empty(), "{:?}", r.secrets);
    // Not optional (a bundle from before): the pods need it to start.
    let r = render_secrets(
        &dir.path().join("b"),
        &tree_mounting_certs(false),
        None,
        None,
    );
    assert_eq!(secret_names(&r), [CERTS_SECRET]);
    assert!(r.secrets[0].holds.contains("does not mark it optional"));
    assert_eq!(rendered_secrets(&r.yaml), [CERTS_SECRET]);
}

/// A render killed midway leaves its fresh `.atp-render-*` folder (carrying
/// the staging file of a process now gone); the next render removes it, and
/// nothing else beside the render dir.
#[test]
fn a_killed_renders_leftover_is_removed_by_the_next_render() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let killed = dir.path().join(".atp-render-Ab12Cd");
    std::fs::create_dir_all(killed.join("bundle")).unwrap();
    std::fs::write(killed.join(MARKER), "made by atp-installer\n").unwrap();
    std::fs::write(killed.join(crate::swap::STAGING), format!("pid {dead}\n")).unwrap();
    let not_ours = dir.path().join(".atp-render-mine");
    std::fs::create_dir_all(&not_ours).unwrap();
    std::fs::write(not_ours.join("notes"), "n").unwrap();
    render_to(&dir.path().join("r"), &[]).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".atp-render-mine", "r"]);
    assert!(!dir.path().join("r").join(crate::swap::STAGING).exists());
}
