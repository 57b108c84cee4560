//! The access log: one line per request (peer, method, path, status, bytes
//! sent, duration), to stderr or a file given by `--access-log`.
//!
//! A line is written when the response is finished, so the byte count is
//! what was really sent: a streamed blob logs when its last chunk went out,
//! when the client went away, or when it was aborted (marked `aborted`).
//! Never logs request headers (a client's `Authorization` stays out).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where access lines go.
pub struct AccessLog {
    out: Mutex<Box<dyn Write + Send>>,
}

impl AccessLog {
    pub fn stderr() -> AccessLog {
        AccessLog {
            out: Mutex::new(Box::new(io::stderr())),
        }
    }

    /// Append to `path` (created if missing).
    pub fn file(path: &Path) -> io::Result<AccessLog> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AccessLog {
            out: Mutex::new(Box::new(f)),
        })
    }

    fn write(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk must not stop the server; the line is lost.
        let _ = writeln!(out, "{line}").and_then(|_| out.flush());
    }
}

/// One request's line, written when this is dropped.
pub struct Entry {
    log: Arc<AccessLog>,
    peer: SocketAddr,
    method: String,
    path: String,
    start: Instant,
    pub status: u16,
    pub sent: u64,
    pub aborted: bool,
}

impl Entry {
    pub fn new(log: Arc<AccessLog>, peer: SocketAddr, method: &str, path: &str) -> Entry {
        Entry {
            log,
            peer,
            method: method.to_owned(),
            // Control characters from a client never reach the log as such.
            path: path
                .chars()
                .take(1000)
                .flat_map(char::escape_debug)
                .collect(),
            start: Instant::now(),
            status: 0,
            sent: 0,
            aborted: false,
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let line = format!(
            "{} \"{} {}\" {} {} {ms:.1}ms{}",
            self.peer,
            self.method,
            self.path,
            self.status,
            self.sent,
            if self.aborted { " aborted" } else { "" }
        );
        self.log.write(&line);
    }
}
