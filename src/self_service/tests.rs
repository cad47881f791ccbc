//! Judging ActivationRequests, pure: which are pending, how each is answered, which windows
//! they open, take over or end (docs/reference.md §5).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use super::judge::{Answer, Judgement, Reason};
use super::*;
use crate::permissions::{Grant as RuleGrant, InvalidItem, Rejection, RejectionRule, Verdict};
use crate::scaling::inventory::{Inventory, ManagedNamespace};

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap()
}

fn t(minutes: i64) -> DateTime<Utc> {
    at() + Duration::minutes(minutes)
}

fn request(ns: &str, name: &str, created: i64, until: &str) -> ActivationRequest {
    ActivationRequest {
        namespace: ns.into(),
        name: name.into(),
        generation: 1,
        resource_version: Some("10".into()),
        created: Some(t(created)),
        until: Some(Text::of(until)),
        requested_by: Some(Text::of("ana")),
        phase: None,
        message: None,
        observed_generation: None,
    }
}

fn accepted(mut r: ActivationRequest) -> ActivationRequest {
    r.phase = Some("Accepted".into());
    r.observed_generation = Some(r.generation);
    r
}

fn namespace(name: &str, annotations: &[(&str, &str)]) -> ManagedNamespace {
    ManagedNamespace {
        name: name.into(),
        resource_version: Some("1".into()),
        cost_center: "TEAM".into(),
        labels: BTreeMap::from([("namespace-scheduler/cost-center".to_string(), "TEAM".to_string())]),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn holding(name: &str, holder: &str, until: DateTime<Utc>) -> ManagedNamespace {
    namespace(
        name,
        &[
            (
                "namespace-scheduler/active-until",
                &crate::scaling::plan::rfc3339(until),
            ),
            ("namespace-scheduler/active-cost-center", "TEAM"),
            ("namespace-scheduler/active-request", holder),
        ],
    )
}

fn inventory(namespaces: Vec<ManagedNamespace>, unmanaged: &[(&str, &str)]) -> Inventory {
    Inventory {
        namespaces: namespaces.into_iter().map(|n| (n.name.clone(), n)).collect(),
        unmanaged: unmanaged.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Inventory::default()
    }
}

/// `namespace/name phase: message` of every reply.
fn replies(j: &[super::judge::Reply]) -> Vec<String> {
    j.iter()
        .map(|r| format!("{} {}: {}", r.request.key(), r.answer.phase.as_str(), r.answer.message))
        .collect()
}

const LATER: &str = "2026-11-26T03:00:00Z";

#[test]
fn a_request_is_pending_until_its_generation_is_answered() {
    let r = request("dev", "a", 0, LATER);
    assert!(r.pending(), "no status");
    let mut answered = accepted(r.clone());
    assert!(!answered.pending() && answered.answered(Phase::Accepted));
    answered.generation = 2;
    assert!(answered.pending(), "its spec changed: a new request");
    let mut waiting = r;
    waiting.phase = Some("Pending".into());
    assert!(waiting.pending(), "a Pending answer leaves observedGeneration unset");
}

#[test]
fn what_cannot_be_judged_is_rejected_with_the_reason_and_the_rest_is_proposed_oldest_first() {
    let inv = inventory(
        vec![namespace("dev", &[]), namespace("odd", &[])],
        &[(
            "kube-system",
            "namespace kube-system is protected (PROTECTED_NAMESPACES) and is never touched",
        )],
    );
    let mut no_requester = request("dev", "nobody", 1, LATER);
    no_requester.requested_by = None;
    let mut huge = request("dev", "huge", 2, "");
    huge.until = Some(Text::of(&"9".repeat(100_000)));
    let mut number = request("dev", "number", 3, "");
    number.until = Some(Text::Other("a number"));
    let requests = vec![
        request("dev", "newer", 20, LATER),
        request("dev", "older", 10, LATER),
        request("kube-system", "sneaky", 0, LATER),
        request("elsewhere", "not-ours", 0, LATER),
        request("odd", "left-alone", 0, LATER),
        request("dev", "bad-date", 0, "tomorrow"),
        request("dev", "late", 5, "2026-11-26T00:30:00Z"),
        no_requester,
        huge,
        number,
        accepted(request("kube-system", "answered", 0, LATER)),
    ];
    let j = Judgement::of(&requests, &inv, |ns| ns != "odd", at());
    assert_eq!(
        replies(&j.replies),
        [
            "dev/bad-date Rejected: invalid: spec.until \"tomorrow\" is not an RFC 3339 instant",
            "kube-system/sneaky Rejected: namespace_not_managed: namespace kube-system is protected (PROTECTED_NAMESPACES) and is never touched",
            "dev/nobody Rejected: invalid: spec.requestedBy is missing",
            "dev/huge Rejected: invalid: spec.until is 100000 characters long, more than 64",
            "dev/number Rejected: invalid: spec.until is a number, not an RFC 3339 instant",
            "dev/late Rejected: expired: the requested window ended at 2026-11-26T00:30:00Z (now 2026-11-26T01:00:00Z)",
        ]
    );
    let proposed: Vec<(&str, &str, &str)> = j
        .proposals
        .iter()
        .map(|(r, p)| (r.name.as_str(), p.cost_center.as_str(), p.requested_by.as_str()))
        .collect();
    assert_eq!(proposed, [("older", "TEAM", "ana"), ("newer", "TEAM", "ana")]);
    for r in &j.replies {
        assert!(r.answer.message.len() <= MESSAGE_MAX_BYTES);
        assert_eq!(
            r.answer.observed_generation,
            Some(1),
            "a rejection is answered for its generation"
        );
    }
    let sneaky = &j.replies[1];
    assert_eq!(
        sneaky.reason,
        Reason::Rejected {
            cost_center: "unassigned".into(),
            requested_by: "ana".into()
        }
    );
}

#[test]
fn a_window_ends_when_its_request_is_gone_or_answered_otherwise_and_an_accepted_request_without_its_window_ends() {
    let mut ended = accepted(request("c", "old", 0, LATER));
    ended.phase = Some("Ended".into());
    let inv = inventory(
        vec![
            holding("a", "deleted", t(60)),
            holding("b", "holder", t(60)),
            holding("c", "old", t(60)),
            holding("d", "expired", t(-5)),
            holding("e", "newer", t(60)),
            namespace("f", &[("namespace-scheduler/active-until", "2026-11-26T04:00:00Z")]),
            namespace("g", &[]),
        ],
        &[],
    );
    let requests = vec![
        accepted(request("b", "holder", 0, LATER)),
        ended,
        accepted(request("d", "expired", 0, LATER)),
        accepted(request("e", "older", 0, LATER)),
        accepted(request("e", "newer", 1, LATER)),
        accepted(request("f", "taken-by-up", 0, LATER)),
        accepted(request("g", "closed", 0, LATER)),
    ];
    let j = Judgement::of(&requests, &inv, |_| true, at());
    assert_eq!(j.missing_holders, [("a".to_string(), "deleted".to_string())]);
    assert_eq!(
        j.ending.iter().collect::<Vec<_>>(),
        ["c"],
        "its request answered Ended: the window goes"
    );
    assert_eq!(
        replies(&j.replies),
        [
            "d/expired Ended: the window ended at 2026-11-26T00:55:00Z",
            "e/older Ended: replaced by ActivationRequest newer",
            "f/taken-by-up Ended: replaced by a window an administrator opened with `namespace-scheduler up` (until 2026-11-26T04:00:00Z)",
            "g/closed Ended: the window is closed (it ended, or `namespace-scheduler down` closed it)",
        ]
    );
    assert!(j.replies.iter().all(|r| r.reason == Reason::Ended));
    let mut j = j;
    j.holder_gone("a");
    assert!(j.ending.contains("a"));
}

fn granted() -> Verdict {
    Verdict::Granted(RuleGrant { holds_slot_from: None })
}

fn rejected(rule: RejectionRule, why: &str) -> Verdict {
    Verdict::Rejected(Rejection::new(rule, why))
}

#[test]
fn an_accepted_request_takes_its_namespaces_window_and_the_one_it_replaces_ends_with_it() {
    let inv = inventory(
        vec![
            holding("a", "holder", t(60)),
            holding("b", "changed", t(60)),
            namespace("c", &[]),
        ],
        &[],
    );
    let mut changed = accepted(request("b", "changed", 0, LATER));
    changed.generation = 2;
    let requests = vec![
        accepted(request("a", "holder", 0, LATER)),
        request("a", "first", 10, "2026-11-26T02:00:00Z"),
        request("a", "second", 20, LATER),
        changed,
        request("c", "broken", 30, LATER),
    ];
    let j = Judgement::of(&requests, &inv, |_| true, at());
    let order: Vec<&str> = j.proposals.iter().map(|(r, _)| r.name.as_str()).collect();
    assert_eq!(order, ["changed", "first", "second", "broken"]);
    let invalid = InvalidItem {
        cost_center: "TEAM".into(),
        problem: crate::dynamo::item::BadAttribute {
            attribute: "is_authorized".into(),
            found: "missing (expected a boolean, BOOL)".into(),
        },
    };
    let d = j.settle(
        Ok(vec![
            rejected(RejectionRule::WindowTooLong, "the window to … is 80h long"),
            granted(),
            granted(),
            Verdict::Undecided(invalid),
        ]),
        &inv,
    );
    let g = &d.grants["a"];
    assert_eq!(g.request.name, "second", "the newest accepted request takes the window");
    assert_eq!(g.answer.phase, Phase::Accepted);
    assert_eq!(
        g.answer.message,
        "window open until 2026-11-26T03:00:00Z, granted to TEAM"
    );
    let replaced: Vec<(&str, &str)> = g
        .replaced
        .iter()
        .map(|(r, a)| (r.name.as_str(), a.message.as_str()))
        .collect();
    assert_eq!(
        replaced,
        [
            ("first", "replaced by ActivationRequest second"),
            ("holder", "replaced by ActivationRequest second")
        ]
    );
    assert!(
        d.ending.contains("b"),
        "a changed request refused ends the window it held"
    );
    assert!(!d.ending.contains("a"));
    assert_eq!(
        replies(&d.replies),
        [
            "b/changed Rejected: window_too_long: the window to … is 80h long",
            "c/broken Pending: permissions_invalid: TEAM.is_authorized: missing (expected a boolean, BOOL)",
        ]
    );
    assert_eq!(d.replies[1].answer.observed_generation, None, "it stays pending");
    assert_eq!(
        d.replies[1].reason,
        Reason::Undecided {
            cost_center: "TEAM".into()
        }
    );
}

#[test]
fn while_the_table_is_unreadable_every_proposal_stays_pending_and_windows_stay_as_granted() {
    let inv = inventory(vec![holding("a", "holder", t(60))], &[]);
    let mut changed = accepted(request("a", "holder", 0, LATER));
    changed.generation = 3;
    let j = Judgement::of(&[changed], &inv, |_| true, at());
    let d = j.settle(Err("DynamoDB: timed out".into()), &inv);
    assert!(d.grants.is_empty() && d.ending.is_empty(), "{d:?}");
    assert_eq!(
        replies(&d.replies),
        ["a/holder Pending: unanswered: the permissions or windows table could not be read; the next run decides"]
    );
}

#[test]
fn an_answer_is_one_merge_patch_of_status_and_is_not_written_twice() {
    let r = request("dev", "ask", 0, LATER);
    let a = Answer::accepted(&r, t(120), "TEAM");
    assert_eq!(
        a.patch(Some("42")),
        json!({"metadata": {"resourceVersion": "42"}, "status": {
            "phase": "Accepted", "message": "window open until 2026-11-26T03:00:00Z, granted to TEAM",
            "grantedUntil": "2026-11-26T03:00:00Z", "costCenter": "TEAM", "observedGeneration": 1}})
    );
    let pending = Answer::pending(&r, "permissions_invalid: X.y: z");
    assert_eq!(
        pending.patch(None)["status"],
        json!({"phase": "Pending", "message": "permissions_invalid: X.y: z", "grantedUntil": null, "costCenter": null, "observedGeneration": null})
    );
    let mut stored = r.clone();
    assert!(!a.is_held_by(&stored));
    stored.phase = Some("Accepted".into());
    stored.message = Some(a.message.clone());
    stored.observed_generation = Some(1);
    assert!(a.is_held_by(&stored));
    // A long reason is cut to 1 KiB, on a character boundary.
    let long = Answer::rejected(&r, &"é".repeat(2_000));
    assert!(
        long.message.len() <= MESSAGE_MAX_BYTES && long.message.ends_with('…'),
        "{}",
        long.message.len()
    );
}

#[test]
fn a_request_decodes_from_whatever_was_written() {
    let slim: crate::scaling::objects::Slim = serde_json::from_value(json!({
        "metadata": {"name": "ask", "namespace": "dev", "generation": 4, "resourceVersion": "9",
                     "creationTimestamp": "2026-11-25T20:00:00Z", "managedFields": [{"x": 1}]},
        "spec": {"until": {"not": "a string"}, "requestedBy": "ana", "reason": "x".repeat(10)},
        "status": {"phase": "Rejected", "observedGeneration": 3, "message": 5},
    }))
    .unwrap();
    let r = ActivationRequest::from_slim(slim);
    assert_eq!((r.generation, r.observed_generation, r.pending()), (4, Some(3), true));
    assert_eq!(r.created, Some(Utc.with_ymd_and_hms(2026, 11, 25, 20, 0, 0).unwrap()));
    assert_eq!(
        r.until(),
        Err("spec.until is an object, not an RFC 3339 instant".into())
    );
    assert_eq!(r.requester(), Ok("ana"));
    assert_eq!(r.message, None);
}
