//! One audit record as `history` shows it. Hostile until parsed: an item that does not read is
//! an [`Unreadable`] named by its key, never the end of the listing.

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use super::query::Item;
use crate::audit::{self, AuditStatus, OperationType, ResourceChange};

/// A record that reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Entry {
    pub timestamp_start: f64,
    pub timestamp_end: Option<f64>,
    pub duration_ms: Option<u64>,
    pub namespace: String,
    pub cluster: String,
    pub cost_center: String,
    pub operation: OperationType,
    /// One of the audit's statuses (`completed`, `failed`, `rolled_back`, `rejected`,
    /// `in_progress`, `interrupted`).
    pub status: String,
    pub requested_by: String,
    pub run_id: Option<String>,
    pub active_until: Option<String>,
    pub error: Option<String>,
    pub resources: Vec<ResourceChange>,
}

/// A record that does not read: its key, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    pub namespace_name: String,
    pub timestamp_start: String,
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "audit record namespace_name={:?} timestamp_start={}: {}",
            self.namespace_name, self.timestamp_start, self.reason
        )
    }
}

impl Entry {
    pub fn from_item(item: &Item) -> Result<Entry, Unreadable> {
        let raw = |k: &str| match item.get(k) {
            Some(AttributeValue::S(v)) | Some(AttributeValue::N(v)) => v.clone(),
            Some(other) => format!("<{}>", crate::dynamo::type_name(other)),
            None => "<missing>".to_string(),
        };
        Self::parse(item).map_err(|reason| Unreadable {
            namespace_name: raw("namespace_name"),
            timestamp_start: raw("timestamp_start"),
            reason,
        })
    }

    fn parse(item: &Item) -> Result<Entry, String> {
        let item = crate::dynamo::item::Item(item);
        let text = |k: &str| item.required_string(k).map(str::to_string).map_err(|e| e.to_string());
        // `NULL` reads as absent in the optional attributes.
        let optional_text = |k: &str| match item.absent_or_null(k) {
            true => Ok(None),
            false => text(k).map(Some),
        };
        let number = |k: &str| match item.absent_or_null(k) {
            true => Ok(None),
            false => item.number(k).map_err(|e| e.to_string()),
        };
        let timestamp_start = number("timestamp_start")?.ok_or("timestamp_start: missing")?;
        let operation = text("operation_type")?;
        let operation: OperationType = operation.parse().map_err(|e| format!("operation_type: {e}"))?;
        let status = text("status")?;
        if status.parse::<AuditStatus>().is_err() {
            return Err(format!("status: unknown status {status:?}"));
        }
        Ok(Entry {
            timestamp_start,
            timestamp_end: number("timestamp_end")?,
            duration_ms: number("duration_ms")?.map(|v| v.max(0.0) as u64),
            namespace: text("namespace_name")?,
            cluster: text("cluster_name")?,
            cost_center: text("cost_center")?,
            operation,
            status,
            requested_by: text("requested_by")?,
            run_id: optional_text("run_id")?,
            active_until: optional_text("active_until")?,
            error: optional_text("error")?,
            resources: audit::resources_of(item)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> Item {
        let s = |v: &str| AttributeValue::S(v.into());
        let n = |v: &str| AttributeValue::N(v.into());
        Item::from([
            ("namespace_name".into(), s("dev-api")),
            ("timestamp_start".into(), n("1764111600.25")),
            ("timestamp_end".into(), n("1764111601.5")),
            ("duration_ms".into(), n("1250")),
            ("operation_type".into(), s("activate")),
            ("cost_center".into(), s("IT-DEVELOPMENT")),
            ("cluster_name".into(), s("eks-a")),
            ("requested_by".into(), s("ana")),
            ("status".into(), s("completed")),
            ("run_id".into(), s("run-1")),
            ("active_until".into(), s("2026-11-25T22:00:00-05:00")),
            ("expires_at".into(), n("1")),
        ])
    }

    #[test]
    fn every_status_of_the_audit_reads_including_the_write_ahead_ones() {
        for status in [
            "completed",
            "failed",
            "rolled_back",
            "rejected",
            "in_progress",
            "interrupted",
        ] {
            let mut i = item();
            i.insert("status".into(), AttributeValue::S(status.into()));
            assert_eq!(Entry::from_item(&i).unwrap().status, status);
        }
        let e = Entry::from_item(&item()).unwrap();
        assert_eq!(
            (
                e.namespace.as_str(),
                e.timestamp_start,
                e.duration_ms,
                e.run_id.as_deref()
            ),
            ("dev-api", 1764111600.25, Some(1250), Some("run-1"))
        );
        assert!(e.resources.is_empty() && e.error.is_none());
    }

    #[test]
    fn hostile_records_are_named_with_what_does_not_read() {
        let with = |k: &str, v: Option<AttributeValue>| {
            let mut i = item();
            match v {
                Some(v) => i.insert(k.into(), v),
                None => i.remove(k),
            };
            i
        };
        let s = |v: &str| Some(AttributeValue::S(v.into()));
        let cases = [
            (with("status", s("exploded")), "status: unknown status \"exploded\""),
            (
                with("operation_type", s("reboot")),
                "operation_type: unknown operation_type \"reboot\"",
            ),
            (
                with("cluster_name", None),
                "cluster_name: missing (expected a string, S)",
            ),
            (
                with("cost_center", Some(AttributeValue::Bool(true))),
                "cost_center: the boolean true (expected a string, S)",
            ),
            (
                with("timestamp_end", s("soon")),
                "timestamp_end: the string \"soon\" (expected a number, N)",
            ),
            (
                with(
                    "resources",
                    Some(AttributeValue::L(vec![AttributeValue::S("x".into())])),
                ),
                "resources: element 1 is the string \"x\" (expected a list of maps, L of M)",
            ),
        ];
        for (i, want) in cases {
            let u = Entry::from_item(&i).unwrap_err();
            assert!(u.reason.contains(want), "{want:?} not in {u}");
            assert_eq!(
                (u.namespace_name.as_str(), u.timestamp_start.as_str()),
                ("dev-api", "1764111600.25")
            );
            assert!(u
                .to_string()
                .starts_with("audit record namespace_name=\"dev-api\" timestamp_start=1764111600.25: "));
        }
    }
}
