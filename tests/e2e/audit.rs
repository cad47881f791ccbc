//! The write-ahead audit end to end (docs/reference.md §6): every change has exactly one final
//! record whatever ends the run — a SIGKILL, final records DynamoDB would not take, or DynamoDB
//! unreachable from the start — and a normal run pays for it with no DynamoDB call of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use namespace_scheduler::audit::{AuditRecord, AuditStatus};
use serde_json::Value;

use crate::common::{closed_endpoint, FailingProxy};
use crate::harness::*;

const LEASE: &str = "namespace-scheduler";
const OPEN: &str = "namespace-scheduler/audit-open";

/// `n` namespaces of three Deployments (1, 2 and 3 replicas).
async fn seed(c: &Cluster, n: usize) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..n {
        let ns = c.namespace(&format!("w{i}"), &[]).await;
        for (d, r) in [("a", 1), ("b", 2), ("c", 3)] {
            c.deployment(&ns, d, r).await;
        }
        names.push(ns);
    }
    names
}

/// Namespace → its Deployments' replicas, in name order.
async fn replicas(c: &Cluster, names: &[String]) -> BTreeMap<String, Vec<i64>> {
    let mut out = BTreeMap::new();
    for ns in names {
        let mut v = Vec::new();
        for d in ["a", "b", "c"] {
            v.push(c.replicas("Deployment", ns, d).await);
        }
        out.insert(ns.clone(), v);
    }
    out
}

fn lease_annotation(lease: &Value, key: &str) -> Option<String> {
    lease["metadata"]["annotations"][key].as_str().map(str::to_string)
}

