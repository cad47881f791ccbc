//! The label guard (`manifests/components/label-guard`, and its Kyverno twin): which Namespace
//! keys it guards, read from the rendered policy, and which keys the scheduler itself writes,
//! read from the code, so the two cannot drift apart.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, Variable};
use namespace_scheduler::scaling::plan::NsMeta;
use namespace_scheduler::scaling::{ANN_REQUESTED_BY, ANN_REQUEST_UNTIL, LABEL_COST_CENTER};
use namespace_scheduler::schedule::SCHEDULE_ANNOTATION;
use serde_json::Value;

pub const POLICY_NAME: &str = "namespace-scheduler-label-guard";
/// Variables of the policy that decide who may change; the rest decide what changed and are
/// shared, word for word, with the Kyverno policy.
pub const IDENTITY_VARIABLES: [&str; 3] = ["platformGroups", "platformUsers", "mayChange"];

/// Every key the scheduler writes on a Namespace (`NsMeta`'s patch from nothing to all keys
/// set), plus the two the platform sets: the cost-center label and the schedule annotation.
pub fn keys_the_platform_owns() -> BTreeSet<String> {
    let all = NsMeta {
        status: Some("x".into()),
        active_until: Some("x".into()),
        active_cost_center: Some("x".into()),
        request_answered: Some("x".into()),
        request_status: Some("x".into()),
    };
    let patch = NsMeta::default().patch_to(&all);
    let mut keys: BTreeSet<String> = ["labels", "annotations"]
        .iter()
        .flat_map(|f| patch["metadata"][*f].as_object().cloned().unwrap_or_default())
        .map(|(k, _)| k)
        .collect();
    assert!(keys.len() >= 5, "NsMeta's patch names too few keys: {keys:?}");
    keys.insert(LABEL_COST_CENTER.into());
    keys.insert(SCHEDULE_ANNOTATION.into());
    keys
}

/// What a team may still set: its request.
pub fn keys_teams_set() -> [&'static str; 2] {
    [ANN_REQUEST_UNTIL, ANN_REQUESTED_BY]
}

/// The guard as written in a policy's variables: the listed keys and the guarded prefix.
pub struct Guard {
    pub keys: BTreeSet<String>,
    pub prefix: String,
}

impl Guard {
    pub fn covers(&self, key: &str) -> bool {
        self.keys.contains(key) || key.starts_with(&self.prefix)
    }
}

/// The quoted strings of a CEL expression, in order.
fn quoted(expr: &str) -> Vec<String> {
    expr.split('\'').skip(1).step_by(2).map(str::to_string).collect()
}

/// Reads `guardedKeys` and `guardedPrefix` from `(name, expression)` pairs.
pub fn guard_of(variables: &[(String, String)], origin: &str) -> Guard {
    let expr = |name: &str| {
        variables
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_str())
            .unwrap_or_else(|| panic!("{origin}: variable {name} missing"))
    };
    let prefix = quoted(expr("guardedPrefix"));
    assert_eq!(prefix.len(), 1, "{origin}: guardedPrefix is one quoted string");
    Guard {
        keys: quoted(expr("guardedKeys")).into_iter().collect(),
        prefix: prefix[0].clone(),
    }
}

pub fn policy_variables(p: &ValidatingAdmissionPolicy) -> Vec<(String, String)> {
    let vars: &[Variable] = p.spec.as_ref().and_then(|s| s.variables.as_deref()).unwrap_or_default();
    vars.iter().map(|v| (v.name.clone(), v.expression.clone())).collect()
}

pub fn kyverno_variables(rule: &Value) -> Vec<(String, String)> {
    rule["validate"]["cel"]["variables"]
        .as_array()
        .expect("validate.cel.variables")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_string(),
                v["expression"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Where the guard and the code disagree, as readable lines (empty: they agree).
pub fn guard_mismatches(guard: &Guard, origin: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let owned = keys_the_platform_owns();
    for k in &owned {
        if !guard.covers(k) {
            bad.push(format!(
                "{origin}: the scheduler writes {k} but the guard lets anyone change it"
            ));
        }
    }
    for k in guard.keys.iter().filter(|k| !owned.contains(*k)) {
        bad.push(format!(
            "{origin}: the guard lists {k}, which the scheduler neither writes nor reads"
        ));
    }
    for k in keys_teams_set() {
        if guard.covers(k) {
            bad.push(format!(
                "{origin}: the guard refuses {k}, which teams must be able to set"
            ));
        }
    }
    bad
}
