//! Fault injection and request accounting, observed through the real kube client.

mod common;

use std::time::{Duration, Instant};

use common::{client, client_with};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use standin::{FaultAction, FaultRule, Standin};

async fn setup() -> Standin {
    let s = Standin::start().await;
    s.add_namespace("ns1", &[]);
    s.add_deployment("ns1", "web", 3);
    s.add_deployment("ns1", "api", 2);
    s
}

fn down() -> Patch<serde_json::Value> {
    Patch::Merge(
        json!({"metadata": {"annotations": {"namespace-scheduler/original-replicas": "3"}}, "spec": {"replicas": 0}}),
    )
}

#[tokio::test]
async fn status_faults_reach_the_client_with_status_bodies() {
    let s = setup().await;
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    for code in [500u16, 503, 409, 504] {
        s.add_fault(
            FaultRule::new(FaultAction::status(code))
                .verb("patch")
                .resource("deployments")
                .once(),
        );
        match api.patch("web", &PatchParams::default(), &down()).await {
            Err(kube::Error::Api(st)) => {
                assert_eq!(st.code, code);
                assert!(!st.reason.is_empty());
            }
            other => panic!("expected {code}, got {other:?}"),
        }
        assert_eq!(
            s.replicas("deploy", "ns1", "web"),
            Some(3),
            "a rejected write is not applied"
        );
    }
    s.add_fault(FaultRule::new(FaultAction::too_many_requests(7)).verb("list").once());
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(st)) => assert_eq!((st.code, st.reason.as_str()), (429, "TooManyRequests")),
        other => panic!("expected 429, got {other:?}"),
    }
    let rec = s.requests().into_iter().rev().find(|r| r.verb == "list").unwrap();
    assert_eq!(rec.status, Some(429));
    assert_eq!(rec.faults, vec!["status:429".to_string()]);
    let (code, head, _) = common::http(&s.url(), "GET", "/api/v1/namespaces", None).await;
    assert_eq!(code, 200, "one-shot rules are spent");
    assert!(!head.to_ascii_lowercase().contains("retry-after"));
    s.add_fault(FaultRule::new(FaultAction::too_many_requests(7)).once());
    let (code, head, body) = common::http(&s.url(), "GET", "/api/v1/namespaces", None).await;
    assert_eq!(code, 429);
    assert!(head.to_ascii_lowercase().contains("retry-after: 7"), "{head}");
    assert!(body.contains("\"kind\":\"Status\""));
    let counts = s.fault_counts();
    assert_eq!(counts.status.get(&503), Some(&1));
    assert_eq!(counts.status.get(&429), Some(&2));
    assert_eq!(counts.total, 6);
}

#[tokio::test]
async fn kube_retry_layer_absorbs_one_503() {
    let s = setup().await;
    let api: Api<Deployment> = Api::namespaced(client_with(&s, true), "ns1");
    s.add_fault(FaultRule::new(FaultAction::status(503)).verb("get").once());
    api.get("web").await.unwrap();
    let statuses: Vec<Option<u16>> = s.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![Some(503), Some(200)]);
}

#[tokio::test]
async fn latency_rule_and_global_latency() {
    let s = setup().await;
    let api: Api<Namespace> = Api::all(client(&s));
    s.add_fault(
        FaultRule::new(FaultAction::Latency { ms: 300 })
            .verb("get")
            .name("ns1")
            .once(),
    );
    let t = Instant::now();
    api.get("ns1").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300), "{:?}", t.elapsed());
    let t = Instant::now();
    api.get("ns1").await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(300));
    s.set_latency(Duration::from_millis(50));
    let t = Instant::now();
    for _ in 0..4 {
        api.get("ns1").await.unwrap();
    }
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(s.fault_counts().latency, 1);
}

#[tokio::test]
async fn dropped_connection_is_an_error_and_nothing_is_written() {
    let s = setup().await;
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    s.add_fault(FaultRule::new(FaultAction::Drop).verb("patch").name("web").once());
    let err = api.patch("web", &PatchParams::default(), &down()).await.unwrap_err();
    assert!(!matches!(err, kube::Error::Api(_)), "no HTTP response at all: {err:?}");
    assert_eq!(s.replicas("deploy", "ns1", "web"), Some(3));
    assert_eq!(s.requests().last().unwrap().status, None);
    // the client recovers on a new connection
    api.patch("web", &PatchParams::default(), &down()).await.unwrap();
    assert_eq!(s.replicas("deploy", "ns1", "web"), Some(0));
    assert_eq!(s.fault_counts().drop, 1);
}

