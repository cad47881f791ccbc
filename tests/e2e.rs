//! End-to-end: the real binary, as a subprocess, against the API stand-in (default) or the real
//! cluster of `E2E_KUBECONFIG` (see docs/e2e.md), with DynamoDB Local for the audit.
//! Fault-injection and request-count tests need the stand-in and return early on a real cluster.

#[path = "e2e/apiserver_rules.rs"]
mod apiserver_rules;
#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/caps.rs"]
mod caps;
mod common;
#[path = "e2e/control_plane_faults.rs"]
mod control_plane_faults;
#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/fleet.rs"]
mod fleet;
#[path = "e2e/guard_real.rs"]
mod guard_real;
#[path = "e2e/harness.rs"]
mod harness;
mod k8s_manifests;
#[path = "e2e/kinds.rs"]
mod kinds;
#[path = "e2e/lease.rs"]
mod lease;
#[path = "e2e/manifests_real.rs"]
mod manifests_real;
#[path = "e2e/manifests_real_support.rs"]
mod manifests_real_support;
#[path = "e2e/rbac.rs"]
mod rbac;
#[path = "e2e/refusals.rs"]
mod refusals;
#[path = "e2e/savings.rs"]
mod savings;
#[path = "e2e/schedules.rs"]
mod schedules;
#[path = "e2e/self_service.rs"]
mod self_service;
#[path = "e2e/skips.rs"]
mod skips;

use harness::*;
use namespace_scheduler::audit::{AuditStatus, OperationType};
use serde_json::{json, Value};

const ORIG: &str = "namespace-scheduler/original-replicas";

