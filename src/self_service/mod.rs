//! Self-service (docs/reference.md §5): a team asks for off-hours time with a namespaced
//! `ActivationRequest` (`namespace-scheduler.io/v1alpha1`), which it may create, change and
//! delete with the usual `edit` rights in its namespace; the scheduler answers through the
//! request's `status` subresource. The requester is verified at admission (the guard component:
//! `spec.requestedBy` must be the user who creates it, and stays so).
//!
//! - [`ActivationRequest`]: a request as read (decoded leniently, item by item);
//! - [`judge`]: which requests are pending, how each is answered, which windows they open or
//!   end — pure, from the inventory, the requests and the clock;
//! - [`answer`]: writing answers through the one conditional write path, and the engine hook
//!   that answers `Accepted` only once a namespace has reached its target.
//!
//! A request is pending while `status.observedGeneration` differs from `metadata.generation`:
//! a new request, or one whose spec changed since it was answered (a new request, judged
//! again). A `Pending` answer (its cost center's permissions item is invalid, or the table
//! could not be read) leaves `observedGeneration` unset, so the request stays pending.

pub(crate) mod answer;
pub(crate) mod judge;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::scaling::list::{list_all, ApiPages, Listed};
use crate::scaling::objects::lenient::Text;
use crate::scaling::objects::Slim;
use crate::scaling::retry::RetryPolicy;

/// Longest `spec.until` the CRD admits (an RFC 3339 instant with nanoseconds and an offset is 35).
pub const UNTIL_MAX_CHARS: usize = 64;
/// Longest `spec.requestedBy` the CRD admits.
pub const REQUESTED_BY_MAX_CHARS: usize = 256;
/// Longest `status.message` the scheduler writes, in bytes (the CRD admits as many characters).
pub const MESSAGE_MAX_BYTES: usize = 1024;

/// `namespace-scheduler.io/v1alpha1` ActivationRequest (docs/reference.md §5): read, and
/// answered through its status subresource.
pub static ACTIVATION_REQUEST: std::sync::LazyLock<kube::core::ApiResource> =
    std::sync::LazyLock::new(|| kube::core::ApiResource {
        group: "namespace-scheduler.io".into(),
        version: "v1alpha1".into(),
        api_version: "namespace-scheduler.io/v1alpha1".into(),
        kind: "ActivationRequest".into(),
        plural: "activationrequests".into(),
    });

/// A request's answer, `status.phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    Pending,
    Accepted,
    Rejected,
    Ended,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Accepted => "Accepted",
            Phase::Rejected => "Rejected",
            Phase::Ended => "Ended",
        }
    }
}

/// An ActivationRequest as the scheduler reads it: what the team wrote (as written) and the
/// answer it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRequest {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub resource_version: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub until: Option<Text>,
    pub requested_by: Option<Text>,
    pub phase: Option<String>,
    pub message: Option<String>,
    pub observed_generation: Option<i64>,
}

impl ActivationRequest {
    pub fn from_slim(o: Slim) -> Self {
        let m = o.metadata;
        ActivationRequest {
            namespace: m.namespace.unwrap_or_default(),
            name: m.name,
            generation: m.generation.unwrap_or(0),
            resource_version: m.resource_version,
            created: m
                .creation_timestamp
                .as_ref()
                .and_then(Text::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            until: o.spec.until,
            requested_by: o.spec.requested_by,
            phase: o.status.phase,
            message: o.status.message,
            observed_generation: o.status.observed_generation,
        }
    }

    /// New, or changed since it was answered.
    pub fn pending(&self) -> bool {
        self.observed_generation != Some(self.generation)
    }

    /// Answered (for its current spec) with `phase`.
    pub fn answered(&self, phase: Phase) -> bool {
        !self.pending() && self.phase.as_deref() == Some(phase.as_str())
    }

    /// `spec.requestedBy`: who asked, verified at admission by the guard component.
    pub fn requester(&self) -> std::result::Result<&str, String> {
        let field = "spec.requestedBy";
        match written(field, &self.requested_by, REQUESTED_BY_MAX_CHARS, "a user name")?.trim() {
            "" => Err(format!("{field} is empty")),
            s => Ok(s),
        }
    }

    /// `spec.until`, an RFC 3339 instant.
    pub fn until(&self) -> std::result::Result<DateTime<Utc>, String> {
        let field = "spec.until";
        let raw = written(field, &self.until, UNTIL_MAX_CHARS, "an RFC 3339 instant")?;
        DateTime::parse_from_rfc3339(raw.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| format!("{field} {raw:?} is not an RFC 3339 instant"))
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A field a team wrote: present, a string, at most `max` characters; else why not.
fn written<'a>(field: &str, value: &'a Option<Text>, max: usize, what: &str) -> std::result::Result<&'a str, String> {
    match value {
        None => Err(format!("{field} is missing")),
        Some(Text::Other(kind)) => Err(format!("{field} is {kind}, not {what}")),
        Some(Text::String { chars, .. }) if *chars > max => {
            Err(format!("{field} is {chars} characters long, more than {max}"))
        }
        Some(t) => Ok(t.as_str().unwrap_or_default()),
    }
}

/// Every ActivationRequest of the cluster, listed like the other kinds (the watch cache,
/// decoded item by item, slim fields only). The CRD is optional: not served (404), there are
/// no requests.
pub async fn list(client: &kube::Client, policy: &RetryPolicy) -> Result<Vec<ActivationRequest>> {
    let mut out = Vec::new();
    let mut pages = ApiPages {
        client,
        resource: &ACTIVATION_REQUEST,
        selector: None,
    };
    let listed = list_all(&mut pages, policy, "list ActivationRequest", |l| match l {
        Listed::Item(o) => out.push(ActivationRequest::from_slim(o)),
        Listed::Restart => out.clear(),
    })
    .await;
    match listed {
        Ok(()) => Ok(out),
        Err(crate::Error::Kube(kube::Error::Api(s))) if s.code == 404 => {
            tracing::debug!("ActivationRequest CRD not served: no self-service requests");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Whether the request is gone, read fresh (a request the list did not show, before the window
/// it holds is ended: a list from the watch cache may be a moment behind).
pub async fn gone(client: &kube::Client, policy: &RetryPolicy, namespace: &str, name: &str) -> Result<bool> {
    let what = format!("get ActivationRequest {namespace}/{name}");
    crate::scaling::retry::transient(policy, &what, || async {
        match crate::scaling::objects::get(client, &ACTIVATION_REQUEST, Some(namespace), name).await {
            Ok(_) => Ok(false),
            Err(e) if crate::scaling::retry::classify(&e) == crate::scaling::retry::Class::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    })
    .await
}

/// `s` cut to at most [`MESSAGE_MAX_BYTES`] bytes (on a character boundary, with `…`).
pub fn bounded(s: &str) -> String {
    if s.len() <= MESSAGE_MAX_BYTES {
        return s.to_string();
    }
    let mut end = MESSAGE_MAX_BYTES - '…'.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
