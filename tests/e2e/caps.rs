//! Authorization that holds, through the binary on both the stand-in and a real apiserver: the
//! off-hours caps as an invariant over windows (not running pods), windows checked over their
//! whole length, cost centers that cannot be swapped, and a permissions table that cannot be
//! read failing closed but not for good.

use serde_json::json;

use crate::harness::*;

const CC: &str = "namespace-scheduler/cost-center";
/// The morning after OFF_HOURS, when night requests end.
const MORNING: &str = "2026-11-26T06:00:00-05:00";
/// Wednesday 2026-11-25 18:00 Bogotá: the first off-hours run of the day.
const SIX_PM: &str = "2026-11-25T18:00:00-05:00";
const TEN_AM: &str = "2026-11-25T10:00:00-05:00";

/// Seeds the permissions table with a file of cost centers (TEAM-TWO: at most 2 windows).
async fn permissions(c: &Cluster) {
    c.populate_with(json!([
        {"cost_center": "TEAM-TWO", "is_authorized": true, "max_concurrent_namespaces": 2, "authorized_namespaces": ["nss-e2e-*"]},
        {"cost_center": "TEAM-MANY", "is_authorized": true, "max_concurrent_namespaces": 50, "authorized_namespaces": ["nss-e2e-*"]},
    ]))
    .await;
}

/// Each namespace asks with one ActivationRequest, `night`.
async fn ask(c: &Cluster, ns: &str, until: &str) {
    c.ask(ns, "night", until).await;
}

/// `Accepted: …`, `Rejected: …`, or None while unanswered (or `Pending`).
async fn status(c: &Cluster, ns: &str) -> Option<String> {
    Some(c.phase(ns, "night").await).filter(|p| !p.starts_with("-") && !p.starts_with("Pending"))
}

/// `n` namespaces of cost center `cc`, each with a Deployment `api` of 2 replicas.
async fn namespaces(c: &Cluster, prefix: &str, n: usize, cc: &str) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        let ns = c.namespace(&format!("{prefix}{i}"), &[(CC, cc)]).await;
        c.deployment(&ns, "api", 2).await;
        out.push(ns);
    }
    out
}