/// A namespace with every case of docs/reference.md §4: counts 1/3/7, a StatefulSet, CronJobs on and off,
/// a Deployment off on purpose, an excluded one and an operator-controlled one.
async fn mixed_namespace(c: &Cluster, short: &str) -> String {
    let ns = c
        .namespace(short, &[("namespace-scheduler/cost-center", "DEVOPS-INFRA")])
        .await;
    for (name, n) in [("one", 1), ("three", 3), ("seven", 7), ("idle", 0)] {
        c.deployment(&ns, name, n).await;
    }
    c.statefulset(&ns, "db", 2).await;
    c.cronjob(&ns, "report", false).await;
    c.cronjob(&ns, "paused-by-team", true).await;
    let mut excluded = standin::seed::deployment(&ns, "excluded", 2);
    excluded["metadata"]["annotations"] = json!({"namespace-scheduler/exclude": "true"});
    c.create(excluded).await;
    // A real owner (GC on a real cluster deletes dependents of a missing one): any object
    // with a uid will do, and Leases exist in both modes.
    let owner = c
        .create(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "pg", "namespace": ns}}))
        .await;
    let mut operated = standin::seed::deployment(&ns, "operated", 4);
    operated["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "name": "pg",
        "uid": owner["metadata"]["uid"], "controller": true
    }]);
    c.create(operated).await;
    ns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_then_up_restores_exact_values_and_skips_what_is_not_ours() {
    let c = Cluster::start().await;
    let ns = mixed_namespace(&c, "mixed").await;
    let start = c.snapshot(&ns).await;

    // The plan lists what will change and what is skipped, with reasons, and touches nothing.
    let (code, out, err) = c
        .run(&["--dry-run", "--output", "json", "run", "--at", OFF_HOURS])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let plan: Value = serde_json::from_str(out.trim()).unwrap();
    let p = &plan["namespaces"][0];
    assert_eq!(p["target"], "down");
    assert_eq!(p["changes"].as_array().unwrap().len(), 5, "{p}");
    let reasons: Vec<String> = p["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}/{}: {}",
                s["kind"].as_str().unwrap(),
                s["name"].as_str().unwrap(),
                s["reason"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        reasons.contains(&"Deployment/excluded: annotated namespace-scheduler/exclude".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"Deployment/operated: controlled by Lease/pg".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&"Deployment/idle: at 0 without our annotation: off on purpose".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("CronJob/paused-by-team: suspended without our annotation")),
        "{reasons:?}"
    );
    assert_eq!(c.snapshot(&ns).await, start, "dry-run changed something");

    let (code, s, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(row(&s, &ns)["status"], "completed");
    for (name, n) in [("one", 1), ("three", 3), ("seven", 7)] {
        assert_eq!(c.replicas("Deployment", &ns, name).await, 0);
        assert_eq!(
            c.annotation("Deployment", Some(&ns), name, ORIG).await,
            Some(n.to_string())
        );
    }
    assert_eq!(
        c.annotation("StatefulSet", Some(&ns), "db", ORIG).await.as_deref(),
        Some("2")
    );
    assert!(c.suspended(&ns, "report").await);
    assert_eq!(
        c.label(&ns, "namespace-scheduler/status").await.as_deref(),
        Some("inactive")
    );
    // Not ours: untouched, no annotation.
    assert_eq!(c.replicas("Deployment", &ns, "idle").await, 0);
    assert_eq!(c.replicas("Deployment", &ns, "excluded").await, 2);
    assert_eq!(c.replicas("Deployment", &ns, "operated").await, 4);
    assert_eq!(c.annotation("Deployment", Some(&ns), "idle", ORIG).await, None);

    let (code, s, err) = c.run_json(BUSINESS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    let mut end = c.snapshot(&ns).await;
    assert_eq!(
        end.remove("Namespace").as_deref(),
        Some("namespace-scheduler/cost-center=\"DEVOPS-INFRA\",namespace-scheduler/status=\"active\"")
    );
    let mut start = start;
    start.remove("Namespace");
    assert_eq!(
        end, start,
        "up must restore exactly the starting values and drop our annotations"
    );

    let audit = c.audit().await;
    let ops: Vec<(OperationType, AuditStatus, usize)> = audit
        .iter()
        .map(|r| (r.operation_type, r.status, r.resources.len()))
        .collect();
    assert_eq!(
        ops,
        vec![
            (OperationType::AutoShutdownBusinessHours, AuditStatus::Completed, 5),
            (OperationType::AutoStartupBusinessHours, AuditStatus::Completed, 5)
        ]
    );
    assert!(audit
        .iter()
        .all(|r| r.requested_by == "system" && r.cluster_name == "e2e" && r.cost_center == "DEVOPS-INFRA"));
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_changed_while_down_is_kept() {
    let c = Cluster::start().await;
    let ns = c.namespace("changed", &[]).await;
    c.deployment(&ns, "api", 3).await;
    c.deployment(&ns, "web", 2).await;
    c.cronjob(&ns, "job", false).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    // Someone scales api to 5 and resumes the CronJob by hand during the night.
    c.patch("Deployment", Some(&ns), "api", json!({"spec": {"replicas": 5}}))
        .await;
    c.patch("CronJob", Some(&ns), "job", json!({"spec": {"suspend": false}}))
        .await;
    let (code, out, err) = c.run(&["run", "--at", BUSINESS]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 5, "their value is kept");
    assert_eq!(c.replicas("Deployment", &ns, "web").await, 2, "ours is restored");
    assert!(!c.suspended(&ns, "job").await);
    for name in ["api", "web"] {
        assert_eq!(c.annotation("Deployment", Some(&ns), name, ORIG).await, None);
    }
    assert_eq!(
        c.annotation("CronJob", Some(&ns), "job", "namespace-scheduler/original-suspend")
            .await,
        None
    );
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_unknown_and_unmanaged_namespaces_are_refused_with_exit_2() {
    let c = Cluster::start().await;
    let guarded = c.namespace("guarded", &[]).await;
    c.deployment(&guarded, "api", 2).await;
    let normal = c.namespace("normal", &[]).await;
    c.deployment(&normal, "api", 2).await;
    let env = [("PROTECTED_NAMESPACES", guarded.as_str())];
    for args in [
        vec![
            "up",
            "--namespace",
            guarded.as_str(),
            "--cost-center",
            "DEVOPS-INFRA",
            "--at",
            OFF_HOURS,
        ],
        vec!["down", "--namespace", guarded.as_str()],
        vec!["down", "--namespace", c.own_ns.as_str()],
        vec!["down", "--namespace", "kube-system"],
        vec!["down", "--namespace", "nss-e2e-does-not-exist"],
    ] {
        let (code, out, err) = c.run_with(&args, &env).await;
        assert_eq!(code, 2, "{args:?}: {out}\n{err}");
        assert!(
            err.contains("protected") || err.contains("does not exist"),
            "{args:?}: {err}"
        );
    }
    // A value that names nothing (an overlay blanking it) is bad configuration, not "protect
    // nothing": every command stops before touching the cluster.
    for blank in ["", " , "] {
        for args in [
            vec!["down", "--namespace", normal.as_str()],
            vec!["run", "--at", OFF_HOURS],
        ] {
            let (code, out, err) = c.run_with(&args, &[("PROTECTED_NAMESPACES", blank)]).await;
            assert_eq!(code, 2, "{blank:?} {args:?}: {out}\n{err}");
            assert!(err.contains("PROTECTED_NAMESPACES"), "{err}");
        }
    }
    let (code, _, err) = c
        .run_with(
            &["down", "--namespace", &normal],
            &[("NAMESPACE_SELECTOR", "nss-e2e/none=x")],
        )
        .await;
    assert_eq!(code, 2);
    assert!(err.contains("not managed"), "{err}");
    assert_eq!(
        c.replicas("Deployment", &normal, "api").await,
        2,
        "exit 2 touches nothing"
    );
    // A scheduled run never writes a protected namespace either.
    let (code, out, err) = c.run_with(&["run", "--at", OFF_HOURS], &env).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(c.replicas("Deployment", &guarded, "api").await, 2);
    assert_eq!(c.label(&guarded, "namespace-scheduler/status").await, None);
    assert_eq!(c.replicas("Deployment", &normal, "api").await, 0);
    if let Some(s) = c.standin() {
        assert!(s
            .requests()
            .iter()
            // Only the test's own seeding ever wrote there.
            .all(|r| r.namespace != guarded || matches!(r.verb.as_str(), "list" | "get" | "create")));
        assert!(s
            .requests()
            .iter()
            .all(|r| !(r.resource == "namespaces" && r.name == guarded && r.verb == "patch")));
    }
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_and_takes_no_lease() {
    let c = Cluster::start().await;
    let ns = mixed_namespace(&c, "dry").await;
    let before = c.snapshot(&ns).await;
    if let Some(s) = c.standin() {
        s.reset_requests();
    }
    let (code, out, err) = c.run(&["--dry-run", "run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("DRY RUN") && out.contains("seven") && out.contains("7 -> 0"),
        "{out}"
    );
    assert_eq!(c.snapshot(&ns).await, before);
    assert!(c.get("Lease", Some(&c.own_ns), "namespace-scheduler").await.is_none());
    if let Some(s) = c.standin() {
        let writes: Vec<_> = s
            .requests()
            .into_iter()
            .filter(|r| !matches!(r.verb.as_str(), "get" | "list"))
            .collect();
        assert!(writes.is_empty(), "{writes:?}");
    }
    assert!(c.audit().await.is_empty(), "dry-run writes no audit");
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_unknown_cost_center_is_rejected_audited_and_touches_nothing() {
    let c = Cluster::start().await;
    c.populate().await;
    let ns = c.namespace("reject", &[]).await;
    c.deployment(&ns, "api", 3).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    let before = c.snapshot(&ns).await;
    let (code, out, err) = c
        .run(&[
            "up",
            "--namespace",
            &ns,
            "--cost-center",
            "NO-SUCH-CC",
            "--requested-by",
            "bob",
            "--at",
            OFF_HOURS,
        ])
        .await;
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(err.contains("unknown_cost_center"), "the log names the rule: {err}");
    // The run still ends with its one summary, naming the namespace, the status and the rule.
    let row = out.lines().find(|l| l.contains(ns.as_str())).unwrap_or_default();
    assert!(row.contains("rejected"), "summary row for {ns}: {out}");
    assert!(out.contains("unknown_cost_center") && out.contains("exit 4"), "{out}");
    assert_eq!(c.snapshot(&ns).await, before);
    let rejected: Vec<_> = c
        .audit()
        .await
        .into_iter()
        .filter(|r| r.status == AuditStatus::Rejected)
        .collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        (rejected[0].operation_type, rejected[0].requested_by.as_str()),
        (OperationType::Activate, "bob")
    );
    assert!(rejected[0].error.as_deref().unwrap().contains("unknown_cost_center"));
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_off_hours_opens_a_window_that_run_respects_until_it_ends() {
    let c = Cluster::start().await;
    c.populate().await;
    let ns = c.namespace("window", &[]).await;
    let other = c.namespace("other", &[]).await;
    c.deployment(&ns, "api", 3).await;
    c.deployment(&other, "api", 2).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    let (code, out, err) = c
        .run(&[
            "up",
            "--namespace",
            &ns,
            "--cost-center",
            "DEVOPS-INFRA",
            "--requested-by",
            "ana",
            "--for",
            "4h",
            "--at",
            OFF_HOURS,
        ])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);
    // 20:00 -05:00 + 4h = 00:00 -05:00 the next day = 05:00Z.
    assert_eq!(
        c.annotation("Namespace", None, &ns, "namespace-scheduler/active-until")
            .await
            .as_deref(),
        Some("2026-11-26T05:00:00Z")
    );
    assert_eq!(
        c.label(&ns, "namespace-scheduler/status").await.as_deref(),
        Some("active")
    );

    let (code, s, _) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0);
    assert_eq!(
        c.replicas("Deployment", &ns, "api").await,
        3,
        "the window is still open at 21:00"
    );
    assert_eq!(s["namespaces_changed"], 0, "{s}");

    let (code, _, _) = c.run_json(NEXT_NIGHT, &[]).await;
    assert_eq!(code, 0);
    assert_eq!(
        c.replicas("Deployment", &ns, "api").await,
        0,
        "the window ended at 00:00"
    );
    assert_eq!(
        c.annotation("Namespace", None, &ns, "namespace-scheduler/active-until")
            .await,
        None
    );
    let ops: Vec<_> = c
        .audit()
        .await
        .into_iter()
        .filter(|r| r.namespace_name == ns)
        .map(|r| (r.operation_type, r.requested_by))
        .collect();
    assert_eq!(
        ops,
        vec![
            (OperationType::AutoShutdownBusinessHours, "system".to_string()),
            (OperationType::Activate, "ana".to_string()),
            (OperationType::AutoShutdownBusinessHours, "system".to_string())
        ]
    );
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_service_requests_are_accepted_rejected_expired_and_answered_once() {
    let c = Cluster::start().await;
    c.populate().await;
    let ok = c
        .namespace("req-ok", &[("namespace-scheduler/cost-center", "DEVOPS-INFRA")])
        .await;
    let no = c
        .namespace("req-no", &[("namespace-scheduler/cost-center", "EXTERNAL-CONTRACTOR")])
        .await;
    let old = c
        .namespace("req-old", &[("namespace-scheduler/cost-center", "DEVOPS-INFRA")])
        .await;
    for ns in [&ok, &no, &old] {
        c.deployment(ns, "api", 2).await;
    }
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    c.ask(&ok, "late", "2026-11-25T23:00:00-05:00").await;
    c.ask(&no, "late", "2026-11-25T23:00:00-05:00").await;
    c.ask(&old, "late", "2026-11-25T19:00:00-05:00").await;
    let me = c.whoami().await;

    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(c.replicas("Deployment", &ok, "api").await, 2);
    let answer = c.answer(&ok, "late").await;
    assert_eq!(
        answer,
        json!({"phase": "Accepted", "message": "window open until 2026-11-26T04:00:00Z, granted to DEVOPS-INFRA",
               "grantedUntil": "2026-11-26T04:00:00Z", "costCenter": "DEVOPS-INFRA", "observedGeneration": 1})
    );
    assert_eq!(
        c.annotation("Namespace", None, &ok, "namespace-scheduler/active-until")
            .await
            .as_deref(),
        Some("2026-11-26T04:00:00Z")
    );
    assert_eq!(
        c.annotation("Namespace", None, &ok, "namespace-scheduler/active-request")
            .await
            .as_deref(),
        Some("late")
    );
    assert_eq!(c.replicas("Deployment", &no, "api").await, 0);
    let status = c.phase(&no, "late").await;
    assert!(
        status.starts_with("Rejected: not_authorized: cost center EXTERNAL-CONTRACTOR"),
        "{status}"
    );
    let status = c.phase(&old, "late").await;
    assert!(
        status.starts_with("Rejected: expired: the requested window ended at 2026-11-26T00:00:00Z"),
        "{status}"
    );
    let audit = c.audit().await;
    let activations: Vec<_> = audit
        .iter()
        .filter(|r| r.operation_type == OperationType::Activate)
        .map(|r| (r.namespace_name.clone(), r.status, r.requested_by.clone()))
        .collect();
    assert_eq!(activations.len(), 3, "{activations:?}");
    assert!(activations.contains(&(ok.clone(), AuditStatus::Completed, me.clone())));
    assert!(activations.contains(&(no.clone(), AuditStatus::Rejected, me.clone())));
    assert!(activations.contains(&(old.clone(), AuditStatus::Rejected, me.clone())));

    // Answered requests are not judged again: nothing changes, nothing is audited.
    let (code, s, _) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0);
    assert_eq!(s["namespaces_changed"], 0, "{s}");
    assert_eq!(s["writes"], 0, "{s}");
    assert_eq!(c.audit().await.len(), audit.len());
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_lease_blocks_with_exit_3_and_a_stale_one_is_taken_over() {
    let c = Cluster::start().await;
    let ns = c.namespace("lease", &[]).await;
    c.deployment(&ns, "api", 3).await;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    c.create(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "namespace-scheduler", "namespace": c.own_ns},
        "spec": {"holderIdentity": "other-pod/run", "leaseDurationSeconds": 60, "acquireTime": now, "renewTime": now, "leaseTransitions": 4}
    }))
    .await;
    let (code, out, err) = c.run(&["run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("other-pod/run"), "{err}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3, "exit 3 touches nothing");
    // Even a run stopped by the lock ends with its one summary, here as JSON.
    let (code, out, err) = c.run(&["--output", "json", "run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 3, "{out}\n{err}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(summary["exit_code"], 3, "{summary}");
    assert!(
        summary["error"].as_str().unwrap().contains("other-pod/run"),
        "{summary}"
    );

    c.expire_lease().await;
    let (code, out, err) = c.run(&["run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    let lease = c.get("Lease", Some(&c.own_ns), "namespace-scheduler").await.unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 5);
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "released at the end: {lease}"
    );
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_scaled_objects_are_paused_on_down_and_unpaused_on_up() {
    let c = Cluster::start().await;
    c.ensure_keda_crd().await;
    let ns = c.namespace("keda", &[]).await;
    c.deployment(&ns, "worker", 4).await;
    c.create(standin::seed::scaled_object(&ns, "worker", "worker")).await;
    let (code, out, err) = c.run(&["run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&ns) && out.contains("completed"), "text summary: {out}");
    let paused = "autoscaling.keda.sh/paused-replicas";
    assert_eq!(
        c.annotation("ScaledObject", Some(&ns), "worker", paused)
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(c.replicas("Deployment", &ns, "worker").await, 0);
    assert_eq!(c.run(&["run", "--at", BUSINESS]).await.0, 0);
    assert_eq!(c.annotation("ScaledObject", Some(&ns), "worker", paused).await, None);
    assert_eq!(
        c.annotation(
            "ScaledObject",
            Some(&ns),
            "worker",
            "namespace-scheduler/paused-by-scheduler"
        )
        .await,
        None
    );
    assert_eq!(c.replicas("Deployment", &ns, "worker").await, 4);
    c.cleanup().await;
}
