//! The three fixed entries at the start of a bundle (spec 2.1): `oci-layout`,
//! `index.json` and `index.json.sig`, each in its place and within its size,
//! then the signature over `index.json` that gates all trust, and at the end
//! of the archive, which of them never came.
//!
//! Nothing after the signature is trusted unless it verifies with the
//! caller's key; `index.json` is only peeked at, untrusted, to explain a key
//! mismatch.

use std::io::Read;

use crate::format::{
    annotation as ann, ImageIndex, INDEX_PATH, MAX_INDEX_SIZE, MAX_SIGNATURE_SIZE,
    OCI_LAYOUT_BYTES, OCI_LAYOUT_PATH, SIGNATURE_PATH,
};
use crate::Digest;

use crate::verify::{FindingKind, Stop, Verifier, VisitBlob};

impl<R: Read, V: VisitBlob> Verifier<'_, R, V> {
    /// Read and check the fixed entry `path` (one of the three), the
    /// `position`-th entry of the archive, of `size` bytes, whose header is
    /// at `h_off`; the signature, once read, is checked at once.
    pub(super) fn fixed_entry(
        &mut self,
        path: &str,
        position: u64,
        size: u64,
        h_off: u64,
    ) -> Result<(), Stop> {
        match path {
            OCI_LAYOUT_PATH => {
                self.fixed_position(position, 0, path, h_off);
                if size > 4096 {
                    self.find(
                        FindingKind::BadLayout,
                        None,
                        Some(path),
                        h_off,
                        format!("oci-layout is {size} bytes"),
                    );
                    return self.skip(size, path, h_off);
                }
                let bytes = self.read_small(size, None, path, h_off)?;
                if bytes != OCI_LAYOUT_BYTES {
                    self.find(
                        FindingKind::BadLayout,
                        None,
                        Some(path),
                        h_off,
                        format!(
                            "oci-layout must be exactly {}",
                            String::from_utf8_lossy(OCI_LAYOUT_BYTES)
                        ),
                    );
                }
                Ok(())
            }
            INDEX_PATH => {
                self.fixed_position(position, 1, path, h_off);
                if size > MAX_INDEX_SIZE {
                    self.find(
                        FindingKind::BadIndex,
                        None,
                        Some(path),
                        h_off,
                        format!("index.json is {size} bytes, over the 4 MiB limit"),
                    );
                    self.skip(size, path, h_off)?;
                    return Err(Stop);
                }
                let bytes = self.read_small(size, None, path, h_off)?;
                self.index_bytes = Some((bytes, h_off));
                Ok(())
            }
            // SIGNATURE_PATH, the third.
            _ => {
                self.fixed_position(position, 2, path, h_off);
                if size > MAX_SIGNATURE_SIZE {
                    self.find(
                        FindingKind::BadSignature,
                        None,
                        Some(path),
                        h_off,
                        format!("signature entry is {size} bytes"),
                    );
                    return Err(Stop);
                }
                let sig = self.read_small(size, None, path, h_off)?;
                self.check_signature(&sig, h_off)
            }
        }
    }

    /// At `at` (the end of the archive, or the first blob before trust):
    /// a finding for each fixed entry not seen.
    pub(super) fn check_fixed_entries_present(&mut self, at: u64) {
        for p in [OCI_LAYOUT_PATH, INDEX_PATH, SIGNATURE_PATH] {
            if !self.paths.contains(p) {
                self.find(
                    FindingKind::MissingEntry,
                    None,
                    Some(p),
                    at,
                    format!("the bundle has no {p} entry"),
                );
            }
        }
    }

    /// A finding when a fixed entry is not the `want`-th (from 0).
    fn fixed_position(&mut self, position: u64, want: u64, path: &str, h_off: u64) {
        if position != want {
            self.find(
                FindingKind::WrongOrder,
                None,
                Some(path),
                h_off,
                format!(
                    "{path} must be entry {} but is entry {}",
                    want + 1,
                    position + 1
                ),
            );
        }
    }

    /// Check `sig` over the `index.json` read before it with the caller's
    /// key; only then is the index trusted and the blob graph begun.
    fn check_signature(&mut self, sig: &[u8], h_off: u64) -> Result<(), Stop> {
        let Some((index, index_off)) = self.index_bytes.take() else {
            self.find(
                FindingKind::MissingEntry,
                None,
                Some(INDEX_PATH),
                h_off,
                "signature found but no index.json before it; stopped reading".into(),
            );
            return Err(Stop);
        };
        let ours = crate::keys::fingerprint(self.key);
        // Untrusted peek, only to explain a key mismatch well.
        let claimed = serde_json::from_slice::<ImageIndex>(&index)
            .ok()
            .and_then(|i| i.annotations.get(ann::KEY_FINGERPRINT).cloned());
        if let Some(theirs) = claimed.filter(|t| *t != ours) {
            self.find(
                FindingKind::WrongKey,
                None,
                Some(SIGNATURE_PATH),
                h_off,
                format!("bundle says it was signed by key {theirs}, but the trusted key is {ours}; hint: pass the public key that matches {theirs}, or ask the publisher which key signed this bundle"),
            );
            return Err(Stop);
        }
        let sig_text = String::from_utf8_lossy(sig);
        if let Err(e) = crate::sign::verify(self.key, &index, &sig_text) {
            self.find(
                FindingKind::BadSignature,
                None,
                Some(SIGNATURE_PATH),
                h_off,
                format!("{e}; nothing in the bundle is trusted, stopped reading"),
            );
            return Err(Stop);
        }
        self.trusted = true;
        self.report.index_digest = Some(Digest::of(&index));
        self.trust_index(&index, index_off);
        Ok(())
    }
}
