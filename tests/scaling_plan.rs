//! The plan is a pure function: these check SPEC §4's rules without a cluster.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use namespace_scheduler::audit::OperationType;
use namespace_scheduler::scaling::inventory::{ManagedNamespace, Setting, Workload};
use namespace_scheduler::scaling::objects::Kind;
use namespace_scheduler::scaling::plan::{decide, plan_namespace, Decision, FieldState, Intent, Target, Until};
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
    let d = decide(&w(Kind::Deployment, "api", Setting::Replicas(7), None), Target::Down);
    let Decision::Change(c) = d else { panic!() };
    assert_eq!(
        c.patch(),
        json!({"spec": {"replicas": 0}, "metadata": {"annotations": {"namespace-scheduler/original-replicas": "7"}}})
    );
    assert_eq!((c.from.as_str(), c.to.as_str()), ("7", "0"));
    let cj = after(decide(
        &w(Kind::CronJob, "job", Setting::Suspend(false), None),
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
        &w(Kind::ScaledObject, "so", Setting::Paused(None), None),
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
            decide(&w(Kind::Deployment, "idle", Setting::Replicas(0), None), target),
            Decision::Skip(r) if r == "at 0 without our annotation: off on purpose"
        ));
        assert!(matches!(
            decide(&w(Kind::CronJob, "j", Setting::Suspend(true), None), target),
            Decision::Skip(_)
        ));
    }
    assert_eq!(
        decide(
            &w(Kind::Deployment, "api", Setting::Replicas(0), Some("3")),
            Target::Down
        ),
        Decision::AtTarget
    );
    assert_eq!(
        decide(&w(Kind::Deployment, "api", Setting::Replicas(3), None), Target::Up),
        Decision::AtTarget
    );
}

#[test]
fn up_restores_the_exact_value_or_keeps_a_value_changed_while_down() {
    let restored = after(decide(
        &w(Kind::StatefulSet, "db", Setting::Replicas(0), Some("3")),
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
        &w(Kind::Deployment, "api", Setting::Replicas(5), Some("3")),
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
        &w(Kind::CronJob, "j", Setting::Suspend(true), Some("false")),
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
            &w(Kind::Deployment, "api", Setting::Replicas(0), Some("many")),
            Target::Up
        ),
        Decision::Skip(_)
    ));
    let Decision::Change(c) = decide(&w(Kind::Deployment, "api", Setting::Replicas(0), Some("3")), Target::Up) else {
        panic!()
    };
    assert_eq!(
        c.patch()["metadata"]["annotations"]["namespace-scheduler/original-replicas"],
        json!(null)
    );
}

#[test]
fn excluded_and_operator_controlled_workloads_are_skipped_with_the_reason() {
    let mut a = w(Kind::Deployment, "a", Setting::Replicas(2), None);
    a.excluded = true;
    assert_eq!(
        decide(&a, Target::Down),
        Decision::Skip("annotated namespace-scheduler/exclude".into())
    );
    let mut b = w(Kind::StatefulSet, "b", Setting::Replicas(0), Some("2"));
    b.controller = Some("Postgres/main".into());
    assert_eq!(
        decide(&b, Target::Up),
        Decision::Skip("controlled by Postgres/main".into())
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
        request_written_at: None,
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
        answer: None,
    };
    let ws = [w(Kind::Deployment, "api", Setting::Replicas(0), Some("3"))];
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
        &[w(Kind::Deployment, "api", Setting::Replicas(0), Some("3"))],
        &down,
    );
    assert!(p.is_noop(), "{p:?}");
}

#[test]
fn a_request_is_pending_until_its_exact_value_is_answered() {
    let ns = namespace(
        &[],
        &[("namespace-scheduler/request-until", "2026-11-25T23:00:00-05:00")],
    );
    let r = ns.pending_request().unwrap();
    assert_eq!(r.until, Some(Utc.with_ymd_and_hms(2026, 11, 26, 4, 0, 0).unwrap()));
    let answered = namespace(
        &[],
        &[
            ("namespace-scheduler/request-until", "2026-11-25T23:00:00-05:00"),
            ("namespace-scheduler/request-answered", "2026-11-25T23:00:00-05:00"),
        ],
    );
    assert!(answered.pending_request().is_none());
    let changed = namespace(
        &[],
        &[
            ("namespace-scheduler/request-until", "2026-11-26T23:00:00-05:00"),
            ("namespace-scheduler/request-answered", "2026-11-25T23:00:00-05:00"),
        ],
    );
    assert!(changed.pending_request().is_some(), "a new value is a new request");
}
