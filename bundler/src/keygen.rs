//! `atp-bundler keygen`: a new P-256 key pair, the private half in cosign's
//! encrypted format (`PREFIX.key`, mode 0600) and the public half as PEM
//! (`PREFIX.pub`). Refuses to overwrite existing keys.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{path} already exists\nhint: keys are never overwritten; pick another --output prefix or move the old key away")]
    Exists { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Key(#[from] atp_bundle::keys::KeyError),
}

/// The two files written.
#[derive(Debug, serde::Serialize)]
pub struct KeyPair {
    pub private_key: PathBuf,
    pub public_key: PathBuf,
    pub fingerprint: String,
}

/// Generate and write a key pair at `PREFIX.key` / `PREFIX.pub`.
pub fn keygen(prefix: &Path, password: &str) -> Result<KeyPair, KeygenError> {
    let private_key = PathBuf::from(format!("{}.key", prefix.display()));
    let public_key = PathBuf::from(format!("{}.pub", prefix.display()));
    for p in [&private_key, &public_key] {
        if p.exists() {
            return Err(KeygenError::Exists { path: p.clone() });
        }
    }
    let (private_pem, public_pem) = atp_bundle::keys::keygen(password)?;
    let fingerprint = atp_bundle::keys::fingerprint(&atp_bundle::keys::load_public(&public_pem)?);
    write_new(&private_key, private_pem.as_bytes(), 0o600)?;
    write_new(&public_key, public_pem.as_bytes(), 0o644)?;
    Ok(KeyPair {
        private_key,
        public_key,
        fingerprint,
    })
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeygenError> {
    let io = |source| KeygenError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}
