//! Writes the benchmark workloads of `make bench` (issue #9) as one OCI image
//! layout per workload, byte-for-byte reproducible:
//!
//! ```text
//! gen-workload A|B|C OUT_DIR [--total-mib N] [--images N]
//! ```
//!
//! * **A**: about 1 GiB of unique layer data across 12 images that share base
//!   layers; image 0 is a two-platform index (linux/amd64 + linux/arm64).
//! * **B**: the same shape at about 4 GiB.
//! * **C**: 300 small images (a base layer every image shares plus about
//!   1 MiB of its own), to show per-image overhead.
//!
//! `--total-mib` and `--images` shrink a workload for trying the script out.
//!
//! Layers are real `tar+gzip` blobs: a tar of one file of pseudo-random bytes
//! (a fixed-seed xorshift stream, so incompressible like real compressed
//! layers), wrapped in gzip *stored* blocks so that generating 4 GiB costs
//! little CPU, while every tool still sees gzip magic and never recompresses.
//! Configs carry the true `diff_ids`.
//!
//! Output, under `OUT_DIR`:
//! * `layout/`: the OCI layout; every image tagged by `org.opencontainers.image.ref.name`.
//! * `images.tsv`: `REF<TAB>REPOSITORY<TAB>TAG` per image (REF is the layout tag).
//! * `blobs.tsv`: `DIGEST<TAB>SIZE<TAB>REPOSITORY<TAB>MEDIA_TYPE` per unique blob,
//!   manifests included (REPOSITORY is the first repository that holds it).
//! * `mounts.tsv`: `DIGEST<TAB>REPOSITORY<TAB>FROM` for every other repository that
//!   needs a blob (how a client pushing repository by repository would mount it).
//! * `summary.json`: counts and byte totals, quoted by docs/PERFORMANCE.md.
//!
//! It writes only inside `OUT_DIR`, and never talks to the network.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MIB: u64 = 1024 * 1024;
/// Fixed mtime of every tar entry: 2026-01-01T00:00:00Z.
const MTIME: u64 = 1_767_225_600;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: gen-workload A|B|C OUT_DIR [--total-mib N] [--images N]";
    let kind = args.next().context(usage)?;
    let out = PathBuf::from(args.next().context(usage)?);
    let mut total_mib = None;
    let mut images = None;
    while let Some(flag) = args.next() {
        let value: u64 = args
            .next()
            .with_context(|| format!("{flag} needs a value; {usage}"))?
            .parse()
            .with_context(|| format!("{flag} needs a whole number"))?;
        match flag.as_str() {
            "--total-mib" => total_mib = Some(value),
            "--images" => images = Some(value as usize),
            _ => bail!("unknown flag {flag}; {usage}"),
        }
    }
    let shape = match kind.as_str() {
        "A" => Shape::Big {
            total: total_mib.unwrap_or(1024) * MIB,
            images: images.unwrap_or(12),
        },
        "B" => Shape::Big {
            total: total_mib.unwrap_or(4096) * MIB,
            images: images.unwrap_or(12),
        },
        "C" => {
            let n = images.unwrap_or(300);
            // Default: an 8 MiB base plus about 1 MiB per image.
            let total = total_mib
                .map(|t| t * MIB)
                .unwrap_or(8 * MIB + n as u64 * MIB);
            Shape::Small { total, images: n }
        }
        _ => bail!("unknown workload {kind:?}; {usage}"),
    };
    if out.join("layout").exists() {
        fs::remove_dir_all(out.join("layout"))
            .with_context(|| format!("removing the old {}", out.join("layout").display()))?;
    }
    let mut w = Workload::new(&out)?;
    match shape {
        Shape::Big { total, images } => big(&mut w, total, images)?,
        Shape::Small { total, images } => small(&mut w, total, images)?,
    }
    w.finish(&kind)?;
    Ok(())
}

enum Shape {
    Big { total: u64, images: usize },
    Small { total: u64, images: usize },
}

