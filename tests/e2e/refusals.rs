//! A refusal is not a failure: when the API refuses one object's write for good (an admission
//! policy freezing a legacy Deployment, as Kyverno or Gatekeeper enforce in real clusters), that
//! object is skipped and named, the rest of the namespace reaches its target, the exit code is
//! 0, and later runs try that object once more and change nothing else.
//!
//! On a real apiserver the freeze is a ValidatingAdmissionPolicy bound to this test's
//! namespaces; on the stand-in, a persistent 422 on that object's writes.

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};
use standin::{FaultAction, FaultRule};

use crate::harness::*;

const ORIG: &str = "namespace-scheduler/original-replicas";
const VAP: &str = "/apis/admissionregistration.k8s.io/v1";

enum Freeze {
    Policy(String),
    Fault(u64),
}

/// Makes every write that changes `name`'s replicas (in this test's namespaces) refused.
async fn freeze(c: &Cluster, name: &str) -> Freeze {
    if let Some(s) = c.standin() {
        let rule = FaultRule::new(FaultAction::Status {
            code: 422,
            retry_after_seconds: None,
            message: Some(format!("admission denied: {name} is frozen by policy")),
        })
        .verb("patch")
        .resource("deployments")
        .name(name);
        return Freeze::Fault(s.add_fault(rule));
    }
    let policy = format!("nss-e2e-{}-freeze", c.id);
    // Deleted even if the test panics (lift() deletes them on the normal path; both are idempotent).
    c.delete_on_drop(
        "validatingadmissionpolicybindings.admissionregistration.k8s.io",
        None,
        &policy,
    );
    c.delete_on_drop(
        "validatingadmissionpolicies.admissionregistration.k8s.io",
        None,
        &policy,
    );
    let create = |path: String, body: Value| async move {
        let req = Request::new(path)
            .create(&PostParams::default(), serde_json::to_vec(&body).unwrap())
            .unwrap();
        c.client
            .request::<Value>(req)
            .await
            .expect("create the admission policy")
    };
    create(
        format!("{VAP}/validatingadmissionpolicies"),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}]},
                "validations": [{
                    "expression": format!("object.metadata.name != '{name}' || object.spec.replicas == oldObject.spec.replicas"),
                    "message": format!("{name} is frozen by policy"),
                }],
            },
        }),
    )
    .await;
    create(
        format!("{VAP}/validatingadmissionpolicybindings"),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy},
            "spec": {
                "policyName": policy,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {RUN_LABEL: c.id}}},
            },
        }),
    )
    .await;
    Freeze::Policy(policy)
}

async fn lift(c: &Cluster, freeze: Freeze) {
    match freeze {
        Freeze::Fault(id) => {
            c.standin().unwrap().remove_fault(id);
        }
        Freeze::Policy(name) => {
            for kind in ["validatingadmissionpolicybindings", "validatingadmissionpolicies"] {
                let req = Request::new(format!("{VAP}/{kind}"))
                    .delete(&name, &DeleteParams::default())
                    .unwrap();
                c.client
                    .request::<Value>(req)
                    .await
                    .expect("delete the admission policy");
            }
        }
    }
}

/// Whether a replicas change of `ns/name` is refused now (a server-side dry run): admission
/// policies take effect, and go away, a moment after they are written.
async fn refused_now(c: &Cluster, ns: &str, name: &str) -> bool {
    let current = c.replicas("Deployment", ns, name).await;
    let req = Request::new(format!("/apis/apps/v1/namespaces/{ns}/deployments"))
        .patch(
            name,
            &PatchParams {
                dry_run: true,
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": current + 1}})),
        )
        .unwrap();
    match c.client.request::<Value>(req).await {
        Ok(_) => false,
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => true,
        Err(e) => panic!("probe {ns}/{name}: {e}"),
    }
}

async fn wait_until_refused(c: &Cluster, ns: &str, name: &str, refused: bool) {
    for _ in 0..100 {
        if refused_now(c, ns, name).await == refused {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{ns}/{name}: the freeze did not {} within 10 s",
        if refused { "apply" } else { "lift" }
    );
}

fn row<'a>(summary: &'a Value, ns: &str) -> &'a Value {
    summary["namespaces"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["namespace"] == ns))
        .unwrap_or_else(|| panic!("no row for {ns} in {summary}"))
}

