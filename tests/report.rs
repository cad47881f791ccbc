//! `report` against DynamoDB Local, through the real binary, over a week of generated records
//! with hand-checked totals.

mod common;

use common::*;
use namespace_scheduler::audit::{AuditRecord, AuditStatus, AuditWriter, OperationType, ResourceChange};
use namespace_scheduler::report::iso_week_bounds;
use OperationType::*;

const WEEK: &str = "2025-W10"; // Mon 2025-03-03 to Mon 2025-03-10, America/Bogota (UTC-5, no DST)
const CLUSTER: &str = "eks-report";
const H: f64 = 3600.0;

fn week_start() -> f64 {
    iso_week_bounds(WEEK, chrono_tz::America::Bogota).unwrap().0.timestamp() as f64
}

/// A completed record whose operation finished `hours` after the week starts (local Monday 00:00).
fn at(ns: &str, cc: &str, hours: f64, op: OperationType) -> AuditRecord {
    let end = week_start() + hours * H;
    let mut r = sample_record(ns, end - 2.5, op);
    r.timestamp_end = end;
    r.duration_ms = 2500;
    r.cost_center = cc.to_string();
    r.cluster_name = CLUSTER.to_string();
    r.error = None;
    r
}

fn records() -> Vec<AuditRecord> {
    let mut v = vec![
        // dev-a: up since the Saturday before; down Monday 02:00 → 2 h (across the week start).
        at("dev-a", "IT-DEVELOPMENT", -38.0, Activate),
        at("dev-a", "IT-DEVELOPMENT", 2.0, Deactivate),
        // Business hours Monday 08:00-18:00 → 10 h.
        at("dev-a", "IT-DEVELOPMENT", 8.0, AutoStartupBusinessHours),
        at("dev-a", "IT-DEVELOPMENT", 18.0, AutoShutdownBusinessHours),
        // Tuesday 20:00 to Wednesday 01:30 → 5.5 h (across midnight).
        at("dev-a", "IT-DEVELOPMENT", 44.0, Activate),
        at("dev-a", "IT-DEVELOPMENT", 49.5, Deactivate),
        // After the week: ignored.
        at("dev-a", "IT-DEVELOPMENT", 170.0, Activate),
        // dev-d: repeated ups 30 h and 31 h, down 33 h → 3 h.
        at("dev-d", "IT-DEVELOPMENT", 30.0, Activate),
        at("dev-d", "IT-DEVELOPMENT", 31.0, Activate),
        at("dev-d", "IT-DEVELOPMENT", 33.0, Deactivate),
        // dev-e: a down without a prior up → nothing.
        at("dev-e", "IT-DEVELOPMENT", 20.0, Deactivate),
        // qa-b: Sunday 21:00 until after the week → 3 h (across the week end).
        at("qa-b", "QA-TESTING", 165.0, Activate),
        at("qa-b", "QA-TESTING", 174.0, Deactivate),
        // demo-c: activated two weeks earlier, never down → the whole week, 168 h.
        at("demo-c", "DEMO-SANDBOX", -300.0, Activate),
    ];
    // Not completed: ignored.
    for (hours, status) in [
        (10.0, AuditStatus::Failed),
        (12.0, AuditStatus::Rejected),
        (14.0, AuditStatus::RolledBack),
    ] {
        let mut r = at("qa-b", "QA-TESTING", hours, Activate);
        r.status = status;
        v.push(r);
    }
    // Another cluster: ignored.
    let mut other = at("dev-a", "IT-DEVELOPMENT", 100.0, Activate);
    other.cluster_name = "other-cluster".into();
    v.push(other);
    // Large records before the week, so the Query needs more than one 1 MB page.
    for i in 0..220 {
        let mut noise = at(&format!("noise-{i:03}"), "NOISE", -200.0 - i as f64, Deactivate);
        noise.resources = (0..60)
            .map(|j| ResourceChange {
                kind: "Deployment".into(),
                name: format!("workload-with-a-rather-long-name-{j:03}-{}", "x".repeat(40)),
                from: "3".into(),
                to: "0".into(),
                // Written before requests were recorded: their savings are unknown.
                cpu_millicores: None,
                memory_bytes: None,
            })
            .collect();
        v.push(noise);
    }
    v
}

