//! Deterministic generator for the fixture images in `fixtures/images/`.
//!
//! Every byte is a function of this file alone: layer tars have fixed mtimes,
//! owners and modes and sorted entries; gzip headers carry no mtime or file
//! name and a fixed level; zstd uses a fixed level; JSON is written with
//! object keys sorted byte-wise and no white space. Running the generator
//! twice gives identical trees, which `tests/tests/fixtures.rs` checks
//! against the committed copy.
//!
//! It only ever writes inside the output directory it is given, and replaces
//! only the layout directories it owns.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fixtures::{
    BASE, DOCKER_MANIFEST, METRICS_EXPORTER, MODEL_LOADER, OCI_INDEX, OCI_MANIFEST, ROUTER,
};

/// Fixed mtime of every tar entry: 2026-01-01T00:00:00Z.
const MTIME: u64 = 1_767_225_600;
/// Fixed `created` of every image config.
const CREATED: &str = "2026-01-01T00:00:00Z";
const GZIP_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Write all fixture layouts under `out` (e.g. `fixtures/images`).
pub fn generate(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;

    let base_amd64 = Layer::gzip(&rootfs("amd64"))?;
    let base_arm64 = Layer::gzip(&rootfs("arm64"))?;

    // docker.io/atp/base:1.0.0 — one OCI manifest, the shared base layer.
    {
        let mut l = Layout::new();
        let m = l.image(
            "amd64",
            &[(&base_amd64, OCI_LAYER_GZIP, "base rootfs")],
            Kind::Oci,
            &["/bin/sh"],
        )?;
        l.write(out, BASE.dir, BASE.tag, BASE.reference, m)?;
    }

    // docker.io/atp/router:1.4.0 — an OCI index for linux/amd64 and linux/arm64.
    {
        let mut l = Layout::new();
        let entry = ["/opt/atp/router/router"];
        let app_amd64 = Layer::gzip(&app("router", "amd64", 2048))?;
        let app_arm64 = Layer::gzip(&app("router", "arm64", 2048))?;
        let amd64 = l.image(
            "amd64",
            &[
                (&base_amd64, OCI_LAYER_GZIP, "base rootfs"),
                (&app_amd64, OCI_LAYER_GZIP, "router"),
            ],
            Kind::Oci,
            &entry,
        )?;
        let arm64 = l.image(
            "arm64",
            &[
                (&base_arm64, OCI_LAYER_GZIP, "base rootfs"),
                (&app_arm64, OCI_LAYER_GZIP, "router"),
            ],
            Kind::Oci,
            &entry,
        )?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                with_platform(amd64.json(), "amd64"),
                with_platform(arm64.json(), "arm64"),
            ],
        });
        let d = l.blob(OCI_INDEX, canonical_json(&index).into_bytes());
        l.write(out, ROUTER.dir, ROUTER.tag, ROUTER.reference, d)?;
    }

    // docker.io/atp/model-loader:1.4.0 — base gzip layer plus a zstd layer.
    {
        let mut l = Layout::new();
        let app_layer = Layer::zstd(&app("model-loader", "amd64", 3072))?;
        let m = l.image(
            "amd64",
            &[
                (&base_amd64, OCI_LAYER_GZIP, "base rootfs"),
                (&app_layer, OCI_LAYER_ZSTD, "model-loader"),
            ],
            Kind::Oci,
            &["/opt/atp/model-loader/model-loader"],
        )?;
        l.write(
            out,
            MODEL_LOADER.dir,
            MODEL_LOADER.tag,
            MODEL_LOADER.reference,
            m,
        )?;
    }

    // docker.io/atp/metrics-exporter:0.9.2 — Docker schema 2, shared base layer.
    {
        let mut l = Layout::new();
        let app_layer = Layer::gzip(&app("metrics-exporter", "amd64", 1024))?;
        let m = l.image(
            "amd64",
            &[
                (&base_amd64, DOCKER_LAYER_GZIP, "base rootfs"),
                (&app_layer, DOCKER_LAYER_GZIP, "metrics-exporter"),
            ],
            Kind::Docker,
            &["/opt/atp/metrics-exporter/metrics-exporter"],
        )?;
        l.write(
            out,
            METRICS_EXPORTER.dir,
            METRICS_EXPORTER.tag,
            METRICS_EXPORTER.reference,
            m,
        )?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Oci,
    Docker,
}

/// A compressed layer and the digest of its uncompressed tar (the diff ID).
struct Layer {
    bytes: Vec<u8>,
    diff_id: String,
}

impl Layer {
    fn gzip(tar: &[u8]) -> Result<Layer> {
        let mut enc = flate2::GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
        enc.write_all(tar)?;
        Ok(Layer {
            bytes: enc.finish()?,
            diff_id: sha256(tar),
        })
    }

    fn zstd(tar: &[u8]) -> Result<Layer> {
        Ok(Layer {
            bytes: zstd::encode_all(tar, ZSTD_LEVEL)?,
            diff_id: sha256(tar),
        })
    }
}

/// A content descriptor.
#[derive(Clone)]
struct Desc {
    media_type: String,
    digest: String,
    size: usize,
}

