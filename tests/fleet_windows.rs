//! The fleet's windows against DynamoDB Local (docs/fleet.md): a cost center's cap holds across
//! clusters that grant at the same instant, grants are recorded and released, a cluster recovers
//! the windows a dead run left, a hostile item fails its own cost center only, and an
//! unreachable table is a retryable error. Then a race of many writers through random
//! grant / expire / crash rounds, checked after every round.
//!
//! `FLEET_RACE_ROUNDS=N` lengthens the race (default 24 rounds); `FLEET_RACE_SEED=S` replays one.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use common::*;
use namespace_scheduler::config::Config;
use namespace_scheduler::fleet::{Decision, FleetWindows, GrantBatch, WindowRecord};
use namespace_scheduler::hours::BusinessHours;
use namespace_scheduler::permissions::{default_cost_centers, Caps, CostCenter, ProposedWindow, RejectionRule, Window};
use namespace_scheduler::Exit;

fn hours() -> BusinessHours {
    Config::from_vars([("POD_NAMESPACE", "task-scheduler")])
        .unwrap()
        .business
}

/// 20:00 in Bogotá (UTC-5) on the first Wednesday at least a week ahead that is a working day
/// (not a holiday): windows granted then are still in the future for DynamoDB Local's TTL
/// sweeper, and the morning before is business hours.
fn wednesday_evening() -> DateTime<Utc> {
    let hours = hours();
    let mut day = (Utc::now() + Duration::days(7)).date_naive();
    loop {
        let evening = Utc.from_utc_datetime(&day.and_hms_opt(20, 0, 0).unwrap()) + Duration::hours(5);
        if day.weekday() == chrono::Weekday::Wed && hours.is_business(evening - Duration::hours(10)).unwrap() {
            return evening;
        }
        day = day.succ_opt().unwrap();
    }
}

fn caps(cluster: &str, cap: u32) -> Caps {
    Caps {
        cluster: cap,
        max_window: Duration::hours(72),
        cluster_name: cluster.into(),
    }
}

fn req(namespace: &str, cost_center: &str, until: DateTime<Utc>) -> ProposedWindow {
    ProposedWindow {
        namespace: namespace.into(),
        cost_center: cost_center.into(),
        label: None,
        requested_by: "ana@example.com".into(),
        until,
    }
}

fn permissions() -> BTreeMap<String, CostCenter> {
    default_cost_centers(0)
        .into_iter()
        .map(|c| (c.cost_center.clone(), c))
        .collect()
}

async fn fleet_table(h: &DynamoHandle) -> String {
    let (_, permissions) = unique_tables(h).await;
    windows_table_for(&permissions)
}

/// One cluster's grant of `requests` at `at`, over its `own` windows.
async fn grant(
    store: &FleetWindows,
    requests: &[ProposedWindow],
    own: &[Window],
    at: DateTime<Utc>,
    all_or_nothing: bool,
) -> Vec<Decision> {
    let (perms, hours, caps) = (permissions(), hours(), caps(store.cluster(), 100));
    let batch = GrantBatch {
        requests,
        permissions: &perms,
        own_windows: own,
        hours: &hours,
        at,
        caps: &caps,
        run_id: "run-test",
        all_or_nothing,
    };
    store.grant(&batch).await.expect("grant")
}

fn granted(decisions: &[Decision]) -> usize {
    decisions.iter().filter(|d| matches!(d, Decision::Granted(_))).count()
}

