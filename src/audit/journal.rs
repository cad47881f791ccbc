//! Closing what a dead run left in the audit table (docs/reference.md §6).
//!
//! A run writes each namespace's intent (`in_progress`) before its first write and overwrites it
//! with the final record when the namespace ends. A run killed in between (SIGKILL, OOM, node
//! loss), or one that could not write some final records, leaves intents behind. The Lease is the
//! journal of such runs ([`OpenRun`]: a run id and the earliest `timestamp_start` its records can
//! have), so a normal run makes no DynamoDB call for this: only a run that takes over an expired
//! Lease, or finds open runs named on it, queries the cluster GSI for that run's `in_progress`
//! items (from `since`, paginated, never a Scan) and rewrites each as `interrupted`, with what it
//! finds on the objects now and its own run id in `closed_by`. The rewrite is conditional on the
//! item still being `in_progress`: a final record the dead run managed to write after all is
//! never overwritten.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use super::{AuditRecord, AuditStatus, ResourceChange};
use crate::dynamo;
use crate::error::{Error, Result};

/// The GSI keyed (cluster_name, timestamp_start).
pub(crate) const CLUSTER_INDEX: &str = "cluster-timestamp-index";

/// A run whose audit may still hold `in_progress` items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRun {
    pub run_id: String,
    /// Epoch seconds, as written in the table (shifted like the run's records under
    /// `NS_SCHEDULER_AUDIT_CLOCK=decision`): no record of the run starts before it.
    pub since: f64,
}

/// What a closing run finds for one planned object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The object's current value (as the plan writes values: `0`, `suspend=true`, `paused=0`).
    Value(String),
    /// The object no longer exists.
    Gone,
    /// The closing run did not look (the namespace is not managed by it).
    NotLooked,
}

/// The `interrupted` record of an intent: each planned resource with what was found on it
/// (`found`, and `reached` = found at `to`), the closing run in `closed_by`, and a note in
/// `error`. Keeps the intent's key, so it replaces it.
pub fn interrupted(intent: AuditRecord, found: impl Fn(&ResourceChange) -> Found, closed_by: &str) -> AuditRecord {
    let mut looked = true;
    let resources = intent
        .resources
        .into_iter()
        .map(|mut r| {
            match found(&r) {
                Found::Value(v) => {
                    r.reached = Some(v == r.to);
                    r.found = Some(v);
                }
                Found::Gone => {
                    r.reached = Some(false);
                    r.found = Some("gone".into());
                }
                Found::NotLooked => looked = false,
            }
            r
        })
        .collect::<Vec<_>>();
    let reached = resources.iter().filter(|r| r.reached == Some(true)).count();
    let what = if looked {
        format!("{reached} of {} planned change(s) found in place", resources.len())
    } else {
        "its namespace is not managed now, so its objects were not read".to_string()
    };
    AuditRecord {
        status: AuditStatus::Interrupted,
        error: Some(format!(
            "run {} ended without recording the end of this operation (killed, or the audit could not be written); \
             closed by run {closed_by}: {what}",
            intent.run_id
        )),
        closed_by: Some(closed_by.to_string()),
        resources,
        ..intent
    }
}

/// The `in_progress` items `run` left for `cluster`: a Query of [`CLUSTER_INDEX`] from
/// `run.since`, filtered to the run and the status, every page (the SDK's paginator follows
/// `LastEvaluatedKey`).
pub(crate) async fn open_intents(
    client: &Client,
    table: &str,
    cluster: &str,
    run: &OpenRun,
) -> Result<Vec<AuditRecord>> {
    let mut items = client
        .query()
        .table_name(table)
        .index_name(CLUSTER_INDEX)
        .key_condition_expression("cluster_name = :cluster AND timestamp_start >= :since")
        .filter_expression("run_id = :run AND #status = :in_progress")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":cluster", AttributeValue::S(cluster.to_string()))
        .expression_attribute_values(":since", super::item::number(run.since))
        .expression_attribute_values(":run", AttributeValue::S(run.run_id.clone()))
        .expression_attribute_values(
            ":in_progress",
            AttributeValue::S(AuditStatus::InProgress.as_str().into()),
        )
        .into_paginator()
        .items()
        .send();
    let mut found = Vec::new();
    while let Some(item) = items.next().await {
        let item = item.map_err(|e| dynamo::sdk_error(&format!("Query {table} ({CLUSTER_INDEX})"), e))?;
        match AuditRecord::from_item(&item) {
            Ok(r) => found.push(r),
            // Hostile until parsed: an item that does not read is named, never fatal here.
            Err(e) => {
                tracing::error!(table, run = %run.run_id, error = %e, ?item, "an in_progress audit item does not read; left as it is")
            }
        }
    }
    Ok(found)
}

/// Writes `record` over its intent if that is still `in_progress`: `Ok(true)` when written,
/// `Ok(false)` when the item is final already (its run wrote its end after all).
pub async fn close(client: &Client, table: &str, record: &AuditRecord) -> Result<bool> {
    let written = client
        .put_item()
        .table_name(table)
        .set_item(Some(record.to_item()))
        .condition_expression("#status = :in_progress")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(
            ":in_progress",
            AttributeValue::S(AuditStatus::InProgress.as_str().into()),
        )
        .send()
        .await;
    match written {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(dynamo::sdk_error(&format!("PutItem {table} (close an intent)"), e)),
    }
}

