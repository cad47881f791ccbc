//! Discovery: the managed namespaces and their workloads as plain data.
//!
//! One cluster-wide list per kind (never one call per namespace per kind), answered by the
//! apiserver's watch cache and decoded item by item ([`super::list`]), so a run's read cost does
//! not grow with the number of namespaces beyond the bytes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::list::{list_all, ApiPages, Listed};
use super::objects::{Kind, Slim};
use super::retry::RetryPolicy;
use super::*;
use crate::config::Config;
use crate::error::Result;
use crate::resources::PodRequest;

/// The value the engine switches on a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    Replicas(i32),
    Suspend(bool),
    /// KEDA `autoscaling.keda.sh/paused-replicas` (None = not paused).
    Paused(Option<String>),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Replicas(n) => write!(f, "{n}"),
            Setting::Suspend(s) => write!(f, "suspend={s}"),
            Setting::Paused(None) => f.write_str("unpaused"),
            Setting::Paused(Some(v)) => write!(f, "paused={v}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    #[serde(skip)]
    pub resource_version: Option<String>,
    pub setting: Setting,
    /// Our marker annotation for this kind (original replicas / original suspend / paused-by-us).
    pub marker: Option<String>,
    pub excluded: bool,
    /// `Kind/name` of a controller ownerReference (an operator manages this workload).
    pub controller: Option<String>,
    /// What one replica requests (Deployments and StatefulSets; None for other kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_replica: Option<PodRequest>,
}

/// The annotation that records what `down` changed, per kind.
pub fn marker_key(kind: Kind) -> &'static str {
    match kind {
        Kind::Deployment | Kind::StatefulSet => ANN_ORIGINAL_REPLICAS,
        Kind::CronJob => ANN_ORIGINAL_SUSPEND,
        Kind::ScaledObject | Kind::Namespace | Kind::ActivationRequest => ANN_KEDA_PAUSED_BY_US,
    }
}

