//! The committed fixture images under `fixtures/images/` (OCI image layouts
//! written by `gen-fixtures`, see [`crate::gen`]) and helpers to push them into
//! a test [`Registry`] with skopeo.
//!
//! Never modifies the committed layouts; pushing only reads them.

use std::path::PathBuf;

use crate::registry::Registry;
use crate::skopeo;

/// One fixture image: an OCI layout directory under `fixtures/images/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixtureImage {
    /// Directory name under `fixtures/images/`.
    pub dir: &'static str,
    /// Tag, also the layout's `org.opencontainers.image.ref.name`.
    pub tag: &'static str,
    /// Full source reference, the layout's `io.containerd.image.name`.
    pub reference: &'static str,
    /// Media type of the top-level manifest or index.
    pub media_type: &'static str,
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

pub const BASE: FixtureImage = FixtureImage {
    dir: "base",
    tag: "1.0.0",
    reference: "docker.io/atp/base:1.0.0",
    media_type: OCI_MANIFEST,
};
pub const ROUTER: FixtureImage = FixtureImage {
    dir: "router",
    tag: "1.4.0",
    reference: "docker.io/atp/router:1.4.0",
    media_type: OCI_INDEX,
};
pub const MODEL_LOADER: FixtureImage = FixtureImage {
    dir: "model-loader",
    tag: "1.4.0",
    reference: "docker.io/atp/model-loader:1.4.0",
    media_type: OCI_MANIFEST,
};
pub const METRICS_EXPORTER: FixtureImage = FixtureImage {
    dir: "metrics-exporter",
    tag: "0.9.2",
    reference: "docker.io/atp/metrics-exporter:0.9.2",
    media_type: DOCKER_MANIFEST,
};

/// Every fixture image.
pub const IMAGES: &[FixtureImage] = &[BASE, ROUTER, MODEL_LOADER, METRICS_EXPORTER];

/// `<workspace root>/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .join("fixtures")
}

/// `<workspace root>/fixtures/images`.
pub fn images_dir() -> PathBuf {
    fixtures_dir().join("images")
}

impl FixtureImage {
    /// The layout directory.
    pub fn path(&self) -> PathBuf {
        images_dir().join(self.dir)
    }

    /// `oci:<layout dir>:<tag>`, for skopeo.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.path().display(), self.tag)
    }

    /// The layout's `index.json` descriptor for this image (the top-level
    /// manifest or index).
    pub fn descriptor(&self) -> serde_json::Value {
        let path = self.path().join("index.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let index: serde_json::Value = serde_json::from_str(&text).unwrap();
        index["manifests"][0].clone()
    }

    /// Digest of the top-level manifest or index, from `index.json`.
    pub fn digest(&self) -> String {
        self.descriptor()["digest"].as_str().unwrap().to_owned()
    }

    /// A temporary copy of a single-manifest image in skopeo's `dir:`
    /// transport layout (`version`, `manifest.json`, blobs named by hex).
    pub fn dir_transport_copy(&self) -> tempfile::TempDir {
        let tmp = tempfile::Builder::new()
            .prefix("atp-fixture-dir-")
            .tempdir()
            .expect("temp dir");
        let manifest = self.blob(&self.digest());
        let parsed: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert!(
            parsed.get("manifests").is_none(),
            "{}: dir: copies are for single manifests only",
            self.dir
        );
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(tmp.path().join(name), bytes).expect("writing dir: copy");
        };
        write("version", b"Directory Transport Version: 1.1\n");
        write("manifest.json", &manifest);
        let children =
            std::iter::once(&parsed["config"]).chain(parsed["layers"].as_array().unwrap());
        for d in children {
            let digest = d["digest"].as_str().unwrap();
            write(digest.strip_prefix("sha256:").unwrap(), &self.blob(digest));
        }
        tmp
    }

    /// Bytes of a blob in the layout, by `sha256:<hex>` digest.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        let path = self.path().join("blobs/sha256").join(hex);
        std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }
}

/// Digest of `image`'s top-level manifest or index, from its `index.json`.
pub fn index_digest(image: &FixtureImage) -> String {
    image.digest()
}

/// Push `image` to `reg` as `repo:tag` with `skopeo copy --all
/// --preserve-digests`; returns the manifest digest the push produced (equal to
/// [`index_digest`]). Panics with skopeo's stderr on failure.
pub fn push(reg: &Registry, image: &FixtureImage, repo: &str) -> String {
    let digest_file = tempfile::NamedTempFile::new().expect("temp digest file");
    let digest_path = digest_file.path().display().to_string();
    // skopeo 1.9's `oci:` transport only finds index.json descriptors of OCI
    // media types, so a Docker schema 2 image goes through a `dir:` copy.
    let dir_copy;
    let src = if image.media_type == DOCKER_MANIFEST {
        dir_copy = image.dir_transport_copy();
        format!("dir:{}", dir_copy.path().display())
    } else {
        image.oci_ref()
    };
    let dest = format!("docker://{}/{repo}:{}", reg.host(), image.tag);
    let flags = reg.skopeo_dest_flags();
    let mut args = vec![
        "copy",
        "--all",
        "--preserve-digests",
        "--digestfile",
        &digest_path,
    ];
    args.extend(flags.iter().map(String::as_str));
    args.push(&src);
    args.push(&dest);
    let out = skopeo(&args);
    assert!(
        out.status.success(),
        "skopeo copy {src} {dest} failed: {}\nregistry log: {}",
        String::from_utf8_lossy(&out.stderr),
        reg.log_path().display()
    );
    std::fs::read_to_string(digest_file.path())
        .expect("reading skopeo --digestfile")
        .trim()
        .to_owned()
}

/// Push every fixture image to `atp/<dir>:<tag>`; returns `(image, digest)`.
pub fn push_all(reg: &Registry) -> Vec<(&'static FixtureImage, String)> {
    IMAGES
        .iter()
        .map(|img| (img, push(reg, img, &format!("atp/{}", img.dir))))
        .collect()
}
