//! The authorization rules and the off-hours caps as an invariant over time (pure: no table, no
//! cluster). The caps: at no instant outside business hours may more windows be open than the
//! cluster cap, or than a cost center's `max_concurrent_namespaces` (docs/reference.md).

use std::collections::BTreeMap;

use crate::config::Config;
use crate::hours::BusinessHours;
use crate::permissions::rules::{authorize, first_non_business};
use crate::permissions::{default_cost_centers, Caps, CostCenter, Grant, ProposedWindow, Window};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

const CLUSTER: &str = "eks-dev";

fn hours() -> BusinessHours {
    Config::from_vars([("POD_NAMESPACE", "task-scheduler")])
        .unwrap()
        .business
}

/// Bogotá (UTC-5) local time on Wednesday 2026-11-25 (not a holiday), or later days.
fn bogota(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap() + Duration::hours(5)
}

fn perms() -> BTreeMap<String, CostCenter> {
    let mut map: BTreeMap<String, CostCenter> = default_cost_centers(0)
        .into_iter()
        .map(|c| (c.cost_center.clone(), c))
        .collect();
    let mut pinned = map["DEVOPS-INFRA"].clone();
    pinned.cost_center = "PINNED".into();
    pinned.allowed_clusters = Some(vec!["eks-other".into()]);
    map.insert("PINNED".into(), pinned);
    map
}

fn caps(cluster: u32) -> Caps {
    Caps {
        cluster,
        max_window: Duration::hours(72),
        cluster_name: CLUSTER.into(),
    }
}

fn req(namespace: &str, cost_center: &str, until: DateTime<Utc>) -> ProposedWindow {
    ProposedWindow {
        namespace: namespace.into(),
        cost_center: cost_center.into(),
        label: None,
        requested_by: "alice".into(),
        until,
    }
}

fn window(namespace: &str, cost_center: &str, until: DateTime<Utc>) -> Window {
    Window {
        namespace: namespace.into(),
        cost_center: cost_center.into(),
        until,
    }
}

fn verdicts(
    requests: &[ProposedWindow],
    windows: &[Window],
    at: DateTime<Utc>,
    cap: u32,
) -> Vec<Result<Grant, String>> {
    authorize(requests, &perms(), windows, &hours(), at, &caps(cap))
        .unwrap()
        .into_iter()
        .map(|v| v.map_err(|r| r.to_string()))
        .collect()
}

fn one(request: ProposedWindow, windows: &[Window], at: DateTime<Utc>) -> Result<Grant, String> {
    verdicts(&[request], windows, at, 5).remove(0)
}

#[test]
fn each_rule_rejects_with_its_name() {
    let night = bogota(25, 20, 0);
    let until = night + Duration::hours(2);
    let mut mislabelled = req("qa-x", "DEVOPS-INFRA", until);
    mislabelled.label = Some("QA-TESTING".into());
    let cases = [
        (
            req("contractor-x", "EXTERNAL-CONTRACTOR", until),
            "not_authorized: cost center EXTERNAL-CONTRACTOR",
        ),
        (
            req("prod-api", "IT-DEVELOPMENT", until),
            "namespace_not_allowed: namespace prod-api matches none",
        ),
        (
            req("dev-api", "NO-SUCH-CC", until),
            "unknown_cost_center: cost center \"NO-SUCH-CC\"",
        ),
        (
            req("dev-api", "PINNED", until),
            "cluster_not_allowed: cluster eks-dev is not in the allowed_clusters",
        ),
        (
            mislabelled,
            "cost_center_mismatch: namespace qa-x belongs to cost center QA-TESTING (its label), not DEVOPS-INFRA",
        ),
        (
            req("dev-api", "IT-DEVELOPMENT", night + Duration::hours(73)),
            "window_too_long: the window to ",
        ),
    ];
    for (request, want) in cases {
        // Business hours or not, the same answer.
        for at in [night, bogota(25, 10, 0)] {
            let mut r = request.clone();
            r.until = at + (r.until - night);
            let got = one(r, &[], at).unwrap_err();
            assert!(got.starts_with(want), "{request:?}: {got}");
        }
    }
    assert_eq!(
        one(req("dev-api", "IT-DEVELOPMENT", night + Duration::hours(73)), &[], night).unwrap_err(),
        "window_too_long: the window to 21:00 on 2026-11-28 America/Bogota is 73h long, more than MAX_ACTIVATION_HOURS=72"
    );
    assert!(one(req("dev-api", "IT-DEVELOPMENT", until), &[], night).is_ok());
    // A label that agrees is fine.
    let mut labelled = req("qa-x", "QA-TESTING", until);
    labelled.label = Some("QA-TESTING".into());
    assert!(one(labelled, &[], night).is_ok());
}

