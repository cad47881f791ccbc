//! Audit trail (docs/reference.md §6): one record per namespace per operation, compatible with the existing
//! `task-scheduler-logs-{env}` table and its four GSIs.
//!
//! Write-ahead: before a namespace's first write its intent (`in_progress`, the planned
//! resources) is in the table under the key its final record will have; the final record
//! overwrites it. [`journal`] closes what a dead run left `in_progress` (`interrupted`).
//! The record types are the contract with `scaling`.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};

use crate::dynamo;
use crate::resources::{PodRequest, Requested};

mod item;
pub mod journal;
mod stream;
pub(crate) use item::{key, resources_of};
pub use stream::{AuditSink, AuditStream, AuditTable, IDLE_FLUSH};
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
    /// Every operation the audit writes.
    pub const ALL: [OperationType; 4] = [
        OperationType::Activate,
        OperationType::Deactivate,
        OperationType::AutoStartupBusinessHours,
        OperationType::AutoShutdownBusinessHours,
    ];

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
    /// An intent: the namespace's writes are about to start (or going on). Never final: the
    /// same item is overwritten with the final status, or closed as `interrupted`.
    InProgress,
    /// Closed by a later run: the run that wrote the intent died (or could not record its
    /// end). Its `resources` say what that later run found on each object.
    Interrupted,
}

impl AuditStatus {
    pub const ALL: [AuditStatus; 6] = [
        AuditStatus::Completed,
        AuditStatus::Failed,
        AuditStatus::RolledBack,
        AuditStatus::Rejected,
        AuditStatus::InProgress,
        AuditStatus::Interrupted,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            AuditStatus::Completed => "completed",
            AuditStatus::Failed => "failed",
            AuditStatus::RolledBack => "rolled_back",
            AuditStatus::Rejected => "rejected",
            AuditStatus::InProgress => "in_progress",
            AuditStatus::Interrupted => "interrupted",
        }
    }

    /// Every status but `in_progress` ends a record's life.
    pub fn is_final(&self) -> bool {
        *self != AuditStatus::InProgress
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
    /// In an `interrupted` record: the value the closing run found on the object (`gone` when
    /// it no longer exists); absent when it could not look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    /// In an `interrupted` record: whether the object was found at `to`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reached: Option<bool>,
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
            found: None,
            reached: None,
        }
    }

    /// An object left as it is, and why (a refusal, an unreadable annotation): it freed
    /// nothing, so no request figures.
    pub fn left_alone(kind: &str, name: &str, from: &str, to: &str, why: &str) -> Self {
        ResourceChange {
            skipped: Some(why.into()),
            ..ResourceChange::changed(kind, name, from, to, None)
        }
    }

    /// Whether this entry describes a change that took effect: not skipped, and in an
    /// `interrupted` record found at `to`.
    pub fn took_effect(&self) -> bool {
        self.skipped.is_none() && self.reached != Some(false)
    }

    /// Whether this kind has replicas, hence requests that a change frees or restores.
    pub fn has_replicas(&self) -> bool {
        crate::kinds::Kind::named(&self.kind).is_some_and(|k| k.has_replicas())
    }

    /// Replicas removed (`from − to`, a down) or restored (`to − from`, an up); 0 for other
    /// kinds; None when a replica count does not read as a number.
    pub fn replicas_changed(&self) -> Option<u64> {
        if !self.has_replicas() || !self.took_effect() {
            return Some(0);
        }
        let from: i64 = self.from.trim().parse().ok()?;
        let to: i64 = self.to.trim().parse().ok()?;
        Some(from.abs_diff(to))
    }

    /// Replicas changed × per-replica request; None when this entry lacks the request figures
    /// (an older record) or its counts do not read.
    pub fn requested(&self) -> Option<Requested> {
        if !self.has_replicas() || !self.took_effect() {
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
    /// For an `interrupted` record: the run that closed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
}

/// The table's TTL attribute (`TimeToLiveSpecification` of infrastructure/dynamodb-tables.yaml).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// How long an audit record is kept before the table's TTL may delete it.
pub const RETENTION_DAYS: i64 = 400;
/// BatchWriteItem's limit.
pub const BATCH_SIZE: usize = 25;
/// Attempts per batch (throttling, 5xx, timeouts, unprocessed items); with [`crate::backoff::DYNAMODB`]
/// the waits add up to about 3 s at most.
pub const MAX_ATTEMPTS: u32 = 7;
/// No retry of a batch starts after this long into it.
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
        AuditStatus::ALL
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

    /// Whether the record describes a change of its namespace that took effect: `completed`,
    /// or `interrupted` with at least one object found at its `to` (`in_progress` never is).
    pub fn took_effect(&self) -> bool {
        match self.status {
            AuditStatus::Completed => true,
            AuditStatus::Interrupted => self.resources.iter().any(|r| r.reached == Some(true)),
            _ => false,
        }
    }
}

