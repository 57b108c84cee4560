//! A bundle's file sets (model files), served as the OCI artifacts that
//! `install --files-to-registry` would push: the same mapping
//! ([`crate::files::map_sets`], with the images), the same walk, so an ORAS
//! client pulls a set from `serve` as it would from the site registry.
//!
//! Only reads the verified bundle (manifests hashed again by
//! [`crate::verified::VerifiedBundle::read`]); never writes files anywhere.

use std::collections::HashSet;

use atp_registry::copy::{self, ImageCopy};

use crate::files::{self, FilesError};
use crate::site::Site;
use crate::verified::VerifiedBundle;

/// One copy per file set, under the repository install would push it to.
pub fn set_copies(site: &Site, bundle: &VerifiedBundle) -> Result<Vec<ImageCopy>, FilesError> {
    let read = |d: &atp_bundle::Digest| bundle.read_text_err(d);
    let sets = files::file_sets(&bundle.report, &read)?;
    let none = HashSet::new();
    let mut copies = Vec::new();
    for (set, (src, target)) in sets
        .iter()
        .zip(files::map_sets(site, &bundle.report, &sets)?)
    {
        let walked = copy::walk_image(
            &set.reference,
            &set.descriptor,
            &mut |d| bundle.read_text_err(&d.digest),
            &none,
        )?;
        copies.push(ImageCopy {
            source: set.reference.clone(),
            target,
            tag: src.tag.clone(),
            root: set.descriptor.clone(),
            manifests: walked.manifests,
            blobs: walked.blobs,
        });
    }
    Ok(copies)
}
