//! The guard (`manifests/components/label-guard`, and its Kyverno twin): the label guard's
//! allow-list over every `namespace-scheduler/*` Namespace key, and the verified requester of
//! ActivationRequests, read from the rendered policies and checked against the keys the code
//! reads and writes, so the two cannot drift apart.

use std::collections::BTreeSet;

use k8s_openapi::api::admissionregistration::v1::{ValidatingAdmissionPolicy, Variable};
use namespace_scheduler::scaling::{LABEL_COST_CENTER, LABEL_EXCLUDE, PREFIX};
use namespace_scheduler::schedule::SCHEDULE_ANNOTATION;
use serde_json::Value;

use super::{name_of, Rendered, NAMESPACE, SERVICE_ACCOUNT};

pub const POLICY_NAME: &str = "namespace-scheduler-label-guard";
pub const REQUESTER_POLICY_NAME: &str = "namespace-scheduler-verified-requester";
/// Variables of the label guard that decide who may change; the rest decide what changed and
/// are shared, word for word, with the Kyverno policy.
pub const IDENTITY_VARIABLES: [&str; 3] = ["platformGroups", "platformUsers", "mayChange"];

/// Every key the scheduler writes on a Namespace, plus the ones the platform sets: the cost
/// center, the schedule, exclude. The guard must refuse a team each of them.
pub fn keys_the_platform_owns() -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = super::namespace_keys_the_scheduler_writes()
        .into_iter()
        .map(|(_, key)| key)
        .collect();
    keys.extend([LABEL_COST_CENTER, SCHEDULE_ANNOTATION, LABEL_EXCLUDE].map(String::from));
    keys
}

/// The quoted strings of a CEL expression, in order.
pub fn quoted(expr: &str) -> Vec<String> {
    expr.split('\'').skip(1).step_by(2).map(str::to_string).collect()
}

pub fn variable<'a>(variables: &'a [(String, String)], name: &str, origin: &str) -> &'a str {
    variables
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, e)| e.as_str())
        .unwrap_or_else(|| panic!("{origin}: variable {name} missing"))
}

/// Where the guard and the code disagree, as readable lines (empty: they agree). The guard
/// covers the whole prefix: no key of ours is left to teams.
pub fn guard_mismatches(variables: &[(String, String)], origin: &str) -> Vec<String> {
    let prefix = quoted(variable(variables, "guardedPrefix", origin));
    if prefix != [PREFIX] {
        return vec![format!("{origin}: guardedPrefix is {prefix:?}, not [{PREFIX:?}]")];
    }
    keys_the_platform_owns()
        .into_iter()
        .filter(|k| !k.starts_with(PREFIX))
        .map(|k| format!("{origin}: {k} is outside the guarded prefix"))
        .collect()
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

pub fn policy<'a>(r: &'a Rendered, name: &str, origin: &str) -> &'a ValidatingAdmissionPolicy {
    r.admission_policies
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{origin}: ValidatingAdmissionPolicy {name} not rendered"))
}

/// The platform groups the label guard lets through, as rendered.
pub fn platform_groups(r: &Rendered, origin: &str) -> Vec<String> {
    quoted(variable(
        &policy_variables(policy(r, POLICY_NAME, origin)),
        "platformGroups",
        origin,
    ))
}

/// A policy that fails closed, has no parameter, and judges exactly CREATE and UPDATE of one
/// resource.
fn assert_fail_closed_on_create_and_update(p: &ValidatingAdmissionPolicy, group: &str, resource: &str, origin: &str) {
    let spec = p.spec.as_ref().expect("policy spec");
    assert_eq!(spec.failure_policy.as_deref(), Some("Fail"), "{origin}: fail closed");
    assert!(spec.param_kind.is_none(), "{origin}: no paramKind");
    let rules = spec
        .match_constraints
        .as_ref()
        .and_then(|m| m.resource_rules.as_ref())
        .expect("matchConstraints.resourceRules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&[resource.to_string()][..]),
        "{origin}"
    );
    assert_eq!(
        rules[0].api_groups.as_deref(),
        Some(&[group.to_string()][..]),
        "{origin}"
    );
    let mut ops = rules[0].operations.clone().unwrap_or_default();
    ops.sort();
    assert_eq!(ops, ["CREATE", "UPDATE"], "{origin}: CREATE counts as setting a value");
}

