//! Rules where our stand-in once disagreed with a real kube-apiserver, pinned by tests that run
//! unchanged on both (the real one is right; the stand-in was fixed to match): Event
//! validation, namespaces being deleted (Terminating) — never written, never counted — and
//! lists: `resourceVersion=0` answered whole by the watch cache, 410 Expired for a continue
//! token older than etcd's compaction, and the scheduler starting such a list again; and a
//! custom resource with a status subresource (ActivationRequests): status written only through
//! `/status`, the generation bumped only by spec changes.

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};
use standin::{FaultAction, FaultRule, Options};

use crate::harness::*;

async fn events_in(c: &Cluster, ns: &str) -> Vec<Value> {
    let req = Request::new(format!("/api/v1/namespaces/{ns}/events"))
        .list(&Default::default())
        .unwrap();
    let list: Value = c.client.request(req).await.expect("list events");
    list["items"].as_array().cloned().unwrap_or_default()
}

async fn create_event(c: &Cluster, ns: &str, event: &Value) -> Result<Value, kube::Error> {
    let req = Request::new(format!("/api/v1/namespaces/{ns}/events"))
        .create(&PostParams::default(), serde_json::to_vec(event).unwrap())
        .unwrap();
    c.client.request::<Value>(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_changed_namespace_gets_a_valid_event() {
    let c = Cluster::start().await;
    let a = c.namespace("ev-a", &[]).await;
    c.deployment(&a, "api", 2).await;
    let b = c.namespace("ev-b", &[]).await;
    c.cronjob(&b, "report", false).await;

    // The rule itself: an Event about a Namespace must name the namespace it lives in.
    let mut bad = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{a}.invalid"), "namespace": a},
        "involvedObject": {"apiVersion": "v1", "kind": "Namespace", "name": a},
        "reason": "ScaledDown", "message": "m", "type": "Normal",
    });
    match create_event(&c, &a, &bad).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(s.message.contains("does not match event.namespace"), "{}", s.message);
        }
        other => panic!("an Event without involvedObject.namespace was not refused: {other:?}"),
    }
    bad["involvedObject"]["namespace"] = json!(a);
    bad["metadata"]["name"] = json!(format!("{a}.valid"));
    create_event(&c, &a, &bad)
        .await
        .expect("the corrected Event is accepted");

    for (at, reason) in [(OFF_HOURS, "ScaledDown"), (BUSINESS, "ScaledUp")] {
        let (code, out, err) = c.run(&["run", "--at", at]).await;
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(!err.contains("could not write the Event"), "{err}");
        for ns in [&a, &b] {
            let ours: Vec<Value> = events_in(&c, ns)
                .await
                .into_iter()
                .filter(|e| e["reason"] == reason && e["source"]["component"] == "namespace-scheduler")
                .collect();
            assert_eq!(ours.len(), 1, "{ns}: one {reason} Event: {ours:?}");
            let e = &ours[0];
            assert_eq!(e["involvedObject"]["kind"], "Namespace");
            assert_eq!(e["involvedObject"]["name"], ns.as_str());
            assert_eq!(e["type"], "Normal");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_namespace_is_never_written_nor_counted() {
    let c = Cluster::start().await;
    let going = c.namespace("going", &[]).await;
    let mut held = standin::seed::deployment(&going, "held", 2);
    // A finalizer keeps the Deployment, and so the namespace, while it is being deleted.
    held["metadata"]["finalizers"] = json!(["e2e.namespace-scheduler/hold"]);
    c.create(held).await;
    let staying = c.namespace("staying", &[]).await;
    c.deployment(&staying, "api", 3).await;

    let req = Request::new("/api/v1/namespaces")
        .delete(&going, &DeleteParams::default())
        .unwrap();
    let deleted: Value = c.client.request(req).await.expect("delete the namespace");
    assert!(deleted["metadata"]["deletionTimestamp"].is_string(), "{deleted}");
    let ns = c.get("Namespace", None, &going).await.expect("still there while held");
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    // Nothing new may be created in it.
    let lease =
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "x", "namespace": going}});
    let req = Request::new(format!("/apis/coordination.k8s.io/v1/namespaces/{going}/leases"))
        .create(&PostParams::default(), serde_json::to_vec(&lease).unwrap())
        .unwrap();
    match c.client.request::<Value>(req).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(s.message.contains("because it is being terminated"), "{}", s.message);
        }
        other => panic!("created content in a Terminating namespace: {other:?}"),
    }

    let (code, s, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(s["namespaces_managed"], 1, "only the live namespace is counted: {s}");
    let rows = s["namespaces"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["namespace"] != going.as_str()), "{s}");
    assert_eq!(c.replicas("Deployment", &going, "held").await, 2);
    assert_eq!(
        c.annotation(
            "Deployment",
            Some(&going),
            "held",
            "namespace-scheduler/original-replicas"
        )
        .await,
        None
    );
    assert_eq!(c.replicas("Deployment", &staying, "api").await, 0);

    // Named explicitly, it is refused as unmanaged (exit 2), naming why.
    let (code, out, err) = c.run(&["down", "--namespace", &going]).await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("being deleted"), "{err}");
    assert_eq!(c.replicas("Deployment", &going, "held").await, 2);

    // Let it go: without its finalizer the Deployment, then the namespace, are deleted.
    let req = Request::new(format!("/apis/apps/v1/namespaces/{going}/deployments"))
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .unwrap();
    c.client.request::<Value>(req).await.expect("drop the finalizer");
}

