//! The report's interval arithmetic, pure: active hours, hours down and savings.

use super::*;

const H: f64 = 3600.0;
// 2026-W10 in Bogota (UTC-5): Mon 2026-03-02 05:00 UTC to Mon 2026-03-09 05:00 UTC.
const START: f64 = 1_772_427_600.0;
const END: f64 = START + 7.0 * 24.0 * H;

fn t(ns: &str, at: f64, activates: bool) -> Transition {
    Transition {
        namespace: ns.into(),
        cost_center: "CC".into(),
        at,
        activates,
        scaled_down: Vec::new(),
        requests_known: true,
    }
}

fn hours(usage: &[Usage], ns: &str) -> f64 {
    usage
        .iter()
        .filter(|u| u.namespace == ns)
        .map(|u| u.seconds)
        .sum::<f64>()
        / H
}

#[test]
fn week_bounds_are_local_mondays() {
    let (s, e) = iso_week_bounds("2026-W10", chrono_tz::America::Bogota).unwrap();
    assert_eq!(s.to_rfc3339(), "2026-03-02T05:00:00+00:00");
    assert_eq!(e.timestamp() as f64, END);
    assert_eq!(s.timestamp() as f64, START);
    // ISO week 1 of 2026 starts in 2025.
    let (s, _) = iso_week_bounds("2026-W01", chrono_tz::UTC).unwrap();
    assert_eq!(s.to_rfc3339(), "2025-12-29T00:00:00+00:00");
    assert!(iso_week_bounds("2020-W53", chrono_tz::UTC).is_ok());
    for bad in ["2026-W54", "2025-W53", "2026-10", "2026-W1", "W10", "2026-Wxx", ""] {
        assert!(iso_week_bounds(bad, chrono_tz::UTC).is_err(), "{bad}");
    }
    // A zone with DST: the week is 167 hours when it contains the spring change.
    let (s, e) = iso_week_bounds("2026-W10", chrono_tz::America::New_York).unwrap();
    assert_eq!((e - s).num_hours(), 167);
}

#[test]
fn a_day_and_a_night_across_midnight() {
    let tr = [
        t("dev-a", START + 8.0 * H, true),
        t("dev-a", START + 18.0 * H, false),
        // Tuesday 20:00 to Wednesday 02:30.
        t("dev-a", START + 44.0 * H, true),
        t("dev-a", START + 50.5 * H, false),
    ];
    assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 16.5);
}

#[test]
fn active_before_the_week_counts_from_its_start() {
    let tr = [t("dev-a", START - 30.0 * H, true), t("dev-a", START + 2.0 * H, false)];
    assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 2.0);
}

#[test]
fn still_active_at_the_end_counts_to_the_end() {
    let tr = [t("dev-a", END - 3.0 * H, true), t("dev-a", END + 5.0 * H, false)];
    assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 3.0);
    // Active all week, with no record inside it.
    let tr = [t("dev-b", START - 100.0 * H, true)];
    assert_eq!(hours(&active_seconds(&tr, START, END), "dev-b"), 168.0);
}

#[test]
fn the_current_week_stops_at_now() {
    let tr = [t("dev-a", START + H, true)];
    let now = START + 10.0 * H;
    assert_eq!(hours(&active_seconds(&tr, START, now), "dev-a"), 9.0);
}

#[test]
fn repeated_ups_keep_the_first_start() {
    let tr = [
        t("dev-a", START + H, true),
        t("dev-a", START + 2.0 * H, true),
        t("dev-a", START + 4.0 * H, false),
    ];
    assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 3.0);
}

#[test]
fn a_down_without_a_prior_up_is_ignored() {
    let tr = [
        t("dev-a", START + H, false),
        t("dev-a", START + 2.0 * H, false),
        t("dev-a", START + 5.0 * H, true),
        t("dev-a", START + 6.0 * H, false),
    ];
    assert_eq!(hours(&active_seconds(&tr, START, END), "dev-a"), 1.0);
}

#[test]
fn down_before_the_week_means_inactive_at_its_start() {
    let tr = [t("dev-a", START - 10.0 * H, true), t("dev-a", START - 5.0 * H, false)];
    assert!(active_seconds(&tr, START, END).is_empty());
}

