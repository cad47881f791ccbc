//! The plan: a pure function from the cluster's current state and an intent to the exact writes.
//!
//! Every write sets the value and our marker annotation together, so the state of a workload
//! always tells how to restore it: a crash between two writes loses nothing, and the next run,
//! planning from whatever it finds, converges.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::inventory::{ManagedNamespace, Setting, Workload};
use super::kinds::{Kind, Switch};
use super::*;
use crate::audit::{OperationType, ResourceChange};
use crate::resources::{PodRequest, Requested};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Up,
    Down,
}

impl Target {
    pub fn as_str(&self) -> &'static str {
        match self {
            Target::Up => "up",
            Target::Down => "down",
        }
    }
}

/// Everything one write sets on a workload: the value and our marker annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldState {
    pub setting: Setting,
    pub marker: Option<String>,
}

impl FieldState {
    pub fn of(w: &Workload) -> Self {
        FieldState {
            setting: w.setting.clone(),
            marker: w.marker.clone(),
        }
    }
}

/// The merge patch that takes a workload from `from` to `to` (`null` removes an annotation).
pub fn state_patch(kind: Kind, from: &FieldState, to: &FieldState) -> Value {
    let mut annotations = Map::new();
    annotations.insert(kind.marker().into(), json!(to.marker));
    let mut patch = json!({});
    match (kind.switch(), &to.setting) {
        (_, Setting::Replicas(n)) => patch["spec"] = json!({"replicas": n}),
        (_, Setting::Suspend(s)) => patch["spec"] = json!({"suspend": s}),
        (Switch::PauseAnnotation { key, .. }, Setting::Paused(p)) => {
            annotations.insert(key.into(), json!(p));
        }
        (_, Setting::Paused(_)) => {}
        // Only the marker moves when the value is already there (someone set it meanwhile).
        (_, Setting::ScaleUp(_)) if from.setting == to.setting => {}
        (_, Setting::ScaleUp(false)) => patch["spec"] = json!({"behavior": {"scaleUp": {"selectPolicy": "Disabled"}}}),
        (_, Setting::ScaleUp(true)) => {
            if let Some(original) = from.marker.as_deref().and_then(|m| original_behavior(m).ok()) {
                patch["spec"] = json!({ "behavior": restored_behavior(original) });
            }
        }
    }
    patch["metadata"] = json!({"annotations": annotations});
    patch
}

/// An autoscaler's marker: its `spec.behavior` before our down, a JSON object or `null`.
fn original_behavior(marker: &str) -> std::result::Result<Value, ()> {
    match serde_json::from_str::<Value>(marker) {
        Ok(v) if v.is_object() || v.is_null() => Ok(v),
        _ => Err(()),
    }
}

/// The `spec.behavior` of a merge patch that puts back exactly `original`: a merge patch only
/// sets the keys it names, so the `scaleUp.selectPolicy` our down added is named (as `null`)
/// where the original had none; an original without behaviour removes it whole.
fn restored_behavior(mut original: Value) -> Value {
    if let Some(b) = original.as_object_mut() {
        let up = b.entry("scaleUp").or_insert(Value::Null);
        if let Some(up) = up.as_object_mut() {
            up.entry("selectPolicy").or_insert(Value::Null);
        }
    }
    original
}

/// Adds the optimistic-concurrency precondition to a merge patch.
pub fn with_resource_version(mut patch: Value, rv: Option<&str>) -> Value {
    if let Some(rv) = rv {
        patch["metadata"]["resourceVersion"] = json!(rv);
    }
    patch
}

/// One planned workload write. Its merge patch is derived from `after` when it is sent (or
/// shown), not stored: at thousands of workloads the JSON values dominated the run's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    pub name: String,
    pub from: String,
    pub to: String,
    pub namespace: String,
    pub before: FieldState,
    pub after: FieldState,
    pub resource_version: Option<String>,
    /// What one replica requests (kinds with a pod template), from the workload as listed.
    pub per_replica: Option<PodRequest>,
}

