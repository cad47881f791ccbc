//! A run that loses its Lease stops like on SIGTERM: no new namespace starts, the ones in flight
//! finish or roll back, the audit is written, exit 1, and the Lease is left to its new holder.

use std::time::Duration;

use serde_json::{json, Value};
use standin::{FaultAction, FaultRule, Standin};

use crate::harness::*;

const LEASE: &str = "namespace-scheduler";

/// `n` namespaces of two Deployments (2 and 3 replicas).
async fn seed(c: &Cluster, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let ns = c.namespace(&format!("l{i}"), &[]).await;
        c.deployment(&ns, "a", 2).await;
        c.deployment(&ns, "b", 3).await;
        names.push(ns);
    }
    names
}

/// Every namespace fully down (with its originals) or fully as it started; returns how many are down.
async fn whole_namespaces(c: &Cluster, names: &[String]) -> usize {
    let mut down = 0;
    for ns in names {
        let (a, b) = (
            c.replicas("Deployment", ns, "a").await,
            c.replicas("Deployment", ns, "b").await,
        );
        assert!(matches!((a, b), (0, 0) | (2, 3)), "{ns} left half-way: a={a} b={b}");
        if a == 0 {
            down += 1;
        }
    }
    down
}

async fn run_until(
    c: &Cluster,
    s: &Standin,
    patches: usize,
    then: impl std::future::Future<Output = ()>,
) -> (i32, Value) {
    let mut cmd = c.command(&["--output", "json", "run", "--at", OFF_HOURS]);
    cmd.env("SCALE_CONCURRENCY", "1")
        .env("NS_SCHEDULER_LEASE_SECONDS", "2")
        .stdout(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    while s.count("patch", "deployments") < patches {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    then.await;
    let out = child.wait_with_output().await.unwrap();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "summary ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), summary)
}

fn assert_stopped_by_the_lease(code: i32, summary: &Value) {
    assert_eq!(code, 1, "{summary}");
    assert!(
        summary["counts"]["not_processed"].as_u64().unwrap_or(0) > 0,
        "{summary}"
    );
    let note = summary["note"].as_str().unwrap_or("");
    assert!(note.contains("lost its Lease"), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_taken_over_starts_no_new_namespace_and_exits_1() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("times the take-over by the writes in the stand-in's request log") else {
        return;
    };
    let names = seed(&c, 40).await;
    s.set_latency(Duration::from_millis(40));
    let takeover = async {
        // Another run takes the Lease over (as after a long stall of this one).
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        c.patch(
            "Lease",
            Some(&c.own_ns),
            LEASE,
            json!({"spec": {"holderIdentity": "other-run", "renewTime": now, "leaseDurationSeconds": 60}}),
        )
        .await;
    };
    let (code, summary) = run_until(&c, s, 4, takeover).await;
    s.set_latency(Duration::ZERO);
    assert_stopped_by_the_lease(code, &summary);
    let down = whole_namespaces(&c, &names).await;
    assert!(
        down > 0 && down < names.len(),
        "{down} of {} down: {summary}",
        names.len()
    );
    // Every namespace that changed is audited; the new holder keeps the Lease.
    let audited = c.audit().await.len();
    assert_eq!(audited, down, "{summary}");
    let lease = c.get("Lease", Some(&c.own_ns), LEASE).await.unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "other-run", "{lease}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_renew_its_lease_before_it_expires_stops_too() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("injects failures on the Lease renewals") else {
        return;
    };
    let names = seed(&c, 40).await;
    s.set_latency(Duration::from_millis(40));
    let broken = async {
        // From now on every renewal fails.
        s.add_fault(
            FaultRule::new(FaultAction::status(503))
                .verb("update")
                .resource("leases"),
        );
    };
    let (code, summary) = run_until(&c, s, 4, broken).await;
    s.clear_faults();
    s.set_latency(Duration::ZERO);
    assert_stopped_by_the_lease(code, &summary);
    let down = whole_namespaces(&c, &names).await;
    assert!(down < names.len(), "{summary}");
}

/// The deadline is kept on the run's own clock: with every renewal hanging (an apiserver that
/// accepts the connection and never answers, each attempt far longer than the Lease), the run
/// still stops starting namespaces once its last renewal is as old as the Lease. Measured from
/// the renewal's answer it would go on for the whole client timeout and its retries — and finish
/// every namespace here, long after another run could have taken the Lease over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_that_hang_stop_the_run_at_the_lease_deadline_on_its_own_clock() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("makes the Lease renewals hang") else {
        return;
    };
    let names = seed(&c, 60).await;
    s.set_latency(Duration::from_millis(40));
    // Only renewals hang: the Lease is created (not updated) when the run takes it.
    s.add_fault(
        FaultRule::new(FaultAction::Latency { ms: 120_000 })
            .verb("update")
            .resource("leases"),
    );
    let mut cmd = c.command(&["--output", "json", "run", "--at", OFF_HOURS]);
    cmd.env("SCALE_CONCURRENCY", "1")
        .env("NS_SCHEDULER_LEASE_SECONDS", "2")
        .env("NS_SCHEDULER_REQUEST_TIMEOUT_MS", "60000")
        .stdout(std::process::Stdio::piped());
    let out = tokio::time::timeout(Duration::from_secs(100), cmd.output())
        .await
        .expect("the run ends")
        .unwrap();
    s.clear_faults();
    s.set_latency(Duration::ZERO);
    let summary: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("summary ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_stopped_by_the_lease(out.status.code().unwrap(), &summary);
    let down = whole_namespaces(&c, &names).await;
    assert!(down < names.len(), "{summary}");
    let records = c.audit().await;
    assert_eq!(
        records.len(),
        down,
        "one record per namespace changed, no intent left: {records:?}"
    );
    assert!(records.iter().all(|r| r.status.is_final()));
}
