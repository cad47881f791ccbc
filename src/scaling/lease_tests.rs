//! Taking the Lease: who holds it, and which runs' audits it hands over as open.

use serde_json::{json, Value};

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn lease(holder: Option<&str>, renewed: &str, annotations: Value) -> Lease {
    serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE_NAME, "namespace": "ts", "resourceVersion": "7", "annotations": annotations},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 60,
                 "acquireTime": "2026-11-25T19:59:00.000000Z", "renewTime": renewed, "leaseTransitions": 3},
    }))
    .expect("a Lease")
}

fn open(run_id: &str, since: f64) -> OpenRun {
    OpenRun {
        run_id: run_id.into(),
        since,
    }
}

const NOW: &str = "2026-11-25T20:05:00Z";
const ME: Taker = Taker {
    holder: "pod-b/run-b",
    duration: 60,
    since: 1_795_000_000.0,
};

/// (case, the Lease as read, what the claim must be: None = held by another live run, Some(the
/// open runs it hands over)).
type Case = (&'static str, Option<Lease>, Option<Vec<OpenRun>>);

#[test]
fn who_holds_the_lease_and_which_audits_it_hands_over() {
    let listed = json!({ANN_AUDIT_OPEN: r#"[{"run_id":"run-x","since":100.0}]"#});
    let acquired_epoch = at("2026-11-25T19:59:00Z").timestamp() as f64;
    let cases: Vec<Case> = vec![
        ("absent: created, nothing open", None, Some(vec![])),
        (
            "released: free, its list handed over",
            Some(lease(None, "2026-11-25T20:00:00.000000Z", listed.clone())),
            Some(vec![open("run-x", 100.0)]),
        ),
        (
            "held by a live run",
            Some(lease(Some("pod-a/run-a"), "2026-11-25T20:04:30.000000Z", json!({}))),
            None,
        ),
        (
            "expired: its holder is open from its own since",
            Some(lease(
                Some("pod-a/run-a"),
                "2026-11-25T20:00:00.000000Z",
                json!({ANN_AUDIT_SINCE: "1794999000.5", ANN_AUDIT_OPEN: r#"[{"run_id":"run-x","since":100.0}]"#}),
            )),
            Some(vec![open("run-x", 100.0), open("run-a", 1_794_999_000.5)]),
        ),
        (
            "expired, written by a binary without since: from its acquireTime",
            Some(lease(Some("pod-a/run-a"), "2026-11-25T20:00:00.000000Z", json!(null))),
            Some(vec![open("run-a", acquired_epoch)]),
        ),
        (
            "expired, already listed: one entry, the earliest since",
            Some(lease(
                Some("pod-a/run-x"),
                "2026-11-25T20:00:00.000000Z",
                json!({ANN_AUDIT_SINCE: "5000", ANN_AUDIT_OPEN: r#"[{"run_id":"run-x","since":100.0}]"#}),
            )),
            Some(vec![open("run-x", 100.0)]),
        ),
        (
            "an unreadable list is ignored, the dead holder still closed",
            Some(lease(
                Some("run-a"),
                "2026-11-25T20:00:00.000000Z",
                json!({ANN_AUDIT_SINCE: "42", ANN_AUDIT_OPEN: "garbage"}),
            )),
            Some(vec![open("run-a", 42.0)]),
        ),
    ];
    for (case, existing, want) in cases {
        match (claim(existing, "ts", &ME, at(NOW)), want) {
            (Claim::Take { lease, create }, Some(want)) => {
                assert_eq!(listed_open_runs(&lease), want, "{case}");
                assert_eq!(holder_of(&lease), Some(ME.holder), "{case}");
                assert_eq!(annotation(&lease, ANN_AUDIT_SINCE), Some("1795000000"), "{case}");
                assert_eq!(create, case.starts_with("absent"), "{case}");
                assert_eq!(lease.metadata.name.as_deref(), Some(LEASE_NAME), "{case}");
            }
            (Claim::Held(holder, until), None) => {
                assert_eq!(holder, "pod-a/run-a", "{case}");
                assert_eq!(until, Some(at("2026-11-25T20:05:30Z")), "{case}");
            }
            (other, want) => panic!("{case}: got {other:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_lease_already_ours_is_settled_as_it_is() {
    let ours = lease(Some(ME.holder), "2026-11-25T20:04:59.000000Z", json!({}));
    assert!(matches!(claim(Some(ours), "ts", &ME, at(NOW)), Claim::Ours(_)));
}

#[test]
fn the_list_is_removed_once_empty_and_since_goes_with_the_holder() {
    let mut l = lease(None, "2026-11-25T20:00:00.000000Z", json!({"other": "kept"}));
    set_annotations(&mut l, &[open("a", 1.0)], Some(2.0));
    assert_eq!(listed_open_runs(&l), vec![open("a", 1.0)]);
    set_annotations(&mut l, &[], None);
    let kept = [("other".to_string(), "kept".to_string())].into_iter().collect();
    assert_eq!(l.metadata.annotations, Some(kept));
}
