//! Per-run certificates for the harness: a throwaway CA, a TLS server
//! certificate for `127.0.0.1` / `localhost`, and the token issuer's signing
//! certificate.
//!
//! Keys live only in memory and in the registry's temp dir; nothing here is
//! ever reused across runs or written outside the directory it is given.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};

/// A certificate authority generated for one registry.
pub struct Ca {
    pub cert: Certificate,
    pub key: KeyPair,
}

impl Ca {
    /// A fresh self-signed P-256 CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Ca> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    /// A leaf certificate signed by this CA. `sans` are DNS names or IP
    /// addresses (anything that parses as an IP becomes an IP SAN).
    pub fn issue(&self, common_name: &str, sans: &[&str]) -> Result<Leaf> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        for san in sans {
            let san = match san.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*san).try_into()?),
            };
            params.subject_alt_names.push(san);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Leaf { cert, key })
    }
}

/// A certificate and its private key.
pub struct Leaf {
    pub cert: Certificate,
    pub key: KeyPair,
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "ATP Offline test harness");
    dn
}

/// Write `contents` to `dir/file` and return the path, naming the path on error.
pub fn write(dir: &Path, file: &str, contents: &str) -> Result<PathBuf> {
    let path = dir.join(file);
    std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
