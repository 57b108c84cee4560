//! Deleting a manifest by digest (`DELETE /v2/<repo>/manifests/<digest>`,
//! `delete`-scoped), for `atp-installer uninstall --prune-registry`.
//!
//! Only ever by digest, never by tag, and never a blob: the registry removes
//! the tags that point at the manifest, and its garbage collection frees the
//! layers. A registry that does not allow deletes says so with 405; that is
//! an answer, not an error.

use atp_bundle::Digest;
use reqwest::{Method, StatusCode};

use crate::auth::Scope;
use crate::client::{unexpected, Client, ReqBody};
use crate::error::Error;
use crate::reference::Repository;

/// What a manifest `DELETE` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// The registry accepted the delete (202).
    Deleted,
    /// Nothing there (404).
    NotFound,
    /// The registry does not allow deletes (405; distribution's
    /// `storage.delete.enabled: false`).
    Unsupported,
}

impl Client {
    /// Delete the manifest `digest` of `repo`.
    pub async fn delete_manifest(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Deleted, Error> {
        let reg = self.registry(repo)?;
        let url = reg.url(repo, &format!("manifests/{digest}"));
        let resp = self
            .send(
                &reg,
                Method::DELETE,
                &url,
                Default::default(),
                ReqBody::Empty,
                &Scope::delete(repo.name()),
            )
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(Deleted::Deleted),
            StatusCode::NOT_FOUND => Ok(Deleted::NotFound),
            StatusCode::METHOD_NOT_ALLOWED => Ok(Deleted::Unsupported),
            _ => Err(unexpected(&Method::DELETE, &url, resp).await),
        }
    }
}
