//! `report` against DynamoDB Local, through the real binary, over a week of generated records
//! with hand-checked totals: active hours, hours down and their savings (docs/reference.md §8).

mod common;

use common::*;
use namespace_scheduler::audit::{AuditRecord, AuditStatus, AuditWriter, OperationType, ResourceChange};
use namespace_scheduler::report::iso_week_bounds;
use OperationType::*;

const CLUSTER: &str = "eks-report";
const H: f64 = 3600.0;
const BOGOTA: chrono_tz::Tz = chrono_tz::America::Bogota; // UTC-5, no DST

/// The ISO week (in Bogota) of `days` days ago.
fn iso_week_of(days_ago: i64) -> String {
    use chrono::Datelike;
    let day = (chrono::Utc::now() - chrono::Duration::days(days_ago))
        .with_timezone(&BOGOTA)
        .date_naive();
    let w = day.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// A past week, recent enough that no record is older than the audit TTL (400 days): DynamoDB
/// Local's TTL sweeper deletes expired items, so a fixed week stops working a year later.
fn week() -> String {
    iso_week_of(21)
}

fn previous_week() -> String {
    iso_week_of(28)
}

fn week_start() -> f64 {
    iso_week_bounds(&week(), BOGOTA).unwrap().0.timestamp() as f64
}

/// Local midnight `hours` after the week starts, as the report prints it.
fn local(hours: f64) -> String {
    use chrono::TimeZone;
    let t = chrono::Utc.timestamp_opt((week_start() + hours * H) as i64, 0).unwrap();
    t.with_timezone(&BOGOTA)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const MI: u64 = 1 << 20;

/// A completed record whose operation finished `hours` after the week starts (local Monday 00:00).
/// Every namespace is the same: api 3 × (800m, 512Mi), db 2 × (1 vCPU, 2Gi) and a CronJob, so a
/// down frees 4.4 vCPU and 5.5 GiB.
fn at(ns: &str, cc: &str, hours: f64, op: OperationType) -> AuditRecord {
    let end = week_start() + hours * H;
    let mut r = sample_record(ns, end - 2.5, op);
    r.timestamp_end = end;
    r.duration_ms = 2500;
    r.cost_center = cc.to_string();
    r.cluster_name = CLUSTER.to_string();
    r.error = None;
    let ((on, off), (cron_on, cron_off)) = if op.activates() {
        (("0", "3"), ("suspend=true", "suspend=false"))
    } else {
        (("3", "0"), ("suspend=false", "suspend=true"))
    };
    let db = if op.activates() { ("0", "2") } else { ("2", "0") };
    r.resources = vec![
        ResourceChange::changed("Deployment", "api", on, off, Some((800, 512 * MI))),
        ResourceChange::changed("StatefulSet", "db", db.0, db.1, Some((1000, 2048 * MI))),
        ResourceChange::changed("CronJob", "nightly", cron_on, cron_off, None),
    ];
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
                skipped: None,
                // Written before requests were recorded: their savings are unknown.
                cpu_millicores: None,
                memory_bytes: None,
                found: None,
                reached: None,
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
    let written = write_records(&AuditWriter::new(h.client.clone(), &audit), &records)
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
    let (code, out, err) = report(&h, &audit, "json", &week());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["start"], local(0.0));
    assert!(
        v["start"].as_str().unwrap().ends_with("T00:00:00-05:00"),
        "{}",
        v["start"]
    );
    assert_eq!(v["end"], local(168.0));
    assert_eq!(v["partial"], false);
    // Every completed record of this cluster up to the week's end: 238 written, 3 not completed,
    // 1 of another cluster, 2 after the week.
    assert_eq!(v["records_read"], 232);

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
        // Down all week after 20 h, never active.
        ("dev-e", "IT-DEVELOPMENT", 0.0),
    ];
    assert_eq!(
        namespaces[..4],
        want.iter()
            .map(|(n, c, h)| (n.to_string(), c.to_string(), *h))
            .collect::<Vec<_>>()
    );
    // The 220 noise namespaces, down since before the week, then qa-b.
    assert_eq!(namespaces.len(), 4 + 220 + 1, "{v}");
    assert_eq!(namespaces[224], ("qa-b".to_string(), "QA-TESTING".to_string(), 3.0));

    // Hours down and savings, by hand. dev-a: down 2-8, 18-44 and 49.5 to the end (its next up
    // at 170 h is after the week) = 150.5 h; dev-d: 33 h to the end = 135 h; dev-e: 20 h to the
    // end = 148 h. Each hour down saves 4.4 vCPU-hours and 5.5 GiB-hours.
    let row = |ns: &str| {
        v["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["namespace"] == ns)
            .unwrap_or_else(|| panic!("no row for {ns}: {v}"))
            .clone()
    };
    for (ns, down) in [("dev-a", 150.5), ("dev-d", 135.0), ("dev-e", 148.0)] {
        let r = row(ns);
        assert_eq!(r["hours_down"], down, "{ns}: {r}");
        assert_eq!(r["savings"], "known", "{ns}: {r}");
        assert_eq!(r["vcpu_hours_saved"], round4(4.4 * down), "{ns}: {r}");
        assert_eq!(r["gib_hours_saved"], round4(5.5 * down), "{ns}: {r}");
        assert_eq!(
            r["saved"],
            round4(4.4 * down * 0.04048 + 5.5 * down * 0.004445),
            "{ns}: {r}"
        );
    }
    let dev_a = row("dev-a");
    assert_eq!(
        dev_a["hours"].as_f64().unwrap() + dev_a["hours_down"].as_f64().unwrap(),
        168.0
    );
    for ns in ["demo-c", "qa-b"] {
        assert_eq!(row(ns)["hours_down"], 0.0, "{ns}");
        assert_eq!(row(ns)["vcpu_hours_saved"], 0.0, "{ns}");
    }
    // Records written before requests were: hours, and savings unknown (null, not 0).
    let noise = row("noise-007");
    assert_eq!(noise["hours_down"], 168.0);
    assert_eq!(noise["savings"], "unknown");
    assert_eq!(noise["vcpu_hours_saved"], serde_json::Value::Null);
    assert_eq!(noise["saved"], serde_json::Value::Null);
    assert_eq!(noise["hours_down_savings_unknown"], 168.0);
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
            ("NOISE".to_string(), 0.0),
            ("QA-TESTING".to_string(), 3.0)
        ]
    );
    assert_eq!(v["total_hours"], 191.5);
    // IT-DEVELOPMENT: 433.5 h down; the noise: 220 × 168 h, unknown; the total is a lower bound.
    let it = &v["cost_centers"][1];
    assert_eq!(
        (it["hours_down"].as_f64(), it["namespaces"].as_u64()),
        (Some(433.5), Some(3))
    );
    assert_eq!(it["vcpu_hours_saved"], 1907.4);
    assert_eq!(it["gib_hours_saved"], 2384.25);
    assert_eq!(it["saved"], round4(1907.4 * 0.04048 + 2384.25 * 0.004445));
    assert_eq!(v["cost_centers"][2]["savings"], "unknown");
    let totals = &v["totals"];
    assert_eq!(totals["hours"], 191.5);
    assert_eq!(totals["hours_down"], 433.5 + 220.0 * 168.0);
    assert_eq!(totals["savings"], "partial");
    assert_eq!(totals["vcpu_hours_saved"], 1907.4);
    assert_eq!(
        v["prices"],
        serde_json::json!({"per_vcpu_hour": 0.04048, "per_gib_hour": 0.004445})
    );

    let (code, csv, err) = report(&h, &audit, "csv", &week());
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "scope,namespace,cost_center,hours,hours_down,vcpu_hours_saved,gib_hours_saved,saved,savings"
    );
    assert!(
        lines.contains(&"namespace,dev-a,IT-DEVELOPMENT,17.50,150.50,662.2000,827.7500,30.4852,known"),
        "{csv}"
    );
    assert!(
        lines.contains(&"namespace,noise-007,NOISE,0.00,168.00,,,,unknown"),
        "{csv}"
    );
    assert!(
        lines.contains(&"cost_center,,IT-DEVELOPMENT,20.50,433.50,1907.4000,2384.2500,87.8095,known"),
        "{csv}"
    );
    assert_eq!(
        *lines.last().unwrap(),
        "total,,,191.50,37393.50,1907.4000,2384.2500,87.8095,partial"
    );

    let (code, text, err) = report(&h, &audit, "text", &week());
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains("dev-a") && text.contains("17.50") && text.contains("191.50"),
        "{text}"
    );
    assert!(text.contains("662.20") && text.contains(">=1907.40"), "{text}");
    assert!(text.contains("unknown") && text.contains("lower bound"), "{text}");

    // The week before: dev-a from Saturday 10:00 (-38 h) to the end (0 h) = 38 h; demo-c from
    // -300 h → 168 h; the noise records are all downs.
    let (code, out, err) = report(&h, &audit, "json", &previous_week());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_hours"], 206.0, "{v}");
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

