//! Applying a namespace's plan: its writes in parallel, each through the one conditional-write
//! path ([`super::write`]), and rollback to the starting state when a write still fails.
//!
//! A workload's write the API refuses for good (403/422: an admission policy freezing a legacy
//! Deployment, say) is not a failure: nothing changed, so that object is skipped and named, and
//! the rest of the namespace still reaches its target. Rolling the namespace back would only make
//! it flap at every run. The Namespace's own write (status label, window) is different: refused,
//! the namespace has not reached its target, and it fails like any write that still fails after
//! the retries — it is rolled back (or, with rollback disabled, left and reported `failed`).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use kube::core::ApiResource;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::inventory::Workload;
use super::kinds::Kind;
use super::objects::{self, Slim};
use super::plan::{
    decide, state_patch, with_resource_version, Change, Decision, FieldState, NamespaceChange, NamespacePlan, NsMeta,
    Target,
};
use super::retry::RetryPolicy;
use super::stop::Stop;
use super::write::{self, Next, Start, WriteFailed, Written};
use crate::audit::ResourceChange;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NsStatus {
    /// Every write done, or refused for good (those objects are named as refused).
    Completed,
    /// Nothing to change.
    Unchanged,
    /// A write failed; every applied change was reverted.
    RolledBack,
    /// A write failed and the namespace was left partly changed (rollback disabled or failed).
    Failed,
    /// Not started because the run was stopped (SIGTERM, or the Lease was lost).
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

/// An object the API refused to change, with its message: skipped, nothing changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refusal {
    pub kind: Kind,
    pub name: String,
    pub from: String,
    pub to: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct NamespaceOutcome {
    pub status: NsStatus,
    /// Changes that took effect (or, after a rollback, were applied and then reverted).
    pub resources: Vec<ResourceChange>,
    /// Objects whose write the API refused for good.
    pub refused: Vec<Refusal>,
    pub error: Option<String>,
    pub started: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
}

/// A namespace's writes start or are refused as one: a stop (SIGTERM, a lost Lease) prevents
/// namespaces that have not sent a write yet, never one halfway.
const NOT_STARTED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

struct NsGate<'a> {
    state: AtomicU8,
    failed: AtomicBool,
    stop: &'a Stop,
}

impl NsGate<'_> {
    /// Whether a new write of this namespace may be sent.
    fn admit(&self) -> bool {
        if self.failed.load(Ordering::SeqCst) {
            return false;
        }
        let want = if self.stop.is_set() { CANCELLED } else { STARTED };
        let _ = self
            .state
            .compare_exchange(NOT_STARTED, want, Ordering::SeqCst, Ordering::SeqCst);
        self.state.load(Ordering::SeqCst) == STARTED
    }
}

/// How one planned write ended.
enum Step<C> {
    /// Took effect: the change (as finally made) and the object's new resourceVersion.
    Applied(C, Option<String>),
    /// Nothing to do any more (someone else got there, or the object is gone), or not sent
    /// because the namespace failed or the run is stopping.
    Nothing,
    /// Refused for good by the API: nothing changed.
    Refused(C, String),
    /// Still failing after retries: it may have committed.
    Failed(C, String),
}

pub struct Applier {
    pub client: kube::Client,
    pub policy: RetryPolicy,
    pub rollback_enabled: bool,
    pub stop: Arc<Stop>,
    semaphore: Semaphore,
    writes: AtomicUsize,
}

