//! The simulation as text: the plan, then every finding with its fix.

use super::*;

impl Simulation {
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        match &self.index_digest {
            Some(d) => {
                let _ = writeln!(
                    s,
                    "bundle {} {} ({} #{}) {d}: verified",
                    self.name.as_deref().unwrap_or("?"),
                    self.version.as_deref().unwrap_or("?"),
                    self.channel.as_deref().unwrap_or("?"),
                    self.sequence.unwrap_or(0),
                );
            }
            None => {
                let _ = writeln!(s, "bundle {}: not verified", self.bundle.display());
            }
        }
        if let Some(r) = &self.rollback {
            let _ = writeln!(s, "rollback check: {r}");
        }
        let _ = writeln!(
            s,
            "registry {}: push permission checked: {}",
            self.registry, self.push_check
        );
        if !self.images.is_empty() {
            let _ = writeln!(s, "images:");
            for i in &self.images {
                let _ = writeln!(s, "  {} -> {} ({})", i.source, i.target, i.digest);
            }
        }
        if !self.referrers.pushed.is_empty() {
            let _ = writeln!(s, "referrers:");
            for r in &self.referrers.pushed {
                let _ = writeln!(
                    s,
                    "  {} ({}) of {}",
                    r.target,
                    r.artifact_type.as_deref().unwrap_or("no artifact type"),
                    r.subject
                );
            }
            for t in &self.referrers.tags {
                let _ = writeln!(s, "  cosign tag {}: {}", t.tag, t.outcome);
            }
            for i in &self.referrers.indexes {
                let _ = writeln!(s, "  fallback tag index {}: {}", i.index, i.outcome);
            }
        }
        let _ = writeln!(
            s,
            "blobs: {} to upload ({} bytes), {} to mount ({} bytes), {} already there ({} bytes)",
            self.uploaded,
            self.bytes_uploaded,
            self.mounted,
            self.bytes_mounted,
            self.skipped,
            self.bytes_skipped
        );
        let _ = writeln!(
            s,
            "manifests: {} to push, {} already there",
            self.manifests_pushed, self.manifests_skipped
        );
        if !self.objects.is_empty() {
            let _ = writeln!(s, "objects to apply ({}):", self.objects.len());
            for o in &self.objects {
                let _ = writeln!(s, "  {o}");
            }
        }
        let _ = writeln!(
            s,
            "host: kubectl {} (kustomize {})",
            self.host.kubectl.as_deref().unwrap_or("missing"),
            self.host.kustomize.as_deref().unwrap_or("missing")
        );
        for c in [
            &self.host.state_dir,
            &self.host.render_dir,
            &self.host.model_cache_dir,
        ]
        .into_iter()
        .flatten()
        {
            let _ = writeln!(
                s,
                "  {}: {} bytes free, about {} needed",
                c.path.display(),
                c.free_bytes,
                c.needed_bytes
            );
        }
        match &self.cluster.skipped {
            Some(why) => {
                let _ = writeln!(s, "cluster: skipped: {why}");
            }
            None if self.cluster.checked => {
                let _ = writeln!(s, "cluster: server-side dry run:\n{}", self.cluster.output);
            }
            None => {}
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        if self.ok {
            let _ = writeln!(s, "OK: a real install would succeed as far as can be known without writing; nothing was changed");
        } else {
            let _ = writeln!(
                s,
                "FAILED: {} problem(s) would stop the install:",
                self.findings.len()
            );
            for f in &self.findings {
                let _ = writeln!(s, "  {f}");
            }
        }
        s
    }
}
