//! The idle watchdog of one request: a request may take as long as it
//! makes progress, and ends when it has made none for the idle timeout. A
//! wait without progress is said every 10 s, so a stalled registry is never
//! a silent hang.

use std::sync::Mutex;

/// When a request last made progress (a body chunk taken by the connection).
pub(crate) struct Stamp(Mutex<tokio::time::Instant>);

impl Stamp {
    pub(crate) fn now() -> Self {
        Stamp(Mutex::new(tokio::time::Instant::now()))
    }
    pub(crate) fn touch(&self) {
        *self.0.lock().unwrap() = tokio::time::Instant::now();
    }
    fn last(&self) -> tokio::time::Instant {
        *self.0.lock().unwrap()
    }
}

/// How often a wait without progress is said (a log line the progress
/// display shows), so a stalled registry is never a silent hang.
const WAIT_NOTICE: std::time::Duration = std::time::Duration::from_secs(10);

/// Run `fut` until it ends, or until `stamp` shows no progress for `idle`
/// (then `None`, and `fut` is dropped: the connection is closed). Every
/// [`WAIT_NOTICE`] without progress, `notice` is told how long it has been.
pub(crate) async fn until_idle<F: std::future::Future>(
    fut: F,
    stamp: &Stamp,
    idle: std::time::Duration,
    notice: &mut (dyn FnMut(std::time::Duration) + Send),
) -> Option<F::Output> {
    tokio::pin!(fut);
    let mut said = 0u32;
    let mut counted_from = stamp.last();
    loop {
        let last = stamp.last();
        if last != counted_from {
            // Progress since the last look: count the wait afresh.
            (said, counted_from) = (0, last);
        }
        let deadline = last + idle;
        let next_notice = last + WAIT_NOTICE * (said + 1);
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tokio::time::sleep_until(deadline.min(next_notice)) => {
                if stamp.last() != last {
                    continue;
                }
                let waited = last.elapsed();
                if waited >= idle {
                    return None;
                }
                if waited >= WAIT_NOTICE * (said + 1) {
                    said += 1;
                    notice(waited);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_wait_without_progress_ends_at_the_idle_timeout() {
        let stamp = Stamp::now();
        let never = std::future::pending::<()>();
        let mut notices = Vec::new();
        assert!(
            until_idle(never, &stamp, Duration::from_secs(60), &mut |w| notices
                .push(w.as_secs()))
            .await
            .is_none()
        );
        // The wait is said every 10 s until the timeout.
        assert_eq!(notices, [10, 20, 30, 40, 50]);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_keeps_a_long_wait_alive() {
        // 10 steps of 35 s each, progress after each: 350 s in all, never
        // 60 s without progress.
        let stamp = Arc::new(Stamp::now());
        let s = stamp.clone();
        let slow = async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(35)).await;
                s.touch();
            }
            "done"
        };
        let mut notices = 0;
        assert_eq!(
            until_idle(slow, &stamp, Duration::from_secs(60), &mut |_| notices += 1).await,
            Some("done")
        );
        // 35 s without progress each time: said at 10, 20 and 30 s of each.
        assert_eq!(notices, 30);
    }
}
