//! The site inventory (`site-inventory.json`, `docs/delta.md`): what a site
//! registry holds, written by `atp-installer inventory` inside the gap and
//! read by `atp-bundler create --site-inventory` outside it, to leave out of
//! the next bundle every layer the site already has.
//!
//! Plain JSON, small, carried across the gap by hand: it must never hold a
//! credential, a host name other than the registry's, or any file content.
//! It is not signed and grants nothing: a digest listed here only lets the
//! bundler omit a layer, and the installer confirms every omitted layer in the
//! registry before it pushes anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::FormatError;
use crate::Digest;

/// Value of `kind`.
pub const INVENTORY_KIND: &str = "atp-offline/site-inventory";
/// Value of `format` written and accepted.
pub const INVENTORY_FORMAT: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteInventory {
    /// Always [`INVENTORY_KIND`].
    pub kind: String,
    /// Always [`INVENTORY_FORMAT`].
    pub format: u32,
    /// The registry this inventory describes (`host[:port]`).
    pub registry: String,
    /// When it was taken, RFC 3339 UTC (`2026-11-26T00:00:00Z`).
    pub created: String,
    /// Every bundle the state dir has a receipt for, on this registry.
    pub bundles: Vec<InventoryBundle>,
    /// Highest sequence installed per channel, among complete bundles.
    pub channels: BTreeMap<String, u64>,
    /// Every config and layer digest confirmed present, sorted.
    pub blobs: Vec<Digest>,
    /// What the receipts promised but the registry no longer has.
    pub gone: Gone,
}

/// One installed bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryBundle {
    /// Digest of the bundle's signed `index.json`.
    pub index: Digest,
    pub name: String,
    pub version: String,
    pub channel: String,
    pub sequence: u64,
    /// Every image of the bundle was found whole (manifests and blobs).
    pub complete: bool,
}

/// What is missing from the registry since it was installed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gone {
    /// `repo@digest` of images whose manifest is no longer there.
    pub images: Vec<String>,
    /// Configs and layers of present manifests that are no longer there.
    pub blobs: Vec<Digest>,
}

impl SiteInventory {
    /// Parse and check `kind` and `format`.
    pub fn parse(bytes: &[u8], document: &str) -> Result<Self, FormatError> {
        let inv: SiteInventory =
            serde_json::from_slice(bytes).map_err(|source| FormatError::Json {
                document: document.to_string(),
                source,
            })?;
        if inv.kind != INVENTORY_KIND || inv.format != INVENTORY_FORMAT {
            return Err(FormatError::Invalid {
                document: document.to_string(),
                reason: format!(
                    "kind {:?} format {} is not a site inventory this version reads ({INVENTORY_KIND:?} format {INVENTORY_FORMAT}); hint: write it with `atp-installer inventory` of the same release",
                    inv.kind, inv.format
                ),
            });
        }
        Ok(inv)
    }

    /// Index digests of the bundles found complete: what a delta built from
    /// this inventory relies on.
    pub fn complete_bundles(&self) -> impl Iterator<Item = &Digest> {
        self.bundles.iter().filter(|b| b.complete).map(|b| &b.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SiteInventory {
        SiteInventory {
            kind: INVENTORY_KIND.into(),
            format: INVENTORY_FORMAT,
            registry: "127.0.0.1:5000".into(),
            created: "2026-11-26T00:00:00Z".into(),
            bundles: vec![InventoryBundle {
                index: Digest::of(b"i"),
                name: "atp".into(),
                version: "1".into(),
                channel: "stable".into(),
                sequence: 1,
                complete: true,
            }],
            channels: [("stable".to_string(), 1)].into(),
            blobs: vec![Digest::of(b"a")],
            gone: Gone::default(),
        }
    }

    #[test]
    fn round_trips_and_refuses_other_kinds() {
        let inv = sample();
        let bytes = serde_json::to_vec(&inv).unwrap();
        assert_eq!(SiteInventory::parse(&bytes, "inv").unwrap(), inv);
        assert_eq!(
            inv.complete_bundles().collect::<Vec<_>>(),
            vec![&Digest::of(b"i")]
        );
        let mut other = serde_json::to_value(&inv).unwrap();
        other["format"] = 2.into();
        let err = SiteInventory::parse(&serde_json::to_vec(&other).unwrap(), "inv").unwrap_err();
        assert!(err.to_string().contains("format 2"), "{err}");
        assert!(SiteInventory::parse(b"{}", "inv").is_err());
    }
}
