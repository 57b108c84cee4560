//! The text of each mirror configuration file, from a [`MirrorPlan`]:
//! containerd's `hosts.toml`, the CRI-O / podman drop-in and the README.
//! Pure: reads and writes nothing.

use super::{location, MirrorPlan, Upstream, DROP_IN, README_TITLE};

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl MirrorPlan {
    fn scheme(&self) -> &'static str {
        if self.plain_http {
            "http"
        } else {
            "https"
        }
    }

    /// The `[host."…"]` URL for `up`: the site registry, plus `/v2/PATH`
    /// (with `override_path`) when the mapping adds a path.
    pub fn host_url(&self, up: &Upstream) -> String {
        if up.path.is_empty() {
            format!("{}://{}", self.scheme(), self.registry)
        } else {
            format!("{}://{}/v2/{}", self.scheme(), self.registry, up.path)
        }
    }

    /// containerd's `certs.d/<upstream>/hosts.toml` for `up`; `ca` names a
    /// CA file beside it.
    pub fn hosts_toml(&self, up: &Upstream, ca: Option<&str>) -> String {
        // containerd reaches Docker Hub's API at registry-1.docker.io.
        let server = match up.host.as_str() {
            "docker.io" => "https://registry-1.docker.io".to_owned(),
            h => format!("https://{h}"),
        };
        let mut t = format!(
            "# Written by atp-installer mirrors: images of {host} come from the site registry\n\
             # {registry}. Goes to /etc/containerd/certs.d/{host}/hosts.toml on every node.\n\
             # Bundle references: {refs}\n\
             server = {server}\n\n\
             [host.{url}]\n  capabilities = [\"pull\", \"resolve\"]\n",
            host = up.host,
            registry = self.registry,
            refs = up.references.join(", "),
            server = toml_str(&server),
            url = toml_str(&self.host_url(up)),
        );
        if !up.path.is_empty() {
            t.push_str("  override_path = true\n");
        }
        if let Some(ca) = ca {
            t.push_str(&format!("  ca = {}\n", toml_str(ca)));
        }
        t
    }

    /// The CRI-O / podman drop-in: one `[[registry]]` per upstream.
    pub fn registries_conf(&self) -> String {
        let mut t = format!(
            "# Written by atp-installer mirrors: images of {} come from the site\n\
             # registry {}. Goes to /etc/containers/registries.conf.d/{DROP_IN} on every node.\n",
            self.upstreams
                .iter()
                .map(|u| u.host.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.registry
        );
        for up in &self.upstreams {
            t.push_str(&format!(
                "\n# {}\n[[registry]]\nprefix = {host}\nlocation = {host}\n\n[[registry.mirror]]\nlocation = {}\n",
                up.references.join(", "),
                toml_str(&location(&self.registry, &up.path)),
                host = toml_str(&up.host),
            ));
            if self.plain_http {
                t.push_str("insecure = true\n");
            }
        }
        t
    }

    /// `README.md`: where each file goes.
    pub fn readme(&self, ca: bool) -> String {
        let mut t = format!(
            "{README_TITLE}\n\n\
             Nodes pull the bundle's images by their upstream names; these files send\n\
             those pulls to the site registry `{reg}`. Copy them to every node.\n\n\
             | upstream | served from | images |\n|---|---|---|\n",
            reg = self.registry
        );
        for up in &self.upstreams {
            t.push_str(&format!(
                "| `{}` | `{}` | {} |\n",
                up.host,
                location(&self.registry, &up.path),
                up.references
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        t.push_str(
            "\n## containerd\n\n\
             Copy `containerd/certs.d/*` to `/etc/containerd/certs.d/` and make sure\n\
             containerd's CRI config names that folder (restart containerd after changing it;\n\
             files under it are read on every pull):\n\n\
             ```toml\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n```\n\n\
             ## CRI-O and podman\n\n",
        );
        t.push_str(&format!(
            "Copy `containers/registries.conf.d/{DROP_IN}` to\n\
             `/etc/containers/registries.conf.d/` (reload CRI-O afterwards). Its `[[registry]]`\n\
             tables replace any with the same prefix in `/etc/containers/registries.conf`.\n"
        ));
        if ca {
            t.push_str(&format!(
                "Copy `containers/certs.d/{reg}/ca.crt` to `/etc/containers/certs.d/{reg}/ca.crt`.\n\
                 (containerd's copy of the CA sits beside each `hosts.toml`.)\n",
                reg = self.registry
            ));
        }
        t.push_str(
            "\n## Good to know\n\n\
             - Tags resolve against the site registry: a tag moved there moves on every node.\n\
             - No credentials are written here; if the site registry needs them, give nodes\n  \
             their own (image pull secrets, or the runtime's auth file for the site registry).\n\
             - If the site registry cannot serve an image, runtimes fall back to the upstream\n  \
             registry, which an air-gapped node cannot reach: the pull fails.\n",
        );
        t
    }
}
