//! Reading the audit table by its key or one of its GSIs (docs/reference.md §6): one paginated
//! Query per partition, never a Scan. Shared by `history` and `report`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::audit::OperationType;
use crate::dynamo;
use crate::error::Result;

/// The audit table's GSIs, each (attribute, timestamp_start).
pub(crate) const COST_CENTER_INDEX: &str = "cost-center-timestamp-index";
pub(crate) const OPERATION_INDEX: &str = "operation-type-timestamp-index";
pub(crate) use crate::audit::journal::CLUSTER_INDEX;
pub(crate) const REQUESTED_BY_INDEX: &str = "requested-by-timestamp-index";
/// The range key of the table and of every GSI.
pub(crate) const TIMESTAMP: &str = "timestamp_start";

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// One partition of the audit table: a namespace (the table's own key) or one value of a GSI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuditKey {
    Namespace(String),
    CostCenter(String),
    RequestedBy(String),
    Operation(OperationType),
    Cluster(String),
}

impl AuditKey {
    /// The GSI it is read from; None for the table's own key.
    pub fn index(&self) -> Option<&'static str> {
        match self {
            AuditKey::Namespace(_) => None,
            AuditKey::CostCenter(_) => Some(COST_CENTER_INDEX),
            AuditKey::RequestedBy(_) => Some(REQUESTED_BY_INDEX),
            AuditKey::Operation(_) => Some(OPERATION_INDEX),
            AuditKey::Cluster(_) => Some(CLUSTER_INDEX),
        }
    }

    /// The hash key attribute.
    pub fn attribute(&self) -> &'static str {
        match self {
            AuditKey::Namespace(_) => "namespace_name",
            AuditKey::CostCenter(_) => "cost_center",
            AuditKey::RequestedBy(_) => "requested_by",
            AuditKey::Operation(_) => "operation_type",
            AuditKey::Cluster(_) => "cluster_name",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            AuditKey::Namespace(v) | AuditKey::CostCenter(v) | AuditKey::RequestedBy(v) | AuditKey::Cluster(v) => v,
            AuditKey::Operation(op) => op.as_str(),
        }
    }

    /// Every operation type's partition: together they hold every record of the four types
    /// (the whole fleet's).
    pub(crate) fn every_operation() -> Vec<AuditKey> {
        OperationType::ALL.into_iter().map(AuditKey::Operation).collect()
    }
}

impl std::fmt::Display for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = self.index().unwrap_or("the table");
        write!(f, "{} = {} ({on})", self.attribute(), self.value())
    }
}

/// One Query: a partition, a range of `timestamp_start`, equality filters on other attributes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuditQuery<'a> {
    pub key: &'a AuditKey,
    /// Epoch seconds, inclusive; None: from the first record.
    pub since: Option<f64>,
    /// Epoch seconds, inclusive.
    pub until: f64,
    /// Each (attribute, accepted values): an item passes when every attribute has one of its values.
    pub filters: &'a [(&'a str, Vec<String>)],
    /// The attributes to read (None: all). The table's keys and the partition's attribute are
    /// always added: DynamoDB Local builds a page's LastEvaluatedKey from the projected item,
    /// and without them it skips pages.
    pub projection: Option<&'a [&'a str]>,
}

/// The expressions of a Query, with every attribute name behind a placeholder (so that
/// reserved words such as `status` need no care).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Expressions {
    pub key_condition: String,
    pub filter: Option<String>,
    pub projection: Option<String>,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl AuditQuery<'_> {
    pub fn expressions(&self) -> Expressions {
        let mut e = Expressions::default();
        e.names.insert("#k".into(), self.key.attribute().into());
        e.names.insert("#t".into(), TIMESTAMP.into());
        e.values
            .insert(":k".into(), AttributeValue::S(self.key.value().to_string()));
        e.values
            .insert(":until".into(), AttributeValue::N(format!("{}", self.until)));
        e.key_condition = match self.since {
            Some(since) => {
                e.values.insert(":since".into(), AttributeValue::N(format!("{since}")));
                "#k = :k AND #t BETWEEN :since AND :until".into()
            }
            None => "#k = :k AND #t <= :until".into(),
        };
        let mut clauses = Vec::new();
        for (i, (attribute, accepted)) in self.filters.iter().enumerate() {
            e.names.insert(format!("#f{i}"), attribute.to_string());
            let placeholders: Vec<String> = accepted
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let p = format!(":f{i}_{j}");
                    e.values.insert(p.clone(), AttributeValue::S(v.clone()));
                    p
                })
                .collect();
            clauses.push(format!("#f{i} IN ({})", placeholders.join(", ")));
        }
        e.filter = (!clauses.is_empty()).then(|| clauses.join(" AND "));
        if let Some(attributes) = self.projection {
            let mut all: Vec<&str> = vec!["namespace_name", TIMESTAMP, self.key.attribute()];
            for a in attributes {
                if !all.contains(a) {
                    all.push(a);
                }
            }
            let placeholders: Vec<String> = all
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    e.names.insert(format!("#p{i}"), a.to_string());
                    format!("#p{i}")
                })
                .collect();
            e.projection = Some(placeholders.join(", "));
        }
        e
    }
}

