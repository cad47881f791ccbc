//! The kinds the scheduler switches off and on, as data (docs/reference.md §4): a kind is one
//! row of [`KINDS`]. Discovery, the plan, the writes, the audit, the summary and the savings read
//! a kind only through its row, so a new kind is one entry here (plus its RBAC rule in
//! `manifests/`, which a test derives from this table).
//!
//! Objects the scheduler touches that are not workloads (the Namespace, ActivationRequests, the
//! Lease, Events) are not kinds: they have their own [`ApiResource`]s where they are used.

use std::sync::LazyLock;

use kube::core::ApiResource;
use serde::Serialize;

/// Our prefix for every label and annotation we own.
pub const PREFIX: &str = "namespace-scheduler/";
pub const ANN_ORIGINAL_REPLICAS: &str = "namespace-scheduler/original-replicas";
pub const ANN_ORIGINAL_SUSPEND: &str = "namespace-scheduler/original-suspend";
/// Marks a KEDA pause as ours, so `up` only unpauses what `down` paused.
pub const ANN_KEDA_PAUSED_BY_US: &str = "namespace-scheduler/paused-by-scheduler";
pub const ANN_KEDA_PAUSED_REPLICAS: &str = "autoscaling.keda.sh/paused-replicas";

/// How a kind is switched off, and what its marker annotation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// `spec.replicas` to 0 (unset reads as 1, the apiserver's default); the marker keeps the
    /// original count.
    Replicas,
    /// `spec.suspend: true`; the marker keeps the original (`"false"`).
    Suspend,
    /// The annotation `key` set to `value` pauses it (KEDA's `paused-replicas: "0"`); the
    /// marker says the pause is ours.
    PauseAnnotation { key: &'static str, value: &'static str },
    /// A HorizontalPodAutoscaler that could scale its target back from 0 (`minReplicas: 0`,
    /// the `HPAScaleToZero` feature): its scale-up is disabled
    /// (`spec.behavior.scaleUp.selectPolicy: Disabled`) while its target is down; the marker
    /// keeps the original `spec.behavior` as JSON (`null` when it had none). One with
    /// `minReplicas` ≥ 1 is idle while its target is at 0 and is never touched.
    ScaleUpPolicy,
}

/// One kind the scheduler switches.
#[derive(Debug)]
pub struct KindSpec {
    /// API group (`""` for the core group).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub switch: Switch,
    /// The annotation that records what `down` changed.
    pub marker: &'static str,
    /// Has a pod template (`spec.template`) whose requests, per replica, a down frees.
    pub pod_template: bool,
    /// Its CRD may be absent: not served (404) → skipped silently; served → used.
    pub optional_crd: bool,
}

/// The HPA's marker: its `spec.behavior` before our down, as JSON.
pub const ANN_ORIGINAL_BEHAVIOR: &str = "namespace-scheduler/original-behavior";

/// Every kind, in the order plans, summaries and audit records list them.
pub static KINDS: &[KindSpec] = &[
    KindSpec {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        switch: Switch::Replicas,
        marker: ANN_ORIGINAL_REPLICAS,
        pod_template: true,
        optional_crd: false,
    },
    KindSpec {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        plural: "statefulsets",
        switch: Switch::Replicas,
        marker: ANN_ORIGINAL_REPLICAS,
        pod_template: true,
        optional_crd: false,
    },
    KindSpec {
        group: "batch",
        version: "v1",
        kind: "CronJob",
        plural: "cronjobs",
        switch: Switch::Suspend,
        marker: ANN_ORIGINAL_SUSPEND,
        pod_template: false,
        optional_crd: false,
    },
    KindSpec {
        group: "keda.sh",
        version: "v1alpha1",
        kind: "ScaledObject",
        plural: "scaledobjects",
        switch: Switch::PauseAnnotation {
            key: ANN_KEDA_PAUSED_REPLICAS,
            value: "0",
        },
        marker: ANN_KEDA_PAUSED_BY_US,
        pod_template: false,
        optional_crd: true,
    },
    KindSpec {
        group: "argoproj.io",
        version: "v1alpha1",
        kind: "Rollout",
        plural: "rollouts",
        switch: Switch::Replicas,
        marker: ANN_ORIGINAL_REPLICAS,
        pod_template: true,
        optional_crd: true,
    },
    KindSpec {
        group: "autoscaling",
        version: "v2",
        kind: "HorizontalPodAutoscaler",
        plural: "horizontalpodautoscalers",
        switch: Switch::ScaleUpPolicy,
        marker: ANN_ORIGINAL_BEHAVIOR,
        pod_template: false,
        optional_crd: false,
    },
];

