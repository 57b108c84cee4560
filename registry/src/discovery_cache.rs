//! What referrer discovery remembers for the rest of one client's run: which
//! registries have no referrers API, and each repository's tags. It lives in
//! the client's shared state (one per client and its clones), so the client
//! needs only this data type; how it is filled and used is
//! `referrers::listing`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// A repository's tags, `None` when they could not be listed.
pub(crate) type Tags = Option<Arc<HashSet<String>>>;

/// What discovery remembers for the rest of a run (see `referrers::listing`).
#[derive(Default)]
pub struct DiscoveryCache {
    /// Registry origins that answered the referrers API with a 404.
    pub(crate) no_api: Mutex<HashSet<String>>,
    /// `origin/name` to its tags, `None` when they could not be listed.
    pub(crate) tags: Mutex<HashMap<String, Arc<OnceCell<Tags>>>>,
}

impl std::fmt::Debug for DiscoveryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryCache").finish_non_exhaustive()
    }
}
