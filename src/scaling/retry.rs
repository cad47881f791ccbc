//! Retries with exponential backoff and full jitter, bounded, honouring Retry-After.

use std::future::Future;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// From the validated configuration (`NS_SCHEDULER_RETRY_*`).
    pub fn from_tuning(t: &crate::config::Tuning) -> Self {
        RetryPolicy {
            attempts: t.retry_attempts,
            base: t.retry_base,
            max: t.retry_max,
        }
    }

    /// Delay before retry number `attempt` (0-based): full jitter over base·2^attempt, capped;
    /// a server's Retry-After wins when it is longer (capped at 30 s so a run cannot hang).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        let jittered = ceiling.mul_f64(0.5 + fastrand::f64() * 0.5);
        match retry_after {
            Some(ra) => ra.min(Duration::from_secs(30)).max(jittered),
            None => jittered,
        }
    }
}

/// What an error means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// 409: re-read and recompute.
    Conflict,
    /// 429, 5xx, timeouts, dropped connections: try again (maybe after Retry-After).
    Transient(Option<Duration>),
    NotFound,
    /// Anything else (400, 403, 422…): retrying will not help.
    Permanent,
}

pub fn classify(e: &kube::Error) -> Class {
    match e {
        kube::Error::Api(s) => match s.code {
            409 => Class::Conflict,
            404 => Class::NotFound,
            429 | 500 | 502 | 503 | 504 => Class::Transient(
                s.details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(s as u64)),
            ),
            _ => Class::Permanent,
        },
        // Connection refused/reset/closed, client-side timeouts, a body cut short.
        kube::Error::HyperError(_)
        | kube::Error::Service(_)
        | kube::Error::SerdeError(_)
        | kube::Error::FromUtf8(_)
        | kube::Error::ReadEvents(_) => Class::Transient(None),
        _ => Class::Permanent,
    }
}

/// Runs `op` until it succeeds, retrying only transient errors (reads, creates of Events).
pub async fn transient<T, F, Fut>(policy: &RetryPolicy, what: &str, mut op: F) -> crate::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match classify(&e) {
                Class::Transient(hint) if attempt + 1 < policy.attempts => {
                    let wait = policy.delay(attempt, hint);
                    tracing::warn!(error = %e, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, "{what}: retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(e.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_honour_retry_after() {
        let p = RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for attempt in 0..10 {
            let d = p.delay(attempt, None);
            let ceiling = Duration::from_millis((100u64 << attempt.min(16)).min(1000));
            assert!(d <= ceiling && d >= ceiling / 2, "{attempt}: {d:?}");
        }
        assert!(p.delay(0, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        assert!(p.delay(0, Some(Duration::from_secs(3600))) <= Duration::from_secs(30));
    }

    #[test]
    fn classification() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status {
                    code,
                    ..kube::core::Status::failure("x", "y")
                }
                .boxed(),
            )
        };
        assert_eq!(classify(&api(409)), Class::Conflict);
        assert_eq!(classify(&api(404)), Class::NotFound);
        assert_eq!(classify(&api(503)), Class::Transient(None));
        assert_eq!(classify(&api(429)), Class::Transient(None));
        assert_eq!(classify(&api(422)), Class::Permanent);
        assert_eq!(classify(&api(403)), Class::Permanent);
    }
}
