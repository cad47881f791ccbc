//! Weekly report from the audit table (docs/reference.md §1 `report`, §8): active hours, hours down and
//! what they saved.
//!
//! A namespace becomes active at the `timestamp_end` of a completed activating operation
//! (`activate`, `auto_startup_business_hours`) and inactive at that of a completed deactivating
//! one (`deactivate`, `auto_shutdown_business_hours`). An `interrupted` record (its run died)
//! counts as the change it was when objects were found changed, with only those objects; an
//! `in_progress` one never counts. Intervals are clipped to the ISO week (in
//! the business time zone) and to "now" for the current week. The interval arithmetic is pure:
//! active hours here, hours down and savings in [`savings`], the table with its totals in
//! [`table`]; [`load_transitions`] reads the audit table, for one cluster or the whole fleet.

pub(crate) mod savings;
pub(crate) mod table;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::audit::{self, AuditStatus, OperationType, ResourceChange};
use crate::dynamo::item::Item;
use crate::error::{Error, Result};
use crate::history::query::{self, AuditKey, AuditQuery};
use crate::resources::Requested;

/// One completed change of a namespace's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub namespace: String,
    pub cost_center: String,
    /// Epoch seconds at which the namespace reached its new state (the record's `timestamp_end`).
    pub at: f64,
    pub activates: bool,
    /// What a deactivation scaled down (empty for an activation).
    pub scaled_down: Vec<ScaledDown>,
    /// The record carries request figures (its namespace totals): written since docs/reference.md §8. A
    /// deactivation without them still gives hours down, with savings unknown.
    pub requests_known: bool,
}

/// One workload a deactivation scaled down.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledDown {
    /// `Kind/name`.
    pub workload: String,
    /// Replicas removed.
    pub replicas: u64,
    pub per_replica: Requested,
}

/// Active time of one namespace, charged to the cost center of the operation that activated it.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub namespace: String,
    pub cost_center: String,
    pub seconds: f64,
}

/// Seconds each namespace was active within `[start, end)` (epoch seconds), one row per
/// (namespace, cost center) with a positive total, sorted. The state at `start` comes from the
/// transitions before it; a repeated activation keeps the first start; a deactivation of an
/// inactive namespace is ignored; a namespace still active at `end` is counted up to `end`.
pub fn active_seconds(transitions: &[Transition], start: f64, end: f64) -> Vec<Usage> {
    let mut by_namespace: BTreeMap<&str, Vec<&Transition>> = BTreeMap::new();
    for t in transitions {
        by_namespace.entry(t.namespace.as_str()).or_default().push(t);
    }
    let mut totals: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut add = |ns: &str, cc: &str, from: f64, to: f64| {
        let (from, to) = (from.max(start), to.min(end));
        if to > from {
            *totals.entry((ns.to_string(), cc.to_string())).or_default() += to - from;
        }
    };
    for (ns, mut events) in by_namespace {
        events.sort_by(|a, b| a.at.total_cmp(&b.at));
        let mut open: Option<(f64, &str)> = None;
        for t in events {
            if t.at >= end {
                break;
            }
            match (t.activates, open) {
                (true, None) => open = Some((t.at, &t.cost_center)),
                (false, Some((since, cc))) => {
                    add(ns, cc, since, t.at);
                    open = None;
                }
                // Repeated up, or down while already down: no change of state.
                _ => {}
            }
        }
        if let Some((since, cc)) = open {
            add(ns, cc, since, end);
        }
    }
    totals
        .into_iter()
        .map(|((namespace, cost_center), seconds)| Usage {
            namespace,
            cost_center,
            seconds,
        })
        .collect()
}

/// `YYYY-Www` (e.g. `2026-W48`): Monday 00:00 to the next Monday 00:00 in `tz`, as UTC instants.
pub fn iso_week_bounds(week: &str, tz: Tz) -> std::result::Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let bad = || format!("{week:?} is not an ISO week like 2026-W48");
    let (year, w) = week.trim().split_once(['W', 'w']).ok_or_else(bad)?;
    let year: i32 = year.strip_suffix('-').unwrap_or(year).parse().map_err(|_| bad())?;
    if w.len() != 2 {
        return Err(bad());
    }
    let w: u32 = w.parse().map_err(|_| bad())?;
    let monday =
        NaiveDate::from_isoywd_opt(year, w, Weekday::Mon).ok_or_else(|| format!("{year} has no ISO week {w:02}"))?;
    let next = monday + chrono::Days::new(7);
    Ok((local_midnight(monday, tz), local_midnight(next, tz)))
}

