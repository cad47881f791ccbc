//! The permissions table read strictly, and one invalid item failing only its own cost center.

use chrono::{TimeZone, Utc};

use super::*;

fn item(edit: impl FnOnce(&mut HashMap<String, AttributeValue>)) -> HashMap<String, AttributeValue> {
    let mut i = default_cost_centers(1_767_225_600)[0].to_item();
    edit(&mut i);
    i
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

#[test]
fn each_attribute_is_read_as_its_documented_type() {
    type Edit = Box<dyn FnOnce(&mut HashMap<String, AttributeValue>)>;
    let set = |k: &'static str, v: AttributeValue| -> Edit { Box::new(move |i| drop(i.insert(k.into(), v))) };
    let drop_key = |k: &'static str| -> Edit { Box::new(move |i| drop(i.remove(k))) };
    let cases: Vec<(Edit, Option<&str>)> = vec![
        (set("max_concurrent_namespaces", s("ten")), Some("max_concurrent_namespaces: the string \"ten\" (expected a non-negative integer, N)")),
        (set("max_concurrent_namespaces", n("-1")), Some("max_concurrent_namespaces: the number -1 (expected a non-negative integer, N)")),
        (set("max_concurrent_namespaces", n("2.5")), Some("max_concurrent_namespaces: the number 2.5 (expected a non-negative integer, N)")),
        (drop_key("max_concurrent_namespaces"), Some("max_concurrent_namespaces: missing (expected a non-negative integer, N)")),
        (set("max_concurrent_namespaces", n("0")), None),
        (set("is_authorized", s("true")), Some("is_authorized: the string \"true\" (expected a boolean, BOOL)")),
        (set("is_authorized", n("1")), Some("is_authorized: the number 1 (expected a boolean, BOOL)")),
        (drop_key("is_authorized"), Some("is_authorized: missing (expected a boolean, BOOL)")),
        (set("authorized_namespaces", AttributeValue::Ss(vec!["dev-*".into()])), Some("authorized_namespaces: a string set of 1 value(s) (expected a list of strings, L of S)")),
        (set("authorized_namespaces", AttributeValue::L(vec![s("dev-*"), n("5")])), Some("authorized_namespaces: element 2 is the number 5 (expected a list of strings, L of S)")),
        (set("authorized_namespaces", AttributeValue::L(vec![s("dev-*"), s("dev-[")])), Some("authorized_namespaces: element 2 is \"dev-[\", not a valid glob pattern (expected patterns such as dev-*)")),
        (drop_key("authorized_namespaces"), None),
        (set("allowed_clusters", s("eks-a")), Some("allowed_clusters: the string \"eks-a\" (expected a list of strings, L of S)")),
        (set("description", n("7")), Some("description: the number 7 (expected a string, S)")),
        (set("codigo-cost-center", AttributeValue::Null(true)), Some("codigo-cost-center: NULL (expected a string, S)")),
        (set("created_at", s("yesterday")), Some("created_at: the string \"yesterday\" (expected a number, N)")),
        // epoch seconds with a fraction (a Python time.time()) are a number all the same
        (set("updated_at", n("1767225600.25")), None),
        (set("some_other_attribute", AttributeValue::Bool(true)), None),
    ];
    for (edit, want) in cases {
        let got = CostCenter::from_item(&item(edit));
        match (got, want) {
            (Ok(_), None) => {}
            (Err(e), Some(w)) => {
                assert_eq!(e.cost_center, "IT-DEVELOPMENT");
                assert_eq!(e.problem.to_string(), w);
                assert_eq!(e.to_string(), format!("permissions_invalid: IT-DEVELOPMENT.{w}"));
            }
            (got, want) => panic!("{got:?}, want {want:?}"),
        }
    }
    let read = CostCenter::from_item(&item(|i| drop(i.insert("updated_at".into(), n("1767225600.75"))))).unwrap();
    assert_eq!(read.updated_at, Some(1_767_225_600));
}

#[test]
fn every_seeded_item_reads_back_as_written() {
    for cc in default_cost_centers(1_767_225_600) {
        assert_eq!(CostCenter::from_item(&cc.to_item()).unwrap(), cc);
    }
}

#[test]
fn an_invalid_item_leaves_its_proposals_undecided_and_the_others_decided_as_if_it_were_not_there() {
    let config = crate::config::Config::from_vars([
        ("POD_NAMESPACE", "task-scheduler"),
        ("NON_BUSINESS_MAX_ACTIVE_NAMESPACES", "1"),
    ])
    .unwrap();
    let night = Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap();
    let proposal = |ns: &str, cc: &str| ProposedWindow {
        namespace: ns.into(),
        cost_center: cc.into(),
        label: Some(cc.into()),
        requested_by: "ana".into(),
        until: night + chrono::Duration::hours(2),
    };
    let mut permissions: BTreeMap<String, Permission> = default_cost_centers(0)
        .into_iter()
        .map(|c| (c.cost_center.clone(), Ok(c)))
        .collect();
    let broken = CostCenter::from_item(&item(|i| {
        i.insert("cost_center".into(), s("QA-TESTING"));
        i.insert("max_concurrent_namespaces".into(), s("ten"));
    }));
    permissions.insert("QA-TESTING".into(), broken);
    // The broken cost center's proposal comes first: it must not take the only slot.
    let proposals = [
        proposal("qa-x", "QA-TESTING"),
        proposal("dev-y", "IT-DEVELOPMENT"),
        proposal("dev-z", "IT-DEVELOPMENT"),
    ];
    let verdicts = decide(&proposals, &permissions, &[], &config, night).unwrap();
    match &verdicts[0] {
        Verdict::Undecided(e) => assert_eq!(e.to_string(), "permissions_invalid: QA-TESTING.max_concurrent_namespaces: the string \"ten\" (expected a non-negative integer, N)"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(verdicts[1], Verdict::Granted(_)), "{verdicts:?}");
    match &verdicts[2] {
        Verdict::Rejected(r) => assert_eq!(r.rule, RejectionRule::ClusterCap),
        other => panic!("{other:?}"),
    }
}
