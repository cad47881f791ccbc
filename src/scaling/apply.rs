//! Applying a namespace's plan: parallel conditional writes, retries, and rollback to the
//! starting state when a write still fails.
//!
//! Every write is a merge patch carrying the resourceVersion we last saw. A 409 means the object
//! changed: we re-read it, and if it already holds what we meant to write (say, our earlier
//! attempt committed but the response was lost) the write is done; otherwise the change is
//! recomputed from the fresh object with the same rules as the plan.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::inventory::Workload;
use super::objects::{self, Kind, Slim};
use super::plan::{
    decide, state_patch, with_resource_version, Change, Decision, FieldState, NamespaceChange, NamespacePlan, NsMeta,
    Target,
};
use super::retry::{self, Class, RetryPolicy};
use crate::audit::ResourceChange;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NsStatus {
    /// Every write done.
    Completed,
    /// Nothing to change.
    Unchanged,
    /// A write failed; every applied change was reverted.
    RolledBack,
    /// A write failed and the namespace was left partly changed (rollback disabled or failed).
    Failed,
    /// Not started because the run was asked to stop (SIGTERM).
    NotProcessed,
}

impl NsStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            NsStatus::Completed => "completed",
            NsStatus::Unchanged => "unchanged",
            NsStatus::RolledBack => "rolled_back",
            NsStatus::Failed => "failed",
            NsStatus::NotProcessed => "not_processed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NamespaceOutcome {
    pub namespace: String,
    pub status: NsStatus,
    /// Changes that took effect (or, after a rollback, were applied and then reverted).
    pub resources: Vec<ResourceChange>,
    pub error: Option<String>,
    pub started: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
}

/// A namespace's writes start or are refused as one: SIGTERM stops namespaces that have not
/// sent a write yet, never one halfway.
const NOT_STARTED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

struct NsGate<'a> {
    state: AtomicU8,
    failed: AtomicBool,
    cancel: &'a AtomicBool,
}

impl NsGate<'_> {
    /// Whether a new write of this namespace may be sent.
    fn admit(&self) -> bool {
        if self.failed.load(Ordering::SeqCst) {
            return false;
        }
        let want = if self.cancel.load(Ordering::SeqCst) {
            CANCELLED
        } else {
            STARTED
        };
        let _ = self
            .state
            .compare_exchange(NOT_STARTED, want, Ordering::SeqCst, Ordering::SeqCst);
        self.state.load(Ordering::SeqCst) == STARTED
    }
}

enum Wrote<T> {
    Applied(T, Option<String>),
    /// Nothing to do any more (someone else got there, or the object is gone).
    Nothing,
    /// Not sent: the namespace failed or the run is stopping.
    Refused,
}

/// A failed write: the message, and the change in case it committed without our knowing.
type WriteError<T> = (String, T);

pub struct Applier {
    pub client: kube::Client,
    pub policy: RetryPolicy,
    pub rollback_enabled: bool,
    pub cancel: Arc<AtomicBool>,
    semaphore: Semaphore,
    writes: AtomicUsize,
}

impl Applier {
    pub fn new(
        client: kube::Client,
        policy: RetryPolicy,
        concurrency: usize,
        rollback_enabled: bool,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        Applier {
            client,
            policy,
            rollback_enabled,
            cancel,
            semaphore: Semaphore::new(concurrency.max(1)),
            writes: AtomicUsize::new(0),
        }
    }

