//! Kubernetes Events about namespaces, so `kubectl get events -n NS` tells the story: one per
//! changed namespace (`ScaledDown`, `ScaledUp`, `RolledBack`, `ScalingFailed`), and a Warning
//! `Refused` naming every object the API refused to change, or `Skipped` naming the workloads
//! left alone because our annotation on them does not read, or a namespace left alone (a
//! schedule that does not parse). Failing to write an Event is logged, never fatal:
//! the audit table is the record.

use chrono::Utc;
use kube::api::PostParams;
use kube::core::Request;
use serde_json::{json, Value};

use super::apply::{Applier, NamespaceOutcome, NsStatus};
use super::plan::{NamespacePlan, Target};
use super::write::{self, Next, Start, Written};

fn reason_and_type(target: Target, outcome: &NamespaceOutcome) -> Option<(&'static str, &'static str)> {
    match (outcome.status, target) {
        // Refusals alone changed nothing: only their Warning is written.
        (NsStatus::Completed, _) if outcome.resources.is_empty() => None,
        (NsStatus::Completed, Target::Down) => Some(("ScaledDown", "Normal")),
        (NsStatus::Completed, Target::Up) => Some(("ScaledUp", "Normal")),
        (NsStatus::RolledBack, _) => Some(("RolledBack", "Warning")),
        (NsStatus::Failed, _) => Some(("ScalingFailed", "Warning")),
        _ => None,
    }
}

/// The Events of one applied namespace plan.
pub async fn emit(applier: &Applier, plan: &NamespacePlan, outcome: &NamespaceOutcome, run_id: &str) {
    let ns = &plan.namespace;
    if let Some((reason, kind)) = reason_and_type(plan.target, outcome) {
        let message = match outcome.status {
            NsStatus::Completed => format!(
                "namespace-scheduler {} {}: {} workload(s) changed, {} skipped, {} refused, {} already at target (run {run_id})",
                plan.operation,
                plan.target.as_str(),
                outcome.resources.len(),
                plan.skipped.len(),
                outcome.refused.len(),
                plan.at_target
            ),
            _ => format!(
                "namespace-scheduler {}: {} ({run_id})",
                outcome.status.as_str(),
                outcome.error.as_deref().unwrap_or("")
            ),
        };
        write_event(applier, ns, reason, kind, &message, run_id).await;
    }
    let refused: Vec<String> = outcome
        .refused
        .iter()
        .map(|r| format!("{} {} ({} -> {}): {}", r.kind, r.name, r.from, r.to, r.message))
        .collect();
    let unreadable: Vec<String> = plan
        .unreadable()
        .map(|s| format!("{} {}: {}", s.kind, s.name, s.reason))
        .collect();
    let warnings = [
        (
            "Refused",
            format!(
                "the API refused {} object(s), left as they are and tried again at the next run",
                refused.len()
            ),
            refused,
        ),
        (
            "Skipped",
            format!("{} workload(s) left as they are", unreadable.len()),
            unreadable,
        ),
    ];
    for (reason, headline, what) in warnings {
        if what.is_empty() || outcome.status == NsStatus::NotProcessed {
            continue;
        }
        let message = format!(
            "namespace-scheduler {}: {headline}: {} (run {run_id})",
            plan.target.as_str(),
            what.join("; ")
        );
        write_event(applier, ns, reason, "Warning", &message, run_id).await;
    }
}

/// A Warning that a namespace was left exactly as it is, and why.
pub async fn emit_skipped(applier: &Applier, namespace: &str, why: &str, run_id: &str) {
    let message = format!("namespace-scheduler left this namespace as it is: {why} (run {run_id})");
    write_event(applier, namespace, "Skipped", "Warning", &message, run_id).await;
}

/// Creates one core/v1 Event about the Namespace, through the one write path (transient
/// answers retried under the write semaphore, one slot per attempt). Not counted in `writes`.
async fn write_event(applier: &Applier, ns: &str, reason: &str, kind: &str, message: &str, run_id: &str) {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // Event messages are limited to 1 KiB by the apiserver.
    let message: String = message.chars().take(1000).collect();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{ns}.{}.{}", run_id.to_ascii_lowercase(), reason.to_ascii_lowercase()),
            "namespace": ns,
        },
        // The apiserver requires involvedObject.namespace to equal the Event's own namespace,
        // even for a cluster-scoped object such as a Namespace.
        "involvedObject": {"apiVersion": "v1", "kind": "Namespace", "name": ns, "namespace": ns},
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "namespace-scheduler"},
        "reportingComponent": "namespace-scheduler",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let written = write::conditional(
        &applier.policy,
        "create event",
        Start::With(Next::Send(event)),
        |e: Value| async move {
            let _permit = applier.permit().await;
            let body = serde_json::to_vec(&e).map_err(kube::Error::SerdeError)?;
            let req = Request::new(format!("/api/v1/namespaces/{ns}/events"))
                .create(&PostParams::default(), body)
                .map_err(kube::Error::BuildRequest)?;
            applier.client.request::<Value>(req).await
        },
        // An Event that exists already (409 AlreadyExists: a lost answer) is done.
        || async { Ok(None::<Value>) },
        |_| Next::Nothing,
    )
    .await;
    match written {
        Ok(Written::Done(_) | Written::Nothing) => {}
        Ok(Written::Refused(e)) => tracing::warn!(namespace = %ns, error = %e, "could not write the Event (not fatal)"),
        Err(e) => tracing::warn!(namespace = %ns, error = %e, "could not write the Event (not fatal)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::ResourceChange;

    fn outcome(status: NsStatus, changed: bool) -> NamespaceOutcome {
        NamespaceOutcome {
            status,
            resources: if changed {
                vec![ResourceChange::changed("Deployment", "api", "3", "0", None)]
            } else {
                vec![]
            },
            refused: vec![],
            error: None,
            started: Utc::now(),
            duration_ms: 10,
        }
    }

    #[test]
    fn each_outcome_has_its_reason_and_type() {
        let cases = [
            (NsStatus::Completed, Target::Down, true, Some(("ScaledDown", "Normal"))),
            (NsStatus::Completed, Target::Up, true, Some(("ScaledUp", "Normal"))),
            // Refusals alone changed nothing: only their own Warning is written.
            (NsStatus::Completed, Target::Down, false, None),
            (
                NsStatus::RolledBack,
                Target::Down,
                true,
                Some(("RolledBack", "Warning")),
            ),
            (NsStatus::RolledBack, Target::Up, false, Some(("RolledBack", "Warning"))),
            (NsStatus::Failed, Target::Up, true, Some(("ScalingFailed", "Warning"))),
            (NsStatus::Unchanged, Target::Down, false, None),
            (NsStatus::NotProcessed, Target::Up, false, None),
        ];
        for (status, target, changed, want) in cases {
            assert_eq!(
                reason_and_type(target, &outcome(status, changed)),
                want,
                "{status:?} {target:?} changed={changed}"
            );
        }
    }
}
