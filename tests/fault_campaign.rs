//! Fault campaign: randomized rounds against the API stand-in, each with faults at random
//! requests (500, 409, 429, latency beyond the client timeout, dropped connection,
//! commit-then-drop), a SIGTERM or SIGKILL at a random instant, or DynamoDB unreachable; then a
//! clean run. After every run the invariants are checked against the truth of every workload:
//!
//! 1. no original replica count or suspend state is ever lost (each workload is either at its
//!    original, or off with the original in our annotation), and what must never be touched
//!    (protected or excluded namespaces, excluded or operator-owned workloads) never is;
//! 2. after a faulty run that ended by itself (SIGTERM included), every namespace is at its
//!    target or exactly at its starting state, and exit 0 means every namespace is at target;
//! 3. the clean run exits 0 and converges: every namespace at target, with its status label, and
//!    a completed `up` restores exactly the original counts and suspend states;
//! 4. every operation that happened is in the audit table (DynamoDB Local), with `to` values
//!    matching the cluster, or was logged whole with exit 1.
//!
//! A SIGKILLed run only has to keep (1), and the next run must converge (3) once its Lease has
//! expired (the campaign expires it instead of waiting). Engine behaviour that breaks none of
//! these but is worth fixing is printed as a finding: a run that ended by itself yet left the
//! Lease held (the clean run exits 3; the Lease is then expired and (3) still required), or a
//! run that exits 3 after a fault on its own Lease write.
//!
//! `FAULT_ROUNDS` (default 20), `FAULT_SEED` (default: from the clock; always printed) and
//! `FAULT_BIN` (default: the binary cargo built for this test).
//! A failure prints the seed and the round: `FAULT_SEED=S FAULT_ROUNDS=R` replays the same
//! choices (the instants at which requests and signals meet still vary with timing).

mod common;
#[path = "fault_campaign/faults.rs"]
mod faults;
#[path = "fault_campaign/runner.rs"]
mod runner;
#[path = "fault_campaign/world.rs"]
mod world;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use faults::{FaultKind, Scenario, Trigger};
use runner::Outcome;
use world::{Kind, Snapshot, Target, World};

const RETRY_ATTEMPTS: u64 = 5;
const RUN_LIMIT: Duration = Duration::from_secs(90);

struct Env {
    rt: tokio::runtime::Runtime,
    dynamo: common::DynamoHandle,
    audit: String,
    permissions: String,
}

#[derive(Default)]
struct Stats {
    rounds: u64,
    worlds: u64,
    faults_planned: BTreeMap<String, u64>,
    faults_fired: BTreeMap<String, u64>,
    persistent: u64,
    kills: BTreeMap<String, u64>,
    audit_outages: u64,
    unhandled_term_after_writes: u64,
    exits: BTreeMap<String, u64>,
    ns_outcomes: BTreeMap<String, u64>,
    violations: Vec<String>,
    /// Engine behaviour worth reporting that breaks no invariant (nothing lost, converges once
    /// a stale Lease expires), by kind, with the first examples.
    findings: BTreeMap<String, u64>,
    finding_examples: Vec<String>,
    /// Faulty runs that ended with exit 1 before any namespace (no summary), by the last
    /// request a fault hit.
    aborted: BTreeMap<String, u64>,
    /// Operations (namespaces changed or reported) checked against the audit, by where found.
    audited: BTreeMap<String, u64>,
}

impl Stats {
    fn finding(&mut self, kind: &str, example: String) {
        let n = self.findings.entry(kind.to_string()).or_default();
        *n += 1;
        if *n <= 3 {
            self.finding_examples.push(format!("{kind}: {example}"));
        }
    }
}

