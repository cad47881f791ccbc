//! The kinds beyond the first four, planned from objects as the apiserver lists them
//! (docs/reference.md §4): Argo Rollouts go down and up like Deployments, and an HPA with
//! `minReplicas: 0` has its scale-up disabled while its target is down and its exact behaviour
//! back on the way up. No cluster: the plan is plain data.

use std::collections::BTreeMap;

use namespace_scheduler::audit::{OperationType, ResourceChange};
use namespace_scheduler::scaling::inventory::{ManagedNamespace, Workload};
use namespace_scheduler::scaling::kinds::Kind;
use namespace_scheduler::scaling::plan::{plan_namespace, Intent, NamespacePlan, SkipReason, Target, Until};
use serde_json::{json, Value};

const BEHAVIOR: &str = "namespace-scheduler/original-behavior";

fn kind(name: &str) -> Kind {
    Kind::named(name).unwrap_or_else(|| panic!("{name} is in the table of kinds"))
}

fn namespace() -> ManagedNamespace {
    ManagedNamespace {
        name: "dev-a".into(),
        resource_version: Some("7".into()),
        cost_center: "IT".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    }
}

fn plan(workloads: &[Workload], target: Target) -> NamespacePlan {
    let intent = Intent {
        target,
        until: Until::Keep,
        operation: OperationType::Deactivate,
        requested_by: "cli".into(),
        granted_by: None,
    };
    plan_namespace(&namespace(), workloads, &intent)
}

/// `object` decoded by the engine's slim types, as discovery decodes a listed item.
fn listed(kind_name: &str, object: Value) -> Workload {
    Workload::from_slim(kind(kind_name), serde_json::from_value(object).unwrap())
}

