//! Rules where our stand-in once disagreed with a real kube-apiserver, pinned by tests that run
//! unchanged on both (the real one is right; the stand-in was fixed to match): Event
//! validation, and namespaces being deleted (Terminating) — never written, never counted.

use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::Request;
use serde_json::{json, Value};

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
