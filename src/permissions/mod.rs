//! Cost-center authorization and the off-hours caps (docs/reference.md, "Authorization"): the
//! permissions table ([`CostCenter`], [`PermissionsStore`]), the pure rules ([`rules`]) and
//! [`authorize`], which reads the table once for the cost centers involved and applies them.

pub mod rules;

pub use rules::{Caps, Grant, ProposedWindow, Window};

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use globset::{Glob, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::dynamo;
use crate::dynamo::item::{self, BadAttribute, Item};
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

/// The rule that refused a request; its id (`cost_center_cap`) starts the rejection's message
/// in the audit record and in the request's status (docs/reference.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectionRule {
    UnknownCostCenter,
    NotAuthorized,
    NamespaceNotAllowed,
    ClusterNotAllowed,
    CostCenterMismatch,
    WindowTooLong,
    CostCenterCap,
    ClusterCap,
}

impl RejectionRule {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionRule::UnknownCostCenter => "unknown_cost_center",
            RejectionRule::NotAuthorized => "not_authorized",
            RejectionRule::NamespaceNotAllowed => "namespace_not_allowed",
            RejectionRule::ClusterNotAllowed => "cluster_not_allowed",
            RejectionRule::CostCenterMismatch => "cost_center_mismatch",
            RejectionRule::WindowTooLong => "window_too_long",
            RejectionRule::CostCenterCap => "cost_center_cap",
            RejectionRule::ClusterCap => "cluster_cap",
        }
    }
}

