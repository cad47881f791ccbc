//! Against DynamoDB Local: local tables follow the CloudFormation template, the audit writer
//! writes every field and never loses a record silently, the permissions store reads in batches.
//! Plus the pure authorization rules of SPEC §5.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use namespace_scheduler::audit::{AuditRecord, AuditWriter, OperationType, IDLE_FLUSH, TTL_ATTRIBUTE};
use namespace_scheduler::dynamo::{self, table_schema, AUDIT_RESOURCE, PERMISSIONS_RESOURCE};
use namespace_scheduler::permissions::{
    authorize, default_cost_centers, ActivationRequest, ActiveSet, CostCenter, PermissionsStore,
};
use namespace_scheduler::{Error, Exit};

/// (index name, key schema, projection type).
type IndexRow = (String, Vec<(String, String)>, String);

#[tokio::test]
async fn local_tables_have_exactly_the_schema_of_the_template() {
    let h = dynamo().await;
    let (audit, permissions) = unique_tables(&h).await;
    // Idempotent.
    dynamo::ensure_local_tables(&h.client, &audit, &permissions)
        .await
        .unwrap();

    for (table, resource) in [(&audit, AUDIT_RESOURCE), (&permissions, PERMISSIONS_RESOURCE)] {
        let want = table_schema(resource).unwrap();
        let desc = h
            .client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table
            .unwrap();
        let pairs = |k: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<(String, String)> {
            k.iter()
                .map(|e| (e.attribute_name().to_string(), e.key_type().as_str().to_string()))
                .collect()
        };
        assert_eq!(pairs(desc.key_schema()), want.key_schema, "{resource} key schema");
        let attrs: BTreeSet<(String, String)> = desc
            .attribute_definitions()
            .iter()
            .map(|a| (a.attribute_name().to_string(), a.attribute_type().as_str().to_string()))
            .collect();
        assert_eq!(
            attrs,
            want.attributes.iter().cloned().collect(),
            "{resource} attributes"
        );
        let mut gsis: Vec<IndexRow> = desc
            .global_secondary_indexes()
            .iter()
            .map(|g| {
                (
                    g.index_name().unwrap_or_default().to_string(),
                    pairs(g.key_schema()),
                    g.projection()
                        .and_then(|p| p.projection_type())
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        gsis.sort();
        let mut want_gsis: Vec<_> = want
            .global_indexes
            .iter()
            .map(|g| (g.name.clone(), g.key_schema.clone(), g.projection_type.clone()))
            .collect();
        want_gsis.sort();
        assert_eq!(gsis, want_gsis, "{resource} GSIs");
        assert_eq!(
            desc.stream_specification()
                .and_then(|s| s.stream_view_type())
                .map(|v| v.as_str().to_string()),
            want.stream_view_type,
            "{resource} stream"
        );
        let ttl = h.client.describe_time_to_live().table_name(table).send().await.unwrap();
        assert_eq!(
            ttl.time_to_live_description()
                .and_then(|t| t.attribute_name())
                .map(str::to_string),
            want.ttl_attribute,
            "{resource} TTL attribute"
        );
    }
    // And the code agrees with the template about the TTL attribute it writes.
    assert_eq!(
        table_schema(AUDIT_RESOURCE).unwrap().ttl_attribute.as_deref(),
        Some(TTL_ATTRIBUTE)
    );
}

#[tokio::test]
async fn audit_records_are_written_with_every_field_and_read_back_equal() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let full = sample_record("dev-a", 1_767_225_600.123456, OperationType::Activate);
    let mut minimal = sample_record("dev-b", 1_767_225_601.5, OperationType::AutoShutdownBusinessHours);
    minimal.error = None;
    minimal.active_until = None;
    minimal.resources.clear();
    minimal.requested_by = "system".to_string();
    let records = vec![full.clone(), minimal.clone()];

    let written = AuditWriter::new(h.client.clone(), &audit)
        .write_all(&records)
        .await
        .unwrap();
    assert_eq!(written, 2);
    assert_eq!(audit_records(&h, &audit).await, records);

    let items = scan_items(&h, &audit).await;
    let item = items
        .iter()
        .find(|i| i["namespace_name"] == AttributeValue::S("dev-a".into()))
        .unwrap();
    assert_eq!(item["timestamp_start"], AttributeValue::N("1767225600.123456".into()));
    assert_eq!(item["operation_type"], AttributeValue::S("activate".into()));
    assert_eq!(item["status"], AttributeValue::S("completed".into()));
    assert_eq!(item["duration_ms"], AttributeValue::N("1250".into()));
    let AttributeValue::L(resources) = &item["resources"] else {
        panic!("resources is not a list")
    };
    let AttributeValue::M(first) = &resources[0] else {
        panic!("resource is not a map")
    };
    assert_eq!(first["kind"], AttributeValue::S("Deployment".into()));
    assert_eq!(first["from"], AttributeValue::S("0".into()));
    assert_eq!(
        item[TTL_ATTRIBUTE],
        AttributeValue::N((1_767_225_600i64 + 400 * 86_400).to_string())
    );
    let other = items
        .iter()
        .find(|i| i["namespace_name"] == AttributeValue::S("dev-b".into()))
        .unwrap();
    assert!(
        !other.contains_key("error") && !other.contains_key("active_until"),
        "{other:?}"
    );
    for key in [
        "namespace_name",
        "timestamp_start",
        "timestamp_end",
        "duration_ms",
        "operation_type",
        "cost_center",
        "cluster_name",
        "requested_by",
        "status",
        "run_id",
        "resources",
        TTL_ATTRIBUTE,
    ] {
        assert!(other.contains_key(key), "minimal record lacks {key}");
    }
}

#[tokio::test]
async fn a_thousand_records_are_written_in_batches_and_all_read_back() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let records: Vec<AuditRecord> = (0..1000)
        .map(|i| {
            sample_record(
                &format!("ns-{:03}", i % 97),
                1_767_225_600.0 + i as f64 / 8.0,
                OperationType::Deactivate,
            )
        })
        .collect();
    let started = Instant::now();
    let written = AuditWriter::new(h.client.clone(), &audit)
        .write_all(&records)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!("wrote 1000 audit records to DynamoDB Local in {elapsed:?}");
    assert_eq!(written, 1000);
    assert_eq!(audit_records(&h, &audit).await.len(), 1000);
}

/// A write that gave up: an exit-1 DynamoDB error counting every record, each logged whole.
fn assert_lost_loudly(err: &Error, logs: &str, records: &[AuditRecord]) {
    assert!(matches!(err, Error::Dynamo(_)), "{err:?}");
    assert_eq!(err.exit(), Exit::Failed);
    let n = records.len();
    assert!(
        err.to_string()
            .contains(&format!("{n} of {n} audit records could not be written")),
        "{err}"
    );
    assert_all_logged(logs, records);
}

/// Every record that could not be written must be in the log, whole.
fn assert_all_logged(logs: &str, records: &[AuditRecord]) {
    for r in records {
        assert!(
            logs.contains(&r.to_json()),
            "record {} missing from the log:\n{logs}",
            r.to_json()
        );
    }
    assert_eq!(
        logs.matches("audit record could not be written").count(),
        records.len(),
        "{logs}"
    );
}

#[tokio::test]
async fn unreachable_endpoint_fails_with_every_record_logged_whole() {
    let client = client_for(&closed_endpoint()).await;
    let records: Vec<AuditRecord> = (0..60)
        .map(|i| sample_record(&format!("dev-{i}"), 1_767_225_600.0 + i as f64, OperationType::Activate))
        .collect();
    let (logs, _guard) = LogCapture::install();
    // The retries are bounded by MAX_ATTEMPTS and RETRY_BUDGET, so this returns; how long it
    // takes is printed, never asserted (shared, noisy machines).
    let started = Instant::now();
    let err = AuditWriter::new(client, "task-scheduler-logs-test")
        .write_all(&records)
        .await
        .unwrap_err();
    eprintln!("gave up on an unreachable endpoint after {:?}", started.elapsed());
    assert_lost_loudly(&err, &logs.text(), &records);
}

#[tokio::test]
async fn missing_table_fails_with_every_record_logged_whole() {
    let h = dynamo().await;
    let records = vec![
        sample_record("dev-a", 1_767_225_600.0, OperationType::Activate),
        sample_record("dev-b", 1_767_225_601.0, OperationType::Activate),
    ];
    let (logs, _guard) = LogCapture::install();
    let err = AuditWriter::new(h.client.clone(), unique_name("no-such-table"))
        .write_all(&records)
        .await
        .unwrap_err();
    assert_eq!(err.exit(), Exit::Failed);
    assert!(err.to_string().contains("2 of 2 audit records"), "{err}");
    assert!(err.to_string().contains("ResourceNotFoundException"), "{err}");
    assert_all_logged(&logs.text(), &records);
}

#[tokio::test]
async fn dynamodb_stopped_mid_run_loses_no_record_silently() {
    let mut local = LocalDynamo::start();
    let client = client_for(&local.endpoint).await;
    let table = unique_name("audit");
    dynamo::ensure_local_tables(&client, &table, &unique_name("permissions"))
        .await
        .unwrap();
    let writer = AuditWriter::new(client, &table);
    let before: Vec<AuditRecord> = (0..30)
        .map(|i| sample_record(&format!("dev-{i}"), 1_767_225_600.0 + i as f64, OperationType::Activate))
        .collect();
    assert_eq!(writer.write_all(&before).await.unwrap(), 30);

    local.stop();
    let after: Vec<AuditRecord> = (0..40)
        .map(|i| {
            sample_record(
                &format!("qa-{i}"),
                1_767_229_200.0 + i as f64,
                OperationType::Deactivate,
            )
        })
        .collect();
    let (logs, _guard) = LogCapture::install();
    let err = writer.write_all(&after).await.unwrap_err();
    assert_eq!(err.exit(), Exit::Failed);
    assert!(err.to_string().contains("40 of 40"), "{err}");
    assert_all_logged(&logs.text(), &after);
}

#[tokio::test]
async fn permissions_are_fetched_in_batches_and_missing_ones_are_absent() {
    let h = dynamo().await;
    let (_, permissions) = unique_tables(&h).await;
    let store = PermissionsStore::new(h.client.clone(), &permissions);
    for cc in default_cost_centers(1_767_225_600) {
        assert!(store.put_if_absent(&cc).await.unwrap());
    }
    // 150 names: two BatchGetItem chunks; only the six defaults exist.
    let mut wanted: BTreeSet<String> = (0..144).map(|i| format!("MISSING-{i}")).collect();
    wanted.extend(default_cost_centers(0).into_iter().map(|c| c.cost_center));
    let found = store.fetch(&wanted).await.unwrap();
    assert_eq!(found.len(), 6);
    assert_eq!(found["EXTERNAL-CONTRACTOR"], default_cost_centers(1_767_225_600)[5]);
    assert!(!found["EXTERNAL-CONTRACTOR"].is_authorized);

    let unreadable = PermissionsStore::new(h.client.clone(), unique_name("no-such-table"));
    let err = unreadable.fetch(&wanted).await.unwrap_err();
    assert!(err.to_string().contains("ResourceNotFoundException"), "{err}");
}

// ---- authorization rules (pure) ----

const CLUSTER: &str = "eks-dev";

fn perms() -> BTreeMap<String, CostCenter> {
    let mut map: BTreeMap<String, CostCenter> = default_cost_centers(0)
        .into_iter()
        .map(|c| (c.cost_center.clone(), c))
        .collect();
    let mut pinned = map["DEVOPS-INFRA"].clone();
    pinned.cost_center = "PINNED".into();
    pinned.allowed_clusters = Some(vec!["eks-other".into()]);
    map.insert("PINNED".into(), pinned);
    map
}

fn req(namespace: &str, cost_center: &str) -> ActivationRequest {
    ActivationRequest {
        namespace: namespace.into(),
        cost_center: cost_center.into(),
        requested_by: "alice".into(),
    }
}

fn active(pairs: &[(&str, &str)]) -> ActiveSet {
    ActiveSet {
        by_namespace: pairs.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect(),
    }
}

fn one(request: ActivationRequest, active_set: &ActiveSet, business_hours: bool) -> Result<(), String> {
    authorize(&[request], &perms(), active_set, business_hours, CLUSTER, 5)
        .remove(0)
        .map_err(|r| r.to_string())
}

#[test]
fn authorized_request_is_accepted() {
    assert_eq!(
        one(req("dev-api", "IT-DEVELOPMENT"), &ActiveSet::default(), false),
        Ok(())
    );
    assert_eq!(
        one(req("anything", "DEVOPS-INFRA"), &ActiveSet::default(), false),
        Ok(())
    );
}

#[test]
fn each_rule_rejects_with_its_name() {
    let none = ActiveSet::default();
    let cases = [
        (
            req("contractor-x", "EXTERNAL-CONTRACTOR"),
            "not_authorized: cost center EXTERNAL-CONTRACTOR",
        ),
        (
            req("prod-api", "IT-DEVELOPMENT"),
            "namespace_not_allowed: namespace prod-api matches none",
        ),
        (
            req("dev-api", "NO-SUCH-CC"),
            "unknown_cost_center: cost center \"NO-SUCH-CC\"",
        ),
        (
            req("dev-api", "PINNED"),
            "cluster_not_allowed: cluster eks-dev is not in the allowed_clusters",
        ),
    ];
    for (request, want) in cases {
        for business_hours in [false, true] {
            let got = one(request.clone(), &none, business_hours).unwrap_err();
            assert!(got.starts_with(want), "{request:?}: {got}");
        }
    }
}

#[test]
fn a_sixth_namespace_off_hours_hits_the_cluster_cap() {
    let five = active(&[
        ("qa-1", "QA-TESTING"),
        ("qa-2", "QA-TESTING"),
        ("sandbox-1", "DEMO-SANDBOX"),
        ("x-1", "DEVOPS-INFRA"),
        ("x-2", "DEVOPS-INFRA"),
    ]);
    assert_eq!(
        one(req("dev-api", "IT-DEVELOPMENT"), &five, false).unwrap_err(),
        "cluster_cap: 5 of 5 namespaces already active outside business hours (NON_BUSINESS_MAX_ACTIVE_NAMESPACES=5)"
    );
    // Business hours: caps do not apply.
    assert_eq!(one(req("dev-api", "IT-DEVELOPMENT"), &five, true), Ok(()));
    // Already active: not counted twice.
    assert_eq!(one(req("qa-1", "QA-TESTING"), &five, false), Ok(()));
}

#[test]
fn accepted_requests_count_towards_later_ones() {
    let requests: Vec<_> = (1..=7).map(|i| req(&format!("dev-{i}"), "IT-DEVELOPMENT")).collect();
    let verdicts = authorize(&requests, &perms(), &ActiveSet::default(), false, CLUSTER, 5);
    assert!(verdicts[..5].iter().all(Result::is_ok), "{verdicts:?}");
    for v in &verdicts[5..] {
        assert_eq!(v.as_ref().unwrap_err().rule, "cluster_cap");
    }
    // The same namespace twice is one activation.
    let twice = [req("dev-1", "IT-DEVELOPMENT"), req("dev-1", "IT-DEVELOPMENT")];
    let verdicts = authorize(
        &twice,
        &perms(),
        &active(&[("a", "X"), ("b", "X"), ("c", "X"), ("d", "X")]),
        false,
        CLUSTER,
        5,
    );
    assert!(verdicts.iter().all(Result::is_ok), "{verdicts:?}");
}

#[test]
fn cost_center_cap_applies_off_hours_only() {
    // DEMO-SANDBOX allows 3.
    let three = active(&[
        ("demo-1", "DEMO-SANDBOX"),
        ("demo-2", "DEMO-SANDBOX"),
        ("sandbox-1", "DEMO-SANDBOX"),
    ]);
    assert_eq!(
        one(req("demo-4", "DEMO-SANDBOX"), &three, false).unwrap_err(),
        "cost_center_cap: 3 of 3 namespaces of DEMO-SANDBOX already active outside business hours (max_concurrent_namespaces=3)"
    );
    assert_eq!(one(req("demo-4", "DEMO-SANDBOX"), &three, true), Ok(()));
    assert_eq!(one(req("demo-1", "DEMO-SANDBOX"), &three, false), Ok(()));
    // Another cost center's namespaces do not count against DEMO-SANDBOX.
    let others = active(&[("qa-1", "QA-TESTING"), ("qa-2", "QA-TESTING"), ("qa-3", "QA-TESTING")]);
    assert_eq!(one(req("demo-1", "DEMO-SANDBOX"), &others, false), Ok(()));
}

#[test]
fn cost_center_without_lists_allows_any_namespace_and_cluster() {
    let mut p = perms();
    let cc = p.get_mut("IT-DEVELOPMENT").unwrap();
    cc.authorized_namespaces = None;
    cc.allowed_clusters = None;
    let v = authorize(
        &[req("whatever", "IT-DEVELOPMENT")],
        &p,
        &ActiveSet::default(),
        false,
        CLUSTER,
        5,
    );
    assert_eq!(v, vec![Ok(())]);
    // An empty list authorizes nothing.
    p.get_mut("IT-DEVELOPMENT").unwrap().authorized_namespaces = Some(vec![]);
    let v = authorize(
        &[req("dev-a", "IT-DEVELOPMENT")],
        &p,
        &ActiveSet::default(),
        false,
        CLUSTER,
        5,
    );
    assert_eq!(v[0].as_ref().unwrap_err().rule, "namespace_not_allowed");
}

#[test]
fn a_zero_cluster_cap_rejects_every_new_activation_off_hours() {
    let v = authorize(
        &[req("dev-a", "IT-DEVELOPMENT")],
        &perms(),
        &ActiveSet::default(),
        false,
        CLUSTER,
        0,
    );
    assert_eq!(v[0].as_ref().unwrap_err().rule, "cluster_cap");
}

#[test]
fn rejection_maps_to_exit_4() {
    let r = authorize(&[req("x", "NOPE")], &perms(), &ActiveSet::default(), true, CLUSTER, 5)
        .remove(0)
        .unwrap_err();
    assert_eq!(r.into_error().exit(), Exit::Rejected);
}

#[tokio::test]
async fn streamed_records_are_all_written_and_read_back() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let records: Vec<AuditRecord> = (0..60)
        .map(|i| {
            sample_record(
                &format!("ns-{i:02}"),
                1_767_225_600.0 + i as f64,
                OperationType::Deactivate,
            )
        })
        .collect();
    let mut stream = AuditWriter::new(h.client.clone(), &audit).stream();
    for (i, r) in records.iter().enumerate() {
        stream.send(r.clone());
        if i % 20 == 19 {
            // A pause longer than the idle flush: partial batches go out while records still come.
            tokio::time::sleep(IDLE_FLUSH * 4).await;
        }
    }
    assert_eq!(stream.sent(), 60);
    assert_eq!(stream.finish().await.unwrap(), 60);
    let mut back = audit_records(&h, &audit).await;
    back.sort_by(|a, b| a.namespace_name.cmp(&b.namespace_name));
    assert_eq!(back, records);
}