#[test]
fn six_requests_for_the_night_with_a_cap_of_two_open_two_windows() {
    let at = bogota(25, 18, 0);
    let requests: Vec<_> = (1..=6)
        .map(|i| req(&format!("dev-{i}"), "IT-DEVELOPMENT", bogota(26, 6, 0)))
        .collect();
    let v = verdicts(&requests, &[], at, 2);
    assert!(v[..2].iter().all(Result::is_ok), "{v:?}");
    for r in &v[2..] {
        assert_eq!(
            r.as_ref().unwrap_err(),
            "cluster_cap: 2 of 2 windows open at 18:00 on 2026-11-25 America/Bogota (NON_BUSINESS_MAX_ACTIVE_NAMESPACES=2)"
        );
    }
}

#[test]
fn a_cost_centers_own_cap_holds_the_same_way() {
    // DEMO-SANDBOX allows 3.
    let at = bogota(25, 19, 0);
    let until = bogota(25, 23, 0);
    let requests: Vec<_> = (1..=5)
        .map(|i| req(&format!("demo-{i}"), "DEMO-SANDBOX", until))
        .collect();
    let v = verdicts(&requests, &[], at, 50);
    assert!(v[..3].iter().all(Result::is_ok), "{v:?}");
    for r in &v[3..] {
        assert!(
            r.as_ref()
                .unwrap_err()
                .starts_with("cost_center_cap: 3 of 3 windows of DEMO-SANDBOX open at 19:00"),
            "{r:?}"
        );
    }
    // Another cost center's windows do not count against DEMO-SANDBOX.
    let others: Vec<_> = (1..=3)
        .map(|i| window(&format!("qa-{i}"), "QA-TESTING", until))
        .collect();
    assert!(one(req("demo-1", "DEMO-SANDBOX", until), &others, at).is_ok());
}

#[test]
fn asked_at_ten_until_twenty_two_it_needs_a_slot_for_the_evening() {
    let at = bogota(25, 10, 0);
    let got = verdicts(&[req("dev-a", "IT-DEVELOPMENT", bogota(25, 22, 0))], &[], at, 0).remove(0);
    assert_eq!(
        got.unwrap_err(),
        "cluster_cap: 0 of 0 windows open at 18:00 on 2026-11-25 America/Bogota (NON_BUSINESS_MAX_ACTIVE_NAMESPACES=0)"
    );
    // With a slot, the grant says from when it holds it.
    let got = verdicts(&[req("dev-a", "IT-DEVELOPMENT", bogota(25, 22, 0))], &[], at, 1).remove(0);
    assert_eq!(got.unwrap().holds_slot_from, Some(bogota(25, 18, 0)));
}

#[test]
fn a_window_that_ends_before_six_pm_needs_no_slot() {
    let at = bogota(25, 10, 0);
    let got = verdicts(&[req("dev-a", "IT-DEVELOPMENT", bogota(25, 17, 59))], &[], at, 0).remove(0);
    assert_eq!(got.unwrap().holds_slot_from, None);
    // Ending exactly at the end of business hours: [10:00, 18:00) never leaves them.
    let got = verdicts(&[req("dev-a", "IT-DEVELOPMENT", bogota(25, 18, 0))], &[], at, 0).remove(0);
    assert_eq!(got.unwrap().holds_slot_from, None);
}

#[test]
fn a_namespace_asking_again_is_not_counted_twice() {
    let at = bogota(25, 20, 0);
    let open = [
        window("dev-1", "IT-DEVELOPMENT", bogota(25, 22, 0)),
        window("dev-2", "IT-DEVELOPMENT", bogota(25, 23, 0)),
    ];
    // The cap is full (2 of 2), but dev-1 extending its own window takes no new slot.
    assert!(verdicts(&[req("dev-1", "IT-DEVELOPMENT", bogota(26, 1, 0))], &open, at, 2)[0].is_ok());
    assert!(verdicts(&[req("dev-3", "IT-DEVELOPMENT", bogota(26, 1, 0))], &open, at, 2)[0].is_err());
    // The same namespace twice in one run is one window.
    let twice = [
        req("dev-3", "IT-DEVELOPMENT", bogota(26, 1, 0)),
        req("dev-3", "IT-DEVELOPMENT", bogota(26, 2, 0)),
    ];
    assert!(verdicts(&twice, &open[..1], at, 2).iter().all(Result::is_ok));
}

#[test]
fn windows_that_close_before_the_new_one_needs_them_do_not_count() {
    // Asked at 10:00 until 22:00: a window that ends at 17:00 holds no slot at 18:00.
    let at = bogota(25, 10, 0);
    let open = [window("dev-1", "IT-DEVELOPMENT", bogota(25, 17, 0))];
    assert!(verdicts(&[req("dev-2", "IT-DEVELOPMENT", bogota(25, 22, 0))], &open, at, 1)[0].is_ok());
    // One open past 18:00 does.
    let open = [window("dev-1", "IT-DEVELOPMENT", bogota(25, 19, 0))];
    assert!(verdicts(&[req("dev-2", "IT-DEVELOPMENT", bogota(25, 22, 0))], &open, at, 1)[0].is_err());
}