impl Workload {
    pub fn from_slim(kind: Kind, o: Slim) -> Self {
        let ann = &o.metadata.annotations;
        let setting = match kind {
            // The apiserver defaults an unset replicas to 1.
            Kind::Deployment | Kind::StatefulSet => Setting::Replicas(o.spec.replicas.unwrap_or(1)),
            Kind::CronJob => Setting::Suspend(o.spec.suspend.unwrap_or(false)),
            _ => Setting::Paused(ann.get(ANN_KEDA_PAUSED_REPLICAS).cloned()),
        };
        let controller = o
            .metadata
            .owner_references
            .iter()
            .find(|r| r.controller == Some(true))
            .map(|r| format!("{}/{}", r.kind, r.name));
        Workload {
            kind,
            namespace: o.metadata.namespace.clone().unwrap_or_default(),
            name: o.metadata.name.clone(),
            resource_version: o.metadata.resource_version.clone(),
            marker: ann.get(marker_key(kind)).cloned(),
            excluded: ann.get(ANN_EXCLUDE).is_some_and(|v| v.eq_ignore_ascii_case("true")),
            controller,
            setting,
            // A template without containers (never from a real apiserver) requests nothing.
            per_replica: matches!(kind, Kind::Deployment | Kind::StatefulSet)
                .then(|| o.spec.pod_request.unwrap_or_default()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedNamespace {
    pub name: String,
    #[serde(skip)]
    pub resource_version: Option<String>,
    pub cost_center: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl ManagedNamespace {
    pub fn from_slim(o: Slim) -> Self {
        let m = o.metadata;
        ManagedNamespace {
            cost_center: m
                .labels
                .get(LABEL_COST_CENTER)
                .filter(|s| !s.is_empty())
                .cloned()
                .unwrap_or_else(|| UNASSIGNED.to_string()),
            name: m.name,
            resource_version: m.resource_version,
            labels: m.labels,
            annotations: m.annotations,
        }
    }

    /// The namespace's own `namespace-scheduler/cost-center` label, if set.
    pub fn cost_center_label(&self) -> Option<&str> {
        self.labels
            .get(LABEL_COST_CENTER)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Its activation window, if one is recorded (open or spent), with the cost center it was
    /// granted to (windows recorded before that was stored count for the label's).
    pub fn window(&self) -> Option<crate::permissions::Window> {
        Some(crate::permissions::Window {
            namespace: self.name.clone(),
            cost_center: self
                .annotations
                .get(ANN_ACTIVE_COST_CENTER)
                .cloned()
                .unwrap_or_else(|| self.cost_center.clone()),
            until: self.active_until()?,
        })
    }

    pub fn active_until(&self) -> Option<DateTime<Utc>> {
        self.annotations
            .get(ANN_ACTIVE_UNTIL)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    /// The ActivationRequest whose acceptance opened its window, if a request did.
    pub fn active_request(&self) -> Option<&str> {
        self.annotations.get(ANN_ACTIVE_REQUEST).map(String::as_str)
    }
}

/// Why a namespace that exists is not managed: protected, excluded or being deleted. Used to
/// filter discovery and to refuse explicit `up`/`down` requests (exit 2).
pub fn unmanaged_reason(config: &Config, ns: &Slim) -> Option<String> {
    let name = &ns.metadata.name;
    if config.is_protected(name) {
        return Some(format!(
            "namespace {name} is protected (PROTECTED_NAMESPACES) and is never touched"
        ));
    }
    if ns.metadata.labels.get(LABEL_EXCLUDE).is_some_and(|v| v == "true") {
        return Some(format!("namespace {name} is labelled {LABEL_EXCLUDE}=true"));
    }
    // Its workloads are going away with it: never written, never counted.
    if ns.is_being_deleted() {
        return Some(format!("namespace {name} is being deleted (Terminating)"));
    }
    None
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub namespaces: BTreeMap<String, ManagedNamespace>,
    /// Namespaces listed (they match `NAMESPACE_SELECTOR`) but not managed, with the reason:
    /// protected, excluded, being deleted.
    pub unmanaged: BTreeMap<String, String>,
    /// Workloads of managed namespaces, by namespace, sorted by kind then name.
    pub workloads: BTreeMap<String, Vec<Workload>>,
    /// Whether the KEDA ScaledObject CRD is served.
    pub keda: bool,
}

impl Inventory {
    pub fn workloads_of(&self, ns: &str) -> &[Workload] {
        self.workloads.get(ns).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The activation windows open at `at` (the off-hours caps count these: windows, not
    /// running pods, hold slots).
    pub fn open_windows(&self, at: DateTime<Utc>) -> Vec<crate::permissions::Window> {
        self.namespaces
            .values()
            .filter_map(ManagedNamespace::window)
            .filter(|w| w.open_at(at))
            .collect()
    }
}

/// Lists namespaces (with `NAMESPACE_SELECTOR`), then every workload kind cluster-wide.
pub async fn discover(client: &kube::Client, config: &Config, policy: &RetryPolicy) -> Result<Inventory> {
    let mut inv = Inventory::default();
    let pages = |kind, selector| ApiPages { client, kind, selector };
    let selector = config.namespace_selector.as_deref();
    let (namespaces, unmanaged) = (&mut inv.namespaces, &mut inv.unmanaged);
    list_all(
        &mut pages(Kind::Namespace, selector),
        policy,
        "list Namespace",
        |l| match l {
            Listed::Item(ns) => match unmanaged_reason(config, &ns) {
                None => {
                    let m = ManagedNamespace::from_slim(ns);
                    namespaces.insert(m.name.clone(), m);
                }
                Some(why) => {
                    unmanaged.insert(ns.metadata.name, why);
                }
            },
            Listed::Restart => {
                namespaces.clear();
                unmanaged.clear();
            }
        },
    )
    .await?;
    for kind in Kind::WORKLOADS {
        let (namespaces, workloads) = (&inv.namespaces, &mut inv.workloads);
        let what = format!("list {kind}");
        let listed = list_all(&mut pages(kind, None), policy, &what, |l| match l {
            Listed::Item(o) => {
                let ns = o.metadata.namespace.as_deref().unwrap_or_default();
                if namespaces.contains_key(ns) {
                    let w = Workload::from_slim(kind, o);
                    match workloads.get_mut(&w.namespace) {
                        Some(list) => list.push(w),
                        None => {
                            workloads.insert(w.namespace.clone(), vec![w]);
                        }
                    }
                }
            }
            // This kind's items listed so far are forgotten; other kinds' stay.
            Listed::Restart => workloads.values_mut().for_each(|l| l.retain(|w| w.kind != kind)),
        })
        .await;
        match listed {
            Ok(()) if kind == Kind::ScaledObject => inv.keda = true,
            Ok(()) => {}
            // No ScaledObject CRD in this cluster: nothing to pause.
            Err(crate::Error::Kube(kube::Error::Api(s))) if kind == Kind::ScaledObject && s.code == 404 => {
                tracing::debug!("KEDA ScaledObject CRD not served; skipping");
            }
            Err(e) => return Err(e),
        }
    }
    for list in inv.workloads.values_mut() {
        // Stable: of an item repeated by pagination (the list changed between pages), the
        // first one listed is kept.
        list.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        list.dedup_by(|later, first| later.kind == first.kind && later.name == first.name);
        list.shrink_to_fit();
    }
    Ok(inv)
}
