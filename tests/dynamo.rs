//! Against DynamoDB Local: local tables (audit, permissions, windows) follow the CloudFormation template, the audit writer
//! writes every field and never loses a record silently, the permissions store reads in batches.
//! Plus the pure authorization rules of docs/reference.md §5.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use namespace_scheduler::audit::{AuditRecord, AuditWriter, OperationType, IDLE_FLUSH, TTL_ATTRIBUTE};
use namespace_scheduler::dynamo::{self, table_schema, AUDIT_RESOURCE, PERMISSIONS_RESOURCE, WINDOWS_RESOURCE};
use namespace_scheduler::permissions::{default_cost_centers, PermissionsStore};
use namespace_scheduler::{Error, Exit};

/// (index name, key schema, projection type).
type IndexRow = (String, Vec<(String, String)>, String);

#[tokio::test]
async fn local_tables_have_exactly_the_schema_of_the_template() {
    let h = dynamo().await;
    let (audit, permissions) = unique_tables(&h).await;
    let windows = windows_table_for(&permissions);
    // Idempotent.
    let tables = dynamo::TableNames {
        audit: &audit,
        permissions: &permissions,
        windows: &windows,
    };
    dynamo::ensure_local_tables(&h.client, tables).await.unwrap();

    for (table, resource) in [
        (&audit, AUDIT_RESOURCE),
        (&permissions, PERMISSIONS_RESOURCE),
        (&windows, WINDOWS_RESOURCE),
    ] {
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

    let written = write_records(&AuditWriter::new(h.client.clone(), &audit), &records)
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
    let written = write_records(&AuditWriter::new(h.client.clone(), &audit), &records)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    eprintln!("wrote 1000 audit records to DynamoDB Local in {elapsed:?}");
    assert_eq!(written, 1000);
    assert_eq!(audit_records(&h, &audit).await.len(), 1000);
}

/// A write that gave up: an exit-1 DynamoDB error counting every record, each logged whole.
fn assert_lost_loudly(err: &Error, logs: &str, records: &[AuditRecord]) {
    assert!(matches!(err, Error::Dynamo { .. }), "{err:?}");
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
    let err = write_records(&AuditWriter::new(client, "task-scheduler-logs-test"), &records)
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
    let err = write_records(
        &AuditWriter::new(h.client.clone(), unique_name("no-such-table")),
        &records,
    )
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
    let (permissions, windows) = (unique_name("permissions"), unique_name("windows"));
    let tables = dynamo::TableNames {
        audit: &table,
        permissions: &permissions,
        windows: &windows,
    };
    dynamo::ensure_local_tables(&client, tables).await.unwrap();
    let writer = AuditWriter::new(client, &table);
    let before: Vec<AuditRecord> = (0..30)
        .map(|i| sample_record(&format!("dev-{i}"), 1_767_225_600.0 + i as f64, OperationType::Activate))
        .collect();
    assert_eq!(write_records(&writer, &before).await.unwrap(), 30);

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
    let err = write_records(&writer, &after).await.unwrap_err();
    assert_eq!(err.exit(), Exit::Failed);
    assert!(err.to_string().contains("40 of 40"), "{err}");
    assert_all_logged(&logs.text(), &after);
}

/// One batch that fails for good (as often as it is retried) must not stop the others: each
/// batch is retried on its own. Every other record is written; the lost ones are logged whole.
#[tokio::test]
async fn a_batch_that_keeps_failing_does_not_stop_the_others() {
    let h = dynamo().await;
    let (audit, _) = unique_tables(&h).await;
    let proxy = FailingProxy::start(&h.endpoint, "poisoned-batch").await;
    let client = client_for(&proxy.endpoint).await;
    // Four batches of 25; the second one carries the marker and always fails.
    let records: Vec<AuditRecord> = (0..100)
        .map(|i| {
            let ns = if (25..50).contains(&i) {
                format!("poisoned-batch-{i:03}")
            } else {
                format!("ns-{i:03}")
            };
            sample_record(&ns, 1_767_225_600.0 + i as f64, OperationType::Deactivate)
        })
        .collect();
    for streamed in [false, true] {
        let (audit, _) = if streamed {
            unique_tables(&h).await
        } else {
            (audit.clone(), String::new())
        };
        let (logs, _guard) = LogCapture::install();
        let writer = AuditWriter::new(client.clone(), &audit);
        let err = if streamed {
            // The later records arrive only once the poisoned batch has given up, as in a long
            // run: they must still be tried (not abandoned with it).
            let mut stream = writer.stream();
            for r in &records[..50] {
                stream.send(r.clone());
            }
            tokio::time::sleep(namespace_scheduler::audit::RETRY_BUDGET + Duration::from_secs(1)).await;
            for r in &records[50..] {
                stream.send(r.clone());
            }
            stream.finish().await.unwrap_err()
        } else {
            write_records(&writer, &records).await.unwrap_err()
        };
        assert_eq!(err.exit(), Exit::Failed);
        assert!(
            err.to_string().contains("25 of 100 audit records could not be written"),
            "{err}"
        );
        assert_all_logged(&logs.text(), &records[25..50]);
        let mut written: Vec<String> = audit_records(&h, &audit)
            .await
            .into_iter()
            .map(|r| r.namespace_name)
            .collect();
        written.sort();
        let mut want: Vec<String> = records
            .iter()
            .filter(|r| !r.namespace_name.starts_with("poisoned"))
            .map(|r| r.namespace_name.clone())
            .collect();
        want.sort();
        assert_eq!(written, want, "streamed={streamed}: every other record is written");
    }
    assert!(
        proxy.failed.load(std::sync::atomic::Ordering::SeqCst) > 2,
        "the poisoned batch was retried"
    );
}

/// A malformed item fails only its own cost center: the others are read as usual, and the
/// invalid one says which attribute and what was found.
#[tokio::test]
async fn permissions_are_fetched_in_batches_and_missing_ones_are_absent() {
    let h = dynamo().await;
    let (_, permissions) = unique_tables(&h).await;
    let store = PermissionsStore::new(h.client.clone(), &permissions);
    for cc in default_cost_centers(1_767_225_600) {
        assert!(store.put_if_absent(&cc).await.unwrap());
    }
    // 150 names: two BatchGetItem chunks; only the six defaults exist.
    let mut broken = default_cost_centers(0)[0].to_item();
    broken.insert("cost_center".into(), AttributeValue::S("BROKEN".into()));
    broken.insert("max_concurrent_namespaces".into(), AttributeValue::S("ten".into()));
    h.client
        .put_item()
        .table_name(&permissions)
        .set_item(Some(broken))
        .send()
        .await
        .unwrap();
    let mut wanted: BTreeSet<String> = (0..143).map(|i| format!("MISSING-{i}")).collect();
    wanted.extend(default_cost_centers(0).into_iter().map(|c| c.cost_center));
    wanted.insert("BROKEN".into());
    let found = store.fetch(&wanted).await.unwrap();
    assert_eq!(found.len(), 7);
    assert_eq!(
        found["EXTERNAL-CONTRACTOR"].as_ref().unwrap(),
        &default_cost_centers(1_767_225_600)[5]
    );
    assert!(!found["EXTERNAL-CONTRACTOR"].as_ref().unwrap().is_authorized);
    assert_eq!(
        found["BROKEN"].as_ref().unwrap_err().to_string(),
        "permissions_invalid: BROKEN.max_concurrent_namespaces: the string \"ten\" (expected a non-negative integer, N)"
    );

    let unreadable = PermissionsStore::new(h.client.clone(), unique_name("no-such-table"));
    let err = unreadable.fetch(&wanted).await.unwrap_err();
    assert!(err.to_string().contains("ResourceNotFoundException"), "{err}");
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