async fn refused_events(c: &Cluster, ns: &str) -> Vec<Value> {
    let req = Request::new(format!("/api/v1/namespaces/{ns}/events"))
        .list(&Default::default())
        .unwrap();
    let list: Value = c.client.request(req).await.expect("list events");
    list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["reason"] == "Refused")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_object_is_skipped_and_the_rest_of_the_namespace_reaches_its_target() {
    let c = Cluster::start().await;
    let ns = c.namespace("frozen", &[]).await;
    c.deployment(&ns, "api", 3).await;
    c.deployment(&ns, "worker", 2).await;
    c.deployment(&ns, "legacy", 2).await;
    let frozen = freeze(&c, "legacy").await;
    if c.real() {
        wait_until_refused(&c, &ns, "legacy", true).await;
    }

    // Down: the others at 0, legacy untouched, exit 0, named in summary, audit and a Warning.
    let (code, s, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    let r = row(&s, &ns);
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["changes"], 2, "{r}");
    assert_eq!(r["refused"], 1, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("Deployment legacy refused"),
        "{r}"
    );
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    assert_eq!(c.replicas("Deployment", &ns, "worker").await, 0);
    assert_eq!(c.replicas("Deployment", &ns, "legacy").await, 2);
    assert_eq!(c.annotation("Deployment", Some(&ns), "legacy", ORIG).await, None);
    assert_eq!(
        c.label(&ns, "namespace-scheduler/status").await.as_deref(),
        Some("inactive")
    );
    let record = c
        .audit()
        .await
        .into_iter()
        .find(|a| a.namespace_name == ns)
        .expect("an audit record");
    let legacy = record
        .resources
        .iter()
        .find(|r| r.name == "legacy")
        .expect("legacy named");
    assert!(
        legacy.skipped.as_deref().is_some_and(|m| m.contains("frozen")),
        "{legacy:?}"
    );
    let warnings = refused_events(&c, &ns).await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["type"], "Warning");
    assert!(
        warnings[0]["message"].as_str().unwrap().contains("legacy"),
        "{}",
        warnings[0]
    );

    // The next run tries legacy once more (one write) and changes nothing else.
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(s["writes"], 1, "one attempt on the refused object: {s}");
    assert_eq!(row(&s, &ns)["refused"], 1);
    assert_eq!(c.replicas("Deployment", &ns, "legacy").await, 2);
    lift(&c, frozen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_way_up_a_refused_object_keeps_its_original_and_is_restored_once_allowed() {
    let c = Cluster::start().await;
    let ns = c.namespace("thaw", &[]).await;
    c.deployment(&ns, "api", 3).await;
    c.deployment(&ns, "legacy", 4).await;
    let (code, s, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "legacy").await, 0);

    let frozen = freeze(&c, "legacy").await;
    if c.real() {
        wait_until_refused(&c, &ns, "legacy", true).await;
    }
    // Up: the rest restored, legacy keeps its original-replicas (and stays at 0).
    let (code, s, err) = c.run_json(BUSINESS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(row(&s, &ns)["refused"], 1, "{s}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);
    assert_eq!(c.replicas("Deployment", &ns, "legacy").await, 0);
    assert_eq!(
        c.annotation("Deployment", Some(&ns), "legacy", ORIG).await.as_deref(),
        Some("4")
    );
    assert_eq!(
        c.label(&ns, "namespace-scheduler/status").await.as_deref(),
        Some("active")
    );

    // Once the policy allows it, the next run restores it exactly.
    lift(&c, frozen).await;
    if c.real() {
        wait_until_refused(&c, &ns, "legacy", false).await;
    }
    let (code, s, err) = c.run_json(BUSINESS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "legacy").await, 4);
    assert_eq!(c.annotation("Deployment", Some(&ns), "legacy", ORIG).await, None);
    assert_eq!(row(&s, &ns)["refused"], 0, "{s}");
}
