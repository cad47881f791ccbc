//! Cost-center authorization and the off-hours caps (docs/reference.md, "Authorization"): the
//! permissions table ([`CostCenter`], [`PermissionsStore`]), the pure rules ([`rules`]) and
//! [`authorize`], which reads the table once for the cost centers involved and applies them.

pub mod rules;

pub use rules::{ActivationRequest, Caps, Grant, Window};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use globset::{Glob, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::dynamo;
use crate::error::{Error, Result};

/// One item of the permissions table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostCenter {
    pub cost_center: String,
    #[serde(rename = "codigo-cost-center", default, skip_serializing_if = "Option::is_none")]
    pub codigo: Option<String>,
    pub is_authorized: bool,
    pub max_concurrent_namespaces: u32,
    /// Glob patterns such as `dev-*`; None = any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_namespaces: Option<Vec<String>>,
    /// None = any cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_clusters: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
}

/// Why a request was refused: the rule and the numbers, for the audit record and `request-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Short rule id: `unknown_cost_center`, `not_authorized`, `namespace_not_allowed`,
    /// `cluster_not_allowed`, `cost_center_mismatch`, `window_too_long`, `cost_center_cap`,
    /// `cluster_cap`.
    pub rule: &'static str,
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

impl Rejection {
    pub fn new(rule: &'static str, message: impl Into<String>) -> Self {
        Rejection {
            rule,
            message: message.into(),
        }
    }

    /// The error a command returns for it (exit 4).
    pub fn into_error(self) -> Error {
        Error::Rejected(self.to_string())
    }
}

/// The six cost centers `populate` seeds by default (docs/reference.md §5), stamped `now` (epoch seconds).
pub fn default_cost_centers(now: i64) -> Vec<CostCenter> {
    let cc = |name: &str, codigo: &str, authorized: bool, max: u32, globs: &[&str], description: &str| CostCenter {
        cost_center: name.to_string(),
        codigo: Some(codigo.to_string()),
        is_authorized: authorized,
        max_concurrent_namespaces: max,
        authorized_namespaces: Some(globs.iter().map(|g| g.to_string()).collect()),
        allowed_clusters: None,
        description: Some(description.to_string()),
        created_at: Some(now),
        updated_at: Some(now),
    };
    vec![
        cc(
            "IT-DEVELOPMENT",
            "C102000001",
            true,
            10,
            &["dev-*", "test-*", "staging-*"],
            "IT development teams",
        ),
        cc(
            "IT-PRODUCTION",
            "C102000002",
            true,
            5,
            &["prod-*", "production-*"],
            "IT production support",
        ),
        cc(
            "QA-TESTING",
            "C102000003",
            true,
            8,
            &["qa-*", "test-*", "e2e-*"],
            "Quality assurance and testing",
        ),
        cc(
            "DEVOPS-INFRA",
            "C102000004",
            true,
            15,
            &["*"],
            "DevOps and infrastructure",
        ),
        cc(
            "DEMO-SANDBOX",
            "C102000005",
            true,
            3,
            &["demo-*", "sandbox-*"],
            "Demos and sandboxes",
        ),
        cc(
            "EXTERNAL-CONTRACTOR",
            "C102000006",
            false,
            2,
            &["contractor-*"],
            "External contractors (not authorized)",
        ),
    ]
}

impl CostCenter {
    /// The DynamoDB item (docs/reference.md §5 attribute names and types).
    pub fn to_item(&self) -> HashMap<String, AttributeValue> {
        let s = |v: &str| AttributeValue::S(v.to_string());
        let list = |v: &[String]| AttributeValue::L(v.iter().map(|x| s(x)).collect());
        let mut item = HashMap::from([
            ("cost_center".to_string(), s(&self.cost_center)),
            ("is_authorized".to_string(), AttributeValue::Bool(self.is_authorized)),
            (
                "max_concurrent_namespaces".to_string(),
                AttributeValue::N(self.max_concurrent_namespaces.to_string()),
            ),
        ]);
        let mut put = |k: &str, v: Option<AttributeValue>| {
            if let Some(v) = v {
                item.insert(k.to_string(), v);
            }
        };
        put("codigo-cost-center", self.codigo.as_deref().map(s));
        put("authorized_namespaces", self.authorized_namespaces.as_deref().map(list));
        put("allowed_clusters", self.allowed_clusters.as_deref().map(list));
        put("description", self.description.as_deref().map(s));
        put("created_at", self.created_at.map(|n| AttributeValue::N(n.to_string())));
        put("updated_at", self.updated_at.map(|n| AttributeValue::N(n.to_string())));
        item
    }

