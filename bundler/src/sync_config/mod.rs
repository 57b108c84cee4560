//! The `atp-bundler sync --config FILE` YAML file, and how it merges with the
//! command-line flags into one [`SyncOptions`] (flags win).
//!
//! Parsing is strict: unknown keys are refused so a typo never silently
//! drops a setting. Relative paths are resolved against the config file's
//! folder. Passwords are never written in the file: it names where they come
//! from (environment variables or a file), and they are read here, once, into
//! [`Credentials`], whose `Debug` redacts them. Nothing here touches the
//! network.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use atp_registry::mapping::Layout;
use atp_registry::{Credentials, RegistryConfig};
use serde::Deserialize;

use crate::sync::SyncOptions;

/// Default number of blob transfers in flight.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// The config file as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyncConfig {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub source: SourceSection,
    #[serde(default)]
    pub target: TargetSection,
    /// A bundle spec whose images (and overlay images) are synced.
    pub spec: Option<PathBuf>,
    /// Image references to sync.
    #[serde(default)]
    pub images: Vec<String>,
    /// Keep only these platforms of multi-platform images.
    #[serde(default)]
    pub platforms: Vec<String>,
    pub concurrency: Option<usize>,
    pub metrics_file: Option<PathBuf>,
    /// Per-registry transport and credentials, keyed by `host[:port]`.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistrySection>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceSection {
    /// The registry that serves unqualified and `docker.io` names.
    pub registry: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetSection {
    pub registry: Option<String>,
    pub repo_prefix: Option<String>,
    /// `nested` (default) or `flat`.
    pub layout: Option<String>,
    /// Explicit mapping `{"source/repo": "target/repo"}`; wins over `layout`.
    pub mapping: Option<BTreeMap<String, String>>,
    /// The same, from a JSON or YAML file.
    pub mapping_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistrySection {
    #[serde(default)]
    pub plain_http: bool,
    /// PEM CA bundle to trust for this registry.
    pub ca: Option<PathBuf>,
    pub credentials: Option<CredentialsRef>,
}

/// Where a registry's username and password come from. Never the password
/// itself.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialsRef {
    pub username: Option<String>,
    pub username_env: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// What the command line says; every `Some`/non-empty value wins over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub spec: Option<PathBuf>,
    pub images: Vec<String>,
    pub source_registry: Option<String>,
    pub target_registry: Option<String>,
    /// Added to the file's `plainHttp: true` registries; an empty entry is
    /// the target registry.
    pub plain_http: Vec<String>,
    pub target_ca: Option<PathBuf>,
    pub target_credentials: Option<Credentials>,
    pub repo_prefix: Option<String>,
    /// `--layout` or `--mapping-file` (already read); wins over the file's.
    pub layout: Option<Layout>,
    pub platforms: Vec<String>,
    pub concurrency: Option<usize>,
    pub metrics_file: Option<PathBuf>,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sync config {path} is not valid: {source}\nhint: docs/sync.md lists every key")]
    Parse {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error(transparent)]
    Mapping(#[from] atp_registry::mapping::MappingFileError),
    #[error("{field}: {problem}\nhint: {hint}")]
    Invalid {
        field: String,
        problem: String,
        hint: String,
    },
}

impl SyncConfig {
    /// Read and parse a config file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c: SyncConfig =
            serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        c.spec.as_mut().map(abs);
        c.metrics_file.as_mut().map(abs);
        c.target.mapping_file.as_mut().map(abs);
        for r in c.registries.values_mut() {
            r.ca.as_mut().map(abs);
            if let Some(cr) = &mut r.credentials {
                cr.password_file.as_mut().map(abs);
            }
        }
        if let Some(k) = &c.kind {
            if k != "SyncConfig" {
                return Err(invalid(
                    "kind",
                    format!("is {k:?}"),
                    "a sync config has kind: SyncConfig (or no kind)",
                ));
            }
        }
        Ok(c)
    }
}

fn invalid(field: &str, problem: String, hint: &str) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        problem,
        hint: hint.into(),
    }
}

/// Parse `nested` / `flat`.
pub fn parse_layout(s: &str) -> Result<Layout, ConfigError> {
    match s {
        "nested" => Ok(Layout::Nested),
        "flat" => Ok(Layout::Flat),
        other => Err(invalid(
            "target.layout",
            format!("{other:?} is not a layout"),
            "use nested or flat, or an explicit target.mapping",
        )),
    }
}

