//! Terminal side of the CLIs: logging setup, and progress as indicatif bars
//! on a TTY or plain periodic lines otherwise. The libraries only see the
//! [`Progress`] trait; indicatif never reaches them.
//!
//! Logs go to stderr so `--json` output on stdout stays machine-readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use atp_bundle::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set up `tracing` on stderr: `RUST_LOG` wins, else `info` (or `warn` with `--quiet`).
pub fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .try_init();
}

/// Progress for a terminal: bars when stderr is a TTY, else a line every 5 s.
pub struct Ui {
    bar: Option<ProgressBar>,
    plain: Mutex<PlainState>,
    quiet: bool,
}

struct PlainState {
    phase: String,
    total: u64,
    done: u64,
    items: u64,
    total_items: u64,
    last: Instant,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal() && !quiet;
        let bar = tty.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b
        });
        Self {
            bar,
            plain: Mutex::new(PlainState {
                phase: String::new(),
                total: 0,
                done: 0,
                items: 0,
                total_items: 0,
                last: Instant::now(),
            }),
            quiet,
        }
    }
}

impl Progress for Ui {
    fn phase(&self, name: &str, total_bytes: u64, total_items: u64) {
        if let Some(b) = &self.bar {
            b.reset();
            b.set_length(total_bytes);
            b.set_prefix(name.to_string());
            b.set_message(format!("0/{total_items}"));
        }
        let mut p = self.plain.lock().expect("progress lock");
        *p = PlainState {
            phase: name.to_string(),
            total: total_bytes,
            done: 0,
            items: 0,
            total_items,
            last: Instant::now(),
        };
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
            return;
        }
        let mut p = self.plain.lock().expect("progress lock");
        p.done += bytes;
        if !self.quiet && p.last.elapsed() >= Duration::from_secs(5) {
            p.last = Instant::now();
            eprintln!(
                "{}: {} of {} MiB, {}/{} items",
                p.phase,
                p.done >> 20,
                p.total >> 20,
                p.items,
                p.total_items
            );
        }
    }

    fn item_done(&self, _name: &str) {
        let mut p = self.plain.lock().expect("progress lock");
        p.items += 1;
        if let Some(b) = &self.bar {
            b.set_message(format!("{}/{}", p.items, p.total_items));
        }
    }

    fn finish_phase(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
