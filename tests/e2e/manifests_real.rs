//! The shipped manifests on a real apiserver (real clusters only; docs/e2e.md):
//!
//! - every manifest we ship is applied server-side (`kubectl apply --dry-run=server`), and the
//!   RBAC objects for real; the ServiceAccount then runs a full cycle of the binary with its own
//!   token (`kubectl create token`), and is refused (403) what it must not do;
//! - the label guard (`manifests/components/label-guard`) refuses an impersonated team user
//!   who changes the cost center or the scheduler's keys, lets the team ask for time, and lets the
//!   platform group and the scheduler's ServiceAccount through.
//!
//! Everything created is deleted by a guard when the test ends, on panic too, cluster-scoped
//! objects included. The label guard's objects carry the test's id and its binding only matches
//! this test's namespaces, so tests running at the same time are not affected. The shipped
//! `task-scheduler` namespace and RBAC are installed only where no real installation exists.

#[path = "manifests_real_support.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use kube::api::{DeleteParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};

use crate::harness::*;
use crate::k8s_manifests::{kind_of, kustomize, name_of, repo_root, split_yaml, NAMESPACE, SERVICE_ACCOUNT};
use support::*;

/// Marks the copy of `task-scheduler` these tests installed, so a real installation is never
/// touched (nor deleted) by them.
const FIXTURE_LABEL: &str = "nss-e2e/fixture";
const COST_CENTER: &str = "namespace-scheduler/cost-center";

/// The base's objects applied for real: the namespace, the ServiceAccount and its RBAC.
const APPLIED_FOR_REAL: [&str; 6] = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// Custom resources whose CRDs a bare cluster lacks: checked offline by tests/manifests.rs.
fn needs_a_crd(d: &Value) -> Option<&'static str> {
    match group_of(d) {
        "kyverno.io" => Some("Kyverno's CRDs are not installed here"),
        "argoproj.io" => Some("ArgoCD's CRDs are not installed here"),
        _ => None,
    }
}

/// Whether the `task-scheduler` these tests install may be used: absent, or ours (then wait for
/// an earlier run's copy to finish terminating). `false`: a real installation, left alone.
async fn task_scheduler_is_free(c: &Cluster) -> bool {
    for _ in 0..600 {
        let Some(ns) = c.get("Namespace", None, NAMESPACE).await else {
            return true;
        };
        if ns["metadata"]["labels"][FIXTURE_LABEL] != "true" {
            skip(&format!(
                "namespace {NAMESPACE} exists and was not installed by these tests: a real installation is never touched"
            ));
            return false;
        }
        if ns["metadata"]["deletionTimestamp"].is_null() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "namespace {NAMESPACE}, left by an earlier run, is still Terminating after 60 s (no kube-controller-manager?)"
    );
}