fn deployment(name: &str, replicas: i32, annotations: Value) -> Workload {
    listed(
        "Deployment",
        json!({"metadata": {"name": name, "namespace": "dev-a", "resourceVersion": "1", "annotations": annotations},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c"}]}}}}),
    )
}

fn hpa(min: i32, target: &str, behavior: Option<Value>, annotations: Value) -> Workload {
    let mut spec = json!({"minReplicas": min, "maxReplicas": 5,
                          "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}});
    if let Some(b) = behavior {
        spec["behavior"] = b;
    }
    listed(
        "HorizontalPodAutoscaler",
        json!({"metadata": {"name": format!("{target}-hpa"), "namespace": "dev-a", "resourceVersion": "5",
                            "annotations": annotations},
               "spec": spec}),
    )
}

/// RFC 7386, as the apiserver applies a merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn change_of<'a>(p: &'a NamespacePlan, kind_name: &str) -> &'a namespace_scheduler::scaling::plan::Change {
    p.changes
        .iter()
        .find(|c| c.kind.as_str() == kind_name)
        .unwrap_or_else(|| panic!("a {kind_name} change in {p:?}"))
}

#[test]
fn a_rollout_goes_down_and_back_to_its_exact_count_with_its_requests_counted() {
    let rollout = |replicas: i32, annotations: Value| {
        listed(
            "Rollout",
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                   "metadata": {"name": "canary", "namespace": "dev-a", "resourceVersion": "3", "annotations": annotations},
                   "spec": {"replicas": replicas, "strategy": {"canary": {"steps": [{"setWeight": 20}]}},
                            "template": {"spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}}}}),
        )
    };
    let down = plan(&[rollout(4, json!({}))], Target::Down);
    let c = change_of(&down, "Rollout");
    assert_eq!(
        c.patch(),
        json!({"spec": {"replicas": 0}, "metadata": {"annotations": {"namespace-scheduler/original-replicas": "4"}}})
    );
    let totals = down.resource_totals();
    assert_eq!(
        (totals.frees.cpu_millicores, totals.frees.memory_bytes),
        (2000, 4 << 30)
    );
    // The audit entry counts as replicas with requests, as a Deployment's does.
    let entry = c.resource();
    assert_eq!(
        (entry.kind.as_str(), entry.from.as_str(), entry.to.as_str()),
        ("Rollout", "4", "0")
    );
    assert_eq!(entry.requested().map(|r| r.cpu_millicores), Some(2000));

    let up = plan(
        &[rollout(0, json!({"namespace-scheduler/original-replicas": "4"}))],
        Target::Up,
    );
    assert_eq!(
        change_of(&up, "Rollout").patch(),
        json!({"spec": {"replicas": 4}, "metadata": {"annotations": {"namespace-scheduler/original-replicas": null}}})
    );
    assert_eq!(up.resource_totals().restores.cpu_millicores, 2000);
}

/// Down, then up, each applied as the apiserver applies a merge patch, gives back exactly the
/// behaviour the HPA had: none, or one with or without a scale-up rule of its own.
#[test]
fn an_hpa_with_min_replicas_0_is_disabled_while_its_target_is_down_and_gets_its_exact_behaviour_back() {
    let behaviours = [
        None,
        Some(
            json!({"scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Min",
                                  "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}),
        ),
        Some(
            json!({"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
                    "scaleDown": {"stabilizationWindowSeconds": 300}}),
        ),
        Some(json!({"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}})),
    ];
    for original in behaviours {
        let what = format!("behavior {original:?}");
        let mut object = json!({"metadata": {"annotations": {}}, "spec": {"minReplicas": 0}});
        if let Some(b) = &original {
            object["spec"]["behavior"] = b.clone();
        }
        let before = object.clone();

        let down = plan(
            &[
                deployment("api", 3, json!({})),
                hpa(0, "api", original.clone(), json!({})),
            ],
            Target::Down,
        );
        let c = change_of(&down, "HorizontalPodAutoscaler");
        assert_eq!(
            (c.from.as_str(), c.to.as_str()),
            ("scale-up=enabled", "scale-up=disabled"),
            "{what}"
        );
        assert_eq!(
            c.resource().requested().map(|r| r.cpu_millicores),
            Some(0),
            "{what}: frees nothing"
        );
        merge(&mut object, &c.patch());
        assert_eq!(
            object["spec"]["behavior"]["scaleUp"]["selectPolicy"], "Disabled",
            "{what}"
        );
        let kept = object["metadata"]["annotations"][BEHAVIOR]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            serde_json::from_str::<Value>(&kept).unwrap(),
            original.clone().unwrap_or(Value::Null),
            "{what}: the marker keeps the original"
        );

        let after_down = hpa(
            0,
            "api",
            object["spec"].get("behavior").cloned(),
            object["metadata"]["annotations"].clone(),
        );
        let up = plan(
            &[
                deployment("api", 0, json!({"namespace-scheduler/original-replicas": "3"})),
                after_down,
            ],
            Target::Up,
        );
        merge(&mut object, &change_of(&up, "HorizontalPodAutoscaler").patch());
        assert_eq!(object, before, "{what}: exactly as before the down");
    }
}

#[test]
fn an_hpa_is_left_alone_when_it_cannot_scale_from_0_or_its_target_stays_up() {
    // minReplicas ≥ 1: idle while its target is at 0; not even kept by discovery.
    let two = hpa(2, "api", None, json!({}));
    assert!(!two.concerns_us());
    assert!(hpa(0, "api", None, json!({})).concerns_us());
    assert!(
        hpa(2, "api", None, json!({BEHAVIOR: "null"})).concerns_us(),
        "ours to restore"
    );
    let p = plan(&[deployment("api", 3, json!({})), two], Target::Down);
    assert_eq!(p.changes.len(), 1, "only the Deployment: {p:?}");

    // Its target excluded (so never scaled down): the autoscaler keeps scaling it.
    let excluded = deployment("api", 3, json!({"namespace-scheduler/exclude": "true"}));
    let p = plan(&[excluded, hpa(0, "api", None, json!({}))], Target::Down);
    assert!(p.changes.is_empty(), "{p:?}");
    let skip = p
        .skipped
        .iter()
        .find(|s| s.kind.as_str() == "HorizontalPodAutoscaler")
        .unwrap();
    assert_eq!(
        skip.reason,
        SkipReason::Rule("its target Deployment/api is not switched off".into())
    );

    // Its target already down by us: still disabled (a run that stopped between the two).
    let p = plan(
        &[
            deployment("api", 0, json!({"namespace-scheduler/original-replicas": "3"})),
            hpa(0, "api", None, json!({})),
        ],
        Target::Down,
    );
    assert_eq!(change_of(&p, "HorizontalPodAutoscaler").to, "scale-up=disabled");
}

#[test]
fn an_hpa_whose_kept_behaviour_does_not_read_is_left_disabled_and_named() {
    let disabled = Some(json!({"scaleUp": {"selectPolicy": "Disabled"}}));
    let p = plan(&[hpa(0, "api", disabled, json!({BEHAVIOR: "{not json"}))], Target::Up);
    assert!(p.changes.is_empty());
    assert!(p.skipped[0].reason.is_unreadable(), "{p:?}");
    assert!(!p.is_noop(), "named at every run");
}

#[test]
fn the_audit_counts_replicas_for_exactly_the_kinds_that_switch_replicas() {
    for (name, replicas) in [
        ("Deployment", true),
        ("StatefulSet", true),
        ("Rollout", true),
        ("CronJob", false),
        ("ScaledObject", false),
        ("HorizontalPodAutoscaler", false),
        ("Namespace", false),
    ] {
        let entry = ResourceChange::changed(name, "x", "3", "0", Some((100, 1)));
        assert_eq!(entry.has_replicas(), replicas, "{name}");
    }
}
