//! `atp-installer status`: flags, the call to `atp_installer::status`, and
//! the text or JSON it prints. Writes nothing anywhere. Also the optional
//! site-registry flags ([`OptionalSiteArgs`]) that status and
//! `uninstall --prune-registry` take.

use std::path::PathBuf;

use anyhow::Result;
use atp_installer::site::{Site, SiteCredentials};
use clap::Args;

/// The site registry, for commands that work without one too. The same
/// flags as install's, with `--registry` optional.
#[derive(Args)]
pub struct OptionalSiteArgs {
    /// The site registry (HEAD requests only for status; manifest deletes for uninstall --prune-registry).
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
}

impl OptionalSiteArgs {
    /// The site registry, if `--registry` was given (the password read
    /// from stdin).
    pub fn site(&self) -> Result<Option<Site>> {
        let Some(r) = &self.registry else {
            return Ok(None);
        };
        let mut site = Site::new(r);
        site.plain_http = self.plain_http;
        site.registry_ca = self.registry_ca.clone();
        if let Some(u) = &self.username {
            let password = atp_cli::password::from_stdin("--password-stdin")?;
            site.credentials = Some(SiteCredentials::new(u, password));
        }
        Ok(Some(site))
    }
}

/// Flags of `atp-installer status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The installer's state dir, whose receipts and events hold the history.
    #[arg(long, value_name = "DIR", default_value = atp_installer::state::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// With --registry: check that it still holds every image of the current and previous release.
    #[command(flatten)]
    site: OptionalSiteArgs,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

/// Exit 0, or 2 when a checked release's images are not all present.
pub fn run(a: StatusArgs) -> Result<i32> {
    let opts = atp_installer::status::StatusOptions {
        state_dir: a.state_dir,
        site: a.site.site()?,
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