/// `kubectl <verb> --dry-run=server` of `docs`: every object must be accepted.
fn dry_run(c: &Cluster, verb: &str, origin: &str, docs: &[Value]) {
    let (ok, out, err) = kubectl(
        &c.kubeconfig,
        &[verb, "--dry-run=server", "-f", "-"],
        Some(&as_stream(docs)),
    );
    assert!(ok, "{origin}: `kubectl {verb} --dry-run=server` refused:\n{err}\n{out}");
    let accepted = out.lines().filter(|l| l.ends_with("(server dry run)")).count();
    assert_eq!(accepted, docs.len(), "{origin}: every object accepted:\n{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_manifest_applies_and_the_service_account_runs_a_full_cycle_with_its_own_token() {
    let c = Cluster::start().await;
    if !c.real_only("server-side validation, RBAC and ServiceAccount tokens of a real apiserver") {
        return;
    }
    let vap = admission_policy_version(&c).await.expect(
        "this apiserver serves no ValidatingAdmissionPolicy API (v1 from 1.30; v1beta1 on 1.28/1.29 once enabled)",
    );
    if !task_scheduler_is_free(&c).await {
        return;
    }

    // The namespace, ServiceAccount and RBAC, for real.
    let mut real: Vec<Value> = kustomize("manifests/base")
        .into_iter()
        .filter(|d| APPLIED_FOR_REAL.contains(&kind_of(d)))
        .collect();
    assert_eq!(
        real.len(),
        6,
        "namespace, ServiceAccount, ClusterRole(Binding), Role(Binding)"
    );
    for d in real.iter_mut().filter(|d| kind_of(d) == "Namespace") {
        d["metadata"]["labels"][FIXTURE_LABEL] = json!("true");
    }
    delete_all_on_drop(&c, &real);
    let (ok, out, err) = kubectl(&c.kubeconfig, &["apply", "-f", "-"], Some(&as_stream(&real)));
    assert!(ok, "apply the RBAC for real:\n{out}\n{err}");

    // Everything we ship, validated and admitted by the apiserver without being stored.
    for dir in [
        "manifests/base",
        "manifests/overlays/production",
        "manifests/components/label-guard",
        "manifests/tests/kyverno",
    ] {
        let mut docs = kustomize(dir);
        convert_admission(&mut docs, vap);
        docs.retain(|d| match needs_a_crd(d) {
            Some(why) => {
                eprintln!("{dir}: {} {} not applied: {why}", kind_of(d), name_of(d));
                false
            }
            None => true,
        });
        dry_run(&c, "apply", dir, &docs);
    }
    for file in [
        "manifests/examples/admin-up-job.yaml",
        "manifests/examples/admin-down-job.yaml",
    ] {
        // as docs/deploying.md says: the image substituted, `create` (the name is generated)
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap().replace(
            "image: IMAGE",
            "image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/namespace-scheduler:abc",
        );
        dry_run(&c, "create", file, &split_yaml(&text, file));
    }
    eprintln!("argocd/application.yaml not applied: ArgoCD's CRDs are not installed here");

    // The ServiceAccount's own token: real authentication and authorization from here on.
    let (ok, token, err) = kubectl(
        &c.kubeconfig,
        &["create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE, "--duration=1h"],
        None,
    );
    assert!(ok, "kubectl create token: {err}");
    let dir = tempfile::tempdir().unwrap();
    let sa_kubeconfig = kubeconfig_with(&c, dir.path(), "sa.kubeconfig", |a| {
        *a = serde_json::from_value(json!({"token": token.trim()})).unwrap();
    });
    let sa_kubeconfig = sa_kubeconfig.to_str().unwrap().to_string();

    c.populate().await;
    c.ensure_keda_crd().await;
    let (ns, asker) = c.every_kind_and_an_asker("sa").await;

    // The cycle of tests/e2e/rbac.rs, as the ServiceAccount, in its own namespace.
    let env = [("KUBECONFIG", sa_kubeconfig.as_str()), ("POD_NAMESPACE", NAMESPACE)];
    run_as(&c, &env, &["run", "--at", OFF_HOURS]).await;
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    assert_eq!(c.replicas("StatefulSet", &ns, "db").await, 0);
    assert!(c.suspended(&ns, "job").await);
    assert_eq!(c.replicas("Deployment", &asker, "web").await, 0);
    assert_eq!(
        c.annotation("ScaledObject", Some(&ns), "api", "autoscaling.keda.sh/paused-replicas")
            .await
            .as_deref(),
        Some("0")
    );

    let ask = annotations(&[("namespace-scheduler/request-until", "2026-11-25T23:30:00-05:00")]);
    c.patch("Namespace", None, &asker, ask).await;
    run_as(&c, &env, &["run", "--at", LATER_OFF_HOURS]).await;
    assert_eq!(c.replicas("Deployment", &asker, "web").await, 2);
    assert_eq!(
        c.annotation("Namespace", None, &asker, "namespace-scheduler/request-status")
            .await
            .as_deref(),
        Some("accepted")
    );

    run_as(
        &c,
        &env,
        &[
            "up",
            "--namespace",
            &ns,
            "--cost-center",
            "DEVOPS-INFRA",
            "--at",
            LATER_OFF_HOURS,
        ],
    )
    .await;
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);
    run_as(&c, &env, &["down", "--namespace", &ns]).await;
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    run_as(&c, &env, &["run", "--at", BUSINESS]).await;
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);
    assert_eq!(c.replicas("StatefulSet", &ns, "db").await, 1);
    assert!(!c.suspended(&ns, "job").await);
    assert_eq!(c.replicas("Deployment", &asker, "web").await, 2);
    assert_eq!(
        c.annotation("ScaledObject", Some(&ns), "api", "autoscaling.keda.sh/paused-replicas")
            .await,
        None
    );
    // its Lease, in its own namespace, and its Events
    assert!(c.get("Lease", Some(NAMESPACE), "namespace-scheduler").await.is_some());
    let events: Value = c
        .client
        .request(
            Request::new(format!("/api/v1/namespaces/{ns}/events"))
                .list(&Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(
        events["items"].as_array().is_some_and(|e| !e.is_empty()),
        "the ServiceAccount wrote Events about {ns}"
    );

    // What it must not do is refused by the apiserver, with the same token.
    let sa = client_for(Path::new(&sa_kubeconfig)).await;
    let must_not = vec![
        Request::new(format!("/api/v1/namespaces/{ns}/secrets")).list(&Default::default()),
        Request::new("/api/v1/namespaces").delete(&ns, &DeleteParams::default()),
        Request::new(format!("/apis/apps/v1/namespaces/{ns}/deployments")).delete("api", &DeleteParams::default()),
        Request::new(format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"))
            .get("someone-elses", &Default::default()),
        Request::new(format!("/apis/coordination.k8s.io/v1/namespaces/{ns}/leases")).create(
            &PostParams::default(),
            serde_json::to_vec(&json!({"metadata": {"name": "x"}})).unwrap(),
        ),
    ];
    for req in must_not {
        let req = req.unwrap();
        let what = format!("{} {}", req.method(), req.uri());
        match sa.request::<Value>(req).await {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{what}: {s:?}"),
            other => panic!("{what} must be refused with 403, got {other:?}"),
        }
    }
    assert!(c.get("Namespace", None, &ns).await.is_some());
    c.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_label_guard_refuses_a_team_and_lets_the_platform_and_the_scheduler_through() {
    let c = Cluster::start().await;
    if !c.real_only("a ValidatingAdmissionPolicy is enforced by a real apiserver") {
        return;
    }
    let vap = admission_policy_version(&c).await.expect(
        "this apiserver serves no ValidatingAdmissionPolicy API (v1 from 1.30; v1beta1 on 1.28/1.29 once enabled)",
    );
    c.populate().await;
    // Set up before the guard: from then on only the platform and the scheduler change these.
    let team_ns = c.namespace("guard", &[(COST_CENTER, "QA-TESTING")]).await;
    let bare = c.namespace("guard-bare", &[]).await;
    c.deployment(&team_ns, "api", 2).await;

    let id = c.id.clone();
    let team_user = format!("alice-{id}");
    let team_group = format!("nss-e2e-{id}-team");
    let platform_user = format!("bob-{id}");
    let platform_group = format!("nss-e2e-{id}-platform");
    let name = format!("nss-e2e-{id}-label-guard");

    // The shipped component, renamed for this test, bound to this test's namespaces only, its
    // parameter in the test's own namespace naming the test's platform group.
    let mut guard = kustomize("manifests/components/label-guard");
    convert_admission(&mut guard, vap);
    for d in guard.iter_mut() {
        match kind_of(d) {
            "ValidatingAdmissionPolicy" => d["metadata"]["name"] = json!(name),
            "ValidatingAdmissionPolicyBinding" => {
                d["metadata"]["name"] = json!(name);
                d["spec"]["policyName"] = json!(name);
                d["spec"]["matchResources"] = json!({"namespaceSelector": {"matchLabels": {RUN_LABEL: id}}});
                d["spec"]["paramRef"]["namespace"] = json!(c.own_ns);
            }
            "ConfigMap" => {
                d["metadata"]["namespace"] = json!(c.own_ns);
                // a list, with blanks: each name is trimmed
                d["data"]["platform-groups"] = json!(format!("some-other-group , {platform_group}"));
            }
            other => panic!("label-guard renders an unexpected {other}"),
        }
    }
    // the binding last, so it is deleted first
    guard.sort_by_key(|d| kind_of(d) == "ValidatingAdmissionPolicyBinding");

    // RBAC: the team and the platform may edit namespaces (the guard is what stops the team);
    // the scheduler's ServiceAccount gets exactly the shipped grants, its Lease in own_ns.
    let base = kustomize("manifests/base");
    let rbac_group = "rbac.authorization.k8s.io";
    let scheduler = json!({"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE});
    let rbac = vec![
        json!({"apiVersion": format!("{rbac_group}/v1"), "kind": "ClusterRole", "metadata": {"name": format!("nss-e2e-{id}-ns-editor")},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "create", "patch", "update"]}]}),
        json!({"apiVersion": format!("{rbac_group}/v1"), "kind": "ClusterRoleBinding", "metadata": {"name": format!("nss-e2e-{id}-ns-editor")},
            "roleRef": {"apiGroup": rbac_group, "kind": "ClusterRole", "name": format!("nss-e2e-{id}-ns-editor")},
            "subjects": [{"apiGroup": rbac_group, "kind": "Group", "name": team_group}, {"apiGroup": rbac_group, "kind": "Group", "name": platform_group}]}),
        json!({"apiVersion": format!("{rbac_group}/v1"), "kind": "ClusterRole", "metadata": {"name": format!("nss-e2e-{id}-scheduler")},
            "rules": rules_of(&base, "ClusterRole", "namespace-scheduler")}),
        json!({"apiVersion": format!("{rbac_group}/v1"), "kind": "ClusterRoleBinding", "metadata": {"name": format!("nss-e2e-{id}-scheduler")},
            "roleRef": {"apiGroup": rbac_group, "kind": "ClusterRole", "name": format!("nss-e2e-{id}-scheduler")}, "subjects": [scheduler]}),
        json!({"apiVersion": format!("{rbac_group}/v1"), "kind": "Role", "metadata": {"name": "namespace-scheduler-lease", "namespace": c.own_ns},
            "rules": rules_of(&base, "Role", "namespace-scheduler-lease")}),
        json!({"apiVersion": format!("{rbac_group}/v1"), "kind": "RoleBinding", "metadata": {"name": "namespace-scheduler-lease", "namespace": c.own_ns},
            "roleRef": {"apiGroup": rbac_group, "kind": "Role", "name": "namespace-scheduler-lease"}, "subjects": [scheduler]}),
    ];
    delete_all_on_drop(&c, &rbac);
    delete_all_on_drop(&c, &guard);
    let new_ns = format!("nss-e2e-{id}-guard-new");
    let plain_ns = format!("nss-e2e-{id}-guard-plain");
    c.delete_on_drop("namespace", None, &new_ns);
    c.delete_on_drop("namespace", None, &plain_ns);
    for docs in [&rbac, &guard] {
        let (ok, out, err) = kubectl(&c.kubeconfig, &["apply", "-f", "-"], Some(&as_stream(docs)));
        assert!(ok, "apply:\n{out}\n{err}");
    }

    let team = impersonating(&c, &team_user, &[&team_group]).await;
    // A policy is enforced a moment after it is written: wait (bounded) for the first refusal.
    let relabel = labels(&[(COST_CENTER, "DEVOPS-INFRA")]);
    let mut ready = false;
    for _ in 0..300 {
        if patch_ns(&team, &team_ns, relabel.clone(), true).await.is_err() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the label guard refused nothing within 30 s");

    // A team user: the keys that decide money and hours are refused, set, changed or removed.
    let refused: Vec<(&str, Value, &str)> = vec![
        (&team_ns, relabel.clone(), "label namespace-scheduler/cost-center"),
        (
            &team_ns,
            json!({"metadata": {"labels": {COST_CENTER: null}}}),
            "label namespace-scheduler/cost-center",
        ),
        (&bare, relabel.clone(), "label namespace-scheduler/cost-center"),
        (
            &team_ns,
            labels(&[("namespace-scheduler/status", "active")]),
            "label namespace-scheduler/status",
        ),
        (
            &team_ns,
            annotations(&[("namespace-scheduler/schedule", "Mon-Sun 00:00-24:00 UTC")]),
            "annotation namespace-scheduler/schedule",
        ),
        (
            &team_ns,
            annotations(&[("namespace-scheduler/active-until", "2027-01-01T00:00:00Z")]),
            "annotation namespace-scheduler/active-until",
        ),
        (
            &team_ns,
            annotations(&[("namespace-scheduler/active-cost-center", "DEVOPS-INFRA")]),
            "annotation namespace-scheduler/active-cost-center",
        ),
        (
            &team_ns,
            annotations(&[("namespace-scheduler/request-status", "accepted")]),
            "annotation namespace-scheduler/request-status",
        ),
        (
            &team_ns,
            annotations(&[("namespace-scheduler/request-answered", "x")]),
            "annotation namespace-scheduler/request-answered",
        ),
    ];
    for (ns, patch, key) in refused {
        match patch_ns(&team, ns, patch.clone(), false).await {
            Err((403, message)) => assert!(
                message.contains(&format!("may set or change {key}")) && message.contains("request-until"),
                "{ns} {patch}: {message}"
            ),
            other => panic!("{ns} {patch}: the team must be refused with 403, got {other:?}"),
        }
    }
    assert_eq!(c.label(&team_ns, COST_CENTER).await.as_deref(), Some("QA-TESTING"));
    // ... also when creating a namespace; one without those keys is fine.
    let create = |name: &str, labels: Value| {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        Request::new("/api/v1/namespaces")
            .create(&PostParams::default(), serde_json::to_vec(&body).unwrap())
            .unwrap()
    };
    match team
        .request::<Value>(create(&new_ns, json!({RUN_LABEL: id, COST_CENTER: "DEVOPS-INFRA"})))
        .await
    {
        Err(kube::Error::Api(s)) => assert!(s.code == 403 && s.message.contains(COST_CENTER), "{s:?}"),
        other => panic!("creating a namespace with a cost center must be refused, got {other:?}"),
    }
    team.request::<Value>(create(&plain_ns, json!({RUN_LABEL: id})))
        .await
        .expect("a namespace without guarded keys");

    // The team may still ask for time, and edit anything else.
    let ask = annotations(&[
        ("namespace-scheduler/request-until", "2026-11-25T23:00:00-05:00"),
        ("namespace-scheduler/requested-by", "alice"),
    ]);
    patch_ns(&team, &team_ns, ask, false)
        .await
        .expect("a team asks for time");
    patch_ns(&team, &team_ns, labels(&[("team", "payments")]), false)
        .await
        .expect("a label of the team's own");

    // The platform group may change the cost center.
    let platform = impersonating(&c, &platform_user, &[&platform_group]).await;
    patch_ns(&platform, &team_ns, relabel.clone(), false)
        .await
        .expect("the platform group changes the cost center");
    assert_eq!(c.label(&team_ns, COST_CENTER).await.as_deref(), Some("DEVOPS-INFRA"));

    // The scheduler's ServiceAccount writes its keys: a full run with the guard in place answers
    // the request (request-status, request-answered, active-until, active-cost-center, status),
    // and the next night's run ends the window (removes them).
    let sa_groups = ["system:serviceaccounts", "system:serviceaccounts:task-scheduler"];
    let sa = impersonating(&c, SCHEDULER_USER, &sa_groups).await;
    let window = annotations(&[("namespace-scheduler/active-until", "2026-11-26T04:00:00Z")]);
    patch_ns(&sa, &team_ns, window, true)
        .await
        .expect("the ServiceAccount sets active-until");
    let dir = tempfile::tempdir().unwrap();
    let sa_kubeconfig = kubeconfig_with(&c, dir.path(), "sa.kubeconfig", |a| {
        a.impersonate = Some(SCHEDULER_USER.into());
        a.impersonate_groups = Some(sa_groups.iter().map(|g| g.to_string()).collect());
    });
    let env = [("KUBECONFIG", sa_kubeconfig.to_str().unwrap())];
    run_as(&c, &env, &["run", "--at", OFF_HOURS]).await;
    let ann = |key: &'static str| {
        let (c, ns) = (&c, &team_ns);
        async move { c.annotation("Namespace", None, ns, key).await }
    };
    assert_eq!(
        ann("namespace-scheduler/request-status").await.as_deref(),
        Some("accepted")
    );
    assert_eq!(
        ann("namespace-scheduler/active-until").await.as_deref(),
        Some("2026-11-26T04:00:00Z")
    );
    assert_eq!(
        ann("namespace-scheduler/active-cost-center").await.as_deref(),
        Some("DEVOPS-INFRA")
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
    c.cleanup().await;
}
