//! The air-gap gate: every image field of the rendered output must point at
//! the site registry, be pinned by digest, and exist there. Anything else is
//! listed by object and field, and nothing is applied.
//!
//! Right after install's copy, what the copy just wrote or found in place
//! (the registry's own answer, moments ago) is not asked about again
//! ([`Presence::Copied`]); every other image is.

use std::collections::{BTreeMap, HashSet};

use atp_bundle::kustomize::{self, ExtraField};
use atp_bundle::Digest;
use atp_registry::{Client, Repository};
use serde::Serialize;

/// One image field that would reach outside the site registry.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Offence {
    pub object: String,
    pub field: String,
    pub image: String,
    pub problem: String,
}

impl std::fmt::Display for Offence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {:?} {}",
            self.object, self.field, self.image, self.problem
        )
    }
}

/// How the gate decides that a manifest is present.
pub enum Presence<'a> {
    /// Ask the registry (HEAD).
    Registry(&'a Client),
    /// Trust this set of `repo@digest` (a simulation: registry or bundle has it).
    Known(&'a HashSet<(String, Digest)>),
    /// Right after a copy: what `placed` names (the manifests the copy just
    /// wrote, or found in place by the registry's answer) is there without
    /// asking again; anything else is asked (HEAD).
    Copied {
        client: &'a Client,
        placed: &'a HashSet<(String, Digest)>,
    },
}

/// HEAD `repo@digest` in `registry`: there, not there, or why not known.
async fn head(
    client: &Client,
    registry: &str,
    repo: &str,
    digest: &Digest,
) -> Result<bool, String> {
    let r = Repository::new(registry, repo).map_err(|e| e.to_string())?;
    client
        .manifest_exists(&r, &digest.to_string())
        .await
        .map(|d| d.is_some())
        .map_err(|e| e.to_string())
}

/// Check every image field in `rendered` (YAML) against `registry`.
pub async fn check(
    rendered: &str,
    registry: &str,
    extra: &[ExtraField],
    presence: Presence<'_>,
) -> Result<Vec<Offence>, kustomize::RenderError> {
    let objects = kustomize::parse_objects(rendered, std::path::Path::new("rendered.yaml"))?;
    let uses = kustomize::image_uses(&objects, extra);
    let mut offences = Vec::new();
    let mut cache: BTreeMap<(String, String), Result<bool, String>> = BTreeMap::new();
    let prefix = format!("{registry}/");
    for u in uses {
        let offend = |problem: String| Offence {
            object: u.object.to_string(),
            field: u.field.clone(),
            image: u.image.clone(),
            problem,
        };
        let Some(rest) = u.image.strip_prefix(&prefix) else {
            offences.push(offend(format!(
                "does not point at the site registry {registry}"
            )));
            continue;
        };
        let Some((repo, digest)) = rest.split_once('@') else {
            offences.push(offend("is not pinned by digest".into()));
            continue;
        };
        let repo = repo.split(':').next().unwrap_or(repo).to_string();
        let Ok(digest) = digest.parse::<Digest>() else {
            offences.push(offend("has an invalid digest".into()));
            continue;
        };
        let key = (repo.clone(), digest.to_string());
        if !cache.contains_key(&key) {
            let present = match &presence {
                Presence::Known(set) => Ok(set.contains(&(repo.clone(), digest.clone()))),
                Presence::Registry(client) => head(client, registry, &repo, &digest).await,
                Presence::Copied { placed, .. }
                    if placed.contains(&(repo.clone(), digest.clone())) =>
                {
                    Ok(true)
                }
                Presence::Copied { client, .. } => head(client, registry, &repo, &digest).await,
            };
            cache.insert(key.clone(), present);
        }
        match &cache[&key] {
            Ok(true) => {}
            Ok(false) => offences.push(offend("is not in the site registry".into())),
            Err(e) => offences.push(offend(format!("could not be checked: {e}"))),
        }
    }
    Ok(offences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_every_offending_field() {
        let d = Digest::of(b"m");
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: a, namespace: n}}\nspec:\n  template:\n    spec:\n      containers:\n      - {{name: ok, image: 'reg:5000/x/y@{d}'}}\n      - {{name: ext, image: 'docker.io/evil/miner:1'}}\n      - {{name: tag, image: 'reg:5000/x/y:1'}}\n      - {{name: gone, image: 'reg:5000/x/z@{d}'}}\n"
        );
        let known: HashSet<(String, Digest)> = [("x/y".to_string(), d.clone())].into();
        let off = check(&yaml, "reg:5000", &[], Presence::Known(&known))
            .await
            .unwrap();
        let got: Vec<(&str, &str)> = off
            .iter()
            .map(|o| (o.field.as_str(), o.problem.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "spec.template.spec.containers[1].image",
                    "does not point at the site registry reg:5000"
                ),
                (
                    "spec.template.spec.containers[2].image",
                    "is not pinned by digest"
                ),
                (
                    "spec.template.spec.containers[3].image",
                    "is not in the site registry"
                ),
            ]
        );
        assert!(off[0].to_string().starts_with("Deployment/n/a "));
    }

    #[tokio::test]
    async fn after_a_copy_only_what_it_did_not_place_is_asked_about() {
        // Nothing listens on port 9: a request would fail, and say so.
        let mut opts = atp_registry::ClientOptions::default();
        opts.retry.max_retries = 0;
        opts.registries.insert(
            "127.0.0.1:9".into(),
            atp_registry::RegistryConfig {
                plain_http: true,
                ..Default::default()
            },
        );
        let client = Client::new(opts).unwrap();
        let d = Digest::of(b"m");
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: n}}\nspec:\n  containers:\n  - {{name: placed, image: '127.0.0.1:9/x/y@{d}'}}\n  - {{name: other, image: '127.0.0.1:9/x/z@{d}'}}\n"
        );
        let placed: HashSet<(String, Digest)> = [("x/y".to_string(), d.clone())].into();
        let presence = Presence::Copied {
            client: &client,
            placed: &placed,
        };
        let off = check(&yaml, "127.0.0.1:9", &[], presence).await.unwrap();
        assert_eq!(off.len(), 1, "{off:?}");
        assert_eq!(off[0].field, "spec.containers[1].image");
        assert!(
            off[0].problem.starts_with("could not be checked"),
            "{off:?}"
        );
    }
}