fn up_and_down(statuses: &[Option<String>]) -> (usize, Vec<&String>) {
    let accepted = statuses
        .iter()
        .flatten()
        .filter(|s| s.starts_with("Accepted: "))
        .count();
    let rejected = statuses
        .iter()
        .flatten()
        .filter(|s| s.starts_with("Rejected: "))
        .collect();
    (accepted, rejected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_requests_for_the_night_with_a_cap_of_two_leave_exactly_two_up() {
    let c = Cluster::start().await;
    permissions(&c).await;
    let names = namespaces(&c, "night", 6, "TEAM-MANY").await;
    // Up all day; then each team asks for the night, the last one first (oldest request first).
    assert_eq!(c.run(&["run", "--at", BUSINESS]).await.0, 0);
    ask(&c, &names[5], MORNING).await;
    if c.real() {
        // creationTimestamp has a one-second resolution.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    for ns in &names[..5] {
        ask(&c, ns, MORNING).await;
    }
    let cap = [("NON_BUSINESS_MAX_ACTIVE_NAMESPACES", "2")];
    let (code, s, err) = c.run_json(SIX_PM, &cap).await;
    assert_eq!(code, 0, "{s}\n{err}");
    let mut statuses = Vec::new();
    let mut up = Vec::new();
    for ns in &names {
        statuses.push(status(&c, ns).await);
        if c.replicas("Deployment", ns, "api").await == 2 {
            up.push(ns.clone());
        }
    }
    let (accepted, rejected) = up_and_down(&statuses);
    assert_eq!((accepted, rejected.len()), (2, 4), "{statuses:?}");
    for r in rejected {
        assert!(
            r.starts_with("Rejected: cluster_cap: 2 of 2 windows open at 18:00 on 2026-11-25"),
            "{r}"
        );
    }
    assert_eq!(up.len(), 2, "exactly the two accepted stay up: {up:?}");
    if c.real() {
        // The apiserver records when each request was written: the oldest gets a slot.
        assert!(up.contains(&names[5]), "{up:?}");
    }
    // Later in the night nothing changes: the windows hold their slots, nothing is re-asked.
    let (code, s, err) = c.run_json(NEXT_NIGHT, &cap).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(s["namespaces_changed"], 0, "{s}");
    // A team re-asking (another request) while its window is open is not counted twice.
    c.ask(&up[0], "longer", "2026-11-26T05:30:00-05:00").await;
    let (code, s, err) = c.run_json(NEXT_NIGHT, &cap).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert!(c.phase(&up[0], "longer").await.starts_with("Accepted: "), "{s}");
    assert_eq!(
        c.phase(&up[0], "night").await,
        "Ended: replaced by ActivationRequest longer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_centers_own_cap_holds_the_same_way() {
    let c = Cluster::start().await;
    permissions(&c).await;
    let names = namespaces(&c, "two", 3, "TEAM-TWO").await;
    for ns in &names {
        ask(&c, ns, MORNING).await;
    }
    let (code, s, err) = c
        .run_json(OFF_HOURS, &[("NON_BUSINESS_MAX_ACTIVE_NAMESPACES", "10")])
        .await;
    assert_eq!(code, 0, "{s}\n{err}");
    let mut statuses = Vec::new();
    for ns in &names {
        statuses.push(status(&c, ns).await);
    }
    let (accepted, rejected) = up_and_down(&statuses);
    assert_eq!(accepted, 2, "{statuses:?}");
    assert_eq!(rejected.len(), 1, "{statuses:?}");
    assert!(
        rejected[0].starts_with("Rejected: cost_center_cap: 2 of 2 windows of TEAM-TWO open at 20:00"),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_judged_over_its_whole_window_even_in_business_hours() {
    let c = Cluster::start().await;
    permissions(&c).await;
    let evening = c.namespace("evening", &[(CC, "TEAM-MANY")]).await;
    c.deployment(&evening, "api", 2).await;
    let afternoon = c.namespace("afternoon", &[(CC, "TEAM-MANY")]).await;
    c.deployment(&afternoon, "api", 2).await;
    let forever = c.namespace("forever", &[(CC, "TEAM-MANY")]).await;
    ask(&c, &evening, "2026-11-25T22:00:00-05:00").await;
    ask(&c, &afternoon, "2026-11-25T17:00:00-05:00").await;
    ask(&c, &forever, "2027-12-31T00:00:00-05:00").await;
    let cap0 = [("NON_BUSINESS_MAX_ACTIVE_NAMESPACES", "0")];
    let (code, s, err) = c.run_json(TEN_AM, &cap0).await;
    assert_eq!(code, 0, "{s}\n{err}");
    let evening_status = status(&c, &evening).await.unwrap();
    assert!(
        evening_status.starts_with("Rejected: cluster_cap: 0 of 0 windows open at 18:00 on 2026-11-25"),
        "{evening_status}"
    );
    // A window that ends before 18:00 needs no slot.
    assert!(status(&c, &afternoon).await.unwrap().starts_with("Accepted: "));
    let long = status(&c, &forever).await.unwrap();
    assert!(long.starts_with("Rejected: window_too_long"), "{long}");
    // At 20:00 the rejected one is down like any other.
    let (code, s, err) = c.run_json(OFF_HOURS, &cap0).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert_eq!(c.replicas("Deployment", &evening, "api").await, 0);
    assert_eq!(c.replicas("Deployment", &afternoon, "api").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_cannot_grant_a_namespace_to_another_cost_center_nor_a_window_too_long() {
    let c = Cluster::start().await;
    c.populate().await;
    let qa = c.namespace("qa-x", &[(CC, "QA-TESTING")]).await;
    c.deployment(&qa, "api", 2).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    let before = c.snapshot(&qa).await;
    let (code, out, err) = c
        .run(&[
            "up",
            "--namespace",
            &qa,
            "--cost-center",
            "DEVOPS-INFRA",
            "--at",
            LATER_OFF_HOURS,
        ])
        .await;
    assert_eq!(code, 4, "{out}\n{err}");
    assert!(out.contains("cost_center_mismatch"), "{out}");
    let (code, out, err) = c
        .run_with(
            &[
                "up",
                "--namespace",
                &qa,
                "--cost-center",
                "DEVOPS-INFRA",
                "--for",
                "3h",
                "--at",
                LATER_OFF_HOURS,
            ],
            &[("MAX_ACTIVATION_HOURS", "2")],
        )
        .await;
    assert_eq!(code, 4, "{out}\n{err}");
    assert_eq!(c.snapshot(&qa).await, before, "a rejection touches nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_permissions_table_fails_closed_but_not_for_good() {
    let c = Cluster::start().await;
    permissions(&c).await;
    let ns = c.namespace("blip", &[(CC, "TEAM-MANY")]).await;
    c.deployment(&ns, "api", 2).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    let before = c.snapshot(&ns).await;
    let unreadable = [("PERMISSIONS_TABLE_NAME", "no-such-permissions-table")];

    // `up`: a retryable failure (exit 1), not a rejection (exit 4); nothing touched.
    let (code, out, err) = c
        .run_with(
            &[
                "up",
                "--namespace",
                &ns,
                "--cost-center",
                "TEAM-MANY",
                "--at",
                LATER_OFF_HOURS,
            ],
            &unreadable,
        )
        .await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(c.snapshot(&ns).await, before);

    // A pending request stays unanswered (exit 1, so the Job is retried)...
    ask(&c, &ns, MORNING).await;
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &unreadable).await;
    assert_eq!(code, 1, "{s}\n{err}");
    assert_eq!(s["counts"]["unanswered"], 1, "{s}");
    assert_eq!(status(&c, &ns).await, None);
    assert_eq!(
        c.phase(&ns, "night").await,
        "Pending: unanswered: the permissions or windows table could not be read; the next run decides"
    );
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0);
    // ...and the next healthy run decides it.
    let (code, s, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    assert!(status(&c, &ns).await.unwrap().starts_with("Accepted: "));
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 2);
}