/// The windows table's window items (not the version items), read back.
async fn records(h: &DynamoHandle, table: &str) -> Vec<WindowRecord> {
    scan_items(h, table)
        .await
        .iter()
        .filter(|i| i.get("window_key") != Some(&AttributeValue::S("#version".into())))
        .map(|i| WindowRecord::from_item(i).unwrap_or_else(|e| panic!("{e}: {i:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_asking_for_the_full_cap_at_once_get_exactly_the_cap() {
    let h = dynamo().await;
    let table = fleet_table(&h).await;
    let at = wednesday_evening();
    let until = at + Duration::hours(2);
    // DEMO-SANDBOX allows 3 windows at once, now across the fleet.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let asks = ["eks-a", "eks-b"].map(|cluster| {
        let (client, table, barrier) = (h.client.clone(), table.clone(), barrier.clone());
        tokio::spawn(async move {
            let store = FleetWindows::new(client, table, cluster);
            let requests: Vec<_> = (1..=3)
                .map(|i| req(&format!("demo-{i}"), "DEMO-SANDBOX", until))
                .collect();
            barrier.wait().await;
            grant(&store, &requests, &[], at, true).await
        })
    });
    let mut all = Vec::new();
    for ask in asks {
        all.push(ask.await.unwrap());
    }
    let won: Vec<usize> = all.iter().map(|d| granted(d)).collect();
    assert_eq!(won.iter().sum::<usize>(), 3, "exactly the cap, fleet-wide: {all:?}");
    // All or nothing (`up`): one cluster has its three, the other none, and is told why.
    assert!(won.contains(&3) && won.contains(&0), "{all:?}");
    let loser = all.iter().find(|d| granted(d) == 0).unwrap();
    let refused: Vec<String> = loser
        .iter()
        .map(|d| match d {
            Decision::Rejected(r) => r.to_string(),
            other => panic!("the loser reads again and is refused, not {other:?}"),
        })
        .collect();
    assert_eq!(refused.len(), 3);
    assert!(
        refused.iter().all(
            |r| r.starts_with("cost_center_cap: 3 of 3 windows of DEMO-SANDBOX open at 20:00")
                && r.contains("(max_concurrent_namespaces=3, 3 of them on other clusters)")
        ),
        "{refused:?}"
    );
    assert_eq!(records(&h, &table).await.len(), 3);

    // Once those windows ended, the slots are free again, for either cluster.
    let later = until + Duration::minutes(1);
    let store = FleetWindows::new(h.client.clone(), &table, "eks-b");
    let requests: Vec<_> = (4..=6)
        .map(|i| req(&format!("demo-{i}"), "DEMO-SANDBOX", later + Duration::hours(1)))
        .collect();
    assert_eq!(granted(&grant(&store, &requests, &[], later, true).await), 3);
}

#[tokio::test]
async fn a_grant_is_recorded_listed_and_released_by_its_own_cluster_only() {
    let h = dynamo().await;
    let table = fleet_table(&h).await;
    let at = wednesday_evening();
    let until = at + Duration::hours(3);
    let a = FleetWindows::new(h.client.clone(), &table, "eks-a");
    let b = FleetWindows::new(h.client.clone(), &table, "eks-b");
    let d = grant(
        &a,
        &[
            req("dev-api", "IT-DEVELOPMENT", until),
            req("qa-e2e", "QA-TESTING", until),
        ],
        &[],
        at,
        false,
    )
    .await;
    assert!(d.iter().all(Decision::recorded), "{d:?}");
    grant(&b, &[req("dev-api", "IT-DEVELOPMENT", until)], &[], at, false).await;

    let got = records(&h, &table).await;
    let mine: Vec<&WindowRecord> = got.iter().filter(|r| r.cluster == "eks-a").collect();
    assert_eq!(mine.len(), 2);
    let dev = mine.iter().find(|r| r.namespace == "dev-api").unwrap();
    assert_eq!(
        (dev.cost_center.as_str(), dev.until, dev.holds_slot_from, dev.granted_at),
        ("IT-DEVELOPMENT", until, at, at)
    );
    assert_eq!(
        (dev.requested_by.as_str(), dev.run_id.as_str()),
        ("ana@example.com", "run-test")
    );

    // Listing goes through the cluster GSI: only this cluster's windows.
    let listed = a.recorded().await.unwrap();
    let mut names: Vec<_> = listed.iter().map(|l| l.key.to_string()).collect();
    names.sort();
    assert_eq!(names, ["(IT-DEVELOPMENT, eks-a#dev-api)", "(QA-TESTING, eks-a#qa-e2e)"]);

    // A cluster never releases another's window.
    let err = a.release(&[b.key("IT-DEVELOPMENT", "dev-api")]).await.unwrap_err();
    assert_eq!(err.exit(), Exit::Usage, "{err}");
    assert!(err.to_string().contains("not one of its own"), "{err}");

    let released = a
        .release(&[
            a.key("IT-DEVELOPMENT", "dev-api"),
            a.key("IT-DEVELOPMENT", "dev-api"),
            a.key("QA-TESTING", "qa-e2e"),
        ])
        .await
        .unwrap();
    assert_eq!(released, 2);
    let left = records(&h, &table).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        (left[0].cluster.as_str(), left[0].namespace.as_str()),
        ("eks-b", "dev-api")
    );
}