async fn seeded() -> (DynamoHandle, String) {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let records = records();
    let written = AuditWriter::new(h.client.clone(), &audit)
        .write_all(&records)
        .await
        .unwrap();
    assert_eq!(written, records.len());
    (h, audit)
}

fn report(h: &DynamoHandle, audit: &str, output: &str, week: &str) -> (i32, String, String) {
    run(scheduler(h, audit, "unused-permissions")
        .env("EKS_CLUSTER_NAME", CLUSTER)
        .args(["report", "--week", week, "--output", output]))
}

#[tokio::test]
async fn weekly_report_has_hand_checked_totals() {
    let (h, audit) = seeded().await;
    let (code, out, err) = report(&h, &audit, "json", WEEK);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["start"], "2025-03-03T00:00:00-05:00");
    assert_eq!(v["end"], "2025-03-10T00:00:00-05:00");
    assert_eq!(v["partial"], false);
    assert!(v["records_read"].as_u64().unwrap() > 230, "{v}");

    let namespaces: Vec<(String, String, f64)> = v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["namespace"].as_str().unwrap().to_string(),
                n["cost_center"].as_str().unwrap().to_string(),
                n["hours"].as_f64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("demo-c", "DEMO-SANDBOX", 168.0),
        ("dev-a", "IT-DEVELOPMENT", 17.5),
        ("dev-d", "IT-DEVELOPMENT", 3.0),
        ("qa-b", "QA-TESTING", 3.0),
    ];
    assert_eq!(
        namespaces,
        want.iter()
            .map(|(n, c, h)| (n.to_string(), c.to_string(), *h))
            .collect::<Vec<_>>()
    );
    let per_cc: Vec<(String, f64)> = v["cost_centers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cost_center"].as_str().unwrap().to_string(),
                c["hours"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_cc,
        [
            ("DEMO-SANDBOX".to_string(), 168.0),
            ("IT-DEVELOPMENT".to_string(), 20.5),
            ("QA-TESTING".to_string(), 3.0)
        ]
    );
    assert_eq!(v["total_hours"], 191.5);

    let (code, csv, err) = report(&h, &audit, "csv", WEEK);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "scope,namespace,cost_center,hours");
    assert!(lines.contains(&"namespace,dev-a,IT-DEVELOPMENT,17.50"), "{csv}");
    assert!(lines.contains(&"cost_center,,IT-DEVELOPMENT,20.50"), "{csv}");
    assert_eq!(*lines.last().unwrap(), "total,,,191.50");

    let (code, text, err) = report(&h, &audit, "text", WEEK);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("dev-a") && text.contains("17.50") && text.contains("191.50"),
        "{text}"
    );

    // The week before: dev-a from Saturday 10:00 (-38 h) to the end (0 h) = 38 h; demo-c from
    // -300 h → 168 h; the noise records are all downs.
    let (code, out, err) = report(&h, &audit, "json", "2025-W09");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_hours"], 206.0, "{v}");
}

#[tokio::test]
async fn a_bad_week_is_a_usage_error() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    for week in ["2025-W54", "2025-10", "last-week"] {
        let (code, _, err) = report(&h, &audit, "json", week);
        assert_eq!(code, 2, "{week}: {err}");
        assert!(err.contains("--week") && err.contains(week), "{err}");
    }
}

#[tokio::test]
async fn an_unreadable_audit_table_fails_with_exit_1() {
    let h = dynamo().await;
    let (code, _, err) = report(&h, &unique_name("no-such-table"), "json", WEEK);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ResourceNotFoundException"), "{err}");
}

#[tokio::test]
async fn an_empty_week_totals_zero() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let (code, out, err) = report(&h, &audit, "json", WEEK);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(": -0.0"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_hours"], 0.0);
    assert_eq!(v["namespaces"], serde_json::json!([]));
}
