//! The sequence every mutating command shares: lock → discover (and close what dead runs left
//! in the audit) → (the command plans) → for each batch of namespaces about to start, their
//! intents → apply in parallel → Events → final records → release → summary. It knows nothing
//! of the CLI and prints nothing: commands hand it a [`Context`], the run's [`Clients`] and their
//! plans, say what a rejected request means for the exit code, and render the [`Finished`] value
//! it returns.

use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};

mod conclude;
mod pipeline;

use conclude::{conclude, Ended};

use crate::audit::journal::{self, Found, OpenRun};
use crate::audit::{AuditRecord, AuditSink, AuditTable, AuditWriter, ResourceChange};
use crate::config::AuditClock;
use crate::context::{Clients, Context};
use crate::error::{Exit, Result};
use crate::fleet::{AfterRun, FleetWindows};
use crate::metrics::RunFigures;
use crate::scaling::apply::{Applier, NamespaceOutcome};
use crate::scaling::inventory::{self, Inventory};
use crate::scaling::lease::{self, LeaseGuard};
use crate::scaling::plan::{rfc3339, NamespacePlan};
use crate::scaling::records::{self, epoch, RunInfo};
use crate::scaling::retry::RetryPolicy;
use crate::scaling::stop::Stop;
use crate::summary::{Header, Row, RowStatus, Summary};
use pipeline::{Announced, Tally};

/// A namespace decided before anything is applied (a rejected request, one left alone, an
/// answer that could not be written): its summary row, and its audit record if it has one.
#[derive(Debug, Clone)]
pub struct DecidedRow {
    pub record: Option<AuditRecord>,
    pub row: Row,
}

impl DecidedRow {
    /// A row with no audit record of its own.
    pub fn unrecorded(row: Row) -> Self {
        DecidedRow { record: None, row }
    }
}

/// What a session hands back to its command, which renders it: the plan of a dry run, or the
/// summary and the figures of an applied one.
#[derive(Debug)]
pub enum Finished {
    Planned {
        header: Header,
        plans: Vec<NamespacePlan>,
        decided: Vec<DecidedRow>,
    },
    Applied {
        summary: Box<Summary>,
        figures: RunFigures,
        exit: Exit,
    },
}

impl Finished {
    pub fn exit(&self) -> Exit {
        match self {
            Finished::Planned { .. } => Exit::Ok,
            Finished::Applied { exit, .. } => *exit,
        }
    }
}

fn holder_identity(ctx: &Context) -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "local".into());
    format!("{host}/{}", ctx.run_id)
}

/// The runs whose audit this run must close, and how that went.
#[derive(Debug, Default)]
struct Journal {
    /// Still open: handed over by the Lease, not closed (yet).
    open: Vec<OpenRun>,
    /// What was closed, for the summary's note.
    closed: Vec<String>,
    /// Why some could not be closed (they stay listed on the Lease): the run exits 1.
    error: Option<String>,
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
    /// For the permissions table (the audit table has its writer in `audit`).
    pub dynamo: aws_sdk_dynamodb::Client,
    pub policy: RetryPolicy,
    pub stop: Arc<Stop>,
    after_apply: Option<Box<dyn AfterApply>>,
    lease: Option<LeaseGuard>,
    started: Instant,
    audit: AuditTable,
    /// The earliest `timestamp_start` this run's records can have, as written (see the Lease's
    /// `audit-since`).
    since: f64,
    journal: Mutex<Journal>,
    /// The instant the run decides for.
    at: DateTime<Utc>,
    /// The windows to release once the namespaces are applied (docs/fleet.md §3).
    windows: Option<AfterRun>,
}

