//! Protocol behaviour against the real kube client.

mod common;

use common::{api_error, client, http, http_ct};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use standin::{Options, Standin};

#[tokio::test]
async fn list_with_label_and_field_selectors() {
    let s = Standin::start().await;
    s.add_namespace("dev-a", &[("tier", "dev"), ("cc", "IT")]);
    s.add_namespace("qa-b", &[("tier", "qa")]);
    s.add_namespace("prod", &[("tier", "prod"), ("protected", "yes")]);
    let ns: Api<Namespace> = Api::all(client(&s));
    let names = |l: kube::core::ObjectList<Namespace>| -> Vec<String> {
        l.items.into_iter().map(|n| n.metadata.name.unwrap()).collect()
    };
    let l = |sel: &str| ListParams::default().labels(sel);
    assert_eq!(names(ns.list(&l("tier=dev")).await.unwrap()), ["dev-a"]);
    assert_eq!(names(ns.list(&l("tier in (dev,qa)")).await.unwrap()), ["dev-a", "qa-b"]);
    assert_eq!(
        names(ns.list(&l("tier notin (dev),!protected")).await.unwrap()),
        ["qa-b"]
    );
    assert_eq!(names(ns.list(&l("tier!=prod,cc")).await.unwrap()), ["dev-a"]);
    assert_eq!(names(ns.list(&l("tier==qa")).await.unwrap()), ["qa-b"]);
    let f = ListParams::default().fields("metadata.name=prod");
    assert_eq!(names(ns.list(&f).await.unwrap()), ["prod"]);
    let (code, reason, _) = api_error(ns.list(&l("tier in (dev")).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    let (code, _, msg) = api_error(ns.list(&ListParams::default().fields("spec.x=y")).await.unwrap_err());
    assert_eq!(code, 400);
    assert!(msg.contains("field label not supported"), "{msg}");
    // the apiserver's own label
    assert_eq!(
        names(ns.list(&l("kubernetes.io/metadata.name=qa-b")).await.unwrap()),
        ["qa-b"]
    );
}

#[tokio::test]
async fn cluster_wide_pagination_is_consistent() {
    let s = Standin::start().await;
    for ns in ["a", "b", "c"] {
        s.add_namespace(ns, &[]);
    }
    for i in 0..250 {
        s.add_deployment(["a", "b", "c"][i % 3], &format!("d-{i:03}"), 1);
    }
    let api: Api<Deployment> = Api::all(client(&s));
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(100);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        pages += 1;
        if pages == 1 {
            assert_eq!(page.metadata.remaining_item_count, Some(150));
            // objects added after the first page: one before the cursor, one after it
            s.add_deployment("a", "a-late", 1);
            s.add_deployment("c", "z-late", 1);
        }
        seen.extend(page.items.iter().map(|d| {
            assert!(d.metadata.resource_version.is_some());
            format!(
                "{}/{}",
                d.metadata.namespace.clone().unwrap(),
                d.metadata.name.clone().unwrap()
            )
        }));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let originals: Vec<&String> = seen.iter().filter(|k| !k.ends_with("-late")).collect();
    assert_eq!(originals.len(), 250, "no original item skipped");
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no duplicates");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "sorted by namespace/name");
    assert_eq!(s.count("list", "deployments"), 3);
}

#[tokio::test]
async fn crud_and_not_found() {
    let s = Standin::start().await;
    s.add_namespace("ns1", &[]);
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    let d: Deployment = serde_json::from_value(standin::seed::deployment("ns1", "web", 2)).unwrap();
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let (code, reason, _) = api_error(api.create(&PostParams::default(), &d).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    let (code, reason, msg) = api_error(api.get("nope").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(msg, "deployments.apps \"nope\" not found");
    let (code, _, _) = api_error(
        api.patch("nope", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
    // create into a namespace that does not exist
    let other: Api<Deployment> = Api::namespaced(client(&s), "missing");
    let (code, _, msg) = api_error(other.create(&PostParams::default(), &d).await.unwrap_err());
    assert_eq!(code, 400, "body namespace differs from the path: {msg}");
    let mut d2 = d.clone();
    d2.metadata.namespace = None;
    let (code, _, msg) = api_error(other.create(&PostParams::default(), &d2).await.unwrap_err());
    assert_eq!(code, 404);
    assert!(msg.contains("namespaces \"missing\" not found"), "{msg}");
    api.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(s.get("apps/v1", "Deployment", Some("ns1"), "web").is_none());
    let (code, _, _) = api_error(api.delete("web", &DeleteParams::default()).await.unwrap_err());
    assert_eq!(code, 404);
}

#[tokio::test]
async fn optimistic_concurrency_on_put_and_patch() {
    let s = Standin::start().await;
    s.add_namespace("ns1", &[]);
    s.add_deployment("ns1", "web", 3);
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    let mut d = api.get("web").await.unwrap();
    let rv = d.metadata.resource_version.clone().unwrap();
    // someone else edits the deployment
    s.modify("apps/v1", "Deployment", Some("ns1"), "web", |o| {
        o["spec"]["replicas"] = json!(5)
    })
    .unwrap();
    d.spec.as_mut().unwrap().replicas = Some(0);
    let (code, reason, msg) = api_error(api.replace("web", &PostParams::default(), &d).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        msg,
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let stale = json!({"metadata": {"resourceVersion": rv}, "spec": {"replicas": 0}});
    let (code, _, _) = api_error(
        api.patch("web", &PatchParams::default(), &Patch::Merge(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    let (code, _, _) = api_error(
        api.patch("web", &PatchParams::default(), &Patch::Strategic(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    assert_eq!(s.replicas("deploy", "ns1", "web"), Some(5), "nothing applied");
    // with the fresh resourceVersion both work, and every write bumps it
    let fresh = api.get("web").await.unwrap();
    let frv = fresh.metadata.resource_version.clone().unwrap();
    let ok = json!({"metadata": {"resourceVersion": frv}, "spec": {"replicas": 0}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&ok))
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().replicas, Some(0));
    let prv: u64 = patched.metadata.resource_version.clone().unwrap().parse().unwrap();
    assert!(prv > frv.parse::<u64>().unwrap());
    assert_eq!(patched.metadata.generation, Some(3));
    let mut again = api.get("web").await.unwrap();
    again.spec.as_mut().unwrap().replicas = Some(2);
    let replaced = api.replace("web", &PostParams::default(), &again).await.unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(2));
    assert_eq!(replaced.status.unwrap().replicas, Some(2));
    assert!(replaced.metadata.managed_fields.is_none());
}

#[tokio::test]
async fn strict_updates_require_resource_version() {
    let s = Standin::start_with(Options {
        strict_updates: true,
        ..Options::default()
    })
    .await;
    s.add_namespace("ns1", &[]);
    s.add_deployment("ns1", "web", 3);
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    let mut d = api.get("web").await.unwrap();
    d.metadata.resource_version = None;
    let (code, reason, _) = api_error(api.replace("web", &PostParams::default(), &d).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
}

#[tokio::test]
async fn merge_patch_null_deletes_annotation_and_json_patch_works() {
    let s = Standin::start().await;
    s.add_namespace("ns1", &[]);
    s.add_statefulset("ns1", "db", 2);
    let api: Api<StatefulSet> = Api::namespaced(client(&s), "ns1");
    let p = json!({"metadata": {"annotations": {"namespace-scheduler/original-replicas": "2", "keep": "x"}}, "spec": {"replicas": 0}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(
        s.annotation(
            "apps/v1",
            "sts",
            Some("ns1"),
            "db",
            "namespace-scheduler/original-replicas"
        )
        .as_deref(),
        Some("2")
    );
    let p =
        json!({"metadata": {"annotations": {"namespace-scheduler/original-replicas": null}}, "spec": {"replicas": 2}});
    let out = api
        .patch("db", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    let ann = out.metadata.annotations.unwrap();
    assert!(!ann.contains_key("namespace-scheduler/original-replicas"));
    assert_eq!(ann.get("keep").map(String::as_str), Some("x"));
    assert_eq!(out.spec.unwrap().replicas, Some(2));
    let path = "/apis/apps/v1/namespaces/ns1/statefulsets/db";
    let jp = r#"[{"op":"test","path":"/spec/replicas","value":2},{"op":"replace","path":"/spec/replicas","value":4},{"op":"remove","path":"/metadata/annotations/keep"}]"#;
    let (code, _, body) = http_ct(&s.url(), "PATCH", path, "application/json-patch+json", Some(jp)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(s.replicas("StatefulSet", "ns1", "db"), Some(4));
    assert!(s.annotation("apps/v1", "sts", Some("ns1"), "db", "keep").is_none());
    // a failing test op rejects the whole patch
    let (code, _, _) = http_ct(&s.url(), "PATCH", path, "application/json-patch+json", Some(jp)).await;
    assert_eq!(code, 422);
    assert_eq!(s.replicas("StatefulSet", "ns1", "db"), Some(4));
    let (code, _, _) = http_ct(&s.url(), "PATCH", path, "text/plain", Some("{}")).await;
    assert_eq!(code, 415);
}

#[tokio::test]
async fn scale_subresource() {
    let s = Standin::start().await;
    s.add_namespace("ns1", &[]);
    s.add_deployment("ns1", "web", 3);
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    let sc = api.get_scale("web").await.unwrap();
    assert_eq!(sc.spec.unwrap().replicas, Some(3));
    assert_eq!(sc.status.unwrap().selector.as_deref(), Some("app=web"));
    let out = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(out.spec.unwrap().replicas, Some(0));
    assert_eq!(s.replicas("Deployment", "ns1", "web"), Some(0));
    let stale = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}});
    let (code, _, _) = api_error(
        api.patch_scale("web", &PatchParams::default(), &Patch::Merge(&stale))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    assert_eq!(s.count("patch", "deployments"), 2);
    assert_eq!(s.requests().last().unwrap().subresource, "scale");
}

#[tokio::test]
async fn cronjobs_leases_events_and_namespace_deletion() {
    let s = Standin::start().await;
    s.add_namespace("ns1", &[]);
    s.add_namespace("sched", &[]);
    s.add_cronjob("ns1", "job", false);
    let c = client(&s);
    let cj: Api<CronJob> = Api::namespaced(c.clone(), "ns1");
    let p = json!({"metadata": {"annotations": {"namespace-scheduler/original-suspend": "false"}}, "spec": {"suspend": true}});
    let out = cj
        .patch("job", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(out.spec.unwrap().suspend, Some(true));
    assert_eq!(cj.list(&ListParams::default()).await.unwrap().items.len(), 1);

    let leases: Api<Lease> = Api::namespaced(c.clone(), "sched");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "lock"}, "spec": {"holderIdentity": "run-1", "leaseDurationSeconds": 60}}),
    )
    .unwrap();
    let held = leases.create(&PostParams::default(), &lease).await.unwrap();
    let (code, _, _) = api_error(leases.create(&PostParams::default(), &lease).await.unwrap_err());
    assert_eq!(code, 409);
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..Default::default()
    };
    let (code, _, _) = api_error(leases.delete("lock", &dp).await.unwrap_err());
    assert_eq!(code, 409, "stale delete precondition");
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: held.metadata.resource_version.clone(),
            uid: None,
        }),
        ..Default::default()
    };
    leases.delete("lock", &dp).await.unwrap();

    let events: Api<Event> = Api::namespaced(c.clone(), "ns1");
    // As the apiserver: involvedObject.namespace must match the Event's namespace.
    let mut ev: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "ns1-"},
        "involvedObject": {"kind": "Namespace", "name": "ns1"},
        "reason": "ScaledDown", "message": "scaled down", "type": "Normal"
    }))
    .unwrap();
    let (code, _, message) = api_error(events.create(&PostParams::default(), &ev).await.unwrap_err());
    assert_eq!(code, 422);
    assert!(
        message.contains(r#"involvedObject.namespace: Invalid value: "": does not match event.namespace"#),
        "{message}"
    );
    ev.involved_object.namespace = Some("ns1".into());
    let created = events.create(&PostParams::default(), &ev).await.unwrap();
    assert!(created.metadata.name.unwrap().starts_with("ns1-"));
    let lp = ListParams::default().fields("reason=ScaledDown");
    assert_eq!(events.list(&lp).await.unwrap().items.len(), 1);

    let ns: Api<Namespace> = Api::all(c);
    ns.delete("ns1", &DeleteParams::default()).await.unwrap();
    assert!(s.list("batch/v1", "CronJob", None).is_empty());
    assert!(s.list("v1", "Event", None).is_empty());
    assert_eq!(s.list("v1", "ns", None).len(), 1);
}

#[tokio::test]
async fn keda_only_when_enabled_and_discovery() {
    let plain = Standin::start().await;
    let (code, _, body) = http(&plain.url(), "GET", "/apis/keda.sh/v1alpha1/scaledobjects", None).await;
    assert_eq!(code, 404);
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    let (_, _, groups) = http(&plain.url(), "GET", "/apis", None).await;
    assert!(!groups.contains("keda.sh"));
    let (code, _, _) = http(&plain.url(), "GET", "/no/such/path", None).await;
    assert_eq!(code, 404);

    let s = Standin::start_with(Options {
        enable_keda: true,
        ..Options::default()
    })
    .await;
    s.add_namespace("ns1", &[]);
    s.add_scaled_object("ns1", "so", "web");
    let (code, _, body) = http(
        &s.url(),
        "GET",
        "/apis/keda.sh/v1alpha1/namespaces/ns1/scaledobjects",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "ScaledObjectList");
    assert_eq!(v["items"][0]["kind"], "ScaledObject");
    let (_, _, groups) = http(&s.url(), "GET", "/apis", None).await;
    assert!(groups.contains("keda.sh"));
    let so = "/apis/keda.sh/v1alpha1/namespaces/ns1/scaledobjects/so";
    let pause = r#"{"metadata":{"annotations":{"autoscaling.keda.sh/paused-replicas":"0"}}}"#;
    let (code, _, _) = http_ct(
        &s.url(),
        "PATCH",
        so,
        "application/strategic-merge-patch+json",
        Some(pause),
    )
    .await;
    assert_eq!(code, 415, "no strategic merge patch for custom resources");
    let (code, _, _) = http_ct(&s.url(), "PATCH", so, "application/merge-patch+json", Some(pause)).await;
    assert_eq!(code, 200);
    let paused = s.annotation(
        "keda.sh/v1alpha1",
        "ScaledObject",
        Some("ns1"),
        "so",
        "autoscaling.keda.sh/paused-replicas",
    );
    assert_eq!(paused.as_deref(), Some("0"));

    let (_, _, apps) = http(&s.url(), "GET", "/apis/apps/v1", None).await;
    let apps: serde_json::Value = serde_json::from_str(&apps).unwrap();
    let res = apps["resources"].as_array().unwrap();
    let scale = res.iter().find(|r| r["name"] == "deployments/scale").unwrap();
    assert_eq!(scale["kind"], "Scale");
    let deploy = res.iter().find(|r| r["name"] == "deployments").unwrap();
    assert_eq!(deploy["shortNames"][0], "deploy");
    assert_eq!(deploy["namespaced"], true);
    let (_, _, core) = http(&s.url(), "GET", "/api/v1", None).await;
    assert!(core.contains("\"namespaced\":false"));
    let (code, _, version) = http(&s.url(), "GET", "/version", None).await;
    assert_eq!(code, 200);
    assert!(version.contains("gitVersion"));
}

#[tokio::test]
async fn kube_client_reuses_one_connection() {
    let s = Standin::start().await;
    s.add_namespace("ns1", &[]);
    let api: Api<Namespace> = Api::all(client(&s));
    for _ in 0..20 {
        api.get("ns1").await.unwrap();
    }
    assert_eq!(s.count("get", "namespaces"), 20);
    assert_eq!(s.connection_count(), 1, "keep-alive: one TCP connection");
}

#[tokio::test]
async fn dry_run_and_uid_precondition() {
    let s = Standin::start().await;
    s.add_namespace("ns1", &[]);
    s.add_deployment("ns1", "web", 3);
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    let rv = s.resource_version();
    let pp = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let out = api
        .patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 0}})))
        .await
        .unwrap();
    assert_eq!(out.spec.unwrap().replicas, Some(0));
    assert_eq!(s.replicas("deploy", "ns1", "web"), Some(3), "dry run stores nothing");
    assert_eq!(s.resource_version(), rv);
    let mut d = api.get("web").await.unwrap();
    d.metadata.uid = Some("00000000-0000-4000-8000-000000000000".into());
    let (code, _, msg) = api_error(api.replace("web", &PostParams::default(), &d).await.unwrap_err());
    assert_eq!(code, 409);
    assert!(msg.contains("Precondition failed"), "{msg}");
}