/// Workloads A and B: shared base layers, two app layers per image, image 0
/// also for linux/arm64 (with its own base and app layer) behind an index.
fn big(w: &mut Workload, total: u64, images: usize) -> Result<()> {
    if images < 2 {
        bail!("workloads A and B need at least 2 images");
    }
    let part = |pct: u64| total * pct / 100;
    let os = w.layer("base-os-amd64", part(10))?;
    let runtime = [
        w.layer("runtime-a-amd64", part(4))?,
        w.layer("runtime-b-amd64", part(4))?,
    ];
    let os_arm = w.layer("base-os-arm64", part(5))?;
    let app_arm = w.layer("app-00-arm64", part(3))?;
    // What is left goes to two app layers per image, in uneven shares.
    let rest = total - part(10) - 2 * part(4) - part(5) - part(3);
    let weight = |i: usize, j: usize| 2 + ((i * 5 + j * 3) % 7) as u64;
    let sum: u64 = (0..images)
        .flat_map(|i| (0..2).map(move |j| weight(i, j)))
        .sum();
    for i in 0..images {
        let mut layers = vec![os.clone(), runtime[i % 2].clone()];
        for j in 0..2 {
            layers.push(w.layer(&format!("app-{i:02}-{j}"), rest * weight(i, j) / sum)?);
        }
        let amd64 = w.image("amd64", &layers)?;
        let repo = format!("bench/app-{i:02}");
        if i == 0 {
            let arm64 = w.image("arm64", &[os_arm.clone(), app_arm.clone()])?;
            let index = json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    platform(amd64, "amd64"),
                    platform(arm64, "arm64"),
                ],
            });
            let d = w.json_blob(OCI_INDEX, &index)?;
            w.tag(&repo, d)?;
        } else {
            w.tag(&repo, amd64)?;
        }
    }
    Ok(())
}

/// Workload C: one base layer every image shares, plus a small app layer each.
fn small(w: &mut Workload, total: u64, images: usize) -> Result<()> {
    let base_size = (total / 8).max(4096);
    let base = w.layer("small-base", base_size)?;
    let rest = total.saturating_sub(base_size);
    let weight = |i: usize| 2 + (i * 7 % 5) as u64; // 2..=6, mean 4
    let sum: u64 = (0..images).map(weight).sum();
    for i in 0..images {
        let app = w.layer(
            &format!("small-{i:03}"),
            (rest * weight(i) / sum.max(1)).max(1024),
        )?;
        let m = w.image("amd64", &[base.clone(), app])?;
        w.tag(&format!("bench/small-{i:03}"), m)?;
    }
    Ok(())
}

fn platform(mut desc: Value, arch: &str) -> Value {
    desc["platform"] = json!({"architecture": arch, "os": "linux"});
    desc
}

/// A written layer: its descriptor and diff_id.
#[derive(Clone)]
struct Layer {
    desc: Value,
    diff_id: String,
}

struct Workload {
    out: PathBuf,
    blobs_dir: PathBuf,
    /// Every blob written: digest -> (size, media type).
    blobs: BTreeMap<String, (u64, String)>,
    /// Blobs the images written since the last tag reference.
    untagged: Vec<String>,
    /// Layout tag, repository, tag, root descriptor.
    tags: Vec<(String, String, String, Value)>,
    /// digest -> first repository that references it.
    owner: BTreeMap<String, String>,
    /// (digest, repository, from) for every later repository that needs a blob.
    mounts: std::collections::BTreeSet<(String, String, String)>,
    layer_bytes: u64,
    layers: usize,
}

impl Workload {
    fn new(out: &Path) -> Result<Workload> {
        let blobs_dir = out.join("layout/blobs/sha256");
        fs::create_dir_all(&blobs_dir)
            .with_context(|| format!("creating {}", blobs_dir.display()))?;
        Ok(Workload {
            out: out.to_path_buf(),
            blobs_dir,
            blobs: BTreeMap::new(),
            untagged: Vec::new(),
            tags: Vec::new(),
            owner: BTreeMap::new(),
            mounts: Default::default(),
            layer_bytes: 0,
            layers: 0,
        })
    }

    /// Write a layer: a tar holding one file of `size` pseudo-random bytes
    /// seeded by `name`, in gzip stored blocks.
    fn layer(&mut self, name: &str, size: u64) -> Result<Layer> {
        let tmp = self.blobs_dir.join(format!(".tmp-{name}"));
        let file = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let blob = Hashing::new(BufWriter::with_capacity(4 * MIB as usize, file));
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(blob, flate2::Compression::none());
        let mut tar = Hashing::new(gz);
        tar.write_all(&tar_header(&format!("data/{name}.bin"), size))?;
        let mut rng = XorShift::new(name);
        let mut buf = vec![0u8; MIB as usize];
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            rng.fill(&mut buf[..n]);
            tar.write_all(&buf[..n])?;
            left -= n as u64;
        }
        let pad = (512 - size % 512) % 512;
        tar.write_all(&vec![0u8; pad as usize + 1024])?;
        let (gz, diff_id, _) = tar.done();
        let blob = gz.finish().context("finishing gzip")?;
        let (mut bw, digest, len) = blob.done();
        bw.flush()?;
        bw.into_inner().map_err(|e| e.into_error())?.sync_all().ok();
        let path = self.blobs_dir.join(&digest);
        fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        let digest = format!("sha256:{digest}");
        self.record(&digest, len, OCI_LAYER_GZIP);
        self.layer_bytes += len;
        self.layers += 1;
        Ok(Layer {
            desc: json!({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": len}),
            diff_id: format!("sha256:{diff_id}"),
        })
    }

    /// Write config and manifest of a single-platform image; its descriptor.
    fn image(&mut self, arch: &str, layers: &[Layer]) -> Result<Value> {
        for l in layers {
            let d = l.desc["digest"].as_str().expect("layer digest").to_owned();
            self.untagged.push(d);
        }
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Entrypoint": ["/bin/true"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        });
        let config = self.json_blob(OCI_CONFIG, &config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers.iter().map(|l| l.desc.clone()).collect::<Vec<_>>(),
        });
        self.json_blob(OCI_MANIFEST, &manifest)
    }

