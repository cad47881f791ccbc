//! Many writers (tasks standing for clusters, each with its own name and its own Namespaces'
//! windows) race through seeded random rounds against one windows table: the clock moves
//! (windows expire), some windows end early (released), then every writer asks at once for a
//! few of its namespaces and may die right after its grant (its windows never come up; its next
//! round recovers them). Checked after every round:
//! - at every off-hours instant, no cost center has more windows open than its cap, fleet-wide
//!   (on the Namespaces, and in the table);
//! - no request was refused while a slot was free: within a round of concurrent asks, exactly
//!   min(new asks, free slots) new windows were granted, and every holder asking again was;
//! - after a recovery, each cluster's open records are exactly its open slot-holding windows.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use namespace_scheduler::fleet::{Decision, FleetWindows, GrantBatch, WindowRecord};
use namespace_scheduler::permissions::rules::first_non_business;
use namespace_scheduler::permissions::{CostCenter, ProposedWindow, RejectionRule, Window};

use super::{caps, dynamo, fleet_table, hours, records, wednesday_evening};

const WRITERS: usize = 4;
const NAMESPACES: usize = 6;
/// (cost center, cap): small caps, so that the writers contend.
const COST_CENTERS: [(&str, u32); 2] = [("CC-A", 2), ("CC-B", 3)];

fn cost_center_of(ns: usize) -> &'static str {
    COST_CENTERS[ns % COST_CENTERS.len()].0
}

fn permissions() -> BTreeMap<String, CostCenter> {
    COST_CENTERS
        .iter()
        .map(|(cc, cap)| {
            (
                cc.to_string(),
                CostCenter {
                    cost_center: cc.to_string(),
                    codigo: None,
                    is_authorized: true,
                    max_concurrent_namespaces: *cap,
                    authorized_namespaces: None,
                    allowed_clusters: None,
                    description: None,
                    created_at: None,
                    updated_at: None,
                },
            )
        })
        .collect()
}

/// One cluster: its windows as its Namespaces carry them (with whether the grant recorded it).
struct Writer {
    store: FleetWindows,
    windows: BTreeMap<String, (Window, bool)>,
    crashed: bool,
}

impl Writer {
    fn open(&self, t: DateTime<Utc>) -> Vec<Window> {
        self.windows
            .values()
            .map(|(w, _)| w)
            .filter(|w| w.open_at(t))
            .cloned()
            .collect()
    }
}

/// What a writer does in one round, drawn before the round starts.
struct Plan {
    asks: Vec<ProposedWindow>,
    dies: bool,
}

