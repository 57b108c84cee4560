//! Measures what seekable zstd (`create --compress zstd`) gains on realistic
//! bundle content, for the "Compression" section of docs/PERFORMANCE.md.
//!
//! ```text
//! cargo run --release -p atp-bundle --example zstd-gain -- [LABEL=PATH ...]
//! ```
//!
//! Each `LABEL=PATH` is a file or a folder (every file under it, sorted);
//! `gzip-layers=DIR` keeps only files with gzip magic. Two generated inputs
//! are always measured: 64 MiB of float32 model weights (Gaussian, like a
//! trained layer) and the same as bfloat16. Prints one Markdown row per
//! input and level: size, compressed size, saving, compress and decompress
//! MB/s (one thread, through the same writer and reader the tools use).
//! Reads its inputs; writes nothing.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use atp_bundle::media::seekable::{SeekableReader, SeekableWriter, FRAME_SIZE};
use atp_bundle::media::{Cursor, ReadAt};

fn files(path: &Path, out: &mut Vec<std::path::PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for e in entries {
            files(&e, out);
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    }
}

fn weights(n: usize, bf16: bool) -> Vec<u8> {
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::with_capacity(n * 4);
    while out.len() < n * if bf16 { 2 } else { 4 } {
        // Box-Muller, scaled like an initialised layer (std 0.02).
        let (u, v) = (next().max(1e-12), next());
        let g = ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() * 0.02) as f32;
        let b = g.to_le_bytes();
        if bf16 {
            out.extend_from_slice(&b[2..4]);
        } else {
            out.extend_from_slice(&b);
        }
    }
    out
}

fn measure(label: &str, data: &[u8], level: i32) {
    let t = Instant::now();
    let mut w = SeekableWriter::new(Vec::new(), level, FRAME_SIZE).unwrap();
    w.write_all(data).unwrap();
    let (z, _) = w.finish().unwrap();
    let ct = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r: Arc<dyn ReadAt> =
        Arc::new(SeekableReader::open(Arc::new(z.clone()), Some(data.len() as u64)).unwrap());
    let mut back = Vec::with_capacity(data.len());
    std::io::copy(&mut Cursor::new(r, 0, data.len() as u64), &mut back).unwrap();
    let dt = t.elapsed().as_secs_f64();
    assert_eq!(back, data);
    let mb = data.len() as f64 / 1e6;
    let human = |n: usize| match n {
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n => format!("{:.1} kB", n as f64 / 1e3),
    };
    println!(
        "| {label} | {level} | {} | {} | {:.1}% | {:.0} | {:.0} |",
        human(data.len()),
        human(z.len()),
        100.0 * (1.0 - z.len() as f64 / data.len() as f64),
        mb / ct,
        mb / dt
    );
}

fn main() {
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for arg in std::env::args().skip(1) {
        let (label, path) = arg.split_once('=').expect("LABEL=PATH");
        let mut list = Vec::new();
        files(Path::new(path), &mut list);
        let mut data = Vec::new();
        for f in list {
            let bytes = std::fs::read(&f).unwrap();
            if label.starts_with("gzip") && !bytes.starts_with(&[0x1f, 0x8b]) {
                continue;
            }
            data.extend(bytes);
        }
        inputs.push((label.to_string(), data));
    }
    inputs.push(("model weights, float32".into(), weights(16 << 20, false)));
    inputs.push(("model weights, bfloat16".into(), weights(32 << 20, true)));
    println!("| content | level | size | zstd | saved | compress MB/s | decompress MB/s |");
    println!("|---|---|---|---|---|---|---|");
    for (label, data) in &inputs {
        for level in [1, 3, 9] {
            measure(label, data, level);
        }
    }
}
