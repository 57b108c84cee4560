//! Where images come from: registries, OCI layouts on disk and `docker save`
//! archives. Local sources are only read, never written.

pub mod docker_archive;
pub mod oci_layout;
