//! The ATP Offline bundle format: one signed, content-addressed tar that holds
//! an OCI image layout. See `docs/bundle-format.md` for the specification.

pub mod digest;

pub use digest::Digest;
