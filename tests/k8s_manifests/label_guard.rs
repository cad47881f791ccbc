//! The label guard (`manifests/components/label-guard`, and its Kyverno twin): which Namespace
//! keys it guards, read from the rendered policy, and which keys the scheduler itself writes,
//! read from the code, so the two cannot drift apart.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, Variable};
use namespace_scheduler::scaling::{ANN_REQUESTED_BY, ANN_REQUEST_UNTIL, LABEL_COST_CENTER};
use namespace_scheduler::schedule::SCHEDULE_ANNOTATION;
use serde_json::Value;

use super::{Rendered, NAMESPACE, SERVICE_ACCOUNT};

pub const POLICY_NAME: &str = "namespace-scheduler-label-guard";
/// Variables of the policy that decide who may change; the rest decide what changed and are
/// shared, word for word, with the Kyverno policy.
pub const IDENTITY_VARIABLES: [&str; 3] = ["platformGroups", "platformUsers", "mayChange"];

/// Every key the scheduler writes on a Namespace (`NsMeta`'s patch from nothing to all keys
/// set), plus the two the platform sets: the cost-center label and the schedule annotation.
pub fn keys_the_platform_owns() -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = super::namespace_keys_the_scheduler_writes()
        .into_iter()
        .map(|(_, key)| key)
        .collect();
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

/// The label guard as shipped: a v1 ValidatingAdmissionPolicy on Namespace CREATE and UPDATE,
/// bound to every namespace with its parameter ConfigMap, guarding exactly the keys the
/// scheduler writes plus the cost center and the schedule, letting the scheduler's
/// ServiceAccount and the parameter's platform group through.
pub fn assert_label_guard(r: &Rendered, origin: &str) {
    assert_eq!(r.admission_policies.len(), 1, "{origin}: one ValidatingAdmissionPolicy");
    let p = &r.admission_policies[0];
    assert_eq!(p.metadata.name.as_deref(), Some(POLICY_NAME));
    let spec = p.spec.as_ref().expect("policy spec");
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"), "{origin}: fail closed");
    let param = spec.param_kind.as_ref().expect("paramKind");
    assert_eq!(
        (param.api_version.as_deref(), param.kind.as_deref()),
        (Some("v1"), Some("ConfigMap"))
    );
    let rules = spec
        .match_constraints
        .as_ref()
        .and_then(|m| m.resource_rules.as_ref())
        .expect("matchConstraints.resourceRules");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].resources.as_deref(), Some(&["namespaces".to_string()][..]));
    assert_eq!(rules[0].api_groups.as_deref(), Some(&[String::new()][..]));
    let mut ops = rules[0].operations.clone().unwrap_or_default();
    ops.sort();
    assert_eq!(ops, ["CREATE", "UPDATE"], "{origin}: CREATE counts as setting a key");

    let vars = policy_variables(p);
    let guard = guard_of(&vars, origin);
    let bad = guard_mismatches(&guard, origin);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let may_change = &vars.iter().find(|(n, _)| n == "mayChange").expect("mayChange").1;
    assert!(
        may_change.contains(&format!("'system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}'")),
        "{origin}: the scheduler's ServiceAccount may change: {may_change}"
    );
    let validations = spec.validations.as_deref().unwrap_or_default();
    assert_eq!(validations.len(), 1);
    assert!(validations[0].expression.contains("variables.mayChange"));
    assert!(validations[0]
        .message_expression
        .as_deref()
        .is_some_and(|m| m.contains("request-until")));

    assert_eq!(r.admission_policy_bindings.len(), 1, "{origin}: one binding");
    let b = r.admission_policy_bindings[0].spec.as_ref().expect("binding spec");
    assert_eq!(b.policy_name.as_deref(), Some(POLICY_NAME));
    assert_eq!(b.validation_actions.as_deref(), Some(&["Deny".to_string()][..]));
    assert!(
        b.match_resources.is_none(),
        "{origin}: the guard covers every namespace"
    );
    let param_ref = b.param_ref.as_ref().expect("paramRef");
    assert_eq!(param_ref.parameter_not_found_action.as_deref(), Some("Deny"));
    let cm = r
        .config_maps
        .iter()
        .find(|c| c.metadata.name == param_ref.name && c.metadata.namespace == param_ref.namespace)
        .unwrap_or_else(|| panic!("{origin}: the parameter ConfigMap {param_ref:?} is not rendered"));
    let groups = cm.data.as_ref().and_then(|d| d.get("platform-groups"));
    assert!(
        groups.is_some_and(|g| !g.trim().is_empty()),
        "{origin}: platform-groups names the platform group"
    );
}
