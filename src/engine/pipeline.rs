//! Applying a run's plans: namespaces in flight up to a bound, each announced (its intent in the
//! audit table) before it starts, each ending with its Event, its summary row and its final
//! audit write.
//!
//! Intents go out a batch ([`BATCH_SIZE`]) at a time and one batch ahead: the next batch's
//! BatchWriteItem is sent while the namespaces already announced start, so no write slot waits on
//! DynamoDB, yet no intent is written more than two batches before its namespace starts (those a
//! stop keeps from starting are deleted again). Plans are taken lazily: a namespace is planned
//! when its batch is announced, and its plan and outcome are dropped once its record is handed
//! to the background writer.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;

use futures::stream::{FuturesUnordered, StreamExt};

use super::AfterApply;
use crate::audit::{AuditSink, AuditWrite, ResourceChange, BATCH_SIZE};
use crate::resources::Requested;
use crate::scaling::apply::{Applier, NamespaceOutcome, NsStatus};
use crate::scaling::plan::{NamespacePlan, Target};
use crate::scaling::records::{self, RunInfo};
use crate::summary::{Row, RowStatus};

/// A plan about to start.
#[derive(Debug)]
pub struct Announced {
    pub plan: NamespacePlan,
    /// The `timestamp_start` of its records.
    pub at: f64,
    /// Its intent is in the table (so a namespace that never starts has it deleted).
    pub intent_written: bool,
}

/// One namespace applied: its status, its row, its final audit write, and the rows of what the
/// command did after applying it.
struct Applied {
    status: NsStatus,
    row: Row,
    write: Option<AuditWrite>,
    after: Vec<Row>,
}

/// What the namespaces of a run came to.
#[derive(Debug, Default)]
pub struct Tally {
    pub rows: Vec<Row>,
    /// Namespaces per status.
    pub counts: BTreeMap<RowStatus, usize>,
    /// Namespaces completed with at least one workload changed.
    pub changed: usize,
    /// Namespaces with nothing to do (not applied, no row).
    pub unchanged: usize,
    /// Intents in the table before their namespace started.
    pub intents_written: usize,
}

/// What applies one namespace: the write path, the run it belongs to, and what the command
/// does once the namespace is done.
pub struct Stage<'a> {
    pub applier: &'a Applier,
    pub run: &'a RunInfo<'a>,
    pub after_apply: Option<&'a dyn AfterApply>,
}

/// Applies `plans` with at most `in_flight` namespaces at once; `announce` writes a batch's
/// intents and hands the plans back (see the module documentation).
pub async fn apply_all<F, Fut>(
    stage: &Stage<'_>,
    in_flight: usize,
    plans: impl Iterator<Item = NamespacePlan>,
    mut announce: F,
    audit: &mut AuditSink<'_>,
    tally: &mut Tally,
) where
    F: FnMut(Vec<NamespacePlan>) -> Fut,
    Fut: Future<Output = Vec<Announced>>,
{
    let mut unchanged = 0;
    let mut plans = plans.filter(|p| {
        unchanged += usize::from(p.is_noop());
        !p.is_noop()
    });
    let mut ready: VecDeque<Announced> = VecDeque::new();
    let mut announcing = None;
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < in_flight.max(1) {
            let Some(a) = ready.pop_front() else { break };
            running.push(apply_one(stage, a));
        }
        if announcing.is_none() && ready.len() < BATCH_SIZE {
            let batch: Vec<NamespacePlan> = plans.by_ref().take(BATCH_SIZE).collect();
            if !batch.is_empty() {
                announcing = Some(Box::pin(announce(batch)));
            }
        }
        if running.is_empty() && announcing.is_none() {
            break;
        }
        tokio::select! {
            Some(Applied { status, row, write, after }) = running.next(), if !running.is_empty() => {
                for r in after {
                    *tally.counts.entry(r.status).or_default() += 1;
                    tally.rows.push(r);
                }
                *tally.counts.entry(status.into()).or_default() += 1;
                if status == NsStatus::Completed && row.changes > 0 {
                    tally.changed += 1;
                }
                tally.rows.push(row);
                if let Some(w) = write {
                    audit.send_write(w).await;
                }
            }
            batch = async { announcing.as_mut().expect("announcing").await }, if announcing.is_some() => {
                tally.intents_written += batch.iter().filter(|a| a.intent_written).count();
                ready.extend(batch);
                announcing = None;
            }
        }
    }
    tally.unchanged += unchanged;
}

/// One namespace: its writes, what the command does after them (rows of their own), its
/// Events, its row and its final audit write (the record over its intent, or the intent's
/// deletion if it never started).
async fn apply_one(stage: &Stage<'_>, announced: Announced) -> Applied {
    let Announced {
        plan: p,
        at,
        intent_written,
    } = announced;
    let Stage {
        applier,
        run,
        after_apply,
    } = *stage;
    let o = applier.apply_namespace(&p).await;
    let after = match after_apply {
        Some(h) => h.after(applier, &p, &o).await,
        None => Vec::new(),
    };
    crate::scaling::events::emit(applier, &p, &o, run.run_id).await;
    let row = row_of(&p, &o);
    let status = o.status;
    let write = match records::outcome(run, &p, o, at) {
        Some(r) => Some(AuditWrite::Put(Box::new(r))),
        // Not started after all (a stop): nothing changed, nothing to record.
        None if intent_written => Some(AuditWrite::Delete {
            namespace_name: p.namespace.clone(),
            timestamp_start: at,
        }),
        None => None,
    };
    Applied {
        status,
        row,
        write,
        after,
    }
}

/// The summary row of an applied namespace.
fn row_of(p: &NamespacePlan, o: &NamespaceOutcome) -> Row {
    // What took effect (a rolled-back namespace moved nothing).
    let moved: Requested = match o.status {
        NsStatus::Completed => o.resources.iter().filter_map(ResourceChange::requested).sum(),
        _ => Requested::default(),
    };
    let (freed, restored) = match p.target {
        Target::Down => (moved, Requested::default()),
        Target::Up => (Requested::default(), moved),
    };
    let notes: Vec<String> = o
        .error
        .iter()
        .cloned()
        .chain(refusal_note(o))
        .chain(unreadable_note(p))
        .collect();
    Row {
        namespace: p.namespace.clone(),
        cost_center: p.cost_center.clone(),
        action: p.target.as_str().into(),
        schedule: p.schedule.clone(),
        changes: o.resources.len(),
        skipped: p.skipped.len(),
        refused: o.refused.len(),
        freed,
        restored,
        status: o.status.into(),
        error: (!notes.is_empty()).then(|| notes.join("; ")),
        unreadable: p.unreadable().cloned().collect(),
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

/// The summary row's note for the workloads left alone because their annotation does not read.
fn unreadable_note(p: &NamespacePlan) -> Option<String> {
    let names: Vec<String> = p
        .unreadable()
        .map(|s| format!("{} {} left as it is: {}", s.kind, s.name, s.reason))
        .collect();
    (!names.is_empty()).then(|| names.join("; "))
}
