//! Read an image from `docker save` output (`docker-archive:FILE`).
//!
//! The archive is indexed once (entry name → offset and size) and then read in
//! place; nothing is extracted. Docker archives carry no registry manifest, so
//! one is synthesized: a Docker schema 2 manifest over the config and the
//! uncompressed layer tars, the same thing skopeo makes of such an archive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use atp_bundle::digest::Hasher;
use atp_bundle::Digest;
use serde::{Deserialize, Serialize};

pub use atp_bundle::format::media::DOCKER_MANIFEST;
/// The config and layer types of a synthesized manifest (only this reader
/// makes them, so they live here rather than in the format's `media`).
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// An indexed `docker save` archive with a synthesized manifest.
#[derive(Debug)]
pub struct DockerArchive {
    path: PathBuf,
    /// digest → (data offset, size) inside the archive.
    blobs: HashMap<Digest, (u64, u64)>,
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    /// The first `RepoTags` entry, when present.
    pub repo_tag: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read docker archive {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("docker archive {path} is not a `docker save` file: {problem}\nhint: create it with `docker save IMAGE -o FILE`")]
    Format { path: PathBuf, problem: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SchemaTwo<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Desc<'a>,
    layers: Vec<Desc<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Desc<'a> {
    media_type: &'a str,
    size: u64,
    digest: Digest,
}

impl DockerArchive {
    /// Index the archive, hash its config and layers, and build the manifest.
    pub fn open(path: &Path) -> Result<Self, ArchiveError> {
        let io = |source| ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        };
        let format = |problem: String| ArchiveError::Format {
            path: path.to_path_buf(),
            problem,
        };
        let mut entries: HashMap<String, (u64, u64)> = HashMap::new();
        let mut archive = tar::Archive::new(File::open(path).map_err(io)?);
        for entry in archive.entries().map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.header().entry_type().is_file() {
                let name = entry.path().map_err(io)?.to_string_lossy().into_owned();
                let name = name.trim_start_matches("./").to_string();
                entries.insert(name, (entry.raw_file_position(), entry.size()));
            }
        }
        let mut file = File::open(path).map_err(io)?;
        let read_whole = |file: &mut File, name: &str| -> Result<Vec<u8>, ArchiveError> {
            let &(off, size) = entries
                .get(name)
                .ok_or_else(|| format(format!("entry {name:?} is missing")))?;
            if size > 64 << 20 {
                return Err(format(format!("entry {name:?} is too large")));
            }
            let mut buf = vec![0u8; size as usize];
            file.seek(SeekFrom::Start(off)).map_err(io)?;
            file.read_exact(&mut buf).map_err(io)?;
            Ok(buf)
        };
        let manifest_json = read_whole(&mut file, "manifest.json")?;
        let save: Vec<SaveEntry> = serde_json::from_slice(&manifest_json)
            .map_err(|e| format(format!("manifest.json: {e}")))?;
        let [image] = <[SaveEntry; 1]>::try_from(save).map_err(|v| {
            format(format!(
                "it holds {} images; ATP Offline reads archives of exactly one",
                v.len()
            ))
        })?;
        let config = read_whole(&mut file, &image.config)?;
        let config_digest = Digest::of(&config);
        let mut blobs = HashMap::new();
        blobs.insert(
            config_digest.clone(),
            entries[image.config.trim_start_matches("./")],
        );
        let mut layers = Vec::new();
        for name in &image.layers {
            let name = name.trim_start_matches("./");
            let &(off, size) = entries
                .get(name)
                .ok_or_else(|| format(format!("layer {name:?} is missing")))?;
            file.seek(SeekFrom::Start(off)).map_err(io)?;
            let mut hasher = Hasher::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut left = size;
            while left > 0 {
                let n = file
                    .read(&mut buf[..left.min(1 << 20) as usize])
                    .map_err(io)?;
                if n == 0 {
                    return Err(format(format!("layer {name:?} is truncated")));
                }
                hasher.update(&buf[..n]);
                left -= n as u64;
            }
            let (digest, _) = hasher.finish();
            blobs.insert(digest.clone(), (off, size));
            layers.push(Desc {
                media_type: DOCKER_LAYER_TAR,
                size,
                digest,
            });
        }
        let manifest = serde_json::to_vec(&SchemaTwo {
            schema_version: 2,
            media_type: DOCKER_MANIFEST,
            config: Desc {
                media_type: DOCKER_CONFIG,
                size: config.len() as u64,
                digest: config_digest,
            },
            layers,
        })
        .expect("serializing a manifest cannot fail");
        Ok(Self {
            path: path.to_path_buf(),
            blobs,
            manifest_digest: Digest::of(&manifest),
            manifest,
            repo_tag: image.repo_tags.into_iter().next(),
        })
    }

    /// Size of a blob the archive holds.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.blobs.get(digest).map(|&(_, s)| s)
    }

    /// Stream a blob from its place in the archive.
    pub fn open_blob(&self, digest: &Digest) -> Result<impl Read + Send, ArchiveError> {
        let io = |source| ArchiveError::Io {
            path: self.path.clone(),
            source,
        };
        let &(off, size) = self.blobs.get(digest).ok_or_else(|| ArchiveError::Format {
            path: self.path.clone(),
            problem: format!("no blob {digest}"),
        })?;
        let mut f = File::open(&self.path).map_err(io)?;
        f.seek(SeekFrom::Start(off)).map_err(io)?;
        Ok(f.take(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }

    #[test]
    fn synthesizes_a_schema2_manifest_and_reads_blobs_in_place() {
        let layer = vec![7u8; 3000];
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let mut b = tar::Builder::new(Vec::new());
        add(&mut b, "abc/layer.tar", &layer);
        add(&mut b, "cfg.json", config);
        add(
            &mut b,
            "manifest.json",
            br#"[{"Config":"cfg.json","RepoTags":["example/app:2"],"Layers":["abc/layer.tar"]}]"#,
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("save.tar");
        std::fs::write(&path, b.into_inner().unwrap()).unwrap();

        let a = DockerArchive::open(&path).unwrap();
        assert_eq!(a.repo_tag.as_deref(), Some("example/app:2"));
        let m: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(m["mediaType"], DOCKER_MANIFEST);
        assert_eq!(m["config"]["digest"], Digest::of(config).to_string());
        assert_eq!(m["layers"][0]["digest"], Digest::of(&layer).to_string());
        assert_eq!(m["layers"][0]["size"], 3000);
        let mut got = Vec::new();
        a.open_blob(&Digest::of(&layer))
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, layer);
    }

    #[test]
    fn refuses_archives_that_are_not_docker_save_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tar");
        let mut b = tar::Builder::new(Vec::new());
        add(&mut b, "hello.txt", b"hi");
        std::fs::write(&path, b.into_inner().unwrap()).unwrap();
        let err = DockerArchive::open(&path).unwrap_err().to_string();
        assert!(
            err.contains("manifest.json") && err.contains("hint:"),
            "{err}"
        );
    }
}
