//! Unit tests of the mirror plan, the files' text and the writing.

use super::*;
use atp_registry::mapping::{self, Layout};

/// The images of `refs` placed as install's mapping places them.
fn placed(refs: &[&str], layout: &Layout, prefix: Option<&str>) -> Vec<Placed> {
    let srcs: Vec<SourceRef> = refs.iter().map(|r| SourceRef::parse(r).unwrap()).collect();
    let map = mapping::map_repositories(&srcs, layout, prefix).unwrap();
    refs.iter()
        .zip(&srcs)
        .map(|(r, s)| Placed {
            source: (*r).to_owned(),
            target_repo: map[&s.repository()].clone(),
        })
        .collect()
}

fn site(plain: bool) -> Site {
    let mut s = Site::new("registry.site:5000");
    s.plain_http = plain;
    s
}

const DEMO: &[&str] = &[
    "docker.io/atp/router:1.4.0",
    "docker.io/atp/model-loader:1.4.0",
    "ghcr.io/other/tool:2",
];

#[test]
fn nested_layout_mirrors_each_upstream_at_its_host_path() {
    let p = plan(&placed(DEMO, &Layout::Nested, Some("atp/")), &site(true)).unwrap();
    let hosts: Vec<(&str, &str)> = p
        .upstreams
        .iter()
        .map(|u| (u.host.as_str(), u.path.as_str()))
        .collect();
    assert_eq!(
        hosts,
        [("docker.io", "atp/docker.io"), ("ghcr.io", "atp/ghcr.io")]
    );
    let toml = p.hosts_toml(&p.upstreams[0], Some(CONTAINERD_CA));
    assert!(
        toml.contains("server = \"https://registry-1.docker.io\"\n"),
        "{toml}"
    );
    assert!(
        toml.contains("[host.\"http://registry.site:5000/v2/atp/docker.io\"]\n  capabilities = [\"pull\", \"resolve\"]\n  override_path = true\n  ca = \"site-ca.crt\"\n"),
        "{toml}"
    );
    let conf = p.registries_conf();
    assert!(
        conf.contains("[[registry]]\nprefix = \"ghcr.io\"\nlocation = \"ghcr.io\"\n\n[[registry.mirror]]\nlocation = \"registry.site:5000/atp/ghcr.io\"\ninsecure = true\n"),
        "{conf}"
    );
}

#[test]
fn tls_is_https_and_never_insecure() {
    let p = plan(&placed(DEMO, &Layout::Nested, None), &site(false)).unwrap();
    assert!(p
        .hosts_toml(&p.upstreams[1], None)
        .contains("[host.\"https://registry.site:5000/v2/ghcr.io\"]"));
    assert!(!p.hosts_toml(&p.upstreams[1], None).contains("ca ="));
    assert!(!p.registries_conf().contains("insecure"));
}

#[test]
fn a_mapping_that_keeps_paths_at_the_root_needs_no_override_path() {
    let map = Layout::Explicit(
        [
            ("docker.io/atp/router".into(), "atp/router".into()),
            (
                "docker.io/atp/model-loader".into(),
                "atp/model-loader".into(),
            ),
        ]
        .into(),
    );
    let p = plan(&placed(&DEMO[..2], &map, None), &site(true)).unwrap();
    assert_eq!(p.upstreams[0].path, "");
    let toml = p.hosts_toml(&p.upstreams[0], None);
    assert!(
        toml.contains("[host.\"http://registry.site:5000\"]"),
        "{toml}"
    );
    assert!(!toml.contains("override_path"), "{toml}");
    assert!(p
        .registries_conf()
        .contains("location = \"registry.site:5000\"\n"));
}

#[test]
fn flat_layout_and_renaming_mapping_files_are_refused_naming_each_image() {
    let err = plan(&placed(&DEMO[..2], &Layout::Flat, None), &site(true)).unwrap_err();
    let text = err.to_string();
    for r in &DEMO[..2] {
        assert!(text.contains(r), "{text}");
    }
    assert!(text.contains("registry.site:5000/router"), "{text}");
    // Two prefixes for one upstream: every image of it is named.
    let map = Layout::Explicit(
        [
            ("docker.io/atp/router".into(), "a/atp/router".into()),
            (
                "docker.io/atp/model-loader".into(),
                "b/atp/model-loader".into(),
            ),
        ]
        .into(),
    );
    let err = plan(&placed(&DEMO[..2], &map, None), &site(true)).unwrap_err();
    assert!(
        matches!(&err, MirrorsError::Inexpressible { items } if items.len() == 2),
        "{err}"
    );
}

#[test]
fn upstreams_whose_mirrors_overlap_are_refused() {
    let map = Layout::Explicit(
        [
            ("docker.io/atp/router".into(), "m/atp/router".into()),
            ("ghcr.io/other/tool".into(), "m/ghcr/other/tool".into()),
        ]
        .into(),
    );
    let refs = ["docker.io/atp/router:1", "ghcr.io/other/tool:2"];
    let err = plan(&placed(&refs, &map, None), &site(true)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("docker.io (registry.site:5000/m) and ghcr.io (registry.site:5000/m/ghcr)"),
        "{text}"
    );
    // Both at the same place.
    let map = Layout::Explicit(
        [
            ("docker.io/atp/router".into(), "atp/router".into()),
            ("ghcr.io/other/tool".into(), "other/tool".into()),
        ]
        .into(),
    );
    assert!(matches!(
        plan(&placed(&refs, &map, None), &site(true)),
        Err(MirrorsError::Overlap { .. })
    ));
}

