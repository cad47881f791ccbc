//! Retries with exponential backoff and full jitter, bounded, honouring Retry-After.

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

    /// Delay before retry number `attempt` (0-based): [`crate::backoff`] over base·2^attempt, capped;
    /// a server's Retry-After wins when it is longer (capped at 30 s so a run cannot hang).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let jittered = crate::backoff::Backoff {
            base: self.base,
            max: self.max,
        }
        .delay(attempt);
        match retry_after {
            Some(ra) => ra.min(Duration::from_secs(30)).max(jittered),
            None => jittered,
        }
    }
}

/// What an API answer means, decided here once for every caller (see [`super::write`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// 409: the object changed since it was read: re-read and decide again.
    Conflict,
    /// 429, 500, 502, 503, 504: the server said "not now": try again (after Retry-After).
    Transient(Option<Duration>),
    /// The request may or may not have reached the server (timeouts, dropped connections, a
    /// body cut short): for a write, re-read before deciding again.
    Unknown,
    /// 403 or 422: refused for good (admission policy, RBAC, validation); retrying cannot help
    /// and nothing was changed.
    Refused,
    NotFound,
    /// 410: a list's continue token has expired; the list must start again.
    Expired,
    /// Anything else (400, 405, 415...): a failure.
    Permanent,
}

pub fn classify(e: &kube::Error) -> Class {
    match e {
        kube::Error::Api(s) => match s.code {
            409 => Class::Conflict,
            404 => Class::NotFound,
            403 | 422 => Class::Refused,
            410 => Class::Expired,
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
        | kube::Error::ReadEvents(_) => Class::Unknown,
        _ => Class::Permanent,
    }
}

/// The API's own words for a refusal (an admission policy's message), else the error.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// Runs a read until it succeeds, retrying what may pass (transient answers, unknown
/// outcomes) with backoff, within the policy's attempts. Writes use [`super::write`].
pub async fn transient<T, Fut>(policy: &RetryPolicy, what: &str, mut op: impl FnMut() -> Fut) -> crate::Result<T>
where
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                let hint = match classify(&e) {
                    Class::Transient(hint) => hint,
                    Class::Unknown => None,
                    _ => return Err(e.into()),
                };
                if attempt + 1 >= policy.attempts {
                    return Err(e.into());
                }
                let wait = policy.delay(attempt, hint);
                tracing::warn!(error = %e, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, "{what}: retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// An API answer with this status code and message, for tests.
#[cfg(test)]
pub(crate) fn api_error(code: u16, message: &str) -> kube::Error {
    kube::Error::Api(
        kube::core::Status {
            code,
            ..kube::core::Status::failure(message, "Reason")
        }
        .boxed(),
    )
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
        let api = |code: u16| api_error(code, "x");
        assert_eq!(classify(&api(409)), Class::Conflict);
        assert_eq!(classify(&api(404)), Class::NotFound);
        assert_eq!(classify(&api(503)), Class::Transient(None));
        assert_eq!(classify(&api(429)), Class::Transient(None));
        assert_eq!(classify(&api(422)), Class::Refused);
        assert_eq!(classify(&api(403)), Class::Refused);
        assert_eq!(classify(&api(410)), Class::Expired);
        assert_eq!(classify(&api(400)), Class::Permanent);
    }
}