/// A kind: a row of [`KINDS`]. Ordered as the table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kind(u8);

impl Kind {
    pub const DEPLOYMENT: Kind = Kind(0);
    pub const STATEFUL_SET: Kind = Kind(1);
    pub const CRON_JOB: Kind = Kind(2);
    pub const SCALED_OBJECT: Kind = Kind(3);

    /// Every kind, in the table's order.
    pub fn all() -> impl Iterator<Item = Kind> {
        (0..KINDS.len()).map(|i| Kind(i as u8))
    }

    /// The kind named `kind` (as an audit record's `kind` says it).
    pub fn named(kind: &str) -> Option<Kind> {
        Kind::all().find(|k| k.as_str() == kind)
    }

    pub fn spec(self) -> &'static KindSpec {
        &KINDS[usize::from(self.0)]
    }

    pub fn as_str(self) -> &'static str {
        self.spec().kind
    }

    pub fn switch(self) -> Switch {
        self.spec().switch
    }

    pub fn marker(self) -> &'static str {
        self.spec().marker
    }

    /// Whether it has replicas, hence requests a change frees or restores.
    pub fn has_replicas(self) -> bool {
        self.spec().switch == Switch::Replicas
    }

    /// Its API resource, for kube to build its paths.
    pub fn api_resource(self) -> &'static ApiResource {
        static RESOURCES: LazyLock<Vec<ApiResource>> = LazyLock::new(|| {
            KINDS
                .iter()
                .map(|k| ApiResource {
                    group: k.group.into(),
                    version: k.version.into(),
                    api_version: if k.group.is_empty() {
                        k.version.into()
                    } else {
                        format!("{}/{}", k.group, k.version)
                    },
                    kind: k.kind.into(),
                    plural: k.plural.into(),
                })
                .collect()
        });
        &RESOURCES[usize::from(self.0)]
    }
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether `key` is a label or annotation the engine reads: its own prefix, or a kind's pause
/// annotation.
pub fn is_read(key: &str) -> bool {
    key.starts_with(PREFIX)
        || KINDS
            .iter()
            .any(|k| matches!(k.switch, Switch::PauseAnnotation { key: pause, .. } if pause == key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_their_constants_name_their_rows() {
        for (a, b) in Kind::all().zip(Kind::all().skip(1)) {
            assert!(a < b);
        }
        for k in Kind::all() {
            assert_eq!(Kind::named(k.as_str()), Some(k), "{k} is named once");
            let r = k.api_resource();
            assert_eq!((r.kind.as_str(), r.plural.as_str()), (k.as_str(), k.spec().plural));
        }
        let named = [
            (Kind::DEPLOYMENT, "Deployment"),
            (Kind::STATEFUL_SET, "StatefulSet"),
            (Kind::CRON_JOB, "CronJob"),
            (Kind::SCALED_OBJECT, "ScaledObject"),
        ];
        for (k, name) in named {
            assert_eq!(k.as_str(), name);
        }
        assert_eq!(Kind::named("Namespace"), None, "a Namespace is not a workload kind");
    }

    #[test]
    fn a_pod_template_holds_requests_only_where_replicas_are_switched() {
        for k in Kind::all() {
            assert!(!k.spec().pod_template || k.has_replicas(), "{k}");
        }
    }

    #[test]
    fn the_engine_reads_its_own_keys_and_the_pause_annotations_only() {
        assert!(is_read("namespace-scheduler/original-replicas"));
        assert!(is_read(super::ANN_KEDA_PAUSED_REPLICAS));
        assert!(!is_read("app.kubernetes.io/name"));
        assert!(!is_read("kubectl.kubernetes.io/last-applied-configuration"));
    }
}
