//! The audit records a run writes about its namespaces (docs/reference.md §6), as plain data:
//! the intent written before a namespace's first write, the final record written over it, and
//! the record of a request refused before anything was touched.

use chrono::{DateTime, Utc};

use super::apply::{NamespaceOutcome, NsStatus};
use super::plan::{NamespacePlan, Target};
use crate::audit::{AuditRecord, AuditStatus, OperationType, ResourceChange};

/// Who and where, for every record of a run.
pub struct RunInfo<'a> {
    pub cluster: &'a str,
    pub run_id: &'a str,
}

pub fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// Whether `plan` writes something the audit records: its namespace is scaled, or its window or
/// status changes. Answering a request is recorded by its own record; a namespace whose only
/// news is an unreadable annotation changes nothing before its final record.
pub fn needs_intent(plan: &NamespacePlan) -> bool {
    plan.writes() > 0 && !plan.only_bookkeeping()
}

fn base(run: &RunInfo, plan: &NamespacePlan, timestamp_start: f64, status: AuditStatus) -> AuditRecord {
    AuditRecord {
        namespace_name: plan.namespace.clone(),
        timestamp_start,
        timestamp_end: timestamp_start,
        duration_ms: 0,
        operation_type: plan.operation_type,
        cost_center: plan.cost_center.clone(),
        cluster_name: run.cluster.to_string(),
        requested_by: plan.requested_by.clone(),
        status,
        run_id: run.run_id.to_string(),
        resources: Vec::new(),
        error: None,
        active_until: plan.active_until.clone().filter(|_| plan.target == Target::Up),
        closed_by: None,
    }
}

/// The intent: `in_progress`, with every planned change, under the key its final record will have.
pub fn intent(run: &RunInfo, plan: &NamespacePlan, timestamp_start: f64) -> AuditRecord {
    AuditRecord {
        resources: plan.changes.iter().map(|c| c.resource()).collect(),
        ..base(run, plan, timestamp_start, AuditStatus::InProgress)
    }
}

/// The final record of an applied namespace (None when there is nothing to record: not
/// started, or only a request answered), keyed on `timestamp_start` (its intent's).
pub fn outcome(run: &RunInfo, plan: &NamespacePlan, o: NamespaceOutcome, timestamp_start: f64) -> Option<AuditRecord> {
    let status = match o.status {
        NsStatus::Completed => AuditStatus::Completed,
        NsStatus::RolledBack => AuditStatus::RolledBack,
        NsStatus::Failed => AuditStatus::Failed,
        // Nothing happened: nothing to audit.
        NsStatus::Unchanged | NsStatus::NotProcessed => return None,
    };
    // Answering a rejected request is recorded by its own `rejected` record.
    if status == AuditStatus::Completed && plan.only_bookkeeping() && plan.unreadable().next().is_none() {
        return None;
    }
    let mut resources = o.resources;
    // A refused object is named with the API's message: it was tried, nothing changed.
    resources.extend(
        o.refused
            .into_iter()
            .map(|r| ResourceChange::left_alone(r.kind.as_str(), &r.name, &r.from, &r.to, &r.message)),
    );
    // An object whose annotation does not read is named with the reason: left as it is.
    resources.extend(plan.unreadable().map(|s| {
        let reason = s.reason.to_string();
        ResourceChange::left_alone(s.kind.as_str(), &s.name, &s.value, &s.value, &reason)
    }));
    Some(AuditRecord {
        timestamp_end: epoch(o.started) + o.duration_ms as f64 / 1000.0,
        duration_ms: o.duration_ms,
        resources,
        error: o.error,
        ..base(run, plan, timestamp_start, status)
    })
}

/// The record of a request refused before anything was touched.
pub fn rejection(run: &RunInfo, namespace: &str, cost_center: &str, requested_by: &str, why: &str) -> AuditRecord {
    let now = epoch(Utc::now());
    AuditRecord {
        namespace_name: namespace.to_string(),
        timestamp_start: now,
        timestamp_end: now,
        duration_ms: 0,
        operation_type: OperationType::Activate,
        cost_center: cost_center.to_string(),
        cluster_name: run.cluster.to_string(),
        requested_by: requested_by.to_string(),
        status: AuditStatus::Rejected,
        run_id: run.run_id.to_string(),
        resources: vec![],
        error: Some(why.to_string()),
        active_until: None,
        closed_by: None,
    }
}
