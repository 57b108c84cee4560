//! The parallel verifier (`verify_at`, issue 21) gives the very report of the
//! single streaming pass (`verify_reader`), finding for finding and blob for
//! blob, over the whole broken-bundle corpus and the good sample, whatever
//! order its workers finish in; so does the vouched read-back create's
//! commit uses (`verify_at_vouched`: layers checked by the CRC-32 they were
//! written with), whether the CRCs hold or not.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use atp_bundle::keys;
use atp_bundle::media::ReadAt;
use atp_bundle::progress::Progress;
use atp_bundle::sample::broken::{corpus, verify_time};
use atp_bundle::sample::sample;
use atp_bundle::verify::{verify_at, verify_at_vouched, verify_reader, Parallel};
use atp_bundle::Digest;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Bytes read by position, at most 1 KiB a read (so blobs span reads as
/// large ones do in a real bundle); reads nearer the start wait longer, so
/// workers given earlier blobs finish after those given later ones.
struct Reversing(Vec<u8>);

impl ReadAt for Reversing {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let len = self.0.len() as u64;
        let wait = len.saturating_sub(offset) * 3 / len.max(1);
        std::thread::sleep(Duration::from_millis(wait));
        let n = buf.len().min(1024);
        self.0.read_at(&mut buf[..n], offset)
    }
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
}

/// Counts bytes, and which threads reported them.
#[derive(Default)]
struct Seen {
    bytes: Mutex<u64>,
    threads: Mutex<HashSet<ThreadId>>,
}

impl Progress for Seen {
    fn advance(&self, bytes: u64) {
        *self.bytes.lock().unwrap() += bytes;
        self.threads
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
    }
}

#[test]
fn every_corpus_bundle_gets_the_same_report_from_both_paths() {
    let test = keys::load_private_file(&fixtures().join("keys/test.key"), "").unwrap();
    let other = keys::load_private_file(&fixtures().join("keys/other.key"), "").unwrap();
    let key = test.verifying_key();
    let mut cases: Vec<(String, Vec<u8>)> = corpus(&test, &other)
        .into_iter()
        .map(|c| (c.name.to_string(), c.bytes))
        .collect();
    let good = sample(&test, None).unwrap();
    cases.push(("good sample".into(), good.bytes()));
    // What create's writer vouches for: the CRC-32 of each blob as it wrote
    // it (the corpus damages the file after that), or CRCs that never match.
    let crc = |b: &[u8]| {
        let mut h = crc32fast::Hasher::new();
        h.update(b);
        h.finalize()
    };
    let written: HashMap<Digest, u32> = good
        .blobs
        .iter()
        .map(|(d, b)| (d.clone(), crc(b)))
        .collect();
    let wrong: HashMap<Digest, u32> = written.iter().map(|(d, c)| (d.clone(), !c)).collect();
    let mut deferred_somewhere = false;
    for (name, bytes) in &cases {
        let single = verify_reader(&bytes[..], key, verify_time());
        for threads in [1, 2, 3] {
            let opts = Parallel {
                threads,
                min_size: 0,
            };
            for src in [
                Arc::new(bytes.clone()) as Arc<dyn ReadAt>,
                Arc::new(Reversing(bytes.clone())),
            ] {
                let seen = Seen::default();
                let par = verify_at(src, key, verify_time(), &opts, &seen);
                assert_eq!(
                    format!("{par:#?}"),
                    format!("{single:#?}"),
                    "{name}, {threads} threads: the reports differ"
                );
                // No byte is read twice: once by the pass or by a worker,
                // every one of them when the pass reaches the end.
                let read = *seen.bytes.lock().unwrap();
                assert!(read <= bytes.len() as u64, "{name}: {read} bytes read");
                if single.is_ok() {
                    assert_eq!(read, bytes.len() as u64, "{name}");
                }
                deferred_somewhere |= seen.threads.lock().unwrap().len() > 1;
            }
            for vouched in [&written, &wrong] {
                let seen = Seen::default();
                let src = Arc::new(Reversing(bytes.clone()));
                let par = verify_at_vouched(src, key, verify_time(), &opts, &seen, vouched.clone());
                assert_eq!(
                    format!("{par:#?}"),
                    format!("{single:#?}"),
                    "{name}, {threads} threads, vouched: the reports differ"
                );
                let read = *seen.bytes.lock().unwrap();
                assert!(read <= bytes.len() as u64, "{name}: {read} bytes read");
            }
        }
    }
    assert!(deferred_somewhere, "no blob was ever hashed by a worker");
}

#[test]
fn a_corrupt_layer_is_named_where_the_single_pass_names_it() {
    let test = keys::load_private_file(&fixtures().join("keys/test.key"), "").unwrap();
    let other = keys::load_private_file(&fixtures().join("keys/other.key"), "").unwrap();
    let case = corpus(&test, &other)
        .into_iter()
        .find(|c| c.name == "flip-layer")
        .unwrap();
    let opts = Parallel {
        threads: 2,
        min_size: 0,
    };
    let seen = Seen::default();
    let r = verify_at(
        Arc::new(Reversing(case.bytes.clone())),
        test.verifying_key(),
        verify_time(),
        &opts,
        &seen,
    );
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
    assert_eq!(
        r.findings[0].kind,
        atp_bundle::verify::FindingKind::BadDigest
    );
    assert!(seen.threads.lock().unwrap().len() > 1);
}

/// Create hashes each blob once as it is written; the commit proves the
/// written file with the parallel verifier. A layer damaged on disk after
/// its slot was finished (its write-time hash was right) is still caught,
/// named, and nothing is renamed into place.
#[test]
fn commit_reads_back_what_was_written_and_refuses_a_layer_damaged_after_its_hash() {
    use atp_bundle::writer::{BundleWriter, WriteError};
    use atp_bundle::Digest;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    let k = keys::load_private_file(&fixtures().join("keys/test.key"), "").unwrap();
    let s = sample(&k, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.tar");
    let order: Vec<(Digest, u64)> = s
        .blobs
        .iter()
        .map(|(d, b)| (d.clone(), b.len() as u64))
        .collect();
    let w = BundleWriter::create(&out, &s.signed(), &order).unwrap();
    for (d, bytes) in &s.blobs {
        let mut slot = w.slot(d).unwrap();
        slot.write_all(bytes).unwrap();
        slot.finish().unwrap();
    }
    let layer = s.layers[0].clone();
    let at = w
        .layout()
        .entries
        .iter()
        .find(|e| e.path == layer.blob_path())
        .unwrap()
        .data_offset;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(w.temp_path())
        .unwrap();
    let mut byte = [0u8];
    FileExt::read_exact_at(&std::fs::File::open(w.temp_path()).unwrap(), &mut byte, at).unwrap();
    f.write_all_at(&[byte[0] ^ 1], at).unwrap();
    match w.commit(k.verifying_key(), verify_time()) {
        Err(WriteError::Reverify { findings }) => {
            assert_eq!(findings.len(), 1, "{findings:#?}");
            assert_eq!(findings[0].digest.as_ref(), Some(&layer));
            assert_eq!(findings[0].kind, atp_bundle::verify::FindingKind::BadDigest);
        }
        other => panic!("{other:?}"),
    }
    assert!(!out.exists());
}
