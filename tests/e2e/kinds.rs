//! The kinds of the table beyond the first four, on the stand-in and on a real control plane
//! (docs/reference.md §4): Argo Rollouts (an optional CRD) go down and up like Deployments, and
//! an HPA with `minReplicas: 0` has its scale-up disabled while its target is down and its exact
//! behaviour back on up; one with `minReplicas: 2` is left alone.

use serde_json::{json, Value};
use standin::Options;

use crate::harness::{Cluster, BUSINESS, OFF_HOURS};

const BEHAVIOR: &str = "namespace-scheduler/original-behavior";
const HPA: &str = "HorizontalPodAutoscaler";

/// On a real cluster, installs tests/fixtures/rollout-crd.yaml (a minimal Argo Rollouts CRD with
/// the scale subresource) and waits until it is served; the stand-in serves Rollouts itself. It
/// is left in place for tests running at the same time.
pub async fn ensure_rollout_crd(c: &Cluster) {
    if !c.real() {
        return;
    }
    let text = std::fs::read_to_string(crate::k8s_manifests::repo_root().join("tests/fixtures/rollout-crd.yaml"))
        .expect("the Rollout CRD fixture");
    let crd: Value = namespace_scheduler::yaml::from_str(&text).expect("YAML");
    c.install_crd(&crd, "/apis/argoproj.io/v1alpha1/rollouts").await;
}

async fn spec(c: &Cluster, kind: &str, ns: &str, name: &str) -> Value {
    c.get(kind, Some(ns), name).await.expect("exists")["spec"].clone()
}