#[test]
fn the_first_non_business_instant() {
    let h = hours();
    assert_eq!(
        first_non_business(&h, bogota(25, 20, 0), bogota(25, 21, 0)).unwrap(),
        Some(bogota(25, 20, 0))
    );
    assert_eq!(
        first_non_business(&h, bogota(25, 10, 0), bogota(25, 22, 0)).unwrap(),
        Some(bogota(25, 18, 0))
    );
    assert_eq!(
        first_non_business(&h, bogota(25, 10, 0), bogota(25, 18, 0)).unwrap(),
        None
    );
}

#[test]
fn an_unknown_cost_center_is_rejected_by_its_rule() {
    let at = bogota(25, 20, 0);
    let r = authorize(
        &[req("x", "NOPE", at + Duration::hours(1))],
        &perms(),
        &[],
        &hours(),
        at,
        &caps(5),
    )
    .unwrap()
    .remove(0)
    .unwrap_err();
    assert_eq!(r.rule, crate::permissions::RejectionRule::UnknownCostCenter);
    assert!(
        r.to_string().starts_with("unknown_cost_center: cost center \"NOPE\""),
        "{r}"
    );
}

/// One step of the property test's world.
#[derive(Debug, Clone)]
enum Event {
    /// Some namespaces ask for windows of these lengths (minutes); `up` is the same call.
    Ask(Vec<(usize, usize, i64)>),
    /// A window is closed early (`down`).
    Close(usize),
}

const NAMESPACES: usize = 8;
const COST_CENTERS: [&str; 3] = ["IT-DEVELOPMENT", "DEMO-SANDBOX", "DEVOPS-INFRA"];

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => prop::collection::vec((0..NAMESPACES, 0..COST_CENTERS.len(), 1i64..(60 * 72)), 1..5).prop_map(Event::Ask),
        1 => (0..NAMESPACES).prop_map(Event::Close),
    ]
}

/// The most windows open at any non-business instant from `from` on: the count can only rise
/// where a window starts (at a run instant, if non-business) or where business hours end.
fn worst_overlap(h: &BusinessHours, windows: &[Window], from: DateTime<Utc>, pick: impl Fn(&Window) -> bool) -> usize {
    let mut instants = vec![from];
    let mut t = from;
    while let Some(end) = h.next_business_end(t).unwrap() {
        if end > from + Duration::days(4) {
            break;
        }
        instants.push(end);
        t = end;
    }
    instants
        .into_iter()
        .filter(|i| !h.is_business(*i).unwrap())
        .map(|i| windows.iter().filter(|w| pick(w) && w.open_at(i)).count())
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Random sequences of requests, ups, early closes and expiries at random run instants
    /// (business or not): the caps are never exceeded at any instant outside business hours.
    #[test]
    fn the_caps_hold_at_every_instant_outside_business_hours(
        steps in prop::collection::vec((0i64..(60 * 9), event()), 1..25),
        cap in 0u32..4,
    ) {
        let h = hours();
        let perms = perms();
        let caps = caps(cap);
        let mut at = bogota(23, 7, 0); // a Monday morning
        let mut open: Vec<Window> = Vec::new();
        for (gap, event) in steps {
            at += Duration::minutes(gap);
            open.retain(|w| w.open_at(at)); // expiries
            match event {
                Event::Close(n) => open.retain(|w| w.namespace != format!("dev-{n}")),
                Event::Ask(asks) => {
                    let requests: Vec<ProposedWindow> = asks
                        .iter()
                        .map(|(n, c, minutes)| {
                            let cc = COST_CENTERS[*c];
                            let ns = if cc == "DEMO-SANDBOX" { format!("demo-{n}") } else { format!("dev-{n}") };
                            req(&ns, cc, at + Duration::minutes(*minutes))
                        })
                        .collect();
                    let verdicts = authorize(&requests, &perms, &open, &h, at, &caps).unwrap();
                    for (r, v) in requests.iter().zip(verdicts) {
                        if v.is_ok() {
                            open.retain(|w| w.namespace != r.namespace);
                            open.push(window(&r.namespace, &r.cost_center, r.until));
                        }
                    }
                }
            }
            let all = worst_overlap(&h, &open, at, |_| true);
            prop_assert!(all <= cap as usize, "cluster: {all} windows open off-hours with cap {cap}: {open:?}");
            for cc in COST_CENTERS {
                let max = perms[cc].max_concurrent_namespaces as usize;
                let n = worst_overlap(&h, &open, at, |w| w.cost_center == cc);
                prop_assert!(n <= max, "{cc}: {n} windows open off-hours, max {max}: {open:?}");
            }
        }
    }
}
