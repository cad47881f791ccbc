//! Scaling engine (docs/reference.md §4): discover → plan (plain data) → apply with rollback.
//!
//! - [`inventory`]: the cluster as plain data (namespaces and workloads), listed cluster-wide
//!   with pagination.
//! - [`plan`]: a pure function from inventory + intent to the writes a run will make.
//! - what one replica requests (cpu, memory) is `crate::resources`, shared with the audit and the summary.
//! - [`apply`]: the writes, bounded in parallel, with retries and per-namespace rollback.
//! - [`lease`], [`events`]: one run at a time; one Event per changed namespace.
//! - [`write`]: the one conditional-write path (precondition, classified answer) every write uses.
//! - [`stop`]: why a run stops starting namespaces (a signal, a lost Lease).
//!
//! The whole sequence shared by `run`, `up` and `down` is `crate::engine`, above this module.

pub(crate) mod apply;
pub(crate) mod events;
pub mod inventory;
pub use crate::kinds;
pub use crate::kinds::{
    ANN_KEDA_PAUSED_BY_US, ANN_KEDA_PAUSED_REPLICAS, ANN_ORIGINAL_REPLICAS, ANN_ORIGINAL_SUSPEND, PREFIX,
};
pub(crate) mod lease;
pub(crate) mod list;
pub mod objects;
pub mod plan;
pub(crate) mod records;
pub(crate) mod retry;
pub(crate) mod stop;
pub(crate) mod write;

use std::time::Duration;

use crate::error::{Error, Result};

pub const ANN_EXCLUDE: &str = "namespace-scheduler/exclude";
pub const LABEL_EXCLUDE: &str = "namespace-scheduler/exclude";
pub const LABEL_COST_CENTER: &str = "namespace-scheduler/cost-center";
pub const LABEL_STATUS: &str = "namespace-scheduler/status";
/// An annotation, not a label: ':' is not allowed in label values and RFC 3339 needs it.
pub const ANN_ACTIVE_UNTIL: &str = "namespace-scheduler/active-until";
/// The cost center a window was granted to: its slot is counted there.
pub const ANN_ACTIVE_COST_CENTER: &str = "namespace-scheduler/active-cost-center";
/// The ActivationRequest (in the namespace) whose acceptance opened the window; absent for a
/// window an admin opened with `up`.
pub const ANN_ACTIVE_REQUEST: &str = "namespace-scheduler/active-request";
/// The scheduler's answers to the Namespace-annotation requests that ActivationRequests
/// replaced: its own keys, removed when it next writes the Namespace.
pub const LEGACY_ANN_REQUEST_STATUS: &str = "namespace-scheduler/request-status";
pub const LEGACY_ANN_REQUEST_ANSWERED: &str = "namespace-scheduler/request-answered";
pub const UNASSIGNED: &str = "unassigned";

/// The client: `kube::Config::infer()` (KUBECONFIG / kubeconfig file incl. exec plugins such as
/// `aws eks get-token`, else the in-cluster service account), with per-request timeouts so a
/// hung connection becomes a retryable error instead of a hung run.
pub async fn client(timeout: Duration) -> Result<kube::Client> {
    let mut config = kube::Config::infer().await.map_err(Error::kube_config)?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    // One retry policy, ours (scaling::write, retry::transient): the client's own retries of
    // 429/503/504 would multiply our attempts and hide the answers we classify.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(Error::kube_config)
}
