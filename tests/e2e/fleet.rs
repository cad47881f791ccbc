//! A fleet (docs/fleet.md): clusters that share one set of tables share each cost center's
//! `max_concurrent_namespaces`, decided in the windows table.
//!
//! The two-cluster test needs two real control planes: the suite's (`E2E_KUBECONFIG`) and the
//! one this test binary keeps of its own (`control_plane_faults::own_control_plane`, started once
//! per test binary), so it runs in the real-cluster pass and reports itself skipped elsewhere.
//! Both clusters use one DynamoDB Local and one set of tables, each with its own
//! `EKS_CLUSTER_NAME`. The crash-recovery test needs one cluster and runs on both passes.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Datelike, Duration, Utc};
use namespace_scheduler::fleet::{FleetWindows, WindowRecord};
use serde_json::{json, Value};

use crate::common;
use crate::control_plane_faults::own_control_plane;
use crate::harness::*;
use crate::refusals::{freeze_namespace_now, lift_now, refused_namespace_run};

const CC: &str = "FLEET-THREE";

async fn populate(c: &Cluster) {
    c.populate_with(json!([
        {"cost_center": CC, "is_authorized": true, "max_concurrent_namespaces": 3, "authorized_namespaces": ["nss-e2e-*"]},
    ]))
    .await;
}

/// One cluster of the fleet: its API, its name, and the fleet's tables (those of `tables`).
struct Member<'a> {
    c: &'a Cluster,
    name: &'static str,
    env: Vec<(String, String)>,
}