#[tokio::test]
async fn price_flags_override_the_variables_and_bad_prices_are_usage_errors() {
    let (h, audit) = seeded().await;
    let (code, out, err) = run(scheduler(&h, &audit, "unused-permissions")
        .env("EKS_CLUSTER_NAME", CLUSTER)
        .env("PRICE_PER_VCPU_HOUR", "1")
        .env("PRICE_PER_GIB_HOUR", "0.5")
        .args([
            "report",
            "--week",
            &week(),
            "--output",
            "json",
            "--price-vcpu-hour",
            "0.1",
        ]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["prices"],
        serde_json::json!({"per_vcpu_hour": 0.1, "per_gib_hour": 0.5})
    );
    assert_eq!(v["cost_centers"][1]["saved"], round4(1907.4 * 0.1 + 2384.25 * 0.5));

    for (flag, value) in [
        ("--price-vcpu-hour", "-1"),
        ("--price-gib-hour", "NaN"),
        ("--price-gib-hour", "1e9"),
    ] {
        let (code, out, err) = run(scheduler(&h, &audit, "unused-permissions").args([
            "report",
            "--week",
            &week(),
            "--output",
            "json",
            flag,
            value,
        ]));
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(flag) && err.contains(value), "{err}");
        assert!(out.is_empty(), "{out}");
    }
    let (code, _, err) = run(scheduler(&h, &audit, "unused-permissions")
        .env("PRICE_PER_GIB_HOUR", "cheap")
        .args(["report", "--week", &week()]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PRICE_PER_GIB_HOUR") && err.contains("cheap"), "{err}");
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
    let (code, _, err) = report(&h, &unique_name("no-such-table"), "json", &week());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ResourceNotFoundException"), "{err}");
}

#[tokio::test]
async fn an_empty_week_totals_zero() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let (code, out, err) = report(&h, &audit, "json", &week());
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(": -0.0"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_hours"], 0.0);
    assert_eq!(v["namespaces"], serde_json::json!([]));
    assert_eq!(v["totals"]["hours_down"], 0.0);
    assert_eq!(v["totals"]["savings"], "known");
    assert_eq!(v["totals"]["saved"], 0.0);
}

/// `--all-clusters`: every cluster writing to the table, read by the operation-type GSI (the
/// noise records need more than one page there too): a cluster column, each cluster's totals
/// (this cluster's equal to its own report), the cost centers across the fleet and its total.
#[tokio::test]
async fn all_clusters_adds_a_cluster_column_and_each_clusters_totals() {
    let (h, audit) = seeded().await;
    let fleet = |output: &str| {
        run(scheduler(&h, &audit, "unused-permissions")
            .env("EKS_CLUSTER_NAME", "some-third-cluster")
            .args(["report", "--week", &week(), "--all-clusters", "--output", output]))
    };
    let (code, out, err) = fleet("json");
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let (_, own, _) = report(&h, &audit, "json", &week());
    let own: serde_json::Value = serde_json::from_str(&own).unwrap();

    assert_eq!(v["all_clusters"], true);
    assert!(v.get("cluster").is_none(), "{v}");
    let clusters = v["clusters"].as_array().unwrap();
    let names: Vec<&str> = clusters.iter().map(|c| c["cluster"].as_str().unwrap()).collect();
    assert_eq!(names, [CLUSTER, "other-cluster"]);
    // This cluster's totals are its own report's; the other cluster's dev-a is up from 100 h to
    // the end of the week: 68 h, and nothing down.
    let mut ours = clusters[0].clone();
    assert_eq!(ours["namespaces"], 225);
    ours.as_object_mut()
        .unwrap()
        .retain(|k, _| k != "cluster" && k != "namespaces");
    assert_eq!(ours, own["totals"]);
    assert_eq!(
        (clusters[1]["hours"].as_f64(), clusters[1]["hours_down"].as_f64()),
        (Some(68.0), Some(0.0))
    );
    assert_eq!(clusters[1]["namespaces"], 1);
    // Every completed record up to the week's end, of both clusters.
    assert_eq!(v["records_read"], 233);

    // The same namespace name on two clusters: two rows, each with its cluster.
    let dev_a: Vec<(String, f64)> = v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["namespace"] == "dev-a")
        .map(|n| (n["cluster"].as_str().unwrap().to_string(), n["hours"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        dev_a,
        [(CLUSTER.to_string(), 17.5), ("other-cluster".to_string(), 68.0)]
    );
    assert_eq!(v["namespaces"].as_array().unwrap().len(), 226);
    // Cost centers and the total across the fleet.
    let it = v["cost_centers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cost_center"] == "IT-DEVELOPMENT")
        .unwrap();
    assert_eq!(
        (it["hours"].as_f64(), it["namespaces"].as_u64()),
        (Some(20.5 + 68.0), Some(4))
    );
    assert_eq!(v["totals"]["hours"], 191.5 + 68.0);
    assert_eq!(v["totals"]["hours_down"], own["totals"]["hours_down"]);
    assert_eq!(v["total_hours"], 259.5);

    let (code, csv, err) = fleet("csv");
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "scope,cluster,namespace,cost_center,hours,hours_down,vcpu_hours_saved,gib_hours_saved,saved,savings"
    );
    for want in [
        "namespace,eks-report,dev-a,IT-DEVELOPMENT,17.50,150.50,662.2000,827.7500,30.4852,known",
        "namespace,other-cluster,dev-a,IT-DEVELOPMENT,68.00,0.00,0.0000,0.0000,0.0000,known",
        "cluster,eks-report,,,191.50,37393.50,1907.4000,2384.2500,87.8095,partial",
        "cluster,other-cluster,,,68.00,0.00,0.0000,0.0000,0.0000,known",
        "cost_center,,,IT-DEVELOPMENT,88.50,433.50,1907.4000,2384.2500,87.8095,known",
    ] {
        assert!(lines.contains(&want), "{want} not in\n{csv}");
    }
    assert_eq!(
        *lines.last().unwrap(),
        "total,,,,259.50,37393.50,1907.4000,2384.2500,87.8095,partial"
    );

    let (code, text, err) = fleet("text");
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("all clusters (2: eks-report, other-cluster)"), "{text}");
    let fleet_line = text
        .lines()
        .find(|l| l.starts_with("FLEET"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        fleet_line.contains("226") && fleet_line.contains("259.50"),
        "{fleet_line}"
    );
    let other = text
        .lines()
        .find(|l| l.starts_with("other-cluster") && l.contains("dev-a"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(other.contains("68.00"), "{other}");
}
