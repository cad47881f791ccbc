//! The shipped manifests on a real apiserver (real clusters only; docs/e2e.md): every manifest
//! we ship is admitted (`kubectl apply --dry-run=server`), the production overlay is applied
//! for real, and then, with real authentication, authorization and admission:
//!
//! - a team user with only `edit` in its namespace asks for off-hours time with an
//!   ActivationRequest naming itself; one naming someone else, or whose `until` is not an
//!   RFC 3339 instant or too long, is refused at admission; the user cannot write the answer;
//! - the scheduler, as its ServiceAccount with its own token (`kubectl create token`), answers:
//!   `Accepted` and the namespace up; `Rejected` with the rule and the numbers (window too long,
//!   cost center not authorized, the cap), its status small; the request deleted, the namespace
//!   down at the following run; and runs down, up, down, up, refused (403) what it must not do.
//!
//! Tests that install cluster-wide objects under their shipped names run one at a time
//! ([`shipped_lock`]); while they are installed, every other test keeps working (the test
//! identity is a cluster admin, `system:masters`, the platform by default; the requests tests
//! make name the test identity). Everything installed is deleted when the test ends, on panic too,
//! except the ActivationRequest CRD, which other tests use.

use std::path::Path;

use kube::api::{DeleteParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};

use crate::harness::*;
use crate::k8s_manifests::{kind_of, kustomize, name_of, repo_root, split_yaml, NAMESPACE};
use crate::manifests_real_support::*;

/// Custom resources whose CRDs a bare cluster lacks: checked offline by tests/manifests.rs.
fn needs_a_crd(d: &Value) -> Option<&'static str> {
    match group_of(d) {
        "kyverno.io" => Some("Kyverno's CRDs are not installed here"),
        "argoproj.io" => Some("ArgoCD's CRDs are not installed here"),
        _ => None,
    }
}

/// `kubectl <verb> --dry-run=server` of `docs`: every object must be accepted.
fn dry_run(c: &Cluster, verb: &str, origin: &str, docs: &[Value], namespace: Option<&str>) {
    let mut args = vec![verb, "--dry-run=server", "-f", "-"];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    let (ok, out, err) = kubectl(&c.kubeconfig, &args, Some(&as_stream(docs)));
    assert!(ok, "{origin}: `kubectl {verb} --dry-run=server` refused:\n{err}\n{out}");
    let accepted = out.lines().filter(|l| l.ends_with("(server dry run)")).count();
    assert_eq!(accepted, docs.len(), "{origin}: every object accepted:\n{out}\n{err}");
}

/// Every manifest we ship, validated and admitted by the apiserver without being stored.
async fn everything_shipped_is_admitted(c: &Cluster, team_ns: &str) {
    for dir in [
        "manifests/base",
        "manifests/overlays/production",
        "manifests/components/label-guard",
        "manifests/tests/kyverno",
    ] {
        let mut docs = kustomize(dir);
        docs.retain(|d| match needs_a_crd(d) {
            Some(why) => {
                eprintln!("{dir}: {} {} not applied: {why}", kind_of(d), name_of(d));
                false
            }
            // The production overlay's populate Job runs for real; another image in its pod
            // template would be an update of an immutable field, not a validation.
            None if kind_of(d) == "Job" && dir != "manifests/overlays/production" => {
                eprintln!(
                    "{dir}: Job {} not applied: the production overlay's is in place",
                    name_of(d)
                );
                false
            }
            None => true,
        });
        dry_run(c, "apply", dir, &docs, None);
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
        dry_run(c, "create", file, &split_yaml(&text, file), None);
    }
    // as docs/deploying.md says: your own user name in requestedBy, created in your namespace
    let file = "manifests/examples/activation-request.yaml";
    let mut example = split_yaml(&std::fs::read_to_string(repo_root().join(file)).unwrap(), file);
    example[0]["spec"]["requestedBy"] = json!(c.whoami().await);
    dry_run(c, "create", file, &example, Some(team_ns));
    eprintln!("argocd/application.yaml not applied: ArgoCD's CRDs are not installed here");
}

