//! The write-ahead audit against DynamoDB Local (docs/reference.md §6): intents written before
//! their namespaces start, replaced by their final record or deleted, and what a dead run left
//! `in_progress` closed by a later one — reading only that run's items, never another's.

mod common;

use common::*;
use namespace_scheduler::audit::journal::{self, Found, OpenRun};
use namespace_scheduler::audit::{
    AuditRecord, AuditSink, AuditStatus, AuditTable, AuditWrite, AuditWriter, OperationType, ResourceChange,
};

const CLUSTER: &str = "eks-journal";
const SINCE: f64 = 1_796_000_000.0;

fn record(ns: &str, at: f64, run: &str, status: AuditStatus, cluster: &str) -> AuditRecord {
    let mut r = sample_record(ns, at, OperationType::AutoShutdownBusinessHours);
    r.status = status;
    r.run_id = run.into();
    r.cluster_name = cluster.into();
    r.error = None;
    r.resources = vec![
        ResourceChange::changed("Deployment", "api", "3", "0", Some((100, 1 << 20))),
        ResourceChange::changed("Deployment", "web", "2", "0", Some((100, 1 << 20))),
    ];
    r
}

/// `r` with 300 more planned changes (≈ 45 KB): thirty such items are more than one Query page
/// (1 MB; DynamoDB Local counts what a page returns, after the filter).
fn bulky(mut r: AuditRecord) -> AuditRecord {
    r.resources.extend(
        (0..300)
            .map(|j| ResourceChange::changed("Deployment", &format!("w-{j:03}-{}", "x".repeat(100)), "1", "0", None)),
    );
    r
}