#[test]
fn unordered_input_and_cost_centers() {
    let mut tr = vec![
        t("dev-a", START + 4.0 * H, false),
        t("dev-a", START + H, true),
        t("qa-b", START + H, true),
        t("qa-b", START + 2.0 * H, false),
    ];
    tr[2].cost_center = "QA".into();
    tr[3].cost_center = "QA".into();
    let cc = table::week_table(&tr, START, END).cost_centers;
    assert_eq!(cc["CC"].figures.active_seconds / H, 3.0);
    assert_eq!(cc["QA"].figures.active_seconds / H, 1.0);
}

// ---- Hours down and savings -------------------------------------------------------------------

const MI: u64 = 1 << 20;
/// The plan test's namespace: api 3 × (800m, 512Mi) and db 2 × (1 vCPU, 2Gi) = 4.4 vCPU, 5.5 GiB.
const NIGHT: [(&str, u64, u64, u64); 2] = [
    ("Deployment/api", 3, 800, 512 * MI),
    ("StatefulSet/db", 2, 1000, 2048 * MI),
];

fn down(ns: &str, cc: &str, at: f64, workloads: &[(&str, u64, u64, u64)]) -> Transition {
    Transition {
        namespace: ns.into(),
        cost_center: cc.into(),
        at,
        activates: false,
        scaled_down: workloads
            .iter()
            .map(|(w, replicas, cpu, memory)| ScaledDown {
                workload: w.to_string(),
                replicas: *replicas,
                per_replica: Requested {
                    cpu_millicores: *cpu,
                    memory_bytes: *memory,
                },
            })
            .collect(),
        requests_known: true,
    }
}

fn up(ns: &str, cc: &str, at: f64) -> Transition {
    Transition {
        activates: true,
        ..down(ns, cc, at, &[])
    }
}

