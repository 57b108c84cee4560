//! Verifier throughput check: builds (once) a bundle of large synthetic
//! layers with the concurrent writer, then times `verify_file` on it.
//! Compare with `openssl dgst -sha256 FILE` on the same file.
//! `cargo run --release -p atp-bundle --example bench-verify -- FILE SIZE_MIB`
//!
//! Writes only FILE (and its temp sibling while building).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use atp_bundle::assemble::{assemble, blob_order, BundlePlan, ImageInput};
use atp_bundle::format::{media, BundleInfo, Descriptor, ImageManifest};
use atp_bundle::sample::sample_created;
use atp_bundle::{BundleWriter, Digest};
use p256::ecdsa::SigningKey;

const CHUNK: usize = 1 << 20;
const LAYER_MIB: usize = 64;

fn chunk(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..CHUNK / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

fn layer(i: usize) -> impl Iterator<Item = Vec<u8>> {
    let base = chunk(i as u64 + 7);
    (0..LAYER_MIB).map(move |j| {
        let mut c = base.clone();
        c[..8].copy_from_slice(&(j as u64).to_le_bytes());
        c
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = Path::new(&args[0]);
    let mib: usize = args
        .get(1)
        .map(|s| s.parse().expect("SIZE_MIB"))
        .unwrap_or(1024);
    let key = SigningKey::from_slice(&[3u8; 32]).expect("key");
    if !path.exists() {
        let n = mib.div_ceil(LAYER_MIB);
        let mut layers = Vec::new();
        for i in 0..n {
            let mut h = atp_bundle::digest::Hasher::new();
            layer(i).for_each(|c| h.update(&c));
            let (d, size) = h.finish();
            layers.push(Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar",
                d,
                size,
            ));
        }
        let config = b"{}".to_vec();
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::of_bytes("application/vnd.oci.image.config.v1+json", &config),
            layers: layers.clone(),
            annotations: Default::default(),
        };
        let mbytes = atp_bundle::format::json::to_canonical_vec(&m).expect("json");
        let mdesc = Descriptor::of_bytes(media::OCI_MANIFEST, &mbytes);
        let plan = BundlePlan {
            info: BundleInfo {
                name: "bench".into(),
                version: "1".into(),
                channel: "bench".into(),
                sequence: 1,
                created: sample_created(),
                expires: None,
                key_fingerprint: String::new(),
                platforms: vec![],
                delta: false,
            },
            images: vec![ImageInput {
                reference: "docker.io/atp/bench:1".into(),
                descriptor: mdesc.clone(),
                source_digest: None,
                platforms: vec![],
                used_by: vec![],
                referrers: Vec::new(),
            }],
            file_sets: vec![],
            kustomize: None,
            delta: None,
        };
        let a = assemble(&plan, &key).expect("assemble");
        let mut small: HashMap<Digest, Vec<u8>> = a.generated.clone().into_iter().collect();
        small.insert(mdesc.digest.clone(), mbytes);
        small.insert(Digest::of(&config), config);
        let order = blob_order(&a.index, &small, &HashSet::new()).expect("order");
        let signed = atp_bundle::SignedIndex {
            index_json: a.index_json.clone(),
            signature: a.signature.clone(),
        };
        let w = BundleWriter::create(path, &signed, &order).expect("create");
        for (d, b) in &small {
            let mut s = w.slot(d).expect("slot");
            s.write_all(b).expect("write");
            s.finish().expect("finish");
        }
        std::thread::scope(|scope| {
            for (i, l) in layers.iter().enumerate() {
                let mut s = w.slot(&l.digest).expect("slot");
                scope.spawn(move || {
                    layer(i).for_each(|c| s.write_all(&c).expect("write"));
                    s.finish().expect("finish");
                });
            }
        });
        let t = Instant::now();
        w.commit(key.verifying_key(), sample_created())
            .expect("commit");
        println!("commit (fsync + re-verify + rename): {:.2?}", t.elapsed());
    }
    let t = Instant::now();
    let r = atp_bundle::verify_file(path, key.verifying_key(), sample_created()).expect("open");
    let secs = t.elapsed().as_secs_f64();
    assert!(r.is_ok(), "{:?}", r.findings);
    println!(
        "verify: {} bytes in {secs:.2}s = {:.0} MiB/s",
        r.total_bytes,
        r.total_bytes as f64 / secs / (1 << 20) as f64
    );
}
