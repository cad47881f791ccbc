//! What a night saves, through the binary: the plan frees exactly what the pods request (the
//! effective pod request: max of the containers' sum and the largest init container), and the
//! weekly report turns a measured down-then-up interval into vCPU-hours and money.

use std::time::{Duration, Instant};

use chrono::Datelike;
use serde_json::{json, Value};

use crate::harness::*;

fn container(name: &str, cpu: &str, memory: &str) -> Value {
    json!({"name": name, "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": memory}}})
}

/// A Deployment of 3 × (250m + 250m, an 800m init container) and a StatefulSet of
/// 2 × (1 vCPU, 2Gi): 3 × 0.8 + 2 × 1 = 4.4 vCPU and 3 × 0.5 + 2 × 2 = 5.5 GiB; plus a
/// Deployment without requests, which frees 0 and is listed.
async fn priced_namespace(c: &Cluster) -> String {
    let ns = c.namespace("priced", &[]).await;
    let mut web = standin::seed::deployment(&ns, "web", 3);
    web["spec"]["template"]["spec"]["containers"] =
        json!([container("app", "250m", "256Mi"), container("sidecar", "250m", "256Mi")]);
    web["spec"]["template"]["spec"]["initContainers"] = json!([container("migrate", "800m", "128Mi")]);
    c.create(web).await;
    let mut db = standin::seed::statefulset(&ns, "db", 2);
    db["spec"]["template"]["spec"]["containers"] = json!([container("postgres", "1", "2Gi")]);
    c.create(db).await;
    c.deployment(&ns, "bare", 1).await;
    ns
}

fn close(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_frees_what_the_pods_request_and_the_report_prices_it() {
    let c = Cluster::start().await;
    let ns = priced_namespace(&c).await;

    // The plan: exactly 4.4 vCPU and 5.5 GiB, and the workload without requests listed.
    let (code, out, err) = c
        .run(&["--dry-run", "--output", "json", "run", "--at", OFF_HOURS])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let plan: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(plan["frees"]["cpu_millicores"], 4400, "{plan}");
    assert_eq!(plan["frees"]["memory_bytes"], 5 * (1u64 << 30) + (1u64 << 29), "{plan}");
    let p = &plan["namespaces"][0];
    assert_eq!(p["frees"]["vcpu"], 4.4, "{p}");
    assert_eq!(p["frees"]["gib"], 5.5, "{p}");
    let gaps: Vec<&str> = p["without_requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(gaps, ["bare"], "{p}");

    // Down, a measured interval, up: the report says 4.4 × the interval in vCPU-hours.
    let (code, s, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(s["freed"]["cpu_millicores"], 4400, "{s}");
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (code, s, err) = c.run_json(BUSINESS, &[]).await;
    let measured = down_at.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(s["restored"]["cpu_millicores"], 4400, "{s}");

    // The interval as the audit records it: from the down's end to the up's end.
    let records: Vec<_> = c.audit().await.into_iter().filter(|r| r.namespace_name == ns).collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let interval = records[1].timestamp_end - records[0].timestamp_end;
    assert!(
        close(interval, measured, 1.5),
        "audited {interval} s, measured {measured} s"
    );

    let today = chrono::Utc::now().with_timezone(&chrono_tz::America::Bogota).iso_week();
    let week = format!("{}-W{:02}", today.year(), today.week());
    let (code, out, err) = c.run(&["--output", "json", "report", "--week", &week]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let row = report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["namespace"] == ns.as_str())
        .unwrap_or_else(|| panic!("{ns} not in {report}"));
    let hours = interval / 3600.0;
    let vcpu_hours = row["vcpu_hours_saved"].as_f64().unwrap();
    let gib_hours = row["gib_hours_saved"].as_f64().unwrap();
    // The report rounds to 4 decimals.
    assert!(
        close(vcpu_hours, 4.4 * hours, 1e-4),
        "{vcpu_hours} vs 4.4 × {hours} h: {row}"
    );
    assert!(
        close(gib_hours, 5.5 * hours, 1e-4),
        "{gib_hours} vs 5.5 × {hours} h: {row}"
    );
    let saved = row["saved"].as_f64().unwrap();
    let want = 4.4 * hours * 0.04048 + 5.5 * hours * 0.004445;
    assert!(close(saved, want, 1e-4), "{saved} vs {want}: {row}");
    assert_eq!(row["savings"], "known", "{row}");
}
