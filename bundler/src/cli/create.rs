//! `atp-bundler create`: flags, the library's `CreateOptions`, the call to
//! `atp_bundler::create` (and `selfcheck` with `--simulate`), the output.
//! Reads the key password from the environment only; never prints it.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

/// Flags of `atp-bundler create`.
#[derive(Args)]
#[command(after_help = "\
Environment:
  ATP_KEY_PASSWORD   password of the signing key (COSIGN_PASSWORD when unset)
  SOURCE_DATE_EPOCH  the time (Unix seconds) recorded in the bundle, for reproducible output
  DOCKER_CONFIG      folder whose config.json has the source registries' credentials")]
pub struct CreateArgs {
    /// The bundle spec: images, overlay, file sets (docs/spec.md).
    #[arg(long, value_name = "SPEC.yaml")]
    spec: PathBuf,
    /// Private key (cosign format or PKCS#8 PEM); password from ATP_KEY_PASSWORD or COSIGN_PASSWORD.
    #[arg(long, value_name = "PREFIX.key")]
    key: PathBuf,
    /// Where to write the bundle (with --split-size, the name its volumes are numbered after).
    #[arg(long, value_name = "FILE.tar")]
    output: PathBuf,
    /// A source registry that speaks plain HTTP (repeatable). Only these hosts get plain HTTP.
    #[arg(long = "plain-http", value_name = "HOST[:PORT]")]
    plain_http: Vec<String>,
    /// Keep only this platform of multi-platform images (repeatable); overrides spec.platforms.
    #[arg(long, value_name = "OS/ARCH")]
    platform: Vec<String>,
    /// Blob downloads in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Cut the output into volumes FILE.tar.001, ... of at most SIZE (4GiB, 700MB, bytes, or fat32), with a signed FILE.tar.volumes.json.
    #[arg(long, value_name = "SIZE")]
    split_size: Option<String>,
    /// Compress as seekable zstd (adds .zst to the output name), or none.
    #[arg(long, value_name = "zstd|none")]
    compress: Option<String>,
    /// Make a delta: leave out every layer this earlier bundle carries (repeatable).
    #[arg(long, value_name = "PREVIOUS.tar")]
    base: Vec<PathBuf>,
    /// Make a delta: leave out every layer `atp-installer inventory` found at the site (repeatable).
    #[arg(long, value_name = "site-inventory.json")]
    site_inventory: Vec<PathBuf>,
    /// Right after writing, prove the bundle self-sufficient: its overlay renders from its own
    /// tree, every image it uses is carried, nothing points outside it. Needs a single plain tar.
    #[arg(long, conflicts_with_all = ["split_size", "compress"])]
    simulate: bool,
    /// Copy this installer binary (dist/atp-installer from `make release`) beside the bundle;
    /// it is listed in a signed volumes.json (beside a plain tar too), and verify-media checks it.
    #[arg(long, value_name = "PATH")]
    with_installer: Option<PathBuf>,
    /// Which artifacts that refer to the images to carry (signatures, attestations, SBOMs);
    /// overrides spec.referrers.mode [default: all].
    #[arg(long, value_enum, value_name = "all|signatures|none")]
    referrers: Option<atp_bundler::spec::ReferrerMode>,
    #[arg(long, help = atp_cli::args::JSON_HELP)]
    json: bool,
}

/// `SOURCE_DATE_EPOCH`, if set and not empty.
fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => {
            Ok(Some(v.parse::<i64>().with_context(|| {
                format!("SOURCE_DATE_EPOCH={v:?} is not a number")
            })?))
        }
        _ => Ok(None),
    }
}