/// A deactivation recorded before request figures were.
fn old_down(ns: &str, cc: &str, at: f64) -> Transition {
    Transition {
        requests_known: false,
        ..down(ns, cc, at, &[])
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn only_row(tr: &[Transition], start: f64, end: f64) -> table::Figures {
    let t = table::week_table(tr, start, end);
    assert_eq!(t.rows.len(), 1, "{:?}", t.rows);
    t.rows[0].figures
}

#[test]
fn a_night_across_midnight_saves_requests_times_hours() {
    // Tuesday 18:00 to Wednesday 08:00: 14 h × 4.4 vCPU, × 5.5 GiB.
    let tr = [
        down("qa-a", "QA", START + 42.0 * H, &NIGHT),
        up("qa-a", "QA", START + 56.0 * H),
    ];
    let f = only_row(&tr, START, END);
    assert_eq!(f.down.seconds, 14.0 * H);
    assert_eq!(f.active_seconds, (168.0 - 56.0) * H, "active from the up to the end");
    assert_eq!(f.coverage(), table::Coverage::Known);
    assert_eq!(f.vcpu_hours(), Some(61.6));
    assert_eq!(f.gib_hours(), Some(77.0));
}

#[test]
fn nights_across_both_week_boundaries_are_clipped() {
    let tr = [
        // Sunday 18:00 before the week to Monday 08:00: 8 h inside.
        down("qa-a", "QA", START - 6.0 * H, &NIGHT),
        up("qa-a", "QA", START + 8.0 * H),
        // Sunday 18:00 to the next Monday 08:00: 6 h inside.
        down("qa-a", "QA", END - 6.0 * H, &NIGHT),
        up("qa-a", "QA", END + 8.0 * H),
    ];
    let f = only_row(&tr, START, END);
    assert_eq!(f.down.seconds, 14.0 * H);
    assert!(close(f.vcpu_hours().unwrap(), 4.4 * 14.0));
    assert!(close(f.gib_hours().unwrap(), 5.5 * 14.0));
    assert_eq!(f.active_seconds, (168.0 - 14.0) * H);
}

#[test]
fn a_working_week_of_nights_and_a_weekend() {
    // Down since the Friday before; up 08:00-18:00 Monday to Friday; the weekend runs past the
    // end of the week.
    let mut tr = vec![down("dev-a", "IT", START - 54.0 * H, &NIGHT)];
    for day in 0..5 {
        let midnight = START + day as f64 * 24.0 * H;
        tr.push(up("dev-a", "IT", midnight + 8.0 * H));
        tr.push(down("dev-a", "IT", midnight + 18.0 * H, &NIGHT));
    }
    tr.push(up("dev-a", "IT", END + 8.0 * H));
    let f = only_row(&tr, START, END);
    // Monday 00:00-08:00, four nights of 14 h, Friday 18:00 to the end (54 h).
    assert_eq!(f.down.seconds, (8.0 + 4.0 * 14.0 + 54.0) * H);
    assert_eq!(f.active_seconds, 50.0 * H);
    assert_eq!(f.active_seconds + f.down.seconds, 168.0 * H);
    assert!(close(f.vcpu_hours().unwrap(), 4.4 * 118.0));
    assert!(close(f.gib_hours().unwrap(), 5.5 * 118.0));
}

#[test]
fn a_workload_changed_while_down_saves_until_the_up() {
    let tr = [
        down("dev-a", "IT", START + 18.0 * H, &NIGHT),
        // Someone scaled api back to 2 by hand; the next run took it down again at 20 h: api's
        // 3 replicas saved 2 h, its 2 replicas save from then on.
        down("dev-a", "IT", START + 20.0 * H, &[("Deployment/api", 2, 800, 512 * MI)]),
        // The up restores whatever it restores (maybe nothing for api): savings end here.
        up("dev-a", "IT", START + 32.0 * H),
    ];
    let f = only_row(&tr, START, END);
    assert_eq!(
        f.down.seconds,
        14.0 * H,
        "the second down does not restart the hours down"
    );
    let api = 0.8 * (3.0 * 2.0 + 2.0 * 12.0);
    let db = 2.0 * 14.0;
    assert!(close(f.vcpu_hours().unwrap(), api + db), "{:?}", f.vcpu_hours());
    let api_gib = 0.5 * (3.0 * 2.0 + 2.0 * 12.0);
    let db_gib = 2.0 * 2.0 * 14.0;
    assert!(close(f.gib_hours().unwrap(), api_gib + db_gib));
}

#[test]
fn a_namespace_never_restored_counts_to_the_end_of_the_range() {
    let tr = [down("dev-a", "IT", START + 10.0 * H, &NIGHT)];
    let f = only_row(&tr, START, END);
    assert_eq!(f.down.seconds, 158.0 * H);
    assert!(close(f.vcpu_hours().unwrap(), 4.4 * 158.0));
    // The current week: the range ends now.
    let f = only_row(&tr, START, START + 20.0 * H);
    assert_eq!(f.down.seconds, 10.0 * H);
    assert!(close(f.vcpu_hours().unwrap(), 44.0));
    // Down since long before the week, no record inside it: the whole week.
    let tr = [down("dev-b", "IT", START - 500.0 * H, &NIGHT)];
    assert_eq!(only_row(&tr, START, END).down.seconds, 168.0 * H);
}

#[test]
fn an_up_without_a_down_and_a_repeated_down_change_nothing_twice() {
    let tr = [
        up("dev-a", "IT", START + H),
        down("dev-a", "IT", START + 2.0 * H, &[]),
        // Already down: the hours keep the first start and its cost center.
        down("dev-a", "OTHER", START + 3.0 * H, &[]),
        up("dev-a", "IT", START + 5.0 * H),
    ];
    let t = table::week_table(&tr, START, END);
    assert_eq!(t.total.down.seconds, 3.0 * H);
    assert_eq!(t.cost_centers["IT"].figures.down.seconds, 3.0 * H);
    assert!(!t.cost_centers.contains_key("OTHER"), "{:?}", t.cost_centers);
    // Freed nothing (only CronJobs, say): known zero, not unknown.
    assert_eq!(t.total.coverage(), table::Coverage::Known);
    assert_eq!(t.total.vcpu_hours(), Some(0.0));
}

#[test]
fn records_without_request_figures_give_hours_and_unknown_savings() {
    let tr = [
        old_down("dev-a", "IT", START + 18.0 * H),
        up("dev-a", "IT", START + 32.0 * H),
    ];
    let f = only_row(&tr, START, END);
    assert_eq!(f.down.seconds, 14.0 * H);
    assert_eq!(f.down.unknown_seconds, 14.0 * H);
    assert_eq!(f.coverage(), table::Coverage::Unknown);
    assert_eq!((f.vcpu_hours(), f.gib_hours()), (None, None));
    assert_eq!(f.saved(&crate::config::Prices::DEFAULT), None);

    // One old night and one new: a lower bound, marked partial.
    let mut tr = tr.to_vec();
    tr.push(down("dev-a", "IT", START + 42.0 * H, &NIGHT));
    tr.push(up("dev-a", "IT", START + 56.0 * H));
    let f = only_row(&tr, START, END);
    assert_eq!(f.coverage(), table::Coverage::Partial);
    assert_eq!(f.vcpu_hours(), Some(61.6));
}

#[test]
fn prices_turn_request_hours_into_money() {
    let tr = [
        down("qa-a", "QA", START + 42.0 * H, &NIGHT),
        up("qa-a", "QA", START + 56.0 * H),
    ];
    let f = only_row(&tr, START, END);
    let fargate = crate::config::Prices::DEFAULT;
    assert!(close(f.saved(&fargate).unwrap(), 61.6 * 0.04048 + 77.0 * 0.004445));
    let custom = crate::config::Prices {
        per_vcpu_hour: 0.1,
        per_gib_hour: 0.0,
    };
    assert!(close(f.saved(&custom).unwrap(), 6.16));
}

#[test]
fn totals_are_the_sums_of_the_rows() {
    let tr = [
        down("qa-a", "QA", START + 42.0 * H, &NIGHT),
        up("qa-a", "QA", START + 56.0 * H),
        up("qa-b", "QA", START + 8.0 * H),
        down("qa-b", "QA", START + 18.0 * H, &[("Deployment/web", 1, 250, 128 * MI)]),
        old_down("dev-a", "IT", START + 1.0 * H),
        down(
            "dev-c",
            "IT",
            START + 100.0 * H,
            &[("StatefulSet/pg", 1, 2000, 4096 * MI)],
        ),
        up("dev-c", "IT", START + 110.5 * H),
        // A namespace charged to two cost centers: two rows.
        up("ops", "IT", START + 1.0 * H),
        down("ops", "OPS", START + 30.0 * H, &[("Deployment/x", 4, 100, 64 * MI)]),
    ];
    let t = table::week_table(&tr, START, END);
    assert_eq!(t.rows.len(), 6, "{:?}", t.rows);
    let mut sum = table::Figures::default();
    for r in &t.rows {
        sum += r.figures;
    }
    assert_eq!(t.total, sum);
    for (cc, c) in &t.cost_centers {
        let mut of_cc = table::Figures::default();
        let mut n = 0;
        for r in t.rows.iter().filter(|r| &r.cost_center == cc) {
            of_cc += r.figures;
            n += 1;
        }
        assert_eq!(c.figures, of_cc, "{cc}");
        assert_eq!(c.namespaces, n, "{cc}");
    }
    let prices = crate::config::Prices::DEFAULT;
    let known: f64 = t.rows.iter().filter_map(|r| r.figures.saved(&prices)).sum();
    assert!(close(t.total.saved(&prices).unwrap(), known));
    // dev-a's old record makes IT and the total partial; QA and OPS are known.
    assert_eq!(t.cost_centers["IT"].figures.coverage(), table::Coverage::Partial);
    assert_eq!(t.cost_centers["QA"].figures.coverage(), table::Coverage::Known);
    assert_eq!(t.total.coverage(), table::Coverage::Partial);
    // Hand-checked: qa-a 14 h × 4.4 + qa-b 150 h × 0.25 + dev-c 10.5 h × 2 + ops 138 h × 0.4.
    assert!(close(t.total.vcpu_hours().unwrap(), 61.6 + 37.5 + 21.0 + 55.2));
}

/// Which records are transitions, and what a deactivation among them scaled down: `completed`
/// ones, `interrupted` ones whose objects were found changed (only those), never `in_progress`,
/// and never an object left alone (refused, unreadable).
#[test]
fn which_records_count_and_what_they_scaled_down() {
    use crate::audit::{AuditRecord, AuditStatus, ResourceChange};
    let reached = |name: &str, yes: bool| ResourceChange {
        found: Some(if yes { "0" } else { "3" }.into()),
        reached: Some(yes),
        ..ResourceChange::changed("Deployment", name, "3", "0", Some((100, 1)))
    };
    let refused = ResourceChange::left_alone("Deployment", "frozen", "3", "0", "denied by policy");
    // (case, status, resources, the workloads it scaled down: None = not a transition)
    type Case<'a> = (&'a str, AuditStatus, Vec<ResourceChange>, Option<Vec<&'a str>>);
    let cases: [Case; 6] = [
        (
            "completed",
            AuditStatus::Completed,
            vec![
                ResourceChange::changed("Deployment", "api", "3", "0", Some((100, 1))),
                refused.clone(),
            ],
            Some(vec!["Deployment/api"]),
        ),
        (
            "interrupted, partly found in place",
            AuditStatus::Interrupted,
            vec![reached("api", true), reached("web", false)],
            Some(vec!["Deployment/api"]),
        ),
        (
            "interrupted, nothing found in place",
            AuditStatus::Interrupted,
            vec![reached("api", false)],
            None,
        ),
        (
            "in_progress",
            AuditStatus::InProgress,
            vec![ResourceChange::changed("Deployment", "api", "3", "0", Some((100, 1)))],
            None,
        ),
        ("rolled back", AuditStatus::RolledBack, vec![], None),
        ("failed", AuditStatus::Failed, vec![], None),
    ];
    for (case, status, resources, want) in cases {
        let record = AuditRecord {
            namespace_name: "dev-a".into(),
            timestamp_start: START,
            timestamp_end: START + 1.0,
            duration_ms: 1000,
            operation_type: OperationType::AutoShutdownBusinessHours,
            cost_center: "CC".into(),
            cluster_name: "eks".into(),
            requested_by: "system".into(),
            status,
            run_id: "r".into(),
            resources,
            error: None,
            active_until: None,
            closed_by: None,
        };
        let got =
            transition(&record.to_item()).map(|t| t.scaled_down.iter().map(|s| s.workload.clone()).collect::<Vec<_>>());
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn the_fleet_table_keeps_each_clusters_namespaces_apart_and_sums_them() {
    use std::collections::BTreeMap;
    // The same namespace name on two clusters: two namespaces, one row each.
    let a = vec![
        up("dev-a", "IT", START + 8.0 * H),
        down("dev-a", "IT", START + 18.0 * H, &[("Deployment/web", 2, 500, 256 * MI)]),
    ];
    let b = vec![
        up("dev-a", "IT", START + 20.0 * H),
        down("dev-a", "IT", START + 22.0 * H, &NIGHT),
        down("qa-b", "QA", START + 1.0 * H, &[("Deployment/api", 1, 1000, 512 * MI)]),
    ];
    let by_cluster = BTreeMap::from([("eks-a".to_string(), a.clone()), ("eks-b".to_string(), b.clone())]);
    let fleet = table::fleet_table(&by_cluster, START, END);
    assert_eq!(fleet.clusters.keys().collect::<Vec<_>>(), ["eks-a", "eks-b"]);
    assert_eq!(fleet.clusters["eks-a"], table::week_table(&a, START, END));
    assert_eq!(fleet.clusters["eks-b"], table::week_table(&b, START, END));
    assert_eq!(fleet.clusters["eks-a"].rows[0].figures.active_seconds, 10.0 * H);
    assert_eq!(fleet.clusters["eks-b"].rows[0].figures.active_seconds, 2.0 * H);
    // Cost centers across the fleet: IT has a row on each cluster.
    assert_eq!(fleet.cost_centers["IT"].namespaces, 2);
    assert_eq!(fleet.cost_centers["IT"].figures.active_seconds, 12.0 * H);
    assert_eq!(fleet.cost_centers["QA"].namespaces, 1);
    let mut total = table::Figures::default();
    for t in fleet.clusters.values() {
        total += t.total;
    }
    assert_eq!(fleet.total, total);
    let mut by_cc = table::Figures::default();
    for c in fleet.cost_centers.values() {
        by_cc += c.figures;
    }
    assert!(close(fleet.total.down.seconds, by_cc.down.seconds));
    assert!(close(fleet.total.vcpu_hours().unwrap(), by_cc.vcpu_hours().unwrap()));
}