impl Desc {
    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// Blobs of one OCI layout being assembled.
struct Layout {
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            blobs: BTreeMap::new(),
        }
    }

    fn blob(&mut self, media_type: &str, bytes: Vec<u8>) -> Desc {
        let digest = sha256(&bytes);
        let d = Desc {
            media_type: media_type.to_owned(),
            digest: digest.clone(),
            size: bytes.len(),
        };
        self.blobs.insert(digest, bytes);
        d
    }

    /// Add config, layers and the image manifest; return the manifest descriptor.
    fn image(
        &mut self,
        arch: &str,
        layers: &[(&Layer, &str, &str)],
        kind: Kind,
        entrypoint: &[&str],
    ) -> Result<Desc> {
        let history: Vec<Value> = layers
            .iter()
            .map(|(_, _, what)| json!({"created": CREATED, "created_by": format!("atp-testkit gen-fixtures: {what}")}))
            .collect();
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "created": CREATED,
            "config": {
                "Entrypoint": entrypoint,
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "WorkingDir": "/",
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|(l, _, _)| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": history,
        });
        let (config_type, manifest_type) = match kind {
            Kind::Oci => (OCI_CONFIG, OCI_MANIFEST),
            Kind::Docker => (DOCKER_CONFIG, DOCKER_MANIFEST),
        };
        let config = self.blob(config_type, canonical_json(&config).into_bytes());
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|(l, media_type, _)| self.blob(media_type, l.bytes.clone()).json())
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.json(),
            "layers": layer_descs,
        });
        Ok(self.blob(manifest_type, canonical_json(&manifest).into_bytes()))
    }

    /// Write the layout to `out/dir`, replacing what was there.
    fn write(&self, out: &Path, dir: &str, tag: &str, reference: &str, top: Desc) -> Result<()> {
        let root = out.join(dir);
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .with_context(|| format!("removing {}", root.display()))?;
        }
        let blobs = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).with_context(|| format!("creating {}", blobs.display()))?;
        write_file(
            &root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        for (digest, bytes) in &self.blobs {
            let hex = digest.strip_prefix("sha256:").unwrap();
            write_file(&blobs.join(hex), bytes)?;
        }
        let mut desc = top.json();
        desc["annotations"] = json!({
            "io.containerd.image.name": reference,
            "org.opencontainers.image.ref.name": tag,
        });
        let index = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [desc],
        });
        write_file(&root.join("index.json"), canonical_json(&index).as_bytes())
    }
}

fn with_platform(mut desc: Value, arch: &str) -> Value {
    desc["platform"] = json!({"architecture": arch, "os": "linux"});
    desc
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// JSON with object keys sorted byte-wise and no insignificant white space,
/// independent of serde_json's `preserve_order` feature.
pub fn canonical_json(v: &Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A tiny deterministic byte stream (xorshift) so "binaries" compress like
/// binaries without any randomness.
fn pseudo_bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in seed.bytes() {
        x = (x ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Entries of a layer tar: directories end in `/`.
type Entries = Vec<(String, Vec<u8>, u32)>;

fn tar(mut entries: Entries) -> Vec<u8> {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut b = tar::Builder::new(Vec::new());
    for (path, data, mode) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(mode);
        h.set_username("root").unwrap();
        h.set_groupname("root").unwrap();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(data.len() as u64);
        }
        h.set_path(&path).unwrap();
        h.set_cksum();
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

fn dir(path: &str) -> (String, Vec<u8>, u32) {
    (format!("{path}/"), Vec::new(), 0o755)
}

fn file(path: &str, data: impl Into<Vec<u8>>, mode: u32) -> (String, Vec<u8>, u32) {
    (path.to_owned(), data.into(), mode)
}

/// The base root filesystem for one architecture.
fn rootfs(arch: &str) -> Vec<u8> {
    let os_release = format!(
        "NAME=\"ATP test base\"\nID=atp-base\nVERSION_ID=1.0.0\nARCH={arch}\nHOME_URL=\"https://example.invalid/atp\"\n"
    );
    let mut motd = String::new();
    for i in 0..40 {
        motd.push_str(&format!(
            "ATP Offline fixture base image, line {i:02}, arch {arch}.\n"
        ));
    }
    tar(vec![
        dir("bin"),
        file("bin/sh", pseudo_bytes(&format!("sh-{arch}"), 1536), 0o755),
        dir("etc"),
        file("etc/os-release", os_release, 0o644),
        file(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        ),
        file("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644),
        file("etc/motd", motd, 0o644),
        dir("tmp"),
        dir("usr"),
        dir("usr/share"),
        dir("usr/share/atp"),
        file("usr/share/atp/base-version", "1.0.0\n", 0o644),
    ])
}

/// An application layer: `/opt/atp/<name>/<name>` plus a config file.
fn app(name: &str, arch: &str, binary_len: usize) -> Vec<u8> {
    let conf = format!(
        "# {name} configuration (fixture)\nlisten: 0.0.0.0:8080\nlog_level: info\narch: {arch}\n"
    );
    tar(vec![
        dir("opt"),
        dir("opt/atp"),
        dir(&format!("opt/atp/{name}")),
        file(
            &format!("opt/atp/{name}/{name}"),
            pseudo_bytes(&format!("{name}-{arch}"), binary_len),
            0o755,
        ),
        file(&format!("opt/atp/{name}/config.yaml"), conf, 0o644),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": "x"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"x","d":[{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn gzip_layers_are_reproducible() {
        let a = Layer::gzip(&rootfs("amd64")).unwrap();
        let b = Layer::gzip(&rootfs("amd64")).unwrap();
        assert_eq!(a.bytes, b.bytes);
        // No mtime and no file name in the gzip header.
        assert_eq!(&a.bytes[4..8], &[0, 0, 0, 0]);
        assert_eq!(a.bytes[3] & 0x08, 0);
    }
}
