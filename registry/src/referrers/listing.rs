//! What one run of discovery learns once and asks no more (issue 21): which
//! registries have no referrers API (they answered its first page with a
//! plain 404), and each repository's tags (`GET /v2/<name>/tags/list`,
//! every `Link: rel="next"` page, same origin only, bounded), so that only
//! the fallback and cosign tags that exist are fetched, instead of a HEAD
//! for each of them for every subject.
//!
//! A listing that is refused, fails, leaves the origin or runs past
//! [`MAX_TAGS`] / [`MAX_LIST_BYTES`] / [`MAX_LIST_PAGES`] is not used: that
//! repository's tags are asked one by one, as without a cache. Nothing but a
//! clear 404 marks a registry as without the API. One [`DiscoveryCache`]
//! belongs to one [`Client`] ([`DiscoveryCache::of`]), which is one run of
//! `create` or `sync`; a tag pushed during the run is not seen by it.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use super::wire::{get_url, Got};
use crate::client::Client;
pub use crate::discovery_cache::DiscoveryCache;
use crate::discovery_cache::Tags;
use crate::error::Error;
use crate::reference::Repository;

/// A repository listing more tags than this is not used.
pub const MAX_TAGS: usize = 100_000;
/// A listing whose pages add up to more bytes than this is not used.
pub const MAX_LIST_BYTES: u64 = 16 << 20;
/// A listing with more pages than this is not used.
pub const MAX_LIST_PAGES: usize = 1_000;

impl DiscoveryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cache of `client`'s run: the same one for every clone of it (it
    /// lives in the client), for as long as it lives.
    pub fn of(client: &Client) -> Arc<Self> {
        client.inner.discovery.clone()
    }

    /// Whether `origin` answered the referrers API with a 404 in this run.
    pub(super) fn no_api(&self, origin: &str) -> bool {
        self.no_api
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(origin)
    }

    pub(super) fn mark_no_api(&self, origin: &str) {
        tracing::debug!(%origin, "no referrers API (404): the fallback tag schema for this run");
        self.no_api
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(origin.to_string());
    }

    /// Whether `repo` has the tag `tag`, from its listing (made once), or
    /// `None` when it could not be listed: ask the tag itself.
    pub(super) async fn has_tag(
        &self,
        client: &Client,
        repo: &Repository,
        tag: &str,
    ) -> Result<Option<bool>, Error> {
        let key = format!("{}/{}", origin(client, repo)?, repo.name());
        let cell = self
            .tags
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let tags = cell.get_or_init(|| list_tags(client, repo)).await;
        Ok(tags.as_ref().map(|t| t.contains(tag)))
    }
}

/// The origin of `repo`'s registry, the key of what is learned about it.
pub(super) fn origin(client: &Client, repo: &Repository) -> Result<String, Error> {
    Ok(client.registry(repo)?.base.origin().ascii_serialization())
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// Every tag of `repo`, or `None` (logged) when it cannot be listed within
/// the bounds.
async fn list_tags(client: &Client, repo: &Repository) -> Tags {
    match list_tags_bounded(client, repo).await {
        Ok(tags) => Some(Arc::new(tags)),
        Err(why) => {
            tracing::debug!(repository = %repo, "tags not listed, asking each tag: {why}");
            None
        }
    }
}

async fn list_tags_bounded(client: &Client, repo: &Repository) -> Result<HashSet<String>, String> {
    let reg = client.registry(repo).map_err(|e| e.to_string())?;
    let mut url = reg.url(repo, "tags/list");
    let mut tags = HashSet::new();
    let mut bytes_read = 0u64;
    for _ in 0..MAX_LIST_PAGES {
        let (got, next, _) = get_url(client, repo, &url, "application/json")
            .await
            .map_err(|e| e.to_string())?;
        let bytes = match got {
            Got::Body { bytes, .. } => bytes,
            Got::Missing => return Err(format!("{url} answered 404")),
            Got::TooLarge(n) => return Err(format!("{url} is {n} bytes")),
        };
        bytes_read += bytes.len() as u64;
        if bytes_read > MAX_LIST_BYTES {
            return Err(format!("over {MAX_LIST_BYTES} bytes of tags"));
        }
        let page: TagList =
            serde_json::from_slice(&bytes).map_err(|e| format!("{url}: not a tag list: {e}"))?;
        tags.extend(page.tags.unwrap_or_default());
        if tags.len() > MAX_TAGS {
            return Err(format!("over {MAX_TAGS} tags"));
        }
        match next {
            Some(n) if n.origin() == reg.base.origin() => url = n,
            Some(n) => return Err(format!("the next page {n} is on another host")),
            None => return Ok(tags),
        }
    }
    Err(format!("over {MAX_LIST_PAGES} pages of tags"))
}
