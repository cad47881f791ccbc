//! Least privilege, derived from the code's real calls: every request the binary makes in a
//! full cycle (run down, an ActivationRequest answered, up, down, conflict re-reads, run up, KEDA) is
//! checked against the RBAC rendered from `manifests/base`. A call added to the code without
//! its grant fails here, not in production. On a real apiserver the same cycle runs with the
//! ServiceAccount's own token, under real authorization (`manifests_real.rs`).

use std::collections::BTreeSet;

use serde_json::json;
use standin::{FaultAction, FaultRule};

use crate::harness::*;
use crate::k8s_manifests::{api_request_from_http, kustomize, rbac_missing_requests, type_all, NAMESPACE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_grants_every_request_the_binary_makes() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("reads the requests the binary made from the stand-in's request log") else {
        return;
    };
    c.populate().await;
    // The Lease lives in the scheduler's own namespace, the one the Role is bound in.
    c.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        .await;
    let (ns, asker) = c.every_kind_and_an_asker("rbac").await;
    // Made by the test, not the binary: before the log is cleared.
    c.ask(&asker, "ask", "2026-11-25T23:30:00-05:00").await;
    s.reset_requests();

    // Our own namespace must be the one the Role is in.
    let run = |args: Vec<&'static str>| {
        let c = &c;
        async move {
            let (code, out, err) = c.run_with(&args, &[("POD_NAMESPACE", NAMESPACE)]).await;
            assert_eq!(code, 0, "{args:?}\n{out}\n{err}");
        }
    };
    // One conflict on the answer makes the binary re-read the request (a get).
    s.add_fault(
        FaultRule::new(FaultAction::status(409))
            .verb("patch")
            .resource("activationrequests")
            .once(),
    );
    run(vec!["run", "--at", OFF_HOURS]).await;
    assert!(c.phase(&asker, "ask").await.starts_with("Accepted: "));
    run(vec!["run", "--at", LATER_OFF_HOURS]).await;
    // One conflict on a workload write makes the binary re-read the object (a get).
    s.add_fault(
        FaultRule::new(FaultAction::status(409))
            .verb("patch")
            .resource("deployments")
            .once(),
    );
    let (code, out, err) = c
        .run_with(
            &[
                "up",
                "--namespace",
                &ns,
                "--cost-center",
                "DEVOPS-INFRA",
                "--at",
                LATER_OFF_HOURS,
            ],
            &[("POD_NAMESPACE", NAMESPACE)],
        )
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = c
        .run_with(&["down", "--namespace", &ns], &[("POD_NAMESPACE", NAMESPACE)])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    run(vec!["run", "--at", BUSINESS]).await;

    let observed: Vec<_> = s
        .requests()
        .into_iter()
        .filter_map(|r| {
            let path = if r.query.is_empty() {
                r.path.clone()
            } else {
                format!("{}?{}", r.path, r.query)
            };
            api_request_from_http(&r.method, &path)
        })
        .collect();
    // The check must have something to check: every kind of call the engine makes was seen.
    let seen: BTreeSet<String> = observed.iter().map(|r| format!("{} {}", r.verb, r.resource)).collect();
    for want in [
        "list namespaces",
        "patch namespaces",
        "list deployments",
        "get deployments",
        "patch deployments",
        "list statefulsets",
        "patch statefulsets",
        "list cronjobs",
        "patch cronjobs",
        "list scaledobjects",
        "patch scaledobjects",
        "list rollouts",
        "patch rollouts",
        "list horizontalpodautoscalers",
        "patch horizontalpodautoscalers",
        "list activationrequests",
        "get activationrequests",
        "patch activationrequests/status",
        "create events",
        "get leases",
        "create leases",
        "update leases",
    ] {
        assert!(
            seen.contains(want),
            "the cycle never made a `{want}` request; seen: {seen:?}"
        );
    }
    let rendered = type_all(&kustomize("manifests/base"), "manifests/base");
    let missing = rbac_missing_requests(&rendered, &observed, true);
    assert!(
        missing.is_empty(),
        "requests the RBAC does not grant:\n{}",
        missing.join("\n")
    );
    c.cleanup().await;
}