/// Shown in a dry-run plan as `kind`, `name`, `from`, `to` and the merge patch.
impl Serialize for Change {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Change", 7)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("from", &self.from)?;
        st.serialize_field("to", &self.to)?;
        st.serialize_field("patch", &self.patch())?;
        st.serialize_field("per_replica", &self.per_replica)?;
        // A change moves replicas one way: what a down frees or an up restores.
        let key = if self.replicas_restored() > 0 {
            "restores"
        } else {
            "frees"
        };
        st.serialize_field(key, &(self.frees() + self.restores()))?;
        st.end()
    }
}

impl Change {
    fn new(w: &Workload, after: FieldState) -> Self {
        let before = FieldState::of(w);
        Change {
            kind: w.kind,
            name: w.name.clone(),
            from: before.setting.to_string(),
            to: after.setting.to_string(),
            namespace: w.namespace.clone(),
            before,
            after,
            resource_version: w.resource_version.clone(),
            per_replica: w.per_replica,
        }
    }

    /// `after − before` in replicas (0 for kinds without replicas): negative for a down.
    fn replica_delta(&self) -> i64 {
        match (&self.before.setting, &self.after.setting) {
            (Setting::Replicas(from), Setting::Replicas(to)) => i64::from(*to) - i64::from(*from),
            _ => 0,
        }
    }

    /// Replicas this change removes (a down: from − to).
    pub fn replicas_removed(&self) -> u64 {
        (-self.replica_delta()).max(0) as u64
    }

    /// Replicas this change brings back (an up: to − from). An up that keeps a count someone
    /// set while the workload was down restores nothing: those pods are running already.
    pub fn replicas_restored(&self) -> u64 {
        self.replica_delta().max(0) as u64
    }

    /// What the change frees: replicas removed × per-replica request (0 for an up, a CronJob or
    /// a ScaledObject).
    pub fn frees(&self) -> Requested {
        self.per_replica
            .map(|p| Requested::of(&p, self.replicas_removed()))
            .unwrap_or_default()
    }

    /// What the change restores: replicas brought back × per-replica request.
    pub fn restores(&self) -> Requested {
        self.per_replica
            .map(|p| Requested::of(&p, self.replicas_restored()))
            .unwrap_or_default()
    }

    /// The merge patch (sent with `metadata.resourceVersion` added).
    pub fn patch(&self) -> Value {
        state_patch(self.kind, &self.before, &self.after)
    }

    pub fn resource(&self) -> ResourceChange {
        ResourceChange::changed(
            self.kind.as_str(),
            &self.name,
            &self.from,
            &self.to,
            self.per_replica.map(|p| (p.cpu_millicores, p.memory_bytes)),
        )
    }
}

/// A planned change whose pod template does not request everything: it counts 0 for what is
/// missing, and the plan says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestGap {
    pub kind: Kind,
    pub name: String,
    /// e.g. `no requests`, `no cpu request on 1 of 3 containers`.
    pub reason: String,
}

/// What a plan frees and restores, and the changes whose figures are incomplete. Sums over
/// namespaces with `+=` or `Iterator::sum`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResourceTotals {
    pub frees: Requested,
    pub restores: Requested,
    pub without_requests: Vec<RequestGap>,
}

impl std::ops::AddAssign for ResourceTotals {
    fn add_assign(&mut self, other: ResourceTotals) {
        self.frees += other.frees;
        self.restores += other.restores;
        self.without_requests.extend(other.without_requests);
    }
}

