//! `history` against DynamoDB Local, through the real binary: the audit records of two clusters
//! read back by each filter (each from the table's key or its GSI), across every page, with
//! the write-ahead statuses, in text, JSON and CSV; a record that does not read is named and
//! the listing goes on.

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use namespace_scheduler::audit::{AuditRecord, AuditWriter, OperationType, ResourceChange};
use serde_json::Value;
use OperationType::*;

/// Epoch seconds `hours` ago.
fn ago(hours: f64) -> f64 {
    (chrono::Utc::now().timestamp_millis() as f64 / 1000.0 - hours * 3600.0).floor()
}

fn at(cluster: &str, ns: &str, cc: &str, by: &str, hours_ago: f64, op: OperationType) -> AuditRecord {
    let mut r = sample_record(ns, ago(hours_ago), op);
    r.cluster_name = cluster.into();
    r.cost_center = cc.into();
    r.requested_by = by.into();
    r.error = None;
    r
}

/// (eks-a, eks-b) records over the last days, a namespace with records large enough to need
/// several pages, the write-ahead statuses, and one record that does not read.
async fn seeded() -> (DynamoHandle, String) {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let mut records = vec![
        at("eks-a", "dev-api", "IT-DEVELOPMENT", "ana", 50.0, Activate),
        at(
            "eks-a",
            "dev-api",
            "IT-DEVELOPMENT",
            "system",
            49.0,
            AutoShutdownBusinessHours,
        ),
        at("eks-b", "dev-api", "IT-DEVELOPMENT", "bob", 30.0, Activate),
        at(
            "eks-b",
            "qa-e2e",
            "QA-TESTING",
            "system",
            29.0,
            AutoStartupBusinessHours,
        ),
        at("eks-a", "qa-e2e", "QA-TESTING", "ana", 5.0, Deactivate),
        // Older than the default week.
        at("eks-a", "dev-api", "IT-DEVELOPMENT", "ana", 24.0 * 9.0, Activate),
    ];
    let mut rejected = at("eks-b", "demo-x", "DEMO-SANDBOX", "carla", 2.0, Activate);
    rejected.status = namespace_scheduler::audit::AuditStatus::Rejected;
    rejected.error = Some("cost_center_cap: 3 of 3 windows of DEMO-SANDBOX, with, commas".into());
    records.push(rejected);
    // 150 large records of one namespace on eks-b: more than one 1 MB page in every partition.
    for i in 0..150 {
        let mut r = at(
            "eks-b",
            "big",
            "NOISE",
            "system",
            100.0 + i as f64 * 0.1,
            AutoShutdownBusinessHours,
        );
        r.resources = (0..60)
            .map(|j| ResourceChange::changed("Deployment", &format!("w-{j:03}-{}", "x".repeat(80)), "3", "0", None))
            .collect();
        records.push(r);
    }
    let written = write_records(&AuditWriter::new(h.client.clone(), &audit), &records)
        .await
        .unwrap();
    assert_eq!(written, records.len());
    // What the write-ahead audit writes: an intent, and one a later run closed; and a record
    // that does not read (a number where the status is a string).
    for (ns, hours, status) in [
        ("dev-wal", 3.0, AttributeValue::S("in_progress".into())),
        ("dev-wal", 4.0, AttributeValue::S("interrupted".into())),
        ("dev-bad", 6.0, AttributeValue::N("42".into())),
    ] {
        let mut item = at("eks-a", ns, "IT-DEVELOPMENT", "ana", hours, Activate).to_item();
        item.insert("status".into(), status);
        h.client
            .put_item()
            .table_name(&audit)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    (h, audit)
}

fn history(h: &DynamoHandle, audit: &str, args: &[&str]) -> (i32, String, String) {
    run(scheduler(h, audit, "unused-permissions")
        .env("EKS_CLUSTER_NAME", "eks-a")
        .arg("history")
        .args(args))
}

fn json(h: &DynamoHandle, audit: &str, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = history(h, audit, &all);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// (cluster, namespace, operation, status) of each record, as listed (oldest first).
fn rows(v: &Value) -> Vec<(String, String, String, String)> {
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("cluster"), s("namespace"), s("operation"), s("status"))
        })
        .collect()
}

fn row(cluster: &str, ns: &str, op: &str, status: &str) -> (String, String, String, String) {
    (cluster.into(), ns.into(), op.into(), status.into())
}