/// Records of `run` by namespace.
fn by_namespace<'a>(records: &'a [AuditRecord], run: &str) -> BTreeMap<&'a str, Vec<&'a AuditRecord>> {
    let mut out: BTreeMap<&str, Vec<&AuditRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.run_id == run) {
        out.entry(r.namespace_name.as_str()).or_default().push(r);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_runs_intents_are_closed_by_the_next_run_as_what_they_were() {
    let c = Cluster::start().await;
    let Some(s) = c.standin_only("kills the run after a counted number of writes (the stand-in's request log)") else {
        return;
    };
    let names = seed(&c, 12).await;
    let start = replicas(&c, &names).await;
    // Stamped with the decision clock, days before the wall clock: the next run must look for
    // the dead run's intents where they are, not where the wall clock would put them.
    let env = [("NS_SCHEDULER_AUDIT_CLOCK", "decision"), ("SCALE_CONCURRENCY", "1")];
    s.set_latency(Duration::from_millis(20));
    let mut killed = c.command(&["run", "--at", OFF_HOURS]);
    killed.envs(env);
    let mut killed = killed.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while s.count("patch", "deployments") < 10 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    killed.start_kill().unwrap();
    killed.wait().await.unwrap();
    // A write the killed run had sent may still land: wait until the stand-in is idle.
    s.wait_idle(Duration::from_secs(10));
    s.set_latency(Duration::ZERO);
    let mid = replicas(&c, &names).await;
    let mut labelled = Vec::new();
    for ns in &names {
        if c.label(ns, "namespace-scheduler/status").await.as_deref() == Some("inactive") {
            labelled.push(ns.clone());
        }
    }
    let touched: Vec<&String> = names.iter().filter(|ns| mid[*ns] != start[*ns]).collect();
    assert!(
        !touched.is_empty() && touched.len() < names.len(),
        "killed mid-run: {mid:?}"
    );
    let lease = c.get("Lease", Some(&c.own_ns), LEASE).await.unwrap();
    let dead = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let before = c.audit().await;
    assert!(
        touched.iter().all(|ns| before
            .iter()
            .any(|r| &r.namespace_name == *ns && r.status == AuditStatus::InProgress)),
        "every namespace touched had its intent in the table first: {before:?}"
    );

    c.expire_lease().await;
    let (code, summary, err) = c.run_json(OFF_HOURS, &env).await;
    assert_eq!(code, 0, "{summary}\n{err}");
    assert!(
        summary["note"].as_str().unwrap_or("").contains("closed as interrupted"),
        "{summary}"
    );
    let records = c.audit().await;
    assert!(
        records.iter().all(|r| r.status != AuditStatus::InProgress),
        "none left in_progress: {records:?}"
    );
    let of_dead = by_namespace(&records, &dead);
    // Every namespace of the batch had its intent written; each has exactly one record now.
    for ns in &names {
        let rs = &of_dead[ns.as_str()];
        assert_eq!(rs.len(), 1, "{ns}: exactly one record of the killed run: {rs:?}");
        assert_eq!(rs[0].took_effect(), touched.contains(&ns), "{ns}: {:?}", rs[0]);
    }
    for ns in &touched {
        let rs = &of_dead[ns.as_str()];
        assert_eq!(rs.len(), 1, "{ns}: exactly one record of the killed run: {rs:?}");
        let r = rs[0];
        assert!(
            r.status == AuditStatus::Interrupted || r.status == AuditStatus::Completed,
            "{ns}: {r:?}"
        );
        if r.status == AuditStatus::Interrupted {
            assert_eq!(r.closed_by.as_deref(), summary["run_id"].as_str());
            // What it found is what the killed run left: the Deployments it had put at 0.
            for (res, now) in r.resources.iter().zip(&mid[ns.as_str()]) {
                assert_eq!(res.found.as_deref(), Some(now.to_string().as_str()), "{ns} {res:?}");
                assert_eq!(res.reached, Some(*now == 0), "{ns} {res:?}");
            }
        }
    }
    // The converging run finished the job, with its own records; nothing is left open.
    assert!(replicas(&c, &names).await.values().all(|v| v == &vec![0, 0, 0]));
    let converged = by_namespace(&records, summary["run_id"].as_str().unwrap());
    for ns in &names {
        // Its workloads, or only its trailing status label, were left to do.
        let needed = mid[ns] != vec![0, 0, 0] || !labelled.contains(ns);
        assert_eq!(converged.get(ns.as_str()).map(Vec::len), needed.then_some(1), "{ns}");
    }
    let lease = c.get("Lease", Some(&c.own_ns), LEASE).await.unwrap();
    assert_eq!(lease_annotation(&lease, OPEN), None, "{lease}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_records_dynamodb_refuses_leave_the_run_listed_on_the_lease_until_the_next_closes_it() {
    let c = Cluster::start().await;
    let names = seed(&c, 3).await;
    // Every batch carrying a final record fails; the intents go through.
    let proxy = FailingProxy::start(&c.dynamo.endpoint, "\"completed\"").await;
    let (code, first, err) = c
        .run_json(OFF_HOURS, &[("DYNAMODB_ENDPOINT_URL", &proxy.endpoint)])
        .await;
    assert_eq!(code, 1, "{first}\n{err}");
    assert!(first["audit_error"].as_str().is_some(), "{first}");
    assert!(
        err.contains("audit record could not be written"),
        "each final record logged whole"
    );
    let run = first["run_id"].as_str().unwrap();
    let lease = c.get("Lease", Some(&c.own_ns), LEASE).await.unwrap();
    let open = lease_annotation(&lease, OPEN).unwrap_or_default();
    assert!(
        open.contains(run),
        "the run is listed open on the released Lease: {lease}"
    );
    assert!(lease["spec"]["holderIdentity"].is_null(), "released: {lease}");
    let records = c.audit().await;
    assert_eq!(records.len(), names.len());
    assert!(
        records.iter().all(|r| r.status == AuditStatus::InProgress),
        "{records:?}"
    );

    // The next run, DynamoDB healthy, has nothing to scale: it closes the open run and no more.
    let (code, second, err) = c.run_json(LATER_OFF_HOURS, &[]).await;
    assert_eq!(code, 0, "{second}\n{err}");
    assert_eq!(second["writes"], 0, "{second}");
    let records = c.audit().await;
    assert_eq!(records.len(), names.len(), "no new record: {records:?}");
    for r in &records {
        assert_eq!(r.status, AuditStatus::Interrupted, "{r:?}");
        assert_eq!(r.closed_by.as_deref(), second["run_id"].as_str());
        assert!(r.took_effect(), "found at target: the change it was: {r:?}");
        assert!(r.resources.iter().all(|x| x.reached == Some(true)), "{r:?}");
    }
    let lease = c.get("Lease", Some(&c.own_ns), LEASE).await.unwrap();
    assert_eq!(
        lease_annotation(&lease, OPEN),
        None,
        "cleared by the run that closed it: {lease}"
    );
    assert!(proxy.failed.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dynamodb_unreachable_the_namespaces_still_move_and_every_record_is_logged_whole() {
    let c = Cluster::start().await;
    let names = seed(&c, 4).await;
    let closed = closed_endpoint();
    let (code, summary, err) = c.run_json(OFF_HOURS, &[("DYNAMODB_ENDPOINT_URL", &closed)]).await;
    assert_eq!(code, 1, "{summary}\n{err}");
    let audit_error = summary["audit_error"].as_str().unwrap_or("");
    assert!(audit_error.contains("4 intent(s) could not be written"), "{summary}");
    // A DynamoDB blip does not keep the namespaces up all night.
    assert!(replicas(&c, &names).await.values().all(|v| v == &vec![0, 0, 0]));
    for ns in &names {
        for status in ["in_progress", "completed"] {
            let logged = err
                .lines()
                .filter(|l| l.contains("audit record could not be written"))
                .any(|l| {
                    l.contains(&format!("\"namespace_name\":\"{ns}\""))
                        && l.contains(&format!("\"status\":\"{status}\""))
                });
            assert!(logged, "{ns}: its {status} record logged whole\n{err}");
        }
    }
}