impl Applier {
    pub fn new(
        client: kube::Client,
        policy: RetryPolicy,
        concurrency: usize,
        rollback_enabled: bool,
        stop: Arc<Stop>,
    ) -> Self {
        Applier {
            client,
            policy,
            rollback_enabled,
            stop,
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
        resource: &ApiResource,
        ns: Option<&str>,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Slim, kube::Error> {
        let _permit = self.permit().await;
        self.writes.fetch_add(1, Ordering::Relaxed);
        objects::merge_patch(&self.client, resource, ns, name, patch).await
    }

    /// One object through [`write::conditional`]: merge patches under the semaphore, re-reads
    /// by GET, `decide` on each fresh read.
    async fn converge(
        &self,
        resource: &ApiResource,
        ns: Option<&str>,
        name: &str,
        start: Start<serde_json::Value, Slim>,
        decide: impl FnMut(Option<Slim>) -> Next<serde_json::Value, Slim>,
    ) -> Result<Written<Slim>, WriteFailed> {
        let what = format!("{} {}/{name}", resource.kind, ns.unwrap_or(""));
        write::conditional(
            &self.policy,
            &what,
            start,
            |patch: serde_json::Value| async move { self.send(resource, ns, name, &patch).await },
            || async move { write::found(objects::get(&self.client, resource, ns, name).await) },
            decide,
        )
        .await
    }

    pub async fn apply_namespace(&self, plan: &NamespacePlan) -> NamespaceOutcome {
        let (started, clock) = (chrono::Utc::now(), Instant::now());
        let mut outcome = NamespaceOutcome {
            status: NsStatus::Unchanged,
            resources: Vec::new(),
            refused: Vec::new(),
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
            stop: &self.stop,
        };
        // The Namespace's status label leads on the way up and trails on the way down: "active"
        // must be true before pods are created (admission policies such as the Kyverno component
        // key on it), and "inactive" only once the workloads are. Unlike a workload's, the
        // Namespace's own write is never "refused and skipped": without its label and window
        // the namespace has not reached its target, so a refusal fails it like an error.
        let label_first = plan.target == Target::Up;
        let mut ns_step = None;
        let mut steps = Vec::new();
        if label_first && gate.admit() {
            ns_step = self.namespace_step(plan).await;
        }
        if !matches!(ns_step, Some(Step::Failed(..) | Step::Refused(..))) {
            steps = join_all(plan.changes.iter().map(|c| async {
                if !gate.admit() {
                    return Step::Nothing;
                }
                let step = self.write_workload(c.clone(), plan.target).await;
                if matches!(step, Step::Failed(..)) {
                    gate.failed.store(true, Ordering::SeqCst);
                }
                step
            }))
            .await;
        }
        // Only the Namespace itself changes: it still must not start after a stop.
        if plan.changes.is_empty() {
            gate.admit();
        }
        if gate.state.load(Ordering::SeqCst) == CANCELLED {
            outcome.status = NsStatus::NotProcessed;
            outcome.error = Some(format!("not started: {}", self.stop.reason()));
            return outcome;
        }
        let failed = |s: &Step<Change>| matches!(s, Step::Failed(..));
        if !label_first && !steps.iter().any(failed) {
            ns_step = self.namespace_step(plan).await;
        }

        let mut errors = Vec::new();
        let (mut done, mut uncertain) = (Vec::new(), Vec::new());
        for step in steps {
            match step {
                Step::Applied(c, rv) => done.push((c, rv)),
                Step::Nothing => {}
                Step::Refused(c, message) => outcome.refused.push(Refusal {
                    kind: c.kind,
                    name: c.name.clone(),
                    from: c.from.clone(),
                    to: c.to.clone(),
                    message,
                }),
                Step::Failed(c, e) => {
                    errors.push(format!("{} {}: {e}", c.kind, c.name));
                    uncertain.push(c);
                }
            }
        }
        let mut ns_revert = None;
        match ns_step {
            Some(Step::Applied(c, rv)) => ns_revert = Some((c, rv)),
            // Nothing changed on the Namespace: nothing of it to revert.
            Some(Step::Refused(_, message)) => errors.push(format!("Namespace {}: refused: {message}", plan.namespace)),
            Some(Step::Failed(c, e)) => {
                errors.push(format!("Namespace {}: {e}", plan.namespace));
                ns_revert = Some((c, None));
            }
            Some(Step::Nothing) | None => {}
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
        if let Some((c, rv)) = ns_revert {
            if let Err(e) = self.revert_namespace(&plan.namespace, &c, rv).await {
                rollback_errors.push(format!("Namespace {}: {e}", plan.namespace));
            }
        }
        let reverts = done
            .iter()
            .map(|(c, rv)| (c, rv.clone()))
            .chain(uncertain.iter().map(|c| (c, None)))
            .map(|(c, rv)| async move {
                self.revert_workload(c, rv)
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

    /// Sets a workload to `change.after`. On a conflict the fresh object decides again with
    /// the plan's own rules: it may already be at `after` (a lost answer), or need another
    /// change, or be nobody's business now (excluded meanwhile, gone).
    async fn write_workload(&self, change: Change, target: Target) -> Step<Change> {
        let mut current = change;
        let first = with_resource_version(current.patch(), current.resource_version.as_deref());
        let (kind, ns, name) = (current.kind, current.namespace.clone(), current.name.clone());
        let written = self
            .converge(
                kind.api_resource(),
                Some(&ns),
                &name,
                Start::With(Next::Send(first)),
                |fresh| {
                    let Some(o) = fresh else { return Next::Nothing };
                    let w = Workload::from_slim(kind, o.clone());
                    if FieldState::of(&w) == current.after {
                        // Our earlier attempt committed even though we never saw the answer.
                        return Next::Settled(o);
                    }
                    match decide(&w, target) {
                        Decision::Change(c) => {
                            current = *c;
                            Next::Send(with_resource_version(
                                current.patch(),
                                current.resource_version.as_deref(),
                            ))
                        }
                        Decision::AtTarget | Decision::Skip(_) => Next::Nothing,
                    }
                },
            )
            .await;
        match written {
            Ok(Written::Done(o)) => Step::Applied(current, o.metadata.resource_version),
            Ok(Written::Nothing) => Step::Nothing,
            Ok(Written::Refused(message)) => Step::Refused(current, message),
            Err(e) => Step::Failed(current, e.0),
        }
    }

    /// Restores what `change` touched. With `rv` (the version our write produced) the revert is
    /// sent straight away; otherwise, or after a conflict, the object is re-read: if someone
    /// changed the value since, theirs is kept and only our marker goes back to what it was.
    async fn revert_workload(&self, change: &Change, rv: Option<String>) -> Result<(), WriteFailed> {
        let start = match rv {
            Some(rv) => Start::With(Next::Send(with_resource_version(
                state_patch(change.kind, &change.after, &change.before),
                Some(&rv),
            ))),
            None => Start::ReadFirst,
        };
        let ns = Some(change.namespace.as_str());
        let written = self
            .converge(change.kind.api_resource(), ns, &change.name, start, |fresh| {
                let Some(o) = fresh else { return Next::Nothing };
                let w = Workload::from_slim(change.kind, o.clone());
                let now = FieldState::of(&w);
                let goal = if now.setting == change.after.setting {
                    change.before.clone()
                } else {
                    FieldState {
                        setting: now.setting.clone(),
                        marker: change.before.marker.clone(),
                    }
                };
                if now == goal {
                    return Next::Settled(o);
                }
                Next::Send(with_resource_version(
                    state_patch(change.kind, &now, &goal),
                    w.resource_version.as_deref(),
                ))
            })
            .await?;
        match written {
            Written::Refused(message) => Err(WriteFailed::new(format!("revert refused: {message}"))),
            Written::Done(_) | Written::Nothing => Ok(()),
        }
    }

    /// Writes the Namespace's own labels/annotations (`plan.namespace_change`), if any.
    async fn namespace_step(&self, plan: &NamespacePlan) -> Option<Step<NamespaceChange>> {
        let mut change = plan.namespace_change.clone()?;
        let first = with_resource_version(change.patch(), plan.resource_version.as_deref());
        let written = self
            .converge(
                &objects::NAMESPACE,
                None,
                &plan.namespace,
                Start::With(Next::Send(first)),
                |fresh| {
                    let Some(o) = fresh else { return Next::Nothing };
                    let now = NsMeta::of(&o.metadata.labels, &o.metadata.annotations);
                    if now == change.after {
                        return Next::Settled(o);
                    }
                    // Someone else edited the Namespace (e.g. a team annotating a request): our
                    // keys are ours, so re-apply them over the fresh object.
                    change.before = now;
                    Next::Send(with_resource_version(
                        change.patch(),
                        o.metadata.resource_version.as_deref(),
                    ))
                },
            )
            .await;
        Some(match written {
            Ok(Written::Done(o)) => Step::Applied(change, o.metadata.resource_version),
            Ok(Written::Nothing) => Step::Nothing,
            Ok(Written::Refused(message)) => Step::Refused(change, message),
            Err(e) => Step::Failed(change, e.0),
        })
    }

    /// Puts our keys on the Namespace back to `change.before` (re-reading first without `rv`).
    async fn revert_namespace(
        &self,
        name: &str,
        change: &NamespaceChange,
        rv: Option<String>,
    ) -> Result<(), WriteFailed> {
        let start = match rv {
            Some(rv) => Start::With(Next::Send(with_resource_version(
                change.after.patch_to(&change.before),
                Some(&rv),
            ))),
            None => Start::ReadFirst,
        };
        let written = self
            .converge(&objects::NAMESPACE, None, name, start, |fresh| {
                let Some(o) = fresh else { return Next::Nothing };
                let now = NsMeta::of(&o.metadata.labels, &o.metadata.annotations);
                if now == change.before {
                    return Next::Settled(o);
                }
                Next::Send(with_resource_version(
                    now.patch_to(&change.before),
                    o.metadata.resource_version.as_deref(),
                ))
            })
            .await?;
        match written {
            Written::Refused(message) => Err(WriteFailed::new(format!("revert refused: {message}"))),
            Written::Done(_) | Written::Nothing => Ok(()),
        }
    }
}