impl std::iter::Sum for ResourceTotals {
    fn sum<I: Iterator<Item = ResourceTotals>>(iter: I) -> ResourceTotals {
        iter.fold(ResourceTotals::default(), |mut a, b| {
            a += b;
            a
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Change(Box<Change>),
    AtTarget,
    Skip(SkipReason),
}

/// Why a workload is left as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// By rule: excluded, operator-owned, off on purpose. Quiet: the plan lists it, nothing more.
    Rule(String),
    /// Our own annotation does not read, so the value to restore is unknown and nothing is
    /// guessed. Loud: named in the summary, the audit record and a Warning Event at every run
    /// until someone fixes it, so its namespace is never "unchanged".
    Unreadable { annotation: &'static str, value: String },
}

impl SkipReason {
    fn rule(why: impl Into<String>) -> Decision {
        Decision::Skip(SkipReason::Rule(why.into()))
    }

    fn unreadable(annotation: &'static str, value: &str) -> Decision {
        Decision::Skip(SkipReason::Unreadable {
            annotation,
            value: value.to_string(),
        })
    }

    pub fn is_unreadable(&self) -> bool {
        matches!(self, SkipReason::Unreadable { .. })
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Rule(why) => f.write_str(why),
            SkipReason::Unreadable { annotation, value } => write!(
                f,
                "unreadable {annotation}={value:?}: the value to restore is unknown, so it is left as it is until the annotation is fixed"
            ),
        }
    }
}

/// What to do with one workload to reach `target`.
pub fn decide(w: &Workload, target: Target) -> Decision {
    if w.excluded {
        return SkipReason::rule(format!("annotated {ANN_EXCLUDE}"));
    }
    if let Some(c) = &w.controller {
        return SkipReason::rule(format!("controlled by {c}"));
    }
    let change = |setting: Setting, marker: Option<String>| {
        Decision::Change(Box::new(Change::new(w, FieldState { setting, marker })))
    };
    match (target, &w.setting, &w.marker) {
        // Down: value 0 and the original value, in one write.
        (Target::Down, Setting::Replicas(0), Some(_)) => Decision::AtTarget,
        (Target::Down, Setting::Replicas(0), None) => SkipReason::rule("at 0 without our annotation: off on purpose"),
        // With or without a marker: a count set while down is the new original.
        (Target::Down, Setting::Replicas(n), _) => change(Setting::Replicas(0), Some(n.to_string())),
        (Target::Down, Setting::Suspend(true), Some(_)) => Decision::AtTarget,
        (Target::Down, Setting::Suspend(true), None) => {
            SkipReason::rule("suspended without our annotation: off on purpose")
        }
        (Target::Down, Setting::Suspend(false), _) => change(Setting::Suspend(true), Some("false".into())),
        (Target::Down, Setting::Paused(Some(p)), Some(_)) if paused_by(w.kind, p) => Decision::AtTarget,
        (Target::Down, Setting::Paused(Some(_)), None) => SkipReason::rule("paused by someone else: off on purpose"),
        (Target::Down, Setting::Paused(_), _) => {
            let Switch::PauseAnnotation { value, .. } = w.kind.switch() else {
                return SkipReason::rule(format!("{} is not paused by an annotation", w.kind));
            };
            change(Setting::Paused(Some(value.into())), Some("true".into()))
        }
        (Target::Down, Setting::ScaleUp(false), Some(_)) => Decision::AtTarget,
        (Target::Down, Setting::ScaleUp(false), None) => {
            SkipReason::rule("scale-up disabled without our annotation: off on purpose")
        }
        // With or without a marker: the behaviour found is the one to restore.
        (Target::Down, Setting::ScaleUp(true), _) => match w.autoscaler.as_deref() {
            Some(a) if a.scales_from_zero => change(Setting::ScaleUp(false), Some(a.behavior.clone())),
            _ => SkipReason::rule("minReplicas ≥ 1: idle while its target is at 0"),
        },

        // Up: the exact original value, unless someone changed it while down.
        (Target::Up, Setting::Replicas(0), None) => SkipReason::rule("at 0 without our annotation: off on purpose"),
        (Target::Up, Setting::Replicas(0), Some(m)) => match m.trim().parse::<i32>() {
            Ok(n) if n >= 0 => change(Setting::Replicas(n), None),
            _ => SkipReason::unreadable(w.kind.marker(), m),
        },
        (Target::Up, Setting::Suspend(true), None) => {
            SkipReason::rule("suspended without our annotation: off on purpose")
        }
        (Target::Up, Setting::Suspend(true), Some(m)) => match m.trim().parse::<bool>() {
            Ok(s) => change(Setting::Suspend(s), None),
            _ => SkipReason::unreadable(w.kind.marker(), m),
        },
        (Target::Up, Setting::Paused(Some(p)), Some(_)) if paused_by(w.kind, p) => change(Setting::Paused(None), None),
        (Target::Up, Setting::Paused(Some(_)), None) => SkipReason::rule("paused by someone else: off on purpose"),
        (Target::Up, Setting::ScaleUp(false), None) => {
            SkipReason::rule("scale-up disabled without our annotation: off on purpose")
        }
        (Target::Up, Setting::ScaleUp(false), Some(m)) => match original_behavior(m) {
            Ok(_) => change(Setting::ScaleUp(true), None),
            Err(()) => SkipReason::unreadable(w.kind.marker(), m),
        },
        // Changed by someone while down (or never ours): keep the value, drop the marker.
        (Target::Up, s, Some(_)) => change(s.clone(), None),
        (Target::Up, _, None) => Decision::AtTarget,
    }
}

/// Whether `value` is the pause value `kind` is paused with.
fn paused_by(kind: Kind, value: &str) -> bool {
    matches!(kind.switch(), Switch::PauseAnnotation { value: ours, .. } if ours == value)
}

/// The namespace labels and annotations the engine owns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NsMeta {
    pub status: Option<String>,
    pub active_until: Option<String>,
    pub active_cost_center: Option<String>,
    pub active_request: Option<String>,
    /// Whether the Namespace still carries the answers to the Namespace-annotation requests
    /// that ActivationRequests replaced (`request-status`, `request-answered`). They are ours:
    /// a patch to a state without them removes them; no patch ever sets them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub legacy_answer: bool,
}

impl NsMeta {
    pub fn of(labels: &BTreeMap<String, String>, annotations: &BTreeMap<String, String>) -> Self {
        NsMeta {
            status: labels.get(LABEL_STATUS).cloned(),
            active_until: annotations.get(ANN_ACTIVE_UNTIL).cloned(),
            active_cost_center: annotations.get(ANN_ACTIVE_COST_CENTER).cloned(),
            active_request: annotations.get(ANN_ACTIVE_REQUEST).cloned(),
            legacy_answer: [LEGACY_ANN_REQUEST_STATUS, LEGACY_ANN_REQUEST_ANSWERED]
                .iter()
                .any(|k| annotations.contains_key(*k)),
        }
    }

