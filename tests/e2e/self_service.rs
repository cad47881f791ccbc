//! Self-service through ActivationRequests (docs/reference.md §5), on the stand-in and on a
//! real apiserver alike: a request opens its namespace's window and is answered in its status;
//! deleting it, or changing its `until` (a new request, judged again), ends or moves the window
//! at the next run; a newer request, an admin's `up`, take the window over; the caps hold over
//! requests made at the same instant; a malformed permissions item fails only its own cost
//! center. What needs real admission (the schema, the verified requester, RBAC) is in
//! `manifests_real.rs`.

use aws_sdk_dynamodb::types::AttributeValue;
use namespace_scheduler::audit::{AuditStatus, OperationType};
use namespace_scheduler::permissions::default_cost_centers;
use serde_json::{json, Value};
use standin::{FaultAction, FaultRule, Options};

use crate::harness::*;

const CC: &str = "namespace-scheduler/cost-center";
const MORNING: &str = "2026-11-26T06:00:00-05:00";

fn row<'a>(summary: &'a Value, ns: &str, status: &str) -> &'a Value {
    summary["namespaces"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["namespace"] == ns && r["status"] == status))
        .unwrap_or_else(|| panic!("no {status} row for {ns} in {summary}"))
}

async fn change_until(c: &Cluster, ns: &str, name: &str, until: &str) {
    c.patch("ActivationRequest", Some(ns), name, json!({"spec": {"until": until}}))
        .await;
}

