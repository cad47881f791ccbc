//! The fleet's decisions and writes, pure: what is counted where, and what a grant records.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::config::Config;
use crate::hours::BusinessHours;
use crate::permissions::{default_cost_centers, Caps, CostCenter, Grant, ProposedWindow};

const ME: &str = "eks-a";
const OTHER: &str = "eks-b";

fn hours() -> BusinessHours {
    Config::from_vars([("POD_NAMESPACE", "task-scheduler")])
        .unwrap()
        .business
}

/// Bogotá (UTC-5) local time on Wednesday 2026-11-25, a working day.
fn bogota(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap() + Duration::hours(5)
}

fn perms() -> BTreeMap<String, CostCenter> {
    let mut map: BTreeMap<String, CostCenter> = default_cost_centers(0)
        .into_iter()
        .map(|c| (c.cost_center.clone(), c))
        .collect();
    let mut big = map["DEVOPS-INFRA"].clone();
    big.cost_center = "BIG".into();
    big.max_concurrent_namespaces = 1000;
    map.insert("BIG".into(), big);
    map
}

fn req(namespace: &str, cost_center: &str, until: DateTime<Utc>) -> ProposedWindow {
    ProposedWindow {
        namespace: namespace.into(),
        cost_center: cost_center.into(),
        label: None,
        requested_by: "ana".into(),
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

fn rec(cluster: &str, namespace: &str, cost_center: &str, until: DateTime<Utc>) -> WindowRecord {
    WindowRecord {
        cost_center: cost_center.into(),
        cluster: cluster.into(),
        namespace: namespace.into(),
        until,
        holds_slot_from: bogota(18, 0),
        requested_by: "bob".into(),
        run_id: "old-run".into(),
        granted_at: bogota(17, 0),
    }
}

/// `n` windows of another cluster, `<prefix>-1`…`<prefix>-n`.
fn others(prefix: &str, cost_center: &str, n: usize, until: DateTime<Utc>) -> Vec<WindowRecord> {
    (1..=n)
        .map(|i| rec(OTHER, &format!("{prefix}-{i}"), cost_center, until))
        .collect()
}

type Partitions = BTreeMap<String, std::result::Result<Partition, String>>;

fn partitions(list: &[(&str, Option<u64>, Vec<WindowRecord>)]) -> Partitions {
    list.iter()
        .map(|(cc, version, windows)| {
            (
                cc.to_string(),
                Ok(Partition {
                    version: *version,
                    windows: windows.clone(),
                }),
            )
        })
        .collect()
}

struct Case {
    requests: Vec<ProposedWindow>,
    held: Vec<Window>,
    partitions: Partitions,
    at: DateTime<Utc>,
    cluster_cap: u32,
    all_or_nothing: bool,
}

impl Case {
    fn new(requests: Vec<ProposedWindow>, partitions: Partitions) -> Self {
        Case {
            requests,
            held: Vec::new(),
            partitions,
            at: bogota(20, 0),
            cluster_cap: 50,
            all_or_nothing: false,
        }
    }

    fn run(&self) -> Round {
        let perms = perms();
        let hours = hours();
        let caps = Caps {
            cluster: self.cluster_cap,
            max_window: Duration::hours(72),
            cluster_name: ME.into(),
        };
        let batch = GrantBatch {
            requests: &self.requests,
            permissions: &perms,
            own_windows: &self.held,
            hours: &hours,
            at: self.at,
            caps: &caps,
            run_id: "run-1",
            all_or_nothing: self.all_or_nothing,
        };
        let pending: Vec<usize> = (0..self.requests.len()).collect();
        round(&batch, ME, &pending, &self.held, &self.partitions).unwrap()
    }
}

/// Each decision as `granted`, `withheld`, `undecided: …` or the rejection's text.
fn summary(round: &Round) -> Vec<String> {
    round
        .decided
        .iter()
        .map(|(_, d)| match d {
            Decision::Granted(_) => "granted".to_string(),
            Decision::Withheld(_) => "withheld".to_string(),
            Decision::Rejected(r) => r.to_string(),
            Decision::Undecided(why) => format!("undecided: {why}"),
        })
        .collect()
}

fn keys(commit: &Commit) -> (Vec<String>, Vec<String>) {
    (
        commit.puts.iter().map(|r| r.key().to_string()).collect(),
        commit.deletes.iter().map(|k| k.to_string()).collect(),
    )
}

#[test]
fn what_counts_where() {
    let night = bogota(23, 0);
    // (what, case, decisions (prefixes))
    let cases: Vec<(&str, Case, Vec<&str>)> = vec![
        (
            "the other clusters' windows count towards the cost center's cap",
            Case::new(
                vec![req("demo-x", "DEMO-SANDBOX", night), req("demo-y", "DEMO-SANDBOX", night)],
                partitions(&[(
                    "DEMO-SANDBOX",
                    Some(4),
                    vec![rec(OTHER, "demo-1", "DEMO-SANDBOX", night), rec(OTHER, "demo-2", "DEMO-SANDBOX", night)],
                )]),
            ),
            vec![
                "granted",
                "cost_center_cap: 3 of 3 windows of DEMO-SANDBOX open at 20:00 on 2026-11-25 America/Bogota \
                 (max_concurrent_namespaces=3, 2 of them on other clusters)",
            ],
        ),
        (
            "the same namespace name on another cluster is another namespace",
            Case::new(
                vec![req("demo-1", "DEMO-SANDBOX", night)],
                partitions(&[(
                    "DEMO-SANDBOX",
                    Some(1),
                    vec![
                        rec(OTHER, "demo-1", "DEMO-SANDBOX", night),
                        rec("eks-c", "demo-1", "DEMO-SANDBOX", night),
                        rec("eks-d", "demo-1", "DEMO-SANDBOX", night),
                    ],
                )]),
            ),
            vec!["cost_center_cap: 3 of 3 windows of DEMO-SANDBOX"],
        ),
        (
            "the other clusters' windows never count towards this cluster's cap",
            Case {
                cluster_cap: 1,
                ..Case::new(
                    vec![req("dev-x", "IT-DEVELOPMENT", night)],
                    partitions(&[(
                        "IT-DEVELOPMENT",
                        Some(9),
                        others("dev", "IT-DEVELOPMENT", 5, night),
                    )]),
                )
            },
            vec!["granted"],
        ),
        (
            "this cluster's own windows count from its Namespaces, not from its records",
            Case {
                held: vec![window("demo-9", "DEMO-SANDBOX", night)],
                ..Case::new(
                    vec![req("demo-x", "DEMO-SANDBOX", night), req("demo-y", "DEMO-SANDBOX", night)],
                    partitions(&[(
                        "DEMO-SANDBOX",
                        Some(2),
                        // Two records of this cluster whose namespaces never came up, and one of another cluster.
                        vec![
                            rec(ME, "demo-7", "DEMO-SANDBOX", night),
                            rec(ME, "demo-8", "DEMO-SANDBOX", night),
                            rec(OTHER, "demo-1", "DEMO-SANDBOX", night),
                        ],
                    )]),
                )
            },
            vec!["granted", "cost_center_cap: 3 of 3 windows of DEMO-SANDBOX"],
        ),
        (
            "an expired window of another cluster stops counting at its until",
            Case::new(
                vec![req("demo-x", "DEMO-SANDBOX", night)],
                partitions(&[(
                    "DEMO-SANDBOX",
                    Some(3),
                    others("demo", "DEMO-SANDBOX", 3, bogota(20, 0)),
                )]),
            ),
            vec!["granted"],
        ),
        (
            "a window that ends before the other clusters' windows start is not counted against them",
            Case {
                at: bogota(10, 0),
                ..Case::new(
                    vec![req("demo-x", "DEMO-SANDBOX", bogota(17, 0))],
                    partitions(&[(
                        "DEMO-SANDBOX",
                        Some(3),
                        others("demo", "DEMO-SANDBOX", 3, night),
                    )]),
                )
            },
            vec!["granted"],
        ),
        (
            "a namespace asking again is not counted twice",
            Case {
                held: vec![window("demo-x", "DEMO-SANDBOX", bogota(21, 0))],
                ..Case::new(
                    vec![req("demo-x", "DEMO-SANDBOX", night)],
                    partitions(&[(
                        "DEMO-SANDBOX",
                        Some(3),
                        vec![
                            rec(ME, "demo-x", "DEMO-SANDBOX", bogota(21, 0)),
                            rec(OTHER, "demo-1", "DEMO-SANDBOX", night),
                            rec(OTHER, "demo-2", "DEMO-SANDBOX", night),
                        ],
                    )]),
                )
            },
            vec!["granted"],
        ),
        (
            "a cost center whose windows do not read is undecided; the others are decided",
            Case::new(
                vec![req("demo-x", "DEMO-SANDBOX", night), req("dev-x", "IT-DEVELOPMENT", night)],
                BTreeMap::from([
                    ("DEMO-SANDBOX".to_string(), Err("item (DEMO-SANDBOX, eks-b#x): until: missing".to_string())),
                    ("IT-DEVELOPMENT".to_string(), Ok(Partition::default())),
                ]),
            ),
            vec![
                "undecided: the fleet's windows of this cost center do not read: item (DEMO-SANDBOX, eks-b#x): until: missing",
                "granted",
            ],
        ),
        (
            "all or nothing: one refused, the others withheld",
            Case {
                all_or_nothing: true,
                ..Case::new(
                    vec![
                        req("demo-x", "DEMO-SANDBOX", night),
                        req("demo-y", "DEMO-SANDBOX", night),
                        req("demo-z", "DEMO-SANDBOX", night),
                    ],
                    partitions(&[(
                        "DEMO-SANDBOX",
                        Some(1),
                        vec![rec(OTHER, "demo-1", "DEMO-SANDBOX", night)],
                    )]),
                )
            },
            vec![
                "withheld",
                "withheld",
                "cost_center_cap: 3 of 3 windows of DEMO-SANDBOX open at 20:00 on 2026-11-25 America/Bogota \
                 (max_concurrent_namespaces=3, 1 of them on other clusters)",
            ],
        ),
    ];
    for (what, case, want) in cases {
        let round = case.run();
        let got = summary(&round);
        assert_eq!(got.len(), want.len(), "{what}: {got:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(g.starts_with(w), "{what}:\n  got  {g}\n  want {w}");
        }
        assert!(round.deferred.is_empty(), "{what}");
        if case.all_or_nothing {
            assert!(round.commit.is_empty(), "{what}: nothing recorded");
        }
    }
}

#[test]
fn a_grant_records_its_window_and_bumps_the_version_it_read() {
    let night = bogota(23, 0);
    let case = Case::new(
        vec![
            req("demo-x", "DEMO-SANDBOX", night),
            req("dev-x", "IT-DEVELOPMENT", night),
        ],
        partitions(&[("DEMO-SANDBOX", Some(4), vec![]), ("IT-DEVELOPMENT", None, vec![])]),
    );
    let round = case.run();
    assert_eq!(summary(&round), ["granted", "granted"]);
    assert_eq!(
        round.commit.versions,
        BTreeMap::from([
            ("DEMO-SANDBOX".to_string(), Some(4)),
            ("IT-DEVELOPMENT".to_string(), None)
        ])
    );
    let put = &round.commit.puts[0];
    assert_eq!(
        (
            put.cluster.as_str(),
            put.namespace.as_str(),
            put.until,
            put.holds_slot_from
        ),
        (ME, "demo-x", night, bogota(20, 0))
    );
    assert_eq!(
        (put.run_id.as_str(), put.requested_by.as_str(), put.granted_at),
        ("run-1", "ana", bogota(20, 0))
    );
    assert!(round.commit.deletes.is_empty());
    assert!(matches!(
        round.decided[0].1,
        Decision::Granted(Grant {
            holds_slot_from: Some(_)
        })
    ));
}

#[test]
fn what_a_grant_replaces() {
    let night = bogota(23, 0);
    // (what, case, puts, deletes)
    let cases: Vec<(&str, Case, Vec<&str>, Vec<&str>)> = vec![
        (
            "a window inside business hours holds no slot: nothing recorded",
            Case {
                at: bogota(10, 0),
                ..Case::new(
                    vec![req("demo-x", "DEMO-SANDBOX", bogota(12, 0))],
                    partitions(&[("DEMO-SANDBOX", None, vec![])]),
                )
            },
            vec![],
            vec![],
        ),
        (
            "a namespace asking again until business hours end drops its recorded evening",
            Case {
                at: bogota(10, 0),
                held: vec![window("demo-x", "DEMO-SANDBOX", night)],
                ..Case::new(
                    vec![req("demo-x", "DEMO-SANDBOX", bogota(12, 0))],
                    partitions(&[("DEMO-SANDBOX", Some(1), vec![rec(ME, "demo-x", "DEMO-SANDBOX", night)])]),
                )
            },
            vec![],
            vec!["(DEMO-SANDBOX, eks-a#demo-x)"],
        ),
        (
            "asking again in the same cost center overwrites the record",
            Case {
                held: vec![window("demo-x", "DEMO-SANDBOX", bogota(21, 0))],
                ..Case::new(
                    vec![req("demo-x", "DEMO-SANDBOX", night)],
                    partitions(&[(
                        "DEMO-SANDBOX",
                        Some(1),
                        vec![rec(ME, "demo-x", "DEMO-SANDBOX", bogota(21, 0))],
                    )]),
                )
            },
            vec!["(DEMO-SANDBOX, eks-a#demo-x)"],
            vec![],
        ),
        (
            "a namespace that moved to another cost center leaves the old one's partition",
            Case {
                held: vec![window("qa-x", "QA-TESTING", bogota(21, 0))],
                ..Case::new(
                    vec![req("qa-x", "DEVOPS-INFRA", night)],
                    partitions(&[("DEVOPS-INFRA", None, vec![])]),
                )
            },
            vec!["(DEVOPS-INFRA, eks-a#qa-x)"],
            vec!["(QA-TESTING, eks-a#qa-x)"],
        ),
        (
            "a record of this cluster left by a dead run for the same namespace elsewhere is replaced",
            Case::new(
                vec![req("qa-x", "DEVOPS-INFRA", night), req("qa-y", "QA-TESTING", night)],
                partitions(&[
                    ("DEVOPS-INFRA", None, vec![]),
                    (
                        "QA-TESTING",
                        Some(2),
                        vec![
                            rec(ME, "qa-x", "QA-TESTING", night),
                            rec(OTHER, "qa-x", "QA-TESTING", night),
                        ],
                    ),
                ]),
            ),
            vec!["(DEVOPS-INFRA, eks-a#qa-x)", "(QA-TESTING, eks-a#qa-y)"],
            vec!["(QA-TESTING, eks-a#qa-x)"],
        ),
        (
            "a held window whose partition was read and holds no record needs no delete",
            Case {
                held: vec![window("demo-x", "DEMO-SANDBOX", bogota(21, 0))],
                at: bogota(10, 0),
                ..Case::new(
                    vec![req("demo-x", "DEMO-SANDBOX", bogota(12, 0))],
                    partitions(&[("DEMO-SANDBOX", None, vec![])]),
                )
            },
            vec![],
            vec![],
        ),
    ];
    for (what, case, puts, deletes) in cases {
        let round = case.run();
        assert!(
            summary(&round).iter().all(|d| d == "granted"),
            "{what}: {:?}",
            summary(&round)
        );
        assert_eq!(keys(&round.commit), (to_strings(&puts), to_strings(&deletes)), "{what}");
        assert_eq!(
            round.commit.versions.keys().cloned().collect::<Vec<_>>(),
            round
                .commit
                .puts
                .iter()
                .map(|p| p.cost_center.clone())
                .collect::<Vec<_>>(),
            "{what}: a version bump for each cost center with a window recorded, no other"
        );
    }
}

fn to_strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn writes_beyond_one_transaction_wait_for_the_next_round() {
    let night = bogota(23, 0);
    let requests: Vec<_> = (0..120).map(|i| req(&format!("x-{i:03}"), "BIG", night)).collect();
    let mut case = Case::new(requests, partitions(&[("BIG", Some(1), vec![])]));
    case.cluster_cap = 1000;
    let round = case.run();
    // One version item and 99 windows.
    assert_eq!(round.commit.items(), MAX_TRANSACTION_ITEMS);
    assert_eq!(round.decided.len(), 99);
    assert_eq!(round.deferred, (99..120).collect::<Vec<_>>());
    // All or nothing cannot be split: `store::grant` refuses it (exit 2).
    case.all_or_nothing = true;
    assert!(!case.run().deferred.is_empty());
}

#[test]
fn reconcile_releases_what_no_namespace_backs_and_records_what_is_missing() {
    let night = bogota(23, 0);
    let listed = |cluster: &str, ns: &str, cc: &str, until| Listed {
        key: WindowKey::of(cc, cluster, ns),
        record: Ok(rec(cluster, ns, cc, until)),
    };
    let bad = Listed {
        key: WindowKey::of("QA-TESTING", ME, "qa-bad"),
        record: Err("until: missing".into()),
    };
    let l = vec![
        listed(ME, "dev-up", "IT-DEVELOPMENT", night),            // backed
        listed(ME, "dev-never-up", "IT-DEVELOPMENT", night),      // orphan: release
        listed(ME, "qa-moved", "QA-TESTING", night),              // backed under another cc: release
        listed(ME, "dev-old", "IT-DEVELOPMENT", bogota(19, 0)),   // expired: the TTL's
        listed(ME, "dev-short", "IT-DEVELOPMENT", bogota(21, 0)), // recorded shorter than open
        listed(ME, "dev-long", "IT-DEVELOPMENT", bogota(23, 30)), // recorded longer than open
        listed(OTHER, "dev-never-up", "IT-DEVELOPMENT", night),   // another cluster's
        bad,
    ];
    let open = vec![
        window("dev-up", "IT-DEVELOPMENT", night),
        window("qa-moved", "DEVOPS-INFRA", night),
        window("dev-short", "IT-DEVELOPMENT", night),
        window("dev-long", "IT-DEVELOPMENT", night),
        window("dev-pre-upgrade", "IT-DEVELOPMENT", night),
        window("dev-gone", "IT-DEVELOPMENT", bogota(19, 30)), // closed already
    ];
    let r = reconcile(ME, &l, &open, &hours(), bogota(20, 0), "run-2").unwrap();
    assert_eq!(
        r.release.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        [
            "(IT-DEVELOPMENT, eks-a#dev-never-up)",
            "(QA-TESTING, eks-a#qa-bad)",
            "(QA-TESTING, eks-a#qa-moved)"
        ]
    );
    let recorded: Vec<(String, DateTime<Utc>, String, String)> = r
        .record
        .iter()
        .map(|w| (w.key().to_string(), w.until, w.requested_by.clone(), w.run_id.clone()))
        .collect();
    let want = |key: &str, by: &str, run: &str| (key.to_string(), night, by.to_string(), run.to_string());
    assert_eq!(
        recorded,
        [
            want("(IT-DEVELOPMENT, eks-a#dev-long)", "bob", "old-run"),
            want("(IT-DEVELOPMENT, eks-a#dev-pre-upgrade)", "unknown", "run-2"),
            want("(IT-DEVELOPMENT, eks-a#dev-short)", "bob", "old-run"),
            want("(DEVOPS-INFRA, eks-a#qa-moved)", "unknown", "run-2"),
        ]
    );
    assert!(r.record.iter().all(|w| w.holds_slot_from == bogota(20, 0)));
    // At 10:00 a window until 12:00 holds no slot: nothing to record, and its record goes.
    let day = vec![listed(ME, "dev-day", "IT-DEVELOPMENT", bogota(12, 0))];
    let r = reconcile(
        ME,
        &day,
        &[window("dev-day", "IT-DEVELOPMENT", bogota(12, 0))],
        &hours(),
        bogota(10, 0),
        "r",
    )
    .unwrap();
    assert_eq!(r.record, []);
    assert_eq!(r.release, [WindowKey::of("IT-DEVELOPMENT", ME, "dev-day")]);
}