async fn hpa_specs(c: &Cluster, ns: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for name in ["worker", "queue", "web"] {
        out.push(spec(c, HPA, ns, name).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_and_scale_to_zero_hpas_go_down_and_come_back_exact() {
    let c = Cluster::start().await;
    ensure_rollout_crd(&c).await;
    let ns = c.namespace("kinds", &[]).await;
    c.deployment(&ns, "api", 3).await;
    c.create(standin::seed::rollout(&ns, "canary", 4)).await;
    // Scale-to-zero HPAs, one with a behaviour of its own and one without; and an HPA with
    // minReplicas 2, which needs nothing.
    let own = json!({"scaleDown": {"stabilizationWindowSeconds": 60,
                                   "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}});
    c.deployment(&ns, "worker", 2).await;
    c.create(standin::seed::hpa(&ns, "worker", "worker", 0, Some(own)))
        .await;
    c.deployment(&ns, "queue", 1).await;
    c.create(standin::seed::hpa(&ns, "queue", "queue", 0, None)).await;
    c.deployment(&ns, "web", 2).await;
    c.create(standin::seed::hpa(&ns, "web", "web", 2, None)).await;
    let before = hpa_specs(&c, &ns).await;
    assert!(
        before[1].get("behavior").is_none_or(Value::is_null),
        "unset stays unset: {before:?}"
    );

    // The dry-run plan lists the Rollout and the scale-to-zero HPAs, and nothing else of them.
    let (code, out, err) = c
        .run(&["--dry-run", "--output", "json", "run", "--at", OFF_HOURS])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let plan: Value = serde_json::from_str(out.trim()).unwrap();
    let planned: Vec<String> = plan["namespaces"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ch| {
            format!(
                "{}/{} {}->{}",
                ch["kind"].as_str().unwrap(),
                ch["name"].as_str().unwrap(),
                ch["from"].as_str().unwrap(),
                ch["to"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "Rollout/canary 4->0",
        "HorizontalPodAutoscaler/worker scale-up=enabled->scale-up=disabled",
        "HorizontalPodAutoscaler/queue scale-up=enabled->scale-up=disabled",
    ] {
        assert!(planned.contains(&want.to_string()), "{want} in {planned:?}");
    }
    assert!(
        !planned.iter().any(|p| p.starts_with("HorizontalPodAutoscaler/web")),
        "{planned:?}"
    );
    assert_eq!(
        c.replicas("Rollout", &ns, "canary").await,
        4,
        "a dry run changes nothing"
    );

    let (code, out, err) = c.run(&["run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(c.replicas("Rollout", &ns, "canary").await, 0);
    assert_eq!(
        c.annotation("Rollout", Some(&ns), "canary", "namespace-scheduler/original-replicas")
            .await
            .as_deref(),
        Some("4")
    );
    for name in ["worker", "queue"] {
        let s = spec(&c, HPA, &ns, name).await;
        assert_eq!(s["behavior"]["scaleUp"]["selectPolicy"], "Disabled", "{name}: {s}");
        assert!(c.annotation(HPA, Some(&ns), name, BEHAVIOR).await.is_some(), "{name}");
    }
    assert_eq!(spec(&c, HPA, &ns, "web").await, before[2], "minReplicas 2: left alone");
    assert_eq!(c.annotation(HPA, Some(&ns), "web", BEHAVIOR).await, None);
    // The HPA writes are in the namespace's audit record like any other change.
    let records = c.audit().await;
    let down = records
        .iter()
        .find(|r| r.namespace_name == ns)
        .expect("an audit record");
    let entries: Vec<String> = down
        .resources
        .iter()
        .map(|r| format!("{}/{} {}->{}", r.kind, r.name, r.from, r.to))
        .collect();
    for want in [
        "Rollout/canary 4->0",
        "HorizontalPodAutoscaler/worker scale-up=enabled->scale-up=disabled",
    ] {
        assert!(entries.contains(&want.to_string()), "{want} in {entries:?}");
    }

    let (code, out, err) = c.run(&["run", "--at", BUSINESS]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for (kind, name, n) in [
        ("Rollout", "canary", 4),
        ("Deployment", "api", 3),
        ("Deployment", "worker", 2),
    ] {
        assert_eq!(c.replicas(kind, &ns, name).await, n, "{kind}/{name}");
    }
    assert_eq!(hpa_specs(&c, &ns).await, before, "every HPA exactly as before");
    for name in ["worker", "queue", "web"] {
        assert_eq!(c.annotation(HPA, Some(&ns), name, BEHAVIOR).await, None, "{name}");
    }
    c.cleanup().await;
}

/// A write to an HPA that fails rolls the namespace back, HPA included, like any other write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_hpa_write_rolls_its_namespace_back() {
    use standin::{FaultAction, FaultRule};
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("injects a failure into the HPA's write") else {
        return;
    };
    let ns = c.namespace("hpa-fails", &[]).await;
    c.deployment(&ns, "worker", 2).await;
    c.create(standin::seed::hpa(&ns, "worker", "worker", 0, None)).await;
    s.add_fault(
        FaultRule::new(FaultAction::status(500))
            .verb("patch")
            .resource("horizontalpodautoscalers"),
    );
    let before = c.snapshot(&ns).await;
    let hpa_before = spec(&c, HPA, &ns, "worker").await;
    let (code, out, err) = c.run(&["run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("rolled_back"), "{out}");
    assert_eq!(c.snapshot(&ns).await, before);
    assert_eq!(spec(&c, HPA, &ns, "worker").await, hpa_before);
    let records = c.audit().await;
    let r = records
        .iter()
        .find(|r| r.namespace_name == ns)
        .expect("an audit record");
    assert_eq!(r.status, namespace_scheduler::audit::AuditStatus::RolledBack);
    c.cleanup().await;
}

/// Without the Rollout CRD (404 for the whole group) nothing changes for anyone: the run lists
/// the other kinds and scales them as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_the_rollout_crd_is_unaffected() {
    let c = Cluster::start_with(Options {
        enable_keda: true,
        enable_activation_requests: true,
        enable_rollouts: false,
        ..Options::default()
    })
    .await;
    if c.standin_only("a shared control plane may have the Rollout CRD installed by another test")
        .is_none()
    {
        return;
    }
    let ns = c.namespace("no-rollouts", &[]).await;
    c.deployment(&ns, "api", 3).await;
    let (code, out, err) = c.run(&["run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    assert_eq!(c.run(&["run", "--at", BUSINESS]).await.0, 0);
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);
    c.cleanup().await;
}