#[tokio::test]
async fn each_filter_reads_its_partition_across_both_clusters() {
    let (h, audit) = seeded().await;

    let v = json(&h, &audit, &["--cost-center", "IT-DEVELOPMENT"]);
    assert_eq!(
        v["queries"],
        serde_json::json!(["cost_center = IT-DEVELOPMENT (cost-center-timestamp-index)"])
    );
    assert_eq!(
        rows(&v),
        [
            row("eks-a", "dev-api", "activate", "completed"),
            row("eks-a", "dev-api", "auto_shutdown_business_hours", "completed"),
            row("eks-b", "dev-api", "activate", "completed"),
            row("eks-a", "dev-wal", "activate", "interrupted"),
            row("eks-a", "dev-wal", "activate", "in_progress"),
        ]
    );
    // The record that does not read is named, not listed, and the listing goes on.
    let bad = &v["unreadable"][0];
    assert_eq!(bad["namespace_name"], "dev-bad");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .contains("status: the number 42 (expected a string, S)"),
        "{bad}"
    );
    let (code, _, err) = history(&h, &audit, &["--cost-center", "IT-DEVELOPMENT"]);
    assert_eq!(code, 0);
    assert!(
        err.contains("unreadable audit record namespace_name=\"dev-bad\""),
        "{err}"
    );

    let v = json(&h, &audit, &["--namespace", "dev-api"]);
    assert_eq!(v["queries"][0], "namespace_name = dev-api (the table)");
    assert_eq!(rows(&v).len(), 3, "both clusters' dev-api");
    let v = json(&h, &audit, &["--namespace", "dev-api", "--cluster", "eks-b"]);
    assert_eq!(rows(&v), [row("eks-b", "dev-api", "activate", "completed")]);

    let v = json(&h, &audit, &["--requested-by", "ana"]);
    assert_eq!(v["queries"][0], "requested_by = ana (requested-by-timestamp-index)");
    assert_eq!(rows(&v).len(), 4, "{v}"); // dev-api, dev-wal ×2, qa-e2e (dev-bad does not read)

    let v = json(&h, &audit, &["--operation", "activate", "--cluster", "eks-b"]);
    assert_eq!(v["queries"][0], "cluster_name = eks-b (cluster-timestamp-index)");
    assert_eq!(
        rows(&v),
        [
            row("eks-b", "dev-api", "activate", "completed"),
            row("eks-b", "demo-x", "activate", "rejected")
        ]
    );

    let v = json(&h, &audit, &["--cluster", "eks-a", "--requested-by", "system"]);
    assert_eq!(v["queries"][0], "cluster_name = eks-a (cluster-timestamp-index)");
    assert_eq!(
        rows(&v),
        [row("eks-a", "dev-api", "auto_shutdown_business_hours", "completed")]
    );

    // A range: the record nine days ago only with --since before it.
    let v = json(
        &h,
        &audit,
        &["--namespace", "dev-api", "--since", "2000-01-01T00:00:00Z"],
    );
    assert_eq!(rows(&v).len(), 4);
    let until = chrono::DateTime::from_timestamp(ago(40.0) as i64, 0)
        .unwrap()
        .to_rfc3339();
    let v = json(&h, &audit, &["--namespace", "dev-api", "--until", &until]);
    assert_eq!(rows(&v).len(), 2, "the week before {until}: {v}");
}

#[tokio::test]
async fn every_page_of_every_partition_is_read() {
    let (h, audit) = seeded().await;
    // No filter: one Query per operation type, merged, oldest first.
    let v = json(&h, &audit, &[]);
    assert_eq!(v["queries"].as_array().unwrap().len(), 4);
    assert!(
        v["pages"].as_u64().unwrap() >= 5,
        "one partition needs two pages or more: {}",
        v["pages"]
    );
    let all = rows(&v);
    assert_eq!(all.len(), 150 + 6 + 2, "{}", all.len());
    let times: Vec<f64> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["timestamp_start"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    // The big namespace's partition needs several pages too.
    for filter in [
        ["--namespace", "big"],
        ["--cost-center", "NOISE"],
        ["--requested-by", "system"],
    ] {
        let v = json(&h, &audit, &filter);
        assert!(v["pages"].as_u64().unwrap() >= 2, "{filter:?}: {}", v["pages"]);
        assert_eq!(
            rows(&v).len(),
            150 + usize::from(filter[0] == "--requested-by") * 2,
            "{filter:?}"
        );
    }
}

#[tokio::test]
async fn text_and_csv() {
    let (h, audit) = seeded().await;
    let (code, text, err) = history(&h, &audit, &["--cluster", "eks-b", "--operation", "activate"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("cluster eks-b: 2 record(s)"), "{text}");
    assert!(
        lines[2].starts_with("TIME") && lines[2].contains("REQUESTED BY"),
        "{text}"
    );
    assert!(
        lines[4].contains("demo-x") && lines[4].contains("rejected") && lines[4].contains("carla"),
        "{text}"
    );

    let (code, csv, err) = history(
        &h,
        &audit,
        &["--cluster", "eks-b", "--operation", "activate", "--output", "csv"],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "time,timestamp_start,cluster,namespace,cost_center,operation,status,requested_by,active_until,run_id,duration_ms,error"
    );
    assert_eq!(lines.len(), 3);
    assert!(
        lines[2].ends_with(",1250,\"cost_center_cap: 3 of 3 windows of DEMO-SANDBOX, with, commas\""),
        "{}",
        lines[2]
    );
}

#[tokio::test]
async fn bad_flags_are_exit_2_and_an_unreadable_table_exit_1() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    for (args, names) in [
        (vec!["--operation", "reboot"], "reboot"),
        (vec!["--namespace", "Not_A_Namespace"], "--namespace"),
        (vec!["--since", "yesterday"], "yesterday"),
        (
            vec!["--since", "2026-02-01T00:00:00Z", "--until", "2026-01-01T00:00:00Z"],
            "--since",
        ),
    ] {
        let (code, out, err) = history(&h, &audit, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(names), "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
    }
    let (code, _, err) = history(&h, &unique_name("no-such-table"), &["--namespace", "dev-a"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ResourceNotFoundException"), "{err}");
}
