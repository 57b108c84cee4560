//! The site-registry flags shared by install, simulate and inventory, and
//! the [`Site`] they describe. The password comes from standard input only.

use std::path::PathBuf;

use anyhow::Result;
use atp_installer::site::{Site, SiteCredentials};
use clap::Args;

/// The site registry and how to reach it.
#[derive(Args)]
pub struct SiteArgs {
    /// The site registry.
    #[arg(long, value_name = "HOST[:PORT]")]
    registry: String,
    /// Talk plain HTTP to the site registry (TLS is verified otherwise).
    #[arg(long)]
    plain_http: bool,
    /// CA certificate of the site registry (also shipped to the cluster as the registry-certs secret).
    #[arg(long, value_name = "CA.crt")]
    registry_ca: Option<PathBuf>,
    /// User name for the site registry (the password comes from --password-stdin; without
    /// both, the docker config's credentials are used, if any).
    #[arg(long, value_name = "U", requires = "password_stdin")]
    username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
}

impl SiteArgs {
    /// The site registry with these flags (the password read from stdin).
    pub fn site(&self, concurrency: usize) -> Result<Site> {
        let mut site = Site::new(&self.registry);
        site.plain_http = self.plain_http;
        site.registry_ca = self.registry_ca.clone();
        site.credentials = match (&self.username, self.password_stdin) {
            (Some(u), true) => Some(SiteCredentials::new(
                u,
                atp_cli::password::from_stdin("--password-stdin")?,
            )),
            _ => None,
        };
        site.concurrency = concurrency;
        Ok(site)
    }
}
