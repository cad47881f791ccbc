//! Audit trail (docs/reference.md §6): one record per namespace per operation, compatible with the existing
//! `task-scheduler-logs-{env}` table and its four GSIs.
//! OWNER of the writer: DynamoDB engineer. The record types are the contract with `scaling`.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::dynamo;
use crate::error::{Error, Result};
use crate::scaling::requests::{PodRequest, Requested};

mod stream;
pub use stream::{AuditSink, AuditStream, IDLE_FLUSH};
#[cfg(test)]
mod tests;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationType {
    /// `up`, and accepted self-service requests.
    Activate,
    /// `down`.
    Deactivate,
    /// `run` scaling up at the start of business hours.
    AutoStartupBusinessHours,
    /// `run` scaling down outside business hours (including expired activation windows).
    AutoShutdownBusinessHours,
}

impl OperationType {
    pub fn as_str(&self) -> &'static str {
        match self {
            OperationType::Activate => "activate",
            OperationType::Deactivate => "deactivate",
            OperationType::AutoStartupBusinessHours => "auto_startup_business_hours",
            OperationType::AutoShutdownBusinessHours => "auto_shutdown_business_hours",
        }
    }

    /// Whether the operation leaves the namespace active (used by `report`).
    pub fn activates(&self) -> bool {
        matches!(self, OperationType::Activate | OperationType::AutoStartupBusinessHours)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    Completed,
    Failed,
    RolledBack,
    Rejected,
}

impl AuditStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuditStatus::Completed => "completed",
            AuditStatus::Failed => "failed",
            AuditStatus::RolledBack => "rolled_back",
            AuditStatus::Rejected => "rejected",
        }
    }
}

/// One workload change: `Deployment/api 3 → 0`, `CronJob/report suspend=false → suspend=true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub kind: String,
    pub name: String,
    pub from: String,
    /// The value written (or, for a skipped object, the value that was wanted).
    pub to: String,
    /// Set when the object was not changed: why (e.g. the API's message for a refused write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Per-replica cpu request of a Deployment or StatefulSet (docs/reference.md §8); absent for other kinds
    /// and in records written before requests were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_millicores: Option<u64>,
    /// Per-replica memory request, in bytes; absent like `cpu_millicores`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

impl ResourceChange {
    /// A change made, with its per-replica (cpu millicores, memory bytes) when the kind has them.
    pub fn changed(kind: &str, name: &str, from: &str, to: &str, per_replica: Option<(u64, u64)>) -> Self {
        ResourceChange {
            kind: kind.into(),
            name: name.into(),
            from: from.into(),
            to: to.into(),
            skipped: None,
            cpu_millicores: per_replica.map(|p| p.0),
            memory_bytes: per_replica.map(|p| p.1),
        }
    }

    /// Whether this kind has replicas, hence requests that a change frees or restores.
    pub fn has_replicas(&self) -> bool {
        matches!(self.kind.as_str(), "Deployment" | "StatefulSet")
    }

    /// Replicas removed (`from − to`, a down) or restored (`to − from`, an up); 0 for other
    /// kinds; None when a replica count does not read as a number.
    pub fn replicas_changed(&self) -> Option<u64> {
        if !self.has_replicas() || self.skipped.is_some() {
            return Some(0);
        }
        let from: i64 = self.from.trim().parse().ok()?;
        let to: i64 = self.to.trim().parse().ok()?;
        Some(from.abs_diff(to))
    }

    /// Replicas changed × per-replica request; None when this entry lacks the request figures
    /// (an older record) or its counts do not read.
    pub fn requested(&self) -> Option<Requested> {
        if !self.has_replicas() || self.skipped.is_some() {
            return Some(Requested::default());
        }
        let replicas = self.replicas_changed()?;
        let per_replica = PodRequest {
            cpu_millicores: self.cpu_millicores?,
            memory_bytes: self.memory_bytes?,
            ..PodRequest::default()
        };
        Some(Requested::of(&per_replica, replicas))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Hash key.
    pub namespace_name: String,
    /// Range key: epoch seconds; the fractional part keeps keys unique within a run.
    pub timestamp_start: f64,
    pub timestamp_end: f64,
    pub duration_ms: u64,
    pub operation_type: OperationType,
    pub cost_center: String,
    pub cluster_name: String,
    /// `system` for scheduled runs.
    pub requested_by: String,
    pub status: AuditStatus,
    pub run_id: String,
    pub resources: Vec<ResourceChange>,
    pub error: Option<String>,
    /// End of the activation window, when the operation opened one (RFC 3339).
    pub active_until: Option<String>,
}

/// The table's TTL attribute (`TimeToLiveSpecification` of infrastructure/dynamodb-tables.yaml).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// How long an audit record is kept before the table's TTL may delete it.
pub const RETENTION_DAYS: i64 = 400;
/// BatchWriteItem's limit.
pub const BATCH_SIZE: usize = 25;
/// Attempts per batch (throttling, 5xx, timeouts, unprocessed items); with [`dynamo::backoff`]
/// the waits add up to about 3 s at most.
pub const MAX_ATTEMPTS: u32 = 7;
/// No retry starts after this long into one `write_all` (or, streaming, into one batch).
pub const RETRY_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);
/// Batches written at once.
const CONCURRENT_BATCHES: usize = 4;