/// Attribute names of [`AuditRecord::totals`] in the item.
pub const CPU_TOTAL_ATTRIBUTE: &str = "cpu_millicores_total";
pub const MEMORY_TOTAL_ATTRIBUTE: &str = "memory_bytes_total";

/// One write of the audit table.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditWrite {
    /// A record: an intent, or the final state written over it.
    Put(Box<AuditRecord>),
    /// Removes the intent of a namespace that never started (a stop came first): nothing
    /// changed, so nothing is recorded.
    Delete {
        namespace_name: String,
        timestamp_start: f64,
    },
}

impl AuditWrite {
    fn request(&self) -> std::result::Result<WriteRequest, String> {
        match self {
            AuditWrite::Put(r) => PutRequest::builder()
                .set_item(Some(r.to_item()))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
                .map_err(|e| e.to_string()),
            AuditWrite::Delete {
                namespace_name,
                timestamp_start,
            } => DeleteRequest::builder()
                .set_key(Some(key(namespace_name, *timestamp_start)))
                .build()
                .map(|delete| WriteRequest::builder().delete_request(delete).build())
                .map_err(|e| e.to_string()),
        }
    }

    /// Shifts the timestamps (`NS_SCHEDULER_AUDIT_CLOCK=decision`).
    pub fn shifted(mut self, by: f64) -> Self {
        match &mut self {
            AuditWrite::Put(r) => {
                r.timestamp_start += by;
                r.timestamp_end += by;
            }
            AuditWrite::Delete { timestamp_start, .. } => *timestamp_start += by,
        }
        self
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

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes one chunk (at most [`BATCH_SIZE`]), with its own retries (at most `attempts`) and
    /// its own [`RETRY_BUDGET`] from now; returns how many were written and, for each write not
    /// done, its index in the whole slice and why. Logs nothing: the caller does.
    pub(crate) async fn write_chunk(
        &self,
        offset: usize,
        chunk: &[AuditWrite],
        attempts: u32,
    ) -> (usize, Vec<(usize, String)>) {
        let deadline = std::time::Instant::now() + RETRY_BUDGET;
        // Pending requests, each with the index of its write, so unprocessed items map back.
        let mut pending: Vec<(usize, WriteRequest)> = Vec::with_capacity(chunk.len());
        for (i, write) in chunk.iter().enumerate() {
            match write.request() {
                Ok(request) => pending.push((offset + i, request)),
                Err(e) => return (0, vec![(offset + i, e)]),
            }
        }
        let total = pending.len();
        let mut reason = String::new();
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                let wait = crate::backoff::DYNAMODB.delay(attempt - 1);
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

/// A write that will not be done: a record is logged whole (its JSON) at ERROR — that line is
/// its record; an intent that could not be deleted is named with its key.
fn log_unwritten(table: &str, write: &AuditWrite, reason: &str) {
    match write {
        AuditWrite::Put(record) => {
            let json = record.to_json();
            tracing::error!(
                table = %table,
                namespace = %record.namespace_name,
                reason = %reason,
                record = %json,
                "audit record could not be written: {json}"
            );
        }
        AuditWrite::Delete {
            namespace_name,
            timestamp_start,
        } => tracing::error!(
            table = %table,
            namespace = %namespace_name,
            timestamp_start,
            reason = %reason,
            "the intent of a namespace that never started could not be deleted; it stays in_progress until the next run closes it"
        ),
    }
}

/// Our own loop retries (with the budget above); the SDK's retries would multiply it.
pub(crate) fn single_attempt() -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
}