/// A raw GET: the body, or the API's Status.
async fn get_raw(c: &Cluster, path_and_query: &str) -> Result<Value, Box<kube::core::Status>> {
    let mut req = Request::new("/").get("x", &Default::default()).unwrap();
    *req.uri_mut() = path_and_query.parse().unwrap();
    match c.client.request::<Value>(req).await {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(s)) => Err(s),
        Err(e) => panic!("GET {path_and_query}: {e}"),
    }
}

/// Compacts the store behind the API at its current revision (as `etcdctl compact` does): on
/// the stand-in by its own switch, on a control plane of scripts/control-plane.sh through etcd's
/// HTTP gateway (its port is in `ports` next to the kubeconfig). None: no way to reach etcd.
fn compact(c: &Cluster) -> Option<()> {
    if let Some(s) = c.standin() {
        s.compact();
        return Some(());
    }
    let ports = std::fs::read_to_string(c.kubeconfig.parent()?.join("ports")).ok()?;
    let port = ports.split_whitespace().find_map(|kv| kv.strip_prefix("ETCD_PORT="))?;
    let etcd = |call: &str, body: &str| -> Value {
        let out = std::process::Command::new("curl")
            .args([
                "-sf",
                "-X",
                "POST",
                &format!("http://127.0.0.1:{port}/v3/kv/{call}"),
                "-d",
                body,
            ])
            .output()
            .expect("run curl");
        assert!(out.status.success(), "etcd {call}: {out:?}");
        serde_json::from_slice(&out.stdout).expect("etcd answers JSON")
    };
    let revision = etcd("range", r#"{"key":"AA=="}"#)["header"]["revision"]
        .as_str()
        .expect("etcd's revision")
        .to_string();
    etcd("compaction", &format!(r#"{{"revision":"{revision}","physical":true}}"#));
    Some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_at_resource_version_0_are_whole_and_a_compacted_continue_token_is_410_expired() {
    let c = Cluster::start().await;
    let ns = c.namespace("lists", &[]).await;
    for name in ["a", "b", "c"] {
        c.deployment(&ns, name, 1).await;
    }
    let base = format!("/apis/apps/v1/namespaces/{ns}/deployments");

    // resourceVersion=0: the watch cache answers, limit ignored, no continue token. The cache
    // follows etcd by a moment: wait until it has all three.
    let mut whole = Value::Null;
    for _ in 0..100 {
        whole = get_raw(
            &c,
            &format!("{base}?limit=1&resourceVersion=0&resourceVersionMatch=NotOlderThan"),
        )
        .await
        .expect("a list at resourceVersion 0");
        if whole["items"].as_array().map_or(0, Vec::len) == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(whole["items"].as_array().unwrap().len(), 3, "limit ignored: {whole}");
    assert!(
        whole["metadata"]["continue"].as_str().is_none_or(str::is_empty),
        "{whole}"
    );

    // Without it, the same limit pages (read from etcd).
    let first = get_raw(&c, &format!("{base}?limit=1")).await.expect("first page");
    assert_eq!(first["items"].as_array().unwrap().len(), 1);
    let token = first["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_string();
    // resourceVersionMatch beside a continue token is refused (422).
    let refused = get_raw(
        &c,
        &format!("{base}?limit=1&continue={token}&resourceVersion=0&resourceVersionMatch=NotOlderThan"),
    )
    .await
    .expect_err("resourceVersionMatch with continue");
    assert_eq!(refused.code, 422, "{refused:?}");
    assert!(
        refused
            .message
            .contains("resourceVersionMatch is forbidden when continue is provided"),
        "{}",
        refused.message
    );

    // A write, then etcd compacts: the token's revision is gone.
    c.patch(
        "Deployment",
        Some(&ns),
        "a",
        json!({"metadata": {"labels": {"touched": "yes"}}}),
    )
    .await;
    if compact(&c).is_none() {
        skip("needs etcd to compact (a control plane of scripts/control-plane.sh, or the stand-in)");
        return;
    }
    let expired = get_raw(&c, &format!("{base}?limit=1&continue={token}"))
        .await
        .expect_err("a continue token older than the compaction");
    assert_eq!(expired.code, 410, "{expired:?}");
    assert_eq!(expired.reason, "Expired");
    assert!(
        expired
            .message
            .starts_with("The provided continue parameter is too old to display a consistent list result"),
        "{}",
        expired.message
    );
    // ... and offers a token that goes on at the latest revision (an inconsistent list).
    let resume = expired
        .metadata
        .as_ref()
        .and_then(|m| m.continue_.clone())
        .expect("a resume token");
    let rest = get_raw(&c, &format!("{base}?limit=5&continue={resume}"))
        .await
        .expect("resume");
    let names: Vec<&str> = rest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c"]);
}

/// The scheduler's side of the rule: a list whose continue token expires is started again from
/// the first page; one that keeps expiring fails the run (exit 1) with nothing changed. A real
/// apiserver answers the scheduler's lists from its watch cache, in one page, so only the
/// stand-in with its watch cache off (as `--watch-cache=false`) pages them and can expire one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_whose_continue_token_expires_is_started_again_three_times_then_the_run_fails() {
    let c = Cluster::start_with(Options {
        enable_keda: true,
        watch_cache: false,
        ..Options::default()
    })
    .await;
    let Some(s) = c.standin_only("pages a list and compacts etcd between its pages (fault injection)") else {
        return;
    };
    // More Deployments than one page holds (500), in a namespace the scheduler does not manage.
    s.add_namespace("bulk", &[]);
    for i in 0..520 {
        s.add_deployment("bulk", &format!("d{i:03}"), 1);
    }
    let ns = c.namespace("paged", &[]).await;
    c.deployment(&ns, "api", 2).await;
    c.cronjob(&ns, "report", false).await;

    // Every page of Deployments comes after a compaction: the token always expires.
    let rule = s.add_fault(
        FaultRule::new(FaultAction::Compact)
            .verb("list")
            .resource("deployments"),
    );
    s.reset_requests();
    let (code, out, err) = c.run(&["run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("expired 4 times"), "{err}");
    assert_eq!(
        s.count("list", "deployments"),
        8,
        "the first listing and three more, two pages each"
    );
    let writes: Vec<String> = s
        .requests()
        .into_iter()
        .filter(|r| r.verb == "patch" || (r.verb == "create" && r.resource != "leases"))
        .map(|r| format!("{} {}/{}", r.verb, r.resource, r.name))
        .collect();
    assert!(writes.is_empty(), "nothing may be written: {writes:?}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 2);
    assert!(!c.suspended(&ns, "report").await);

    // Once: the second page expires, the list starts again and the run completes.
    s.remove_fault(rule);
    s.add_fault(
        FaultRule::new(FaultAction::Compact)
            .verb("list")
            .resource("deployments")
            .nth(2),
    );
    s.reset_requests();
    let (code, out, err) = c.run(&["run", "--at", OFF_HOURS]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("continue token expired"), "{err}");
    assert_eq!(
        s.count("list", "deployments"),
        4,
        "two pages, the second expired, then two again"
    );
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    assert!(c.suspended(&ns, "report").await);
    assert_eq!(
        c.replicas("Deployment", "bulk", "d000").await,
        1,
        "unmanaged, untouched"
    );
}

/// An ActivationRequest (a CRD with `subresources: {status: {}}`): a write to the object keeps
/// its status, a write to `/status` changes only the status and never the generation, a spec
/// change bumps the generation, a stale precondition on `/status` is 409, and a list at
/// `resourceVersion=0` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_requests_status_is_written_only_through_its_subresource() {
    let c = Cluster::start().await;
    let ns = c.namespace("status", &[]).await;
    let created = c.ask(&ns, "ask", "2026-11-25T23:00:00-05:00").await;
    assert!(created["status"].is_null(), "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let base = format!("/apis/namespace-scheduler.io/v1alpha1/namespaces/{ns}/activationrequests");
    let patch = |sub: Option<&str>, body: Value| {
        let params = PatchParams::default();
        let req = match sub {
            Some(s) => Request::new(&base).patch_subresource(s, "ask", &params, &Patch::Merge(&body)),
            None => Request::new(&base).patch("ask", &params, &Patch::Merge(&body)),
        };
        c.client.request::<Value>(req.unwrap())
    };
    let out = patch(
        Some("status"),
        json!({"status": {"phase": "Rejected", "message": "m", "observedGeneration": 1}, "spec": {"until": "2027-01-01T00:00:00Z"}}),
    )
    .await
    .expect("write the status");
    assert_eq!(out["status"]["phase"], "Rejected");
    assert_eq!(
        out["spec"]["until"], "2026-11-25T23:00:00-05:00",
        "/status changes only status"
    );
    assert_eq!(out["metadata"]["generation"], 1);
    let stale =
        json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "status": {"phase": "Ended"}});
    match patch(Some("status"), stale).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
        other => panic!("a stale precondition on /status must be 409, got {other:?}"),
    }
    let out = patch(
        None,
        json!({"spec": {"until": "2026-11-25T22:00:00-05:00"}, "status": {"phase": "Accepted"}}),
    )
    .await
    .expect("change the spec");
    assert_eq!(
        out["status"]["phase"], "Rejected",
        "a write to the object keeps its status"
    );
    assert_eq!(out["metadata"]["generation"], 2, "a spec change bumps the generation");
    let out = patch(None, json!({"metadata": {"labels": {"team": "x"}}}))
        .await
        .expect("label it");
    assert_eq!(out["metadata"]["generation"], 2, "metadata is not spec");
    let list = get_raw(
        &c,
        "/apis/namespace-scheduler.io/v1alpha1/activationrequests?resourceVersion=0&resourceVersionMatch=NotOlderThan",
    )
    .await
    .expect("list at resourceVersion=0");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["metadata"]["namespace"] == json!(ns)),
        "{list}"
    );
}