impl Env {
    fn scheduler(&self, w: &World, target: Target, concurrency: usize) -> std::process::Command {
        // FAULT_BIN: a binary of our own (say a release build copied aside), so that a long
        // campaign is not disturbed when the shared target directory is rebuilt under it.
        let mut cmd = match std::env::var("FAULT_BIN") {
            Ok(bin) if !bin.is_empty() => {
                let mut c = std::process::Command::new(bin);
                for (k, _) in std::env::vars() {
                    if k.starts_with("NS_SCHEDULER_") || k.starts_with("BUSINESS_") || k.starts_with("AWS_") {
                        c.env_remove(k);
                    }
                }
                for k in [
                    "EKS_CLUSTER_NAME",
                    "NAMESPACE_SELECTOR",
                    "PROTECTED_NAMESPACES",
                    "RUST_LOG",
                    "LOG_LEVEL",
                ] {
                    c.env_remove(k);
                }
                c.envs(common::scheduler_env(&self.dynamo, &self.audit, &self.permissions));
                c
            }
            _ => common::scheduler(&self.dynamo, &self.audit, &self.permissions),
        };
        cmd.env("KUBECONFIG", &w.kubeconfig)
            .env("SCALE_CONCURRENCY", concurrency.to_string())
            .env("NS_SCHEDULER_REQUEST_TIMEOUT_MS", faults::CLIENT_TIMEOUT_MS.to_string())
            .env("NS_SCHEDULER_RETRY_ATTEMPTS", RETRY_ATTEMPTS.to_string())
            .env("NS_SCHEDULER_RETRY_BASE_MS", "5")
            .env("NS_SCHEDULER_RETRY_MAX_MS", "60")
            .env("NS_SCHEDULER_LEASE_SECONDS", "20")
            .args(["--output", "json", "run", "--at", target.at()]);
        cmd
    }
}

/// The audit invariant for one finished (not SIGKILLed) run: each namespace that changed, and
/// each namespace the summary reports as completed, rolled back or failed, has a record of this
/// run in the table or logged whole (and then the exit code is 1); completed records say what
/// the cluster now holds.
fn check_audit(
    env: &Env,
    w: &World,
    (before, after): (&Snapshot, &Snapshot),
    out: &Outcome,
    bad: &mut Vec<String>,
    tally: &mut BTreeMap<String, u64>,
) {
    let rows: BTreeMap<String, String> = out.rows().into_iter().collect();
    let logged = out.logged_records();
    for ns in &w.managed {
        let changed = !w.ns_same(before, after, ns);
        let row = rows.get(ns).map(String::as_str);
        let expected: &[&str] = match row {
            Some(s @ ("completed" | "rolled_back" | "failed")) if !changed => {
                if s == "completed" {
                    // Only the namespace label changed (e.g. a crash left it behind): still audited.
                    &["completed"]
                } else {
                    &["rolled_back", "failed"]
                }
            }
            _ if changed => &["completed", "failed"],
            _ => continue,
        };
        // This run's records: started within its lifetime, and of its run id when it printed one.
        let run_id = out.summary().and_then(|s| s["run_id"].as_str().map(str::to_string));
        let records: Vec<_> = env
            .rt
            .block_on(runner::audited(
                &env.dynamo,
                &env.audit,
                ns,
                out.t0 - 0.01,
                out.t1 + 0.01,
            ))
            .into_iter()
            .filter(|r| run_id.as_ref().is_none_or(|id| *id == r.run_id))
            .collect();
        let in_table = records.iter().any(|r| expected.contains(&r.status.as_str()));
        let in_log = logged.iter().any(|(n, s)| n == ns && expected.contains(&s.as_str()));
        let how = match (in_table, in_log) {
            (true, _) => "in the audit table",
            (false, true) => "logged whole (DynamoDB unreachable)",
            _ => "missing",
        };
        *tally.entry(how.to_string()).or_default() += 1;
        let logged_and_failed = in_log && out.code == Some(1);
        if !(in_table || logged_and_failed) {
            bad.push(format!(
                "{ns}: {} (summary row: {row:?}) but no audit record with status {expected:?} in the table{} ({})",
                if changed { "changed" } else { "reported" },
                if in_log { ", only in the log" } else { " nor in the log" },
                out.describe()
            ));
        }
        for r in records.iter().filter(|r| r.status.as_str() == "completed") {
            for res in &r.resources {
                let Some(wl) = w
                    .in_ns(ns)
                    .find(|x| x.name == res.name && format!("{:?}", x.kind) == res.kind)
                else {
                    continue;
                };
                let now = &after[&wl.id()];
                let holds = match wl.kind {
                    Kind::CronJob => format!("suspend={}", now.value == 1),
                    _ => now.value.to_string(),
                };
                if holds != res.to {
                    bad.push(format!(
                        "{ns}: audit says {} {} → {} (completed) but the cluster holds {holds}",
                        res.kind, res.name, res.to
                    ));
                }
            }
        }
    }
}