    /// A merge patch from `self` to `to`, touching only the keys that differ.
    pub fn patch_to(&self, to: &NsMeta) -> Value {
        let (mut labels, mut annotations) = (Map::new(), Map::new());
        if self.status != to.status {
            labels.insert(LABEL_STATUS.into(), json!(to.status));
        }
        for (key, a, b) in [
            (ANN_ACTIVE_UNTIL, &self.active_until, &to.active_until),
            (ANN_ACTIVE_COST_CENTER, &self.active_cost_center, &to.active_cost_center),
            (ANN_ACTIVE_REQUEST, &self.active_request, &to.active_request),
        ] {
            if a != b {
                annotations.insert(key.into(), json!(b));
            }
        }
        if self.legacy_answer && !to.legacy_answer {
            for key in [LEGACY_ANN_REQUEST_STATUS, LEGACY_ANN_REQUEST_ANSWERED] {
                annotations.insert(key.into(), Value::Null);
            }
        }
        let mut meta = Map::new();
        if !labels.is_empty() {
            meta.insert("labels".into(), Value::Object(labels));
        }
        if !annotations.is_empty() {
            meta.insert("annotations".into(), Value::Object(annotations));
        }
        json!({ "metadata": meta })
    }
}

/// Our keys on the Namespace, before and after; the patch is always `before → after`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceChange {
    pub before: NsMeta,
    pub after: NsMeta,
}

