//! The upstream key of `supply_chain`: a P-256 pair made by `openssl`, and
//! signatures made and checked by `openssl dgst`; and the one helper that
//! runs a tool and panics with its output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An upstream P-256 signing key, made by `openssl`, in a temp directory.
pub struct UpstreamKey {
    _dir: tempfile::TempDir,
    private: PathBuf,
    public: PathBuf,
}

pub(super) fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Vec<u8> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

impl UpstreamKey {
    /// A fresh key pair: `openssl ecparam -name prime256v1 -genkey`.
    pub fn generate() -> UpstreamKey {
        let dir = tempfile::Builder::new()
            .prefix("atp-upstream-key-")
            .tempdir()
            .unwrap();
        let private = dir.path().join("cosign.key.pem");
        let public = dir.path().join("cosign.pub");
        run(
            Command::new("openssl")
                .args([
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                ])
                .arg(&private),
            None,
        );
        run(
            Command::new("openssl")
                .args(["ec", "-pubout", "-in"])
                .arg(&private)
                .arg("-out")
                .arg(&public),
            None,
        );
        UpstreamKey {
            _dir: dir,
            private,
            public,
        }
    }

    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`), cosign's format.
    pub fn public_pem_path(&self) -> &Path {
        &self.public
    }

    /// The private key, PEM (unencrypted SEC1).
    pub fn private_pem_path(&self) -> &Path {
        &self.private
    }

    /// `openssl dgst -sha256 -sign`: a DER ECDSA signature over `data`.
    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        run(
            Command::new("openssl")
                .args(["dgst", "-sha256", "-sign"])
                .arg(&self.private),
            Some(data),
        )
    }
}

/// `openssl dgst -sha256 -verify <public> -signature <sig>` over `data`.
pub fn openssl_verify(public_pem: &Path, data: &[u8], der_signature: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let sig = dir.path().join("sig.der");
    std::fs::write(&sig, der_signature).unwrap();
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public_pem)
        .arg("-signature")
        .arg(&sig)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}
