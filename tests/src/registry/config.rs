//! A registry's `config.yml` (its own storage, address, TLS and auth; the
//! access log on) and a free loopback port for it.

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub(super) fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("probing for a free port")?;
    Ok(l.local_addr()?.port())
}

pub(super) fn config_yaml(
    port: u16,
    storage: &Path,
    tls: Option<&(PathBuf, PathBuf)>,
    auth_yaml: &str,
    deletes: bool,
) -> String {
    let mut y = String::new();
    let _ = write!(
        y,
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {deletes}\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n  cache:\n    blobdescriptor: inmemory\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: atp-testkit-not-a-secret\n",
        storage.display()
    );
    if let Some((crt, key)) = tls {
        let _ = write!(
            y,
            "  tls:\n    certificate: {}\n    key: {}\n",
            crt.display(),
            key.display()
        );
    }
    y.push_str(auth_yaml);
    y
}
