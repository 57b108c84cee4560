//! `atp-installer mirrors`: its flags, the library's
//! [`atp_installer::mirrors::MirrorsOptions`] (from a bundle) or the state
//! dir's last receipt (`--state-dir`, no bundle), the call and the output.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use atp_cli::mapping::MappingArgs;
use atp_installer::mirrors::{self, MirrorsOptions};
use atp_installer::site::Site;
use clap::Args;

/// Flags of `atp-installer mirrors`.
#[derive(Args)]
pub struct MirrorsArgs {
    /// The bundle: FILE.tar, FILE.tar.zst, FILE.tar.001, FILE.tar.volumes.json or their folder.
    #[arg(value_name = "FILE.tar", required_unless_present = "state_dir")]
    bundle: Option<PathBuf>,
    /// Another folder to look for volumes in (repeatable).
    #[arg(long = "volumes-from", value_name = "DIR", requires = "bundle")]
    volumes_from: Vec<PathBuf>,
    /// The publisher's public key; the bundle must verify against it.
    #[arg(
        long,
        value_name = "PREFIX.pub",
        requires = "bundle",
        required_unless_present = "state_dir"
    )]
    key: Option<PathBuf>,
    /// Instead of a bundle: the last install into --registry that this state dir records (its receipt says where each image went).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["bundle", "repo_prefix", "layout", "mapping_file"])]
    state_dir: Option<PathBuf>,
    /// The site registry the nodes pull from.
    #[arg(long, value_name = "HOST[:PORT]")]
    registry: String,
    /// The site registry speaks plain HTTP (the mirrors are marked so).
    #[arg(long)]
    plain_http: bool,
    /// CA certificate of the site registry (copied next to the node config).
    #[arg(long, value_name = "CA.crt")]
    registry_ca: Option<PathBuf>,
    #[command(flatten)]
    mapping: MappingArgs,
    /// The folder to write (a new one, an empty one, or an earlier output).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

/// Verify the bundle and write the node mirror configuration.
pub fn run(a: MirrorsArgs, quiet: bool) -> Result<i32> {
    let mut site = Site::new(&a.registry);
    site.plain_http = a.plain_http;
    site.registry_ca = a.registry_ca;
    let summary = match (a.state_dir, a.bundle, a.key) {
        (Some(state_dir), _, _) => mirrors::from_receipt(&state_dir, &site, &a.output)?,
        (None, Some(bundle), Some(key)) => {
            if let Some(layout) = a.mapping.layout()? {
                site.layout = layout;
            }
            site.repo_prefix = a.mapping.repo_prefix;
            let opts = MirrorsOptions {
                bundle,
                volumes_from: a.volumes_from,
                key,
                site,
                output: a.output,
            };
            let progress = Arc::new(atp_cli::ui::Ui::new(quiet || a.json));
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(mirrors::mirrors(&opts, progress))?
        }
        (None, _, _) => {
            anyhow::bail!("mirrors needs the bundle and --key PREFIX.pub, or --state-dir DIR")
        }
    };
    if a.json {
        atp_cli::print_json(&summary)?;
        return Ok(0);
    }
    for up in &summary.upstreams {
        println!(
            "{} -> {}/{} ({} image(s))",
            up.host,
            summary.registry,
            up.path,
            up.references.len()
        );
    }
    println!(
        "wrote {} file(s) to {} (see its README.md for where each goes on a node)",
        summary.files.len(),
        summary.output.display()
    );
    Ok(0)
}
