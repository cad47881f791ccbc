//! Per-namespace schedules through the binary: each namespace decided by its own hours, and a
//! schedule that does not parse leaving its namespace exactly as it is (skipped, named, a
//! Warning Event) without changing anything else or the exit code.

use kube::core::Request;
use serde_json::Value;

use crate::harness::*;

const SCHEDULE: &str = "namespace-scheduler/schedule";
const MADRID: &str = "Mon-Fri 08:00-18:00 Europe/Madrid holidays=ES";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn madrid_and_bogota_namespaces_follow_their_own_hours() {
    let c = Cluster::start().await;
    let madrid = c.namespace("madrid", &[]).await;
    c.patch(
        "Namespace",
        None,
        &madrid,
        serde_json::json!({"metadata": {"annotations": {SCHEDULE: MADRID}}}),
    )
    .await;
    c.deployment(&madrid, "api", 3).await;
    let bogota = c.namespace("bogota", &[]).await;
    c.deployment(&bogota, "api", 2).await;

    // Tue 2026-11-24 10:00 Madrid = 04:00 Bogotá: Madrid up, Bogotá down.
    let (code, s, err) = c.run_json("2026-11-24T10:00:00+01:00", &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(c.replicas("Deployment", &madrid, "api").await, 3);
    assert_eq!(c.replicas("Deployment", &bogota, "api").await, 0);
    assert_eq!(find_row(&s, &bogota).unwrap()["schedule"], "cluster", "{s}");

    // 18:00 Madrid = 12:00 Bogotá: the reverse.
    let (code, s, err) = c.run_json("2026-11-24T18:00:00+01:00", &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(c.replicas("Deployment", &madrid, "api").await, 0);
    assert_eq!(c.replicas("Deployment", &bogota, "api").await, 2);
    let r = find_row(&s, &madrid).unwrap();
    assert_eq!(r["action"], "down", "{r}");
    assert!(r["schedule"].as_str().unwrap().contains("Europe/Madrid"), "{r}");

    // The decision agrees with `check --schedule` at the same instant, offline.
    let (code, out, err) = c
        .run(&[
            "--output",
            "json",
            "check",
            "--schedule",
            MADRID,
            "--at",
            "2026-11-24T18:00:00+01:00",
        ])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let check: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(check["business_hours"], false, "{check}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_that_does_not_parse_leaves_its_namespace_exactly_as_it_is() {
    let c = Cluster::start().await;
    let bad = [
        ("hour", "Mon-Fri 08:00-25:00 America/Bogota", "25:00"),
        ("zone", "Mon-Fri 08:00-18:00 Mars/Olympus", "Mars/Olympus"),
        ("day", "Mon-Fry 08:00-18:00 America/Bogota", "Fry"),
        ("country", "Mon-Fri 08:00-18:00 America/Bogota holidays=ZZ", "ZZ"),
    ];
    let mut broken = Vec::new();
    for (short, schedule, part) in bad {
        let ns = c.namespace(&format!("bad-{short}"), &[]).await;
        c.patch(
            "Namespace",
            None,
            &ns,
            serde_json::json!({"metadata": {"annotations": {SCHEDULE: schedule}}}),
        )
        .await;
        c.deployment(&ns, "api", 2).await;
        broken.push((ns, part));
    }
    let fine = c.namespace("fine", &[]).await;
    c.deployment(&fine, "api", 2).await;
    let before: Vec<_> = futures::future::join_all(broken.iter().map(|(ns, _)| c.snapshot(ns))).await;

    let (code, s, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "bad schedules do not change the exit code: {s}\n{err}");
    assert_eq!(
        c.replicas("Deployment", &fine, "api").await,
        0,
        "every other namespace is processed"
    );
    for ((ns, part), before) in broken.iter().zip(before) {
        assert_eq!(c.snapshot(ns).await, before, "{ns} untouched");
        let r = find_row(&s, ns).unwrap_or_else(|| panic!("{ns} listed: {s}"));
        assert_eq!(r["status"], "skipped", "{r}");
        assert!(r["error"].as_str().unwrap().contains(part), "{ns}: names {part}: {r}");
        let req = Request::new(format!("/api/v1/namespaces/{ns}/events"))
            .list(&Default::default())
            .unwrap();
        let events: Value = c.client.request(req).await.unwrap();
        let warning = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["reason"] == "Skipped")
            .unwrap_or_else(|| panic!("{ns}: a Warning Event: {events}"));
        assert_eq!(warning["type"], "Warning");
        assert!(warning["message"].as_str().unwrap().contains(part), "{warning}");
    }
}
