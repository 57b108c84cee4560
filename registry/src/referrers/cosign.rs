//! A carried cosign tag (`sha256-<hex>.sig`, `.att`, `.sbom`) at the site,
//! merged the way cosign itself adds a signature: when the site's tag holds
//! another cosign manifest whose layers have the carried layers' media type,
//! the tag gets a manifest with the site's layers in their order, then each
//! carried layer not already there (by digest), and a config as cosign
//! writes it (one `rootfs.diff_ids` and one `history` entry per layer). The
//! site's own signature stays, and ours joins it.
//!
//! [`merge_cosign_manifest`] is pure; [`plan_cosign_tag`] reads the tag
//! (GET only) and decides; [`update_cosign_tag`] writes: the new config blob,
//! then one manifest PUT under the tag, and nothing when every carried layer
//! is already there. The carried manifest must already be in the repository
//! by digest (so are its layers). Anything else under the tag (another layer
//! media type, not an image manifest, over [`MAX_INDEX_BYTES`]) is not ours
//! to replace: an error naming the tag, and the tag is left as it is.

use atp_bundle::format::media;
use atp_bundle::Digest;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::wire::{get_bounded, Got};
use super::MAX_INDEX_BYTES;
use crate::client::Client;
use crate::error::Error;
use crate::manifest::MANIFEST_ACCEPT;
use crate::reference::Repository;

/// The config media type of a merged manifest whose site config had none.
const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A merged cosign manifest: its bytes and media type, and the config blob
/// it names (to push first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub manifest: Vec<u8>,
    pub media_type: String,
    pub config: Vec<u8>,
    /// How many layers it has (the site's, then the carried ones added).
    pub layers: usize,
}

/// What to do with a carried cosign tag at the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CosignPlan {
    /// The tag is not there: put the carried manifest under it.
    Write,
    /// The tag already holds the carried manifest, or every carried layer.
    Unchanged,
    /// The tag holds another cosign manifest: put this merge under it.
    Merge(Merged),
}

/// What [`update_cosign_tag`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CosignUpdate {
    Written(Digest),
    Unchanged,
    Merged { digest: Digest, layers: usize },
}

/// The layers of a cosign manifest, all of one media type, or why not.
fn cosign_layers(m: &Value) -> Result<(&Vec<Value>, &str), String> {
    if m["schemaVersion"] != 2 {
        return Err(format!("schemaVersion is {}", m["schemaVersion"]));
    }
    let layers = m["layers"]
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or("it has no layers")?;
    let mt = layers[0]["mediaType"]
        .as_str()
        .ok_or("a layer has no mediaType")?;
    for l in layers {
        if l["mediaType"] != mt {
            return Err(format!(
                "its layers mix media types ({mt:?} and {})",
                l["mediaType"]
            ));
        }
        if l["digest"]
            .as_str()
            .and_then(|d| d.parse::<Digest>().ok())
            .is_none()
        {
            return Err("a layer has no valid digest".into());
        }
    }
    Ok((layers, mt))
}