    /// A slot of the write semaphore: every write of the run (workloads, Namespaces, Events)
    /// holds one while its request is out, so at most `SCALE_CONCURRENCY` are in flight however
    /// many namespaces are.
    pub async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.semaphore.acquire().await.expect("semaphore never closed")
    }

    /// Write requests sent so far (attempts included).
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::Relaxed)
    }

    async fn send(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Slim, kube::Error> {
        let _permit = self.permit().await;
        self.writes.fetch_add(1, Ordering::Relaxed);
        objects::merge_patch(&self.client, kind, ns, name, patch).await
    }

    async fn read(&self, kind: Kind, ns: Option<&str>, name: &str) -> Result<Option<Slim>, String> {
        let what = format!("get {kind} {}/{name}", ns.unwrap_or(""));
        match retry::transient(&self.policy, &what, || objects::get(&self.client, kind, ns, name)).await {
            Ok(o) => Ok(Some(o)),
            Err(crate::Error::Kube(e)) if retry::classify(&e) == Class::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    pub async fn apply_namespace(&self, plan: &NamespacePlan) -> NamespaceOutcome {
        let (started, clock) = (chrono::Utc::now(), Instant::now());
        let mut outcome = NamespaceOutcome {
            namespace: plan.namespace.clone(),
            status: NsStatus::Unchanged,
            resources: Vec::new(),
            error: None,
            started,
            duration_ms: 0,
        };
        if plan.is_noop() {
            return outcome;
        }
        let gate = NsGate {
            state: AtomicU8::new(NOT_STARTED),
            failed: AtomicBool::new(false),
            cancel: &self.cancel,
        };
        // The Namespace's status label leads on the way up and trails on the way down: "active"
        // must be true before pods are created (admission policies such as the Kyverno component
        // key on it), and "inactive" only once the workloads are.
        let label_first = plan.target == Target::Up;
        let (mut done, mut uncertain, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        let (mut ns_done, mut ns_uncertain) = (None, None);
        if label_first && plan.namespace_change.is_some() && gate.admit() {
            self.namespace_step(plan, &mut ns_done, &mut ns_uncertain, &mut errors)
                .await;
        }
        if errors.is_empty() {
            let results = join_all(plan.changes.iter().map(|c| async {
                let r = self.write_workload(&gate, c.clone(), plan.target).await;
                if r.is_err() {
                    gate.failed.store(true, Ordering::SeqCst);
                }
                r
            }))
            .await;
            for r in results {
                match r {
                    Ok(Wrote::Applied(c, rv)) => done.push((c, rv)),
                    Ok(Wrote::Nothing | Wrote::Refused) => {}
                    Err((e, c)) => {
                        errors.push(format!("{} {}: {e}", c.kind, c.name));
                        uncertain.push(c);
                    }
                }
            }
        }
        if plan.changes.is_empty() {
            // Only the Namespace itself changes: it still must not start after a signal.
            gate.admit();
        }
        if gate.state.load(Ordering::SeqCst) == CANCELLED {
            outcome.status = NsStatus::NotProcessed;
            outcome.error = Some("not started: the run was asked to stop".into());
            return outcome;
        }
        if !label_first && errors.is_empty() {
            self.namespace_step(plan, &mut ns_done, &mut ns_uncertain, &mut errors)
                .await;
        }
        outcome.resources = done.iter().map(|(c, _)| c.resource()).collect();
        outcome.duration_ms = clock.elapsed().as_millis() as u64;
        if errors.is_empty() {
            outcome.status = NsStatus::Completed;
            return outcome;
        }
        let mut error = errors.join("; ");
        if !self.rollback_enabled {
            outcome.status = NsStatus::Failed;
            outcome.error = Some(format!("{error} (rollback disabled: left as is)"));
            return outcome;
        }
        tracing::warn!(namespace = %plan.namespace, error = %error, "rolling back the namespace");
        let mut rollback_errors = Vec::new();
        if let Some((c, rv, unsure)) = ns_done
            .map(|(c, rv)| (c, rv, false))
            .or(ns_uncertain.map(|c| (c, None, true)))
        {
            if let Err(e) = self.revert_namespace(&plan.namespace, &c, rv, unsure).await {
                rollback_errors.push(format!("Namespace {}: {e}", plan.namespace));
            }
        }
        let reverts = done
            .iter()
            .map(|(c, rv)| (c, rv.clone(), false))
            .chain(uncertain.iter().map(|c| (c, None, true)))
            .map(|(c, rv, unsure)| async move {
                self.revert_workload(c, rv, unsure)
                    .await
                    .map_err(|e| format!("{} {}: {e}", c.kind, c.name))
            });
        rollback_errors.extend(join_all(reverts).await.into_iter().filter_map(Result::err));
        if rollback_errors.is_empty() {
            outcome.status = NsStatus::RolledBack;
        } else {
            outcome.status = NsStatus::Failed;
            error = format!("{error}; rollback failed: {}", rollback_errors.join("; "));
        }
        outcome.error = Some(error);
        outcome.duration_ms = clock.elapsed().as_millis() as u64;
        outcome
    }

    /// Writes the Namespace's own labels/annotations, recording what took effect (or may have).
    async fn namespace_step(
        &self,
        plan: &NamespacePlan,
        done: &mut Option<(NamespaceChange, Option<String>)>,
        uncertain: &mut Option<NamespaceChange>,
        errors: &mut Vec<String>,
    ) {
        let Some(nc) = &plan.namespace_change else { return };
        match self
            .write_namespace(&plan.namespace, nc.clone(), plan.resource_version.clone())
            .await
        {
            Ok(Wrote::Applied(c, rv)) => *done = Some((c, rv)),
            Ok(_) => {}
            Err((e, c)) => {
                errors.push(format!("Namespace {}: {e}", plan.namespace));
                *uncertain = Some(c);
            }
        }
    }

    async fn write_workload(
        &self,
        gate: &NsGate<'_>,
        mut change: Change,
        target: Target,
    ) -> Result<Wrote<Change>, WriteError<Change>> {
        if !gate.admit() {
            return Ok(Wrote::Refused);
        }
        let mut rv = change.resource_version.clone();
        let mut attempt = 0;
        loop {
            let patch = with_resource_version(state_patch(change.kind, &change.after), rv.as_deref());
            let err = match self
                .send(change.kind, Some(&change.namespace), &change.name, &patch)
                .await
            {
                Ok(o) => return Ok(Wrote::Applied(change, o.metadata.resource_version)),
                Err(e) => e,
            };
            attempt += 1;
            let class = retry::classify(&err);
            if attempt >= self.policy.attempts || class == Class::Permanent {
                return Err((err.to_string(), change));
            }
            tracing::debug!(kind = %change.kind, name = %change.name, error = %err, attempt, "write failed; retrying");
            match class {
                Class::Conflict => {
                    let fresh = match self.read(change.kind, Some(&change.namespace), &change.name).await {
                        Ok(Some(o)) => Workload::from_slim(change.kind, o),
                        Ok(None) => return Ok(Wrote::Nothing),
                        Err(e) => return Err((e, change)),
                    };
                    if FieldState::of(&fresh) == change.after {
                        // Our earlier attempt committed even though we never saw the answer.
                        return Ok(Wrote::Applied(change, fresh.resource_version));
                    }
                    match decide(&fresh, target) {
                        Decision::Change(c) => {
                            rv = c.resource_version.clone();
                            change = *c;
                        }
                        Decision::AtTarget | Decision::Skip(_) => return Ok(Wrote::Nothing),
                    }
                }
                // Same patch, same resourceVersion: if the lost attempt committed, the retry
                // gets a 409 and the branch above sees it.
                Class::Transient(hint) => tokio::time::sleep(self.policy.delay(attempt - 1, hint)).await,
                Class::NotFound => return Ok(Wrote::Nothing),
                Class::Permanent => unreachable!("returned above"),
            }
        }
    }

    /// Restores what `change` touched. If someone changed the value since, theirs is kept and
    /// only our marker goes back to what it was.
    async fn revert_workload(&self, change: &Change, mut rv: Option<String>, unsure: bool) -> Result<(), String> {
        let ns = Some(change.namespace.as_str());
        let mut current = None;
        if unsure || rv.is_none() {
            current = Some(self.read(change.kind, ns, &change.name).await?);
        }
        let mut last = String::new();
        for attempt in 0..self.policy.attempts {
            let goal = match current.take() {
                None => change.before.clone(),
                Some(None) => return Ok(()),
                Some(Some(o)) => {
                    let w = Workload::from_slim(change.kind, o);
                    let now = FieldState::of(&w);
                    rv = w.resource_version.clone();
                    let goal = if now.setting == change.after.setting {
                        change.before.clone()
                    } else {
                        FieldState {
                            setting: now.setting.clone(),
                            marker: change.before.marker.clone(),
                        }
                    };
                    if now == goal {
                        return Ok(());
                    }
                    goal
                }
            };
            let patch = with_resource_version(state_patch(change.kind, &goal), rv.as_deref());
            match self.send(change.kind, ns, &change.name, &patch).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    last = e.to_string();
                    match retry::classify(&e) {
                        Class::Conflict => current = Some(self.read(change.kind, ns, &change.name).await?),
                        Class::Transient(hint) => tokio::time::sleep(self.policy.delay(attempt, hint)).await,
                        Class::NotFound => return Ok(()),
                        Class::Permanent => return Err(last),
                    }
                }
            }
        }
        Err(last)
    }

    async fn write_namespace(
        &self,
        name: &str,
        mut change: NamespaceChange,
        mut rv: Option<String>,
    ) -> Result<Wrote<NamespaceChange>, WriteError<NamespaceChange>> {
        let mut attempt = 0;
        loop {
            let patch = with_resource_version(change.patch(), rv.as_deref());
            let err = match self.send(Kind::Namespace, None, name, &patch).await {
                Ok(o) => return Ok(Wrote::Applied(change, o.metadata.resource_version)),
                Err(e) => e,
            };
            attempt += 1;
            let class = retry::classify(&err);
            if attempt >= self.policy.attempts || class == Class::Permanent {
                return Err((err.to_string(), change));
            }
            match class {
                Class::Conflict => {
                    let fresh = match self.read(Kind::Namespace, None, name).await {
                        Ok(Some(o)) => o,
                        Ok(None) => return Ok(Wrote::Nothing),
                        Err(e) => return Err((e, change)),
                    };
                    let now = NsMeta::of(&fresh.metadata.labels, &fresh.metadata.annotations);
                    if now == change.after {
                        return Ok(Wrote::Applied(change, fresh.metadata.resource_version));
                    }
                    // Someone else edited the Namespace (e.g. a team annotating a request):
                    // our keys are ours, so re-apply them over the fresh object.
                    change.before = now;
                    rv = fresh.metadata.resource_version;
                }
                Class::Transient(hint) => tokio::time::sleep(self.policy.delay(attempt - 1, hint)).await,
                Class::NotFound => return Ok(Wrote::Nothing),
                Class::Permanent => unreachable!("returned above"),
            }
        }
    }

    async fn revert_namespace(
        &self,
        name: &str,
        change: &NamespaceChange,
        mut rv: Option<String>,
        reread: bool,
    ) -> Result<(), String> {
        let mut current = None;
        if reread || rv.is_none() {
            current = Some(self.read(Kind::Namespace, None, name).await?);
        }
        let mut last = String::new();
        for attempt in 0..self.policy.attempts {
            let patch = match current.take() {
                None => change.after.patch_to(&change.before),
                Some(None) => return Ok(()),
                Some(Some(o)) => {
                    let now = NsMeta::of(&o.metadata.labels, &o.metadata.annotations);
                    rv = o.metadata.resource_version;
                    if now == change.before {
                        return Ok(());
                    }
                    now.patch_to(&change.before)
                }
            };
            match self
                .send(
                    Kind::Namespace,
                    None,
                    name,
                    &with_resource_version(patch, rv.as_deref()),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => {
                    last = e.to_string();
                    match retry::classify(&e) {
                        Class::Conflict => current = Some(self.read(Kind::Namespace, None, name).await?),
                        Class::Transient(hint) => tokio::time::sleep(self.policy.delay(attempt, hint)).await,
                        Class::NotFound => return Ok(()),
                        Class::Permanent => return Err(last),
                    }
                }
            }
        }
        Err(last)
    }
}
