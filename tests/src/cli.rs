//! Command lines of the built binaries as the end-to-end tests run them: one
//! builder for `atp-installer install` (and `simulate`, which takes the same
//! flags), the site-registry flags of a [`Registry`] in each of its modes, and
//! small helpers the test files share (a `kubectl` lookup, `promtool`, seeded
//! noise).
//!
//! Builds command lines only; never builds binaries and never talks to
//! anything but what the caller points it at.

use std::ffi::{OsStr, OsString};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::bins::bin;
use crate::Registry;

/// `--registry HOST` plus `--registry-ca CA` (TLS) or `--plain-http`, plus
/// `--username USER --password-stdin` when the registry wants credentials
/// (the password then goes on stdin).
pub fn registry_flags(reg: &Registry) -> Vec<String> {
    let mut f = vec!["--registry".to_string(), reg.host()];
    match reg.ca_cert_path() {
        Some(ca) => {
            f.push("--registry-ca".into());
            f.push(ca.display().to_string());
        }
        None => f.push("--plain-http".into()),
    }
    if let Some((u, _)) = reg.credentials() {
        f.push("--username".into());
        f.push(u);
        f.push("--password-stdin".into());
    }
    f
}

/// Run `cmd` to the end with `stdin` written to it (then closed) and its
/// stdout and stderr captured.
pub fn output_with_stdin(mut cmd: Command, stdin: Option<&str>) -> Output {
    let child = spawn_with_stdin(&mut cmd, stdin);
    child.wait_with_output().expect("waiting for the command")
}

/// Start `cmd` with stdout and stderr piped, write `stdin` to it and close it.
pub fn spawn_with_stdin(cmd: &mut Command, stdin: Option<&str>) -> Child {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning the command");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        // A command that exits before reading its stdin closes the pipe; that
        // is its own failure to report, not the harness's.
        let _ = pipe.write_all(text.as_bytes());
    }
    drop(pipe);
    child
}

/// `atp-installer install BUNDLE` (or `simulate BUNDLE`) with the flags a test
/// sets, in this order: `--key`, `--state-dir`, the site registry,
/// `--render-to`, then the extra arguments. Nothing is set unless asked for.
///
/// ```no_run
/// # let reg = atp_testkit::Registry::plain();
/// let out = atp_testkit::cli::Install::new("b.tar")
///     .key("k.pub")
///     .state_dir("state")
///     .registry(&reg)
///     .args(["--json"])
///     .output();
/// ```
#[derive(Debug, Clone)]
pub struct Install {
    subcommand: &'static str,
    bundle: OsString,
    key: Option<OsString>,
    state_dir: Option<PathBuf>,
    site: Vec<String>,
    password: Option<String>,
    render_to: Option<PathBuf>,
    extra: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
}

impl Install {
    /// `atp-installer install BUNDLE`.
    pub fn new(bundle: impl AsRef<OsStr>) -> Install {
        Install::with_subcommand("install", bundle)
    }

    /// `atp-installer simulate BUNDLE`: the same flags, nothing changed.
    pub fn simulate(bundle: impl AsRef<OsStr>) -> Install {
        Install::with_subcommand("simulate", bundle)
    }

    fn with_subcommand(subcommand: &'static str, bundle: impl AsRef<OsStr>) -> Install {
        Install {
            subcommand,
            bundle: bundle.as_ref().to_owned(),
            key: None,
            state_dir: None,
            site: Vec::new(),
            password: None,
            render_to: None,
            extra: Vec::new(),
            env: Vec::new(),
            current_dir: None,
        }
    }

    /// `--key PUBLIC_KEY`.
    pub fn key(mut self, public_key: impl AsRef<OsStr>) -> Install {
        self.key = Some(public_key.as_ref().to_owned());
        self
    }

    /// `--state-dir DIR`.
    pub fn state_dir(mut self, dir: impl AsRef<Path>) -> Install {
        self.state_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// The site registry `reg` in its mode ([`registry_flags`]); its password,
    /// if any, is written to stdin.
    pub fn registry(mut self, reg: &Registry) -> Install {
        self.site = registry_flags(reg);
        self.password = reg.credentials().map(|(_, p)| p);
        self
    }

    /// A plain-HTTP, anonymous site registry at `host` (a proxy in front of
    /// a registry, or an address nothing listens on).
    pub fn plain_http(mut self, host: &str) -> Install {
        self.site = vec!["--registry".into(), host.into(), "--plain-http".into()];
        self.password = None;
        self
    }

    /// Site-registry flags given as they are, replacing any set before.
    pub fn site_flags<S: Into<String>>(mut self, flags: impl IntoIterator<Item = S>) -> Install {
        self.site = flags.into_iter().map(Into::into).collect();
        self
    }

    /// What goes on stdin instead of the registry's own password (a wrong
    /// one, say).
    pub fn password(mut self, password: &str) -> Install {
        self.password = Some(password.to_owned());
        self
    }

    /// `--render-to DIR`.
    pub fn render_to(mut self, dir: impl AsRef<Path>) -> Install {
        self.render_to = Some(dir.as_ref().to_owned());
        self
    }

    /// One more argument, after all the others.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Install {
        self.extra.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments, after all the others.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Install {
        self.extra
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// An environment variable for the installer.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Install {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// An environment variable the installer must not inherit.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Install {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// The working directory (relative paths are relative to it).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Install {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// The arguments after the binary's name.
    pub fn argv(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![self.subcommand.into(), self.bundle.clone()];
        if let Some(key) = &self.key {
            a.extend(["--key".into(), key.clone()]);
        }
        if let Some(dir) = &self.state_dir {
            a.extend(["--state-dir".into(), dir.clone().into_os_string()]);
        }
        a.extend(self.site.iter().map(OsString::from));
        if let Some(dir) = &self.render_to {
            a.extend(["--render-to".into(), dir.clone().into_os_string()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The command, not started (stdin, stdout and stderr left to the caller;
    /// the password is not written).
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin("atp-installer"));
        c.args(self.argv());
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = &self.current_dir {
            c.current_dir(dir);
        }
        c
    }

    /// Run to the end, the password (if any) on stdin.
    pub fn output(&self) -> Output {
        output_with_stdin(self.command(), self.password.as_deref())
    }

    /// Start in the background with stdout and stderr piped, the password
    /// (if any) written to stdin.
    pub fn spawn(&self) -> Child {
        spawn_with_stdin(&mut self.command(), self.password.as_deref())
    }
}

/// Path of the real `kubectl` on PATH, or an empty string when there is none.
pub fn which_kubectl() -> String {
    let out = Command::new("sh")
        .args(["-c", "command -v kubectl"])
        .output()
        .expect("running sh");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `promtool check metrics` accepts the file (promtool must be installed).
pub fn promtool_accepts(path: &Path) {
    let file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(file)
        .output()
        .expect("running promtool (apt-get install prometheus)");
    assert!(
        out.status.success(),
        "promtool rejected {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `len` bytes of deterministic noise (xorshift64 from `seed`): the same
/// seed gives the same bytes, and compression cannot shrink them.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15 ^ seed;
    let mut out = vec![0u8; len];
    for chunk in out.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    out
}
