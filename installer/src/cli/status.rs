//! `atp-installer status`: flags, the call to `atp_installer::status`, and
//! the text or JSON it prints. Writes nothing anywhere.

use std::path::PathBuf;

use anyhow::Result;
use atp_installer::site::{Site, SiteCredentials};
use clap::Args;

/// Flags of `atp-installer status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The installer's state dir, whose receipts and events hold the history.
    #[arg(long, value_name = "DIR", default_value = atp_installer::state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Also check that this site registry still holds every image of the current and previous release (HEAD by digest).
    #[arg(long, value_name = "HOST[:PORT]")]
    registry: Option<String>,
    /// Talk plain HTTP to the site registry (TLS is verified otherwise).
    #[arg(long, requires = "registry")]
    plain_http: bool,
    /// CA certificate of the site registry.
    #[arg(long, value_name = "CA.crt", requires = "registry")]
    registry_ca: Option<PathBuf>,
    /// User name for the site registry (the password comes from --password-stdin; without
    /// both, the docker config's credentials are used, if any).
    #[arg(long, value_name = "U", requires_all = ["password_stdin", "registry"])]
    username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, requires = "username")]
    password_stdin: bool,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

/// Exit 0, or 2 when a checked release's images are not all present.
pub fn run(a: StatusArgs) -> Result<i32> {
    let opts = atp_installer::status::StatusOptions {
        state_dir: a.state_dir,
        site: match &a.registry {
            None => None,
            Some(r) => {
                // The same site `install` is given (status takes the flag as optional).
                let mut site = Site::new(r);
                site.plain_http = a.plain_http;
                site.registry_ca = a.registry_ca.clone();
                if let Some(u) = &a.username {
                    let password = atp_cli::password::from_stdin("--password-stdin")?;
                    site.credentials = Some(SiteCredentials::new(u, password));
                }
                Some(site)
            }
        },
    };
    let rt = tokio::runtime::Runtime::new()?;
    let status = rt.block_on(atp_installer::status::status(&opts))?;
    if a.json {
        atp_cli::print_json(&status)?;
    } else {
        print!("{status}");
    }
    let whole = status
        .channels
        .iter()
        .flat_map(|c| &c.registry)
        .all(|r| r.complete);
    Ok(if whole { 0 } else { 2 })
}