impl NamespaceChange {
    /// The merge patch from `before` to `after`, touching only the keys that differ.
    pub fn patch(&self) -> Value {
        self.before.patch_to(&self.after)
    }
}

impl Serialize for NamespaceChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("NamespaceChange", 3)?;
        st.serialize_field("before", &self.before)?;
        st.serialize_field("after", &self.after)?;
        st.serialize_field("patch", &self.patch())?;
        st.end()
    }
}

/// What happens to the namespace's activation window (`namespace-scheduler/active-until`,
/// `namespace-scheduler/active-cost-center` and `namespace-scheduler/active-request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    Keep,
    /// Open (or replace) the window until then, granted to this cost center.
    Set(DateTime<Utc>, String),
    Remove,
}

/// What a command wants for one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub target: Target,
    pub until: Until,
    pub operation: OperationType,
    pub requested_by: String,
    /// The ActivationRequest whose acceptance opens the window of `Until::Set` (None: an admin's
    /// `up`).
    pub granted_by: Option<String>,
}

/// A workload left as it is, why, and the value it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub kind: Kind,
    pub name: String,
    pub reason: SkipReason,
    /// Its value as listed (`0`, `suspend=true`), which it keeps.
    pub value: String,
}

/// Shown in a plan or summary as `kind`, `name`, `reason` (text) and `unreadable`.
impl Serialize for Skipped {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Skipped", 5)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("reason", &self.reason.to_string())?;
        st.serialize_field("unreadable", &self.reason.is_unreadable())?;
        st.serialize_field("value", &self.value)?;
        st.end()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamespacePlan {
    pub namespace: String,
    pub cost_center: String,
    pub target: Target,
    pub operation: &'static str,
    pub requested_by: String,
    pub active_until: Option<String>,
    pub changes: Vec<Change>,
    pub skipped: Vec<Skipped>,
    /// Workloads already at the target (no write).
    pub at_target: usize,
    /// Our labels/annotations on the Namespace, written after the workloads.
    pub namespace_change: Option<NamespaceChange>,
    /// Which hours decided: `cluster`, or the namespace's own schedule (normal form).
    pub schedule: String,
    #[serde(skip)]
    pub operation_type: OperationType,
    #[serde(skip)]
    pub resource_version: Option<String>,
}

impl NamespacePlan {
    /// Nothing to write and nothing to say: a namespace with an unreadable annotation is never
    /// a no-op (it is named at every run until fixed).
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty() && self.namespace_change.is_none() && self.unreadable().next().is_none()
    }

    /// The workloads left alone because our annotation on them does not read.
    pub fn unreadable(&self) -> impl Iterator<Item = &Skipped> {
        self.skipped.iter().filter(|s| s.reason.is_unreadable())
    }

    /// Nothing was scaled, (de)activated or granted: at most our old answer keys are removed.
    pub fn only_bookkeeping(&self) -> bool {
        self.changes.is_empty()
            && self.namespace_change.as_ref().is_none_or(|c| {
                NsMeta {
                    legacy_answer: false,
                    ..c.before.clone()
                } == NsMeta {
                    legacy_answer: false,
                    ..c.after.clone()
                }
            })
    }

    pub fn writes(&self) -> usize {
        self.changes.len() + usize::from(self.namespace_change.is_some())
    }

