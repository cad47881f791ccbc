//! Weekly active-hours report from the audit table (SPEC §1 `report`).
//!
//! A namespace becomes active at the `timestamp_end` of a completed activating operation
//! (`activate`, `auto_startup_business_hours`) and inactive at that of a completed deactivating
//! one (`deactivate`, `auto_shutdown_business_hours`). Intervals are clipped to the ISO week (in
//! the business time zone) and to "now" for the current week. The interval arithmetic here is
//! pure; [`load_transitions`] reads the audit table.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::audit::{AuditStatus, OperationType};
use crate::dynamo;
use crate::error::{Error, Result};

/// The GSI the report queries: (cluster_name, timestamp_start).
pub const CLUSTER_INDEX: &str = "cluster-timestamp-index";

/// One completed change of a namespace's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub namespace: String,
    pub cost_center: String,
    /// Epoch seconds at which the namespace reached its new state (the record's `timestamp_end`).
    pub at: f64,
    pub activates: bool,
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

/// Seconds per cost center, from the per-namespace rows.
pub fn by_cost_center(usage: &[Usage]) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for u in usage {
        *totals.entry(u.cost_center.clone()).or_insert(0.0) += u.seconds;
    }
    totals
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

/// Completed transitions of `cluster` recorded up to `until` (epoch seconds), from the cluster
/// GSI, paginated. It reads from the beginning of the table (bounded by the audit TTL) so that
/// a namespace activated long before the week and never touched since is still seen as active.
/// Records of unknown operation types are skipped. Returns the transitions and how many audit
/// records were read.
pub async fn load_transitions(
    client: &Client,
    table: &str,
    cluster: &str,
    until: f64,
) -> Result<(Vec<Transition>, usize)> {
    let mut transitions = Vec::new();
    let mut read = 0;
    let mut start_key: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .index_name(CLUSTER_INDEX)
            .key_condition_expression("cluster_name = :cluster AND timestamp_start <= :until")
            .filter_expression("#status = :completed")
            // cluster_name is not needed in the result, but DynamoDB Local builds the page's
            // LastEvaluatedKey from the projected item: without it, pages are skipped.
            .projection_expression(
                "namespace_name, timestamp_start, timestamp_end, operation_type, cost_center, cluster_name",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cluster", AttributeValue::S(cluster.to_string()))
            .expression_attribute_values(":until", AttributeValue::N(format!("{until}")))
            .expression_attribute_values(":completed", AttributeValue::S(AuditStatus::Completed.as_str().into()))
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(|e| dynamo::sdk_error(&format!("Query {table} ({CLUSTER_INDEX})"), e))?;
        for item in out.items() {
            read += 1;
            if let Some(t) = transition(item) {
                transitions.push(t);
            } else {
                tracing::debug!(?item, "audit record skipped by the report");
            }
        }
        start_key = out.last_evaluated_key;
        if start_key.is_none() {
            return Ok((transitions, read));
        }
    }
}

fn transition(item: &HashMap<String, AttributeValue>) -> Option<Transition> {
    let s = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    };
    let n = |k: &str| match item.get(k) {
        Some(AttributeValue::N(v)) => v.parse::<f64>().ok(),
        _ => None,
    };
    let operation: OperationType = s("operation_type")?.parse().ok()?;
    Some(Transition {
        namespace: s("namespace_name")?,
        cost_center: s("cost_center").unwrap_or_else(|| "unassigned".to_string()),
        at: n("timestamp_end").or_else(|| n("timestamp_start"))?,
        activates: operation.activates(),
    })
}