#[tokio::test]
async fn an_empty_stream_writes_nothing() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let stream = AuditWriter::new(h.client.clone(), &audit).stream();
    assert_eq!(stream.finish().await.unwrap(), 0);
    assert!(audit_records(&h, &audit).await.is_empty());
}

#[tokio::test]
async fn streaming_to_an_unreachable_endpoint_fails_with_every_record_logged_whole() {
    let client = client_for(&closed_endpoint()).await;
    let records: Vec<AuditRecord> = (0..60)
        .map(|i| sample_record(&format!("dev-{i}"), 1_767_225_600.0 + i as f64, OperationType::Activate))
        .collect();
    let (logs, _guard) = LogCapture::install();
    let mut stream = AuditWriter::new(client, "task-scheduler-logs-test").stream();
    for r in &records {
        stream.send(r.clone());
    }
    let err = stream.finish().await.unwrap_err();
    assert_lost_loudly(&err, &logs.text(), &records);
}

#[tokio::test]
async fn streaming_to_a_missing_table_fails_with_every_record_logged_whole() {
    let h = dynamo().await;
    let records = vec![
        sample_record("dev-a", 1_767_225_600.0, OperationType::Activate),
        sample_record("dev-b", 1_767_225_601.0, OperationType::Activate),
    ];
    let (logs, _guard) = LogCapture::install();
    let mut stream = AuditWriter::new(h.client.clone(), "no-such-table-stream").stream();
    for r in &records {
        stream.send(r.clone());
    }
    let err = stream.finish().await.unwrap_err();
    assert!(
        err.to_string().contains("2 of 2 audit records could not be written"),
        "{err}"
    );
    assert_all_logged(&logs.text(), &records);
}