/// The guard as shipped: two v1 ValidatingAdmissionPolicies, each bound to everything with
/// `Deny` and no parameter; the label guard judges only Namespace writes that touch our keys
/// (its matchCondition), covers the whole `namespace-scheduler/` prefix and lets the
/// scheduler's ServiceAccount and the inline platform through; the requester policy judges
/// ActivationRequest CREATE and UPDATE (not their status).
pub fn assert_label_guard(r: &Rendered, origin: &str) {
    assert_eq!(
        r.admission_policies.len(),
        2,
        "{origin}: two ValidatingAdmissionPolicies"
    );
    assert_eq!(r.admission_policy_bindings.len(), 2, "{origin}: two bindings");
    assert!(
        r.config_maps
            .iter()
            .all(|c| c.metadata.name.as_deref() != Some(POLICY_NAME)),
        "{origin}: no parameter"
    );
    for b in &r.admission_policy_bindings {
        let spec = b.spec.as_ref().expect("binding spec");
        assert_eq!(spec.validation_actions.as_deref(), Some(&["Deny".to_string()][..]));
        assert!(spec.param_ref.is_none(), "{origin}: a binding without a parameter");
        assert!(spec.match_resources.is_none(), "{origin}: the guard covers everything");
        assert_eq!(
            spec.policy_name, b.metadata.name,
            "{origin}: each binding binds its namesake"
        );
    }

    let p = policy(r, POLICY_NAME, origin);
    let spec = p.spec.as_ref().expect("policy spec");
    assert_fail_closed_on_create_and_update(p, "", "namespaces", origin);
    let conditions = spec.match_conditions.as_deref().unwrap_or_default();
    assert_eq!(conditions.len(), 1, "{origin}: one matchCondition");
    assert!(
        quoted(&conditions[0].expression).iter().all(|q| q == PREFIX),
        "{origin}: the matchCondition selects on the prefix alone"
    );
    let vars = policy_variables(p);
    assert_eq!(
        vars.iter().take(2).map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["platformGroups", "platformUsers"],
        "{origin}: the overlay replaces the platform by position"
    );
    let bad = guard_mismatches(&vars, origin);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(
        platform_groups(r, origin).contains(&"system:masters".to_string()),
        "{origin}: cluster admins are the platform"
    );
    let may_change = variable(&vars, "mayChange", origin);
    assert!(
        may_change.contains(&format!("'system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}'")),
        "{origin}: the scheduler's ServiceAccount may change: {may_change}"
    );
    let validations = spec.validations.as_deref().unwrap_or_default();
    assert_eq!(validations.len(), 1);
    assert_eq!(validations[0].expression, "variables.mayChange");
    assert!(validations[0]
        .message_expression
        .as_deref()
        .is_some_and(|m| m.contains("ActivationRequest")));

    let p = policy(r, REQUESTER_POLICY_NAME, origin);
    let spec = p.spec.as_ref().expect("policy spec");
    // the requests, not their status
    assert_fail_closed_on_create_and_update(p, "namespace-scheduler.io", "activationrequests", origin);
    let validations = spec.validations.as_deref().unwrap_or_default();
    assert!(validations
        .iter()
        .any(|v| v.expression.contains("request.userInfo.username")));
}

/// The Kyverno component's two guard rules are the admission policies' rules: what changed is
/// decided by the same CEL (so the rule tested on a real apiserver is this one), who may is the
/// exclude block; the verified requester is the same variables and validations, word for word.
pub fn assert_kyverno_twin(kyverno: &Rendered, vap: &Rendered) {
    let kyverno_policy = |name: &str| {
        kyverno
            .custom
            .iter()
            .find(|p| name_of(p) == name)
            .unwrap_or_else(|| panic!("the ClusterPolicy {name}"))
    };

    // The label guard: what changed is decided by the same CEL, so the rule tested on a real
    // apiserver is this one; who may is the exclude block.
    let p = kyverno_policy("namespace-scheduler-guard-money-labels");
    assert_eq!(p["spec"]["background"], false, "userInfo exists only at admission");
    let rule = &p["spec"]["rules"][0];
    let m = &rule["match"]["any"][0]["resources"];
    assert_eq!(m["kinds"], serde_json::json!(["Namespace"]));
    assert_eq!(m["operations"], serde_json::json!(["CREATE", "UPDATE"]));
    let subjects = rule["exclude"]["any"][0]["subjects"]
        .as_array()
        .expect("exclude subjects");
    assert!(
        subjects
            .iter()
            .any(|s| s["kind"] == "ServiceAccount" && s["name"] == SERVICE_ACCOUNT && s["namespace"] == NAMESPACE),
        "the scheduler's ServiceAccount may change: {subjects:?}"
    );
    let groups: Vec<&str> = subjects
        .iter()
        .filter(|s| s["kind"] == "Group")
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        groups,
        ["system:masters", "platform-admins"],
        "the platform, as in the production overlay"
    );
    assert_eq!(rule["validate"]["failureAction"], "Enforce");
    let kyverno = kyverno_variables(rule);
    let bad = guard_mismatches(&kyverno, "kyverno");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let shared: Vec<(String, String)> = policy_variables(policy(vap, POLICY_NAME, "label-guard"))
        .into_iter()
        .filter(|(n, _)| !IDENTITY_VARIABLES.contains(&n.as_str()))
        .collect();
    assert_eq!(
        kyverno, shared,
        "Kyverno's CEL variables differ from the admission policy's"
    );
    let exprs = rule["validate"]["cel"]["expressions"]
        .as_array()
        .expect("cel.expressions");
    let vap_validation = &policy(vap, POLICY_NAME, "label-guard")
        .spec
        .as_ref()
        .unwrap()
        .validations
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        exprs[0]["messageExpression"].as_str(),
        vap_validation.message_expression.as_deref()
    );

    // The verified requester: the same variables and validations, word for word.
    let p = kyverno_policy("namespace-scheduler-verified-requester");
    assert_eq!(p["spec"]["background"], false);
    let rule = &p["spec"]["rules"][0];
    assert_eq!(
        rule["match"]["any"][0]["resources"]["kinds"],
        serde_json::json!(["namespace-scheduler.io/*/ActivationRequest"])
    );
    let requester = policy(vap, REQUESTER_POLICY_NAME, "label-guard").spec.as_ref().unwrap();
    assert_eq!(
        kyverno_variables(rule),
        policy_variables(policy(vap, REQUESTER_POLICY_NAME, "label-guard"))
    );
    let vap_rules: Vec<(String, Option<String>, Option<String>)> = requester
        .validations
        .iter()
        .flatten()
        .map(|v| (v.expression.clone(), v.message.clone(), v.message_expression.clone()))
        .collect();
    let kyverno_rules: Vec<(String, Option<String>, Option<String>)> = rule["validate"]["cel"]["expressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().map(str::to_string);
            (
                s("expression").unwrap_or_default(),
                s("message"),
                s("messageExpression"),
            )
        })
        .collect();
    assert_eq!(kyverno_rules, vap_rules);
}