impl std::str::FromStr for OperationType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [
            OperationType::Activate,
            OperationType::Deactivate,
            OperationType::AutoStartupBusinessHours,
            OperationType::AutoShutdownBusinessHours,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| format!("unknown operation_type {s:?}"))
    }
}

impl std::str::FromStr for AuditStatus {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [
            AuditStatus::Completed,
            AuditStatus::Failed,
            AuditStatus::RolledBack,
            AuditStatus::Rejected,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| format!("unknown status {s:?}"))
    }
}

impl AuditRecord {
    /// What the namespace's changes freed (a deactivation) or restored (an activation): the sum
    /// over `resources` of replicas changed × per-replica request. None when an entry with
    /// replicas lacks request figures (records written before docs/reference.md §8). Derived, never stored
    /// apart from `resources`, so the two cannot disagree; `to_item` writes it as
    /// `cpu_millicores_total` / `memory_bytes_total` for readers of the table.
    pub fn totals(&self) -> Option<Requested> {
        self.resources.iter().map(ResourceChange::requested).sum()
    }
}

/// Attribute names of [`AuditRecord::totals`] in the item.
pub const CPU_TOTAL_ATTRIBUTE: &str = "cpu_millicores_total";
pub const MEMORY_TOTAL_ATTRIBUTE: &str = "memory_bytes_total";

/// Reads the `resources` list of an item (absent = none). Numbers are accepted where strings
/// are expected (an older writer); unreadable request figures read as absent.
pub fn resources_from_attribute(value: Option<&AttributeValue>) -> std::result::Result<Vec<ResourceChange>, String> {
    let Some(AttributeValue::L(list)) = value else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|v| match v {
            AttributeValue::M(m) => {
                let f = |k: &str| match m.get(k) {
                    Some(AttributeValue::S(v)) => v.clone(),
                    Some(AttributeValue::N(v)) => v.clone(),
                    _ => String::new(),
                };
                let n = |k: &str| match m.get(k) {
                    Some(AttributeValue::N(v)) => v.parse::<u64>().ok(),
                    _ => None,
                };
                Ok(ResourceChange {
                    kind: f("kind"),
                    name: f("name"),
                    from: f("from"),
                    to: f("to"),
                    cpu_millicores: n("cpu_millicores"),
                    memory_bytes: n("memory_bytes"),
                    skipped: m.get("skipped").map(|_| f("skipped")),
                })
            }
            other => Err(format!("resources: expected maps, got {other:?}")),
        })
        .collect()
}

/// A number as DynamoDB wants it: the shortest decimal that reads back as the same `f64`.
fn number(n: f64) -> AttributeValue {
    AttributeValue::N(format!("{n}"))
}

