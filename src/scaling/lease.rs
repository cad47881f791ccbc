//! One run at a time: a `coordination.k8s.io/v1` Lease in the scheduler's own namespace.
//!
//! The RBAC grants no delete, so a run releases by clearing `holderIdentity`. A holder that died
//! (SIGKILL, node loss) is recognised by `renewTime + leaseDurationSeconds` in the past.
//!
//! The Lease is also the journal of audits left open (docs/reference.md §6), so that closing
//! them costs a normal run nothing: its holder writes `audit-since` (the earliest
//! `timestamp_start` its records can have; with `holderIdentity` = `host/run_id` that names what
//! it may leave `in_progress`), and `audit-open` lists the runs whose audit is still open (a
//! dead holder taken over, a run that could not write some final records). The run that takes
//! the Lease gets that list ([`LeaseGuard::open_runs`]) and leaves, on release, what it could
//! not close.
//!
//! A run stops starting namespaces once its last successful renewal is as old as the Lease's
//! duration, on its own clock: a hung renewal or an unreachable apiserver cannot delay it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::retry::RetryPolicy;
use super::stop::Stop;
use super::write::{self, Next, Start, Written};
use crate::audit::journal::{parse_open_runs, OpenRun};
use crate::error::{Error, Result};

pub const LEASE_NAME: &str = "namespace-scheduler";
/// The holder's `since` (epoch seconds, as its audit records are stamped).
pub const ANN_AUDIT_SINCE: &str = "namespace-scheduler/audit-since";
/// The runs whose audit is still open: a JSON list of `{"run_id", "since"}`.
pub const ANN_AUDIT_OPEN: &str = "namespace-scheduler/audit-open";

fn api(client: &kube::Client, ns: &str) -> Api<Lease> {
    Api::namespaced(client.clone(), ns)
}

/// A Lease's time (microseconds, as the apiserver keeps it).
fn micro(t: DateTime<Utc>) -> MicroTime {
    MicroTime(Timestamp::from_microsecond(t.timestamp_micros()).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn chrono_of(t: &MicroTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(t.0.as_microsecond())
}

async fn get(client: &kube::Client, ns: &str) -> std::result::Result<Option<Lease>, kube::Error> {
    write::found(api(client, ns).get(LEASE_NAME).await)
}

async fn create_lease(client: &kube::Client, ns: &str, lease: &Lease) -> std::result::Result<Lease, kube::Error> {
    api(client, ns).create(&PostParams::default(), lease).await
}

async fn replace(client: &kube::Client, ns: &str, lease: &Lease) -> std::result::Result<Lease, kube::Error> {
    api(client, ns).replace(LEASE_NAME, &PostParams::default(), lease).await
}

fn holder_of(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// When the current holder's claim runs out.
fn expiry(lease: &Lease) -> Option<DateTime<Utc>> {
    let spec = lease.spec.as_ref()?;
    let renewed = chrono_of(spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?)?;
    Some(renewed + chrono::Duration::seconds(i64::from(spec.lease_duration_seconds.unwrap_or(0))))
}

pub struct LeaseGuard {
    client: kube::Client,
    namespace: String,
    holder: String,
    /// The last version we wrote, so renewals and the release are conditional on it.
    current: Arc<Mutex<Lease>>,
    renewer: tokio::task::JoinHandle<()>,
    policy: RetryPolicy,
    stop: Arc<Stop>,
    duration: Duration,
    open_runs: Vec<OpenRun>,
}

fn locked(ns: &str, holder: &str, until: Option<DateTime<Utc>>) -> Error {
    Error::Locked {
        lease: format!("{ns}/{LEASE_NAME}"),
        holder: holder.to_string(),
        until: until.map(super::plan::rfc3339).unwrap_or_else(|| "unknown".into()),
    }
}

/// What to do about the Lease as last read.
#[derive(Debug)]
enum Claim {
    /// We hold it already: an earlier attempt of this run committed though its answer was lost.
    Ours(Lease),
    /// Another live run holds it.
    Held(String, Option<DateTime<Utc>>),
    /// Free, expired or absent: write this (create when `create`).
    Take { lease: Lease, create: bool },
}

/// What this run writes when it takes the Lease, beside the spec.
struct Taker<'a> {
    holder: &'a str,
    duration: i64,
    /// This run's `since` (see [`ANN_AUDIT_SINCE`]).
    since: f64,
}

fn annotation<'v>(lease: &'v Lease, key: &str) -> Option<&'v str> {
    lease.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The runs listed open on the Lease; an unreadable list is named and read as empty (someone
/// edited it: there is nothing better to do than say so).
pub fn listed_open_runs(lease: &Lease) -> Vec<OpenRun> {
    parse_open_runs(annotation(lease, ANN_AUDIT_OPEN)).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the lease's list of open audit runs does not read; ignored");
        Vec::new()
    })
}