async fn item(h: &DynamoHandle, table: &str, r: &AuditRecord) -> Option<AuditRecord> {
    let out = h
        .client
        .get_item()
        .table_name(table)
        .set_key(Some(r.key()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item.map(|i| AuditRecord::from_item(&i).unwrap())
}

#[tokio::test]
async fn a_dead_runs_in_progress_items_are_closed_and_nothing_else_is_touched() {
    let h = dynamo().await;
    let (table, _) = unique_tables(&h).await;
    let mut dead = Vec::new();
    let mut others = Vec::new();
    for i in 0..30 {
        let intent = record(
            &format!("dev-{i:02}"),
            SINCE + 10.0 + i as f64,
            "dead",
            AuditStatus::InProgress,
            CLUSTER,
        );
        dead.push(bulky(intent));
    }
    // Final already, another run's intent, another cluster's, and one from before `since`.
    others.push(record("dev-00", SINCE + 5.0, "dead", AuditStatus::Completed, CLUSTER));
    others.push(record("dev-01", SINCE + 6.0, "alive", AuditStatus::InProgress, CLUSTER));
    others.push(record(
        "dev-02",
        SINCE + 7.0,
        "dead",
        AuditStatus::InProgress,
        "other-cluster",
    ));
    others.push(record(
        "dev-03",
        SINCE - 100.0,
        "dead",
        AuditStatus::InProgress,
        CLUSTER,
    ));
    // The cluster's other records after `since`, which the Query reads past.
    let noise: Vec<AuditRecord> = (0..100)
        .map(|i| {
            record(
                &format!("noise-{i:03}"),
                SINCE + 1.0 + i as f64 / 1000.0,
                "earlier",
                AuditStatus::Completed,
                CLUSTER,
            )
        })
        .collect();
    let writer = AuditWriter::new(h.client.clone(), &table);
    let all: Vec<AuditRecord> = dead.iter().chain(&others).chain(&noise).cloned().collect();
    write_records(&writer, &all).await.unwrap();

    let run = OpenRun {
        run_id: "dead".into(),
        since: SINCE,
    };
    let found = |ns: &str, r: &ResourceChange| match (ns, r.name.as_str()) {
        ("dev-29", _) => Found::NotLooked,
        (_, "api") => Found::Value("0".into()),
        _ => Found::Value("2".into()),
    };
    let (closed, final_already) = journal::close_run(&h.client, &table, CLUSTER, &run, "closer", found)
        .await
        .unwrap();
    assert_eq!((closed, final_already), (30, 0));
    for d in &dead {
        let now = item(&h, &table, d).await.expect("still there, same key");
        assert_eq!(now.status, AuditStatus::Interrupted, "{}", d.namespace_name);
        assert_eq!(now.closed_by.as_deref(), Some("closer"));
        let api = &now.resources[0];
        if d.namespace_name == "dev-29" {
            assert_eq!((api.found.as_deref(), api.reached), (None, None));
        } else {
            assert_eq!((api.found.as_deref(), api.reached), (Some("0"), Some(true)));
            assert_eq!(
                (now.resources[1].found.as_deref(), now.resources[1].reached),
                (Some("2"), Some(false))
            );
            assert!(now.took_effect());
        }
    }
    for o in &others {
        assert_eq!(
            item(&h, &table, o).await.as_ref(),
            Some(o),
            "{} {} untouched",
            o.namespace_name,
            o.run_id
        );
    }
    // Closing again finds nothing: the query is filtered to in_progress.
    let again = journal::close_run(
        &h.client,
        &table,
        CLUSTER,
        &run,
        "closer-2",
        |_: &str, _: &ResourceChange| Found::Gone,
    )
    .await
    .unwrap();
    assert_eq!(again, (0, 0));
}

#[tokio::test]
async fn closing_never_overwrites_a_final_record_written_meanwhile() {
    let h = dynamo().await;
    let (table, _) = unique_tables(&h).await;
    let intent = record("dev-a", SINCE + 1.0, "slow", AuditStatus::InProgress, CLUSTER);
    let writer = AuditWriter::new(h.client.clone(), &table);
    write_records(&writer, std::slice::from_ref(&intent)).await.unwrap();
    let closing = journal::interrupted(intent.clone(), |_| Found::Value("3".into()), "closer");
    // The run that wrote the intent was only slow: it writes its end first.
    let mut completed = intent.clone();
    completed.status = AuditStatus::Completed;
    write_records(&writer, std::slice::from_ref(&completed)).await.unwrap();
    assert!(!journal::close(&h.client, &table, &closing).await.unwrap());
    assert_eq!(item(&h, &table, &intent).await, Some(completed));
}

#[tokio::test]
async fn an_intent_is_replaced_by_its_final_record_or_deleted_and_nothing_else_remains() {
    let h = dynamo().await;
    let (table, _) = unique_tables(&h).await;
    let mut config = config_for(&h.endpoint);
    config.audit_table = table.clone();
    // Stamped with the decision clock: one hour earlier, intents and finals alike.
    let shift = -3600.0;
    let writer = AuditWriter::new(namespace_scheduler::dynamo::client(&config).await, table.clone());
    let audit = AuditTable::new(writer, shift);
    let done = record("dev-done", SINCE + 1.0, "r", AuditStatus::InProgress, CLUSTER);
    let never = record("dev-never", SINCE + 1.0, "r", AuditStatus::InProgress, CLUSTER);
    assert_eq!(
        audit.write_intents(vec![done.clone(), never.clone()]).await,
        vec![true, true]
    );
    let shifted = |r: &AuditRecord| AuditRecord {
        timestamp_start: r.timestamp_start + shift,
        timestamp_end: r.timestamp_end + shift,
        ..r.clone()
    };
    assert_eq!(
        item(&h, &table, &shifted(&never)).await.unwrap().status,
        AuditStatus::InProgress
    );

    let mut sink = AuditSink::new(&audit);
    let mut final_record = done.clone();
    final_record.status = AuditStatus::Completed;
    sink.send(final_record.clone()).await;
    sink.send_write(AuditWrite::Delete {
        namespace_name: never.namespace_name.clone(),
        timestamp_start: never.timestamp_start,
    })
    .await;
    assert_eq!(
        sink.finish().await,
        (1, None),
        "one record handed over, every write done"
    );
    let items = audit_records(&h, &table).await;
    assert_eq!(
        items,
        vec![shifted(&final_record)],
        "exactly one record, final, under the intent's key"
    );
}

#[tokio::test]
async fn intents_that_cannot_be_written_are_logged_whole_and_later_ones_do_not_wait() {
    let (logs, _guard) = LogCapture::install();
    let mut config = config_for(&closed_endpoint());
    config.audit_table = "task-scheduler-logs-test".into();
    let writer = AuditWriter::new(
        namespace_scheduler::dynamo::client(&config).await,
        config.audit_table.clone(),
    );
    let audit = AuditTable::new(writer, 0.0);
    let first: Vec<AuditRecord> = (0..3)
        .map(|i| {
            record(
                &format!("dev-{i}"),
                SINCE + i as f64,
                "r",
                AuditStatus::InProgress,
                CLUSTER,
            )
        })
        .collect();
    assert_eq!(audit.write_intents(first.clone()).await, vec![false; 3]);
    // One warning per failed attempt.
    let attempts = || logs.text().matches("audit batch write retried").count();
    let retried = attempts();
    assert!(retried > 1, "the first batch is retried: {}", logs.text());
    for r in &first {
        assert!(logs.text().contains(&r.to_json()), "{} logged whole", r.namespace_name);
    }
    // DynamoDB is still down: the next batch gets one attempt, not the whole retry budget.
    let second = vec![record("dev-9", SINCE + 9.0, "r", AuditStatus::InProgress, CLUSTER)];
    assert_eq!(audit.write_intents(second.clone()).await, vec![false]);
    assert_eq!(attempts(), retried + 1, "one attempt");
    assert!(logs.text().contains(&second[0].to_json()));
}