    /// Reads an item, leniently about types the old system may have written (a string set for a
    /// list, `"true"` for a boolean, a string for a number). An item that still makes no sense is
    /// an error naming the attribute: authorization then fails closed.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> std::result::Result<Self, String> {
        let name = match item.get("cost_center") {
            Some(AttributeValue::S(v)) => v.clone(),
            other => return Err(format!("cost_center: expected a string, got {other:?}")),
        };
        let bad = |k: &str, v: &AttributeValue| format!("cost center {name}: {k}: unexpected value {v:?}");
        let string = |k: &str| -> std::result::Result<Option<String>, String> {
            match item.get(k) {
                None | Some(AttributeValue::Null(_)) => Ok(None),
                Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
                Some(v) => Err(bad(k, v)),
            }
        };
        let int = |k: &str| -> std::result::Result<Option<i64>, String> {
            match item.get(k) {
                None | Some(AttributeValue::Null(_)) => Ok(None),
                Some(AttributeValue::N(v)) | Some(AttributeValue::S(v)) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| Some(f as i64))
                    .ok_or_else(|| bad(k, &AttributeValue::S(v.clone()))),
                Some(v) => Err(bad(k, v)),
            }
        };
        let strings = |k: &str| -> std::result::Result<Option<Vec<String>>, String> {
            match item.get(k) {
                None | Some(AttributeValue::Null(_)) => Ok(None),
                Some(AttributeValue::Ss(v)) => Ok(Some(v.clone())),
                Some(AttributeValue::L(v)) => v
                    .iter()
                    .map(|x| match x {
                        AttributeValue::S(s) => Ok(s.clone()),
                        other => Err(bad(k, other)),
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map(Some),
                Some(v) => Err(bad(k, v)),
            }
        };
        let is_authorized = match item.get("is_authorized") {
            Some(AttributeValue::Bool(b)) => *b,
            Some(AttributeValue::S(v)) if v.eq_ignore_ascii_case("true") => true,
            Some(AttributeValue::S(v)) if v.eq_ignore_ascii_case("false") => false,
            Some(AttributeValue::N(v)) if v == "1" || v == "0" => v == "1",
            None => false,
            Some(v) => return Err(bad("is_authorized", v)),
        };
        let max = int("max_concurrent_namespaces")?
            .ok_or_else(|| format!("cost center {name}: max_concurrent_namespaces: missing"))?;
        Ok(CostCenter {
            codigo: string("codigo-cost-center")?,
            is_authorized,
            max_concurrent_namespaces: u32::try_from(max.max(0)).unwrap_or(u32::MAX),
            authorized_namespaces: strings("authorized_namespaces")?,
            allowed_clusters: strings("allowed_clusters")?,
            description: string("description")?,
            created_at: int("created_at")?,
            updated_at: int("updated_at")?,
            cost_center: name,
        })
    }
}

/// Reads (and, for `populate`, seeds) the cost-center permissions table.
#[derive(Debug, Clone)]
pub struct PermissionsStore {
    client: Client,
    table: String,
}

/// BatchGetItem's limit.
const GET_BATCH: usize = 100;
const GET_ATTEMPTS: u32 = 6;

impl PermissionsStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        PermissionsStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// One BatchGetItem (chunks of 100, `UnprocessedKeys` retried) for the named cost centers:
    /// each is read once per run. Missing cost centers are simply absent from the map. An
    /// unreadable table or a malformed item is an error (callers fail closed).
    pub async fn fetch(&self, cost_centers: &BTreeSet<String>) -> Result<BTreeMap<String, CostCenter>> {
        let mut found = BTreeMap::new();
        let names: Vec<&String> = cost_centers.iter().collect();
        for chunk in names.chunks(GET_BATCH) {
            let keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|n| HashMap::from([("cost_center".to_string(), AttributeValue::S(n.to_string()))]))
                .collect();
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| Error::Dynamo(e.to_string()))?;
            let mut attempt = 0;
            loop {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request.clone())
                    .send()
                    .await
                    .map_err(|e| dynamo::sdk_error(&format!("BatchGetItem {}", self.table), e))?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let cc = CostCenter::from_item(&item)
                        .map_err(|e| Error::Dynamo(format!("permissions table {}: {e}", self.table)))?;
                    found.insert(cc.cost_center.clone(), cc);
                }
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        attempt += 1;
                        if attempt >= GET_ATTEMPTS {
                            return Err(Error::Dynamo(format!(
                                "BatchGetItem {}: {} cost center(s) still unprocessed after {attempt} attempts",
                                self.table,
                                rest.keys().len()
                            )));
                        }
                        tokio::time::sleep(dynamo::backoff(attempt)).await;
                        request = rest;
                    }
                    _ => break,
                }
            }
        }
        Ok(found)
    }

    /// Conditional put (`attribute_not_exists(cost_center)`): `Ok(true)` when created,
    /// `Ok(false)` when an item already existed (it is kept as it is).
    pub async fn put_if_absent(&self, cost_center: &CostCenter) -> Result<bool> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(cost_center.to_item()))
            .condition_expression("attribute_not_exists(cost_center)")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(dynamo::sdk_error(
                &format!("PutItem {} into {}", cost_center.cost_center, self.table),
                e,
            )),
        }
    }
}

/// Glob match (`dev-*`); a pattern that is not a valid glob matches nothing (and is logged).
pub fn matches_any(patterns: &[String], namespace: &str) -> bool {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        match Glob::new(p) {
            Ok(g) => {
                builder.add(g);
            }
            Err(e) => tracing::warn!(pattern = %p, error = %e, "invalid authorized_namespaces pattern ignored"),
        }
    }
    builder.build().map(|set| set.is_match(namespace)).unwrap_or(false)
}

/// Whether `pattern` is a glob `matches_any` accepts (used to validate `populate --file`).
pub fn is_valid_glob(pattern: &str) -> bool {
    !pattern.is_empty() && Glob::new(pattern).is_ok()
}

/// Reads the permissions of every cost center involved (once per run) and applies the rules in
/// the requests' order. `Err` when the table cannot be read: callers fail closed but not for
/// good (`up` exits 1, a retryable failure; pending self-service requests stay unanswered so
/// the next healthy run decides them).
pub async fn authorize(
    config: &crate::config::Config,
    requests: &[ActivationRequest],
    open_windows: &[Window],
    at: DateTime<Utc>,
) -> Result<Vec<std::result::Result<Grant, Rejection>>> {
    let wanted: BTreeSet<String> = requests.iter().map(|r| r.cost_center.clone()).collect();
    let client = dynamo::client(config).await;
    let permissions = PermissionsStore::new(client, config.permissions_table.clone())
        .fetch(&wanted)
        .await
        .map_err(|e| Error::Dynamo(format!("permissions table unreadable, no request decided: {e}")))?;
    let caps = Caps::from_config(config);
    rules::authorize(requests, &permissions, open_windows, &config.business, at, &caps)
}