#[tokio::test]
async fn commit_then_drop_applies_the_write_but_fails_the_client() {
    let s = setup().await;
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    let rv_before = s.resource_version();
    s.add_fault(FaultRule::new(FaultAction::CommitThenDrop).verb("patch").once());
    let err = api.patch("web", &PatchParams::default(), &down()).await.unwrap_err();
    assert!(!matches!(err, kube::Error::Api(_)), "{err:?}");
    assert_eq!(s.replicas("deploy", "ns1", "web"), Some(0), "the write happened");
    assert_eq!(
        s.annotation(
            "apps/v1",
            "Deployment",
            Some("ns1"),
            "web",
            "namespace-scheduler/original-replicas"
        )
        .as_deref(),
        Some("3")
    );
    assert!(s.resource_version() > rv_before);
    assert_eq!(s.fault_counts().commit_then_drop, 1);
}

#[tokio::test]
async fn nth_match_and_namespace_filters() {
    let s = setup().await;
    s.add_namespace("ns2", &[]);
    s.add_deployment("ns2", "web", 1);
    let c = client(&s);
    let a1: Api<Deployment> = Api::namespaced(c.clone(), "ns1");
    let a2: Api<Deployment> = Api::namespaced(c, "ns2");
    s.add_fault(
        FaultRule::new(FaultAction::status(500))
            .verb("get")
            .namespace("ns1")
            .nth(2),
    );
    a2.get("web").await.unwrap();
    a1.get("web").await.unwrap();
    a2.get("web").await.unwrap();
    assert!(a1.get("api").await.is_err(), "second ns1 get fails");
    a1.get("web").await.unwrap();
    assert_eq!(s.fault_counts().total, 1);
}

#[tokio::test]
async fn probabilistic_faults_are_reproducible() {
    async fn run(seed: u64) -> Vec<bool> {
        let s = setup().await;
        let api: Api<Namespace> = Api::all(client(&s));
        s.add_fault(FaultRule::new(FaultAction::status(500)).probability(0.4, seed));
        let mut out = Vec::new();
        for _ in 0..60 {
            out.push(api.get("ns1").await.is_err());
        }
        out
    }
    let a = run(42).await;
    assert_eq!(a, run(42).await);
    assert_ne!(a, run(43).await);
    let n = a.iter().filter(|x| **x).count();
    assert!((10..40).contains(&n), "{n} of 60");
}

#[tokio::test]
async fn request_accounting() {
    let s = setup().await;
    let c = client(&s);
    let api: Api<Deployment> = Api::namespaced(c.clone(), "ns1");
    let all: Api<Deployment> = Api::all(c);
    all.list(&ListParams::default().labels("app=web")).await.unwrap();
    api.get("web").await.unwrap();
    api.patch("api", &PatchParams::default(), &down()).await.unwrap();
    let _ = api.get("missing").await;
    assert_eq!(s.request_count(), 4);
    let by = s.counts_by_verb();
    assert_eq!((by["list"], by["get"], by["patch"]), (1, 2, 1));
    let r = &s.requests()[0];
    assert_eq!(
        (
            r.method.as_str(),
            r.verb.as_str(),
            r.group.as_str(),
            r.resource.as_str()
        ),
        ("GET", "list", "apps", "deployments")
    );
    assert_eq!(r.path, "/apis/apps/v1/deployments");
    assert!(r.query.contains("labelSelector=app%3Dweb"), "{}", r.query);
    let p = &s.requests()[2];
    assert_eq!(
        (p.namespace.as_str(), p.name.as_str(), p.status),
        ("ns1", "api", Some(200))
    );
    assert_eq!(s.requests()[3].status, Some(404));
    s.reset_requests();
    assert_eq!(s.request_count(), 0);
    s.insert(standin::seed::deployment("ns1", "direct", 1));
    assert_eq!(s.request_count(), 0, "library calls are not API requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_in_flight_until_answered_and_wait_idle_waits_for_it() {
    let s = setup().await;
    s.set_latency(Duration::from_millis(300));
    let api: Api<Deployment> = Api::namespaced(client(&s), "ns1");
    let write = tokio::spawn(async move { api.patch("web", &PatchParams::default(), &down()).await });
    let t0 = Instant::now();
    while s.in_flight() == 0 && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(s.in_flight(), 1, "the write waits out its latency in the server");
    assert_eq!(s.replicas("Deployment", "ns1", "web"), Some(3), "not carried out yet");
    // The server runs on this runtime's other worker meanwhile.
    assert!(tokio::task::block_in_place(|| s.wait_idle(Duration::from_secs(5))));
    assert_eq!(s.in_flight(), 0);
    assert_eq!(
        s.replicas("Deployment", "ns1", "web"),
        Some(0),
        "done by the time wait_idle returns"
    );
    write.await.unwrap().expect("the write succeeds");
    s.set_latency(Duration::ZERO);
}