#[tokio::test]
async fn activation_requests_only_when_enabled_with_their_status_subresource() {
    let path = "/apis/namespace-scheduler.io/v1alpha1/namespaces/dev/activationrequests";
    let plain = Standin::start().await;
    for p in [
        path,
        "/apis/namespace-scheduler.io/v1alpha1",
        "/apis/namespace-scheduler.io",
    ] {
        let (code, _, _) = http(&plain.url(), "GET", p, None).await;
        assert_eq!(code, 404, "{p}: the whole group is absent without its CRD");
    }
    let (_, _, groups) = http(&plain.url(), "GET", "/apis", None).await;
    assert!(!groups.contains("namespace-scheduler.io"));

    let s = Standin::start_with(Options {
        enable_activation_requests: true,
        ..Options::default()
    })
    .await;
    s.add_namespace("dev", &[]);
    let (_, _, doc) = http(&s.url(), "GET", "/apis/namespace-scheduler.io/v1alpha1", None).await;
    assert!(doc.contains("activationrequests/status"), "{doc}");
    // A status sent with the object is ignored.
    let body = json!({"apiVersion": "namespace-scheduler.io/v1alpha1", "kind": "ActivationRequest",
        "metadata": {"name": "ask"}, "spec": {"until": "2026-11-25T23:00:00Z", "requestedBy": "ana"},
        "status": {"phase": "Accepted"}});
    let (code, _, created) = http(&s.url(), "POST", path, Some(&body.to_string())).await;
    assert_eq!(code, 201, "{created}");
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert!(created["status"].is_null(), "{created}");
    assert_eq!(created["metadata"]["generation"], 1);
    let one = format!("{path}/ask");
    let merge = "application/merge-patch+json";
    // /status changes only status, and never the generation.
    let st = json!({"status": {"phase": "Rejected", "observedGeneration": 1}, "spec": {"until": "x"}});
    let (code, _, out) = http_ct(
        &s.url(),
        "PATCH",
        &format!("{one}/status"),
        merge,
        Some(&st.to_string()),
    )
    .await;
    assert_eq!(code, 200, "{out}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["status"]["phase"], "Rejected");
    assert_eq!(out["spec"]["until"], "2026-11-25T23:00:00Z");
    assert_eq!(out["metadata"]["generation"], 1);
    // A stale precondition on /status is a conflict.
    let stale = json!({"metadata": {"resourceVersion": "1"}, "status": {"phase": "Ended"}});
    let (code, _, _) = http_ct(
        &s.url(),
        "PATCH",
        &format!("{one}/status"),
        merge,
        Some(&stale.to_string()),
    )
    .await;
    assert_eq!(code, 409);
    // The object's own writes keep status; a spec change bumps the generation.
    let spec = json!({"spec": {"until": "2026-11-26T01:00:00Z"}, "status": {"phase": "Accepted"}});
    let (code, _, out) = http_ct(&s.url(), "PATCH", &one, merge, Some(&spec.to_string())).await;
    assert_eq!(code, 200, "{out}");
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["status"]["phase"], "Rejected");
    assert_eq!(out["metadata"]["generation"], 2);
    let labels = json!({"metadata": {"labels": {"team": "x"}}});
    let (_, _, out) = http_ct(&s.url(), "PATCH", &one, merge, Some(&labels.to_string())).await;
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["metadata"]["generation"], 2, "metadata is not spec");
}
