//! The sequence every mutating command shares: lock → discover → (the command plans) → apply
//! in parallel → Events → audit → release → summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::apply::{Applier, NamespaceOutcome, NsStatus};
use super::inventory::{self, Inventory};
use super::lease::{self, LeaseGuard};
use super::plan::{rfc3339, NamespacePlan};
use super::retry::RetryPolicy;
use super::summary::{self, Header, Row, Summary};
use crate::audit::{AuditRecord, AuditStatus, AuditWriter, OperationType};
use crate::commands::Context;
use crate::error::{Exit, Result};

/// Stops new namespaces from starting on SIGTERM/SIGINT; in-flight ones finish or roll back.
fn install_signal_handler() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::warn!("signal received: no new namespaces will be started; finishing the ones in flight");
        set.store(true, Ordering::SeqCst);
    });
    flag
}

fn holder_identity(ctx: &Context) -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "local".into());
    format!("{host}/{}", ctx.run_id)
}

pub struct Session {
    pub client: kube::Client,
    pub policy: RetryPolicy,
    pub cancel: Arc<AtomicBool>,
    lease: Option<LeaseGuard>,
    started: Instant,
}

impl Session {
    /// Connects and, unless dry-run, takes the Lease (exit 3 if another run holds it).
    pub async fn open(ctx: &Context) -> Result<Session> {
        let started = Instant::now();
        let cancel = install_signal_handler();
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
                )
                .await?,
            )
        };
        Ok(Session {
            client,
            policy,
            cancel,
            lease,
            started,
        })
    }

    pub async fn discover(&self, ctx: &Context) -> Result<Inventory> {
        inventory::discover(&self.client, &ctx.config, &self.policy).await
    }

    /// Releases the Lease (for paths that end before applying anything).
    pub async fn close(self) {
        if let Some(l) = self.lease {
            l.release().await;
        }
    }

    /// Applies the plans, writes Events and the audit, releases the Lease, prints the summary.
    /// `extra` are records and rows decided before applying (rejected requests).
    pub async fn finish(
        self,
        ctx: &Context,
        header: Header,
        plans: Vec<NamespacePlan>,
        extra: Vec<(AuditRecord, Row)>,
    ) -> Result<Exit> {
        if ctx.dry_run {
            println!("{}", summary::render_plan(ctx.output, &header, &plans));
            self.close().await;
            return Ok(Exit::Ok);
        }
        let applier = Applier::new(
            self.client.clone(),
            self.policy.clone(),
            ctx.config.scale_concurrency,
            ctx.config.rollback_enabled,
            self.cancel.clone(),
        );
        let work: Vec<&NamespacePlan> = plans.iter().filter(|p| !p.is_noop()).collect();
        // Namespaces in flight ≤ concurrency; their writes share one semaphore of that size.
        let outcomes: Vec<(&NamespacePlan, NamespaceOutcome)> = futures::stream::iter(work)
            .map(|p| {
                let applier = &applier;
                async move {
                    let o = applier.apply_namespace(p).await;
                    super::events::emit(&applier.client, &applier.policy, p, &o, &ctx.run_id).await;
                    (p, o)
                }
            })
            .buffer_unordered(ctx.config.scale_concurrency.max(1))
            .collect()
            .await;

        let mut records: Vec<AuditRecord> = Vec::new();
        let mut rows: Vec<Row> = Vec::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let unchanged = plans.iter().filter(|p| p.is_noop()).count();
        if unchanged > 0 {
            counts.insert("unchanged".into(), unchanged);
        }
        let mut changed = 0;
        for (plan, o) in &outcomes {
            *counts.entry(o.status.as_str().into()).or_default() += 1;
            if o.status == NsStatus::Completed {
                changed += 1;
            }
            rows.push(Row {
                namespace: plan.namespace.clone(),
                cost_center: plan.cost_center.clone(),
                action: plan.target.as_str().into(),
                changes: plan.changes.len(),
                skipped: plan.skipped.len(),
                status: o.status.as_str().into(),
                error: o.error.clone(),
            });
            if let Some(r) = record(ctx, plan, o) {
                records.push(r);
            }
        }
        for (r, row) in extra {
            *counts.entry(row.status.clone()).or_default() += 1;
            records.push(r);
            rows.push(row);
        }
        rows.sort_by(|a, b| a.namespace.cmp(&b.namespace).then(a.action.cmp(&b.action)));

        let mut audit_error = None;
        if !records.is_empty() {
            let client = crate::dynamo::client(&ctx.config).await;
            let writer = AuditWriter::new(client, ctx.config.audit_table.clone());
            if let Err(e) = writer.write_all(&records).await {
                tracing::error!(error = %e, "audit could not be written in full");
                audit_error = Some(e.to_string());
            }
        }
        let started = self.started;
        self.close().await;

        let bad = |s: &str| counts.get(s).copied().unwrap_or(0);
        let failed = bad("rolled_back") + bad("failed") + bad("not_processed");
        // A rejected `up` is exit 4; a scheduled run that answers a self-service request with
        // "rejected" has done its job (the answer is on the namespace) and exits 0.
        let exit = if failed > 0 || audit_error.is_some() {
            Exit::Failed
        } else if header.command == "up" && bad("rejected") > 0 {
            Exit::Rejected
        } else {
            Exit::Ok
        };
        let note = (bad("not_processed") > 0).then(|| {
            format!(
                "stopped by a signal: {} namespace(s) were not processed and keep their previous state",
                bad("not_processed")
            )
        });
        let s = Summary {
            header,
            dry_run: false,
            namespaces_changed: changed,
            writes: applier.writes(),
            counts,
            namespaces: rows,
            audit_records: records.len(),
            audit_error,
            duration_ms: started.elapsed().as_millis() as u64,
            exit_code: exit as u8,
            note,
        };
        println!("{}", summary::render_summary(ctx.output, &s).trim_end());
        Ok(exit)
    }
}

fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

fn record(ctx: &Context, plan: &NamespacePlan, o: &NamespaceOutcome) -> Option<AuditRecord> {
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
        resources: o.resources.clone(),
        error: o.error.clone(),
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
        Row {
            namespace: namespace.to_string(),
            cost_center: cost_center.to_string(),
            action: "activate".into(),
            changes: 0,
            skipped: 0,
            status: "rejected".into(),
            error: Some(why.to_string()),
        },
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
