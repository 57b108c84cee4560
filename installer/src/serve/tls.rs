//! `--tls-cert` / `--tls-key`: the server's certificate chain and key, read
//! once at start into a rustls acceptor (ring, TLS 1.2 and 1.3).
//!
//! Never logs or echoes the key's contents; errors name the file only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

use super::ServeError;

/// The certificate chain (PEM, leaf first) and its private key (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn bad(path: &Path, message: impl std::fmt::Display) -> ServeError {
    ServeError::Tls {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Read both files and build the acceptor.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&files.cert, e))?;
    if certs.is_empty() {
        return Err(bad(&files.cert, "no PEM certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&files.cert, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(&files.key, format!("does not go with the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