#[tokio::test]
async fn a_window_whose_namespace_never_came_up_is_released_by_the_next_run_of_its_cluster() {
    let h = dynamo().await;
    let table = fleet_table(&h).await;
    let at = wednesday_evening();
    let until = at + Duration::hours(4);
    let a = FleetWindows::new(h.client.clone(), &table, "eks-a");
    // The run records three windows, brings up demo-1 only, and dies.
    let requests: Vec<_> = (1..=3)
        .map(|i| req(&format!("demo-{i}"), "DEMO-SANDBOX", until))
        .collect();
    assert_eq!(granted(&grant(&a, &requests, &[], at, false).await), 3);
    let up = vec![Window {
        namespace: "demo-1".into(),
        cost_center: "DEMO-SANDBOX".into(),
        until,
    }];
    // Meanwhile the other cluster is refused: the fleet counts the slots held for nothing.
    let b = FleetWindows::new(h.client.clone(), &table, "eks-b");
    let later = at + Duration::minutes(15);
    let refused = grant(&b, &[req("demo-9", "DEMO-SANDBOX", until)], &[], later, false).await;
    assert!(
        matches!(&refused[0], Decision::Rejected(r) if r.rule == RejectionRule::CostCenterCap),
        "{refused:?}"
    );

    // The next run of eks-a compares its recorded windows with its Namespaces.
    let r = a.recover(&up, &hours(), later, "run-2").await.unwrap();
    assert_eq!(
        r.release.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        ["(DEMO-SANDBOX, eks-a#demo-2)", "(DEMO-SANDBOX, eks-a#demo-3)"]
    );
    assert!(r.record.is_empty());
    let again = grant(&b, &[req("demo-9", "DEMO-SANDBOX", until)], &[], later, false).await;
    assert!(again[0].recorded(), "{again:?}");
}

#[tokio::test]
async fn a_window_open_before_the_fleet_table_is_recorded_so_the_others_count_it() {
    let h = dynamo().await;
    let table = fleet_table(&h).await;
    let at = wednesday_evening();
    let until = at + Duration::hours(2);
    let a = FleetWindows::new(h.client.clone(), &table, "eks-a");
    let open: Vec<Window> = (1..=3)
        .map(|i| Window {
            namespace: format!("demo-{i}"),
            cost_center: "DEMO-SANDBOX".into(),
            until,
        })
        .collect();
    let r = a.recover(&open, &hours(), at, "run-recovery").await.unwrap();
    assert_eq!(r.record.iter().map(WindowRecord::window).collect::<Vec<_>>(), open);
    assert!(r
        .record
        .iter()
        .all(|w| w.requested_by == "unknown" && w.run_id == "run-recovery"));
    assert_eq!(records(&h, &table).await.len(), 3);
    let b = FleetWindows::new(h.client.clone(), &table, "eks-b");
    let d = grant(&b, &[req("demo-9", "DEMO-SANDBOX", until)], &[], at, false).await;
    assert!(
        matches!(&d[0], Decision::Rejected(r) if r.rule == RejectionRule::CostCenterCap),
        "{d:?}"
    );
}

/// `--dry-run`: the same decisions as a grant, and nothing written.
#[tokio::test]
async fn a_preview_decides_like_a_grant_and_writes_nothing() {
    let h = dynamo().await;
    let table = fleet_table(&h).await;
    let at = wednesday_evening();
    let until = at + Duration::hours(2);
    let b = FleetWindows::new(h.client.clone(), &table, "eks-b");
    let two: Vec<_> = (1..=2)
        .map(|i| req(&format!("demo-{i}"), "DEMO-SANDBOX", until))
        .collect();
    assert_eq!(granted(&grant(&b, &two, &[], at, false).await), 2);

    let a = FleetWindows::new(h.client.clone(), &table, "eks-a");
    let asks: Vec<_> = (7..=8)
        .map(|i| req(&format!("demo-{i}"), "DEMO-SANDBOX", until))
        .collect();
    let (perms, hours, caps) = (permissions(), hours(), caps("eks-a", 100));
    for all_or_nothing in [false, true] {
        let batch = GrantBatch {
            requests: &asks,
            permissions: &perms,
            own_windows: &[],
            hours: &hours,
            at,
            caps: &caps,
            run_id: "run-dry",
            all_or_nothing,
        };
        let preview = a.preview(&batch).await.unwrap();
        let summary: Vec<&str> = preview
            .iter()
            .map(|d| match d {
                Decision::Granted(_) => "granted",
                Decision::Withheld(_) => "withheld",
                Decision::Rejected(r) => r.rule.as_str(),
                Decision::Undecided(_) => "undecided",
            })
            .collect();
        let want = if all_or_nothing {
            ["withheld", "cost_center_cap"]
        } else {
            ["granted", "cost_center_cap"]
        };
        assert_eq!(summary, want);
    }
    assert_eq!(records(&h, &table).await.len(), 2, "a preview writes nothing");
    assert_eq!(granted(&grant(&a, &asks, &[], at, false).await), 1);
}