    /// What this namespace's changes free (a down) and restore (an up), in total, and which
    /// of the changes that move replicas have pod templates with missing requests.
    pub fn resource_totals(&self) -> ResourceTotals {
        ResourceTotals {
            frees: self.changes.iter().map(Change::frees).sum(),
            restores: self.changes.iter().map(Change::restores).sum(),
            without_requests: self
                .changes
                .iter()
                .filter(|c| c.replica_delta() != 0)
                .filter_map(|c| {
                    Some(RequestGap {
                        kind: c.kind,
                        name: c.name.clone(),
                        reason: c.per_replica?.shortfall()?,
                    })
                })
                .collect(),
        }
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `Kind/name` of the workloads this plan leaves at 0 replicas by our hand (switched off now,
/// or already): the targets an autoscaler must not scale back from 0.
fn switched_off(workloads: &[Workload], decisions: &[Decision]) -> Vec<String> {
    workloads
        .iter()
        .zip(decisions)
        .filter(|(w, d)| match d {
            Decision::Change(c) => c.after.setting == Setting::Replicas(0),
            Decision::AtTarget => w.setting == Setting::Replicas(0) && w.marker.is_some(),
            Decision::Skip(_) => false,
        })
        .map(|(w, _)| format!("{}/{}", w.kind, w.name))
        .collect()
}

/// Each workload's decision; on the way down an autoscaler's scale-up is disabled only while
/// its target is switched off by us (an excluded or operator-owned target keeps its autoscaler).
fn decide_all(workloads: &[Workload], target: Target) -> Vec<Decision> {
    let mut decisions: Vec<Decision> = workloads.iter().map(|w| decide(w, target)).collect();
    if target == Target::Up || workloads.iter().all(|w| w.autoscaler.is_none()) {
        return decisions;
    }
    let off = switched_off(workloads, &decisions);
    for (w, d) in workloads.iter().zip(decisions.iter_mut()) {
        if let (Some(a), Decision::Change(_)) = (w.autoscaler.as_deref(), &d) {
            if !off.contains(&a.target) {
                *d = SkipReason::rule(format!("its target {} is not switched off", a.target));
            }
        }
    }
    decisions
}

pub fn plan_namespace(ns: &ManagedNamespace, workloads: &[Workload], intent: &Intent) -> NamespacePlan {
    let (mut changes, mut skipped, mut at_target) = (Vec::new(), Vec::new(), 0);
    for (w, decision) in workloads.iter().zip(decide_all(workloads, intent.target)) {
        match decision {
            Decision::Change(c) => changes.push(*c),
            Decision::AtTarget => at_target += 1,
            Decision::Skip(reason) => skipped.push(Skipped {
                kind: w.kind,
                name: w.name.clone(),
                reason,
                value: w.setting.to_string(),
            }),
        }
    }
    let before = NsMeta::of(&ns.labels, &ns.annotations);
    let mut after = before.clone();
    after.status = Some(
        if intent.target == Target::Up {
            "active"
        } else {
            "inactive"
        }
        .into(),
    );
    match &intent.until {
        Until::Keep => {}
        Until::Set(t, cost_center) => {
            after.active_until = Some(rfc3339(*t));
            after.active_cost_center = Some(cost_center.clone());
            after.active_request = intent.granted_by.clone();
        }
        Until::Remove => {
            after.active_until = None;
            after.active_cost_center = None;
            after.active_request = None;
        }
    }
    // Our old answer keys go with the next write the Namespace gets anyway.
    if after != before {
        after.legacy_answer = false;
    }
    let namespace_change = (after != before).then(|| NamespaceChange {
        before,
        after: after.clone(),
    });
    NamespacePlan {
        namespace: ns.name.clone(),
        cost_center: ns.cost_center.clone(),
        target: intent.target,
        operation: intent.operation.as_str(),
        requested_by: intent.requested_by.clone(),
        active_until: after.active_until,
        changes,
        skipped,
        at_target,
        namespace_change,
        operation_type: intent.operation,
        resource_version: ns.resource_version.clone(),
        schedule: crate::schedule::CLUSTER_SCHEDULE.into(),
    }
}