/// Closes every `in_progress` item of `run`: (closed, already final). `found` says what is on
/// each planned object now, for the record's namespace.
pub async fn close_run(
    client: &Client,
    table: &str,
    cluster: &str,
    run: &OpenRun,
    closed_by: &str,
    found: impl Fn(&str, &ResourceChange) -> Found,
) -> Result<(usize, usize)> {
    let intents = open_intents(client, table, cluster, run).await?;
    let (mut closed, mut final_already) = (0, 0);
    for intent in intents {
        let namespace = intent.namespace_name.clone();
        let record = interrupted(intent, |r| found(&namespace, r), closed_by);
        if close(client, table, &record).await? {
            tracing::warn!(
                namespace = %record.namespace_name,
                run = %run.run_id,
                record = %record.to_json(),
                "closed an operation its run never recorded the end of: interrupted"
            );
            closed += 1;
        } else {
            final_already += 1;
        }
    }
    Ok((closed, final_already))
}

/// The Lease annotation that lists the open runs: a JSON list of [`OpenRun`].
pub(crate) fn parse_open_runs(value: Option<&str>) -> std::result::Result<Vec<OpenRun>, Error> {
    match value.map(str::trim) {
        None | Some("") => Ok(Vec::new()),
        Some(v) => serde_json::from_str(v).map_err(|e| Error::failed_from(format!("open audit runs {v:?}: {e}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::OperationType;

    fn intent(resources: Vec<ResourceChange>) -> AuditRecord {
        AuditRecord {
            namespace_name: "dev-a".into(),
            timestamp_start: 1_790_000_000.5,
            timestamp_end: 1_790_000_000.5,
            duration_ms: 0,
            operation_type: OperationType::AutoShutdownBusinessHours,
            cost_center: "CC".into(),
            cluster_name: "eks".into(),
            requested_by: "system".into(),
            status: AuditStatus::InProgress,
            run_id: "dead".into(),
            resources,
            error: None,
            active_until: None,
            closed_by: None,
        }
    }

    #[test]
    fn an_intent_is_closed_with_what_is_found_on_each_object() {
        let planned = vec![
            ResourceChange::changed("Deployment", "api", "3", "0", Some((100, 1))),
            ResourceChange::changed("Deployment", "web", "2", "0", Some((100, 1))),
            ResourceChange::changed("CronJob", "nightly", "suspend=false", "suspend=true", None),
            ResourceChange::changed("StatefulSet", "db", "1", "0", Some((100, 1))),
        ];
        // (object, found, want found attribute, want reached)
        let cases = [
            ("api", Found::Value("0".into()), Some("0"), Some(true)),
            ("web", Found::Value("2".into()), Some("2"), Some(false)),
            (
                "nightly",
                Found::Value("suspend=true".into()),
                Some("suspend=true"),
                Some(true),
            ),
            ("db", Found::Gone, Some("gone"), Some(false)),
        ];
        let closed = interrupted(
            intent(planned),
            |r| cases.iter().find(|c| c.0 == r.name).unwrap().1.clone(),
            "closer",
        );
        assert_eq!(closed.status, AuditStatus::Interrupted);
        assert_eq!(closed.closed_by.as_deref(), Some("closer"));
        assert_eq!(closed.timestamp_start, 1_790_000_000.5, "same key as the intent");
        for (name, _, found, reached) in cases {
            let r = closed.resources.iter().find(|r| r.name == name).unwrap();
            assert_eq!((r.found.as_deref(), r.reached), (found, reached), "{name}");
        }
        assert!(
            closed.error.as_deref().unwrap().contains("2 of 4"),
            "{:?}",
            closed.error
        );
        // What took effect is what was found in place: api's 3 replicas, not web's nor db's.
        assert!(closed.took_effect());
        assert_eq!(closed.totals().unwrap().cpu_millicores, 300);
        // It reads back the same.
        assert_eq!(AuditRecord::from_item(&closed.to_item()).unwrap(), closed);
    }

    #[test]
    fn nothing_found_in_place_is_no_change_and_not_looking_is_said() {
        let planned = vec![ResourceChange::changed("Deployment", "api", "3", "0", None)];
        let untouched = interrupted(intent(planned.clone()), |_| Found::Value("3".into()), "closer");
        assert!(!untouched.took_effect());
        let unknown = interrupted(intent(planned), |_| Found::NotLooked, "closer");
        assert_eq!(
            (unknown.resources[0].found.clone(), unknown.resources[0].reached),
            (None, None)
        );
        assert!(unknown.error.unwrap().contains("not managed now"));
        assert!(!intent(vec![]).took_effect(), "in_progress is never counted as done");
    }

    #[test]
    fn open_runs_read_from_the_lease_annotation() {
        assert_eq!(parse_open_runs(None).unwrap(), vec![]);
        assert_eq!(parse_open_runs(Some(" ")).unwrap(), vec![]);
        let runs = parse_open_runs(Some(r#"[{"run_id":"a","since":12.5}]"#)).unwrap();
        assert_eq!(
            runs,
            vec![OpenRun {
                run_id: "a".into(),
                since: 12.5
            }]
        );
        assert!(parse_open_runs(Some("not json")).is_err());
    }
}
