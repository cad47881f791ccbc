//! `populate` against DynamoDB Local, through the real binary.

mod common;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use namespace_scheduler::permissions::CostCenter;

const DEFAULTS: [(&str, &str, bool, u32); 6] = [
    ("IT-DEVELOPMENT", "C102000001", true, 10),
    ("IT-PRODUCTION", "C102000002", true, 5),
    ("QA-TESTING", "C102000003", true, 8),
    ("DEVOPS-INFRA", "C102000004", true, 15),
    ("DEMO-SANDBOX", "C102000005", true, 3),
    ("EXTERNAL-CONTRACTOR", "C102000006", false, 2),
];

async fn cost_centers(h: &DynamoHandle, table: &str) -> HashMap<String, CostCenter> {
    scan_items(h, table)
        .await
        .iter()
        .map(|i| CostCenter::from_item(i).unwrap())
        .map(|c| (c.cost_center.clone(), c))
        .collect()
}

fn populate_json(h: &DynamoHandle, permissions: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let (code, out, err) = run(scheduler(h, "unused-audit", permissions)
        .args(["--output", "json", "populate"])
        .args(extra));
    let summary = serde_json::from_str(out.trim()).unwrap_or(serde_json::Value::Null);
    (code, summary, err)
}

#[tokio::test]
async fn populate_twice_seeds_six_and_never_overwrites() {
    let h = dynamo().await;
    let (_, permissions) = unique_tables(&h).await;

    let (code, summary, err) = populate_json(&h, &permissions, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(summary["created"].as_array().unwrap().len(), 6, "{summary}");
    let items = cost_centers(&h, &permissions).await;
    assert_eq!(items.len(), 6);
    for (name, codigo, authorized, max) in DEFAULTS {
        let cc = &items[name];
        assert_eq!(cc.codigo.as_deref(), Some(codigo));
        assert_eq!(
            (cc.is_authorized, cc.max_concurrent_namespaces),
            (authorized, max),
            "{name}"
        );
        assert!(cc.created_at.unwrap() > 1_700_000_000 && cc.updated_at == cc.created_at);
        assert!(cc.description.is_some());
    }
    assert_eq!(
        items["IT-DEVELOPMENT"].authorized_namespaces.as_deref().unwrap(),
        ["dev-*", "test-*", "staging-*"]
    );
    assert_eq!(items["DEVOPS-INFRA"].authorized_namespaces.as_deref().unwrap(), ["*"]);
    let raw = scan_items(&h, &permissions).await;
    let raw = raw
        .iter()
        .find(|i| i["cost_center"] == AttributeValue::S("QA-TESTING".into()))
        .unwrap();
    assert_eq!(raw["is_authorized"], AttributeValue::Bool(true));
    assert_eq!(raw["max_concurrent_namespaces"], AttributeValue::N("8".into()));
    assert_eq!(raw["codigo-cost-center"], AttributeValue::S("C102000003".into()));
    assert!(matches!(raw["authorized_namespaces"], AttributeValue::L(_)));
    assert!(matches!(raw["created_at"], AttributeValue::N(_)));

    // An operator changes one item between runs: the second run must keep it.
    h.client
        .update_item()
        .table_name(&permissions)
        .key("cost_center", AttributeValue::S("IT-DEVELOPMENT".into()))
        .update_expression("SET max_concurrent_namespaces = :m, description = :d")
        .expression_attribute_values(":m", AttributeValue::N("42".into()))
        .expression_attribute_values(":d", AttributeValue::S("changed by hand".into()))
        .send()
        .await
        .unwrap();

    let (code, summary, err) = populate_json(&h, &permissions, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(summary["created"].as_array().unwrap().len(), 0, "{summary}");
    assert_eq!(summary["kept"].as_array().unwrap().len(), 6, "{summary}");
    let after = cost_centers(&h, &permissions).await;
    assert_eq!(after.len(), 6);
    assert_eq!(after["IT-DEVELOPMENT"].max_concurrent_namespaces, 42);
    assert_eq!(after["IT-DEVELOPMENT"].description.as_deref(), Some("changed by hand"));
    for (name, cc) in &items {
        if name != "IT-DEVELOPMENT" {
            assert_eq!(&after[name], cc, "{name} was rewritten");
        }
    }

    // Text summary too.
    let (code, out, err) = run(scheduler(&h, "unused-audit", &permissions).arg("populate"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 created, 6 kept"), "{out}");
    assert!(
        out.contains("EXTERNAL-CONTRACTOR") && out.contains("C102000006"),
        "{out}"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing_and_says_what_it_would_create() {
    let h = dynamo().await;
    let (_, permissions) = unique_tables(&h).await;
    let (code, summary, err) = populate_json(&h, &permissions, &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(summary["would_create"].as_array().unwrap().len(), 6, "{summary}");
    assert_eq!(summary["dry_run"], true);
    assert!(scan_items(&h, &permissions).await.is_empty());
}

#[tokio::test]
async fn a_seed_file_is_validated_in_full_before_anything_is_written() {
    let h = dynamo().await;
    let (_, permissions) = unique_tables(&h).await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "- cost_center: TEAM-A\n  is_authorized: true\n  max_concurrent_namespaces: 3\n\
         - cost_center: TEAM-B\n  is_authorized: true\n  max_concurrent_namespaces: lots\n",
    )
    .unwrap();
    let (code, _, err) = populate_json(&h, &permissions, &["--file", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("item 2 (cost_center TEAM-B): field max_concurrent_namespaces"),
        "{err}"
    );
    assert!(scan_items(&h, &permissions).await.is_empty(), "nothing may be written");

    let good = dir.path().join("good.json");
    std::fs::write(
        &good,
        r#"[{"cost_center": "TEAM-A", "codigo-cost-center": "C9", "is_authorized": true,
             "max_concurrent_namespaces": 3, "authorized_namespaces": ["team-a-*"],
             "allowed_clusters": ["eks-dev"], "description": "Team A"}]"#,
    )
    .unwrap();
    let (code, summary, err) = populate_json(&h, &permissions, &["--file", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(summary["created"], serde_json::json!(["TEAM-A"]));
    let items = cost_centers(&h, &permissions).await;
    assert_eq!(items["TEAM-A"].allowed_clusters.as_deref().unwrap(), ["eks-dev"]);
    assert_eq!(items["TEAM-A"].codigo.as_deref(), Some("C9"));
}

#[tokio::test]
async fn an_unreachable_table_fails_with_exit_1() {
    let h = dynamo().await;
    let closed = DynamoHandle {
        client: h.client.clone(),
        endpoint: closed_endpoint(),
    };
    let (code, _, err) = populate_json(&closed, "cost-center-permissions-test", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CreateTable"), "{err}");
}

#[tokio::test]
async fn with_a_local_endpoint_populate_creates_the_tables_first() {
    let h = dynamo().await;
    let (audit, permissions) = (unique_name("audit"), unique_name("permissions"));
    let (code, out, err) = run(scheduler(&h, &audit, &permissions).arg("populate"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("6 created"), "{out}");
    for table in [&audit, &permissions] {
        h.client.describe_table().table_name(table).send().await.unwrap();
    }
    assert_eq!(scan_items(&h, &permissions).await.len(), 6);
}