/// Resolve a credentials reference into credentials, reading the named
/// environment variables or file. Errors name the variable or file, never
/// the value.
pub fn read_credentials(host: &str, r: &CredentialsRef) -> Result<Credentials, ConfigError> {
    let field = format!("registries.{host}.credentials");
    let env = |name: &str| {
        std::env::var(name).map_err(|_| {
            invalid(
                &field,
                format!("environment variable {name} is not set"),
                "export it before running sync, or use passwordFile",
            )
        })
    };
    let username = match (&r.username, &r.username_env) {
        (Some(u), None) => u.clone(),
        (None, Some(v)) => env(v)?,
        _ => {
            return Err(invalid(
                &field,
                "needs exactly one of username and usernameEnv".into(),
                "e.g. usernameEnv: ATP_SYNC_USER",
            ))
        }
    };
    let password = match (&r.password_env, &r.password_file) {
        (Some(v), None) => env(v)?,
        (None, Some(p)) => std::fs::read_to_string(p)
            .map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?
            .trim_end_matches(['\n', '\r'])
            .to_string(),
        _ => {
            return Err(invalid(
                &field,
                "needs exactly one of passwordEnv and passwordFile".into(),
                "passwords are never written in the config itself",
            ))
        }
    };
    Ok(Credentials::new(username, password))
}

/// Merge the file (if any) and the flags into the options `sync` runs with.
pub fn resolve_options(
    file: Option<&SyncConfig>,
    o: Overrides,
) -> Result<SyncOptions, ConfigError> {
    let empty = SyncConfig::default();
    let c = file.unwrap_or(&empty);
    let target_registry = o
        .target_registry
        .or_else(|| c.target.registry.clone())
        .ok_or_else(|| {
            invalid(
                "target.registry",
                "no target registry".into(),
                "pass --registry HOST[:PORT] or set target.registry in the config",
            )
        })?;
    let source_registry = o.source_registry.or_else(|| c.source.registry.clone());
    let (spec, images) = if o.spec.is_some() || !o.images.is_empty() {
        (o.spec, o.images)
    } else {
        (c.spec.clone(), c.images.clone())
    };
    // The registries this run is known to talk to: their CA and credentials
    // must be there. Any other entry (the file's own target, when a flag
    // names another) is read only if it can be: a sync, or a dry run, needs
    // no credentials it does not use.
    let named = |host: &str| {
        host == target_registry
            || source_registry.as_deref() == Some(host)
            || images.iter().any(|i| {
                i.parse::<atp_registry::reference::Reference>()
                    .is_ok_and(|r| r.repository().registry() == host)
            })
    };
    let mut registries: HashMap<String, RegistryConfig> = HashMap::new();
    for (host, r) in &c.registries {
        let credentials = r
            .credentials
            .as_ref()
            .map(|cr| read_credentials(host, cr))
            .transpose();
        let mut entry = RegistryConfig {
            plain_http: r.plain_http,
            ca_file: r.ca.clone(),
            ..Default::default()
        };
        if named(host) {
            entry.credentials = credentials?;
        } else {
            match credentials {
                Ok(found) => entry.credentials = found,
                Err(e) => tracing::info!(
                    "registries.{host}: its credentials are not read ({}); this sync does not name {host}",
                    e.to_string().lines().next().unwrap_or_default()
                ),
            }
            if entry.ca_file.as_deref().is_some_and(|ca| !ca.exists()) {
                tracing::info!(
                    "registries.{host}: its CA file is not there; this sync does not name {host}"
                );
                entry.ca_file = None;
            }
        }
        registries.insert(host.clone(), entry);
    }
    for host in &o.plain_http {
        // `--plain-http` without a host means the site registry.
        let host = if host.is_empty() {
            &target_registry
        } else {
            host
        };
        registries.entry(host.clone()).or_default().plain_http = true;
    }
    if let Some(ca) = o.target_ca {
        registries
            .entry(target_registry.clone())
            .or_default()
            .ca_file = Some(ca);
    }
    if let Some(cr) = o.target_credentials {
        registries
            .entry(target_registry.clone())
            .or_default()
            .credentials = Some(cr);
    }
    let layout = match o.layout {
        Some(l) => l,
        None => match (&c.target.mapping, &c.target.mapping_file, &c.target.layout) {
            (Some(_), Some(_), _) => {
                return Err(invalid(
                    "target.mapping",
                    "both mapping and mappingFile are set".into(),
                    "keep one of them",
                ))
            }
            (Some(m), None, _) => Layout::Explicit(m.clone()),
            (None, Some(p), _) => Layout::Explicit(atp_registry::mapping::load_file(p)?),
            (None, None, Some(l)) => parse_layout(l)?,
            (None, None, None) => Layout::Nested,
        },
    };
    let concurrency = o
        .concurrency
        .or(c.concurrency)
        .unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        return Err(invalid(
            "concurrency",
            "is 0".into(),
            "use 1 or more transfers in flight",
        ));
    }
    Ok(SyncOptions {
        spec,
        images,
        source_registry,
        target_registry,
        registries,
        repo_prefix: o.repo_prefix.or_else(|| c.target.repo_prefix.clone()),
        layout,
        platforms: if o.platforms.is_empty() {
            c.platforms.clone()
        } else {
            o.platforms
        },
        concurrency,
        dry_run: o.dry_run,
        metrics_file: o.metrics_file.or_else(|| c.metrics_file.clone()),
        retry: None,
        referrers: None,
    })
}

#[cfg(test)]
mod tests;
