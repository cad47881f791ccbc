//! An audit record as a DynamoDB item (docs/reference.md §6) and back. Readers are lenient about
//! records older writers left (missing `resources`, `run_id`, request figures), strict about the
//! keys and the status.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::dynamo::item::Item;

use super::{AuditRecord, ResourceChange, CPU_TOTAL_ATTRIBUTE, MEMORY_TOTAL_ATTRIBUTE, RETENTION_DAYS, TTL_ATTRIBUTE};

/// Reads the `resources` list of an item (absent, or not a list: none). Numbers are accepted
/// where strings are expected (an older writer); unreadable request figures read as absent.
pub(crate) fn resources_of(item: Item<'_>) -> std::result::Result<Vec<ResourceChange>, String> {
    if !matches!(item.0.get("resources"), Some(AttributeValue::L(_))) {
        return Ok(Vec::new());
    }
    let entries = item.maps("resources").map_err(|e| e.to_string())?.unwrap_or_default();
    Ok(entries
        .into_iter()
        .map(|m| {
            let f = |k: &str| m.text(k).unwrap_or_default().to_string();
            let n = |k: &str| m.count(k).ok().flatten();
            ResourceChange {
                kind: f("kind"),
                name: f("name"),
                from: f("from"),
                to: f("to"),
                cpu_millicores: n("cpu_millicores"),
                memory_bytes: n("memory_bytes"),
                skipped: m.0.get("skipped").map(|_| f("skipped")),
                found: m.0.get("found").map(|_| f("found")),
                reached: m.boolean("reached").ok().flatten(),
            }
        })
        .collect())
}

/// A number as DynamoDB wants it: the shortest decimal that reads back as the same `f64`.
pub(super) fn number(n: f64) -> AttributeValue {
    AttributeValue::N(format!("{n}"))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn resource_item(r: &ResourceChange) -> AttributeValue {
    let mut entry = HashMap::from([
        ("kind".to_string(), s(&r.kind)),
        ("name".to_string(), s(&r.name)),
        ("from".to_string(), s(&r.from)),
        ("to".to_string(), s(&r.to)),
    ]);
    for (key, value) in [("cpu_millicores", r.cpu_millicores), ("memory_bytes", r.memory_bytes)] {
        if let Some(v) = value {
            entry.insert(key.to_string(), AttributeValue::N(v.to_string()));
        }
    }
    for (key, value) in [("skipped", &r.skipped), ("found", &r.found)] {
        if let Some(v) = value {
            entry.insert(key.to_string(), s(v));
        }
    }
    if let Some(reached) = r.reached {
        entry.insert("reached".to_string(), AttributeValue::Bool(reached));
    }
    AttributeValue::M(entry)
}

impl AuditRecord {
    /// The item's key: (`namespace_name`, `timestamp_start`).
    pub fn key(&self) -> HashMap<String, AttributeValue> {
        key(&self.namespace_name, self.timestamp_start)
    }

    /// The DynamoDB item (docs/reference.md §6), plus `expires_at` (epoch seconds) for the table's TTL.
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let mut item = self.key();
        item.extend([
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
                AttributeValue::L(self.resources.iter().map(resource_item).collect()),
            ),
            (
                TTL_ATTRIBUTE.to_string(),
                AttributeValue::N((self.timestamp_start.floor() as i64 + RETENTION_DAYS * 86_400).to_string()),
            ),
        ]);
        for (key, value) in [
            ("error", &self.error),
            ("active_until", &self.active_until),
            ("closed_by", &self.closed_by),
        ] {
            if let Some(v) = value {
                item.insert(key.to_string(), s(v));
            }
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
        let item = Item(item);
        let s = |k: &str| item.required_string(k).map(str::to_string).map_err(|e| e.to_string());
        let opt_s = |k: &str| item.string(k).ok().flatten().map(str::to_string);
        let n = |k: &str| item.required_number(k).map_err(|e| e.to_string());
        let resources = resources_of(item)?;
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
            closed_by: opt_s("closed_by"),
        })
    }

    /// The whole record as one JSON line: what is logged when it cannot be written.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{self:?} (not serializable: {e})"))
    }
}

/// The key of the item of `namespace` started at `timestamp_start`.
pub fn key(namespace: &str, timestamp_start: f64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("namespace_name".to_string(), s(namespace)),
        ("timestamp_start".to_string(), number(timestamp_start)),
    ])
}
