//! The static registry of resource kinds the stand-in serves, and the discovery documents
//! (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`) built from it.

use serde_json::{json, Value};

/// Static description of one served resource kind.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group, `""` for the core group.
    pub group: &'static str,
    /// API version within the group, e.g. `v1`.
    pub version: &'static str,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Singular name, e.g. `deployment`.
    pub singular: &'static str,
    /// Kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// Whether objects live inside a namespace.
    pub namespaced: bool,
    /// kubectl short names, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Whether the apiserver maintains `metadata.generation` for this kind.
    pub has_generation: bool,
    /// Whether the kind has the `scale` subresource (autoscaling/v1 Scale).
    pub scale: bool,
    /// Custom resource (served only when its CRD is enabled; stricter update rules).
    pub custom: bool,
    /// Has the `status` subresource: writes to the object ignore `status`, writes to
    /// `/status` change only `status` (a CRD's `subresources: {status: {}}`).
    pub status: bool,
}

/// Which custom resources are served (the others answer 404, group included, as without
/// their CRD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Served {
    pub keda: bool,
    pub activation_requests: bool,
    pub rollouts: bool,
}

impl Served {
    fn serves(&self, r: &ResourceDef) -> bool {
        match r.group {
            "keda.sh" => self.keda,
            "namespace-scheduler.io" => self.activation_requests,
            "argoproj.io" => self.rollouts,
            _ => !r.custom,
        }
    }
}

impl ResourceDef {
    /// `apiVersion` string, e.g. `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` as used in apiserver messages, e.g. `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether `s` names this kind: Kind, plural, singular or a short name (case-insensitive).
    pub fn is_named(&self, s: &str) -> bool {
        let s = s.to_ascii_lowercase();
        s == self.kind.to_ascii_lowercase()
            || s == self.plural
            || s == self.singular
            || self.short_names.contains(&s.as_str())
    }
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Every kind the stand-in knows.
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        has_generation: false,
        scale: false,
        custom: false,
        status: false,
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        has_generation: false,
        scale: false,
        custom: false,
        status: false,
    },
    // Plain objects: no controller creates them (py-kube-downscaler lists them cluster-wide).
    ResourceDef {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        has_generation: false,
        scale: false,
        custom: false,
        status: false,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        has_generation: true,
        scale: true,
        custom: false,
        status: false,
    },
    ResourceDef {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        has_generation: true,
        scale: true,
        custom: false,
        status: false,
    },
    ResourceDef {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        has_generation: true,
        scale: false,
        custom: false,
        status: false,
    },
    ResourceDef {
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short_names: &["hpa"],
        has_generation: true,
        scale: false,
        custom: false,
        status: true,
    },
    ResourceDef {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        has_generation: false,
        scale: false,
        custom: false,
        status: false,
    },
    ResourceDef {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        has_generation: false,
        scale: false,
        custom: false,
        status: false,
    },
    ResourceDef {
        group: "keda.sh",
        version: "v1alpha1",
        plural: "scaledobjects",
        singular: "scaledobject",
        kind: "ScaledObject",
        namespaced: true,
        short_names: &["so"],
        has_generation: true,
        scale: false,
        custom: true,
        status: false,
    },
    // Argo Rollouts' CRD, with the scale subresource as Argo ships it.
    ResourceDef {
        group: "argoproj.io",
        version: "v1alpha1",
        plural: "rollouts",
        singular: "rollout",
        kind: "Rollout",
        namespaced: true,
        short_names: &["ro"],
        has_generation: true,
        scale: true,
        custom: true,
        status: true,
    },
    // namespace-scheduler's self-service requests (manifests/base/activationrequest-crd.yaml);
    // no schema here: what a team writes reaches the scheduler as written.
    ResourceDef {
        group: "namespace-scheduler.io",
        version: "v1alpha1",
        plural: "activationrequests",
        singular: "activationrequest",
        kind: "ActivationRequest",
        namespaced: true,
        short_names: &["actreq"],
        has_generation: true,
        scale: false,
        custom: true,
        status: true,
    },
];

/// The kinds served.
pub fn served(on: Served) -> impl Iterator<Item = &'static ResourceDef> {
    RESOURCES.iter().filter(move |r| on.serves(r))
}

/// Find a served kind by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str, on: Served) -> Option<&'static ResourceDef> {
    served(on).find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Find any known kind (served or not) by `apiVersion` and a Kind / plural / short name.
pub fn lookup(api_version: &str, name: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.is_named(name))
}

/// `/api`: the core APIVersions document.
pub fn api_versions(server_addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_addr}],
    })
}

fn groups(on: Served) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in served(on).filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn group_doc(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": [gv.clone()],
        "preferredVersion": gv,
    })
}

/// `/apis`: the APIGroupList document.
pub fn api_group_list(on: Served) -> Value {
    let groups: Vec<Value> = groups(on)
        .into_iter()
        .map(|(g, v)| {
            let mut d = group_doc(g, v);
            let o = d.as_object_mut().expect("object");
            o.remove("kind");
            o.remove("apiVersion");
            d
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/GROUP`: one APIGroup document, if served.
pub fn api_group(group: &str, on: Served) -> Option<Value> {
    groups(on)
        .into_iter()
        .find(|(g, _)| *g == group)
        .map(|(g, v)| group_doc(g, v))
}

/// `/api/v1` or `/apis/GROUP/VERSION`: the APIResourceList, if that group/version is served.
pub fn api_resource_list(group: &str, version: &str, on: Served) -> Option<Value> {
    let defs: Vec<&ResourceDef> = served(on)
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for r in &defs {
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        resources.push(entry);
        if r.status {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.scale {
            resources.push(json!({
                "name": format!("{}/scale", r.plural),
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// `/version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-standin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}