    fn json_blob(&mut self, media_type: &str, v: &Value) -> Result<Value> {
        let bytes = serde_json::to_vec(v)?;
        let hex = hex::encode(Sha256::digest(&bytes));
        let path = self.blobs_dir.join(&hex);
        fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        let digest = format!("sha256:{hex}");
        self.record(&digest, bytes.len() as u64, media_type);
        Ok(json!({"mediaType": media_type, "digest": digest, "size": bytes.len()}))
    }

    fn record(&mut self, digest: &str, size: u64, media_type: &str) {
        if self
            .blobs
            .insert(digest.to_owned(), (size, media_type.to_owned()))
            .is_none()
            && media_type != OCI_LAYER_GZIP
        {
            // Configs and manifests belong to the image being written; layers
            // to the images that use them (see `image`).
            self.untagged.push(digest.to_owned());
        }
    }

    /// Tag the image just written as `repo:1.0`; it owns every blob the
    /// images written since the previous tag use, unless an earlier image does.
    fn tag(&mut self, repo: &str, root: Value) -> Result<()> {
        let layout_tag = repo.replace('/', "-");
        for d in self.untagged.drain(..) {
            let owner = self
                .owner
                .entry(d.clone())
                .or_insert_with(|| repo.to_owned());
            if owner != repo {
                self.mounts.insert((d, repo.to_owned(), owner.clone()));
            }
        }
        self.tags
            .push((layout_tag, repo.to_owned(), "1.0".to_owned(), root));
        Ok(())
    }

    fn finish(self, kind: &str) -> Result<()> {
        let layout = self.out.join("layout");
        fs::write(
            layout.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let manifests: Vec<Value> = self
            .tags
            .iter()
            .map(|(t, _, _, root)| {
                let mut d = root.clone();
                d["annotations"] = json!({"org.opencontainers.image.ref.name": t});
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
        fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;

        let mut images = String::new();
        for (t, repo, tag, _) in &self.tags {
            images.push_str(&format!("{t}\t{repo}\t{tag}\n"));
        }
        fs::write(self.out.join("images.tsv"), images)?;
        let mut blobs = String::new();
        for (d, (size, media_type)) in &self.blobs {
            let owner = self.owner.get(d).context("a blob no image references")?;
            blobs.push_str(&format!("{d}\t{size}\t{owner}\t{media_type}\n"));
        }
        fs::write(self.out.join("blobs.tsv"), blobs)?;
        let mut mounts = String::new();
        for (d, repo, from) in &self.mounts {
            mounts.push_str(&format!("{d}\t{repo}\t{from}\n"));
        }
        fs::write(self.out.join("mounts.tsv"), mounts)?;
        let total: u64 = self.blobs.values().map(|(s, _)| s).sum();
        let summary = json!({
            "workload": kind,
            "images": self.tags.len(),
            "unique_blobs": self.blobs.len(),
            "layers": self.layers,
            "layer_bytes": self.layer_bytes,
            "blob_bytes": total,
        });
        fs::write(
            self.out.join("summary.json"),
            serde_json::to_string_pretty(&summary)?,
        )?;
        println!("{summary}");
        Ok(())
    }
}

/// A ustar header for one regular file, fixed owner, mode and mtime.
fn tar_header(name: &str, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mut field = |at: usize, len: usize, value: u64| {
        let s = format!("{value:0w$o}", w = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    field(100, 8, 0o644);
    field(108, 8, 0);
    field(116, 8, 0);
    field(124, 12, size);
    field(136, 12, MTIME);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }
    /// The inner writer, the hex digest and the byte count.
    fn done(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// xorshift64*: a fixed, portable pseudo-random stream (not for secrets).
struct XorShift(u64);

impl XorShift {
    fn new(seed: &str) -> Self {
        let h = Sha256::digest(seed.as_bytes());
        let s = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
        XorShift(s | 1)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let v = self.next().to_le_bytes();
            let n = rest.len();
            rest.copy_from_slice(&v[..n]);
        }
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
