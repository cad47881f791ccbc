//! One run at a time: a `coordination.k8s.io/v1` Lease in the scheduler's own namespace.
//!
//! The RBAC grants no delete, so a run releases by clearing `holderIdentity`. A holder that died
//! (SIGKILL, node loss) is recognised by `renewTime + leaseDurationSeconds` in the past.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{GetParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::retry::RetryPolicy;
use super::stop::Stop;
use super::write::{self, Next, Start, Written};
use crate::error::{Error, Result};

pub const LEASE_NAME: &str = "namespace-scheduler";

fn path(namespace: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")
}

fn micro(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

async fn get(client: &kube::Client, ns: &str) -> std::result::Result<Option<Value>, kube::Error> {
    let req = Request::new(path(ns))
        .get(LEASE_NAME, &GetParams::default())
        .map_err(kube::Error::BuildRequest)?;
    write::found(client.request::<Value>(req).await)
}

async fn create_lease(client: &kube::Client, ns: &str, lease: &Value) -> std::result::Result<Value, kube::Error> {
    let body = serde_json::to_vec(lease).map_err(kube::Error::SerdeError)?;
    let req = Request::new(path(ns))
        .create(&PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    client.request(req).await
}

async fn replace(client: &kube::Client, ns: &str, lease: &Value) -> std::result::Result<Value, kube::Error> {
    let body = serde_json::to_vec(lease).map_err(kube::Error::SerdeError)?;
    let req = Request::new(path(ns))
        .replace(LEASE_NAME, &PostParams::default(), body)
        .map_err(kube::Error::BuildRequest)?;
    client.request(req).await
}

/// When the current holder's claim runs out.
fn expiry(lease: &Value) -> Option<DateTime<Utc>> {
    let spec = &lease["spec"];
    let renewed = spec["renewTime"].as_str().or(spec["acquireTime"].as_str())?;
    let renewed = DateTime::parse_from_rfc3339(renewed).ok()?.with_timezone(&Utc);
    Some(renewed + chrono::Duration::seconds(spec["leaseDurationSeconds"].as_i64().unwrap_or(0)))
}

pub struct LeaseGuard {
    client: kube::Client,
    namespace: String,
    holder: String,
    /// The last version we wrote, so renewals and the release are conditional on it.
    current: Arc<Mutex<Value>>,
    renewer: tokio::task::JoinHandle<()>,
    policy: RetryPolicy,
    stop: Arc<Stop>,
}

fn locked(ns: &str, holder: &str, until: Option<DateTime<Utc>>) -> Error {
    Error::Locked {
        lease: format!("{ns}/{LEASE_NAME}"),
        holder: holder.to_string(),
        until: until.map(super::plan::rfc3339).unwrap_or_else(|| "unknown".into()),
    }
}

/// What to do about the Lease as last read.
enum Claim {
    /// We hold it already: an earlier attempt of this run committed though its answer was lost.
    Ours(Value),
    /// Another live run holds it.
    Held(String, Option<DateTime<Utc>>),
    /// Free, expired or absent: write this (create when `create`).
    Take { lease: Value, create: bool },
}

fn claim(existing: Option<Value>, ns: &str, holder: &str, duration: i64, now: DateTime<Utc>) -> Claim {
    let Some(mut lease) = existing else {
        let lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": ns},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "acquireTime": micro(now),
                "renewTime": micro(now),
                "leaseTransitions": 0,
            },
        });
        return Claim::Take { lease, create: true };
    };
    let current_holder = lease["spec"]["holderIdentity"].as_str().unwrap_or("").to_string();
    if current_holder == holder {
        return Claim::Ours(lease);
    }
    let until = expiry(&lease);
    if !current_holder.is_empty() && until.is_some_and(|u| u > now) {
        return Claim::Held(current_holder, until);
    }
    if !current_holder.is_empty() {
        tracing::warn!(previous_holder = %current_holder, expired_at = ?until, "taking over an expired lease");
    }
    let transitions = lease["spec"]["leaseTransitions"].as_i64().unwrap_or(0) + 1;
    lease["spec"]["holderIdentity"] = json!(holder);
    lease["spec"]["leaseDurationSeconds"] = json!(duration);
    lease["spec"]["acquireTime"] = json!(micro(now));
    lease["spec"]["renewTime"] = json!(micro(now));
    lease["spec"]["leaseTransitions"] = json!(transitions);
    Claim::Take { lease, create: false }
}

