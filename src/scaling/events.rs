//! One core/v1 Event per changed namespace, so `kubectl get events -n NS` tells the story.
//! Failing to write an Event is logged, never fatal: the audit table is the record.

use chrono::Utc;
use kube::api::PostParams;
use kube::core::Request;
use serde_json::json;

use super::apply::{Applier, NamespaceOutcome, NsStatus};
use super::plan::{NamespacePlan, Target};
use super::retry;

fn reason_and_type(target: Target, status: NsStatus) -> Option<(&'static str, &'static str)> {
    match (status, target) {
        (NsStatus::Completed, Target::Down) => Some(("ScaledDown", "Normal")),
        (NsStatus::Completed, Target::Up) => Some(("ScaledUp", "Normal")),
        (NsStatus::RolledBack, _) => Some(("RolledBack", "Warning")),
        (NsStatus::Failed, _) => Some(("ScalingFailed", "Warning")),
        _ => None,
    }
}

/// Creates the Event under the applier's write semaphore (one slot per attempt, none held
/// while backing off). Not counted in the run's `writes`.
pub async fn emit(applier: &Applier, plan: &NamespacePlan, outcome: &NamespaceOutcome, run_id: &str) {
    let Some((reason, kind)) = reason_and_type(plan.target, outcome.status) else {
        return;
    };
    let ns = &plan.namespace;
    let message = match outcome.status {
        NsStatus::Completed => format!(
            "namespace-scheduler {} {}: {} workload(s) changed, {} skipped, {} already at target (run {run_id})",
            plan.operation,
            plan.target.as_str(),
            outcome.resources.len(),
            plan.skipped.len(),
            plan.at_target
        ),
        _ => format!(
            "namespace-scheduler {}: {} ({})",
            outcome.status.as_str(),
            outcome.error.as_deref().unwrap_or(""),
            run_id
        ),
    };
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{ns}.{}", run_id.to_ascii_lowercase()), "namespace": ns},
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
    let result = retry::transient(&applier.policy, "create event", || async {
        let _permit = applier.permit().await;
        let body = serde_json::to_vec(&event).map_err(kube::Error::SerdeError)?;
        let req = Request::new(format!("/api/v1/namespaces/{ns}/events"))
            .create(&PostParams::default(), body)
            .map_err(kube::Error::BuildRequest)?;
        applier.client.request::<serde_json::Value>(req).await
    })
    .await;
    if let Err(e) = result {
        tracing::warn!(namespace = %ns, error = %e, "could not write the Event (not fatal)");
    }
}