impl AuditRecord {
    /// The DynamoDB item (docs/reference.md §6), plus `expires_at` (epoch seconds) for the table's TTL.
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let s = |v: &str| AttributeValue::S(v.to_string());
        let mut item = HashMap::from([
            ("namespace_name".to_string(), s(&self.namespace_name)),
            ("timestamp_start".to_string(), number(self.timestamp_start)),
            ("timestamp_end".to_string(), number(self.timestamp_end)),
            (
                "duration_ms".to_string(),
                AttributeValue::N(self.duration_ms.to_string()),
            ),
            ("operation_type".to_string(), s(self.operation_type.as_str())),
            ("cost_center".to_string(), s(&self.cost_center)),
            ("cluster_name".to_string(), s(&self.cluster_name)),
            ("requested_by".to_string(), s(&self.requested_by)),
            ("status".to_string(), s(self.status.as_str())),
            ("run_id".to_string(), s(&self.run_id)),
            (
                "resources".to_string(),
                AttributeValue::L(
                    self.resources
                        .iter()
                        .map(|r| {
                            let mut entry = HashMap::from([
                                ("kind".to_string(), s(&r.kind)),
                                ("name".to_string(), s(&r.name)),
                                ("from".to_string(), s(&r.from)),
                                ("to".to_string(), s(&r.to)),
                            ]);
                            for (key, value) in [("cpu_millicores", r.cpu_millicores), ("memory_bytes", r.memory_bytes)]
                            {
                                if let Some(v) = value {
                                    entry.insert(key.to_string(), AttributeValue::N(v.to_string()));
                                }
                            }
                            if let Some(why) = &r.skipped {
                                entry.insert("skipped".to_string(), s(why));
                            }
                            AttributeValue::M(entry)
                        })
                        .collect(),
                ),
            ),
            (
                TTL_ATTRIBUTE.to_string(),
                AttributeValue::N((self.timestamp_start.floor() as i64 + RETENTION_DAYS * 86_400).to_string()),
            ),
        ]);
        if let Some(error) = &self.error {
            item.insert("error".to_string(), s(error));
        }
        if let Some(until) = &self.active_until {
            item.insert("active_until".to_string(), s(until));
        }
        if let Some(totals) = self.totals() {
            let n = |v: u64| AttributeValue::N(v.to_string());
            item.insert(CPU_TOTAL_ATTRIBUTE.to_string(), n(totals.cpu_millicores));
            item.insert(MEMORY_TOTAL_ATTRIBUTE.to_string(), n(totals.memory_bytes));
        }
        item
    }

    /// Reads an item back. Unknown attributes (e.g. `expires_at`, and the totals, which are
    /// derived from `resources`) are ignored; a missing `resources`, `run_id` or `duration_ms`
    /// (older records) reads as empty / 0, missing request figures as None.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> std::result::Result<Self, String> {
        let s = |k: &str| -> std::result::Result<String, String> {
            match item.get(k) {
                Some(AttributeValue::S(v)) => Ok(v.clone()),
                Some(other) => Err(format!("{k}: expected a string, got {other:?}")),
                None => Err(format!("{k}: missing")),
            }
        };
        let opt_s = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) => Some(v.clone()),
            _ => None,
        };
        let n = |k: &str| -> std::result::Result<f64, String> {
            match item.get(k) {
                Some(AttributeValue::N(v)) => v.parse().map_err(|_| format!("{k}: {v:?} is not a number")),
                Some(other) => Err(format!("{k}: expected a number, got {other:?}")),
                None => Err(format!("{k}: missing")),
            }
        };
        let resources = resources_from_attribute(item.get("resources"))?;
        Ok(AuditRecord {
            namespace_name: s("namespace_name")?,
            timestamp_start: n("timestamp_start")?,
            timestamp_end: n("timestamp_end")?,
            duration_ms: n("duration_ms").map(|v| v.max(0.0) as u64).unwrap_or(0),
            operation_type: s("operation_type")?.parse()?,
            cost_center: s("cost_center")?,
            cluster_name: s("cluster_name")?,
            requested_by: s("requested_by")?,
            status: s("status")?.parse()?,
            run_id: opt_s("run_id").unwrap_or_default(),
            resources,
            error: opt_s("error"),
            active_until: opt_s("active_until"),
        })
    }

    /// The whole record as one JSON line: what is logged when it cannot be written.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{self:?} (not serializable: {e})"))
    }
}

/// Writes audit records to the audit table (docs/reference.md §6): batched, retried, never dropped silently.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    client: Client,
    table: String,
}

impl AuditWriter {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        AuditWriter {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// BatchWriteItem in chunks of 25 (a few chunks at once); `UnprocessedItems`, throttling, 5xx,
    /// timeouts and connection failures are retried with backoff, at most [`MAX_ATTEMPTS`] times
    /// per chunk within [`RETRY_BUDGET`] per chunk. Each chunk is retried on its own: one giving
    /// up never stops the others (a throttling burst or a blip may pass). Every record that
    /// still is not written is logged whole (its JSON) at ERROR.
    /// `Ok(written)` when all were written, `Err(Error::Dynamo("N of M audit records could not be
    /// written ..."))` otherwise.
    pub async fn write_all(&self, records: &[AuditRecord]) -> Result<usize> {
        if records.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let results: Vec<(usize, Vec<(usize, String)>)> = futures::stream::iter(
            records
                .chunks(BATCH_SIZE)
                .enumerate()
                .map(|(i, chunk)| self.write_chunk(i * BATCH_SIZE, chunk)),
        )
        .buffer_unordered(CONCURRENT_BATCHES)
        .collect()
        .await;

        let written: usize = results.iter().map(|(w, _)| w).sum();
        let mut failed: Vec<(usize, String)> = results.into_iter().flat_map(|(_, f)| f).collect();
        failed.sort_by_key(|(i, _)| *i);
        for (index, reason) in &failed {
            log_unwritten(&self.table, &records[*index], reason);
        }
        tracing::debug!(
            table = %self.table,
            written,
            failed = failed.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "audit records written"
        );
        if failed.is_empty() {
            Ok(written)
        } else {
            let reason = &failed[0].1;
            Err(Error::Dynamo(format!(
                "{} of {} audit records could not be written to {} ({reason}); each is logged whole at ERROR",
                failed.len(),
                records.len(),
                self.table
            )))
        }
    }

