//! Prometheus metrics in the node_exporter textfile format, with the names
//! from the on-prem guide.
//!
//! Counters and histogram buckets are cumulative across runs: their values
//! live in the state dir (`metrics.json`), and each run rewrites the textfile
//! atomically (temp file in the same folder, then rename), so the collector
//! never reads half a file. Labels never carry secrets.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The histogram, its buckets and the atomic write are shared with
/// `atp-bundler sync` ([`atp_bundle::metrics`]).
pub use atp_bundle::metrics::{write_atomic, Histogram, BUCKETS};

/// The persisted metric values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub deploys_total: u64,
    pub deploy_success_total: u64,
    pub deploy_failed_total: u64,
    /// Histogram per image label: bucket counts (same order as [`BUCKETS`]),
    /// then sum and count.
    #[serde(default)]
    pub image_sync: BTreeMap<String, Histogram>,
}

impl Metrics {
    /// Load from `path`, or start from zero when it does not exist.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    /// [`Metrics::load`], never losing a counter silently: a file that
    /// cannot be read as metrics is renamed to `<name>.corrupt-<UTC time>`
    /// (kept for whoever looks into it) and the counters start from zero,
    /// with a warning on stderr naming both files.
    pub fn load_or_set_aside(path: &Path) -> Self {
        match Self::load(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let aside = corrupt_name(path, time::OffsetDateTime::now_utc());
                match std::fs::rename(path, &aside) {
                    Ok(()) => tracing::warn!(
                        "{} is not valid metrics ({e}); kept it as {} and started the counters from zero",
                        path.display(),
                        aside.display()
                    ),
                    Err(re) => tracing::warn!(
                        "{} is not valid metrics ({e}) and could not be set aside ({re}); started the counters from zero",
                        path.display()
                    ),
                }
                Self::default()
            }
            Err(e) => {
                tracing::warn!(
                    "could not read {} ({e}); this run's counters start from zero",
                    path.display()
                );
                Self::default()
            }
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(path, &bytes, 0o644)
    }

    /// Count one finished run.
    pub fn record_run(&mut self, success: bool) {
        self.deploys_total += 1;
        if success {
            self.deploy_success_total += 1;
        } else {
            self.deploy_failed_total += 1;
        }
    }

    pub fn observe_image(&mut self, image: &str, seconds: f64) {
        self.image_sync
            .entry(image.to_string())
            .or_default()
            .observe(seconds);
    }

    /// Render in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (name, help, v) in [
            (
                "onprem_deploys_total",
                "Total deployment attempts.",
                self.deploys_total,
            ),
            (
                "onprem_deploy_success_total",
                "Successful deployments.",
                self.deploy_success_total,
            ),
            (
                "onprem_deploy_failed_total",
                "Failed deployments, refusals included.",
                self.deploy_failed_total,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        atp_bundle::metrics::render_image_sync(&mut s, &self.image_sync);
        s
    }

    /// Write the textfile atomically.
    pub fn write_textfile(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(path, self.render().as_bytes(), 0o644)
    }
}

/// `metrics.json` → `metrics.json.corrupt-20261207T004500Z`.
fn corrupt_name(path: &Path, now: time::OffsetDateTime) -> std::path::PathBuf {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now
        .to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".corrupt-{stamp}"));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_file_is_set_aside_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("metrics.json");
        std::fs::write(&state, b"{\"deploys_total\": 7, trunc").unwrap();
        let m = Metrics::load_or_set_aside(&state);
        assert_eq!(m, Metrics::default());
        assert!(!state.exists());
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].starts_with("metrics.json.corrupt-2"), "{kept:?}");
        assert_eq!(
            std::fs::read(dir.path().join(&kept[0])).unwrap(),
            b"{\"deploys_total\": 7, trunc"
        );
    }

    #[test]
    fn the_corrupt_name_carries_the_utc_time() {
        let t = time::macros::datetime!(2026-12-07 00:45:00 UTC);
        assert_eq!(
            corrupt_name(Path::new("/s/metrics.json"), t),
            Path::new("/s/metrics.json.corrupt-20261207T004500Z")
        );
    }

    #[test]
    fn counters_accumulate_across_runs_and_render() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("metrics.json");
        let mut m = Metrics::load(&state).unwrap();
        m.record_run(true);
        m.observe_image("reg/atp/router", 0.3);
        m.save(&state).unwrap();
        let mut m = Metrics::load(&state).unwrap();
        m.record_run(false);
        m.observe_image("reg/atp/router", 20.0);
        let text = m.render();
        assert!(text.contains("onprem_deploys_total 2\n"), "{text}");
        assert!(text.contains("onprem_deploy_success_total 1\n"));
        assert!(text.contains("onprem_deploy_failed_total 1\n"));
        assert!(text.contains(
            "onprem_image_sync_duration_seconds_bucket{image=\"reg/atp/router\",le=\"0.5\"} 1\n"
        ));
        assert!(text.contains(
            "onprem_image_sync_duration_seconds_bucket{image=\"reg/atp/router\",le=\"+Inf\"} 2\n"
        ));
        assert!(
            text.contains("onprem_image_sync_duration_seconds_count{image=\"reg/atp/router\"} 2\n")
        );
    }

    #[test]
    fn atomic_write_sets_the_mode_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret.json");
        write_atomic(&p, b"x", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