/// The race. Fails with the seed in the message; `FLEET_RACE_SEED` replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_never_exceed_a_cap_and_never_refuse_a_free_slot() {
    let seed: u64 = std::env::var("FLEET_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let rounds: usize = std::env::var("FLEET_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    eprintln!("fleet race: seed {seed} ({rounds} rounds; FLEET_RACE_SEED={seed} replays it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let h = dynamo().await;
    let table = fleet_table(&h).await;
    let hours = hours();
    let perms = permissions();
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|i| Writer {
            store: FleetWindows::new(h.client.clone(), &table, format!("eks-{i}")),
            windows: BTreeMap::new(),
            crashed: false,
        })
        .collect();
    // From a Wednesday morning: rounds cross business hours, evenings and nights.
    let mut t = wednesday_evening() - Duration::hours(12);
    // (asks, granted, refused for a cap, writers that died, recoveries): the race is not vacuous.
    let mut tally = [0usize; 5];
    for round in 0..rounds {
        // Phase A, one writer after the other: the clock moves, windows end early, the dead recover.
        t += Duration::minutes(rng.i64(5..=90));
        let ctx = |what: String| format!("seed {seed}, round {round}, at {t}: {what}");
        for w in &mut writers {
            w.windows.retain(|_, (win, _)| win.open_at(t));
            if w.crashed {
                tally[4] += 1;
                w.store.recover(&w.open(t), &hours, t, "race-recovery").await.unwrap();
                w.crashed = false;
            }
            if !w.windows.is_empty() && rng.u8(..100) < 25 {
                let ns = w.windows.keys().nth(rng.usize(..w.windows.len())).unwrap().clone();
                let (win, _) = w.windows.remove(&ns).unwrap();
                w.store.release(&[w.store.key(&win.cost_center, &ns)]).await.unwrap();
            }
        }
        // The first off-hours instant from now: where every slot-holding ask of this round is
        // counted, and (windows only close from here on) where the most windows are open.
        let f = first_non_business(&hours, t, t + Duration::days(30)).unwrap().unwrap();
        // What the fleet counts of each cluster is what its Namespaces hold (records of windows
        // that no longer reach an off-hours instant may go or stay: nothing counts them).
        let recorded = records(&h, &table).await;
        for w in &writers {
            let mut in_table: Vec<(String, String, DateTime<Utc>)> = recorded
                .iter()
                .filter(|r| r.cluster == w.store.cluster() && r.until > f)
                .map(|r| (r.namespace.clone(), r.cost_center.clone(), r.until))
                .collect();
            in_table.sort();
            let held: Vec<(String, String, DateTime<Utc>)> = w
                .windows
                .values()
                .filter(|(win, _)| win.open_at(f))
                .map(|(win, recorded)| {
                    assert!(
                        recorded,
                        "{}",
                        ctx(format!("{win:?} holds a slot but was granted as if it held none"))
                    );
                    (win.namespace.clone(), win.cost_center.clone(), win.until)
                })
                .collect();
            assert_eq!(in_table, held, "{}", ctx(format!("records of {}", w.store.cluster())));
        }

        let open_at_f = |writers: &[Writer], cc: &str| -> usize {
            writers
                .iter()
                .flat_map(|w| w.windows.values())
                .filter(|(win, _)| win.cost_center == cc && win.open_at(f))
                .count()
        };
        let free_before: BTreeMap<&str, usize> = COST_CENTERS
            .iter()
            .map(|(cc, cap)| (*cc, *cap as usize - open_at_f(&writers, cc)))
            .collect();

        // Phase B: every writer asks at once.
        let plans: Vec<Plan> = writers
            .iter()
            .map(|w| {
                let mut namespaces: Vec<usize> = (0..NAMESPACES).collect();
                rng.shuffle(&mut namespaces);
                let asks = namespaces[..rng.usize(0..=3)]
                    .iter()
                    .map(|&ns| {
                        let name = format!("ns-{ns}");
                        // A namespace holding a slot asks again for one too (a shorter ask could
                        // free its slot for another writer in the same round, in any order).
                        let holds = w.windows.get(&name).is_some_and(|(win, _)| win.open_at(f));
                        let min = if holds { (f - t).num_minutes() + 1 } else { 20 };
                        ProposedWindow {
                            namespace: name,
                            cost_center: cost_center_of(ns).into(),
                            label: None,
                            requested_by: format!("user-{}", rng.u8(..10)),
                            until: t + Duration::minutes(rng.i64(min..=min.max(20) + 600)),
                        }
                    })
                    .collect();
                Plan {
                    asks,
                    dies: rng.u8(..100) < 15,
                }
            })
            .collect();
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let tasks: Vec<_> = writers
            .iter()
            .zip(&plans)
            .map(|(w, plan)| {
                let (store, asks, own, perms, hours, barrier) = (
                    w.store.clone(),
                    plan.asks.clone(),
                    w.open(t),
                    perms.clone(),
                    hours.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    let caps = caps(store.cluster(), 1000);
                    let batch = GrantBatch {
                        requests: &asks,
                        permissions: &perms,
                        own_windows: &own,
                        hours: &hours,
                        at: t,
                        caps: &caps,
                        run_id: "race",
                        all_or_nothing: false,
                    };
                    barrier.wait().await;
                    store.grant(&batch).await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap().unwrap_or_else(|e| panic!("{}", ctx(e.to_string()))));
        }

        // Exactly min(new asks, free) new windows per cost center; every other ask granted.
        let mut new_asks: BTreeMap<&str, usize> = BTreeMap::new();
        let mut new_granted: BTreeMap<&str, usize> = BTreeMap::new();
        for ((w, plan), decisions) in writers.iter().zip(&plans).zip(&outcomes) {
            for (ask, decision) in plan.asks.iter().zip(decisions) {
                let cc = cost_center_of_name(&ask.cost_center);
                let needs_slot = first_non_business(&hours, t, ask.until).unwrap().is_some();
                let holds = w.windows.get(&ask.namespace).is_some_and(|(win, _)| win.open_at(f));
                tally[0] += 1;
                let ok = match decision {
                    Decision::Granted(_) => true,
                    Decision::Rejected(r) if r.rule == RejectionRule::CostCenterCap => false,
                    other => panic!("{}", ctx(format!("{}: {ask:?}: {other:?}", w.store.cluster()))),
                };
                tally[if ok { 1 } else { 2 }] += 1;
                if needs_slot && !holds {
                    *new_asks.entry(cc).or_default() += 1;
                    *new_granted.entry(cc).or_default() += usize::from(ok);
                } else {
                    assert!(
                        ok,
                        "{}",
                        ctx(format!("{ask:?} needs no new slot and was refused: {decision:?}"))
                    );
                }
            }
        }
        for (cc, _) in COST_CENTERS {
            let want = new_asks.get(cc).copied().unwrap_or(0).min(free_before[cc]);
            let got = new_granted.get(cc).copied().unwrap_or(0);
            assert_eq!(
                got,
                want,
                "{}",
                ctx(format!("{cc}: new windows granted ({free_before:?} free)"))
            );
        }

        // The grants take effect, unless their writer died first.
        for ((w, plan), decisions) in writers.iter_mut().zip(&plans).zip(outcomes) {
            if plan.dies {
                tally[3] += 1;
                w.crashed = true;
                continue;
            }
            for (ask, decision) in plan.asks.iter().zip(decisions) {
                if let Decision::Granted(g) = decision {
                    let win = Window {
                        namespace: ask.namespace.clone(),
                        cost_center: ask.cost_center.clone(),
                        until: ask.until,
                    };
                    w.windows
                        .insert(ask.namespace.clone(), (win, g.holds_slot_from.is_some()));
                }
            }
        }
        let recorded = records(&h, &table).await;
        for (cc, cap) in COST_CENTERS {
            let on_namespaces = open_at_f(&writers, cc);
            let in_table = recorded
                .iter()
                .filter(|r: &&WindowRecord| r.cost_center == cc && r.until > f)
                .count();
            assert!(
                on_namespaces <= cap as usize && in_table <= cap as usize,
                "{}",
                ctx(format!(
                    "{cc}: {on_namespaces} windows open at {f} on Namespaces, {in_table} in the table, cap {cap}"
                ))
            );
        }
    }
    eprintln!(
        "fleet race: seed {seed}: {} asks, {} granted, {} refused for a cap, {} writers died, {} recoveries",
        tally[0], tally[1], tally[2], tally[3], tally[4]
    );
    assert!(
        tally[2] > 0 || rounds < 8,
        "seed {seed}: no ask was ever refused: the caps were never contended"
    );
}

fn cost_center_of_name(name: &str) -> &'static str {
    COST_CENTERS
        .iter()
        .map(|(cc, _)| *cc)
        .find(|cc| *cc == name)
        .expect("a race cost center")
}
