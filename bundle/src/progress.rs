//! Progress reporting as a trait, so libraries report and binaries decide how
//! to show it (indicatif bars on a TTY, plain periodic lines otherwise, nothing
//! in tests). Implementations must be cheap: `advance` is called per chunk.

/// Receives progress events from long operations.
pub trait Progress: Send + Sync {
    /// A new phase begins (`"verify"`, `"push"`, ...), with its totals when known.
    fn phase(&self, _name: &str, _total_bytes: u64, _total_items: u64) {}
    /// Bytes moved within the current phase.
    fn advance(&self, _bytes: u64) {}
    /// One item (blob, image, file) of the current phase is done.
    fn item_done(&self, _name: &str) {}
    /// The current phase ended.
    fn finish_phase(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