impl Session {
    /// Connects and, unless dry-run, takes the Lease (exit 3 if another run holds it). `at` is
    /// the instant the run decides for (`--at`, else now): audit records are stamped with it
    /// under `NS_SCHEDULER_AUDIT_CLOCK=decision` (a demo's pretend week, a backfill).
    pub async fn open(ctx: &Context, clients: Clients, at: DateTime<Utc>) -> Result<Session> {
        let started = Instant::now();
        let started_at = Utc::now();
        let shift = match ctx.config.tuning.audit_clock {
            AuditClock::Wall => 0.0,
            AuditClock::Decision => (at - started_at).num_milliseconds() as f64 / 1000.0,
        };
        // A second's margin: records are stamped later, never earlier, than this.
        let since = (epoch(started_at) + shift - 1.0).floor();
        let tuning = &ctx.config.tuning;
        let Clients { kube: client, dynamo } = clients;
        let policy = RetryPolicy::from_tuning(tuning);
        let lease = if ctx.dry_run {
            None
        } else {
            Some(
                lease::acquire(
                    &client,
                    &ctx.config.own_namespace,
                    &holder_identity(ctx),
                    (i64::from(tuning.lease_seconds), since),
                    &policy,
                    ctx.stop.clone(),
                )
                .await?,
            )
        };
        let journal = Journal {
            open: lease.as_ref().map(|l| l.open_runs().to_vec()).unwrap_or_default(),
            ..Journal::default()
        };
        Ok(Session {
            client,
            policy,
            stop: ctx.stop.clone(),
            after_apply: None,
            lease,
            started,
            audit: AuditTable::new(AuditWriter::new(dynamo.clone(), ctx.config.audit_table.clone()), shift),
            dynamo,
            since,
            journal: Mutex::new(journal),
            at,
            windows: None,
        })
    }

    /// The managed namespaces and their workloads; then, before anything is written, the
    /// operations dead runs left `in_progress` are closed from what this inventory shows.
    pub async fn discover(&self, ctx: &Context) -> Result<Inventory> {
        let inv = inventory::discover(&self.client, &ctx.config, &self.policy).await?;
        self.close_open_runs(ctx, &inv).await;
        Ok(inv)
    }

    /// Closes the `in_progress` items of the runs the Lease handed over (docs/reference.md §6).
    /// One that cannot be closed now (DynamoDB unreachable) stays listed for the next run, and
    /// this run exits 1.
    async fn close_open_runs(&self, ctx: &Context, inv: &Inventory) {
        let runs = self.journal.lock().expect("journal").open.clone();
        if runs.is_empty() {
            return;
        }
        let recovered = self.recover_windows(ctx, inv).await;
        let writer = self.audit.writer();
        for run in runs.iter().cloned() {
            let closed = journal::close_run(
                writer.client(),
                writer.table(),
                &ctx.config.cluster_name,
                &run,
                &ctx.run_id,
                |ns, r| found_in(inv, ns, r),
            )
            .await;
            let mut j = self.journal.lock().expect("journal");
            match closed {
                Ok((closed, final_already)) => {
                    tracing::info!(run = %run.run_id, closed, final_already, "the audit of an earlier run is closed");
                    j.open.retain(|r| r.run_id != run.run_id);
                    if closed > 0 {
                        j.closed.push(format!(
                            "{closed} operation(s) of run {} closed as interrupted",
                            run.run_id
                        ));
                    }
                }
                Err(e) => {
                    tracing::error!(run = %run.run_id, error = %e, "could not close the audit of an earlier run; the next run tries again");
                    j.error.get_or_insert(format!(
                        "the audit of run {} could not be closed ({e}); it stays open for the next run",
                        run.run_id
                    ));
                }
            }
        }
        if let Err(e) = recovered {
            let mut j = self.journal.lock().expect("journal");
            // Listed again, so that the next run reconciles the windows too.
            j.open = runs;
            j.error.get_or_insert(e);
        }
    }

    /// After a run died (or could not release its windows), this cluster's records in the
    /// windows table are reconciled with its Namespaces (docs/fleet.md §3): a window recorded
    /// for a namespace that never came up is released, an open one not recorded is recorded.
    /// Only on such a takeover: a normal run makes no call for it.
    async fn recover_windows(&self, ctx: &Context, inv: &Inventory) -> std::result::Result<(), String> {
        let windows = FleetWindows::from_config(self.dynamo.clone(), &ctx.config);
        let open = inv.open_windows(self.at);
        match windows.recover(&open, &ctx.config.business, self.at, &ctx.run_id).await {
            Ok(found) => {
                if !found.release.is_empty() || !found.record.is_empty() {
                    self.journal.lock().expect("journal").closed.push(format!(
                        "windows of earlier runs reconciled: {} released, {} recorded",
                        found.release.len(),
                        found.record.len()
                    ));
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, table = %windows.table(), "could not reconcile the windows of earlier runs; the next run tries again");
                Err(format!(
                    "the windows of earlier runs could not be reconciled with {} ({e}); the next run tries again",
                    windows.table()
                ))
            }
        }
    }

