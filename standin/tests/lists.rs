//! List semantics that kube-apiserver v1.28 has and clients rely on: `resourceVersion=0` answered
//! whole by the watch cache, list options validated, and 410 Expired for a continue token older
//! than etcd's compaction (tests/e2e/apiserver_rules.rs pins the same on a real apiserver).

mod common;

use common::http;
use serde_json::Value;
use standin::{FaultAction, FaultRule, Options, Standin};

async fn get(s: &Standin, path: &str) -> (u16, Value) {
    let (code, _, body) = http(&s.url(), "GET", path, None).await;
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

fn seeded(watch_cache: bool) -> Options {
    let mut seed = vec![standin::seed::namespace("a", &[])];
    seed.extend((0..5).map(|i| standin::seed::deployment("a", &format!("d{i}"), 1)));
    Options {
        watch_cache,
        seed,
        ..Options::default()
    }
}

fn continue_of(list: &Value) -> Option<String> {
    list["metadata"]["continue"].as_str().map(str::to_string)
}

#[tokio::test]
async fn resource_version_0_is_one_whole_page_from_the_watch_cache() {
    let s = Standin::start_with(seeded(true)).await;
    let path = "/apis/apps/v1/deployments?limit=2&resourceVersion=0&resourceVersionMatch=NotOlderThan";
    let (code, list) = get(&s, path).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 5, "limit ignored: {list}");
    assert_eq!(continue_of(&list), None);
    // Without resourceVersion=0 the same limit pages.
    let (_, list) = get(&s, "/apis/apps/v1/deployments?limit=2").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(continue_of(&list).is_some());

    // With the watch cache off (--watch-cache=false) resourceVersion=0 pages too.
    s.set_watch_cache(false);
    let (_, list) = get(&s, path).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let token = continue_of(&list).expect("a next page");
    // The next page: the token alone (resourceVersion 0 beside it is allowed).
    let (code, next) = get(
        &s,
        &format!("/apis/apps/v1/deployments?limit=2&continue={token}&resourceVersion=0"),
    )
    .await;
    assert_eq!(code, 200, "{next}");
    assert_eq!(next["items"][0]["metadata"]["name"], "d2");
}

#[tokio::test]
async fn list_options_are_validated_as_the_apiserver_does() {
    let s = Standin::start_with(seeded(false)).await;
    let (_, list) = get(&s, "/apis/apps/v1/deployments?limit=2").await;
    let token = continue_of(&list).unwrap();
    let cases = [
        (
            "resourceVersionMatch=NotOlderThan".to_string(),
            422,
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            format!("limit=2&continue={token}&resourceVersion=0&resourceVersionMatch=NotOlderThan"),
            422,
            "resourceVersionMatch is forbidden when continue is provided",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Bogus".into(),
            422,
            "Unsupported value: \"Bogus\"",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact".into(),
            422,
            "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            format!("limit=2&continue={token}&resourceVersion=5"),
            400,
            "specifying resource version is not allowed when using continue",
        ),
        ("limit=2&continue=garbage".into(), 400, "invalid continue token"),
    ];
    for (query, want, message) in cases {
        let (code, status) = get(&s, &format!("/apis/apps/v1/deployments?{query}")).await;
        assert_eq!(code, want, "{query}: {status}");
        assert_eq!(status["kind"], "Status");
        assert!(
            status["message"].as_str().unwrap().contains(message),
            "{query}: {status}"
        );
    }
}

#[tokio::test]
async fn a_continue_token_older_than_the_compaction_is_410_expired() {
    let s = Standin::start_with(seeded(false)).await;
    let (_, first) = get(&s, "/apis/apps/v1/deployments?limit=2").await;
    let token = continue_of(&first).unwrap();
    // Compacting at the revision the token was made at expires nothing (as etcd).
    s.compact();
    let (code, _) = get(&s, &format!("/apis/apps/v1/deployments?limit=2&continue={token}")).await;
    assert_eq!(code, 200);

    s.add_deployment("a", "later", 1);
    s.compact();
    let (code, status) = get(&s, &format!("/apis/apps/v1/deployments?limit=2&continue={token}")).await;
    assert_eq!(code, 410, "{status}");
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["code"], 410);
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with("The provided continue parameter is too old"),
        "{message}"
    );
    // The Status offers a token that goes on at the latest revision (an inconsistent list).
    let resume = status["metadata"]["continue"].as_str().expect("a resume token");
    let (code, rest) = get(&s, &format!("/apis/apps/v1/deployments?limit=10&continue={resume}")).await;
    assert_eq!(code, 200, "{rest}");
    assert_eq!(rest["items"][0]["metadata"]["name"], "d2");

    // A fresh list works again.
    let (code, _) = get(&s, "/apis/apps/v1/deployments?limit=2").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn the_compact_fault_expires_the_token_of_the_page_before() {
    let s = Standin::start_with(seeded(false)).await;
    s.add_fault(
        FaultRule::new(FaultAction::Compact)
            .verb("list")
            .resource("deployments")
            .nth(2),
    );
    let (_, first) = get(&s, "/apis/apps/v1/deployments?limit=2").await;
    let token = continue_of(&first).unwrap();
    let (code, status) = get(&s, &format!("/apis/apps/v1/deployments?limit=2&continue={token}")).await;
    assert_eq!((code, status["reason"].as_str()), (410, Some("Expired")), "{status}");
    assert_eq!(s.fault_counts().compact, 1);
    // Started again, the list completes.
    let (_, first) = get(&s, "/apis/apps/v1/deployments?limit=2").await;
    let (code, _) = get(
        &s,
        &format!(
            "/apis/apps/v1/deployments?limit=2&continue={}",
            continue_of(&first).unwrap()
        ),
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn admin_surface_compacts_and_switches_the_watch_cache() {
    let s = Standin::start_with(seeded(true)).await;
    let (code, _, body) = http(&s.url(), "PUT", "/_standin/watch-cache", Some(r#"{"enabled":false}"#)).await;
    assert_eq!(code, 200, "{body}");
    let (_, list) = get(&s, "/apis/apps/v1/deployments?limit=2&resourceVersion=0").await;
    let token = continue_of(&list).expect("paged with the watch cache off");
    s.add_deployment("a", "later", 1);
    let (code, _, body) = http(&s.url(), "POST", "/_standin/compact", None).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = get(&s, &format!("/apis/apps/v1/deployments?limit=2&continue={token}")).await;
    assert_eq!(code, 410);
}

#[tokio::test]
async fn pods_are_listed_cluster_wide_like_any_kind() {
    let s = Standin::start_with(seeded(true)).await;
    let (code, list) = get(&s, "/api/v1/pods?limit=500").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["kind"], "PodList");
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "nothing creates Pods here"
    );
}
