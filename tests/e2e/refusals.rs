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

/// Makes every change of `ns`'s status label refused: on a real apiserver a
/// ValidatingAdmissionPolicy bound to this test's namespaces, on the stand-in a persistent 403
/// on the Namespace's writes.
async fn freeze_namespace(c: &Cluster, ns: &str) -> Freeze {
    if let Some(s) = c.standin() {
        let rule = FaultRule::new(FaultAction::Status {
            code: 403,
            retry_after_seconds: None,
            message: Some(format!(
                "namespaces \"{ns}\" is forbidden: its status is frozen by policy"
            )),
        })
        .verb("patch")
        .resource("namespaces")
        .name(ns);
        return Freeze::Fault(s.add_fault(rule));
    }
    let policy = format!("nss-e2e-{}-nsfreeze", c.id);
    for kind in ["validatingadmissionpolicybindings", "validatingadmissionpolicies"] {
        c.delete_on_drop(&format!("{kind}.admissionregistration.k8s.io"), None, &policy);
    }
    let status = "'namespace-scheduler/status'";
    let label = |o: &str| {
        format!("(has({o}.metadata.labels) && {status} in {o}.metadata.labels ? {o}.metadata.labels[{status}] : '')")
    };
    for (kind, body) in [
        (
            "validatingadmissionpolicies",
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["namespaces"]}]},
                    "validations": [{
                        "expression": format!("{} == {}", label("object"), label("oldObject")),
                        "message": "its status is frozen by policy",
                    }],
                },
            }),
        ),
        (
            "validatingadmissionpolicybindings",
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": policy},
                "spec": {
                    "policyName": policy,
                    "validationActions": ["Deny"],
                    // For a Namespace the selector matches the Namespace's own labels: only this test's.
                    "matchResources": {"namespaceSelector": {"matchLabels": {RUN_LABEL: c.id}}},
                },
            }),
        ),
    ] {
        let req = Request::new(format!("{VAP}/{kind}"))
            .create(&PostParams::default(), serde_json::to_vec(&body).unwrap())
            .unwrap();
        c.client
            .request::<Value>(req)
            .await
            .expect("create the admission policy");
    }
    Freeze::Policy(policy)
}

/// Whether a change of `ns`'s status label is refused now (a server-side dry run).
async fn namespace_refused_now(c: &Cluster, ns: &str) -> bool {
    let req = Request::new("/api/v1/namespaces")
        .patch(
            ns,
            &PatchParams {
                dry_run: true,
                ..Default::default()
            },
            &Patch::Merge(json!({"metadata": {"labels": {"namespace-scheduler/status": "probe"}}})),
        )
        .unwrap();
    match c.client.request::<Value>(req).await {
        Ok(_) => false,
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => true,
        Err(e) => panic!("probe {ns}: {e}"),
    }
}

async fn freeze_namespace_now(c: &Cluster, ns: &str) -> Freeze {
    let f = freeze_namespace(c, ns).await;
    if c.real() {
        for _ in 0..100 {
            if namespace_refused_now(c, ns).await {
                return f;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{ns}: the Namespace freeze did not apply within 10 s");
    }
    f
}

async fn lift_now(c: &Cluster, ns: &str, f: Freeze) {
    lift(c, f).await;
    if c.real() {
        for _ in 0..100 {
            if !namespace_refused_now(c, ns).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{ns}: the Namespace freeze did not lift within 10 s");
    }
}

/// The row, the audit record and the exit code of a run whose Namespace write was refused all
/// say it failed; returns the row's status.
async fn refused_namespace_run(c: &Cluster, ns: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = c.run_with(&all, env).await;
    let s: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(code, 1, "{args:?}: {s}\n{err}");
    assert_eq!(s["exit_code"], 1, "{s}");
    let r = row(&s, ns);
    let status = r["status"].as_str().unwrap().to_string();
    assert!(status == "rolled_back" || status == "failed", "{args:?}: {r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains(&format!("Namespace {ns}: refused")),
        "{r}"
    );
    let record = c
        .audit()
        .await
        .into_iter()
        .find(|a| a.namespace_name == *ns && Some(a.run_id.as_str()) == s["run_id"].as_str())
        .unwrap_or_else(|| panic!("{args:?}: no audit record of this run"));
    assert_eq!(record.status.as_str(), status, "{record:?}");
    status
}

/// No false success: a Namespace whose own write (status label, window) is refused has not
/// reached its target. `up` exits 1 and leaves nothing up without a window; a run is rolled back
/// both ways (or, with rollback disabled, reported failed); summary, audit and exit code agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_namespace_write_fails_the_namespace_in_both_directions() {
    let c = Cluster::start().await;
    c.populate().await;
    let ns = c
        .namespace("nsfrozen", &[("namespace-scheduler/cost-center", "DEVOPS-INFRA")])
        .await;
    c.deployment(&ns, "api", 3).await;
    c.cronjob(&ns, "job", false).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    let at_zero = c.snapshot(&ns).await;

    // Up, with the Namespace frozen: not a single workload is scaled, no window is recorded.
    let frozen = freeze_namespace_now(&c, &ns).await;
    let up = [
        "up",
        "-n",
        &ns,
        "--cost-center",
        "DEVOPS-INFRA",
        "--for",
        "4h",
        "--at",
        OFF_HOURS,
    ];
    assert_eq!(refused_namespace_run(&c, &ns, &up, &[]).await, "rolled_back");
    assert_eq!(c.snapshot(&ns).await, at_zero, "up left something changed");
    assert_eq!(
        c.annotation("Namespace", None, &ns, "namespace-scheduler/active-until")
            .await,
        None
    );
    assert_eq!(
        refused_namespace_run(&c, &ns, &["run", "--at", BUSINESS], &[]).await,
        "rolled_back"
    );
    let no_rollback = [("ROLLBACK_ENABLED", "false")];
    assert_eq!(
        refused_namespace_run(&c, &ns, &["run", "--at", BUSINESS], &no_rollback).await,
        "failed"
    );
    assert_eq!(
        c.snapshot(&ns).await,
        at_zero,
        "the label leads: nothing scaled up without it"
    );

    // Down, with the Namespace frozen: the workloads are brought back where they were.
    lift_now(&c, &ns, frozen).await;
    assert_eq!(c.run(&["run", "--at", BUSINESS]).await.0, 0);
    let up_state = c.snapshot(&ns).await;
    let frozen = freeze_namespace_now(&c, &ns).await;
    assert_eq!(
        refused_namespace_run(&c, &ns, &["run", "--at", OFF_HOURS], &[]).await,
        "rolled_back"
    );
    assert_eq!(c.snapshot(&ns).await, up_state, "rolled back to where it started");
    assert_eq!(
        refused_namespace_run(&c, &ns, &["run", "--at", OFF_HOURS], &no_rollback).await,
        "failed"
    );
    assert_eq!(
        c.replicas("Deployment", &ns, "api").await,
        0,
        "left as it is, reported failed"
    );
    lift_now(&c, &ns, frozen).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0, "converges once allowed");
}
