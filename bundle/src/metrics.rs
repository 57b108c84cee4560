//! Prometheus text-format pieces shared by both binaries: the image sync
//! duration histogram (`onprem_image_sync_duration_seconds`, buckets and
//! rendering) and an atomic file write for node_exporter textfiles.
//!
//! Renders only what it is given: labels are escaped and never carry
//! secrets; a textfile is never left half-written under its final name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The histogram of seconds spent syncing one image to a target registry.
pub const IMAGE_SYNC_SECONDS: &str = "onprem_image_sync_duration_seconds";

/// Upper bounds (seconds) of the image sync duration histogram.
pub const BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// One histogram series: cumulative bucket counts (same order as
/// [`BUCKETS`]), sum and count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub buckets: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if self.buckets.len() != BUCKETS.len() {
            self.buckets = vec![0; BUCKETS.len()];
        }
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// Append the `onprem_image_sync_duration_seconds` family (HELP, TYPE and one
/// series per image label) to `out`.
pub fn render_image_sync(out: &mut String, series: &BTreeMap<String, Histogram>) {
    let name = IMAGE_SYNC_SECONDS;
    let _ = writeln!(
        out,
        "# HELP {name} Time to sync one image to the target registry.\n# TYPE {name} histogram"
    );
    for (image, h) in series {
        let label = escape_label(image);
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{image=\"{label}\",le=\"{le}\"}} {}",
                h.buckets.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{image=\"{label}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "{name}_sum{{image=\"{label}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{image=\"{label}\"}} {}", h.count);
    }
}

/// Escape a label value for the text exposition format.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Write `bytes` to `path` through a temp file in the same folder, fsync, and
/// rename, with the given mode from the start (so a secret is never readable
/// by others, even briefly).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".atp-tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_per_image_with_escaped_labels() {
        let mut series = BTreeMap::new();
        let h: &mut Histogram = series.entry("reg/a\"b".to_string()).or_default();
        h.observe(0.3);
        h.observe(20.0);
        let mut s = String::new();
        render_image_sync(&mut s, &series);
        assert!(s.starts_with("# HELP onprem_image_sync_duration_seconds "));
        assert!(s.contains(
            "onprem_image_sync_duration_seconds_bucket{image=\"reg/a\\\"b\",le=\"0.25\"} 0\n"
        ));
        assert!(s.contains(
            "onprem_image_sync_duration_seconds_bucket{image=\"reg/a\\\"b\",le=\"0.5\"} 1\n"
        ));
        assert!(s.contains(
            "onprem_image_sync_duration_seconds_bucket{image=\"reg/a\\\"b\",le=\"30\"} 2\n"
        ));
        assert!(s.contains("onprem_image_sync_duration_seconds_count{image=\"reg/a\\\"b\"} 2\n"));
    }
}