/// The run that held an expired Lease, as a run whose audit may be open: its run id (the part
/// of `holderIdentity` after the last `/`) and its `since` (its annotation; else its
/// `acquireTime`, which an older binary wrote; else the beginning of time).
fn dead_holder(lease: &Lease) -> Option<OpenRun> {
    let holder = holder_of(lease).filter(|h| !h.is_empty())?;
    let run_id = holder.rsplit_once('/').map_or(holder, |(_, id)| id).to_string();
    let since = annotation(lease, ANN_AUDIT_SINCE)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .or_else(|| {
            let t = lease.spec.as_ref()?.acquire_time.as_ref()?;
            Some(chrono_of(t)?.timestamp() as f64)
        })
        .unwrap_or(0.0);
    Some(OpenRun { run_id, since })
}

/// `runs` plus `run`, one entry per run id (the earliest `since` kept).
pub fn with_run(mut runs: Vec<OpenRun>, run: OpenRun) -> Vec<OpenRun> {
    match runs.iter_mut().find(|r| r.run_id == run.run_id) {
        Some(r) => r.since = r.since.min(run.since),
        None => runs.push(run),
    }
    runs
}

fn set_annotations(lease: &mut Lease, open: &[OpenRun], since: Option<f64>) {
    let annotations = lease.metadata.annotations.get_or_insert_default();
    if open.is_empty() {
        annotations.remove(ANN_AUDIT_OPEN);
    } else {
        annotations.insert(ANN_AUDIT_OPEN.into(), serde_json::to_string(open).expect("serializes"));
    }
    match since {
        Some(s) => annotations.insert(ANN_AUDIT_SINCE.into(), format!("{s}")),
        None => annotations.remove(ANN_AUDIT_SINCE),
    };
}