pub fn run(a: CreateArgs, quiet: bool) -> Result<()> {
    let media = atp_bundler::media::options(a.split_size.as_deref(), a.compress.as_deref())?;
    let opts = atp_bundler::create::CreateOptions {
        spec: a.spec,
        key: a.key,
        password: atp_bundle::keys::password_from_env().unwrap_or_default(),
        output: a.output,
        plain_http: a.plain_http,
        platforms: a.platform,
        concurrency: a.concurrency,
        source_date_epoch: source_date_epoch()?,
        delta: atp_bundler::delta::DeltaSources {
            bases: a.base,
            inventories: a.site_inventory,
        },
        media,
        installer: a.with_installer,
        referrers: a.referrers,
    };
    let progress = Arc::new(atp_cli::ui::Ui::new(quiet || a.json));
    let rt = tokio::runtime::Runtime::new()?;
    let summary = rt.block_on(atp_bundler::create::create(&opts, progress))?;
    let check = match a.simulate {
        true => Some(atp_bundler::selfcheck::after_create(
            &opts.spec,
            &summary.output,
        )?),
        false => None,
    };
    if a.json {
        let mut v = serde_json::to_value(&summary)?;
        if let Some(c) = &check {
            v["selfcheck"] = serde_json::to_value(c)?;
        }
        atp_cli::print_json(&v)?;
    } else {
        print!("{}", written_text(&summary));
        if summary.omitted > 0 {
            println!(
                "delta: {} layer(s), {} bytes left out (the site has them)",
                summary.omitted, summary.omitted_bytes
            );
        }
        if let Some(i) = &summary.installer {
            let how = match summary.media {
                Some(_) => "listed in the signed volumes.json",
                None => "check it with the release's signed SHA256SUMS",
            };
            println!("installer {} ({how})", i.display());
        }
    }
    // Where the time went, for CI logs (also `timings_ms` in --json).
    if !quiet {
        tracing::info!("create took {}", summary.timings.to_line());
    }
    if let Some(c) = check {
        if !a.json {
            print!("{}", c.to_text());
        }
        if !c.ok {
            anyhow::bail!(
                "{} was written but is not self-sufficient:\n{}\nhint: do not ship it; add the missing images to spec.images and vendor remote kustomize bases into the tree",
                c.bundle.display(),
                c.findings.iter().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n")
            );
        }
    }
    Ok(())
}

/// What `create` wrote, as the user sees it: each file written with its own
/// size on disk; the bundle's own (tar) size is said as that.
fn written_text(summary: &atp_bundler::create::CreateSummary) -> String {
    let referrers: usize = summary.images.iter().map(|i| i.referrers).sum();
    let contents = format!(
        "{} blobs, {} images, {}{} files",
        summary.blobs,
        summary.images.len(),
        match referrers {
            0 => String::new(),
            n => format!("{n} referrers (signatures, attestations, SBOMs), "),
        },
        summary.files
    );
    let Some(m) = &summary.media else {
        return format!(
            "wrote {} ({} bytes, {contents})\nindex {}\n",
            summary.output.display(),
            summary.size,
            summary.index_digest
        );
    };
    let zstd = match m.file.compression {
        atp_bundle::media::Compression::ZstdSeekable => "zstd-compressed ",
        atp_bundle::media::Compression::None => "",
    };
    let inside = format!("the {zstd}bundle of {} bytes: {contents}", m.tar_size);
    let sizes = m.file.volumes.iter().map(|v| v.size);
    let mut out = match m.volumes.as_slice() {
        [one] => format!(
            "wrote {} ({} bytes, {inside})\n",
            one.display(),
            m.stream_size
        ),
        many => {
            let mut s = format!(
                "wrote {} volumes, {} bytes in all ({inside})\n",
                many.len(),
                m.stream_size
            );
            for (v, size) in many.iter().zip(sizes) {
                s.push_str(&format!("volume {} ({size} bytes)\n", v.display()));
            }
            s
        }
    };
    out.push_str(&format!(
        "and {} with its signature {}: verify and install take any of these files\nindex {}\n",
        m.volumes_json.display(),
        m.signature.display(),
        summary.index_digest
    ));
    out
}
