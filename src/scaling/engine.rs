//! The sequence every mutating command shares: lock → discover → (the command plans) → apply
//! in parallel → Events → audit → release → summary. It knows nothing of the CLI: commands hand
//! it a [`Context`] and their plans, and say what a rejected request means for the exit code.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::apply::{Applier, NamespaceOutcome, NsStatus};
use super::inventory::{self, Inventory};
use super::lease::{self, LeaseGuard};
use super::plan::{rfc3339, NamespacePlan, Target};
use super::requests::Requested;
use super::retry::RetryPolicy;
use super::stop::Stop;
use crate::audit::{AuditRecord, AuditSink, AuditStatus, OperationType, ResourceChange};
use crate::config::AuditClock;
use crate::context::Context;
use crate::error::{Exit, Result};
use crate::metrics::RunFigures;
use crate::summary::{self, Header, Row, Summary};

fn holder_identity(ctx: &Context) -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "local".into());
    format!("{host}/{}", ctx.run_id)
}

/// What a command does once one namespace of its plans has been applied, with the applier's
/// write path (`run`: the ActivationRequest that opened the namespace's window is answered
/// only once the namespace is at its target). Rows it returns join the summary (an answer that
/// could not be written is `unanswered`, and the run exits 1).
pub trait AfterApply: Send + Sync {
    fn after<'a>(
        &'a self,
        applier: &'a Applier,
        plan: &'a NamespacePlan,
        outcome: &'a NamespaceOutcome,
    ) -> futures::future::BoxFuture<'a, Vec<Row>>;
}

pub struct Session {
    pub client: kube::Client,
    pub policy: RetryPolicy,
    pub stop: Arc<Stop>,
    after_apply: Option<Box<dyn AfterApply>>,
    lease: Option<LeaseGuard>,
    started: Instant,
    started_at: DateTime<Utc>,
}

impl Session {
    /// Connects and, unless dry-run, takes the Lease (exit 3 if another run holds it).
    pub async fn open(ctx: &Context) -> Result<Session> {
        let started = Instant::now();
        let tuning = &ctx.config.tuning;
        let client = super::client(tuning.request_timeout).await?;
        let policy = RetryPolicy::from_tuning(tuning);
        let lease = if ctx.dry_run {
            None
        } else {
            Some(
                lease::acquire(
                    &client,
                    &ctx.config.own_namespace,
                    &holder_identity(ctx),
                    i64::from(tuning.lease_seconds),
                    &policy,
                    ctx.stop.clone(),
                )
                .await?,
            )
        };
        Ok(Session {
            client,
            policy,
            stop: ctx.stop.clone(),
            after_apply: None,
            lease,
            started,
            started_at: Utc::now(),
        })
    }

    pub async fn discover(&self, ctx: &Context) -> Result<Inventory> {
        inventory::discover(&self.client, &ctx.config, &self.policy).await
    }

    /// Sets what [`Session::finish`] does after each namespace it applies.
    pub fn after_apply(&mut self, hook: Box<dyn AfterApply>) {
        self.after_apply = Some(hook);
    }

    /// Releases the Lease (for paths that end before applying anything).
    pub async fn close(self) {
        if let Some(l) = self.lease {
            l.release().await;
        }
    }

