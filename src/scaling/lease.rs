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

use super::retry::{self, Class, RetryPolicy};
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
    match client.request::<Value>(req).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if retry::classify(&e) == Class::NotFound => Ok(None),
        Err(e) => Err(e),
    }
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
/// Every failed write is followed by a fresh read, which decides: ours (the write committed but
/// its answer was lost: carry on), held by another live run (it won: exit 3), or still free
/// (transient failure: back off and try again, like every other write).
pub async fn acquire(
    client: &kube::Client,
    ns: &str,
    holder: &str,
    duration: i64,
    policy: &RetryPolicy,
) -> Result<LeaseGuard> {
    let mut attempt = 0;
    let taken = loop {
        let existing = retry::transient(policy, "get lease", || get(client, ns)).await?;
        let (lease, create) = match claim(existing, ns, holder, duration, Utc::now()) {
            Claim::Ours(lease) => break lease,
            Claim::Held(other, until) => return Err(locked(ns, &other, until)),
            Claim::Take { lease, create } => (lease, create),
        };
        // A create fails with 409 if someone created it since our read; a replace carries the
        // resourceVersion we read, so it fails with 409 if anyone wrote since.
        let written = if create {
            let body = serde_json::to_vec(&lease)?;
            let req = Request::new(path(ns))
                .create(&PostParams::default(), body)
                .map_err(kube::Error::BuildRequest)?;
            client.request::<Value>(req).await
        } else {
            replace(client, ns, &lease).await
        };
        let err = match written {
            Ok(v) => break v,
            Err(e) => e,
        };
        let wait = match retry::classify(&err) {
            Class::Conflict => None,
            Class::Transient(hint) => Some(policy.delay(attempt, hint)),
            Class::NotFound | Class::Permanent => return Err(err.into()),
        };
        attempt += 1;
        if attempt >= policy.attempts {
            return Err(err.into());
        }
        tracing::warn!(error = %err, attempt, "lease write failed; reading it again");
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    };
    let current = Arc::new(Mutex::new(taken));
    let renewer = tokio::spawn(renew_loop(
        client.clone(),
        ns.to_string(),
        holder.to_string(),
        current.clone(),
        duration,
    ));
    Ok(LeaseGuard {
        client: client.clone(),
        namespace: ns.to_string(),
        holder: holder.to_string(),
        current,
        renewer,
    })
}

async fn renew_loop(client: kube::Client, ns: String, holder: String, current: Arc<Mutex<Value>>, duration: i64) {
    let period = Duration::from_millis((duration as u64 * 1000 / 3).max(500));
    loop {
        tokio::time::sleep(period).await;
        let mut lease = current.lock().await;
        let mut next = lease.clone();
        next["spec"]["renewTime"] = json!(micro(Utc::now()));
        match replace(&client, &ns, &next).await {
            Ok(v) => *lease = v,
            // Our version is stale (a lost answer to our own renewal, or a take-over): re-read.
            Err(e) if retry::classify(&e) == Class::Conflict => match get(&client, &ns).await {
                Ok(Some(fresh)) if fresh["spec"]["holderIdentity"].as_str() == Some(holder.as_str()) => *lease = fresh,
                Ok(fresh) => {
                    let by = fresh
                        .as_ref()
                        .and_then(|f| f["spec"]["holderIdentity"].as_str().map(str::to_string));
                    tracing::error!(holder = ?by, "the lease was taken over while this run held it");
                }
                Err(e) => tracing::warn!(error = %e, "could not re-read the lease; will retry"),
            },
            Err(e) => tracing::warn!(error = %e, "could not renew the lease; will retry"),
        }
    }
}

impl LeaseGuard {
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Clears `holderIdentity` so the next run need not wait for expiry.
    pub async fn release(self) {
        self.renewer.abort();
        let _ = self.renewer.await;
        let mut lease = self.current.lock().await.clone();
        for _ in 0..3 {
            lease["spec"]["holderIdentity"] = Value::Null;
            lease["spec"]["renewTime"] = json!(micro(Utc::now()));
            match replace(&self.client, &self.namespace, &lease).await {
                Ok(_) => return,
                Err(e) if retry::classify(&e) == Class::Conflict => match get(&self.client, &self.namespace).await {
                    Ok(Some(fresh)) if fresh["spec"]["holderIdentity"].as_str() == Some(self.holder.as_str()) => {
                        lease = fresh
                    }
                    _ => return,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "could not release the lease; it expires on its own");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
