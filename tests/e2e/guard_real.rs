//! The label guard as shipped, on a real apiserver (real clusters only; docs/e2e.md): the
//! production overlay applied for real, its ValidatingAdmissionPolicies (v1) bound to every
//! Namespace, as a cluster gets them.
//!
//! - A team user granted `patch` (and `create`) on Namespaces still cannot set, change or remove
//!   any `namespace-scheduler/*` key (exclude included), nor create a namespace with one; it may
//!   change anything else. The platform group may. The scheduler's ServiceAccount, with its own
//!   token, writes its keys in full runs.
//! - It never blocks what it does not judge: with the guard installed, deleting the
//!   `task-scheduler` namespace never stops a plain `kubectl create namespace`, and
//!   `task-scheduler` can be created again; after the guard's policies and bindings are deleted
//!   and applied again, namespaces can still be created and the guard still refuses a team.
//!
//! One at a time with the other tests that install shipped objects ([`shipped_lock`]); tests
//! running at the same time are unaffected (their identity is the platform, their requests name
//! it). What the test installed is deleted when it ends, on panic too.

use std::time::Duration;

use kube::core::Request;
use serde_json::{json, Value};

use crate::harness::*;
use crate::k8s_manifests::{kind_of, NAMESPACE};
use crate::manifests_real_support::*;

/// Whether `client` may create a Namespace with these labels: Ok, or the refusal.
async fn create_namespace(client: &kube::Client, name: &str, labels: Value) -> Result<Value, (u16, String)> {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    create_as(client, "/api/v1/namespaces", &body, false).await
}

/// Each guarded change, and the key it names.
fn guarded_changes() -> Vec<(Value, &'static str)> {
    vec![
        (
            labels(&[("namespace-scheduler/exclude", "true")]),
            "label namespace-scheduler/exclude",
        ),
        // a value it never has (the platform changes it below)
        (
            labels(&[(COST_CENTER, "SOMEONE-ELSES")]),
            "label namespace-scheduler/cost-center",
        ),
        (
            json!({"metadata": {"labels": {COST_CENTER: null}}}),
            "label namespace-scheduler/cost-center",
        ),
        (
            labels(&[("namespace-scheduler/status", "active")]),
            "label namespace-scheduler/status",
        ),
        (
            annotations(&[("namespace-scheduler/schedule", "Mon-Sun 00:00-24:00 UTC")]),
            "annotation namespace-scheduler/schedule",
        ),
        (
            annotations(&[("namespace-scheduler/active-until", "2027-01-01T00:00:00Z")]),
            "annotation namespace-scheduler/active-until",
        ),
        (
            annotations(&[("namespace-scheduler/active-request", "mine")]),
            "annotation namespace-scheduler/active-request",
        ),
        (
            annotations(&[("namespace-scheduler/request-until", "2026-11-25T23:00:00-05:00")]),
            "annotation namespace-scheduler/request-until",
        ),
        (
            annotations(&[("namespace-scheduler/anything-new", "x")]),
            "annotation namespace-scheduler/anything-new",
        ),
    ]
}

/// Waits (bounded) until the guard refuses the team every guarded change, twice two seconds
/// apart: the apiserver loads policies and bindings on its own schedule, and for a moment after
/// they are written (or deleted and written again) it may enforce an older set.
async fn guard_in_force(team: &kube::Client, ns: &str) {
    let all_refused = || async {
        for (patch, _) in guarded_changes() {
            if patch_ns(team, ns, patch, true).await.is_ok() {
                return false;
            }
        }
        true
    };
    eventually("the label guard refuses a team every guarded change", all_refused).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eventually("the label guard still refuses a team every guarded change", all_refused).await;
}