    /// Applies the plans, writes Events and the audit, releases the Lease, prints the summary.
    /// `plans` is consumed lazily: a namespace is planned when it is started, and its plan and
    /// outcome are dropped once its Event is written and its audit record handed to the
    /// background writer, so memory does not grow with the number of namespaces changed.
    /// `extra` are records and rows decided before applying (rejected requests); `on_rejection`
    /// is the exit code when there are some and nothing failed (a rejected `up` is exit 4; a
    /// scheduled run that answered a request "rejected" has done its job: exit 0).
    pub async fn finish<I>(
        self,
        ctx: &Context,
        header: Header,
        plans: I,
        extra: Vec<(Option<AuditRecord>, Row)>,
        on_rejection: Exit,
    ) -> Result<Exit>
    where
        I: IntoIterator<Item = NamespacePlan>,
    {
        if ctx.dry_run {
            let plans: Vec<NamespacePlan> = plans.into_iter().collect();
            println!("{}", summary::render_plan(ctx.output, &header, &plans, &extra));
            self.close().await;
            return Ok(Exit::Ok);
        }
        let concurrency = ctx.config.scale_concurrency.max(1);
        let applier = Applier::new(
            self.client.clone(),
            self.policy.clone(),
            concurrency,
            ctx.config.rollback_enabled,
            self.stop.clone(),
        );
        // Records carry the wall clock, unless NS_SCHEDULER_AUDIT_CLOCK=decision asks for the
        // instant the run decided for (`--at`): a demo's pretend week, a backfill.
        let shift = match ctx.config.tuning.audit_clock {
            AuditClock::Wall => 0.0,
            AuditClock::Decision => (header.decided_at - self.started_at).num_milliseconds() as f64 / 1000.0,
        };
        let mut audit = AuditSink::new(&ctx.config, shift);
        let mut rows: Vec<Row> = Vec::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (r, row) in extra {
            *counts.entry(row.status.clone()).or_default() += 1;
            if row.status == "skipped" {
                super::events::emit_skipped(
                    &applier,
                    &row.namespace,
                    row.error.as_deref().unwrap_or(""),
                    &ctx.run_id,
                )
                .await;
            }
            if let Some(r) = r {
                audit.send(r).await;
            }
            rows.push(row);
        }
        let unchanged = AtomicUsize::new(0);
        let work = plans.into_iter().filter(|p| {
            let noop = p.is_noop();
            if noop {
                unchanged.fetch_add(1, Ordering::Relaxed);
            }
            !noop
        });
        let after_apply = self.after_apply.as_deref();
        // More namespaces in flight than write slots (their phases depend on each other, so
        // one namespace per slot leaves slots idle); the semaphore still bounds the writes.
        let mut done = futures::stream::iter(work)
            .map(|p| {
                let applier = &applier;
                async move {
                    let o = applier.apply_namespace(&p).await;
                    let after = match after_apply {
                        Some(h) => h.after(applier, &p, &o).await,
                        None => Vec::new(),
                    };
                    super::events::emit(applier, &p, &o, &ctx.run_id).await;
                    // What took effect (a rolled-back namespace moved nothing).
                    let moved: Requested = match o.status {
                        NsStatus::Completed => o.resources.iter().filter_map(ResourceChange::requested).sum(),
                        _ => Requested::default(),
                    };
                    let (freed, restored) = match p.target {
                        Target::Down => (moved, Requested::default()),
                        Target::Up => (Requested::default(), moved),
                    };
                    let row = Row {
                        namespace: p.namespace.clone(),
                        cost_center: p.cost_center.clone(),
                        action: p.target.as_str().into(),
                        schedule: p.schedule.clone(),
                        changes: o.resources.len(),
                        skipped: p.skipped.len(),
                        refused: o.refused.len(),
                        freed,
                        restored,
                        status: o.status.as_str().into(),
                        error: o.error.clone().or_else(|| refusal_note(&o)),
                    };
                    (o.status, row, record(ctx, &p, o), after)
                }
            })
            .buffer_unordered(concurrency * IN_FLIGHT_PER_SLOT);
        let mut changed = 0;
        while let Some((status, row, record, after)) = done.next().await {
            for r in after {
                *counts.entry(r.status.clone()).or_default() += 1;
                rows.push(r);
            }
            *counts.entry(status.as_str().into()).or_default() += 1;
            if status == NsStatus::Completed && row.changes > 0 {
                changed += 1;
            }
            rows.push(row);
            if let Some(r) = record {
                audit.send(r).await;
            }
        }
        drop(done);
        let unchanged = unchanged.into_inner();
        if unchanged > 0 {
            counts.insert("unchanged".into(), unchanged);
        }
        rows.sort_by(|a, b| a.namespace.cmp(&b.namespace).then(a.action.cmp(&b.action)));

        let (audit_records, audit_error) = audit.finish().await;
        let started = self.started;
        let lease_lost = self.stop.is_lease_lost();
        self.close().await;

        let count = |s: &str| counts.get(s).copied().unwrap_or(0);
        let failed = count("rolled_back") + count("failed") + count("not_processed") + count("unanswered");
        let exit = if failed > 0 || audit_error.is_some() || lease_lost {
            Exit::Failed
        } else if count("rejected") > 0 {
            on_rejection
        } else {
            Exit::Ok
        };
        let note = if lease_lost {
            Some(format!(
                "stopped: {}; {} namespace(s) were not processed and keep their previous state",
                applier.stop.reason(),
                count("not_processed")
            ))
        } else {
            (count("not_processed") > 0).then(|| {
                format!(
                    "stopped by a signal: {} namespace(s) were not processed and keep their previous state",
                    count("not_processed")
                )
            })
        };
        let freed: Requested = rows.iter().map(|r| r.freed).sum();
        let restored: Requested = rows.iter().map(|r| r.restored).sum();
        let figures = RunFigures {
            at: Utc::now(),
            cluster_name: ctx.config.cluster_name.clone(),
            command: header.command.to_string(),
            run_id: ctx.run_id.clone(),
            namespaces_changed: changed as u64,
            namespaces_failed: failed as u64,
            namespaces_rejected: count("rejected") as u64,
            workloads_changed: rows
                .iter()
                .filter(|r| r.status == "completed")
                .map(|r| r.changes as u64)
                .sum(),
            freed,
            restored,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let s = Summary {
            header,
            dry_run: false,
            namespaces_changed: changed,
            writes: applier.writes(),
            counts,
            freed,
            restored,
            namespaces: rows,
            audit_records,
            audit_error,
            duration_ms: started.elapsed().as_millis() as u64,
            exit_code: exit as u8,
            note,
        };
        println!("{}", summary::render_summary(ctx.output, &s).trim_end());
        // CloudWatch turns this one line on the log stream into metrics (METRICS_FORMAT=emf).
        if let Some(line) = crate::metrics::render(ctx.config.metrics_format, &figures) {
            println!("{line}");
        }
        Ok(exit)
    }
}

/// The summary row's note for a namespace whose refused objects were skipped.
fn refusal_note(o: &NamespaceOutcome) -> Option<String> {
    (!o.refused.is_empty()).then(|| {
        let names: Vec<String> = o
            .refused
            .iter()
            .map(|r| format!("{} {} refused: {}", r.kind, r.name, r.message))
            .collect();
        names.join("; ")
    })
}

/// Namespaces in flight per write slot (`SCALE_CONCURRENCY`). Each namespace's writes come in
/// dependent phases (label, workloads, label, Event), so with one namespace per slot the slots
/// sit idle between phases. Kept modest: on SIGTERM every namespace in flight is finished or
/// rolled back before the run exits.
pub const IN_FLIGHT_PER_SLOT: usize = 4;

fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

fn record(ctx: &Context, plan: &NamespacePlan, o: NamespaceOutcome) -> Option<AuditRecord> {
    let status = match o.status {
        NsStatus::Completed => AuditStatus::Completed,
        NsStatus::RolledBack => AuditStatus::RolledBack,
        NsStatus::Failed => AuditStatus::Failed,
        // Nothing happened: nothing to audit.
        NsStatus::Unchanged | NsStatus::NotProcessed => return None,
    };
    // Answering a rejected request is recorded by its own `rejected` record.
    if status == AuditStatus::Completed && plan.only_bookkeeping() {
        return None;
    }
    let start = epoch(o.started);
    let mut resources = o.resources;
    // A refused object is named with the API's message: it was tried, nothing changed.
    resources.extend(o.refused.into_iter().map(|r| ResourceChange {
        kind: r.kind.as_str().into(),
        name: r.name,
        from: r.from,
        to: r.to,
        // It freed nothing: no request figures.
        cpu_millicores: None,
        memory_bytes: None,
        skipped: Some(r.message),
    }));
    Some(AuditRecord {
        namespace_name: plan.namespace.clone(),
        timestamp_start: start,
        timestamp_end: start + o.duration_ms as f64 / 1000.0,
        duration_ms: o.duration_ms,
        operation_type: plan.operation_type,
        cost_center: plan.cost_center.clone(),
        cluster_name: ctx.config.cluster_name.clone(),
        requested_by: plan.requested_by.clone(),
        status,
        run_id: ctx.run_id.clone(),
        resources,
        error: o.error,
        active_until: plan
            .active_until
            .clone()
            .filter(|_| plan.target == super::plan::Target::Up),
    })
}

/// The audit record and summary row of a request refused before anything was touched.
pub fn rejection(
    ctx: &Context,
    namespace: &str,
    cost_center: &str,
    requested_by: &str,
    why: &str,
) -> (AuditRecord, Row) {
    let now = epoch(Utc::now());
    (
        AuditRecord {
            namespace_name: namespace.to_string(),
            timestamp_start: now,
            timestamp_end: now,
            duration_ms: 0,
            operation_type: OperationType::Activate,
            cost_center: cost_center.to_string(),
            cluster_name: ctx.config.cluster_name.clone(),
            requested_by: requested_by.to_string(),
            status: AuditStatus::Rejected,
            run_id: ctx.run_id.clone(),
            resources: vec![],
            error: Some(why.to_string()),
            active_until: None,
        },
        Row::decided(namespace, cost_center, "activate", "rejected", why),
    )
}

pub fn header(
    ctx: &Context,
    command: &'static str,
    at: DateTime<Utc>,
    business: Option<bool>,
    managed: usize,
) -> Header {
    Header {
        command,
        run_id: ctx.run_id.clone(),
        cluster: ctx.config.cluster_name.clone(),
        at: rfc3339(at),
        decided_at: at,
        business_hours: business,
        namespaces_managed: managed,
    }
}

/// `up`/`down`: refuse protected names (before any API call), take the lock, discover, and
/// require every named namespace to be managed. The Lease is released again on any error.
pub async fn open_for_named(ctx: &Context, names: &[String]) -> Result<(Session, Inventory)> {
    refuse_protected(ctx, names)?;
    let session = Session::open(ctx).await?;
    let checked = match session.discover(ctx).await {
        Ok(inv) => require_managed(ctx, &session, &inv, names).await.map(|()| inv),
        Err(e) => Err(e),
    };
    match checked {
        Ok(inv) => Ok((session, inv)),
        Err(e) => {
            session.close().await;
            Err(e)
        }
    }
}

/// `up`/`down` name namespaces explicitly: a protected, unknown or unmanaged one is a usage
/// error (exit 2) before anything is touched. Protected names are refused without a cluster.
pub fn refuse_protected(ctx: &Context, names: &[String]) -> Result<()> {
    for n in names {
        crate::config::validate_namespace_name("--namespace", n)?;
        if ctx.config.is_protected(n) {
            return Err(crate::Error::Usage(format!(
                "namespace {n} is protected (PROTECTED_NAMESPACES or the scheduler's own namespace) and is never touched; nothing was changed"
            )));
        }
    }
    Ok(())
}

pub async fn require_managed(ctx: &Context, session: &Session, inv: &Inventory, names: &[String]) -> Result<()> {
    for n in names {
        if inv.namespaces.contains_key(n) {
            continue;
        }
        let what = format!("get namespace {n}");
        let found = super::retry::transient(&session.policy, &what, || async {
            match super::objects::get(&session.client, super::objects::Kind::Namespace, None, n).await {
                Ok(o) => Ok(Some(o)),
                Err(e) if super::retry::classify(&e) == super::retry::Class::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?;
        let reason = match found {
            None => format!("namespace {n} does not exist"),
            Some(o) => inventory::unmanaged_reason(&ctx.config, &o).unwrap_or_else(|| {
                format!(
                    "namespace {n} is not managed: it does not match NAMESPACE_SELECTOR={:?}",
                    ctx.config.namespace_selector.as_deref().unwrap_or("")
                )
            }),
        };
        return Err(crate::Error::Usage(format!("{reason}; nothing was changed")));
    }
    Ok(())
}