/// The error for a bad `--week`.
pub fn week_error(week: &str, reason: String) -> Error {
    Error::config("--week", week, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: f64 = 3600.0;
    // 2026-W10 in Bogota (UTC-5): Mon 2026-03-02 05:00 UTC to Mon 2026-03-09 05:00 UTC.
    const START: f64 = 1_772_427_600.0;
    const END: f64 = START + 7.0 * 24.0 * H;

    fn t(ns: &str, at: f64, activates: bool) -> Transition {
        Transition {
            namespace: ns.into(),
            cost_center: "CC".into(),
            at,
            activates,
        }
    }

    fn hours(usage: &[Usage], ns: &str) -> f64 {
        usage
            .iter()
            .filter(|u| u.namespace == ns)
            .map(|u| u.seconds)
            .sum::<f64>()
            / H
    }

    #[test]
    fn week_bounds_are_local_mondays() {
        let (s, e) = iso_week_bounds("2026-W10", chrono_tz::America::Bogota).unwrap();
        assert_eq!(s.to_rfc3339(), "2026-03-02T05:00:00+00:00");
        assert_eq!(e.timestamp() as f64, END);
        assert_eq!(s.timestamp() as f64, START);
        // ISO week 1 of 2026 starts in 2025.
        let (s, _) = iso_week_bounds("2026-W01", chrono_tz::UTC).unwrap();
        assert_eq!(s.to_rfc3339(), "2025-12-29T00:00:00+00:00");
        assert!(iso_week_bounds("2020-W53", chrono_tz::UTC).is_ok());
        for bad in ["2026-W54", "2025-W53", "2026-10", "2026-W1", "W10", "2026-Wxx", ""] {
            assert!(iso_week_bounds(bad, chrono_tz::UTC).is_err(), "{bad}");
        }
        // A zone with DST: the week is 167 hours when it contains the spring change.
        let (s, e) = iso_week_bounds("2026-W10", chrono_tz::America::New_York).unwrap();
        assert_eq!((e - s).num_hours(), 167);
    }

    #[test]
    fn a_day_and_a_night_across_midnight() {
        let tr = [
            t("dev-a", START + 8.0 * H, true),
            t("dev-a", START + 18.0 * H, false),
            // Tuesday 20:00 to Wednesday 02:30.
            t("dev-a", START + 44.0 * H, true),
            t("dev-a", START + 50.5 * H, false),
        ];
        assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 16.5);
    }

    #[test]
    fn active_before_the_week_counts_from_its_start() {
        let tr = [t("dev-a", START - 30.0 * H, true), t("dev-a", START + 2.0 * H, false)];
        assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 2.0);
    }

    #[test]
    fn still_active_at_the_end_counts_to_the_end() {
        let tr = [t("dev-a", END - 3.0 * H, true), t("dev-a", END + 5.0 * H, false)];
        assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 3.0);
        // Active all week, with no record inside it.
        let tr = [t("dev-b", START - 100.0 * H, true)];
        assert_eq!(hours(&active_seconds(&tr, START, END), "dev-b"), 168.0);
    }

    #[test]
    fn the_current_week_stops_at_now() {
        let tr = [t("dev-a", START + H, true)];
        let now = START + 10.0 * H;
        assert_eq!(hours(&active_seconds(&tr, START, now), "dev-a"), 9.0);
    }

    #[test]
    fn repeated_ups_keep_the_first_start() {
        let tr = [
            t("dev-a", START + H, true),
            t("dev-a", START + 2.0 * H, true),
            t("dev-a", START + 4.0 * H, false),
        ];
        assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 3.0);
    }

    #[test]
    fn a_down_without_a_prior_up_is_ignored() {
        let tr = [
            t("dev-a", START + H, false),
            t("dev-a", START + 2.0 * H, false),
            t("dev-a", START + 5.0 * H, true),
            t("dev-a", START + 6.0 * H, false),
        ];
        assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 1.0);
    }

    #[test]
    fn down_before_the_week_means_inactive_at_its_start() {
        let tr = [t("dev-a", START - 10.0 * H, true), t("dev-a", START - 5.0 * H, false)];
        assert!(active_seconds(&tr, START, END).is_empty());
    }

    #[test]
    fn unordered_input_and_cost_centers() {
        let mut tr = vec![
            t("dev-a", START + 4.0 * H, false),
            t("dev-a", START + H, true),
            t("qa-b", START + H, true),
            t("qa-b", START + 2.0 * H, false),
        ];
        tr[2].cost_center = "QA".into();
        tr[3].cost_center = "QA".into();
        let usage = active_seconds(&tr, START, END);
        let cc = by_cost_center(&usage);
        assert_eq!(cc["CC"] / H, 3.0);
        assert_eq!(cc["QA"] / H, 1.0);
    }
}