    /// Releases the windows of [`Session::release_windows_after`] given how each namespace ended;
    /// why it could not, if it could not (the slots stay held until the next run reconciles them).
    async fn settle_windows(&self, rows: &[Row]) -> Option<String> {
        let windows = self.windows.as_ref().filter(|w| !w.is_empty())?;
        let failed = |ns: &str| {
            rows.iter().any(|r| {
                r.namespace == ns
                    && matches!(
                        r.status,
                        RowStatus::RolledBack | RowStatus::Failed | RowStatus::NotProcessed
                    )
            })
        };
        match windows.settle(failed).await {
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "windows not released; the next run reconciles them");
                Some(format!(
                    "some windows could not be released ({e}); the next run reconciles them"
                ))
            }
        }
    }

    /// What [`Session::finish`] releases in the windows table once the namespaces are applied.
    pub fn release_windows_after(&mut self, windows: AfterRun) {
        self.windows = Some(windows);
    }

    /// Sets what [`Session::finish`] does after each namespace it applies.
    pub fn after_apply(&mut self, hook: Box<dyn AfterApply>) {
        self.after_apply = Some(hook);
    }

    /// Releases the Lease (for paths that end before applying anything).
    pub async fn close(self) {
        self.release(None).await;
    }

    /// Releases the Lease, leaving on it the runs whose audit is still open (`own`: this one).
    async fn release(self, own: Option<OpenRun>) {
        let open = std::mem::take(&mut self.journal.lock().expect("journal").open);
        if let Some(l) = self.lease {
            l.release(open, own).await;
        }
    }

    /// Writes the intents of a batch of namespaces about to start, in one BatchWriteItem, and
    /// hands each plan on with its `timestamp_start` and whether its intent is in the table.
    /// After a stop none is written: those namespaces will not start. An intent that cannot be
    /// written is logged whole (its record) and counted in `failed`; its namespace proceeds.
    async fn announce(&self, run: &RunInfo<'_>, batch: Vec<NamespacePlan>, failed: &Cell<usize>) -> Vec<Announced> {
        let at = epoch(Utc::now());
        if self.stop.is_set() {
            return batch
                .into_iter()
                .map(|plan| Announced {
                    plan,
                    at,
                    intent_written: false,
                })
                .collect();
        }
        let intents: Vec<AuditRecord> = batch
            .iter()
            .filter(|p| records::needs_intent(p))
            .map(|p| records::intent(run, p, at))
            .collect();
        let mut written = if intents.is_empty() {
            Vec::new()
        } else {
            self.audit.write_intents(intents).await
        }
        .into_iter();
        failed.set(failed.get() + written.clone().filter(|w| !w).count());
        batch
            .into_iter()
            .map(|plan| {
                let intent_written = records::needs_intent(&plan) && written.next().unwrap_or(false);
                Announced {
                    plan,
                    at,
                    intent_written,
                }
            })
            .collect()
    }

    /// Applies the plans, writes Events and the audit, releases the Lease, and returns the
    /// summary (a dry run: the plan) for the command to render.
    /// `plans` is consumed lazily, and intents are written just before their namespaces start
    /// ([`pipeline::apply_all`]), so memory does not grow with the number of namespaces changed.
    /// `extra` are the rows decided before applying (rejected requests); `on_rejection`
    /// is the exit code when there are some and nothing failed (a rejected `up` is exit 4; a
    /// scheduled run that answered a request "rejected" has done its job: exit 0).
    pub async fn finish<I>(
        self,
        ctx: &Context,
        header: Header,
        plans: I,
        extra: Vec<DecidedRow>,
        on_rejection: Exit,
    ) -> Result<Finished>
    where
        I: IntoIterator<Item = NamespacePlan>,
    {
        if ctx.dry_run {
            let plans: Vec<NamespacePlan> = plans.into_iter().collect();
            self.close().await;
            return Ok(Finished::Planned {
                header,
                plans,
                decided: extra,
            });
        }
        let concurrency = ctx.config.scale_concurrency.max(1);
        let applier = Applier::new(
            self.client.clone(),
            self.policy.clone(),
            concurrency,
            ctx.config.rollback_enabled,
            self.stop.clone(),
        );
        let run = RunInfo {
            cluster: &ctx.config.cluster_name,
            run_id: &ctx.run_id,
        };
        let mut audit = AuditSink::new(&self.audit);
        let mut tally = Tally::default();
        record_decided(&applier, &ctx.run_id, extra, &mut audit, &mut tally).await;
        let intents_failed = Cell::new(0);
        // More namespaces in flight than write slots (their phases depend on each other, so
        // one namespace per slot leaves slots idle); the semaphore still bounds the writes.
        let stage = pipeline::Stage {
            applier: &applier,
            run: &run,
            after_apply: self.after_apply.as_deref(),
        };
        pipeline::apply_all(
            &stage,
            concurrency * IN_FLIGHT_PER_SLOT,
            plans.into_iter(),
            |batch| self.announce(&run, batch, &intents_failed),
            &mut audit,
            &mut tally,
        )
        .await;
        let windows_error = self.settle_windows(&tally.rows).await;

        let (audit_records, finals_error) = audit.finish().await;
        // This run leaves intents behind only if some final record (or deletion) failed: it is
        // then listed on the Lease, and the next run closes it.
        // Windows it could not release: the next run reconciles them.
        let own = ((finals_error.is_some() && tally.intents_written > 0) || windows_error.is_some()).then(|| OpenRun {
            run_id: ctx.run_id.clone(),
            since: self.since,
        });
        let (closed, journal_error) = {
            let mut j = self.journal.lock().expect("journal");
            (std::mem::take(&mut j.closed), j.error.take())
        };
        let intents_error = (intents_failed.get() > 0).then(|| {
            format!(
                "{} intent(s) could not be written to {} before their namespaces started; each is logged whole at ERROR",
                intents_failed.get(),
                ctx.config.audit_table
            )
        });
        let ended = Ended {
            windows_error,
            audit_records,
            audit_error: [intents_error, finals_error, journal_error]
                .into_iter()
                .flatten()
                .reduce(|a, b| format!("{a}; {b}")),
            closed,
            lease_lost: self.stop.is_lease_lost().then(|| applier.stop.reason().to_string()),
            writes: applier.writes(),
            started: self.started,
        };
        self.release(own).await;
        Ok(conclude(ctx, header, tally, ended, on_rejection))
    }
}

