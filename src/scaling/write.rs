//! The one way the engine writes to the Kubernetes API. Workloads, Namespaces, rollbacks, the
//! Lease and Events all go through [`conditional`], so the meaning of an answer cannot drift
//! between callers. A write carries a precondition (the resourceVersion last seen); its answer
//! is classified once, by [`retry::classify`]:
//!
//! | answer | class | what happens |
//! |---|---|---|
//! | 2xx | done | the caller gets the stored object |
//! | 409 | conflict: the object changed | re-read it, the caller decides again (it may already be as wanted: our own earlier attempt committed though its answer was lost) |
//! | 429, 5xx | transient | back off (Retry-After honoured), send the same request again |
//! | timeout, dropped connection | unknown: it may have committed | back off, re-read, decide again |
//! | 403, 422 | refused for good (admission policy, RBAC, validation) | nothing changed: the caller skips the object |
//! | 404 | gone | nothing left to write |
//! | anything else | failure | the caller's failure path (rollback) |
//!
//! Sends are bounded by the retry policy's attempts; a write still failing after the last one
//! is a [`WriteFailed`] whose outcome the caller must treat as unknown (re-read before reverting).

use std::future::Future;

use super::retry::{self, Class, RetryPolicy};

/// What to do next, decided by the caller from the object as last seen.
pub enum Next<R, T> {
    /// Send this request (it carries its own precondition).
    Send(R),
    /// Nothing to write: the object already is as wanted (this is it).
    Settled(T),
    /// Nothing to write any more: the object is gone, or no longer ours to change.
    Nothing,
}

/// Where a write starts.
pub enum Start<R, T> {
    /// From what the caller already knows (a listed object, a planned change).
    With(Next<R, T>),
    /// From a fresh read, handed to the caller's `decide`.
    ReadFirst,
}

/// How a write ended, when it did not fail.
#[derive(Debug)]
pub enum Written<T> {
    /// Sent and stored, or already so (`Next::Settled`).
    Done(T),
    /// Nothing was written: nothing (more) to do.
    Nothing,
    /// The API refused the object for good; nothing changed. The API's message.
    Refused(String),
}

/// A write that still failed after the last attempt (or could not even re-read its object).
/// It may have committed: re-read before relying on the object's state. `.0` is the message
/// the summary shows; `.1` the API's error, when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WriteFailed(pub String, #[source] pub Option<kube::Error>);

impl WriteFailed {
    /// A failure with nothing underneath (a revert the API refused).
    pub fn new(message: impl Into<String>) -> Self {
        WriteFailed(message.into(), None)
    }
}

/// Drives one object to what the caller wants: `send` makes the request, `read` fetches the
/// object (`Ok(None)` = gone), `decide` turns a fresh read into the next step. See the module
/// documentation for how each answer is handled.
pub async fn conditional<O, R: Clone, T, SendFut, ReadFut>(
    policy: &RetryPolicy,
    what: &str,
    start: Start<R, T>,
    mut send: impl FnMut(R) -> SendFut,
    mut read: impl FnMut() -> ReadFut,
    mut decide: impl FnMut(Option<O>) -> Next<R, T>,
) -> Result<Written<T>, WriteFailed>
where
    SendFut: Future<Output = Result<T, kube::Error>>,
    ReadFut: Future<Output = Result<Option<O>, kube::Error>>,
{
    let mut next = match start {
        Start::With(next) => next,
        Start::ReadFirst => decide(read_retrying(policy, what, &mut read).await?),
    };
    let mut attempt = 0;
    loop {
        let request = match next {
            Next::Send(r) => r,
            Next::Settled(t) => return Ok(Written::Done(t)),
            Next::Nothing => return Ok(Written::Nothing),
        };
        let err = match send(request.clone()).await {
            Ok(t) => return Ok(Written::Done(t)),
            Err(e) => e,
        };
        attempt += 1;
        let class = retry::classify(&err);
        match class {
            Class::Refused => return Ok(Written::Refused(retry::api_message(&err))),
            Class::NotFound => return Ok(Written::Nothing),
            Class::Permanent | Class::Expired => return Err(WriteFailed(err.to_string(), Some(err))),
            Class::Conflict | Class::Transient(_) | Class::Unknown => {}
        }
        if attempt >= policy.attempts {
            return Err(WriteFailed(format!("{err} (after {attempt} attempts)"), Some(err)));
        }
        tracing::debug!(what, error = %err, attempt, "write not done; trying again");
        next = match class {
            Class::Conflict => decide(read_retrying(policy, what, &mut read).await?),
            Class::Transient(hint) => {
                tokio::time::sleep(policy.delay(attempt - 1, hint)).await;
                Next::Send(request)
            }
            _ => {
                tokio::time::sleep(policy.delay(attempt - 1, None)).await;
                decide(read_retrying(policy, what, &mut read).await?)
            }
        };
    }
}

async fn read_retrying<O, ReadFut>(
    policy: &RetryPolicy,
    what: &str,
    read: &mut impl FnMut() -> ReadFut,
) -> Result<Option<O>, WriteFailed>
where
    ReadFut: Future<Output = Result<Option<O>, kube::Error>>,
{
    retry::transient(policy, &format!("re-read for {what}"), &mut *read)
        .await
        .map_err(|e| match e {
            crate::Error::Kube(k) => WriteFailed(format!("could not re-read: {k}"), Some(k)),
            other => WriteFailed::new(format!("could not re-read: {other}")),
        })
}

/// A read that treats 404 as `None` (for [`conditional`]'s `read`).
pub fn found<O>(r: Result<O, kube::Error>) -> Result<Option<O>, kube::Error> {
    match r {
        Ok(o) => Ok(Some(o)),
        Err(e) if retry::classify(&e) == Class::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
