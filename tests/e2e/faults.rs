//! Faults the engine must survive. These need the stand-in (fault injection, latency, request
//! counts) and return early against a real cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use standin::{FaultAction, FaultRule};

use crate::harness::*;

const ORIG: &str = "namespace-scheduler/original-replicas";

/// A namespace with Deployments `a`, `b` (3 and 7), StatefulSet `db` (2) and CronJob `job`:
/// five writes to go down (four workloads, then the Namespace).
async fn five_writes(c: &Cluster, short: &str) -> String {
    let ns = c.namespace(short, &[]).await;
    c.deployment(&ns, "a", 3).await;
    c.deployment(&ns, "b", 7).await;
    c.statefulset(&ns, "db", 2).await;
    c.cronjob(&ns, "job", false).await;
    ns
}

/// Is the namespace fully down, with every original recorded?
async fn is_down(c: &Cluster, ns: &str) -> bool {
    c.replicas("Deployment", ns, "a").await == 0
        && c.annotation("Deployment", Some(ns), "a", ORIG).await.as_deref() == Some("3")
        && c.replicas("Deployment", ns, "b").await == 0
        && c.annotation("Deployment", Some(ns), "b", ORIG).await.as_deref() == Some("7")
        && c.replicas("StatefulSet", ns, "db").await == 0
        && c.suspended(ns, "job").await
        && c.label(ns, "namespace-scheduler/status").await.as_deref() == Some("inactive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_single_write_leaves_that_namespace_at_its_start() {
    let targets = [
        ("deployments", "a"),
        ("deployments", "b"),
        ("statefulsets", "db"),
        ("cronjobs", "job"),
        ("namespaces", ""),
    ];
    for (i, (resource, name)) in targets.iter().enumerate() {
        let c = Cluster::start().await;
        let Some(s) = c.standin_only("injects a persistent failure at each write") else {
            return;
        };
        let victim = five_writes(&c, "victim").await;
        let bystander = five_writes(&c, "bystander").await;
        let start = c.snapshot(&victim).await;
        let action = if i % 2 == 0 {
            FaultAction::status(500)
        } else {
            FaultAction::Drop
        };
        let mut rule = FaultRule::new(action).verb("patch").resource(resource);
        rule = if *resource == "namespaces" {
            rule.name(&victim)
        } else {
            rule.namespace(&victim).name(name)
        };
        s.add_fault(rule);

        let (code, summary, err) = c.run_json(OFF_HOURS, &[]).await;
        assert_eq!(code, 1, "write {i} ({resource}/{name}): {summary}\n{err}");
        let victim_row = summary["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["namespace"] == victim)
            .unwrap();
        assert_eq!(victim_row["status"], "rolled_back", "{summary}");
        assert_eq!(
            c.snapshot(&victim).await,
            start,
            "write {i} ({resource}/{name}): not back at its start state"
        );
        assert!(is_down(&c, &bystander).await, "other namespaces reach their target");
        let audit = c.audit().await;
        assert!(audit
            .iter()
            .any(|r| r.namespace_name == victim && r.status == namespace_scheduler::audit::AuditStatus::RolledBack));
        c.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rollback_disabled_a_failed_namespace_is_left_as_is_and_the_next_run_converges() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("injects a persistent failure") else {
        return;
    };
    let ns = five_writes(&c, "norollback").await;
    let fault = s.add_fault(
        FaultRule::new(FaultAction::status(500))
            .verb("patch")
            .resource("deployments")
            .namespace(&ns)
            .name("b"),
    );
    let (code, summary, err) = c.run_json(OFF_HOURS, &[("ROLLBACK_ENABLED", "false")]).await;
    assert_eq!(code, 1, "{summary}\n{err}");
    let row = &summary["namespaces"][0];
    assert_eq!(row["status"], "failed");
    assert!(row["error"].as_str().unwrap().contains("rollback disabled"), "{row}");
    // Left part-way: what was written stays written, with its original recorded.
    assert_eq!(c.replicas("Deployment", &ns, "b").await, 7);
    assert_eq!(c.replicas("Deployment", &ns, "a").await, 0);
    assert_eq!(
        c.annotation("Deployment", Some(&ns), "a", ORIG).await.as_deref(),
        Some("3")
    );
    s.remove_fault(fault);
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    assert!(is_down(&c, &ns).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_a_lost_response_is_recognised() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("injects 409, 429, 503, dropped connections and lost responses") else {
        return;
    };
    let ns = five_writes(&c, "flaky").await;
    c.deployment(&ns, "c", 1).await;
    let start = c.snapshot(&ns).await;
    let once = |a: FaultAction, res: &str, name: &str| {
        FaultRule::new(a)
            .verb("patch")
            .resource(res)
            .namespace(&ns)
            .name(name)
            .once()
    };
    s.add_fault(once(FaultAction::status(409), "deployments", "a"));
    s.add_fault(once(FaultAction::too_many_requests(1), "deployments", "b"));
    s.add_fault(once(FaultAction::Drop, "deployments", "c"));
    s.add_fault(once(FaultAction::status(503), "statefulsets", "db"));
    // The write commits but the answer is lost: the retry must see it done, not redo or undo it.
    s.add_fault(once(FaultAction::CommitThenDrop, "cronjobs", "job"));
    s.add_fault(
        FaultRule::new(FaultAction::status(500))
            .verb("patch")
            .resource("namespaces")
            .name(&ns)
            .once(),
    );
    let (code, summary, err) = c.run_json(OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{summary}\n{err}");
    assert_eq!(s.fault_counts().total, 6);
    assert!(is_down(&c, &ns).await);
    assert_eq!(
        c.annotation("CronJob", Some(&ns), "job", "namespace-scheduler/original-suspend")
            .await
            .as_deref(),
        Some("false")
    );
    assert_eq!(c.run(&["run", "--at", BUSINESS]).await.0, 0);
    let mut end = c.snapshot(&ns).await;
    let mut start = start;
    end.remove("Namespace");
    start.remove("Namespace");
    assert_eq!(end, start);
}

/// Waits until the stand-in has served `n` patches (or 20 s passed: the run ended early).
async fn wait_for_patches(s: &standin::Standin, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while s.count_verb("patch") < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

const ORIG_SUSPEND: &str = "namespace-scheduler/original-suspend";

/// Every Deployment either runs its original count with no annotation, or is at 0 with the
/// original in the annotation; every namespace's CronJob `job` (seeded running) either runs
/// with no annotation, or is suspended with `original-suspend: "false"`: nothing lost, whatever
/// instant the process died.
async fn nothing_lost(c: &Cluster, originals: &BTreeMap<(String, String), i64>) {
    for ((ns, name), n) in originals {
        let r = c.replicas("Deployment", ns, name).await;
        let a = c.annotation("Deployment", Some(ns), name, ORIG).await;
        let ok = (r == *n && a.is_none()) || (r == 0 && a.as_deref() == Some(n.to_string().as_str()));
        assert!(ok, "{ns}/{name}: replicas {r}, annotation {a:?}, original {n}");
    }
    for ns in namespaces_of(originals) {
        let (suspended, a) = cronjob_state(c, ns).await;
        let ok = (!suspended && a.is_none()) || (suspended && a.as_deref() == Some("false"));
        assert!(
            ok,
            "{ns}/job: suspend {suspended}, {ORIG_SUSPEND} {a:?}, originally running"
        );
    }
}

fn namespaces_of(originals: &BTreeMap<(String, String), i64>) -> std::collections::BTreeSet<&String> {
    originals.keys().map(|(ns, _)| ns).collect()
}

/// The CronJob `job` of `ns`: (suspend, our original-suspend annotation).
async fn cronjob_state(c: &Cluster, ns: &str) -> (bool, Option<String>) {
    (
        c.suspended(ns, "job").await,
        c.annotation("CronJob", Some(ns), "job", ORIG_SUSPEND).await,
    )
}

async fn seed_many(c: &Cluster, namespaces: usize, per_ns: i64) -> BTreeMap<(String, String), i64> {
    let mut originals = BTreeMap::new();
    for i in 0..namespaces {
        let ns = c.namespace(&format!("n{i}"), &[]).await;
        for d in 1..=per_ns {
            let name = format!("d{d}");
            c.deployment(&ns, &name, d + i as i64).await;
            originals.insert((ns.clone(), name), d + i as i64);
        }
        c.cronjob(&ns, "job", false).await;
    }
    originals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_a_random_instant_loses_no_original_and_the_next_run_converges() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("kills the run after a counted number of writes (the stand-in's request log)") else {
        return;
    };
    let originals = seed_many(&c, 6, 4).await;
    s.set_latency(Duration::from_millis(15));
    let slow = [("SCALE_CONCURRENCY", "2")];
    for round in 0..4 {
        for at in [OFF_HOURS, BUSINESS] {
            s.reset_requests();
            let mut child = c.command(&["run", "--at", at]);
            child.envs(slow);
            let mut child = child.spawn().unwrap();
            // Kill after a random number of writes (0..=36 of 36), so most kills land mid-way.
            let delay = fastrand::usize(0..=36);
            wait_for_patches(s, delay).await;
            let _ = child.start_kill();
            let _ = child.wait().await;
            nothing_lost(&c, &originals).await;
            // The killed run never released its Lease: let it expire, as time would.
            c.expire_lease().await;
            let (code, out, err) = c.run(&["run", "--at", at]).await;
            assert_eq!(
                code, 0,
                "round {round} at {at} (killed after {delay} writes): {out}\n{err}"
            );
            nothing_lost(&c, &originals).await;
            // Converged: every CronJob suspended with its original recorded, or running again
            // with the annotation gone.
            let want = if at == OFF_HOURS {
                (true, Some("false".to_string()))
            } else {
                (false, None)
            };
            for ns in namespaces_of(&originals) {
                assert_eq!(
                    cronjob_state(&c, ns).await,
                    want,
                    "round {round} at {at} (killed after {delay} writes): {ns}/job after the converging run"
                );
            }
        }
        for ((ns, name), n) in &originals {
            assert_eq!(
                c.replicas("Deployment", ns, name).await,
                *n,
                "round {round}: {ns}/{name} converged up"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_leaves_every_namespace_at_target_or_at_start() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("signals the run after a counted number of writes (the stand-in's request log)")
    else {
        return;
    };
    let originals = seed_many(&c, 8, 3).await;
    s.set_latency(Duration::from_millis(20));
    let mut cmd = c.command(&["--output", "json", "run", "--at", OFF_HOURS]);
    cmd.env("SCALE_CONCURRENCY", "1").stdout(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id().unwrap().to_string();
    // Stop it once it is writing: some namespaces done, some in flight, most not started.
    wait_for_patches(s, 6).await;
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let code = out.status.code().unwrap();
    let not_processed = summary["counts"]["not_processed"].as_u64().unwrap_or(0);
    assert!(
        not_processed > 0,
        "the run should have been stopped part-way: {summary}"
    );
    assert_eq!(code, 1, "not every namespace was processed: {summary}");
    assert!(summary["note"].as_str().unwrap().contains("not processed"));
    s.set_latency(Duration::ZERO);
    let namespaces: std::collections::BTreeSet<&String> = originals.keys().map(|(ns, _)| ns).collect();
    let (mut at_target, mut at_start) = (0, 0);
    for ns in namespaces {
        let mine: Vec<_> = originals.iter().filter(|((n, _), _)| n == ns).collect();
        let mut down = 0;
        for ((_, name), n) in &mine {
            let r = c.replicas("Deployment", ns, name).await;
            if r == 0 {
                down += 1;
                assert_eq!(
                    c.annotation("Deployment", Some(ns), name, ORIG).await,
                    Some(n.to_string())
                );
            } else {
                assert_eq!(r, **n);
            }
        }
        assert!(down == 0 || down == mine.len(), "{ns}: {down} of {} down", mine.len());
        if down == 0 {
            at_start += 1;
            assert!(!c.suspended(ns, "job").await);
        } else {
            at_target += 1;
            assert_eq!(
                c.label(ns, "namespace-scheduler/status").await.as_deref(),
                Some("inactive")
            );
        }
    }
    assert!(
        at_target > 0 && at_start > 0,
        "{at_target} at target, {at_start} at start"
    );
    let records = c.audit().await;
    assert_eq!(records.len(), at_target, "one audit record per namespace that changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_runs_exactly_one_mutates_the_other_exits_3() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("slows writes down with injected latency so the two runs overlap") else {
        return;
    };
    seed_many(&c, 3, 2).await;
    s.set_latency(Duration::from_millis(30));
    s.reset_requests();
    let a = c.command(&["run", "--at", OFF_HOURS]).output();
    let b = c.command(&["run", "--at", OFF_HOURS]).output();
    let (a, b) = tokio::join!(a, b);
    let mut codes = vec![a.unwrap().status.code().unwrap(), b.unwrap().status.code().unwrap()];
    codes.sort();
    assert_eq!(codes, vec![0, 3]);
    // 3 namespaces × (2 Deployments + 1 CronJob + the Namespace): each written exactly once.
    assert_eq!(
        s.count("patch", "deployments") + s.count("patch", "cronjobs") + s.count("patch", "namespaces"),
        12
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_run_makes_a_handful_of_requests_whatever_the_namespace_count() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("counts requests in the stand-in's request log") else {
        return;
    };
    for i in 0..50 {
        let ns = c.namespace(&format!("quiet{i}"), &[]).await;
        c.deployment(&ns, "api", 2).await;
    }
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    s.reset_requests();
    let (code, summary, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(summary["writes"], 0);
    let requests = s.requests();
    let shown: Vec<String> = requests.iter().map(|r| format!("{} {}", r.verb, r.resource)).collect();
    // lease get + update, namespaces, one list per kind of the table of kinds (Rollouts and
    // ScaledObjects included, answered 404 where their CRD is not installed),
    // ActivationRequests, lease release.
    let kinds = namespace_scheduler::scaling::kinds::KINDS.len();
    assert!(requests.len() <= 5 + kinds, "{} requests: {shown:?}", requests.len());
    assert!(requests.iter().all(|r| r.resource != "events"));
}

/// On the way up the Namespace says "active" before any workload is scaled (admission policies
/// such as the Kyverno component key on the label, and would block the new pods); on the way
/// down it says "inactive" only after every workload is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_label_leads_on_the_way_up_and_trails_on_the_way_down() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("reads the order of writes from the stand-in's request log") else {
        return;
    };
    let ns = five_writes(&c, "order").await;
    for (at, label_first) in [(OFF_HOURS, false), (BUSINESS, true)] {
        s.reset_requests();
        let (code, summary, err) = c.run_json(at, &[]).await;
        assert_eq!(code, 0, "{summary}\n{err}");
        let writes: Vec<String> = s
            .requests()
            .into_iter()
            .filter(|r| r.verb == "patch" && r.status == Some(200))
            .filter(|r| r.namespace == ns || (r.resource == "namespaces" && r.name == ns))
            .map(|r| r.resource)
            .collect();
        assert_eq!(writes.len(), 5, "{writes:?}");
        let position = writes.iter().position(|r| r == "namespaces");
        let want = if label_first { Some(0) } else { Some(4) };
        assert_eq!(position, want, "run at {at}: writes in order {writes:?}");
    }
    c.cleanup().await;
}

/// A failed write of the Lease itself is retried like any other write, and a lost answer is
/// recognised by reading the Lease again: the run goes on and releases it at the end, instead of
/// exiting 1 — or leaving a Lease that names an exited run, so that every run for the next
/// minute would exit 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_the_lease_write_is_retried_and_a_lost_answer_recognised() {
    let actions = [
        FaultAction::status(500),
        FaultAction::Drop,
        FaultAction::CommitThenDrop,
        FaultAction::status(409),
    ];
    for action in actions {
        let c = Cluster::start().await;
        let Some(s) = c.standin_only("injects faults on the Lease write") else {
            return;
        };
        let ns = five_writes(&c, "lease").await;
        // The first run creates the Lease; the second updates the one the first released.
        for (verb, at) in [("create", OFF_HOURS), ("update", BUSINESS)] {
            let fired_before = s.fault_counts().total;
            let rule = s.add_fault(FaultRule::new(action.clone()).verb(verb).resource("leases").once());
            let (code, summary, err) = c.run_json(at, &[]).await;
            let what = format!("{action:?} on {verb} leases");
            assert_eq!(code, 0, "{what}: {summary}\n{err}");
            assert!(s.fault_counts().total > fired_before, "{what}: the fault never fired");
            assert_eq!(row_status(&summary, &ns), "completed", "{what}: {summary}");
            let lease = c
                .get("Lease", Some(&c.own_ns), "namespace-scheduler")
                .await
                .expect("the lease exists");
            assert!(
                lease["spec"]["holderIdentity"].is_null(),
                "{what}: the lease is still held after the run: {lease}"
            );
            s.remove_fault(rule);
        }
        c.cleanup().await;
    }
}

fn row_status(summary: &serde_json::Value, ns: &str) -> String {
    summary["namespaces"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["namespace"] == ns))
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}