/// The config cosign writes for these layers (their digests as diff IDs:
/// cosign's layers are stored uncompressed).
pub fn cosign_config(layers: &[Value]) -> Vec<u8> {
    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let history: Vec<Value> = layers
        .iter()
        .map(|_| json!({"created": "0001-01-01T00:00:00Z"}))
        .collect();
    serde_json::to_vec(&json!({
        "architecture": "",
        "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": history,
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("a JSON value serializes")
}

/// Merge `carried` into the site's manifest `site` (media type
/// `site_media_type`, sniffed when empty): `Ok(None)` when every carried
/// layer is already there, the merge otherwise, and `Err(reason)` when the
/// site's manifest is not a cosign manifest with the carried layers' media
/// type (it is not ours to replace).
pub fn merge_cosign_manifest(
    site: &[u8],
    site_media_type: &str,
    carried: &[u8],
) -> Result<Option<Merged>, String> {
    let media_type = if site_media_type.is_empty() {
        crate::manifest::sniff_media_type(site).unwrap_or_default()
    } else {
        site_media_type.to_string()
    };
    if media_type != media::OCI_MANIFEST && media_type != media::DOCKER_MANIFEST {
        return Err(format!("it is {media_type:?}, not an image manifest"));
    }
    let mut m: Map<String, Value> = serde_json::from_slice(site)
        .map_err(|e| format!("it does not parse as an image manifest: {e}"))?;
    let c: Value = serde_json::from_slice(carried)
        .map_err(|e| format!("the carried manifest does not parse: {e}"))?;
    let site_value = Value::Object(m.clone());
    let (have, site_mt) = cosign_layers(&site_value)?;
    let (add, carried_mt) = cosign_layers(&c).map_err(|e| format!("the carried manifest: {e}"))?;
    if site_mt != carried_mt {
        return Err(format!(
            "its layers are {site_mt:?}, the carried ones {carried_mt:?}"
        ));
    }
    let mut layers = have.clone();
    for l in add {
        if !layers.iter().any(|h| h["digest"] == l["digest"]) {
            layers.push(l.clone());
        }
    }
    if layers.len() == have.len() {
        return Ok(None);
    }
    let config = cosign_config(&layers);
    let config_type = site_value["config"]["mediaType"]
        .as_str()
        .unwrap_or(IMAGE_CONFIG)
        .to_string();
    m.insert(
        "config".into(),
        json!({
            "mediaType": config_type,
            "digest": Digest::of(&config).to_string(),
            "size": config.len(),
        }),
    );
    let n = layers.len();
    m.insert("layers".into(), Value::Array(layers));
    Ok(Some(Merged {
        manifest: serde_json::to_vec(&Value::Object(m)).expect("a JSON value serializes"),
        media_type,
        config,
        layers: n,
    }))
}

fn refused(repo: &Repository, tag: &str, reason: String) -> Error {
    Error::InvalidManifest {
        context: format!("the cosign tag {repo}:{tag}"),
        reason: format!(
            "{reason}; it was left as it is\nhint: another tool wrote something other than a cosign manifest under this tag; inspect it, and delete it if nothing needs it, then run again"
        ),
    }
}

/// Read the site's `tag` (GET only) and decide what [`update_cosign_tag`]
/// would do with the carried manifest `carried`.
pub async fn plan_cosign_tag(
    client: &Client,
    repo: &Repository,
    tag: &str,
    carried: &[u8],
) -> Result<CosignPlan, Error> {
    match get_bounded(client, repo, tag, &MANIFEST_ACCEPT).await? {
        Got::Missing => Ok(CosignPlan::Write),
        Got::TooLarge(n) => Err(refused(
            repo,
            tag,
            format!("it is {n} bytes, over the {MAX_INDEX_BYTES} byte limit"),
        )),
        Got::Body { bytes, .. } if bytes == carried => Ok(CosignPlan::Unchanged),
        Got::Body { bytes, media_type } => {
            match merge_cosign_manifest(&bytes, &media_type, carried) {
                Ok(Some(m)) => Ok(CosignPlan::Merge(m)),
                Ok(None) => Ok(CosignPlan::Unchanged),
                Err(reason) => Err(refused(repo, tag, reason)),
            }
        }
    }
}

/// Put the carried cosign manifest (already in `repo` by digest) under
/// `tag`, merged with what the site has there (see the module doc).
pub async fn update_cosign_tag(
    client: &Client,
    repo: &Repository,
    tag: &str,
    carried: &[u8],
    carried_media_type: &str,
) -> Result<CosignUpdate, Error> {
    match plan_cosign_tag(client, repo, tag, carried).await? {
        CosignPlan::Unchanged => Ok(CosignUpdate::Unchanged),
        CosignPlan::Write => Ok(CosignUpdate::Written(
            client
                .push_manifest(repo, tag, carried, carried_media_type)
                .await?,
        )),
        CosignPlan::Merge(m) => {
            let config = Bytes::from(m.config.clone());
            let d = Digest::of(&config);
            client
                .push_blob(repo, &d, config.len() as u64, &config, &[])
                .await?;
            let digest = client
                .push_manifest(repo, tag, &m.manifest, &m.media_type)
                .await?;
            Ok(CosignUpdate::Merged {
                digest,
                layers: m.layers,
            })
        }
    }
}