/// Takes the Lease or fails with [`Error::Locked`] (exit 3) without touching anything else.
/// `duration`: how long a silent holder keeps the lock (`NS_SCHEDULER_LEASE_SECONDS`).
///
/// Through the one conditional-write path: a fresh read decides (ours already: an earlier
/// attempt committed though its answer was lost; held by another live run: exit 3; free or
/// expired: take it), and every conflict or unknown outcome is decided again from a re-read.
/// `stop` is set if the Lease is later lost, which ends the run like SIGTERM.
pub async fn acquire(
    client: &kube::Client,
    ns: &str,
    holder: &str,
    duration: i64,
    policy: &RetryPolicy,
    stop: Arc<Stop>,
) -> Result<LeaseGuard> {
    let mut held = None;
    let written = write::conditional(
        policy,
        "take the lease",
        Start::ReadFirst,
        |(lease, create): (Value, bool)| async move {
            if create {
                create_lease(client, ns, &lease).await
            } else {
                replace(client, ns, &lease).await
            }
        },
        || get(client, ns),
        |existing| match claim(existing, ns, holder, duration, Utc::now()) {
            Claim::Ours(lease) => Next::Settled(lease),
            Claim::Held(other, until) => {
                held = Some((other, until));
                Next::Nothing
            }
            Claim::Take { lease, create } => Next::Send((lease, create)),
        },
    )
    .await
    .map_err(|e| Error::Failed(format!("could not take the lease {ns}/{LEASE_NAME}: {e}")))?;
    let taken = match written {
        Written::Done(lease) => lease,
        Written::Nothing => {
            return Err(match held {
                Some((other, until)) => locked(ns, &other, until),
                None => Error::Failed(format!("the lease {ns}/{LEASE_NAME} vanished while it was being taken")),
            })
        }
        Written::Refused(message) => {
            return Err(Error::Failed(format!(
                "the lease {ns}/{LEASE_NAME} was refused: {message}"
            )))
        }
    };
    let current = Arc::new(Mutex::new(taken));
    let renewer = tokio::spawn(renew_loop(
        client.clone(),
        ns.to_string(),
        holder.to_string(),
        current.clone(),
        duration,
        policy.clone(),
        stop.clone(),
    ));
    Ok(LeaseGuard {
        client: client.clone(),
        namespace: ns.to_string(),
        holder: holder.to_string(),
        current,
        renewer,
        policy: policy.clone(),
        stop,
    })
}

/// Renews every third of the duration. The Lease is lost when another holder took it (a
/// re-read after a conflict shows so) or when no renewal succeeded for a whole duration
/// (another run may take it over from then on): the run is then stopped like on SIGTERM.
async fn renew_loop(
    client: kube::Client,
    ns: String,
    holder: String,
    current: Arc<Mutex<Value>>,
    duration: i64,
    policy: RetryPolicy,
    stop: Arc<Stop>,
) {
    let period = Duration::from_millis((duration as u64 * 1000 / 3).max(500));
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let mut lease = current.lock().await;
        let renewed = |mut l: Value| {
            l["spec"]["renewTime"] = json!(micro(Utc::now()));
            l
        };
        let mut taken_by = None;
        let written = write::conditional(
            &policy,
            "renew the lease",
            Start::With(Next::Send(renewed(lease.clone()))),
            |l: Value| {
                let (client, ns) = (&client, &ns);
                async move { replace(client, ns, &l).await }
            },
            || get(&client, &ns),
            |fresh| match fresh {
                Some(f) if f["spec"]["holderIdentity"].as_str() == Some(holder.as_str()) => Next::Send(renewed(f)),
                other => {
                    taken_by = Some(other.and_then(|f| f["spec"]["holderIdentity"].as_str().map(str::to_string)));
                    Next::Nothing
                }
            },
        )
        .await;
        match written {
            Ok(Written::Done(v)) => {
                *lease = v;
                last_renewed = tokio::time::Instant::now();
                continue;
            }
            Ok(Written::Nothing) => {
                tracing::error!(holder = ?taken_by.flatten(), "the lease was taken over while this run held it: stopping");
                stop.lease_lost();
                return;
            }
            Ok(Written::Refused(e)) => tracing::warn!(error = %e, "lease renewal refused; will retry"),
            Err(e) => tracing::warn!(error = %e, "could not renew the lease; will retry"),
        }
        if last_renewed.elapsed() >= Duration::from_secs(duration.max(0) as u64) {
            tracing::error!(
                seconds = duration,
                "the lease was not renewed for its whole duration and may be taken over: stopping"
            );
            stop.lease_lost();
            return;
        }
    }
}

impl LeaseGuard {
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Clears `holderIdentity` so the next run need not wait for expiry (unless the Lease is
    /// no longer ours).
    pub async fn release(self) {
        self.renewer.abort();
        let _ = self.renewer.await;
        if self.stop.is_lease_lost() {
            return;
        }
        let cleared = |mut l: Value| {
            l["spec"]["holderIdentity"] = Value::Null;
            l["spec"]["renewTime"] = json!(micro(Utc::now()));
            l
        };
        let lease = self.current.lock().await.clone();
        let (client, ns, holder) = (&self.client, &self.namespace, &self.holder);
        let written = write::conditional(
            &self.policy,
            "release the lease",
            Start::With(Next::Send(cleared(lease))),
            |l: Value| async move { replace(client, ns, &l).await },
            || get(client, ns),
            |fresh| match fresh {
                Some(f) if f["spec"]["holderIdentity"].as_str() == Some(holder.as_str()) => Next::Send(cleared(f)),
                _ => Next::Nothing,
            },
        )
        .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not release the lease; it expires on its own");
        }
    }
}