fn claim(existing: Option<Lease>, ns: &str, me: &Taker, now: DateTime<Utc>) -> Claim {
    let (holder, duration) = (me.holder, i32::try_from(me.duration).unwrap_or(i32::MAX));
    let Some(mut lease) = existing else {
        let mut lease = Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(duration),
                acquire_time: Some(micro(now)),
                renew_time: Some(micro(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        set_annotations(&mut lease, &[], Some(me.since));
        return Claim::Take { lease, create: true };
    };
    let current_holder = holder_of(&lease).unwrap_or("").to_string();
    if current_holder == holder {
        return Claim::Ours(lease);
    }
    let until = expiry(&lease);
    if !current_holder.is_empty() && until.is_some_and(|u| u > now) {
        return Claim::Held(current_holder, until);
    }
    let mut open = listed_open_runs(&lease);
    if let Some(dead) = dead_holder(&lease) {
        tracing::warn!(previous_holder = %current_holder, expired_at = ?until, "taking over an expired lease: its holder died; its audit will be closed");
        // Listed in the same write that takes the Lease: if this run dies too, the next knows.
        open = with_run(open, dead);
    }
    let spec = lease.spec.get_or_insert_default();
    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    spec.holder_identity = Some(holder.into());
    spec.lease_duration_seconds = Some(duration);
    spec.acquire_time = Some(micro(now));
    spec.renew_time = Some(micro(now));
    set_annotations(&mut lease, &open, Some(me.since));
    Claim::Take { lease, create: false }
}

/// Takes the Lease or fails with [`Error::Locked`] (exit 3) without touching anything else.
/// `duration`: how long a silent holder keeps the lock (`NS_SCHEDULER_LEASE_SECONDS`); `since`:
/// the earliest `timestamp_start` this run's audit records can have (see [`ANN_AUDIT_SINCE`]).
///
/// Through the one conditional-write path: a fresh read decides (ours already: an earlier
/// attempt committed though its answer was lost; held by another live run: exit 3; free or
/// expired: take it), and every conflict or unknown outcome is decided again from a re-read.
/// `stop` is set if the Lease is later lost, which ends the run like SIGTERM.
pub async fn acquire(
    client: &kube::Client,
    ns: &str,
    holder: &str,
    (duration, since): (i64, f64),
    policy: &RetryPolicy,
    stop: Arc<Stop>,
) -> Result<LeaseGuard> {
    // The claim is at most as old as this instant: the local deadline counts from here.
    let begun = Instant::now();
    let me = Taker {
        holder,
        duration,
        since,
    };
    let mut held = None;
    let written = write::conditional(
        policy,
        "take the lease",
        Start::ReadFirst,
        |(lease, create): (Lease, bool)| async move {
            if create {
                create_lease(client, ns, &lease).await
            } else {
                replace(client, ns, &lease).await
            }
        },
        || get(client, ns),
        |existing| match claim(existing, ns, &me, Utc::now()) {
            Claim::Ours(lease) => Next::Settled(lease),
            Claim::Held(other, until) => {
                held = Some((other, until));
                Next::Nothing
            }
            Claim::Take { lease, create } => Next::Send((lease, create)),
        },
    )
    .await
    .map_err(|e| Error::failed_from(format!("could not take the lease {ns}/{LEASE_NAME}: {e}"), e))?;
    let taken = match written {
        Written::Done(lease) => lease,
        Written::Nothing => {
            return Err(match held {
                Some((other, until)) => locked(ns, &other, until),
                None => Error::failed(format!("the lease {ns}/{LEASE_NAME} vanished while it was being taken")),
            })
        }
        Written::Refused(message) => {
            return Err(Error::failed(format!(
                "the lease {ns}/{LEASE_NAME} was refused: {message}"
            )))
        }
    };
    let open_runs = listed_open_runs(&taken);
    let current = Arc::new(Mutex::new(taken));
    let duration = Duration::from_secs(duration.max(0) as u64);
    let renewer = tokio::spawn(
        Renewer {
            client: client.clone(),
            ns: ns.to_string(),
            holder: holder.to_string(),
            current: current.clone(),
            duration,
            policy: policy.clone(),
            stop: stop.clone(),
        }
        .run(begun + duration),
    );
    Ok(LeaseGuard {
        client: client.clone(),
        namespace: ns.to_string(),
        holder: holder.to_string(),
        current,
        renewer,
        policy: policy.clone(),
        stop,
        duration,
        open_runs,
    })
}

struct Renewer {
    client: kube::Client,
    ns: String,
    holder: String,
    current: Arc<Mutex<Lease>>,
    duration: Duration,
    policy: RetryPolicy,
    stop: Arc<Stop>,
}

impl Renewer {
    /// Renews every third of the duration. The Lease is lost when another holder took it (a
    /// re-read after a conflict shows so), or at `deadline`: the instant the last successful
    /// renewal's `renewTime` was stamped, plus the duration, on this process's clock — whatever
    /// the apiserver answers or does not (a renewal still hanging then is abandoned). From then
    /// on another run may take the Lease over, so this one is stopped like on SIGTERM.
    async fn run(self, mut deadline: Instant) {
        let period = Duration::from_millis((self.duration.as_millis() as u64 / 3).max(500));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = tokio::time::sleep_until(deadline) => return self.expired(),
            }
            let mut lease = self.current.lock().await;
            let mut taken_by = None;
            let written = tokio::select! {
                w = self.renew(&lease, &mut taken_by) => w,
                _ = tokio::time::sleep_until(deadline) => return self.expired(),
            };
            match written {
                Ok(Written::Done((v, stamped))) => {
                    *lease = v;
                    deadline = stamped + self.duration;
                }
                Ok(Written::Nothing) => {
                    tracing::error!(holder = ?taken_by.flatten(), "the lease was taken over while this run held it: stopping");
                    self.stop.lease_lost();
                    return;
                }
                Ok(Written::Refused(e)) => tracing::warn!(error = %e, "lease renewal refused; will retry"),
                Err(e) => tracing::warn!(error = %e, "could not renew the lease; will retry"),
            }
        }
    }

    /// One renewal through the write path: the stored Lease and the instant its `renewTime`
    /// was stamped (a resent request keeps its stamp, so the deadline never runs ahead of it).
    async fn renew(
        &self,
        lease: &Lease,
        taken_by: &mut Option<Option<String>>,
    ) -> std::result::Result<Written<(Lease, Instant)>, write::WriteFailed> {
        let renewed = |mut l: Lease| {
            let stamped = Instant::now();
            l.spec.get_or_insert_default().renew_time = Some(micro(Utc::now()));
            (l, stamped)
        };
        let (client, ns, holder) = (&self.client, &self.ns, &self.holder);
        write::conditional(
            &self.policy,
            "renew the lease",
            Start::With(Next::Send(renewed(lease.clone()))),
            |(l, stamped): (Lease, Instant)| async move { replace(client, ns, &l).await.map(|v| (v, stamped)) },
            || get(client, ns),
            |fresh| match fresh {
                Some(f) if holder_of(&f) == Some(holder.as_str()) => Next::Send(renewed(f)),
                other => {
                    *taken_by = Some(other.as_ref().and_then(holder_of).map(str::to_string));
                    Next::Nothing
                }
            },
        )
        .await
    }

    fn expired(&self) {
        tracing::error!(
            seconds = self.duration.as_secs(),
            "the lease was not renewed within its duration (this process's clock) and may be taken over: stopping"
        );
        self.stop.lease_lost();
    }
}

