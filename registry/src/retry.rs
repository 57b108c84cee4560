//! What is retried, and how long we wait: the one place that decides.
//!
//! Retried: connection resets, timeouts and other transport failures, HTTP 408,
//! 429 and 5xx, with jittered exponential backoff bounded both in attempts and
//! in total time, honoring `Retry-After` (seconds or HTTP-date, capped).
//! Fatal: TLS failures and every other 4xx. Never sleeps past the total bound.
//! A request that makes no progress for the idle timeout (no body byte sent
//! and no answer) is a transient failure too: a stalled or trickling
//! registry is retried, then reported, never waited on for ever.

use std::error::Error as _;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// Retry limits. Defaults suit real networks; tests use `RetryPolicy::fast()`.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// First backoff; doubles each retry, with +-50% jitter.
    pub base_delay: Duration,
    /// Upper bound of one computed backoff.
    pub max_delay: Duration,
    /// Upper bound honored for a server's `Retry-After`.
    pub max_retry_after: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_total: Duration,
    /// One attempt fails once it has made no progress for this long: no
    /// request-body byte taken by the connection and no answer yet.
    pub idle_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
            max_total: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Small delays for tests: base 10 ms, max 100 ms, total 10 s.
    pub fn fast() -> Self {
        Self {
            max_retries: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(3),
            max_total: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }

    /// Start counting for one operation.
    pub fn start(&self) -> Backoff {
        Backoff {
            policy: self.clone(),
            started: Instant::now(),
            retries: 0,
        }
    }
}

/// Backoff state of one operation (one request, or one upload chunk).
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    started: Instant,
    retries: u32,
}

impl Backoff {
    /// The delay before the next retry, or `None` when the budget is spent.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.retries >= self.policy.max_retries {
            return None;
        }
        let exp = self
            .policy
            .base_delay
            .saturating_mul(1u32 << self.retries.min(20))
            .min(self.policy.max_delay);
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        let mut delay = exp.mul_f64(jitter).min(self.policy.max_delay);
        if let Some(ra) = retry_after {
            delay = delay.max(ra.min(self.policy.max_retry_after));
        }
        if self.started.elapsed() + delay > self.policy.max_total {
            return None;
        }
        self.retries += 1;
        Some(delay)
    }

    /// Retries left after the one just granted.
    pub fn tries_left(&self) -> u32 {
        self.policy.max_retries - self.retries
    }

    /// Attempts made so far (after a failed one: retries + 1).
    pub fn attempts(&self) -> u32 {
        self.retries + 1
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Should a response with this status be retried?
pub fn status_is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429) || status.is_server_error()
}

/// How a transport error is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportClass {
    /// Connection reset, refused, timed out, closed early: retry.
    Transient,
    /// Certificate or handshake failure: never retried.
    Tls,
    /// Builder, redirect loop, decode: a bug or misconfiguration, not retried.
    Fatal,
}

/// Classify a reqwest error by walking its source chain. Body and decode
/// errors are what a dropped connection looks like mid-response, so they are
/// transient; TLS failures happen while connecting.
pub fn classify_transport(err: &reqwest::Error) -> TransportClass {
    if err.is_builder() || err.is_redirect() {
        return TransportClass::Fatal;
    }
    if err.is_timeout() {
        return TransportClass::Transient;
    }
    if err.is_body() || err.is_decode() {
        return TransportClass::Transient;
    }
    // Connecting or sending: an InvalidData I/O error anywhere in the chain
    // is rustls refusing the peer (bad certificate, or not TLS at all).
    let mut src = err.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            let inner_invalid = io
                .get_ref()
                .and_then(|i| i.downcast_ref::<std::io::Error>())
                .is_some_and(|i| i.kind() == std::io::ErrorKind::InvalidData);
            if io.kind() == std::io::ErrorKind::InvalidData || inner_invalid {
                return TransportClass::Tls;
            }
        }
        let text = s.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("handshake") {
            return TransportClass::Tls;
        }
        src = s.source();
    }
    TransportClass::Transient
}

/// Parse `Retry-After`: delta-seconds or an HTTP-date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Retry-After` of a response, if present and parseable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(status_is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 201, 202, 400, 401, 403, 404, 405, 409, 416] {
            assert!(
                !status_is_retryable(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(3));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(3)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn backoff_is_bounded_in_count() {
        let p = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            max_retry_after: Duration::from_millis(5),
            max_total: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let mut b = p.start();
        let mut n = 0;
        while let Some(d) = b.next_delay(None) {
            assert!(d <= Duration::from_millis(4));
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(b.tries_left(), 0);
    }

    #[test]
    fn backoff_caps_retry_after_and_total() {
        let p = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_retry_after: Duration::from_millis(50),
            max_total: Duration::from_millis(120),
            idle_timeout: Duration::from_secs(60),
        };
        let mut b = p.start();
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(3600))),
            Some(Duration::from_millis(50))
        );
        // A Retry-After beyond the total budget ends the retries.
        let mut b = RetryPolicy {
            max_retry_after: Duration::from_secs(1),
            ..p
        }
        .start();
        assert_eq!(b.next_delay(Some(Duration::from_secs(1))), None);
    }
}
