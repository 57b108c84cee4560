//! Property-style: a single flipped bit anywhere in a good bundle is always
//! detected (spec section 2), and the verifier's findings do not depend on
//! how the input is chunked.

use std::io::Read;

use atp_bundle::sample::{sample, sample_created};
use atp_bundle::verify::verify_reader;
use p256::ecdsa::SigningKey;

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

#[test]
fn every_single_bit_flip_is_detected() {
    let key = SigningKey::from_slice(&[9u8; 32]).unwrap();
    let good = sample(&key, None).unwrap().bytes();
    let vk = key.verifying_key();
    assert!(verify_reader(&good[..], vk, sample_created()).is_ok());
    let bits = good.len() as u64 * 8;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // ~1,000 random positions, plus one random bit of every byte of the
    // first header and of the end-of-archive blocks.
    let mut positions: Vec<u64> = (0..1000).map(|_| rng.next() % bits).collect();
    let len = good.len() as u64;
    for byte in (0..512).chain(len - 1024..len) {
        positions.push(byte * 8 + rng.next() % 8);
    }
    for pos in positions {
        let mut bad = good.clone();
        bad[(pos / 8) as usize] ^= 1 << (pos % 8);
        let r = verify_reader(&bad[..], vk, sample_created());
        assert!(
            !r.is_ok(),
            "flipping bit {} of byte {} went undetected",
            pos % 8,
            pos / 8
        );
    }
}

/// Hands out at most 7 bytes per read.
struct Dribble<'a>(&'a [u8]);
impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn findings_do_not_depend_on_read_sizes() {
    let key = SigningKey::from_slice(&[9u8; 32]).unwrap();
    let mut bad = sample(&key, None).unwrap().bytes();
    let n = bad.len();
    bad[n / 2] ^= 0x40;
    bad.extend_from_slice(b"tail");
    let whole = verify_reader(&bad[..], key.verifying_key(), sample_created());
    let dribbled = verify_reader(Dribble(&bad), key.verifying_key(), sample_created());
    assert!(!whole.findings.is_empty());
    assert_eq!(whole.findings, dribbled.findings);
    assert_eq!(whole.blobs, dribbled.blobs);
    assert_eq!(whole.total_bytes, dribbled.total_bytes);
}
