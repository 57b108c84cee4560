//! Prove push permission without pushing: open a blob upload session with a
//! push-scoped request (`POST /v2/<repo>/blobs/uploads/`, which runs the
//! registry's real auth, TLS and authorization path) and cancel it at once
//! (`DELETE` on the session's `Location`, with a `delete`-scoped token under
//! token auth, as distribution requires; where that is refused the session is
//! left for the registry's upload purging, and the caller is told).
//!
//! Never sends a byte of blob data, never commits an upload, never touches a
//! manifest or tag. The only trace on the registry is a cancelled session.

use reqwest::header::{CONTENT_LENGTH, LOCATION};
use reqwest::{Method, StatusCode};

use crate::auth::Scope;
use crate::client::{header_map, resp_header, unexpected, Client, ReqBody};
use crate::error::Error;
use crate::reference::Repository;

/// What [`Client::probe_push`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushProbe {
    /// The registry accepted a push-scoped upload request for the repository.
    pub allowed: bool,
    /// The session was cancelled with `DELETE` (false: the registry refused
    /// the cancel; it drops stale sessions itself).
    pub cancelled: bool,
}

impl Client {
    /// Ask whether we may push to `repo`: open an upload session, then
    /// cancel it. `Ok(allowed: false)` for 403/`DENIED`; errors for TLS,
    /// authentication and transport failures, as for any other request.
    pub async fn probe_push(&self, repo: &Repository) -> Result<PushProbe, Error> {
        let reg = self.registry(repo)?;
        let scope = Scope::push(repo.name());
        let url = reg.url(repo, "blobs/uploads/");
        let resp = self
            .send(
                &reg,
                Method::POST,
                &url,
                header_map(&[(CONTENT_LENGTH, "0")]),
                ReqBody::Empty,
                &scope,
            )
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED => {}
            StatusCode::FORBIDDEN => {
                return Ok(PushProbe {
                    allowed: false,
                    cancelled: false,
                })
            }
            _ => return Err(unexpected(&Method::POST, &url, resp).await),
        }
        let Some(loc) = resp_header(&resp, LOCATION) else {
            return Err(Error::Protocol {
                url: url.to_string(),
                reason: "upload response has no Location".into(),
            });
        };
        let session = reg.resolve_location(&url, &loc)?;
        let cancelled = match self
            .send(
                &reg,
                Method::DELETE,
                &session,
                Default::default(),
                ReqBody::Empty,
                &Scope::delete(repo.name()),
            )
            .await
        {
            Ok(r) => r.status().is_success(),
            Err(e) => {
                tracing::warn!(url = %session, "could not cancel the probe upload session: {e}");
                false
            }
        };
        Ok(PushProbe {
            allowed: true,
            cancelled,
        })
    }
}