#[test]
fn upstream_names_that_cannot_be_folders_are_refused() {
    for (host, bad) in [
        ("docker.io", false),
        ("127.0.0.1:5000", false),
        ("my-registry.example", false),
        ("Quay.IO", true),
        ("..", true),
        ("a..b", true),
        ("host:99999", true),
        ("host:", true),
        ("-x.io", true),
        ("x_y.io", true),
    ] {
        let placed = [Placed {
            source: format!("{host}/a/b:1"),
            target_repo: "x/a/b".into(),
        }];
        let r = plan(&placed, &site(true));
        assert_eq!(
            matches!(r, Err(MirrorsError::BadUpstream { .. })),
            bad,
            "{host}: {r:?}"
        );
    }
}

#[test]
fn the_site_registry_cannot_mirror_itself() {
    let placed = [Placed {
        source: "registry.site:5000/a/b:1".into(),
        target_repo: "registry.site-5000/a/b".into(),
    }];
    assert!(matches!(
        plan(&placed, &site(true)),
        Err(MirrorsError::SiteIsUpstream { .. })
    ));
}

#[test]
fn writes_every_file_or_nothing_and_replaces_only_its_own_output() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.crt");
    std::fs::write(&ca, "PEM").unwrap();
    let p = plan(&placed(DEMO, &Layout::Nested, None), &site(false)).unwrap();
    let out = tmp.path().join("out/mirrors");
    let s = write(&p, Some(&ca), &out, &[]).unwrap();
    for f in [
        "containerd/certs.d/docker.io/hosts.toml",
        "containerd/certs.d/docker.io/site-ca.crt",
        "containerd/certs.d/ghcr.io/hosts.toml",
        "containers/registries.conf.d/50-atp-offline.conf",
        "containers/certs.d/registry.site:5000/ca.crt",
        "README.md",
    ] {
        assert!(out.join(f).is_file(), "{f}");
        assert!(s.files.contains(&PathBuf::from(f)), "{f}");
    }
    // Again: the earlier output is replaced.
    write(&p, None, &out, &[]).unwrap();
    assert!(!out.join("containers/certs.d").exists());
    // A folder of someone else's is not.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("notes"), "keep").unwrap();
    let err = write(&p, None, &theirs, &[]).unwrap_err();
    assert!(matches!(err, MirrorsError::OutputTaken { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(theirs.join("notes")).unwrap(),
        "keep"
    );
    // No staging folder is left behind.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn output_inside_the_bundles_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("usb");
    std::fs::create_dir(&media).unwrap();
    let p = plan(&placed(DEMO, &Layout::Nested, None), &site(true)).unwrap();
    let err = write(
        &p,
        None,
        &media.join("new/mirrors"),
        std::slice::from_ref(&media),
    )
    .unwrap_err();
    assert!(matches!(err, MirrorsError::OutputInBundle { .. }), "{err}");
    assert!(!media.join("new").exists());
    write(&p, None, &tmp.path().join("mirrors"), &[media]).unwrap();
}

#[test]
fn receipt_targets_give_back_the_repository() {
    for (target, repo) in [
        (
            "reg:5000/docker.io/atp/router:1.4.0",
            Some("docker.io/atp/router"),
        ),
        ("reg:5000/site/x@sha256:ab", Some("site/x")),
        ("reg:5000/x:1@sha256:ab", Some("x")),
        ("other:5000/x:1", None),
        ("reg:50001/x:1", None),
    ] {
        assert_eq!(target_repo(target, "reg:5000").as_deref(), repo, "{target}");
    }
}

#[test]
fn from_receipt_needs_an_install_into_that_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let err = from_receipt(tmp.path(), &site(true), &tmp.path().join("out")).unwrap_err();
    assert!(matches!(err, MirrorsError::NoReceipt { .. }), "{err}");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn a_bad_mirrors_to_is_found_before_the_install_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("usb");
    std::fs::create_dir(&media).unwrap();
    let mut opts = InstallOptions {
        bundle: media.join("b.tar"),
        volumes_from: Vec::new(),
        key: "k.pub".into(),
        site: site(true),
        render_to: None,
        apply: None,
        state_dir: tmp.path().join("state"),
        metrics_file: None,
        allow_downgrade: false,
        single_pass: false,
        files: FilesOptions::default(),
        mirrors_to: None,
    };
    check_mirrors_to(&opts).unwrap();
    opts.mirrors_to = Some(media.join("mirrors"));
    assert!(matches!(
        check_mirrors_to(&opts),
        Err(MirrorsError::OutputInBundle { .. })
    ));
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    opts.mirrors_to = Some(file);
    assert!(matches!(
        check_mirrors_to(&opts),
        Err(MirrorsError::OutputTaken { .. })
    ));
    opts.mirrors_to = Some(tmp.path().join("new"));
    check_mirrors_to(&opts).unwrap();
}
