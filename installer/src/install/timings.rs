//! Where the wall time of one install went, phase by phase: `--json`'s
//! `timings_ms` and the one plain line an install prints last (issue 21's
//! profile, recorded by the bench). Measures only; never changes what a
//! phase does, and no test asserts a time.

use std::time::Instant;

use serde::Serialize;

/// Milliseconds of wall time per phase of one install, in the order they
/// run (each 0 when the phase had nothing to do). `total` is the whole
/// call, pre-flight and the state dir's lock included, so it is a little
/// more than the sum of the phases.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    /// The whole bundle verified (with `--single-pass`: and its blobs pushed).
    pub verify: f64,
    /// Rollback verdict, mapping, the copy plan (manifests re-read and
    /// re-hashed), the tools check.
    pub plan: f64,
    /// Read-only questions to the registry before any write: the delta
    /// pre-check and one HEAD of each image's root reference.
    pub registry_check: f64,
    /// The copy: blobs, manifests and tags (nothing on a re-install into a
    /// registry that has it all).
    pub copy: f64,
    /// Carried cosign tags and the referrers' fallback indexes.
    pub referrers: f64,
    /// Model files to the cache and file sets to the registry.
    pub files: f64,
    /// The overlay rendered for the site.
    pub render: f64,
    /// The air-gap gate over the rendered output.
    pub gate: f64,
    /// `kubectl apply` and the rollouts (`--apply`).
    pub apply: f64,
    /// The receipt, the installed sequence, the kept render, the mirror
    /// configuration and the metrics.
    pub state: f64,
    /// The whole run.
    pub total: f64,
}

impl Timings {
    /// The plain line an install ends with.
    pub fn line(&self) -> String {
        let phases = [
            ("verify", self.verify),
            ("plan", self.plan),
            ("registry_check", self.registry_check),
            ("copy", self.copy),
            ("referrers", self.referrers),
            ("files", self.files),
            ("render", self.render),
            ("gate", self.gate),
            ("apply", self.apply),
            ("state", self.state),
        ];
        let parts: Vec<String> = phases
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.1}"))
            .collect();
        format!(
            "timings (ms): {}; total {:.1}",
            parts.join(", "),
            self.total
        )
    }
}

/// A stopwatch that hands out the time since its last lap.
pub(crate) struct Clock {
    last: Instant,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Self {
            last: Instant::now(),
        }
    }

    /// Milliseconds since the previous lap (or the start), to 0.01 ms.
    pub(crate) fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let ms = ms(now - self.last);
        self.last = now;
        ms
    }
}

/// A duration in milliseconds, rounded to 0.01 ms.
pub(crate) fn ms(d: std::time::Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0)
}

/// Milliseconds rounded to 0.01 ms (after a sum, too: `7.82 + 5.3` is
/// printed `13.12`, not `13.120000000000001`).
pub(crate) fn round(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_stay_rounded_to_a_hundredth() {
        assert_eq!(round(7.82 + 5.3).to_string(), "13.12");
        assert_eq!(ms(std::time::Duration::from_micros(1_234_567)), 1234.57);
    }

    #[test]
    fn the_line_names_every_phase_in_order_and_the_total() {
        let t = Timings {
            verify: 356.31,
            registry_check: 4.0,
            total: 365.5,
            ..Default::default()
        };
        assert_eq!(
            t.line(),
            "timings (ms): verify 356.3, plan 0.0, registry_check 4.0, copy 0.0, \
             referrers 0.0, files 0.0, render 0.0, gate 0.0, apply 0.0, state 0.0; total 365.5"
        );
    }
}
