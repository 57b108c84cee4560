//! The disconnected side of ATP Offline: every `atp-installer` operation as a
//! library function, so the CLI in `main.rs` stays a thin wrapper.

pub mod mapping;
pub mod metrics;
pub mod state;