impl<'a> Member<'a> {
    fn new(c: &'a Cluster, name: &'static str, tables: &Cluster) -> Self {
        let env = [
            ("EKS_CLUSTER_NAME", name.to_string()),
            ("DYNAMODB_TABLE_NAME", tables.audit_table.clone()),
            ("PERMISSIONS_TABLE_NAME", tables.permissions_table.clone()),
            (
                "WINDOWS_TABLE_NAME",
                common::windows_table_for(&tables.permissions_table),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Member { c, name, env }
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.c.run_with(args, &env).await
    }

    async fn up(&self, namespaces: &[String], at: &str, length: &str) -> (i32, String, String) {
        let list = namespaces.join(",");
        self.run(&[
            "--output",
            "json",
            "up",
            "--namespace",
            &list,
            "--cost-center",
            CC,
            "--for",
            length,
            "--at",
            at,
            "--requested-by",
            self.name,
        ])
        .await
    }

    async fn namespaces(&self, n: usize) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..n {
            let ns = self.c.namespace(&format!("{}-{i}", self.name), &[]).await;
            self.c.deployment(&ns, "api", 1).await;
            names.push(ns);
        }
        names
    }
}

/// The windows recorded in the fleet's windows table (the version items left out).
async fn recorded(tables: &Cluster) -> Vec<WindowRecord> {
    let table = common::windows_table_for(&tables.permissions_table);
    common::scan_items(&tables.dynamo, &table)
        .await
        .iter()
        .filter(|i| i.get("window_key") != Some(&AttributeValue::S("#version".into())))
        .map(|i| WindowRecord::from_item(i).unwrap_or_else(|e| panic!("window item {i:?}: {e}")))
        .collect()
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

/// The instants of a night to come: 20:00 Bogotá on a Wednesday one to two weeks on, 21:00, and
/// 01:00 the next morning, all off-hours. Not the harness's fixed night: DynamoDB Local honours
/// the windows table's TTL (a day after a window's end) and would remove windows of a past
/// night while the test reads them.
struct Night {
    evening: String,
    later: String,
    next_morning: String,
    /// `2026-11-25`, as a refusal names the evening.
    date: String,
}

fn night() -> Night {
    let bogota = chrono_tz::America::Bogota;
    let today = Utc::now().with_timezone(&bogota).date_naive();
    let wednesday = (7..14)
        .map(|d| today + Duration::days(d))
        .find(|d| d.weekday() == chrono::Weekday::Wed)
        .expect("a Wednesday within a week");
    let evening = wednesday
        .and_hms_opt(20, 0, 0)
        .unwrap()
        .and_local_timezone(bogota)
        .unwrap();
    let rfc = |t: chrono::DateTime<chrono_tz::Tz>| t.to_rfc3339();
    Night {
        later: rfc(evening + Duration::hours(1)),
        next_morning: rfc(evening + Duration::hours(5)),
        evening: rfc(evening),
        date: wednesday.format("%Y-%m-%d").to_string(),
    }
}

fn json_of(out: &str, err: &str) -> Value {
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("JSON ({e}): {out}\n{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_asking_for_a_cost_centers_whole_cap_at_once_get_exactly_the_cap() {
    let what = "a fleet of two real clusters";
    let Some(own) = own_control_plane(what).await else {
        return;
    };
    let a = Cluster::start().await;
    if !a.real_only(what) {
        return;
    }
    let b = &own.c;
    let n = night();
    populate(&a).await;
    let (eks_a, eks_b) = (Member::new(&a, "eks-a", &a), Member::new(b, "eks-b", &a));
    let (ns_a, ns_b) = (eks_a.namespaces(3).await, eks_b.namespaces(3).await);

    // Both at the same instant, each for the cost center's whole cap.
    let (ra, rb) = tokio::join!(eks_a.up(&ns_a, &n.evening, "4h"), eks_b.up(&ns_b, &n.evening, "4h"));
    let codes = (ra.0, rb.0);
    assert!(
        codes == (0, 4) || codes == (4, 0),
        "exactly one of the two ups is granted:\neks-a {ra:?}\neks-b {rb:?}"
    );
    let ((winner, won), (loser, lost), loser_result) = if ra.0 == 0 {
        ((&eks_a, &ns_a), (&eks_b, &ns_b), &rb)
    } else {
        ((&eks_b, &ns_b), (&eks_a, &ns_a), &ra)
    };
    let refusal = &loser_result.1;
    for want in [
        format!(
            "cost_center_cap: 3 of 3 windows of {CC} open at 20:00 on {} America/Bogota",
            n.date
        ),
        "max_concurrent_namespaces=3, 3 of them on other clusters".to_string(),
    ] {
        assert!(refusal.contains(&want), "{want:?} not in the refusal:\n{refusal}");
    }
    let windows = recorded(&a).await;
    assert_eq!(windows.len(), 3, "exactly the cap is recorded fleet-wide: {windows:?}");
    assert!(windows
        .iter()
        .all(|w| w.cluster == winner.name && won.contains(&w.namespace)));
    for ns in won {
        assert!(winner
            .c
            .annotation("Namespace", None, ns, "namespace-scheduler/active-until")
            .await
            .is_some());
    }
    for ns in lost {
        assert_eq!(
            loser
                .c
                .annotation("Namespace", None, ns, "namespace-scheduler/active-until")
                .await,
            None
        );
    }

    // The winner closes its windows: the slots are free again, and the loser is granted.
    let list = won.join(",");
    let (code, out, err) = winner.run(&["down", "--namespace", &list, "--at", &n.later]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(recorded(&a).await.is_empty(), "down released the windows");
    let (code, out, err) = loser.up(lost, &n.later, "2h").await;
    assert_eq!(code, 0, "{out}\n{err}");
    let windows = recorded(&a).await;
    assert_eq!(windows.len(), 3, "{windows:?}");
    assert!(windows.iter().all(|w| w.cluster == loser.name));

    // Once those windows have ended (23:00), they count for nothing: the winner is granted again.
    let (code, out, err) = winner.up(won, &n.next_morning, "2h").await;
    assert_eq!(code, 0, "the loser's windows ended at 23:00: {out}\n{err}");
    let open: Vec<_> = recorded(&a)
        .await
        .into_iter()
        .filter(|w| w.until > at(&n.next_morning))
        .collect();
    assert_eq!(open.len(), 3, "{open:?}");
    assert!(open.iter().all(|w| w.cluster == winner.name));

    // The audit trail of the fleet, from either cluster.
    let (code, out, err) = eks_a.run(&["--output", "json", "history", "--cost-center", CC]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let history = json_of(&out, &err);
    let records = history["records"].as_array().unwrap();
    for cluster in ["eks-a", "eks-b"] {
        assert!(
            records
                .iter()
                .any(|r| r["cluster"] == cluster && r["operation"] == "activate"),
            "history --cost-center shows {cluster}'s activations: {history}"
        );
    }
    assert!(records.iter().any(|r| r["status"] == "rejected"), "{history}");
    let (code, out, err) = eks_b
        .run(&["--output", "json", "history", "--namespace", &won[0]])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let history = json_of(&out, &err);
    let records = history["records"].as_array().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r["namespace"] == won[0].as_str() && r["operation"] == "activate" && r["status"] == "completed"),
        "history --namespace shows its activation: {history}"
    );
    let today = Utc::now().with_timezone(&chrono_tz::America::Bogota).iso_week();
    let week = format!("{}-W{:02}", today.year(), today.week());
    let (code, out, err) = winner
        .run(&["--output", "json", "report", "--week", &week, "--all-clusters"])
        .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let report = json_of(&out, &err);
    let clusters: Vec<&str> = report["clusters"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .filter_map(|c| c["cluster"].as_str())
        .collect();
    assert!(
        clusters.contains(&"eks-a") && clusters.contains(&"eks-b"),
        "report --all-clusters names both: {report}"
    );
}

/// A window recorded by a run that died before its namespace came up holds a slot the other
/// clusters count, until this cluster's next run takes the dead run's Lease over and releases
/// it. A run that did not follow a dead one does not look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_recorded_by_a_run_that_died_is_released_by_the_next_run() {
    let c = Cluster::start().await;
    let n = night();
    populate(&c).await;
    let (me, other) = (Member::new(&c, "eks-a", &c), Member::new(&c, "eks-b", &c));
    let ghosts = me.namespaces(3).await;
    let asker = other.namespaces(1).await;

    // What a run of eks-a that died between the grant and the Namespace writes leaves.
    let windows = FleetWindows::new(
        c.dynamo.client.clone(),
        common::windows_table_for(&c.permissions_table),
        "eks-a",
    );
    let records: Vec<WindowRecord> = ghosts
        .iter()
        .map(|ns| WindowRecord {
            cost_center: CC.into(),
            cluster: "eks-a".into(),
            namespace: ns.clone(),
            until: at(&n.evening) + Duration::hours(4),
            holds_slot_from: at(&n.evening),
            requested_by: "ana@example.com".into(),
            run_id: "dead-run".into(),
            granted_at: at(&n.evening),
        })
        .collect();
    windows.record(&records, "dead-run").await.expect("record the ghosts");
    assert_eq!(recorded(&c).await.len(), 3);

    let (code, out, _) = other.up(&asker, &n.evening, "2h").await;
    assert_eq!(code, 4, "the ghosts hold the cap: {out}");
    assert!(out.contains("3 of them on other clusters"), "{out}");
    // A normal run of eks-a does not reconcile (nothing died): the ghosts stay.
    let (code, out, err) = me.run(&["run", "--at", &n.evening]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(recorded(&c).await.len(), 3);

    // The Lease as the dead run left it: held, and not renewed for long.
    c.patch(
        "Lease",
        Some(&c.own_ns),
        "namespace-scheduler",
        json!({"spec": {"holderIdentity": "pod/dead-run"}}),
    )
    .await;
    c.expire_lease().await;
    let (code, out, err) = me.run(&["run", "--at", &n.evening]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("3 released"),
        "the summary says what was reconciled: {out}"
    );
    assert!(recorded(&c).await.is_empty(), "the ghosts are released");

    let (code, out, err) = other.up(&asker, &n.evening, "2h").await;
    assert_eq!(code, 0, "the slots are free again: {out}\n{err}");
}

/// A window recorded for a namespace that does not come up (rolled back) is released by the
/// same run; so is the window of a request that is deleted, once its namespace is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_of_namespaces_rolled_back_and_of_deleted_requests_are_released() {
    let c = Cluster::start().await;
    let n = night();
    populate(&c).await;
    let me = Member::new(&c, "eks-a", &c);
    let ns = c.namespace("kept", &[("namespace-scheduler/cost-center", CC)]).await;
    c.deployment(&ns, "api", 2).await;
    let (code, out, err) = me.run(&["run", "--at", &n.evening]).await;
    assert_eq!(code, 0, "{out}\n{err}");

    // up, with the Namespace's own write refused: rolled back, its window released.
    let frozen = freeze_namespace_now(&c, &ns).await;
    let env: Vec<(&str, &str)> = me.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let up = ["up", "-n", &ns, "--cost-center", CC, "--for", "4h", "--at", &n.evening];
    assert_eq!(refused_namespace_run(&c, &ns, &up, &env).await, "rolled_back");
    assert_eq!(recorded(&c).await, [], "the rolled-back window is released");
    lift_now(&c, &ns, frozen).await;

    // A request's window: recorded when granted, released once the request is deleted.
    let until = (at(&n.evening) + Duration::hours(4)).to_rfc3339();
    c.ask(&ns, "tonight", &until).await;
    let (code, out, err) = me.run(&["run", "--at", &n.evening]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(c.phase(&ns, "tonight").await.starts_with("Accepted"));
    let windows = recorded(&c).await;
    assert_eq!(
        windows
            .iter()
            .map(|w| (w.cluster.as_str(), w.namespace.as_str()))
            .collect::<Vec<_>>(),
        [("eks-a", ns.as_str())],
        "{windows:?}"
    );
    c.delete("ActivationRequest", Some(&ns), "tonight").await;
    let (code, out, err) = me.run(&["run", "--at", &n.later]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 0, "the window ended");
    assert_eq!(recorded(&c).await, [], "its slot is free again");
}

/// The windows table unreadable (here: absent) while deciding fails closed and retryably: `up`
/// exits 1 touching nothing, a request stays pending and the run exits 1; once it reads again,
/// the next run decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_windows_table_fails_closed_but_not_for_good() {
    let c = Cluster::start().await;
    let n = night();
    populate(&c).await;
    let me = Member::new(&c, "eks-a", &c);
    let ns = c.namespace("blind", &[("namespace-scheduler/cost-center", CC)]).await;
    c.deployment(&ns, "api", 2).await;
    let (code, out, err) = me.run(&["run", "--at", &n.evening]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let before = c.snapshot(&ns).await;

    let mut blind = Member::new(&c, "eks-a", &c);
    for (k, v) in blind.env.iter_mut() {
        if k == "WINDOWS_TABLE_NAME" {
            *v = format!("{v}-absent");
        }
    }
    let (code, out, err) = blind.up(std::slice::from_ref(&ns), &n.evening, "2h").await;
    assert_eq!(code, 1, "{out}\n{err}");
    for want in [
        "windows table unreadable, no request decided",
        "ResourceNotFoundException",
    ] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    assert_eq!(c.snapshot(&ns).await, before, "up touched nothing");

    let until = (at(&n.evening) + Duration::hours(2)).to_rfc3339();
    c.ask(&ns, "tonight", &until).await;
    let (code, out, err) = blind.run(&["run", "--at", &n.evening]).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        c.phase(&ns, "tonight")
            .await
            .starts_with("Pending: unanswered: the permissions or windows table could not be read"),
        "{}",
        c.phase(&ns, "tonight").await
    );
    assert_eq!(c.snapshot(&ns).await, before);

    let (code, out, err) = me.run(&["run", "--at", &n.evening]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(c.phase(&ns, "tonight").await.starts_with("Accepted"));
    assert_eq!(recorded(&c).await.len(), 1);
}
