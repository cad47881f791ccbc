//! Faults of the real control plane mid-run (docs/reference.md §4, §6): the kube-apiserver paused
//! (SIGSTOP) and resumed, killed and restarted, etcd paused, and the binary SIGKILLed — each
//! followed by a converging run, after which every namespace is at its target with every original
//! count right, and every change has exactly one final audit record, none left `in_progress`.
//!
//! These stop and kill control-plane processes, so they run on a control plane of their own
//! (`common::control_plane`, `target/e2e-faults-control-plane`, started once per test binary and
//! stopped when it ends), one test at a time, never on the suite's shared one. They run in the
//! real-cluster pass; on the stand-in, or without the control-plane binaries, they report
//! themselves skipped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::api::ListParams;
use kube::core::Request;
use namespace_scheduler::audit::{AuditRecord, AuditStatus, OperationType};
use serde_json::Value;

use crate::common::control_plane::{ControlPlane, Process};
use crate::harness::*;

const PLANE: &str = "e2e-faults-control-plane";
const ORIG: &str = "namespace-scheduler/original-replicas";
const STATUS: &str = "namespace-scheduler/status";

/// One test at a time on the control plane they share.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resumes and restarts whatever a test left stopped, even when it panics.
struct Healer(&'static ControlPlane);

impl Drop for Healer {
    fn drop(&mut self) {
        if let Err(e) = self.0.heal() {
            eprintln!("could not heal the control plane {}: {e}", self.0.dir.display());
        }
    }
}

pub struct Own {
    pub cp: &'static ControlPlane,
    pub c: Cluster,
    _healer: Healer,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// A cluster on this test binary's own control plane, or None (the test is reported skipped).
/// Also a fleet's second cluster (`fleet.rs`): one control plane of its own per test binary.
pub async fn own_control_plane(what: &str) -> Option<Own> {
    if std::env::var("E2E_KUBECONFIG").map_or(true, |v| v.trim().is_empty()) {
        skip(&format!(
            "needs a real control plane of its own ({what}): runs in the real-cluster pass"
        ));
        return None;
    }
    let turn = ONE_AT_A_TIME.lock().await;
    let cp = match tokio::task::spawn_blocking(|| ControlPlane::shared(PLANE))
        .await
        .unwrap()
    {
        Ok(cp) => cp,
        Err(e) => {
            skip(&format!("needs a real control plane of its own ({what}): {e}"));
            return None;
        }
    };
    tokio::task::spawn_blocking(|| cp.heal())
        .await
        .unwrap()
        .expect("the control plane runs");
    Some(Own {
        cp,
        c: Cluster::start_on(cp.kubeconfig.clone()).await,
        _healer: Healer(cp),
        _turn: turn,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Down,
    Up,
}

impl Target {
    fn at(self) -> &'static str {
        match self {
            Target::Down => OFF_HOURS,
            Target::Up => BUSINESS,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Target::Down => "inactive",
            Target::Up => "active",
        }
    }
}

/// The namespaces of a test and each Deployment's original count.
struct World {
    names: Vec<String>,
    originals: BTreeMap<(String, String), i64>,
}

async fn seed(c: &Cluster, n: usize) -> World {
    let mut w = World {
        names: Vec::new(),
        originals: BTreeMap::new(),
    };
    for i in 0..n {
        let ns = c.namespace(&format!("f{i}"), &[]).await;
        for (d, r) in [("a", 1 + (i % 3) as i64), ("b", 2)] {
            c.deployment(&ns, d, r).await;
            w.originals.insert((ns.clone(), d.to_string()), r);
        }
        w.names.push(ns);
    }
    w
}

async fn list(c: &Cluster, path: &str, selector: &str) -> Vec<Value> {
    let req = Request::new(path)
        .list(&ListParams::default().labels(selector))
        .unwrap();
    let l: Value = c.client.request(req).await.expect("list");
    l["items"].as_array().cloned().unwrap_or_default()
}

/// Every namespace's state as text (its Deployments' counts and annotations, its status label),
/// in two lists.
async fn states(c: &Cluster, w: &World) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = w.names.iter().map(|n| (n.clone(), String::new())).collect();
    for d in list(c, "/apis/apps/v1/deployments", "").await {
        let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
        if let Some(s) = out.get_mut(ns) {
            s.push_str(&format!(
                "{}={}[{}] ",
                d["metadata"]["name"].as_str().unwrap(),
                d["spec"]["replicas"],
                d["metadata"]["annotations"][ORIG].as_str().unwrap_or("-")
            ));
        }
    }
    for n in list(c, "/api/v1/namespaces", &format!("{RUN_LABEL}={}", c.id)).await {
        if let Some(s) = out.get_mut(n["metadata"]["name"].as_str().unwrap()) {
            s.push_str(n["metadata"]["labels"][STATUS].as_str().unwrap_or("-"));
        }
    }
    out
}

/// How many of the test's namespaces carry `label` as their status.
async fn labelled(c: &Cluster, label: &str) -> usize {
    list(
        c,
        "/api/v1/namespaces",
        &format!("{RUN_LABEL}={},{STATUS}={label}", c.id),
    )
    .await
    .len()
}

/// What is done to a run once it has brought `after` namespaces to their new status.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Pause(Process, Duration),
    KillAndRestartApiServer(Duration),
    KillTheRun,
}

/// What a faulty round did, for the test's output.
#[derive(Debug)]
struct Round {
    target: Target,
    at_fault: usize,
    seconds: f64,
    faulty_exit: Option<i32>,
    changed: usize,
    records: BTreeMap<&'static str, usize>,
}

/// A run towards `target`, `fault` once `after` namespaces carry the new status, then a
/// converging run; then every invariant of the module documentation is checked.
async fn faulty_round(own: &Own, w: &World, target: Target, after: usize, fault: Fault, env: &[(&str, &str)]) -> Round {
    let (c, cp) = (&own.c, own.cp);
    let before = states(c, w).await;
    let already = labelled(c, target.label()).await;
    let mut cmd = c.command(&["--output", "json", "run", "--at", target.at()]);
    cmd.envs(env.iter().copied()).stdout(std::process::Stdio::piped());
    let spawned = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut at_fault = 0;
    while spawned.elapsed() < Duration::from_secs(120) && child.try_wait().unwrap().is_none() {
        at_fault = labelled(c, target.label()).await.saturating_sub(already);
        if at_fault >= after {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = spawned.elapsed().as_secs_f64();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the fault ({at_fault} done)"
    );
    match fault {
        Fault::Pause(p, d) => {
            cp.pause(p);
            tokio::time::sleep(d).await;
            cp.resume(p);
        }
        Fault::KillAndRestartApiServer(d) => {
            cp.kill(Process::ApiServer);
            tokio::time::sleep(d).await;
            tokio::task::spawn_blocking(move || cp.heal())
                .await
                .unwrap()
                .expect("restart the apiserver");
        }
        Fault::KillTheRun => child.start_kill().unwrap(),
    }
    let out = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("the faulty run ends")
        .unwrap();
    let faulty_exit = out.status.code();
    let lease = c
        .get("Lease", Some(&c.own_ns), "namespace-scheduler")
        .await
        .expect("a lease");
    let faulty_run = match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(s) => s["run_id"].as_str().unwrap().to_string(),
        Err(_) => lease["spec"]["holderIdentity"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string(),
    };
    if !lease["spec"]["holderIdentity"].is_null() {
        // A killed run, or one that could not release: let its Lease expire, as time would.
        c.expire_lease().await;
    }
    let mid = states(c, w).await;
    let (code, summary, err) = c.run_json(target.at(), &[]).await;
    assert_eq!(code, 0, "converging run after {fault:?}: {summary}\n{err}");
    let converging = summary["run_id"].as_str().unwrap().to_string();

    // Every namespace at its target, every original right.
    let end = states(c, w).await;
    for ns in &w.names {
        for d in ["a", "b"] {
            let original = w.originals[&(ns.clone(), d.to_string())];
            let want = match target {
                Target::Down => format!("{d}=0[{original}] "),
                Target::Up => format!("{d}={original}[-] "),
            };
            assert!(
                end[ns].contains(&want),
                "{ns}: {} after converging ({fault:?}), want {want}",
                end[ns]
            );
        }
        assert!(end[ns].ends_with(target.label()), "{ns}: {}", end[ns]);
    }
    // Exactly one final record per change, none in_progress.
    let records = c.audit().await;
    let stuck: Vec<&AuditRecord> = records.iter().filter(|r| r.status == AuditStatus::InProgress).collect();
    assert!(stuck.is_empty(), "left in_progress after {fault:?}: {stuck:?}");
    let mut per: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in &records {
        *per.entry((r.run_id.as_str(), r.namespace_name.as_str())).or_default() += 1;
    }
    assert!(
        per.values().all(|n| *n == 1),
        "a namespace recorded twice by one run: {per:?}"
    );
    let changed: Vec<&String> = w.names.iter().filter(|ns| before[*ns] != mid[*ns]).collect();
    for ns in &changed {
        assert!(
            per.contains_key(&(faulty_run.as_str(), ns.as_str())),
            "{ns} changed by the faulty run ({}: {} -> {}) has no record of it ({fault:?})",
            faulty_run,
            before[*ns],
            mid[*ns]
        );
    }
    // Every namespace that went down has a record saying so, from one run or the other: one
    // that took effect, or `failed` (left part-way: a write and its rollback both failed).
    if target == Target::Down {
        for ns in w.names.iter().filter(|ns| before[*ns] != end[*ns]) {
            let down = records.iter().any(|r| {
                &r.namespace_name == ns
                    && (r.run_id == faulty_run || r.run_id == converging)
                    && r.operation_type == OperationType::AutoShutdownBusinessHours
                    && (r.took_effect() || r.status == AuditStatus::Failed)
            });
            assert!(
                down,
                "{ns} was scaled down without an audit record saying so ({fault:?})"
            );
        }
    }
    let mut by_status: BTreeMap<&'static str, usize> = BTreeMap::new();
    for r in records.iter().filter(|r| r.run_id == faulty_run) {
        *by_status.entry(r.status.as_str()).or_default() += 1;
    }
    Round {
        target,
        at_fault,
        seconds,
        faulty_exit,
        changed: changed.len(),
        records: by_status,
    }
}

fn report(what: &str, r: &Round) {
    eprintln!(
        "{what}: run {:?} hit after {} namespace(s), {:.2} s after spawn; exit {:?}; {} namespace(s) changed by it; its records: {:?}",
        r.target, r.at_fault, r.seconds, r.faulty_exit, r.changed, r.records
    );
}

/// A fault of the control plane in a run down, then in a run up, over 30 namespaces.
async fn both_ways(what: &str, doing: &str, fault: Fault) {
    let Some(own) = own_control_plane(doing).await else {
        return;
    };
    let w = seed(&own.c, 30).await;
    let slow = [("SCALE_CONCURRENCY", "2")];
    for target in [Target::Down, Target::Up] {
        report(what, &faulty_round(&own, &w, target, 5, fault, &slow).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_paused_mid_run_and_resumed() {
    let pause = Fault::Pause(Process::ApiServer, Duration::from_secs(6));
    both_ways("apiserver paused", "SIGSTOPs the kube-apiserver", pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_killed_mid_run_and_restarted() {
    let kill = Fault::KillAndRestartApiServer(Duration::from_secs(2));
    both_ways("apiserver killed", "kills and restarts the kube-apiserver", kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_paused_mid_run_and_resumed() {
    let pause = Fault::Pause(Process::Etcd, Duration::from_secs(6));
    both_ways("etcd paused", "SIGSTOPs etcd", pause).await;
}

/// The must-hold of the write-ahead audit: four SIGKILLs at different instants of runs over 60
/// namespaces, one write at a time, each followed by a converging run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_sigkills_over_sixty_namespaces_leave_every_change_with_one_final_record() {
    let Some(own) = own_control_plane("SIGKILLs the binary mid-run and counts what the next run closes").await else {
        return;
    };
    let w = seed(&own.c, 60).await;
    let one_at_a_time = [("SCALE_CONCURRENCY", "1")];
    for (target, after) in [
        (Target::Down, 1),
        (Target::Up, 15),
        (Target::Down, 35),
        (Target::Up, 55),
    ] {
        let r = faulty_round(&own, &w, target, after, Fault::KillTheRun, &one_at_a_time).await;
        report("SIGKILL", &r);
        assert!(r.faulty_exit.is_none(), "the run was killed: {r:?}");
        assert!(r.changed > 0 && r.changed < w.names.len(), "killed mid-run: {r:?}");
    }
}
