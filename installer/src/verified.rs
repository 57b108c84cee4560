//! A bundle that has passed verification, read in place: the verifier's
//! report, the input (plain tar, split volumes or seekable zstd) and where
//! each verified blob sits in it.
//!
//! Verified = used: the file may change after verification (a writable
//! share, a stick still mounted elsewhere), so every later read of a small
//! blob ([`VerifiedBundle::read`]: manifests, the bundle config, the
//! kustomize tree) is hashed again and refused unless it is exactly the
//! verified bytes. Large blobs stream to the registry, which checks their
//! digest as it stores them, or to the model cache, which checks each file
//! before it takes its final name. Never writes to the bundle's media.

use std::collections::HashMap;
use std::sync::Arc;

use atp_bundle::media::BundleInput;
use atp_bundle::verify::{BlobLocation, Report};
use atp_bundle::Digest;
use atp_registry::copy::BlobSources;
use atp_registry::BlobSource;

/// Small blobs are read whole into memory; nothing larger is.
pub const MAX_READ: u64 = 64 << 20;

/// Why a verified blob could not be read again.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("blob {digest} is not in the verified bundle")]
    Unknown { digest: Digest },
    #[error("blob {digest} is {size} bytes, more than the {MAX_READ} read into memory")]
    TooLarge { digest: Digest, size: u64 },
    #[error("reading blob {digest} again from {at}: {source}")]
    Io {
        digest: Digest,
        at: String,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {digest} changed on the media after it was verified (now {found}); nothing more was written\nhint: the bundle file is being modified; copy it to local disk that nothing else writes, then install again")]
    Changed { digest: Digest, found: Digest },
}

/// A verified bundle.
pub struct VerifiedBundle {
    pub report: Report,
    pub input: Arc<BundleInput>,
    pub locations: HashMap<Digest, BlobLocation>,
}

impl VerifiedBundle {
    /// `report` must be a clean verification of `input`.
    pub fn new(report: Report, input: BundleInput) -> Self {
        let locations = report
            .blobs
            .iter()
            .map(|b| (b.digest.clone(), b.clone()))
            .collect();
        Self {
            report,
            input: Arc::new(input),
            locations,
        }
    }

    /// The bytes of a verified blob, hashed again: exactly what was verified,
    /// or an error.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, ReadError> {
        let loc = self
            .locations
            .get(d)
            .ok_or_else(|| ReadError::Unknown { digest: d.clone() })?;
        if loc.size > MAX_READ {
            return Err(ReadError::TooLarge {
                digest: d.clone(),
                size: loc.size,
            });
        }
        let mut buf = vec![0u8; loc.size as usize];
        let tar = self.input.tar();
        tar.read_exact_at(&mut buf, loc.data_offset)
            .map_err(|source| ReadError::Io {
                digest: d.clone(),
                at: tar.describe(loc.data_offset),
                source,
            })?;
        let found = Digest::of(&buf);
        if &found != d {
            return Err(ReadError::Changed {
                digest: d.clone(),
                found,
            });
        }
        Ok(buf)
    }

    /// [`VerifiedBundle::read`] with the error as text (for closures).
    pub fn read_text_err(&self, d: &Digest) -> Result<Vec<u8>, String> {
        self.read(d).map_err(|e| e.to_string())
    }
}

impl BlobSources for VerifiedBundle {
    fn blob_source(&self, digest: &Digest, _size: u64) -> Option<Box<dyn BlobSource>> {
        let loc = self.locations.get(digest)?;
        Some(crate::media_source::blob_source(&self.input, loc))
    }
}