    /// Writes one chunk, with its own retries and its own [`RETRY_BUDGET`] from now; returns
    /// how many were written and, for each record not written, its index in the whole slice
    /// and why.
    async fn write_chunk(&self, offset: usize, chunk: &[AuditRecord]) -> (usize, Vec<(usize, String)>) {
        let deadline = std::time::Instant::now() + RETRY_BUDGET;
        // Pending requests, each with the index of its record, so unprocessed items map back.
        let mut pending: Vec<(usize, WriteRequest)> = Vec::with_capacity(chunk.len());
        for (i, record) in chunk.iter().enumerate() {
            match PutRequest::builder().set_item(Some(record.to_item())).build() {
                Ok(put) => pending.push((offset + i, WriteRequest::builder().put_request(put).build())),
                Err(e) => return (0, vec![(offset + i, e.to_string())]),
            }
        }
        let total = pending.len();
        let mut reason = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                let wait = dynamo::backoff(attempt - 1);
                if std::time::Instant::now() + wait > deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            let requests: Vec<WriteRequest> = pending.iter().map(|(_, r)| r.clone()).collect();
            let sent = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .customize()
                .config_override(single_attempt())
                .send()
                .await;
            match sent {
                Ok(out) => {
                    let unprocessed = out
                        .unprocessed_items
                        .and_then(|mut m| m.remove(&self.table))
                        .unwrap_or_default();
                    if unprocessed.is_empty() {
                        return (total, Vec::new());
                    }
                    // Keep only the requests DynamoDB handed back (matched by item).
                    pending.retain(|(_, r)| unprocessed.contains(r));
                    reason = format!("{} item(s) still unprocessed (throttled)", pending.len());
                }
                Err(e) => {
                    reason = dynamo::describe(&e);
                    if !dynamo::is_retryable(&e) {
                        if pending.len() > 1 && e.code() == Some("ValidationException") {
                            // One bad item fails the whole batch: write the others one by one.
                            return self.write_singly(pending, &reason).await;
                        }
                        break;
                    }
                }
            }
            tracing::warn!(table = %self.table, attempt = attempt + 1, pending = pending.len(), reason = %reason, "audit batch write retried");
        }
        let failed = pending
            .into_iter()
            .map(|(i, _)| (i, reason.clone()))
            .collect::<Vec<_>>();
        (total - failed.len(), failed)
    }

    async fn write_singly(
        &self,
        pending: Vec<(usize, WriteRequest)>,
        batch_reason: &str,
    ) -> (usize, Vec<(usize, String)>) {
        let mut written = 0;
        let mut failed = Vec::new();
        for (index, request) in pending {
            let sent = self
                .client
                .batch_write_item()
                .request_items(&self.table, vec![request])
                .customize()
                .config_override(single_attempt())
                .send()
                .await;
            match sent {
                Ok(out)
                    if out
                        .unprocessed_items
                        .as_ref()
                        .is_none_or(|m| m.values().all(Vec::is_empty)) =>
                {
                    written += 1
                }
                Ok(_) => failed.push((index, format!("unprocessed after a rejected batch ({batch_reason})"))),
                Err(e) => failed.push((index, dynamo::describe(&e))),
            }
        }
        (written, failed)
    }
}

/// A record that will not be written: logged whole (its JSON) at ERROR.
fn log_unwritten(table: &str, record: &AuditRecord, reason: &str) {
    let json = record.to_json();
    tracing::error!(
        table = %table,
        namespace = %record.namespace_name,
        reason = %reason,
        record = %json,
        "audit record could not be written: {json}"
    );
}

/// Our own loop retries (with the budget above); the SDK's retries would multiply it.
fn single_attempt() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
}
