//! [`discover_all`](super::discover_all) and
//! [`discover_cached`](super::discover_cached): the referrers API (unless
//! the run already saw a 404 from it at this registry), else the fallback
//! tag, then cosign's tags; a tag the run's listing does not hold is not
//! asked for (`listing`).

use atp_bundle::Digest;

use super::listing::{self, DiscoveryCache};
use super::wire::{api_index, get_bounded, Api, Got};
use super::{
    cosign_tag, fallback_tag, parse_index, referrer_descriptor, DiscoverOptions, Discovery, Found,
    FoundVia, COSIGN_SUFFIXES, MAX_INDEX_BYTES,
};
use crate::client::Client;
use crate::error::Error;
use crate::manifest::{is_manifest_type, MANIFEST_ACCEPT};
use crate::reference::Repository;

pub(super) async fn discover_in(
    client: &Client,
    repo: &Repository,
    subject: &Digest,
    opts: &DiscoverOptions,
    cache: Option<&DiscoveryCache>,
) -> Result<Discovery, Error> {
    let mut out = Discovery::default();
    let skip = |out: &mut Discovery, why: String| {
        tracing::warn!(repository = %repo, %subject, "skipping referrers: {why}");
        out.skipped.push(why);
    };
    // Whether the tag is there by the run's listing; `None`: ask the tag.
    let has_tag = |tag: String| async move {
        match cache {
            Some(c) => c.has_tag(client, repo, &tag).await,
            None => Ok(None),
        }
    };
    if opts.oci {
        let origin = match cache {
            Some(_) => Some(listing::origin(client, repo)?),
            None => None,
        };
        let api = match (cache, &origin) {
            (Some(c), Some(o)) if c.no_api(o) => Api::Unsupported { not_found: true },
            _ => api_index(client, repo, subject, opts.max_entries).await?,
        };
        if let (Some(c), Some(o), Api::Unsupported { not_found: true }) = (cache, &origin, &api) {
            c.mark_no_api(o);
        }
        let (listed, via) = match api {
            Api::Listed(entries) => (Some(entries), FoundVia::Api),
            Api::Skip(why) => {
                skip(&mut out, why);
                (None, FoundVia::Api)
            }
            Api::Unsupported { .. } => {
                let tag = fallback_tag(subject);
                let got = match has_tag(tag.clone()).await? {
                    Some(false) => Got::Missing,
                    _ => get_bounded(client, repo, &tag, &MANIFEST_ACCEPT).await?,
                };
                match got {
                    Got::Missing => (None, FoundVia::FallbackTag),
                    Got::TooLarge(n) => {
                        skip(
                            &mut out,
                            format!(
                                "{repo}:{tag} is {n} bytes, over the {MAX_INDEX_BYTES} byte limit"
                            ),
                        );
                        (None, FoundVia::FallbackTag)
                    }
                    Got::Body { bytes, media_type } => {
                        match parse_index(&media_type, &bytes, opts.max_entries) {
                            Ok(entries) => (Some(entries), FoundVia::FallbackTag),
                            Err(why) => {
                                skip(&mut out, format!("{repo}:{tag}: {why}"));
                                (None, FoundVia::FallbackTag)
                            }
                        }
                    }
                }
            }
        };
        for d in listed.into_iter().flatten() {
            if !is_manifest_type(&d.media_type) {
                skip(
                    &mut out,
                    format!(
                        "{} has media type {:?}, not a manifest we can carry",
                        d.digest, d.media_type
                    ),
                );
            } else if !out.found.iter().any(|f| f.descriptor.digest == d.digest) {
                out.found.push(Found {
                    descriptor: d,
                    via: via.clone(),
                });
            }
        }
    }
    if opts.cosign {
        for suffix in COSIGN_SUFFIXES {
            let tag = cosign_tag(subject, suffix);
            let by_listing = match has_tag(tag.clone()).await? {
                Some(false) => continue,
                Some(true) => true,
                None => false,
            };
            if !by_listing && client.manifest_exists(repo, &tag).await?.is_none() {
                continue;
            }
            let m = match client.get_manifest(&repo.tag(&tag)?).await {
                // Listed, then deleted: as if a HEAD had found nothing.
                Err(Error::NotFound { .. }) if by_listing => continue,
                other => other?,
            };
            if out.found.iter().any(|f| f.descriptor.digest == m.digest) {
                continue;
            }
            out.found.push(Found {
                descriptor: referrer_descriptor(&m.media_type, &m.bytes)?,
                via: FoundVia::CosignTag(tag),
            });
        }
    }
    Ok(out)
}
