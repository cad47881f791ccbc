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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::scaling::apply::Refusal;
    use crate::scaling::inventory::{ManagedNamespace, Setting, Workload};
    use crate::scaling::kinds::Kind;
    use crate::scaling::plan::{plan_namespace, Intent, Until};

    const RUN: RunInfo = RunInfo {
        cluster: "eks",
        run_id: "run-1",
    };

    fn plan(status: Option<&str>, workloads: &[(&str, Setting, Option<&str>)], target: Target) -> NamespacePlan {
        let ns = ManagedNamespace {
            name: "dev-a".into(),
            resource_version: None,
            cost_center: "CC".into(),
            labels: status
                .map(|s| BTreeMap::from([(crate::scaling::LABEL_STATUS.to_string(), s.to_string())]))
                .unwrap_or_default(),
            annotations: BTreeMap::new(),
        };
        let ws: Vec<Workload> = workloads
            .iter()
            .map(|(name, setting, marker)| Workload {
                kind: Kind::DEPLOYMENT,
                namespace: "dev-a".into(),
                name: name.to_string(),
                resource_version: None,
                setting: setting.clone(),
                marker: marker.map(str::to_string),
                excluded: false,
                controller: None,
                per_replica: None,
                autoscaler: None,
            })
            .collect();
        let intent = Intent {
            target,
            until: Until::Keep,
            operation: OperationType::AutoStartupBusinessHours,
            requested_by: "system".into(),
            granted_by: None,
        };
        plan_namespace(&ns, &ws, &intent)
    }

    fn outcome_of(status: NsStatus) -> NamespaceOutcome {
        NamespaceOutcome {
            status,
            resources: vec![ResourceChange::changed("Deployment", "api", "0", "3", None)],
            refused: vec![],
            error: None,
            started: Utc::now(),
            duration_ms: 1500,
        }
    }

    #[test]
    fn which_plans_get_an_intent() {
        let cases = [
            (
                "scales a workload",
                plan(Some("active"), &[("api", Setting::Replicas(0), Some("3"))], Target::Up),
                true,
            ),
            (
                "only its status label",
                plan(Some("inactive"), &[("api", Setting::Replicas(3), None)], Target::Up),
                true,
            ),
            (
                "nothing to write",
                plan(Some("active"), &[("api", Setting::Replicas(3), None)], Target::Up),
                false,
            ),
            (
                "only an unreadable annotation to name",
                plan(
                    Some("active"),
                    &[("api", Setting::Replicas(0), Some("abc"))],
                    Target::Up,
                ),
                false,
            ),
        ];
        for (case, p, want) in cases {
            assert_eq!(needs_intent(&p), want, "{case}");
        }
    }

    #[test]
    fn the_final_record_takes_the_key_of_its_intent() {
        let p = plan(
            Some("inactive"),
            &[("api", Setting::Replicas(0), Some("3"))],
            Target::Up,
        );
        let at = 1_796_000_000.25;
        let intent = intent(&RUN, &p, at);
        assert_eq!(intent.status, AuditStatus::InProgress);
        assert_eq!(intent.resources.len(), 1, "the planned changes");
        let final_record = outcome(&RUN, &p, outcome_of(NsStatus::Completed), at).unwrap();
        assert_eq!(final_record.key(), intent.key());
        assert_eq!(final_record.status, AuditStatus::Completed);
        assert_eq!(final_record.duration_ms, 1500);
        assert!(final_record.timestamp_end >= final_record.timestamp_start);
        // Not started (a stop came first): no record, so the caller deletes the intent.
        assert_eq!(outcome(&RUN, &p, outcome_of(NsStatus::NotProcessed), at), None);
    }

    #[test]
    fn refused_and_unreadable_objects_are_named_as_left_alone() {
        let p = plan(
            Some("active"),
            &[
                ("api", Setting::Replicas(0), Some("3")),
                ("legacy", Setting::Replicas(0), Some("abc")),
            ],
            Target::Up,
        );
        let mut o = outcome_of(NsStatus::Completed);
        o.refused.push(Refusal {
            kind: Kind::DEPLOYMENT,
            name: "frozen".into(),
            from: "0".into(),
            to: "2".into(),
            message: "denied by policy".into(),
        });
        let r = outcome(&RUN, &p, o, 1.0).unwrap();
        let named: Vec<(&str, Option<&str>, bool)> = r
            .resources
            .iter()
            .map(|x| {
                (
                    x.name.as_str(),
                    x.skipped.as_deref().map(|s| &s[..10.min(s.len())]),
                    x.took_effect(),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("api", None, true),
                ("frozen", Some("denied by "), false),
                ("legacy", Some("unreadable"), false)
            ]
        );
    }

    #[test]
    fn each_namespace_outcome_makes_its_audit_record() {
        let p = plan(
            Some("inactive"),
            &[("api", Setting::Replicas(0), Some("3"))],
            Target::Up,
        );
        let cases = [
            (NsStatus::Completed, Some(AuditStatus::Completed)),
            (NsStatus::RolledBack, Some(AuditStatus::RolledBack)),
            (NsStatus::Failed, Some(AuditStatus::Failed)),
            (NsStatus::Unchanged, None),
            (NsStatus::NotProcessed, None),
        ];
        for (status, want) in cases {
            let mut o = outcome_of(status);
            o.error = Some("a write failed".into());
            let record = outcome(&RUN, &p, o, 1_796_000_000.0);
            assert_eq!(record.as_ref().map(|r| r.status), want, "{status:?}");
            if let Some(r) = record {
                assert_eq!(r.namespace_name, p.namespace, "{status:?}");
                assert_eq!(r.run_id, RUN.run_id, "{status:?}");
                assert_eq!(r.operation_type.as_str(), p.operation, "{status:?}");
                assert_eq!(r.error.as_deref(), Some("a write failed"), "{status:?}");
                assert_eq!(r.resources.len(), 1, "{status:?}: the changes that took effect");
            }
        }
    }
}