impl std::fmt::Display for RejectionRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request was refused: the rule and the numbers, for the audit record and `request-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub rule: RejectionRule,
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

impl Rejection {
    pub fn new(rule: RejectionRule, message: impl Into<String>) -> Self {
        Rejection {
            rule,
            message: message.into(),
        }
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

    /// Reads an item strictly, each attribute as its documented type (docs/reference.md §5):
    /// `is_authorized` BOOL and `max_concurrent_namespaces` a non-negative integer N, both
    /// required; `authorized_namespaces` and `allowed_clusters` L of S when present, every
    /// pattern a valid glob; `description` and `codigo-cost-center` S; `created_at` and
    /// `updated_at` N. Other attributes are ignored. Anything else makes this cost center
    /// invalid, and only this one.
    pub fn from_item(item: &HashMap<String, AttributeValue>) -> std::result::Result<Self, InvalidItem> {
        let r = Item(item);
        let name = r.string("cost_center").ok().flatten().unwrap_or("?").to_string();
        let read = || -> std::result::Result<CostCenter, BadAttribute> {
            let owned = |v: Option<&str>| v.map(str::to_string);
            let list = |k: &str| -> std::result::Result<Option<Vec<String>>, BadAttribute> {
                Ok(r.strings(k)?.map(|l| l.into_iter().map(str::to_string).collect()))
            };
            let namespaces = list("authorized_namespaces")?;
            if let Some((i, bad)) = namespaces.iter().flatten().enumerate().find(|(_, p)| !is_valid_glob(p)) {
                return Err(BadAttribute {
                    attribute: "authorized_namespaces".into(),
                    found: format!(
                        "element {} is {:?}, not a valid glob pattern (expected patterns such as dev-*)",
                        i + 1,
                        item::cut(bad)
                    ),
                });
            }
            let max = r.required(
                "max_concurrent_namespaces",
                r.count("max_concurrent_namespaces"),
                item::expected::COUNT,
            )?;
            Ok(CostCenter {
                cost_center: r
                    .required("cost_center", r.string("cost_center"), item::expected::STRING)?
                    .to_string(),
                codigo: owned(r.string("codigo-cost-center")?),
                is_authorized: r.required("is_authorized", r.boolean("is_authorized"), item::expected::BOOLEAN)?,
                max_concurrent_namespaces: u32::try_from(max).unwrap_or(u32::MAX),
                authorized_namespaces: namespaces,
                allowed_clusters: list("allowed_clusters")?,
                description: owned(r.string("description")?),
                // Epoch seconds; a fraction (a Python `time.time()`) is a number all the same.
                created_at: r.number("created_at")?.map(|n| n.floor() as i64),
                updated_at: r.number("updated_at")?.map(|n| n.floor() as i64),
            })
        };
        read().map_err(|problem| InvalidItem {
            cost_center: name,
            problem,
        })
    }
}

/// A permissions item that does not read as documented: its cost center cannot be decided on
/// until the platform fixes it; every other cost center is unaffected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidItem {
    pub cost_center: String,
    pub problem: BadAttribute,
}

/// The rule name an invalid item is reported under.
pub(crate) const PERMISSIONS_INVALID: &str = "permissions_invalid";

/// `permissions_invalid: TEAM-X.max_concurrent_namespaces: the string "ten" (expected …)`.
impl std::fmt::Display for InvalidItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PERMISSIONS_INVALID}: {}.{}: {}",
            self.cost_center, self.problem.attribute, self.problem.found
        )
    }
}

/// What the permissions table says of one cost center it holds: readable, or invalid.
pub(crate) type Permission = std::result::Result<CostCenter, InvalidItem>;

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

    /// One BatchGetItem (chunks of 100, `UnprocessedKeys` retried) for the named cost centers:
    /// each is read once per run. Missing cost centers are simply absent from the map; a
    /// malformed item is there as [`InvalidItem`] (it fails only its own cost center). An
    /// unreadable table is an error (callers fail closed).
    pub async fn fetch(&self, cost_centers: &BTreeSet<String>) -> Result<BTreeMap<String, Permission>> {
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
                .map_err(Error::dynamo_source)?;
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
                    let Ok(Some(key)) = Item(&item).string("cost_center") else {
                        continue;
                    };
                    let read = CostCenter::from_item(&item);
                    if let Err(invalid) = &read {
                        tracing::warn!(table = %self.table, problem = %invalid, "permissions item invalid");
                    }
                    found.insert(key.to_string(), read);
                }
                match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                    Some(rest) if !rest.keys().is_empty() => {
                        attempt += 1;
                        if attempt >= GET_ATTEMPTS {
                            return Err(Error::dynamo(format!(
                                "BatchGetItem {}: {} cost center(s) still unprocessed after {attempt} attempts",
                                self.table,
                                rest.keys().len()
                            )));
                        }
                        tokio::time::sleep(crate::backoff::DYNAMODB.delay(attempt)).await;
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

/// Glob match (`dev-*`). Patterns are validated when the item is read; one that is not a valid
/// glob matches nothing.
pub(crate) fn matches_any(patterns: &[String], namespace: &str) -> bool {
    let mut builder = GlobSetBuilder::new();
    for g in patterns.iter().filter_map(|p| Glob::new(p).ok()) {
        builder.add(g);
    }
    builder.build().map(|set| set.is_match(namespace)).unwrap_or(false)
}

/// Whether `pattern` is a glob `matches_any` accepts (used to validate `populate --file`).
pub(crate) fn is_valid_glob(pattern: &str) -> bool {
    !pattern.is_empty() && Glob::new(pattern).is_ok()
}

/// How one proposed window was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Granted(Grant),
    /// A rule refused it: the rule and the numbers.
    Rejected(Rejection),
    /// Not decided: its cost center's item in the permissions table is invalid. It holds no
    /// slot; the platform fixes the item and a later run decides.
    Undecided(InvalidItem),
    /// Not decided this run, and retryable: the fleet's windows of its cost center do not read,
    /// or its grant lost every race to other clusters (docs/fleet.md). It holds no slot.
    Deferred(String),
}

impl Verdict {
    /// Why the proposal was not decided, if it was not (an invalid item, the fleet's windows).
    pub fn undecided(&self) -> Option<String> {
        match self {
            Verdict::Undecided(invalid) => Some(invalid.to_string()),
            Verdict::Deferred(why) => Some(why.clone()),
            Verdict::Granted(_) | Verdict::Rejected(_) => None,
        }
    }
}

/// [`crate::fleet::authorize`]'s rules once the table is read: the rules over the proposals whose cost center reads,
/// in order; `Undecided` for the others.
pub fn decide(
    proposals: &[ProposedWindow],
    permissions: &BTreeMap<String, Permission>,
    open_windows: &[Window],
    config: &crate::config::Config,
    at: DateTime<Utc>,
) -> Result<Vec<Verdict>> {
    let valid: BTreeMap<String, CostCenter> = permissions
        .iter()
        .filter_map(|(name, p)| Some((name.clone(), p.as_ref().ok()?.clone())))
        .collect();
    let invalid = |p: &ProposedWindow| match permissions.get(&p.cost_center) {
        Some(Err(e)) => Some(e.clone()),
        _ => None,
    };
    let decidable: Vec<ProposedWindow> = proposals.iter().filter(|p| invalid(p).is_none()).cloned().collect();
    let caps = Caps::from_config(config);
    let mut decided = rules::authorize(&decidable, &valid, open_windows, &config.business, at, &caps)?.into_iter();
    Ok(proposals
        .iter()
        .map(|p| match invalid(p) {
            Some(e) => Verdict::Undecided(e),
            None => match decided.next().expect("one verdict per decidable proposal") {
                Ok(g) => Verdict::Granted(g),
                Err(r) => Verdict::Rejected(r),
            },
        })
        .collect())
}

#[cfg(test)]
mod tests;