#[tokio::test]
async fn a_hostile_item_fails_its_own_cost_center_only() {
    let h = dynamo().await;
    let table = fleet_table(&h).await;
    let at = wednesday_evening();
    let until = at + Duration::hours(2);
    let mut item = WindowRecord {
        cost_center: "DEMO-SANDBOX".into(),
        cluster: "eks-b".into(),
        namespace: "demo-1".into(),
        until,
        holds_slot_from: at,
        requested_by: "x".into(),
        run_id: "r".into(),
        granted_at: at,
    }
    .to_item();
    item.insert("until".into(), AttributeValue::S("soon".into()));
    h.client
        .put_item()
        .table_name(&table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    let a = FleetWindows::new(h.client.clone(), &table, "eks-a");
    let d = grant(
        &a,
        &[
            req("demo-x", "DEMO-SANDBOX", until),
            req("dev-x", "IT-DEVELOPMENT", until),
        ],
        &[],
        at,
        false,
    )
    .await;
    match &d[0] {
        Decision::Undecided(why) => assert!(
            why.contains("item (DEMO-SANDBOX, eks-b#demo-1): until: \"soon\" is not an RFC 3339 instant"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(d[1].recorded(), "another cost center is decided: {:?}", d[1]);
}

#[tokio::test]
async fn an_unreachable_table_is_a_retryable_error_and_grants_nothing() {
    let client = client_for(&closed_endpoint()).await;
    let store = FleetWindows::new(client, "no-such-windows", "eks-a");
    let at = wednesday_evening();
    let (perms, hours, caps) = (permissions(), hours(), caps("eks-a", 5));
    let requests = [req("dev-x", "IT-DEVELOPMENT", at + Duration::hours(1))];
    let batch = GrantBatch {
        requests: &requests,
        permissions: &perms,
        own_windows: &[],
        hours: &hours,
        at,
        caps: &caps,
        run_id: "run",
        all_or_nothing: true,
    };
    let err = store.grant(&batch).await.unwrap_err();
    assert_eq!(err.exit(), Exit::Failed, "{err}");
    assert!(err.to_string().contains("Query no-such-windows"), "{err}");
    // A missing table likewise.
    let h = dynamo().await;
    let store = FleetWindows::new(h.client.clone(), "no-such-windows", "eks-a");
    let err = store.grant(&batch).await.unwrap_err();
    assert_eq!(err.exit(), Exit::Failed, "{err}");
    assert!(err.to_string().contains("ResourceNotFoundException"), "{err}");
}

/// Counts the requests a client sends, by operation (`X-Amz-Target`), retries included.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<std::sync::Mutex<BTreeMap<String, usize>>>);

impl aws_sdk_dynamodb::config::Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context.request().headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default().to_string();
        *self.0.lock().unwrap().entry(operation).or_default() += 1;
        Ok(())
    }
}

impl Calls {
    fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

fn calls(want: &[(&str, usize)]) -> BTreeMap<String, usize> {
    want.iter().map(|(op, n)| (op.to_string(), *n)).collect()
}

/// A grant makes one Query per cost center with new requests and one transaction; a run with
/// no request, or with none that may be granted, makes no call at all.
#[tokio::test]
async fn a_grant_makes_one_query_per_cost_center_and_one_transaction() {
    let h = dynamo().await;
    let table = fleet_table(&h).await;
    let counter = Calls::default();
    let client =
        aws_sdk_dynamodb::Client::from_conf(h.client.config().to_builder().interceptor(counter.clone()).build());
    let a = FleetWindows::new(client, &table, "eks-a");
    let at = wednesday_evening();
    let until = at + Duration::hours(2);

    assert!(grant(&a, &[], &[], at, false).await.is_empty());
    let refused = [
        req("contractor-x", "EXTERNAL-CONTRACTOR", until),
        req("x", "NO-SUCH-CC", until),
    ];
    assert!(grant(&a, &refused, &[], at, false)
        .await
        .iter()
        .all(|d| matches!(d, Decision::Rejected(_))));
    assert_eq!(counter.take(), calls(&[]), "no request that may be granted: no call");

    let asks: Vec<_> = (1..=4)
        .map(|i| req(&format!("dev-{i}"), "IT-DEVELOPMENT", until))
        .chain((1..=2).map(|i| req(&format!("qa-{i}"), "QA-TESTING", until)))
        .collect();
    assert_eq!(granted(&grant(&a, &asks, &[], at, false).await), 6);
    assert_eq!(counter.take(), calls(&[("Query", 2), ("TransactWriteItems", 1)]));

    // Windows that hold no slot are not recorded: the reads only.
    let morning = at - Duration::hours(10);
    let day: Vec<_> = (5..=7)
        .map(|i| req(&format!("dev-{i}"), "IT-DEVELOPMENT", morning + Duration::hours(2)))
        .collect();
    assert_eq!(granted(&grant(&a, &day, &[], morning, false).await), 3);
    assert_eq!(counter.take(), calls(&[("Query", 1)]));

    let keys: Vec<_> = (0..30).map(|i| a.key("IT-DEVELOPMENT", &format!("dev-{i}"))).collect();
    a.release(&keys).await.unwrap();
    assert_eq!(counter.take(), calls(&[("BatchWriteItem", 2)]));
}

#[path = "fleet_windows/race.rs"]
mod race;
