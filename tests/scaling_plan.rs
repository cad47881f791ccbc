//! The plan is a pure function: these check docs/reference.md §4's rules without a cluster.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use namespace_scheduler::audit::OperationType;
use namespace_scheduler::scaling::inventory::{ManagedNamespace, Setting, Workload};
use namespace_scheduler::scaling::kinds::Kind;
use namespace_scheduler::scaling::plan::{
    decide, plan_namespace, Decision, FieldState, Intent, SkipReason, Target, Until,
};
use serde_json::json;

fn w(kind: Kind, name: &str, setting: Setting, marker: Option<&str>) -> Workload {
    Workload {
        kind,
        namespace: "dev-a".into(),
        name: name.into(),
        resource_version: Some("42".into()),
        setting,
        marker: marker.map(str::to_string),
        excluded: false,
        controller: None,
        per_replica: None,
        autoscaler: None,
    }
}

fn after(d: Decision) -> FieldState {
    match d {
        Decision::Change(c) => c.after,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn down_records_the_original_in_the_same_write() {
    let d = decide(&w(Kind::DEPLOYMENT, "api", Setting::Replicas(7), None), Target::Down);
    let Decision::Change(c) = d else { panic!() };
    assert_eq!(
        c.patch(),
        json!({"spec": {"replicas": 0}, "metadata": {"annotations": {"namespace-scheduler/original-replicas": "7"}}})
    );
    assert_eq!((c.from.as_str(), c.to.as_str()), ("7", "0"));
    let cj = after(decide(
        &w(Kind::CRON_JOB, "job", Setting::Suspend(false), None),
        Target::Down,
    ));
    assert_eq!(
        cj,
        FieldState {
            setting: Setting::Suspend(true),
            marker: Some("false".into())
        }
    );
    let so = after(decide(
        &w(Kind::SCALED_OBJECT, "so", Setting::Paused(None), None),
        Target::Down,
    ));
    assert_eq!(
        so,
        FieldState {
            setting: Setting::Paused(Some("0".into())),
            marker: Some("true".into())
        }
    );
}

#[test]
fn off_on_purpose_and_already_down_are_left_alone() {
    for target in [Target::Down, Target::Up] {
        assert!(matches!(
            decide(&w(Kind::DEPLOYMENT, "idle", Setting::Replicas(0), None), target),
            Decision::Skip(SkipReason::Rule(r)) if r == "at 0 without our annotation: off on purpose"
        ));
        assert!(matches!(
            decide(&w(Kind::CRON_JOB, "j", Setting::Suspend(true), None), target),
            Decision::Skip(_)
        ));
    }
    assert_eq!(
        decide(
            &w(Kind::DEPLOYMENT, "api", Setting::Replicas(0), Some("3")),
            Target::Down
        ),
        Decision::AtTarget
    );
    assert_eq!(
        decide(&w(Kind::DEPLOYMENT, "api", Setting::Replicas(3), None), Target::Up),
        Decision::AtTarget
    );
}

#[test]
fn up_restores_the_exact_value_or_keeps_a_value_changed_while_down() {
    let restored = after(decide(
        &w(Kind::STATEFUL_SET, "db", Setting::Replicas(0), Some("3")),
        Target::Up,
    ));
    assert_eq!(
        restored,
        FieldState {
            setting: Setting::Replicas(3),
            marker: None
        }
    );
    let theirs = after(decide(
        &w(Kind::DEPLOYMENT, "api", Setting::Replicas(5), Some("3")),
        Target::Up,
    ));
    assert_eq!(
        theirs,
        FieldState {
            setting: Setting::Replicas(5),
            marker: None
        }
    );
    let cj = after(decide(
        &w(Kind::CRON_JOB, "j", Setting::Suspend(true), Some("false")),
        Target::Up,
    ));
    assert_eq!(
        cj,
        FieldState {
            setting: Setting::Suspend(false),
            marker: None
        }
    );
    // Never invent a count: an unreadable annotation is reported, not guessed.
    assert!(matches!(
        decide(
            &w(Kind::DEPLOYMENT, "api", Setting::Replicas(0), Some("many")),
            Target::Up
        ),
        Decision::Skip(_)
    ));
    let Decision::Change(c) = decide(&w(Kind::DEPLOYMENT, "api", Setting::Replicas(0), Some("3")), Target::Up) else {
        panic!()
    };
    assert_eq!(
        c.patch()["metadata"]["annotations"]["namespace-scheduler/original-replicas"],
        json!(null)
    );
}

#[test]
fn excluded_and_operator_controlled_workloads_are_skipped_with_the_reason() {
    let mut a = w(Kind::DEPLOYMENT, "a", Setting::Replicas(2), None);
    a.excluded = true;
    assert_eq!(
        decide(&a, Target::Down),
        Decision::Skip(SkipReason::Rule("annotated namespace-scheduler/exclude".into()))
    );
    let mut b = w(Kind::STATEFUL_SET, "b", Setting::Replicas(0), Some("2"));
    b.controller = Some("Postgres/main".into());
    assert_eq!(
        decide(&b, Target::Up),
        Decision::Skip(SkipReason::Rule("controlled by Postgres/main".into()))
    );
}

fn namespace(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ManagedNamespace {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    ManagedNamespace {
        name: "dev-a".into(),
        resource_version: Some("7".into()),
        cost_center: "IT".into(),
        labels: map(labels),
        annotations: map(annotations),
    }
}

/// The Namespace's own keys are one planned write, separate from the workloads' (when it is sent,
/// before or after them, is the applier's business and is checked by the e2e test
/// `the_status_label_leads_on_the_way_up_and_trails_on_the_way_down`).
#[test]
fn namespace_status_and_window_are_one_write_of_our_keys() {
    let until = Utc.with_ymd_and_hms(2026, 11, 26, 5, 0, 0).unwrap();
    let intent = Intent {
        target: Target::Up,
        until: Until::Set(until, "QA-TESTING".into()),
        operation: OperationType::Activate,
        requested_by: "ana".into(),
        granted_by: None,
    };
    let ws = [w(Kind::DEPLOYMENT, "api", Setting::Replicas(0), Some("3"))];
    let p = plan_namespace(
        &namespace(&[("namespace-scheduler/status", "inactive")], &[]),
        &ws,
        &intent,
    );
    assert_eq!(p.writes(), 2);
    let nc = p.namespace_change.unwrap();
    assert_eq!(
        nc.patch(),
        json!({"metadata": {
            "labels": {"namespace-scheduler/status": "active"},
            "annotations": {
                "namespace-scheduler/active-until": "2026-11-26T05:00:00Z",
                "namespace-scheduler/active-cost-center": "QA-TESTING"
            }
        }})
    );
    // Down removes the window; a namespace already at target plans nothing at all.
    let down = Intent {
        target: Target::Down,
        until: Until::Remove,
        ..intent
    };
    let ns = namespace(&[("namespace-scheduler/status", "inactive")], &[]);
    let p = plan_namespace(
        &ns,
        &[w(Kind::DEPLOYMENT, "api", Setting::Replicas(0), Some("3"))],
        &down,
    );
    assert!(p.is_noop(), "{p:?}");
}

/// A window granted to an ActivationRequest names it on the Namespace; any other window (an
/// `up`), and its end, remove the name. The answers of the old Namespace-annotation requests are
/// the scheduler's own keys: removed by the next write the Namespace gets anyway, never alone.
#[test]
fn a_window_names_the_request_that_opened_it_and_old_answer_keys_go_with_the_next_write() {
    let until = Utc.with_ymd_and_hms(2026, 11, 26, 5, 0, 0).unwrap();
    let granted = Intent {
        target: Target::Up,
        until: Until::Set(until, "QA-TESTING".into()),
        operation: OperationType::Activate,
        requested_by: "ana".into(),
        granted_by: Some("night-tests".into()),
    };
    let old = [
        ("namespace-scheduler/request-status", "accepted"),
        ("namespace-scheduler/request-answered", "2026-11-25T23:00:00-05:00"),
        ("namespace-scheduler/request-until", "2026-11-25T23:00:00-05:00"),
    ];
    let p = plan_namespace(
        &namespace(&[("namespace-scheduler/status", "active")], &old),
        &[],
        &granted,
    );
    assert_eq!(
        p.namespace_change.unwrap().patch(),
        json!({"metadata": {"annotations": {
            "namespace-scheduler/active-until": "2026-11-26T05:00:00Z",
            "namespace-scheduler/active-cost-center": "QA-TESTING",
            "namespace-scheduler/active-request": "night-tests",
            "namespace-scheduler/request-status": null,
            "namespace-scheduler/request-answered": null
        }}}),
        "the team's own request-until is not the scheduler's to remove"
    );
    let holding = [
        ("namespace-scheduler/active-until", "2026-11-26T05:00:00Z"),
        ("namespace-scheduler/active-cost-center", "QA-TESTING"),
        ("namespace-scheduler/active-request", "night-tests"),
    ];
    let ended = Intent {
        until: Until::Remove,
        granted_by: None,
        ..granted.clone()
    };
    let p = plan_namespace(
        &namespace(&[("namespace-scheduler/status", "active")], &holding),
        &[],
        &ended,
    );
    assert_eq!(
        p.namespace_change.unwrap().patch()["metadata"]["annotations"]["namespace-scheduler/active-request"],
        json!(null)
    );
    let admin_up = Intent {
        granted_by: None,
        ..granted.clone()
    };
    let p = plan_namespace(
        &namespace(&[("namespace-scheduler/status", "active")], &holding),
        &[],
        &admin_up,
    );
    assert_eq!(
        p.namespace_change.unwrap().patch(),
        json!({"metadata": {"annotations": {"namespace-scheduler/active-request": null}}}),
        "an admin's up takes the window over"
    );
    // Nothing else to write: the old keys stay until then.
    let keep = Intent {
        until: Until::Keep,
        ..granted
    };
    let mut at_target = holding.to_vec();
    at_target.extend(old);
    let p = plan_namespace(
        &namespace(&[("namespace-scheduler/status", "active")], &at_target),
        &[],
        &keep,
    );
    assert!(p.is_noop(), "{p:?}");
}

/// A workload as the apiserver lists it, decoded by the engine's slim types.
fn listed(kind: Kind, name: &str, replicas: i32, pod_spec: serde_json::Value) -> Workload {
    let object = json!({
        "metadata": {"name": name, "namespace": "dev-a", "resourceVersion": "1", "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}},
    });
    Workload::from_slim(kind, serde_json::from_value(object).unwrap())
}

fn requests(cpu: &str, memory: &str) -> serde_json::Value {
    json!({"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": memory}}})
}

fn intent_to(target: Target) -> Intent {
    Intent {
        target,
        until: Until::Keep,
        operation: OperationType::Deactivate,
        requested_by: "cli".into(),
        granted_by: None,
    }
}

fn plan_for(workloads: &[Workload], target: Target) -> namespace_scheduler::scaling::plan::NamespacePlan {
    plan_namespace(&namespace(&[], &[]), workloads, &intent_to(target))
}

#[test]
fn a_down_frees_replicas_times_the_effective_pod_request() {
    let workloads = [
        // Per replica max(250m + 250m, 800m) = 800m and 0.5Gi: × 3 = 2.4 vCPU, 1.5 GiB.
        listed(
            Kind::DEPLOYMENT,
            "api",
            3,
            json!({"containers": [requests("250m", "256Mi"), requests("250m", "256Mi")],
                   "initContainers": [{"name": "migrate", "resources": {"requests": {"cpu": "800m"}}}]}),
        ),
        // 2 × (1 vCPU, 2Gi) = 2 vCPU, 4 GiB.
        listed(
            Kind::STATEFUL_SET,
            "db",
            2,
            json!({"containers": [requests("1", "2Gi")]}),
        ),
        // No requests at all: frees 0 and is listed.
        listed(
            Kind::DEPLOYMENT,
            "bare",
            4,
            json!({"containers": [{"name": "c", "image": "x"}]}),
        ),
        w(Kind::CRON_JOB, "nightly", Setting::Suspend(false), None),
    ];
    let plan = plan_for(&workloads, Target::Down);
    assert_eq!(plan.changes.len(), 4);
    let totals = plan.resource_totals();
    assert_eq!(totals.frees.cpu_millicores, 4400);
    assert_eq!(totals.frees.memory_bytes, 5632 << 20);
    assert_eq!((totals.frees.vcpu(), totals.frees.gib()), (4.4, 5.5));
    assert!(totals.restores.is_zero());
    let gaps: Vec<(Kind, &str, &str)> = totals
        .without_requests
        .iter()
        .map(|g| (g.kind, g.name.as_str(), g.reason.as_str()))
        .collect();
    assert_eq!(gaps, [(Kind::DEPLOYMENT, "bare", "no requests")]);
    let bare = plan.changes.iter().find(|c| c.name == "bare").unwrap();
    assert!(bare.frees().is_zero());
    assert_eq!(bare.replicas_removed(), 4);

    // The audit entries carry the per-replica figures; the record's totals are the plan's.
    let api = plan.changes.iter().find(|c| c.name == "api").unwrap().resource();
    assert_eq!((api.cpu_millicores, api.memory_bytes), (Some(800), Some(512 << 20)));
    let cron = plan
        .changes
        .iter()
        .find(|c| c.kind == Kind::CRON_JOB)
        .unwrap()
        .resource();
    assert_eq!((cron.cpu_millicores, cron.memory_bytes), (None, None));
    let json = serde_json::to_value(&totals).unwrap();
    assert_eq!(json["frees"]["vcpu"], 4.4);
    assert_eq!(json["frees"]["gib"], 5.5);
}

#[test]
fn an_up_restores_what_it_brings_back_and_a_kept_count_restores_nothing() {
    let mut api = listed(
        Kind::DEPLOYMENT,
        "api",
        0,
        json!({"containers": [requests("500m", "1Gi")]}),
    );
    api.marker = Some("3".into());
    // Scaled to 2 by someone while down: the up keeps 2, those pods already run.
    let mut worker = listed(
        Kind::DEPLOYMENT,
        "worker",
        2,
        json!({"containers": [requests("1", "1Gi")]}),
    );
    worker.marker = Some("5".into());
    let plan = plan_for(&[api, worker], Target::Up);
    let totals = plan.resource_totals();
    assert_eq!(
        (totals.restores.cpu_millicores, totals.restores.memory_bytes),
        (1500, 3 << 30)
    );
    assert!(totals.frees.is_zero());
    // Summing namespaces.
    let both: namespace_scheduler::scaling::plan::ResourceTotals =
        [plan.resource_totals(), plan.resource_totals()].into_iter().sum();
    assert_eq!(both.restores.cpu_millicores, 3000);
}

/// What `decide` makes of a workload whose own annotation is or is not readable: quiet skips by
/// rule, loud skips of an unreadable annotation (docs/reference.md §4), and the cases that read.
#[test]
fn an_unreadable_annotation_is_a_loud_skip_and_a_rule_a_quiet_one() {
    #[derive(Debug, PartialEq)]
    enum Want {
        Loud(&'static str),
        Quiet,
        Change,
        AtTarget,
    }
    let (orig, suspend) = (
        "namespace-scheduler/original-replicas",
        "namespace-scheduler/original-suspend",
    );
    let cases = [
        (
            Kind::DEPLOYMENT,
            Setting::Replicas(0),
            Some("abc"),
            Target::Up,
            Want::Loud(orig),
        ),
        (
            Kind::DEPLOYMENT,
            Setting::Replicas(0),
            Some("-3"),
            Target::Up,
            Want::Loud(orig),
        ),
        (
            Kind::STATEFUL_SET,
            Setting::Replicas(0),
            Some(""),
            Target::Up,
            Want::Loud(orig),
        ),
        (
            Kind::CRON_JOB,
            Setting::Suspend(true),
            Some("maybe"),
            Target::Up,
            Want::Loud(suspend),
        ),
        (
            Kind::DEPLOYMENT,
            Setting::Replicas(0),
            Some(" 4 "),
            Target::Up,
            Want::Change,
        ),
        (
            Kind::CRON_JOB,
            Setting::Suspend(true),
            Some("false"),
            Target::Up,
            Want::Change,
        ),
        // Someone scaled it while down: their value stays, the garbled marker goes.
        (
            Kind::DEPLOYMENT,
            Setting::Replicas(2),
            Some("abc"),
            Target::Up,
            Want::Change,
        ),
        // At 0 with a marker that does not read: at target for a down, nothing to restore yet.
        (
            Kind::DEPLOYMENT,
            Setting::Replicas(0),
            Some("abc"),
            Target::Down,
            Want::AtTarget,
        ),
        (Kind::DEPLOYMENT, Setting::Replicas(0), None, Target::Up, Want::Quiet),
        (Kind::CRON_JOB, Setting::Suspend(true), None, Target::Down, Want::Quiet),
        (
            Kind::SCALED_OBJECT,
            Setting::Paused(Some("2".into())),
            None,
            Target::Up,
            Want::Quiet,
        ),
    ];
    for (kind, setting, marker, target, want) in cases {
        let workload = w(kind, "x", setting.clone(), marker);
        let got = match decide(&workload, target) {
            Decision::Skip(SkipReason::Unreadable { annotation, value }) => {
                assert_eq!(Some(value.as_str()), marker, "{kind:?} {setting:?}");
                Want::Loud(annotation)
            }
            Decision::Skip(SkipReason::Rule(_)) => Want::Quiet,
            Decision::Change(_) => Want::Change,
            Decision::AtTarget => Want::AtTarget,
        };
        assert_eq!(got, want, "{kind:?} {setting:?} {marker:?} {target:?}");
    }
}

/// A namespace whose only news is an unreadable annotation is never "unchanged", writes nothing,
/// and names the workload (and the value it keeps) in its plan.
#[test]
fn a_namespace_with_an_unreadable_annotation_is_never_a_no_op() {
    let garbled = w(Kind::DEPLOYMENT, "api", Setting::Replicas(0), Some("abc"));
    let idle = w(Kind::DEPLOYMENT, "idle", Setting::Replicas(0), None);
    let active = namespace(&[("namespace-scheduler/status", "active")], &[]);
    let intent = intent_to(Target::Up);
    let plan = plan_namespace(&active, &[garbled, idle.clone()], &intent);
    assert_eq!(plan.writes(), 0);
    assert!(!plan.is_noop());
    let loud: Vec<(&str, &str)> = plan.unreadable().map(|s| (s.name.as_str(), s.value.as_str())).collect();
    assert_eq!(loud, [("api", "0")]);
    let json = serde_json::to_value(&plan.skipped).unwrap();
    assert_eq!(json[0]["unreadable"], true, "{json}");
    assert!(
        json[0]["reason"]
            .as_str()
            .unwrap()
            .contains("original-replicas=\"abc\""),
        "{json}"
    );
    assert_eq!(json[1]["unreadable"], false, "{json}");
    // Only a quiet skip: a no-op as before.
    assert!(plan_namespace(&active, &[idle], &intent).is_noop());
}
