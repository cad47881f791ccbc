//! Discovery: the managed namespaces and their workloads as plain data.
//!
//! One cluster-wide list per kind (never one call per namespace per kind), answered by the
//! apiserver's watch cache and decoded item by item ([`super::list`]), so a run's read cost does
//! not grow with the number of namespaces beyond the bytes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::kinds::{Kind, Switch};
use super::list::{list_all, ApiPages, Listed};
use super::objects::Slim;
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
    /// A pause annotation's value (KEDA `autoscaling.keda.sh/paused-replicas`; None = not
    /// paused).
    Paused(Option<String>),
    /// Whether a HorizontalPodAutoscaler may scale up (`spec.behavior.scaleUp.selectPolicy`
    /// is not `Disabled`).
    ScaleUp(bool),
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Replicas(n) => write!(f, "{n}"),
            Setting::Suspend(s) => write!(f, "suspend={s}"),
            Setting::Paused(None) => f.write_str("unpaused"),
            Setting::Paused(Some(v)) => write!(f, "paused={v}"),
            Setting::ScaleUp(true) => f.write_str("scale-up=enabled"),
            Setting::ScaleUp(false) => f.write_str("scale-up=disabled"),
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
    /// What one replica requests (kinds with a pod template; None for other kinds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_replica: Option<PodRequest>,
    /// A HorizontalPodAutoscaler's target and behaviour (None for other kinds).
    #[serde(skip)]
    pub autoscaler: Option<Box<Autoscaler>>,
}

/// What the plan needs of a HorizontalPodAutoscaler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoscaler {
    /// `Kind/name` of its `scaleTargetRef`.
    pub target: String,
    /// `minReplicas: 0`: with object or external metrics it scales its target back from 0.
    pub scales_from_zero: bool,
    /// Its `spec.behavior` as compact JSON, `null` when unset: what a down keeps in the marker.
    pub behavior: String,
}

/// Whether a HorizontalPodAutoscaler's `spec.behavior` lets it scale up.
fn scale_up_enabled(behavior: Option<&serde_json::Value>) -> bool {
    behavior
        .and_then(|b| b.pointer("/scaleUp/selectPolicy"))
        .and_then(|p| p.as_str())
        != Some("Disabled")
}

impl Workload {
    pub fn from_slim(kind: Kind, o: Slim) -> Self {
        let ann = &o.metadata.annotations;
        let setting = match kind.switch() {
            // The apiserver defaults an unset replicas to 1.
            Switch::Replicas => Setting::Replicas(o.spec.replicas.unwrap_or(1)),
            Switch::Suspend => Setting::Suspend(o.spec.suspend.unwrap_or(false)),
            Switch::PauseAnnotation { key, .. } => Setting::Paused(ann.get(key).cloned()),
            Switch::ScaleUpPolicy => Setting::ScaleUp(scale_up_enabled(o.spec.behavior.as_ref())),
        };
        let autoscaler = (kind.switch() == Switch::ScaleUpPolicy).then(|| {
            let target = o.spec.scale_target_ref.clone().unwrap_or_default();
            Box::new(Autoscaler {
                target: format!("{}/{}", target.kind, target.name),
                scales_from_zero: o.spec.min_replicas == Some(0),
                behavior: o.spec.behavior.as_ref().unwrap_or(&serde_json::Value::Null).to_string(),
            })
        });
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
            marker: ann.get(kind.marker()).cloned(),
            excluded: ann.get(ANN_EXCLUDE).is_some_and(|v| v.eq_ignore_ascii_case("true")),
            controller,
            setting,
            // A template without containers (never from a real apiserver) requests nothing.
            per_replica: kind.spec().pod_template.then(|| o.spec.pod_request.unwrap_or_default()),
            autoscaler,
        }
    }

    /// Whether the plan has anything to decide about it: everything but an autoscaler that
    /// cannot scale its target from 0 and carries no marker of ours (it is idle while its target
    /// is at 0), which is not even kept.
    pub fn concerns_us(&self) -> bool {
        self.autoscaler.as_ref().is_none_or(|a| a.scales_from_zero) || self.marker.is_some()
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
    let pages = |resource, selector| ApiPages {
        client,
        resource,
        selector,
    };
    let selector = config.namespace_selector.as_deref();
    let (namespaces, unmanaged) = (&mut inv.namespaces, &mut inv.unmanaged);
    list_all(
        &mut pages(&super::objects::NAMESPACE, selector),
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
    for kind in Kind::all() {
        let (namespaces, workloads) = (&inv.namespaces, &mut inv.workloads);
        let what = format!("list {kind}");
        let listed = list_all(&mut pages(kind.api_resource(), None), policy, &what, |l| match l {
            Listed::Item(o) => {
                let ns = o.metadata.namespace.as_deref().unwrap_or_default();
                if namespaces.contains_key(ns) {
                    let w = Workload::from_slim(kind, o);
                    if !w.concerns_us() {
                        return;
                    }
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
            Ok(()) => {}
            // Its CRD is not installed in this cluster: nothing of that kind to switch.
            Err(crate::Error::Kube(kube::Error::Api(s))) if kind.spec().optional_crd && s.code == 404 => {
                tracing::debug!(kind = %kind, "CRD not served; skipping");
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