fn count_fired(stats: &mut Stats, before: &standin::FaultCounts, after: &standin::FaultCounts) {
    for (code, n) in &after.status {
        let d = n - before.status.get(code).copied().unwrap_or(0);
        if d > 0 {
            *stats.faults_fired.entry(code.to_string()).or_default() += d;
        }
    }
    for (name, a, b) in [
        (FaultKind::Timeout.name(), after.latency, before.latency),
        (FaultKind::Drop.name(), after.drop, before.drop),
        (
            FaultKind::CommitThenDrop.name(),
            after.commit_then_drop,
            before.commit_then_drop,
        ),
    ] {
        if a > b {
            *stats.faults_fired.entry(name.to_string()).or_default() += a - b;
        }
    }
}

/// Writes to workloads recorded so far (no copy of the request log: this is polled).
fn workload_writes(w: &World) -> usize {
    ["deployments", "statefulsets", "cronjobs"]
        .iter()
        .map(|r| w.standin.count("patch", r))
        .sum()
}

/// One round; returns the violations found.
fn round(env: &Env, w: &World, rng: &mut fastrand::Rng, stats: &mut Stats, label: &str) -> Vec<String> {
    let mut bad = Vec::new();
    // Mostly the other way from where the world is, so that most rounds have writes to break.
    let flip = rng.f64() < 0.75;
    let target = match (w.current.get(), flip) {
        (Target::Up, true) | (Target::Down, false) => Target::Down,
        _ => Target::Up,
    };
    let before = w.snapshot();
    let writes = w.writes_needed(&before, target);
    let names: Vec<(String, &'static str)> = w
        .workloads
        .iter()
        .filter(|x| x.touchable)
        .map(|x| {
            let res = match x.kind {
                Kind::Deployment => "deployments",
                Kind::StatefulSet => "statefulsets",
                Kind::CronJob => "cronjobs",
            };
            (format!("{}/{}", x.ns, x.name), res)
        })
        .collect();
    let sc: Scenario = faults::choose(rng, writes, &names, RETRY_ATTEMPTS);
    for p in &sc.faults {
        *stats.faults_planned.entry(p.kind.name().to_string()).or_default() += 1;
        stats.persistent += p.persistent as u64;
        w.standin.add_fault(p.rule.clone());
    }
    stats.audit_outages += sc.audit_outage as u64;
    w.standin.set_latency(Duration::from_millis(sc.latency_ms));
    let fc0 = w.standin.fault_counts();
    let since = w.standin.request_count() as u64;
    let writes0 = workload_writes(w);

    let mut cmd = env.scheduler(w, target, sc.concurrency);
    if sc.audit_outage {
        cmd.env("DYNAMODB_ENDPOINT_URL", common::closed_endpoint());
    }
    let mut fire_at: Option<Duration> = None;
    let fire = |now: Duration| match sc.signal {
        Some((_, Trigger::After(at))) => now >= at,
        Some((_, Trigger::Writes(k, delay))) => {
            if fire_at.is_none() && workload_writes(w) - writes0 >= k {
                fire_at = Some(now + delay);
            }
            fire_at.is_some_and(|t| now >= t)
        }
        None => false,
    };
    let out = runner::run(cmd, sc.signal.map(|(s, _)| s), fire, RUN_LIMIT);
    w.standin.clear_faults();
    w.standin.set_latency(Duration::ZERO);
    count_fired(stats, &fc0, &w.standin.fault_counts());
    let after = w.snapshot();
    let ctx = |bad: &mut Vec<String>, what: String| {
        bad.push(format!(
            "{label} target {} [{}], faulty run {}: {what}",
            target.as_str(),
            sc.describe(),
            out.describe()
        ))
    };

    if let (Some((sig, _)), true) = (sc.signal, out.signalled) {
        let k = workload_writes(w) - writes0;
        let phase = match k {
            0 => "before any write",
            k if k < writes => "during the writes",
            _ => "after the writes",
        };
        *stats.kills.entry(format!("{} {phase}", sig.name())).or_default() += 1;
    }
    *stats.exits.entry(out.describe()).or_default() += 1;
    if out.signal == Some(15) {
        // Died of SIGTERM's default action: its handler was not installed yet. Harmless only if
        // the run had not written anything (not even the Lease).
        let wrote = w
            .standin
            .requests()
            .iter()
            .any(|r| r.seq > since && matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete"));
        if wrote {
            stats.unhandled_term_after_writes += 1;
        }
    }
    for (_, s) in out.rows() {
        *stats.ns_outcomes.entry(s).or_default() += 1;
    }

    for l in w.lost_counts(&after) {
        ctx(&mut bad, format!("count lost: {l}"));
    }
    for f in w.forbidden_writes(since) {
        ctx(&mut bad, format!("forbidden write: {f}"));
    }
    let hung = out.elapsed >= RUN_LIMIT;
    if hung {
        ctx(&mut bad, format!("hung: SIGKILLed after {RUN_LIMIT:?}"));
    } else if let (Some(sig), false) = (out.signal, out.signalled && matches!(out.signal, Some(9 | 15))) {
        // Not our signal: a crash (e.g. SIGABRT from a panic in a release build).
        ctx(
            &mut bad,
            format!("died of signal {sig}; stderr tail:\n{}", out.stderr_tail(8)),
        );
    }
    if out.signal.is_some() {
        w.expire_lease();
    } else {
        let faulted: Vec<String> = w
            .standin
            .requests()
            .iter()
            .filter(|r| r.seq > since && !r.faults.is_empty())
            .map(|r| format!("{} {} ({})", r.verb, r.resource, r.faults.join("+")))
            .collect();
        let last_fault = faulted.last().cloned().unwrap_or_else(|| "no fault".into());
        if out.code == Some(1) && out.summary().is_none() {
            let why = out.stderr.lines().last().unwrap_or_default();
            let why: String = why
                .trim_start_matches("namespace-scheduler: ")
                .chars()
                .take(70)
                .collect();
            *stats.aborted.entry(format!("{last_fault} → {why}")).or_default() += 1;
        }
        if out.code == Some(3) && workload_writes(w) == writes0 && last_fault.contains("leases") {
            stats.finding(
                "faulty run exit 3 (\"another run holds the lock\") after a fault on its own Lease write",
                format!("{label} [{}]: faults hit {}", sc.describe(), faulted.join(", ")),
            );
        } else if !matches!(out.code, Some(0 | 1)) {
            ctx(
                &mut bad,
                format!("unexpected exit; stderr tail:\n{}", out.stderr_tail(8)),
            );
        }
        for ns in &w.managed {
            let at_target = w.ns_at(&after, ns, target);
            if !at_target && !w.ns_same(&before, &after, ns) {
                let detail: Vec<String> = w
                    .in_ns(ns)
                    .map(|x| format!("{} {}→{}", x.name, before[&x.id()], after[&x.id()]))
                    .collect();
                ctx(&mut bad, format!("{ns} half-way: {}", detail.join(", ")));
            }
            if out.code == Some(0) && !at_target {
                ctx(&mut bad, format!("exit 0 but {ns} is not at target"));
            }
        }
        if sc.audit_outage && out.code == Some(0) && !out.logged_records().is_empty() {
            ctx(&mut bad, "audit records could not be written, yet exit 0".into());
        }
        let mut audit_bad = vec![];
        check_audit(env, w, (&before, &after), &out, &mut audit_bad, &mut stats.audited);
        for a in audit_bad {
            ctx(&mut bad, a);
        }
    }

    // The clean run: no faults, full DynamoDB, must converge.
    let since = w.standin.request_count() as u64;
    let mid = after;
    let mut clean = runner::run(env.scheduler(w, target, 16), None, |_| false, RUN_LIMIT);
    if clean.code == Some(3) && out.signal.is_none() {
        // The faulty run ended by itself yet left the Lease held: the next run is locked out
        // until it expires. Report it, let it expire, and require convergence after that.
        let lease = w.standin.get(
            "coordination.k8s.io/v1",
            "Lease",
            Some("task-scheduler"),
            "namespace-scheduler",
        );
        stats.finding(
            "Lease left held by a run that ended by itself: the next run exits 3 until it expires",
            format!(
                "{label} target {} [{}], faulty run {}; Lease holder {}",
                target.as_str(),
                sc.describe(),
                out.describe(),
                lease
                    .map(|l| l["spec"]["holderIdentity"].to_string())
                    .unwrap_or_default()
            ),
        );
        w.expire_lease();
        clean = runner::run(env.scheduler(w, target, 16), None, |_| false, RUN_LIMIT);
    }
    let end = w.snapshot();
    let cctx = |bad: &mut Vec<String>, what: String| {
        bad.push(format!(
            "{label} target {} [{}], faulty run {}, clean run {}: {what}",
            target.as_str(),
            sc.describe(),
            out.describe(),
            clean.describe()
        ))
    };
    if clean.code != Some(0) {
        cctx(
            &mut bad,
            format!("clean run did not exit 0; stderr tail:\n{}", clean.stderr_tail(8)),
        );
    }
    for l in w.lost_counts(&end) {
        cctx(&mut bad, format!("count lost: {l}"));
    }
    for f in w.forbidden_writes(since) {
        cctx(&mut bad, format!("forbidden write: {f}"));
    }
    let want_label = match target {
        Target::Down => "inactive",
        Target::Up => "active",
    };
    for ns in &w.managed {
        if !w.ns_at(&end, ns, target) {
            let detail: Vec<String> = w
                .in_ns(ns)
                .filter(|x| end[&x.id()] != x.target_state(target))
                .map(|x| format!("{} holds {} wants {}", x.name, end[&x.id()], x.target_state(target)))
                .collect();
            cctx(&mut bad, format!("{ns} did not converge: {}", detail.join(", ")));
        }
        let label = w.ns_status_label(ns);
        if label.as_deref() != Some(want_label) {
            cctx(&mut bad, format!("{ns} status label {label:?}, want {want_label:?}"));
        }
    }
    w.current.set(target);
    let mut audit_bad = vec![];
    check_audit(env, w, (&mid, &end), &clean, &mut audit_bad, &mut stats.audited);
    for a in audit_bad {
        cctx(&mut bad, a);
    }
    bad
}

fn print_map(title: &str, m: &BTreeMap<String, u64>) {
    let total: u64 = m.values().sum();
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!(
        "  {title} ({total}): {}",
        if items.is_empty() {
            "none".into()
        } else {
            items.join(", ")
        }
    );
}

#[test]
fn fault_campaign() {
    let rounds: u64 = std::env::var("FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("fault campaign: FAULT_SEED={seed} FAULT_ROUNDS={rounds}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dynamo = rt.block_on(common::dynamo());
    let (audit, permissions) = rt.block_on(common::unique_tables(&dynamo));
    let env = Env {
        rt,
        dynamo,
        audit,
        permissions,
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut stats = Stats::default();
    let started = Instant::now();
    let mut world: Option<(World, u64)> = None;
    for r in 1..=rounds {
        if world.as_ref().is_none_or(|(_, left)| *left == 0) {
            stats.worlds += 1;
            world = Some((World::new(stats.worlds, &mut rng), rng.u64(1..=5)));
        }
        let (w, left) = world.as_mut().expect("world");
        *left -= 1;
        let label = format!("round {r} (world {})", w.id);
        let bad = round(&env, w, &mut rng, &mut stats, &label);
        stats.rounds += 1;
        if !bad.is_empty() {
            for b in &bad {
                eprintln!("VIOLATION (FAULT_SEED={seed}, {b}");
            }
            stats.violations.extend(bad);
            // The world's truth may no longer hold: start a fresh one.
            world = None;
        }
        if r % 50 == 0 {
            println!(
                "  … {r} rounds, {} violations, {:?}",
                stats.violations.len(),
                started.elapsed()
            );
        }
    }
    let kills: BTreeMap<String, u64> = stats.kills.iter().fold(BTreeMap::new(), |mut m, (k, v)| {
        *m.entry(k.split(' ').next().unwrap_or_default().to_string())
            .or_default() += v;
        m
    });
    println!(
        "fault campaign: {} rounds in {} worlds, {:.1} s, FAULT_SEED={seed}",
        stats.rounds,
        stats.worlds,
        started.elapsed().as_secs_f64()
    );
    print_map("faults planned by kind", &stats.faults_planned);
    print_map("faults injected (fired) by kind", &stats.faults_fired);
    println!("  persistent faults (outlast the retries): {}", stats.persistent);
    print_map("signals delivered", &kills);
    print_map("signals by phase", &stats.kills);
    println!("  DynamoDB outages: {}", stats.audit_outages);
    println!(
        "  SIGTERM that ended the process before its handler, after it had written: {}",
        stats.unhandled_term_after_writes
    );
    print_map("faulty-run endings", &stats.exits);
    print_map("namespace outcomes in faulty runs", &stats.ns_outcomes);
    let aborted: BTreeMap<String, u64> = stats.aborted.clone();
    print_map(
        "faulty runs aborted before any namespace (exit 1), by the last faulted request",
        &aborted,
    );
    print_map("operations checked against the audit", &stats.audited);
    print_map("engine findings (no invariant broken)", &stats.findings);
    for e in &stats.finding_examples {
        println!("    e.g. {e}");
    }
    println!("  invariant violations: {}", stats.violations.len());
    assert!(
        stats.violations.is_empty(),
        "{} invariant violation(s); reproduce with FAULT_SEED={seed} FAULT_ROUNDS={rounds}:\n{}",
        stats.violations.len(),
        stats.violations.join("\n")
    );
}