/// The first instant of `date` in `tz` (midnight, or the end of a DST gap that swallows it).
fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut t = date.and_hms_opt(0, 0, 0).expect("midnight exists");
    for _ in 0..4 {
        if let Some(local) = tz.from_local_datetime(&t).earliest() {
            return local.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&t)
}

/// Whose records a report reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One cluster's, through the cluster GSI.
    Cluster(String),
    /// Every cluster's that writes to the table: one Query per operation type (the
    /// operation-type GSI), never a Scan.
    Fleet,
}

/// Completed transitions recorded up to `until` (epoch seconds) by the clusters of `scope`, by
/// cluster, paginated. It reads from the beginning of the table (bounded by the audit TTL) so
/// that a namespace activated long before the week and never touched since is still seen as
/// active. Records of unknown operation types are skipped. Returns the transitions of each
/// cluster and how many audit records were read.
pub async fn load_transitions(
    client: &Client,
    table: &str,
    scope: &Scope,
    until: f64,
) -> Result<(BTreeMap<String, Vec<Transition>>, usize)> {
    let keys = match scope {
        Scope::Cluster(cluster) => vec![AuditKey::Cluster(cluster.clone())],
        Scope::Fleet => AuditKey::every_operation(),
    };
    let filters = [(
        "status",
        vec![
            AuditStatus::Completed.as_str().to_string(),
            AuditStatus::Interrupted.as_str().to_string(),
        ],
    )];
    let projection = [
        "timestamp_end",
        "operation_type",
        "cost_center",
        "cluster_name",
        "resources",
        audit::CPU_TOTAL_ATTRIBUTE,
        audit::MEMORY_TOTAL_ATTRIBUTE,
        "status",
    ];
    let mut by_cluster: BTreeMap<String, Vec<Transition>> = BTreeMap::new();
    let mut read = 0;
    for key in &keys {
        let q = AuditQuery {
            key,
            since: None,
            until,
            filters: &filters,
            projection: Some(&projection),
        };
        query::query(client, table, &q, |item| {
            read += 1;
            let cluster = Item(&item)
                .string("cluster_name")
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string();
            match transition(&item) {
                Some(t) => by_cluster.entry(cluster).or_default().push(t),
                None => tracing::debug!(?item, "audit record skipped by the report"),
            }
        })
        .await?;
    }
    Ok((by_cluster, read))
}

/// The transition an item records, if it records one: a `completed` record, or an `interrupted`
/// one whose objects were found changed (only those count; `in_progress` never does).
pub fn transition(item: &HashMap<String, AttributeValue>) -> Option<Transition> {
    // Lenient: a record that does not read is no transition (logged by the caller).
    let item = Item(item);
    let s = |k: &str| item.string(k).ok().flatten().map(str::to_string);
    let n = |k: &str| item.number(k).ok().flatten();
    let operation: OperationType = s("operation_type")?.parse().ok()?;
    let resources = audit::resources_of(item).unwrap_or_default();
    match s("status")?.parse::<AuditStatus>().ok()? {
        AuditStatus::Completed => {}
        AuditStatus::Interrupted if resources.iter().any(|r| r.reached == Some(true)) => {}
        _ => return None,
    }
    let activates = operation.activates();
    let requests_known = n(audit::CPU_TOTAL_ATTRIBUTE).is_some() && n(audit::MEMORY_TOTAL_ATTRIBUTE).is_some();
    // Only a deactivation's workloads matter (an activation ends every saving of its namespace).
    let scaled_down = if activates || !requests_known {
        Vec::new()
    } else {
        resources
            .into_iter()
            // A refused or unreadable object, or one an interrupted run never reached, freed nothing.
            .filter(ResourceChange::took_effect)
            .filter_map(|r| {
                let from: u64 = r.from.trim().parse().ok()?;
                let to: u64 = r.to.trim().parse().ok()?;
                (r.has_replicas() && from > to).then_some(())?;
                Some(ScaledDown {
                    workload: format!("{}/{}", r.kind, r.name),
                    replicas: from - to,
                    per_replica: Requested {
                        cpu_millicores: r.cpu_millicores?,
                        memory_bytes: r.memory_bytes?,
                    },
                })
            })
            .collect()
    };
    Some(Transition {
        namespace: s("namespace_name")?,
        cost_center: s("cost_center").unwrap_or_else(|| "unassigned".to_string()),
        at: n("timestamp_end").or_else(|| n("timestamp_start"))?,
        activates,
        scaled_down,
        requests_known,
    })
}

/// The error for a bad `--week`.
pub fn week_error(week: &str, reason: String) -> Error {
    Error::config("--week", week, reason)
}
