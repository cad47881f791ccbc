//! Cost-center authorization and the off-hours caps (SPEC §5).
//! OWNER: DynamoDB engineer. Types and `authorize` signature are the contract with `commands`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// A request to activate one namespace (from `up` or a self-service annotation). The cluster
/// side has already checked that the namespace exists, is managed and is not protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRequest {
    pub namespace: String,
    pub cost_center: String,
    pub requested_by: String,
}

/// The namespaces active right now (any workload at replicas > 0), with their cost centers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActiveSet {
    pub by_namespace: BTreeMap<String, String>,
}

/// Why a request was refused: the rule and the numbers, for the audit record and `request-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Short rule id: `unknown_cost_center`, `not_authorized`, `namespace_not_allowed`,
    /// `cluster_not_allowed`, `cost_center_cap`, `cluster_cap`, `permissions_unavailable`.
    pub rule: &'static str,
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}