fn request_body(name: &str, until: &str, by: &str) -> Value {
    json!({"apiVersion": "namespace-scheduler.io/v1alpha1", "kind": "ActivationRequest",
           "metadata": {"name": name}, "spec": {"until": until, "requestedBy": by}})
}

/// A user with the built-in `edit` role in `namespaces` (a RoleBinding in each), and nothing else.
async fn editor(c: &Cluster, user: &str, namespaces: &[&str]) -> kube::Client {
    for ns in namespaces {
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "team-edit", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]});
        create_as(
            &c.client,
            &format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"),
            &binding,
            false,
        )
        .await
        .expect("bind edit");
    }
    impersonating(c, user, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_manifest_applies_and_the_service_account_runs_a_full_cycle_with_its_own_token() {
    let _shipped = shipped_lock().await;
    let c = Cluster::start().await;
    if !c.real_only("server-side validation, RBAC, admission and ServiceAccount tokens of a real apiserver") {
        return;
    }
    if install_production(&c).await.is_none() {
        return;
    }
    c.populate_with(json!([
        {"cost_center": "DEVOPS-INFRA", "is_authorized": true, "max_concurrent_namespaces": 15},
        {"cost_center": "EXTERNAL-CONTRACTOR", "is_authorized": false, "max_concurrent_namespaces": 2},
    ]))
    .await;
    c.ensure_keda_crd().await;
    let (ns, dev_x) = c.every_kind_and_an_asker("sa").await;
    let second = c.namespace("sa-second", &[(COST_CENTER, "DEVOPS-INFRA")]).await;
    let contractor = c
        .namespace("sa-contractor", &[(COST_CENTER, "EXTERNAL-CONTRACTOR")])
        .await;
    everything_shipped_is_admitted(&c, &dev_x).await;

    // The scheduler: its ServiceAccount's own token, its own namespace.
    let dir = tempfile::tempdir().unwrap();
    let sa_kubeconfig = service_account_kubeconfig(&c, dir.path());
    let sa_kubeconfig = sa_kubeconfig.to_str().unwrap().to_string();
    let env = [("KUBECONFIG", sa_kubeconfig.as_str()), ("POD_NAMESPACE", NAMESPACE)];
    run_as(&c, &env, &["run", "--at", OFF_HOURS]).await;
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    assert_eq!(c.replicas("StatefulSet", &ns, "db").await, 0);
    assert!(c.suspended(&ns, "job").await);
    assert_eq!(c.replicas("Deployment", &dev_x, "web").await, 0);
    assert_eq!(
        c.annotation("ScaledObject", Some(&ns), "api", "autoscaling.keda.sh/paused-replicas")
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(c.replicas("Rollout", &ns, "canary").await, 0);
    let hpa = c.get("HorizontalPodAutoscaler", Some(&ns), "api").await.unwrap();
    assert_eq!(hpa["spec"]["behavior"]["scaleUp"]["selectPolicy"], "Disabled", "{hpa}");

    // A team user with only `edit` in its namespaces asks, in its own name.
    let alice = format!("alice-{}", c.id);
    let team = editor(&c, &alice, &[&dev_x, &second, &contractor]).await;
    let requests = |ns: &str| format!("{ACTIVATION_REQUESTS}/namespaces/{ns}/activationrequests");
    let mine = request_body("late", "2026-11-25T23:30:00-05:00", &alice);
    eventually("edit is aggregated the rights on ActivationRequests", || async {
        create_as(&team, &requests(&dev_x), &mine, true).await.is_ok()
    })
    .await;
    let refused = [
        (
            request_body("x", "2026-11-25T23:30:00-05:00", "ceo@example.com"),
            403,
            "spec.requestedBy must be your own user name",
        ),
        (
            request_body("x", "tomorrow night", &alice),
            422,
            "spec.until in body must be of type date-time",
        ),
        (
            request_body("x", &format!("2026-11-25T23:30:00.{}-05:00", "0".repeat(80)), &alice),
            422,
            "may not be more than 64",
        ),
    ];
    for (body, code, why) in refused {
        match create_as(&team, &requests(&dev_x), &body, false).await {
            Err((got, message)) => assert!(got == code && message.contains(why), "{body}: {got} {message}"),
            Ok(v) => panic!("{body} must be refused at admission, got {v}"),
        }
    }
    create_as(&team, &requests(&dev_x), &mine, false)
        .await
        .expect("a request in one's own name");
    // The answer is the scheduler's alone.
    let forged = json!({"status": {"phase": "Accepted", "observedGeneration": 1}});
    let req = Request::new(requests(&dev_x))
        .patch_subresource("status", "late", &Default::default(), &kube::api::Patch::Merge(&forged))
        .unwrap();
    match team.request::<Value>(req).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("the team must not write the answer, got {other:?}"),
    }
    // Requests that pass admission but break a rule.
    for (ns, name, until) in [
        (&dev_x, "too-long", "2026-11-30T20:00:00-05:00"),
        (&contractor, "contractor", "2026-11-25T23:30:00-05:00"),
        (&second, "capped", "2026-11-25T23:30:00-05:00"),
    ] {
        create_as(&team, &requests(ns), &request_body(name, until, &alice), false)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    let cap = [
        ("KUBECONFIG", sa_kubeconfig.as_str()),
        ("POD_NAMESPACE", NAMESPACE),
        ("NON_BUSINESS_MAX_ACTIVE_NAMESPACES", "1"),
    ];
    run_as(&c, &cap, &["run", "--at", LATER_OFF_HOURS]).await;
    assert_eq!(
        c.phase(&dev_x, "late").await,
        "Accepted: window open until 2026-11-26T04:30:00Z, granted to DEVOPS-INFRA"
    );
    assert_eq!(c.replicas("Deployment", &dev_x, "web").await, 2);
    for (ns, name, want) in [
        (&dev_x, "too-long", "Rejected: window_too_long: the window to 20:00 on 2026-11-30 America/Bogota is 119h long, more than MAX_ACTIVATION_HOURS=72"),
        (&contractor, "contractor", "Rejected: not_authorized: cost center EXTERNAL-CONTRACTOR is not authorized (is_authorized=false)"),
        (&second, "capped", "Rejected: cluster_cap: 1 of 1 windows open at 21:00 on 2026-11-25 America/Bogota (NON_BUSINESS_MAX_ACTIVE_NAMESPACES=1)"),
    ] {
        assert_eq!(c.phase(ns, name).await, want);
        let status = serde_json::to_string(&c.answer(ns, name).await).unwrap();
        assert!(status.len() < 1024, "a rejection's status stays small: {status}");
    }
    let requested_by: Vec<String> = c
        .audit()
        .await
        .into_iter()
        .filter(|r| r.namespace_name == dev_x && r.status == namespace_scheduler::audit::AuditStatus::Completed)
        .filter(|r| r.operation_type == namespace_scheduler::audit::OperationType::Activate)
        .map(|r| r.requested_by)
        .collect();
    assert_eq!(requested_by, [alice], "the audit names the verified requester");

    // Cancelled: deleting the request brings the namespace down at the following run.
    let req = Request::new(requests(&dev_x))
        .delete("late", &DeleteParams::default())
        .unwrap();
    team.request::<Value>(req).await.expect("the team cancels its request");
    run_as(&c, &env, &["run", "--at", LATER_OFF_HOURS]).await;
    assert_eq!(c.replicas("Deployment", &dev_x, "web").await, 0);

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
    assert_eq!(c.replicas("Deployment", &dev_x, "web").await, 2);
    assert_eq!(
        c.annotation("ScaledObject", Some(&ns), "api", "autoscaling.keda.sh/paused-replicas")
            .await,
        None
    );
    assert_eq!(c.replicas("Rollout", &ns, "canary").await, 2);
    let hpa = c.get("HorizontalPodAutoscaler", Some(&ns), "api").await.unwrap();
    assert!(hpa["spec"]["behavior"].is_null(), "its unset behaviour back: {hpa}");
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
        // the requests are the teams': the scheduler only reads them and answers
        Request::new(requests(&dev_x)).create(
            &PostParams::default(),
            serde_json::to_vec(&request_body("x", "2026-11-25T23:30:00-05:00", SCHEDULER_USER)).unwrap(),
        ),
        Request::new(requests(&dev_x)).delete("too-long", &DeleteParams::default()),
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
