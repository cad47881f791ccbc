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

pub(crate) enum Freeze {
    Policy(String),
    Fault(u64),
}

/// What a freeze refuses: a Deployment's replicas, or a Namespace's status label.
#[derive(Clone, Copy)]
enum Frozen<'a> {
    Replicas(&'a str),
    NamespaceStatus(&'a str),
}

impl Frozen<'_> {
    /// On the stand-in: a persistent refusal of the object's writes.
    fn fault(self) -> FaultRule {
        let (code, resource, name, message) = match self {
            Frozen::Replicas(name) => (
                422,
                "deployments",
                name,
                format!("admission denied: {name} is frozen by policy"),
            ),
            Frozen::NamespaceStatus(ns) => (
                403,
                "namespaces",
                ns,
                format!("namespaces \"{ns}\" is forbidden: its status is frozen by policy"),
            ),
        };
        FaultRule::new(FaultAction::Status {
            code,
            retry_after_seconds: None,
            message: Some(message),
        })
        .verb("patch")
        .resource(resource)
        .name(name)
    }

    /// On a real apiserver: the policy's name suffix, its resource rule, its expression and message.
    fn policy(self) -> (&'static str, Value, String, String) {
        match self {
            Frozen::Replicas(name) => (
                "freeze",
                json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["deployments"]}),
                format!("object.metadata.name != '{name}' || object.spec.replicas == oldObject.spec.replicas"),
                format!("{name} is frozen by policy"),
            ),
            Frozen::NamespaceStatus(_) => {
                let status = "'namespace-scheduler/status'";
                let label = |o: &str| {
                    format!("(has({o}.metadata.labels) && {status} in {o}.metadata.labels ? {o}.metadata.labels[{status}] : '')")
                };
                (
                    "nsfreeze",
                    json!({"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["namespaces"]}),
                    format!("{} == {}", label("object"), label("oldObject")),
                    "its status is frozen by policy".to_string(),
                )
            }
        }
    }
}

/// Makes `what` refused: a persistent fault on the stand-in; on a real apiserver a
/// ValidatingAdmissionPolicy and its binding, matching only this test's namespaces (for a
/// Namespace the selector matches the Namespace's own labels), deleted even if the test panics.
async fn freeze_it(c: &Cluster, what: Frozen<'_>) -> Freeze {
    if let Some(s) = c.standin() {
        return Freeze::Fault(s.add_fault(what.fault()));
    }
    let (suffix, rule, expression, message) = what.policy();
    let policy = format!("nss-e2e-{}-{suffix}", c.id);
    // Deleted even if the test panics (lift() deletes them on the normal path; both are idempotent).
    for kind in ["validatingadmissionpolicybindings", "validatingadmissionpolicies"] {
        c.delete_on_drop(&format!("{kind}.admissionregistration.k8s.io"), None, &policy);
    }
    for (kind, body) in [
        (
            "validatingadmissionpolicies",
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": policy},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {"resourceRules": [rule]},
                    "validations": [{"expression": expression, "message": message}],
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

/// Makes every write that changes `name`'s replicas (in this test's namespaces) refused.
async fn freeze(c: &Cluster, name: &str) -> Freeze {
    freeze_it(c, Frozen::Replicas(name)).await
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

/// Whether the change `patch` of `path`/`name` is refused now (a server-side dry run).
async fn refused_by_dry_run(c: &Cluster, path: &str, name: &str, patch: Value) -> bool {
    let req = Request::new(path)
        .patch(
            name,
            &PatchParams {
                dry_run: true,
                ..Default::default()
            },
            &Patch::Merge(patch),
        )
        .unwrap();
    match c.client.request::<Value>(req).await {
        Ok(_) => false,
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => true,
        Err(e) => panic!("probe {path}/{name}: {e}"),
    }
}

/// Whether `what` is refused now: admission policies take effect, and go away, a moment after
/// they are written (always as wanted on the stand-in, whose faults act at once).
async fn refused_now(c: &Cluster, ns: &str, what: Frozen<'_>) -> bool {
    let (path, name, patch) = match what {
        Frozen::Replicas(name) => {
            let current = c.replicas("Deployment", ns, name).await;
            (
                format!("/apis/apps/v1/namespaces/{ns}/deployments"),
                name.to_string(),
                json!({"spec": {"replicas": current + 1}}),
            )
        }
        Frozen::NamespaceStatus(ns) => (
            "/api/v1/namespaces".to_string(),
            ns.to_string(),
            json!({"metadata": {"labels": {"namespace-scheduler/status": "probe"}}}),
        ),
    };
    refused_by_dry_run(c, &path, &name, patch).await
}

/// Waits (up to 10 s) until `what` in `ns` is refused, or no longer is (a real apiserver only).
async fn wait_until(c: &Cluster, ns: &str, what: Frozen<'_>, refused: bool) {
    if !c.real() {
        return;
    }
    for _ in 0..100 {
        if refused_now(c, ns, what).await == refused {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{ns}: the freeze did not {} within 10 s",
        if refused { "apply" } else { "lift" }
    );
}

async fn wait_until_refused(c: &Cluster, ns: &str, name: &str, refused: bool) {
    wait_until(c, ns, Frozen::Replicas(name), refused).await;
}

async fn refused_events(c: &Cluster, ns: &str) -> Vec<Value> {
    c.events(ns, "Refused").await
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

pub(crate) async fn freeze_namespace_now(c: &Cluster, ns: &str) -> Freeze {
    let f = freeze_it(c, Frozen::NamespaceStatus(ns)).await;
    wait_until(c, ns, Frozen::NamespaceStatus(ns), true).await;
    f
}

pub(crate) async fn lift_now(c: &Cluster, ns: &str, f: Freeze) {
    lift(c, f).await;
    wait_until(c, ns, Frozen::NamespaceStatus(ns), false).await;
}

/// The row, the audit record and the exit code of a run whose Namespace write was refused all
/// say it failed; returns the row's status.
pub(crate) async fn refused_namespace_run(c: &Cluster, ns: &str, args: &[&str], env: &[(&str, &str)]) -> String {
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
