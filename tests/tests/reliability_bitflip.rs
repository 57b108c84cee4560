//! Issue 10, property: a single flipped bit anywhere in a real demo bundle
//! (made by `atp-bundler create`: tar headers, padding, the end blocks, the
//! signature, JSON, layers and the kustomize layer) is always detected by the
//! verifier the installer uses, on the bytes in memory.
//!
//! 1,000 flips per run with a fixed seed; set `ATP_BITFLIPS=100000` (and
//! optionally `ATP_BITFLIP_SEED`) for a longer local run.

mod common;

use atp_bundle::verify::verify_reader;
use common::*;

/// xorshift64*: a fixed, dependency-free sequence.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_random_bit_flip_in_a_demo_bundle_is_detected() {
    let w = Work::new();
    assert_ok(&w.create_demo("b.tar", &[]), "create");
    let good = std::fs::read(w.path("b.tar")).unwrap();
    let key = atp_bundle::keys::load_public_file(&w.path("k.pub")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let report = verify_reader(&good[..], &key, now);
    assert!(report.is_ok(), "{:?}", report.findings);

    let flips = env_u64("ATP_BITFLIPS", 1000);
    let mut rng = Rng(env_u64("ATP_BITFLIP_SEED", 0xa7b0_0f1e_5eed_0010));
    let bits = good.len() as u64 * 8;
    let len = good.len() as u64;
    let mut positions: Vec<u64> = (0..flips).map(|_| rng.next() % bits).collect();
    // Aim a share at the places a careless verifier skips: every header
    // block's bytes (first entry), the padding before each 512-byte
    // boundary, and the two end-of-archive blocks.
    for byte in (0..512).chain(len - 1024..len) {
        positions.push(byte * 8 + rng.next() % 8);
    }
    for block in (512..len - 1024).step_by(512).take(2000) {
        positions.push((block - 1) * 8 + rng.next() % 8);
    }
    let mut bad = good.clone();
    let mut regions = std::collections::BTreeMap::<String, usize>::new();
    for pos in positions {
        let (byte, bit) = ((pos / 8) as usize, pos % 8);
        bad[byte] ^= 1 << bit;
        let r = verify_reader(&bad[..], &key, now);
        assert!(
            !r.is_ok(),
            "flipping bit {bit} of byte {byte} of {} went undetected",
            w.s("b.tar")
        );
        let kind = r
            .findings
            .first()
            .map(|f| format!("{:?}", f.kind))
            .unwrap_or_default();
        *regions.entry(kind).or_default() += 1;
        bad[byte] ^= 1 << bit;
    }
    // The flips reached more than one kind of entry.
    assert!(regions.len() >= 3, "{regions:?}");
}
