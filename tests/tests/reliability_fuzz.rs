//! Issue 10, fuzzing on the stable toolchain: every cargo-fuzz target body in
//! `atp_bundler::fuzz_bodies` runs over a seed corpus (the broken-bundle fixtures, a
//! real demo bundle, its index and manifests, the demo spec) and a fixed
//! number of deterministic mutations of each seed: bit flips, truncations,
//! byte runs and splices. None may panic. This is a smoke test, not a fuzzer:
//! `cargo +nightly fuzz run <target>` explores far more (docs/security.md).
//!
//! `ATP_FUZZ_ITERS` sets the mutations per seed (default 200).

mod common;

use atp_bundler::fuzz_bodies as bodies;

use common::*;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One deterministic mutation of `seed`.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    if v.is_empty() {
        return vec![rng.next() as u8; rng.below(64)];
    }
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
        }
        1 => v.truncate(rng.below(v.len())),
        2 => {
            let i = rng.below(v.len());
            let n = rng.below(64).min(v.len() - i);
            let b = [0u8, 0xff, b'0', b'7', b'"', b'{', b'\n'][rng.below(7)];
            v[i..i + n].fill(b);
        }
        3 => {
            // Duplicate a slice somewhere else (a repeated entry or field).
            let i = rng.below(v.len());
            let n = rng.below(1024).min(v.len() - i);
            let slice = v[i..i + n].to_vec();
            let at = rng.below(v.len());
            v.splice(at..at, slice);
        }
        4 => {
            let i = rng.below(v.len());
            let n = rng.below(512).min(v.len() - i);
            v.drain(i..i + n);
        }
        _ => {
            // Interesting numbers where digits were.
            let text = [
                &b"99999999999"[..],
                b"-1",
                b"18446744073709551616",
                b"1e999",
                b"null",
            ];
            let t = text[rng.below(text.len())];
            let i = rng.below(v.len());
            let end = (i + t.len()).min(v.len());
            v.splice(i..end, t.iter().copied());
        }
    }
    v
}

fn run(name: &str, body: fn(&[u8]), seeds: &[Vec<u8>], iters: usize, seed: u64) {
    let mut rng = Rng(seed);
    for s in seeds {
        body(s);
        for _ in 0..iters {
            let m = mutate(s, &mut rng);
            let r = std::panic::catch_unwind(|| body(&m));
            if r.is_err() {
                let out = std::env::temp_dir().join(format!("atp-fuzz-crash-{name}"));
                std::fs::write(&out, &m).unwrap();
                panic!("{name} panicked; input saved to {}", out.display());
            }
        }
    }
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_mutations() {
    let iters: usize = std::env::var("ATP_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let demo = std::fs::read(w.path("b.tar")).unwrap();

    // Tar seeds: the demo bundle (small enough to mutate whole) and every
    // broken fixture under 256 KiB.
    let mut tars = vec![demo.clone()];
    for e in std::fs::read_dir(repo_root().join("fixtures/broken")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "tar") && p.metadata().unwrap().len() < 256 << 10 {
            tars.push(std::fs::read(&p).unwrap());
        }
    }
    // JSON seeds: index.json and every JSON blob of the demo bundle.
    let mut jsons = Vec::new();
    let mut headers = Vec::new();
    let mut ar = tar::Archive::new(&demo[..]);
    for entry in ar.entries().unwrap() {
        let mut entry = entry.unwrap();
        headers.push(entry.header().as_bytes().to_vec());
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        if bytes.first() == Some(&b'{') {
            jsons.push(bytes);
        }
    }
    assert!(jsons.len() >= 5, "{} JSON entries", jsons.len());
    let specs = vec![
        std::fs::read(repo_root().join("manifests/bundle.yaml")).unwrap(),
        std::fs::read(demo_spec(&w, "spec.yaml", 3, &[])).unwrap(),
    ];

    // Big inputs cost a full verification each: fewer mutations for them.
    run("verify_reader", bodies::verify_reader, &tars, iters / 4, 1);
    run("ustar_header", bodies::ustar_header, &headers, iters, 2);
    run("index", bodies::index, &jsons, iters, 3);
    run("manifest", bodies::manifest, &jsons, iters, 4);
    run("spec", bodies::spec, &specs, iters * 5, 5);
}