/// Counts the rows decided before applying, emits the Events of the namespaces left alone, and
/// hands their audit records to the sink.
async fn record_decided(
    applier: &Applier,
    run_id: &str,
    decided: Vec<DecidedRow>,
    audit: &mut AuditSink<'_>,
    tally: &mut Tally,
) {
    for DecidedRow { record, row } in decided {
        *tally.counts.entry(row.status).or_default() += 1;
        if row.status == RowStatus::Skipped {
            let why = row.error.as_deref().unwrap_or("");
            crate::scaling::events::emit_skipped(applier, &row.namespace, why, run_id).await;
        }
        if let Some(r) = record {
            audit.send(r).await;
        }
        tally.rows.push(row);
    }
}

/// What a closing run finds on a planned object of `namespace` in its own inventory.
fn found_in(inv: &Inventory, namespace: &str, r: &ResourceChange) -> Found {
    if !inv.namespaces.contains_key(namespace) {
        return Found::NotLooked;
    }
    match inv
        .workloads_of(namespace)
        .iter()
        .find(|w| w.kind.as_str() == r.kind && w.name == r.name)
    {
        Some(w) => Found::Value(w.setting.to_string()),
        None => Found::Gone,
    }
}

/// Namespaces in flight per write slot (`SCALE_CONCURRENCY`). Each namespace's writes come in
/// dependent phases (label, workloads, label, Event), so with one namespace per slot the slots
/// sit idle between phases. Kept modest: on SIGTERM every namespace in flight is finished or
/// rolled back before the run exits.
pub const IN_FLIGHT_PER_SLOT: usize = 4;

/// The audit record and summary row of a request refused before anything was touched.
pub fn rejection(ctx: &Context, namespace: &str, cost_center: &str, requested_by: &str, why: &str) -> DecidedRow {
    let run = RunInfo {
        cluster: &ctx.config.cluster_name,
        run_id: &ctx.run_id,
    };
    DecidedRow {
        record: Some(records::rejection(&run, namespace, cost_center, requested_by, why)),
        row: Row::decided(namespace, cost_center, "activate", RowStatus::Rejected, why),
    }
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
pub async fn open_for_named(ctx: &Context, names: &[String], at: DateTime<Utc>) -> Result<(Session, Inventory)> {
    refuse_protected(ctx, names)?;
    let session = Session::open(ctx, Clients::connect(&ctx.config).await?, at).await?;
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
        let found = crate::scaling::retry::transient(&session.policy, &what, || async {
            match crate::scaling::objects::get(&session.client, &crate::scaling::objects::NAMESPACE, None, n).await {
                Ok(o) => Ok(Some(o)),
                Err(e) if crate::scaling::retry::classify(&e) == crate::scaling::retry::Class::NotFound => Ok(None),
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
