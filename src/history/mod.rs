//! `history`: the audit trail of every cluster that shares the audit table (docs/reference.md
//! §1, §6), read by the table's key or the GSI that matches the question, never by a Scan. With
//! several filters the most selective one picks the partition and the others filter it; with
//! none, one Query per operation type. [`query`] reads, [`entry`] parses (hostile items are
//! reported by key, never the end of the listing).

pub(crate) mod entry;
pub(crate) mod query;

pub(crate) use entry::{Entry, Unreadable};
pub(crate) use query::AuditKey;

use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Duration, Utc};

use crate::audit::OperationType;
use crate::error::Result;
use query::AuditQuery;

/// `requested_by` of scheduled runs: every night's records, the least selective requester.
pub(crate) const SYSTEM: &str = "system";
/// Without `--since`, this long before `--until`.
pub(crate) const DEFAULT_RANGE: Duration = Duration::days(7);

/// What `history` is asked: each filter narrows; `since..=until` bounds `timestamp_start`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filters {
    pub namespace: Option<String>,
    pub cost_center: Option<String>,
    pub requested_by: Option<String>,
    pub operation: Option<OperationType>,
    pub cluster: Option<String>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// One Query: a partition, and the other filters as (attribute, accepted values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub key: AuditKey,
    pub filters: Vec<(&'static str, Vec<String>)>,
}

/// The queries that answer `f`. The partition is the first filter given, in this order of
/// selectivity: namespace (the table's key), requester (unless `system`), cost center, cluster,
/// operation type, then `system`; the other filters are filter expressions. With no filter,
/// one Query per operation type (their partitions hold every record).
pub fn plan(f: &Filters) -> Vec<Planned> {
    let system = f.requested_by.as_deref() == Some(SYSTEM);
    let mut candidates: Vec<AuditKey> = Vec::new();
    candidates.extend(f.namespace.clone().map(AuditKey::Namespace));
    candidates.extend(f.requested_by.clone().filter(|_| !system).map(AuditKey::RequestedBy));
    candidates.extend(f.cost_center.clone().map(AuditKey::CostCenter));
    candidates.extend(f.cluster.clone().map(AuditKey::Cluster));
    candidates.extend(f.operation.map(AuditKey::Operation));
    candidates.extend(f.requested_by.clone().filter(|_| system).map(AuditKey::RequestedBy));
    let mut rest = candidates.into_iter();
    match rest.next() {
        None => AuditKey::every_operation()
            .into_iter()
            .map(|key| Planned {
                key,
                filters: Vec::new(),
            })
            .collect(),
        Some(key) => vec![Planned {
            key,
            filters: rest.map(|k| (k.attribute(), vec![k.value().to_string()])).collect(),
        }],
    }
}

/// What `history` found: the records that read, oldest first, and the ones that do not.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct History {
    pub entries: Vec<Entry>,
    pub unreadable: Vec<Unreadable>,
    /// The queries made, as `attribute = value (index)`.
    pub queries: Vec<String>,
    pub pages: usize,
}

fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// Runs the plan of `f` against the audit table, every page of every query.
pub async fn load(client: &Client, table: &str, f: &Filters) -> Result<History> {
    let mut history = History::default();
    for planned in plan(f) {
        let q = AuditQuery {
            key: &planned.key,
            since: Some(epoch(f.since)),
            until: epoch(f.until),
            filters: &planned.filters,
            projection: None,
        };
        history.pages += query::query(client, table, &q, |item| match Entry::from_item(&item) {
            Ok(e) => history.entries.push(e),
            Err(u) => history.unreadable.push(u),
        })
        .await?;
        history.queries.push(planned.key.to_string());
    }
    history.entries.sort_by(|a, b| {
        a.timestamp_start
            .total_cmp(&b.timestamp_start)
            .then_with(|| a.cluster.cmp(&b.cluster))
            .then_with(|| a.namespace.cmp(&b.namespace))
    });
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(
        namespace: Option<&str>,
        cost_center: Option<&str>,
        requested_by: Option<&str>,
        operation: Option<OperationType>,
        cluster: Option<&str>,
    ) -> Filters {
        let own = |v: Option<&str>| v.map(str::to_string);
        Filters {
            namespace: own(namespace),
            cost_center: own(cost_center),
            requested_by: own(requested_by),
            operation,
            cluster: own(cluster),
            since: DateTime::UNIX_EPOCH,
            until: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_most_selective_filter_picks_the_partition() {
        use OperationType::*;
        // (filters, partition, filter expressions)
        type Case<'a> = (Filters, &'a str, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                filters(Some("dev-a"), None, None, None, None),
                "namespace_name = dev-a (the table)",
                vec![],
            ),
            (
                filters(Some("dev-a"), Some("CC"), Some("ana"), Some(Activate), Some("eks-a")),
                "namespace_name = dev-a (the table)",
                vec![
                    ("requested_by", "ana"),
                    ("cost_center", "CC"),
                    ("cluster_name", "eks-a"),
                    ("operation_type", "activate"),
                ],
            ),
            (
                filters(None, Some("CC"), Some("ana"), None, None),
                "requested_by = ana (requested-by-timestamp-index)",
                vec![("cost_center", "CC")],
            ),
            (
                filters(None, Some("CC"), Some("system"), None, None),
                "cost_center = CC (cost-center-timestamp-index)",
                vec![("requested_by", "system")],
            ),
            (
                filters(None, None, None, Some(Deactivate), Some("eks-a")),
                "cluster_name = eks-a (cluster-timestamp-index)",
                vec![("operation_type", "deactivate")],
            ),
            (
                filters(None, None, Some("system"), Some(AutoShutdownBusinessHours), None),
                "operation_type = auto_shutdown_business_hours (operation-type-timestamp-index)",
                vec![("requested_by", "system")],
            ),
            (
                filters(None, None, Some("system"), None, None),
                "requested_by = system (requested-by-timestamp-index)",
                vec![],
            ),
        ];
        for (f, partition, rest) in cases {
            let p = plan(&f);
            assert_eq!(p.len(), 1, "{f:?}");
            assert_eq!(p[0].key.to_string(), partition, "{f:?}");
            let got: Vec<(&str, &str)> = p[0].filters.iter().map(|(a, v)| (*a, v[0].as_str())).collect();
            assert_eq!(got, rest, "{f:?}");
        }
    }

    #[test]
    fn no_filter_reads_each_operation_type_once() {
        let p = plan(&filters(None, None, None, None, None));
        let keys: Vec<String> = p.iter().map(|q| q.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "operation_type = activate (operation-type-timestamp-index)",
                "operation_type = deactivate (operation-type-timestamp-index)",
                "operation_type = auto_startup_business_hours (operation-type-timestamp-index)",
                "operation_type = auto_shutdown_business_hours (operation-type-timestamp-index)",
            ]
        );
        assert!(p.iter().all(|q| q.filters.is_empty()));
    }
}
