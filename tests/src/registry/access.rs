//! The registry's access log: one [`Access`] per request the registry
//! finished, parsed from its own combined-format lines by a reader thread
//! per output stream, in the order the registry wrote them. The harness's
//! readiness probes and log barriers are recognised by a marker and kept
//! out of the log a test sees.

use std::fs::File;
use std::io::{BufRead, BufReader, Write as _};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Query string on the harness's own readiness probes, which the access log leaves out.
pub(super) const PROBE_MARKER: &str = "atp-testkit-readiness-probe";
/// Query string of an access-log barrier request: `PROBE_MARKER&sync=N`.
pub(super) const SYNC_PREFIX: &str = "atp-testkit-readiness-probe&sync=";

/// One HTTP request the registry served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub method: String,
    /// Request URI: path and query, as sent.
    pub path: String,
    pub status: u16,
}

impl Access {
    /// True for a request that uploads blob data (`PUT`/`PATCH`/`POST` under `/blobs/uploads/`).
    pub fn is_blob_upload(&self) -> bool {
        matches!(self.method.as_str(), "PUT" | "PATCH" | "POST")
            && self.path.contains("/blobs/uploads/")
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.method, self.path, self.status)
    }
}

#[derive(Default)]
pub(super) struct LogState {
    pub(super) access: Vec<Access>,
    /// Highest barrier number whose access line the reader has seen.
    pub(super) sync_seen: u64,
}

pub(super) struct Shared {
    pub(super) state: Mutex<LogState>,
    pub(super) raw: Mutex<File>,
}

impl super::Registry {
    /// Every HTTP request the registry served so far, in the order it
    /// finished them (the harness's own readiness probes left out, so a fresh
    /// registry has an empty log).
    ///
    /// First sends a marked barrier request (left out of the log) and waits
    /// until its line arrives, so every request whose response the caller has
    /// already seen is included.
    pub fn access_log(&self) -> Vec<Access> {
        self.sync_log();
        self.shared.state.lock().unwrap().access.clone()
    }

    /// A mark for [`Registry::access_log_since`]: the number of requests so far.
    pub fn access_mark(&self) -> usize {
        self.sync_log();
        self.shared.state.lock().unwrap().access.len()
    }

    /// Requests served after `mark` was taken.
    pub fn access_log_since(&self, mark: usize) -> Vec<Access> {
        let log = self.access_log();
        log.get(mark..).map(<[Access]>::to_vec).unwrap_or_default()
    }

    /// Make sure every request the registry finished before this call is in
    /// the access log: send a marked barrier request and wait for the reader
    /// to see its line (the log is one FIFO pipe).
    ///
    /// A registry that is not running ([`Registry::kill`]) needs no barrier:
    /// its readers were joined, so the log is complete. A running registry
    /// whose barrier fails panics: a log that might be incomplete must never
    /// let a "nothing reached the registry" check pass.
    pub(super) fn sync_log(&self) {
        if self.child.is_none() {
            return;
        }
        let n = self
            .sync_counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let url = format!("{}/v2/?{SYNC_PREFIX}{n}", self.url());
        if let Err(e) = self.probe.get(&url) {
            panic!(
                "access-log barrier to registry {} failed ({e}); the access log may be \
                 incomplete, so no check on it can be trusted (raw log {})",
                self.host(),
                self.log_path.display()
            );
        }
        // Generous: only a stalled reader thread takes anywhere near this long.
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.shared.state.lock().unwrap().sync_seen < n {
            assert!(
                Instant::now() < deadline,
                "access-log barrier {n} to registry {} was answered but its log line never \
                 arrived within 60 s; the access log may be incomplete (raw log {})",
                self.host(),
                self.log_path.display()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // Lines of requests that finished concurrently with the barrier may
        // trail it by a hair.
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(super) fn spawn_reader(
    stream: impl std::io::Read + Send + 'static,
    shared: Arc<Shared>,
    port: u16,
    tag: &'static str,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(format!("registry-{port}-{tag}"))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                {
                    let mut raw = shared.raw.lock().unwrap();
                    let _ = writeln!(raw, "{line}");
                }
                let mut state = shared.state.lock().unwrap();
                if let Some(a) = parse_access_line(line) {
                    // The harness's own probes and barriers are not the test's traffic.
                    if let Some(q) = a.path.split_once('?').map(|(_, q)| q) {
                        if let Some(n) = q.strip_prefix(SYNC_PREFIX).and_then(|n| n.parse().ok()) {
                            state.sync_seen = state.sync_seen.max(n);
                        }
                    }
                    if !a.path.contains(PROBE_MARKER) {
                        state.access.push(a);
                    }
                }
            }
        })
        .expect("spawning registry log reader")
}

/// Parse one Apache combined-format line as gorilla/handlers writes it:
/// `127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 401 87 "referer" "agent"`.
pub fn parse_access_line(line: &str) -> Option<Access> {
    let first = line.chars().next()?;
    if !(first.is_ascii_hexdigit() || first == '[' || first == ':') {
        return None;
    }
    let start = line.find("] \"")? + 3;
    let rest = &line[start..];
    let end = rest.find('"')?;
    let request = &rest[..end];
    let mut parts = request.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let status = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
    Some(Access {
        method,
        path,
        status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_combined_access_line() {
        let a = parse_access_line(
            r#"127.0.0.1 - - [26/Nov/2026:03:55:00 +0000] "PUT /v2/atp/router/manifests/1.4.0 HTTP/1.1" 201 0 "" "skopeo/1.9.3""#,
        )
        .unwrap();
        assert_eq!(a.method, "PUT");
        assert_eq!(a.path, "/v2/atp/router/manifests/1.4.0");
        assert_eq!(a.status, 201);
    }

    #[test]
    fn ignores_logrus_lines() {
        assert!(parse_access_line(
            r#"time="2026-11-26T03:55:00Z" level=info msg="response completed""#
        )
        .is_none());
    }
}