impl LeaseGuard {
    /// The runs whose audit was open when this run took the Lease (listed, or the dead holder
    /// it took over): this run closes them.
    pub fn open_runs(&self) -> &[OpenRun] {
        &self.open_runs
    }

    /// Clears `holderIdentity` so the next run need not wait for expiry, and leaves `open` as
    /// the runs whose audit is still open (those this run could not close, and itself if some
    /// of its final records could not be written). A Lease no longer ours is left to its holder;
    /// only `own`, if any, is added to its list so that a later run closes it. Bounded by the
    /// Lease's duration: an unreachable apiserver cannot keep the run from exiting.
    pub async fn release(self, open: Vec<OpenRun>, own: Option<OpenRun>) {
        self.renewer.abort();
        let _ = self.renewer.await;
        let lost = self.stop.is_lease_lost();
        if lost && own.is_none() {
            return;
        }
        let open = match own.clone() {
            Some(run) => with_run(open, run),
            None => open,
        };
        let cleared = |mut l: Lease| {
            let spec = l.spec.get_or_insert_default();
            spec.holder_identity = None;
            spec.renew_time = Some(micro(Utc::now()));
            set_annotations(&mut l, &open, None);
            l
        };
        let noted = |mut l: Lease, run: &OpenRun| {
            let listed = with_run(listed_open_runs(&l), run.clone());
            let since = annotation(&l, ANN_AUDIT_SINCE).and_then(|v| v.parse().ok());
            set_annotations(&mut l, &listed, since);
            l
        };
        let lease = self.current.lock().await.clone();
        let (client, ns, holder) = (&self.client, &self.namespace, &self.holder);
        let start = if lost {
            Start::ReadFirst
        } else {
            Start::With(Next::Send(cleared(lease)))
        };
        let written = write::conditional(
            &self.policy,
            "release the lease",
            start,
            |l: Lease| async move { replace(client, ns, &l).await },
            || get(client, ns),
            |fresh| match (fresh, &own) {
                (Some(f), _) if holder_of(&f) == Some(holder.as_str()) => Next::Send(cleared(f)),
                (Some(f), Some(run)) => Next::Send(noted(f, run)),
                _ => Next::Nothing,
            },
        );
        match tokio::time::timeout(self.duration.max(Duration::from_secs(1)), written).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, open = ?open, "could not release the lease; it expires on its own")
            }
            Err(_) => {
                tracing::warn!(open = ?open, "releasing the lease took longer than its duration; it expires on its own")
            }
        }
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