/// Each guarded change by the team is refused (403) naming the key.
async fn team_is_refused(team: &kube::Client, ns: &str) {
    for (patch, key) in guarded_changes() {
        match patch_ns(team, ns, patch.clone(), false).await {
            Err((403, message)) => assert!(
                message.contains(&format!("may set, change or remove {key}")) && message.contains("ActivationRequest"),
                "{ns} {patch}: {message}"
            ),
            other => panic!("{ns} {patch}: the team must be refused with 403, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_label_guard_refuses_a_team_and_lets_the_platform_and_the_scheduler_through() {
    let _shipped = shipped_lock().await;
    let c = Cluster::start().await;
    if !c.real_only("a ValidatingAdmissionPolicy is enforced by a real apiserver") {
        return;
    }
    let Some(docs) = install_production(&c).await else {
        return;
    };
    c.populate().await;
    // Set up by the platform (the test identity is a cluster admin, system:masters).
    let team_ns = c.namespace("guard", &[(COST_CENTER, "QA-TESTING")]).await;
    c.deployment(&team_ns, "api", 2).await;

    let id = c.id.clone();
    let team_user = format!("alice-{id}");
    let team_group = format!("nss-e2e-{id}-team");
    let rbac_group = "rbac.authorization.k8s.io";
    // The team may edit and create Namespaces: the guard is what stops it.
    let rbac = vec![
        json!({"apiVersion": format!("{rbac_group}/v1"), "kind": "ClusterRole", "metadata": {"name": format!("nss-e2e-{id}-ns-editor")},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "create", "patch", "update"]}]}),
        json!({"apiVersion": format!("{rbac_group}/v1"), "kind": "ClusterRoleBinding", "metadata": {"name": format!("nss-e2e-{id}-ns-editor")},
            "roleRef": {"apiGroup": rbac_group, "kind": "ClusterRole", "name": format!("nss-e2e-{id}-ns-editor")},
            "subjects": [{"apiGroup": rbac_group, "kind": "Group", "name": team_group},
                         {"apiGroup": rbac_group, "kind": "Group", "name": "platform-admins"}]}),
    ];
    delete_all_on_drop(&c, &rbac);
    let (ok, out, err) = kubectl(&c.kubeconfig, &["apply", "-f", "-"], Some(&as_stream(&rbac)));
    assert!(ok, "apply:\n{out}\n{err}");
    let new_ns = format!("nss-e2e-{id}-guard-new");
    for name in ["plain", "while-gone", "after"] {
        c.delete_on_drop("namespace", None, &format!("nss-e2e-{id}-guard-{name}"));
    }
    c.delete_on_drop("namespace", None, &new_ns);

    let team = impersonating(&c, &team_user, &[&team_group]).await;
    guard_in_force(&team, &team_ns).await;
    team_is_refused(&team, &team_ns).await;
    assert_eq!(c.label(&team_ns, COST_CENTER).await.as_deref(), Some("QA-TESTING"));
    assert_eq!(c.label(&team_ns, "namespace-scheduler/exclude").await, None);
    // ... also when creating a namespace; one without those keys is fine, as is any other key.
    match create_namespace(
        &team,
        &new_ns,
        json!({RUN_LABEL: id, "namespace-scheduler/exclude": "true"}),
    )
    .await
    {
        Err((403, message)) => assert!(message.contains("namespace-scheduler/exclude"), "{message}"),
        other => panic!("creating a namespace with exclude must be refused, got {other:?}"),
    }
    create_namespace(&team, &format!("nss-e2e-{id}-guard-plain"), json!({RUN_LABEL: id}))
        .await
        .expect("a namespace without our keys");
    patch_ns(&team, &team_ns, labels(&[("team", "payments")]), false)
        .await
        .expect("a label of the team's own");

    // The platform group (the production overlay's platform-admins) may.
    let platform = impersonating(&c, &format!("bob-{id}"), &["platform-admins"]).await;
    patch_ns(&platform, &team_ns, labels(&[(COST_CENTER, "DEVOPS-INFRA")]), false)
        .await
        .expect("the platform group changes the cost center");
    assert_eq!(c.label(&team_ns, COST_CENTER).await.as_deref(), Some("DEVOPS-INFRA"));

    // The scheduler's ServiceAccount writes its keys, with its own token, in full runs: a
    // request opens the window (status, active-until, active-cost-center, active-request) and
    // the next night's run ends it.
    let dir = tempfile::tempdir().unwrap();
    let sa_kubeconfig = service_account_kubeconfig(&c, dir.path());
    let env = [
        ("KUBECONFIG", sa_kubeconfig.to_str().unwrap()),
        ("POD_NAMESPACE", NAMESPACE),
    ];
    c.ask(&team_ns, "tonight", "2026-11-25T23:00:00-05:00").await;
    run_as(&c, &env, &["run", "--at", OFF_HOURS]).await;
    assert!(c.phase(&team_ns, "tonight").await.starts_with("Accepted: "));
    let ann = |key: &'static str| {
        let (c, ns) = (&c, &team_ns);
        async move { c.annotation("Namespace", None, ns, key).await }
    };
    assert_eq!(
        ann("namespace-scheduler/active-until").await.as_deref(),
        Some("2026-11-26T04:00:00Z")
    );
    assert_eq!(
        ann("namespace-scheduler/active-request").await.as_deref(),
        Some("tonight")
    );
    assert_eq!(
        c.label(&team_ns, "namespace-scheduler/status").await.as_deref(),
        Some("active")
    );
    assert_eq!(c.replicas("Deployment", &team_ns, "api").await, 2);
    run_as(&c, &env, &["run", "--at", NEXT_NIGHT]).await;
    assert_eq!(c.replicas("Deployment", &team_ns, "api").await, 0);
    assert_eq!(
        c.label(&team_ns, "namespace-scheduler/status").await.as_deref(),
        Some("inactive")
    );
    assert_eq!(ann("namespace-scheduler/active-until").await, None);
    assert!(c.phase(&team_ns, "tonight").await.starts_with("Ended: "));

    // The scheduler's namespace goes (an uninstall, a prune): any namespace can still be
    // created, and task-scheduler again.
    let (ok, _, err) = kubectl(&c.kubeconfig, &["delete", "namespace", NAMESPACE, "--wait=false"], None);
    assert!(ok, "{err}");
    let (ok, _, err) = kubectl(
        &c.kubeconfig,
        &["create", "namespace", &format!("nss-e2e-{id}-guard-while-gone")],
        None,
    );
    assert!(ok, "kubectl create namespace while task-scheduler is deleted: {err}");
    eventually("task-scheduler is gone", || async {
        c.get("Namespace", None, NAMESPACE).await.is_none()
    })
    .await;
    let namespace: Vec<Value> = production_overlay()
        .into_iter()
        .filter(|d| kind_of(d) == "Namespace")
        .collect();
    let (ok, out, err) = kubectl(&c.kubeconfig, &["apply", "-f", "-"], Some(&as_stream(&namespace)));
    assert!(ok, "task-scheduler created again:\n{out}\n{err}");

    // The guard deleted and applied again: namespaces can be created, and it refuses a team.
    let guard: Vec<Value> = docs
        .iter()
        .filter(|d| kind_of(d).starts_with("ValidatingAdmissionPolicy"))
        .cloned()
        .collect();
    assert_eq!(guard.len(), 4, "two policies and their bindings");
    let (ok, out, err) = kubectl(&c.kubeconfig, &["delete", "-f", "-"], Some(&as_stream(&guard)));
    assert!(ok, "delete the guard:\n{out}\n{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (ok, out, err) = kubectl(&c.kubeconfig, &["apply", "-f", "-"], Some(&as_stream(&guard)));
    assert!(ok, "apply the guard again:\n{out}\n{err}");
    create_namespace(&team, &format!("nss-e2e-{id}-guard-after"), json!({RUN_LABEL: id}))
        .await
        .expect("a namespace is created after the guard came back");
    guard_in_force(&team, &team_ns).await;
    team_is_refused(&team, &team_ns).await;
    let plain: Value = c
        .client
        .request(
            Request::new("/api/v1/namespaces")
                .get(&format!("nss-e2e-{id}-guard-after"), &Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(plain["metadata"]["labels"][RUN_LABEL], json!(id));
    c.cleanup().await;
}
