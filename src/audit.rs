//! Audit trail (SPEC §6): one record per namespace per operation, compatible with the existing
//! `task-scheduler-logs-{env}` table and its four GSIs.
//! OWNER of the writer: DynamoDB engineer. The record types are the contract with `scaling`.

use serde::{Deserialize, Serialize};

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
    pub to: String,
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