async fn window(c: &Cluster, ns: &str) -> (Option<String>, Option<String>) {
    (
        c.annotation("Namespace", None, ns, "namespace-scheduler/active-until")
            .await,
        c.annotation("Namespace", None, ns, "namespace-scheduler/active-request")
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_opens_a_window_that_ends_when_it_is_deleted_and_a_changed_request_is_judged_again() {
    let c = Cluster::start().await;
    c.populate().await;
    let ns = c.namespace("dev-x", &[(CC, "DEVOPS-INFRA")]).await;
    // What the Namespace-annotation requests left: the scheduler's old answers go with its next
    // write; the team's own annotation stays, and is no request at all.
    c.patch(
        "Namespace",
        None,
        &ns,
        json!({"metadata": {"annotations": {
            "namespace-scheduler/request-until": "2026-11-25T23:00:00-05:00",
            "namespace-scheduler/request-status": "accepted",
            "namespace-scheduler/request-answered": "2026-11-25T23:00:00-05:00"}}}),
    )
    .await;
    c.deployment(&ns, "api", 3).await;
    let (code, s, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(
        c.replicas("Deployment", &ns, "api").await,
        0,
        "an old annotation asks for nothing"
    );
    for (key, present) in [
        ("namespace-scheduler/request-status", false),
        ("namespace-scheduler/request-answered", false),
        ("namespace-scheduler/request-until", true),
    ] {
        assert_eq!(
            c.annotation("Namespace", None, &ns, key).await.is_some(),
            present,
            "{key}"
        );
    }

    c.ask(&ns, "tonight", "2026-11-25T23:30:00-05:00").await;
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);
    assert_eq!(
        window(&c, &ns).await,
        (Some("2026-11-26T04:30:00Z".into()), Some("tonight".into()))
    );

    // Lowering `until` is a new request, judged again: the window moves.
    change_until(&c, &ns, "tonight", "2026-11-25T22:00:00-05:00").await;
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    let answer = c.answer(&ns, "tonight").await;
    assert_eq!(
        (&answer["phase"], &answer["grantedUntil"], &answer["observedGeneration"]),
        (&json!("Accepted"), &json!("2026-11-26T03:00:00Z"), &json!(2))
    );
    assert_eq!(window(&c, &ns).await.0.as_deref(), Some("2026-11-26T03:00:00Z"));
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);

    // Lowering it into the past ends the window now: off-hours, the namespace goes down.
    change_until(&c, &ns, "tonight", "2026-11-25T20:30:00-05:00").await;
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert!(c.phase(&ns, "tonight").await.starts_with("Rejected: expired: "));
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    assert_eq!(window(&c, &ns).await, (None, None));

    // Asked again, then cancelled: deleting the request ends the window at the next run.
    change_until(&c, &ns, "tonight", "2026-11-25T23:30:00-05:00").await;
    assert_eq!(c.run_json(LATER_OFF_HOURS, &[]).await.0, 0);
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);
    c.delete("ActivationRequest", Some(&ns), "tonight").await;
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    assert_eq!(window(&c, &ns).await, (None, None));

    let me = c.whoami().await;
    let ops: Vec<(OperationType, AuditStatus, String)> = c
        .audit()
        .await
        .into_iter()
        .map(|r| (r.operation_type, r.status, r.requested_by))
        .collect();
    let system = || "system".to_string();
    assert_eq!(
        ops,
        [
            (
                OperationType::AutoShutdownBusinessHours,
                AuditStatus::Completed,
                system()
            ),
            (OperationType::Activate, AuditStatus::Completed, me.clone()),
            (OperationType::Activate, AuditStatus::Completed, me.clone()),
            (OperationType::Activate, AuditStatus::Rejected, me.clone()),
            (
                OperationType::AutoShutdownBusinessHours,
                AuditStatus::Completed,
                system()
            ),
            (OperationType::Activate, AuditStatus::Completed, me.clone()),
            (
                OperationType::AutoShutdownBusinessHours,
                AuditStatus::Completed,
                system()
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_requests_of_one_cost_center_capped_at_three_at_the_same_instant_leave_three_up() {
    let c = Cluster::start().await;
    c.populate_with(
        json!([{"cost_center": "TEAM-THREE", "is_authorized": true, "max_concurrent_namespaces": 3,
        "authorized_namespaces": ["nss-e2e-*"]}]),
    )
    .await;
    let mut names = Vec::new();
    for i in 0..4 {
        let ns = c.namespace(&format!("three-{i}"), &[(CC, "TEAM-THREE")]).await;
        c.deployment(&ns, "api", 2).await;
        names.push(ns);
    }
    assert_eq!(c.run(&["run", "--at", BUSINESS]).await.0, 0);
    for ns in &names {
        c.ask(ns, "night", MORNING).await;
    }
    let cap = [("NON_BUSINESS_MAX_ACTIVE_NAMESPACES", "10")];
    let (code, s, err) = c.run_json(OFF_HOURS, &cap).await;
    assert_eq!(code, 0, "{s}\n{err}");
    let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
    for ns in &names {
        let answer = c.answer(ns, "night").await;
        let text = serde_json::to_string(&answer).unwrap();
        match answer["phase"].as_str() {
            Some("Accepted") => accepted.push(ns.clone()),
            Some("Rejected") => {
                assert!(text.len() < 1024, "a rejection's status stays small: {text}");
                rejected.push((ns.clone(), answer["message"].as_str().unwrap().to_string()));
            }
            other => panic!("{ns}: {other:?} in {answer}"),
        }
    }
    assert_eq!((accepted.len(), rejected.len()), (3, 1), "{accepted:?} {rejected:?}");
    assert_eq!(
        rejected[0].1,
        "cost_center_cap: 3 of 3 windows of TEAM-THREE open at 20:00 on 2026-11-25 America/Bogota (max_concurrent_namespaces=3)"
    );
    for ns in &names {
        let want = if accepted.contains(ns) { 2 } else { 0 };
        assert_eq!(c.replicas("Deployment", ns, "api").await, want, "{ns}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_permissions_item_fails_only_its_own_cost_center() {
    let c = Cluster::start().await;
    c.populate_with(json!([{"cost_center": "TEAM-Y", "is_authorized": true, "max_concurrent_namespaces": 3}]))
        .await;
    let put = |max: AttributeValue| {
        let mut item = default_cost_centers(0)[0].to_item();
        item.insert("cost_center".into(), AttributeValue::S("TEAM-X".into()));
        item.remove("authorized_namespaces");
        item.insert("max_concurrent_namespaces".into(), max);
        c.dynamo
            .client
            .put_item()
            .table_name(&c.permissions_table)
            .set_item(Some(item))
            .send()
    };
    put(AttributeValue::S("ten".into())).await.unwrap();
    let x = c.namespace("team-x", &[(CC, "TEAM-X")]).await;
    let y = c.namespace("team-y", &[(CC, "TEAM-Y")]).await;
    for ns in [&x, &y] {
        c.deployment(ns, "api", 2).await;
    }
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    c.ask(&x, "night", MORNING).await;
    c.ask(&y, "night", MORNING).await;

    let invalid = "permissions_invalid: TEAM-X.max_concurrent_namespaces: the string \"ten\" (expected a non-negative integer, N)";
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(
        code, 1,
        "a broken cost center is a failure the platform must see: {s}\n{err}"
    );
    assert!(c.phase(&y, "night").await.starts_with("Accepted: "));
    assert_eq!(c.replicas("Deployment", &y, "api").await, 2);
    assert_eq!(c.phase(&x, "night").await, format!("Pending: {invalid}"));
    assert_eq!(
        c.answer(&x, "night").await["observedGeneration"],
        Value::Null,
        "it stays pending"
    );
    assert_eq!(c.replicas("Deployment", &x, "api").await, 0);
    let unanswered = row(&s, &x, "unanswered");
    assert!(unanswered["error"].as_str().unwrap().contains(invalid), "{unanswered}");

    // `up` naming it exits 1 with the same message, touching nothing.
    let before = c.snapshot(&x).await;
    let (code, out, err) = c
        .run(&[
            "up",
            "--namespace",
            &x,
            "--cost-center",
            "TEAM-X",
            "--at",
            LATER_OFF_HOURS,
        ])
        .await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains(invalid), "{out}");
    assert_eq!(c.snapshot(&x).await, before);

    // The platform fixes the item: the next run decides, with nothing asked of the team.
    put(AttributeValue::N("3".into())).await.unwrap();
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert!(c.phase(&x, "night").await.starts_with("Accepted: "));
    assert_eq!(c.replicas("Deployment", &x, "api").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_request_an_up_and_a_down_each_take_a_requests_window_and_the_request_ends() {
    let c = Cluster::start().await;
    c.populate().await;
    let ns = c.namespace("taken", &[(CC, "DEVOPS-INFRA")]).await;
    c.deployment(&ns, "api", 2).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    c.ask(&ns, "first", "2026-11-25T23:00:00-05:00").await;
    assert_eq!(c.run_json(LATER_OFF_HOURS, &[]).await.0, 0);
    assert!(c.phase(&ns, "first").await.starts_with("Accepted: "));
    c.ask(&ns, "second", "2026-11-25T23:30:00-05:00").await;
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(
        c.phase(&ns, "second").await,
        "Accepted: window open until 2026-11-26T04:30:00Z, granted to DEVOPS-INFRA"
    );
    assert_eq!(
        c.phase(&ns, "first").await,
        "Ended: replaced by ActivationRequest second"
    );
    assert_eq!(window(&c, &ns).await.1.as_deref(), Some("second"));

    let up = [
        "up",
        "--namespace",
        &ns,
        "--cost-center",
        "DEVOPS-INFRA",
        "--for",
        "1h",
        "--at",
        LATER_OFF_HOURS,
    ];
    let (code, out, err) = c.run(&up).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(window(&c, &ns).await, (Some("2026-11-26T03:00:00Z".into()), None));
    assert_eq!(c.run_json(LATER_OFF_HOURS, &[]).await.0, 0);
    assert!(c
        .phase(&ns, "second")
        .await
        .starts_with("Ended: replaced by a window an administrator opened with `namespace-scheduler up`"));

    c.ask(&ns, "third", "2026-11-25T23:30:00-05:00").await;
    assert_eq!(c.run_json(LATER_OFF_HOURS, &[]).await.0, 0);
    assert!(c.phase(&ns, "third").await.starts_with("Accepted: "));
    let (code, out, err) = c.run(&["down", "--namespace", &ns]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(c.run_json(LATER_OFF_HOURS, &[]).await.0, 0);
    assert!(c.phase(&ns, "third").await.starts_with("Ended: the window is closed"));
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
}

/// What the CRD's schema refuses at admission on a real apiserver (manifests_real.rs) can reach
/// the scheduler from a cluster whose CRD has no schema: it is answered, briefly, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_request_is_answered_briefly_and_once_and_without_the_crd_there_are_no_requests() {
    let c = Cluster::start().await;
    if c.standin_only("only a schema-less CRD admits a 100 KB until").is_none() {
        return;
    }
    c.populate().await;
    let ns = c.namespace("hostile", &[(CC, "DEVOPS-INFRA")]).await;
    c.deployment(&ns, "api", 2).await;
    let me = c.whoami().await;
    let mut huge = standin::seed::activation_request(&ns, "huge", &"9".repeat(100_000), &me);
    huge["spec"]["reason"] = json!("x".repeat(100_000));
    c.create(huge).await;
    let mut object = standin::seed::activation_request(&ns, "object", "", &me);
    object["spec"]["until"] = json!({"year": 2026});
    c.create(object).await;
    let (code, s, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(
        c.phase(&ns, "huge").await,
        "Rejected: invalid: spec.until is 100000 characters long, more than 64"
    );
    assert_eq!(
        c.phase(&ns, "object").await,
        "Rejected: invalid: spec.until is an object, not an RFC 3339 instant"
    );
    let audit = c.audit().await;
    assert_eq!(audit.len(), 3, "two rejections and the scale-down: {audit:?}");
    assert!(audit.iter().all(|r| r.to_json().len() < 2048), "{audit:?}");
    let (code, s, _) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0);
    assert_eq!(c.audit().await.len(), 3, "answered once: {s}");

    // Without the CRD there are no requests, and a window a request held ends.
    let bare = Cluster::start_with(Options {
        enable_keda: true,
        ..Options::default()
    })
    .await;
    bare.populate().await;
    let held = bare.namespace("held", &[(CC, "DEVOPS-INFRA")]).await;
    bare.deployment(&held, "api", 2).await;
    bare.patch(
        "Namespace",
        None,
        &held,
        json!({"metadata": {"annotations": {"namespace-scheduler/active-until": "2026-11-26T04:00:00Z",
            "namespace-scheduler/active-cost-center": "DEVOPS-INFRA", "namespace-scheduler/active-request": "gone"}}}),
    )
    .await;
    let (code, s, err) = bare.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(bare.replicas("Deployment", &held, "api").await, 0);
    assert_eq!(window(&bare, &held).await, (None, None));
}

/// A request is answered `Accepted` only once its namespace is at its target: a namespace
/// rolled back leaves its request pending, judged again at the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_namespace_is_rolled_back_stays_pending_until_a_run_brings_it_up() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("makes a workload's write fail with injected 500s") else {
        return;
    };
    c.populate().await;
    let ns = c.namespace("rollback", &[(CC, "DEVOPS-INFRA")]).await;
    c.deployment(&ns, "api", 2).await;
    c.deployment(&ns, "web", 1).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    c.ask(&ns, "tonight", "2026-11-25T23:00:00-05:00").await;
    let fault = s.add_fault(
        FaultRule::new(FaultAction::status(500))
            .verb("patch")
            .resource("deployments")
            .name("web"),
    );
    let (code, s_json, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 1, "{s_json}\n{err}");
    assert_eq!(row(&s_json, &ns, "rolled_back")["action"], "up");
    assert_eq!(
        c.answer(&ns, "tonight").await,
        Value::Null,
        "not answered: the namespace is not up"
    );
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    assert_eq!(window(&c, &ns).await, (None, None));
    s.remove_fault(fault);
    let (code, s_json, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s_json}\n{err}");
    assert!(c.phase(&ns, "tonight").await.starts_with("Accepted: "));
    assert_eq!(c.replicas("Deployment", &ns, "web").await, 1);
}
