//! The `/_standin/` admin surface and the `kube-standin` binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::http;
use serde_json::{json, Value};
use standin::Standin;

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn admin_objects_faults_requests_stats() {
    let s = Standin::start().await;
    let u = s.url();
    let seed = json!([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns1"}},
        standin::seed::deployment("ns1", "web", 3),
    ]);
    let (code, _, body) = http(&u, "POST", "/_standin/objects", Some(&seed.to_string())).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body).as_array().unwrap().len(), 2);
    let (code, _, body) = http(
        &u,
        "GET",
        "/_standin/objects?apiVersion=apps/v1&kind=Deployment&namespace=ns1&name=web",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(parse(&body)["spec"]["replicas"], 3);
    let (_, _, body) = http(&u, "GET", "/_standin/objects?apiVersion=apps%2Fv1&kind=deploy", None).await;
    assert_eq!(parse(&body).as_array().unwrap().len(), 1);
    let (code, _, body) = http(
        &u,
        "PATCH",
        "/_standin/objects?apiVersion=apps/v1&kind=Deployment&namespace=ns1&name=web",
        Some(r#"{"spec":{"replicas":9}}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(s.replicas("deploy", "ns1", "web"), Some(9));
    assert_eq!(s.request_count(), 0, "admin requests are not recorded");

    let rule = r#"{"verb":"get","resource":"deployments","times":1,"action":{"type":"status","code":503}}"#;
    let (code, _, body) = http(&u, "POST", "/_standin/faults", Some(rule)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(parse(&body)["ids"].as_array().unwrap().len(), 1);
    let (code, _, _) = http(&u, "GET", "/apis/apps/v1/namespaces/ns1/deployments/web", None).await;
    assert_eq!(code, 503);
    let (code, _, _) = http(&u, "GET", "/apis/apps/v1/namespaces/ns1/deployments/web", None).await;
    assert_eq!(code, 200);
    let (_, _, body) = http(&u, "GET", "/_standin/faults", None).await;
    assert_eq!(parse(&body)[0]["fired"], 1);
    let (_, _, body) = http(&u, "POST", "/_standin/faults", Some(r#"{"action":{"type":"drop"}}"#)).await;
    assert_eq!(parse(&body)["ids"][0], 2);
    let (code, head, body) = http(&u, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(
        (code, head.as_str(), body.as_str()),
        (0, "", ""),
        "dropped: no bytes at all"
    );
    let (code, _, _) = http(&u, "DELETE", "/_standin/faults", None).await;
    assert_eq!(code, 200);
    let (code, _, _) = http(&u, "POST", "/_standin/faults", Some(r#"{"action":{"type":"explode"}}"#)).await;
    assert_eq!(code, 400);

    let (_, _, body) = http(&u, "GET", "/_standin/requests", None).await;
    let reqs = parse(&body);
    assert_eq!(reqs.as_array().unwrap().len(), 3);
    assert_eq!(reqs[0]["status"], 503);
    assert_eq!(reqs[2]["status"], Value::Null);
    let (_, _, body) = http(&u, "GET", "/_standin/stats", None).await;
    let stats = parse(&body);
    assert_eq!(stats["requests"], 3);
    assert_eq!(stats["byVerb"]["get"], 2);
    assert_eq!(stats["faults"]["status"]["503"], 1);
    assert_eq!(stats["faults"]["drop"], 1);
    let (code, _, _) = http(&u, "DELETE", "/_standin/requests", None).await;
    assert_eq!(code, 200);
    assert_eq!(s.request_count(), 0);

    let (code, _, _) = http(&u, "PUT", "/_standin/latency", Some(r#"{"ms":5}"#)).await;
    assert_eq!(code, 200);
    let (_, _, body) = http(&u, "GET", "/_standin/stats", None).await;
    assert_eq!(parse(&body)["latencyMs"], 5);
    let (code, _, _) = http(
        &u,
        "DELETE",
        "/_standin/objects?apiVersion=apps/v1&kind=Deployment&namespace=ns1&name=web",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert!(s.get("apps/v1", "Deployment", Some("ns1"), "web").is_none());
    let (code, _, _) = http(&u, "GET", "/_standin/nope", None).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn binary_serves_demo_seed_and_writes_kubeconfig() {
    let dir = std::env::temp_dir().join(format!("standin-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-standin"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "demo",
            "--latency-ms",
            "1",
            "--kubeconfig-out",
        ])
        .arg(&kc)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let kubeconfig = std::fs::read_to_string(&kc).unwrap();
    assert!(kubeconfig.contains(&url));
    let (code, _, body) = http(
        &url,
        "GET",
        "/api/v1/namespaces?labelSelector=namespace-scheduler%2Fcost-center",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let names: Vec<String> = parse(&body)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    assert!(names.contains(&"dev-payments".to_string()));
    let (_, _, body) = http(&url, "GET", "/apis/apps/v1/deployments", None).await;
    let deps = parse(&body);
    let items = deps["items"].as_array().unwrap();
    assert!(items.iter().any(|d| d["spec"]["replicas"] == 0));
    assert!(items.iter().any(|d| d["spec"]["replicas"] == 7));
    assert!(items
        .iter()
        .any(|d| d["metadata"]["annotations"]["namespace-scheduler/exclude"] == "true"));
    assert!(items
        .iter()
        .any(|d| d["metadata"]["ownerReferences"][0]["controller"] == true));
    let (_, _, body) = http(&url, "GET", "/apis/batch/v1/cronjobs", None).await;
    assert!(parse(&body)["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["spec"]["suspend"] == true));
    // SIGTERM ends it
    Command::new("kill").arg(child.id().to_string()).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn seed_file_yaml_multi_document() {
    let docs = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: a}\nspec: {replicas: 4}\n";
    let objs = standin::seed::parse_seed(docs).unwrap();
    let s = Standin::start_with(standin::Options {
        seed: objs,
        ..Default::default()
    })
    .await;
    assert_eq!(s.replicas("Deployment", "a", "d"), Some(4));
    let list = standin::seed::parse_seed(
        r#"{"kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}]}"#,
    )
    .unwrap();
    assert_eq!(list.len(), 1);
}

#[test]
fn start_in_thread_serves_blocking_callers() {
    use std::io::{Read, Write};
    let s = Standin::start_in_thread(standin::Options::default()).unwrap();
    s.add_namespace("ns1", &[]);
    let mut tcp = std::net::TcpStream::connect(s.addr()).unwrap();
    write!(
        tcp,
        "GET /api/v1/namespaces/ns1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"name\":\"ns1\""));
    assert_eq!(s.count("get", "namespaces"), 1);
    let addr = s.addr();
    drop(s);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(std::net::TcpStream::connect(addr).is_err(), "stopped on drop");
}

#[tokio::test]
async fn each_request_records_how_long_it_took_and_stats_add_them_up() {
    let s = Standin::start().await;
    s.add_namespace("a", &[]);
    s.set_latency(std::time::Duration::from_millis(20));
    for _ in 0..2 {
        let (code, _, _) = http(&s.url(), "GET", "/api/v1/namespaces/a", None).await;
        assert_eq!(code, 200);
    }
    let records = s.requests();
    assert!(records.iter().all(|r| r.duration_us >= 20_000), "{records:?}");
    let (_, _, body) = http(&s.url(), "GET", "/_standin/stats", None).await;
    let stats: Value = serde_json::from_str(&body).unwrap();
    let busy = stats["busyUs"].as_u64().unwrap();
    assert_eq!(busy, records.iter().map(|r| r.duration_us).sum::<u64>());
    assert!(busy >= 40_000, "{stats}");
}