/// Runs one Query to its last page, handing each item to `each`. Returns the number of pages.
pub async fn query(client: &Client, table: &str, q: &AuditQuery<'_>, mut each: impl FnMut(Item)) -> Result<usize> {
    let e = q.expressions();
    let mut start: Option<Item> = None;
    let mut pages = 0;
    loop {
        let out = client
            .query()
            .table_name(table)
            .set_index_name(q.key.index().map(str::to_string))
            .key_condition_expression(&e.key_condition)
            .set_filter_expression(e.filter.clone())
            .set_projection_expression(e.projection.clone())
            .set_expression_attribute_names(Some(e.names.clone()))
            .set_expression_attribute_values(Some(e.values.clone()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| dynamo::sdk_error(&format!("Query {table} ({})", q.key), err))?;
        pages += 1;
        for item in out.items.unwrap_or_default() {
            each(item);
        }
        start = out.last_evaluated_key;
        if start.is_none() {
            return Ok(pages);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::{table_schema, AUDIT_RESOURCE};

    #[test]
    fn every_key_is_the_tables_or_one_of_its_indexes() {
        let schema = table_schema(AUDIT_RESOURCE).unwrap();
        let keys = [
            AuditKey::Namespace("n".into()),
            AuditKey::CostCenter("c".into()),
            AuditKey::RequestedBy("r".into()),
            AuditKey::Operation(OperationType::Activate),
            AuditKey::Cluster("k".into()),
        ];
        for key in keys {
            let hash = match key.index() {
                None => &schema.key_schema,
                Some(name) => {
                    &schema
                        .global_indexes
                        .iter()
                        .find(|g| g.name == name)
                        .unwrap_or_else(|| panic!("{name} is not a GSI of the template"))
                        .key_schema
                }
            };
            assert_eq!(
                hash,
                &vec![
                    (key.attribute().to_string(), "HASH".to_string()),
                    (TIMESTAMP.to_string(), "RANGE".to_string())
                ],
                "{key}"
            );
        }
        assert_eq!(AuditKey::every_operation().len(), 4);
    }

    #[test]
    fn expressions() {
        let key = AuditKey::CostCenter("IT-DEVELOPMENT".into());
        let filters = [
            ("cluster_name", vec!["eks-a".to_string()]),
            ("status", vec!["completed".to_string(), "interrupted".to_string()]),
        ];
        let cases = [
            (
                AuditQuery {
                    key: &key,
                    since: Some(10.5),
                    until: 20.0,
                    filters: &[],
                    projection: None,
                },
                "#k = :k AND #t BETWEEN :since AND :until",
                None,
                None,
            ),
            (
                AuditQuery {
                    key: &key,
                    since: None,
                    until: 20.0,
                    filters: &filters,
                    projection: Some(&["status", "namespace_name", "cost_center"]),
                },
                "#k = :k AND #t <= :until",
                Some("#f0 IN (:f0_0) AND #f1 IN (:f1_0, :f1_1)"),
                Some("#p0, #p1, #p2, #p3"),
            ),
        ];
        for (q, key_condition, filter, projection) in cases {
            let e = q.expressions();
            assert_eq!(e.key_condition, key_condition);
            assert_eq!(e.filter.as_deref(), filter);
            assert_eq!(e.projection.as_deref(), projection);
            assert_eq!(e.names["#k"], "cost_center");
            assert_eq!(e.values[":k"], AttributeValue::S("IT-DEVELOPMENT".into()));
            assert_eq!(e.values[":until"], AttributeValue::N("20".into()));
            if let Some(p) = projection {
                let projected: Vec<&str> = p.split(", ").map(|p| e.names[p].as_str()).collect();
                assert_eq!(
                    projected,
                    ["namespace_name", "timestamp_start", "cost_center", "status"]
                );
                assert_eq!(e.names["#f1"], "status");
                assert_eq!(e.values[":f1_1"], AttributeValue::S("interrupted".into()));
            }
        }
    }
}
