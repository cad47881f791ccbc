//! Fault campaign: randomized rounds against the API stand-in, over worlds of Deployments,
//! StatefulSets, CronJobs and KEDA ScaledObjects (some paused by someone else, which must stay
//! so). Each round asks for the state the world is not in (so the run has writes to break), with faults at random requests (500, 409,
//! 429, latency beyond the client timeout, dropped connection, commit-then-drop), sometimes one
//! object whose writes fail for good or are refused for good (403/422, as an admission policy
//! does), a SIGTERM or SIGKILL at a random instant, or DynamoDB unreachable; then a clean run.
//!
//! What must follow is stated from what actually happened: each planned fault's fire count
//! (the stand-in's `fault_fired`), whether the signal was delivered, whether DynamoDB was down.
//! After every run:
//!
//! 1. no original replica count or suspend state is ever lost (each workload is either at its
//!    original, or off with the original in our annotation), and what must never be touched
//!    (protected or excluded namespaces, excluded or operator-owned workloads) never is;
//! 2. a run that exited by itself (a handled SIGTERM included) leaves every namespace at its
//!    target or exactly at its starting state, and exit 0 means every namespace is at target;
//! 3. one-shot faults that fired fewer times than the retry budget (`NS_SCHEDULER_RETRY_ATTEMPTS`
//!    as the campaign sets it) leave every namespace without a persistent fault at its target,
//!    and with no signal, no outage and no persistent failure the exit code is 0; under SIGTERM
//!    a namespace may instead stay at its start, reported `not_processed`;
//! 4. a write that failed as many times as the budget rolls its namespace back (row
//!    `rolled_back`, exit 1);
//! 5. a refused object (403/422 on its every write) is untouched, the rest of its namespace at
//!    target, its row `completed` and naming it with the API's message, and its audit record
//!    lists it as skipped with that message (docs/reference.md, "A refusal is not a failure");
//! 6. the SIGTERM handler is installed before anything else: a process ended by SIGTERM's default
//!    action must not have sent a single API request;
//! 7. every operation that happened is in the audit table (DynamoDB Local), with `to` values
//!    matching the cluster, or was logged whole with exit 1 (and DynamoDB down means exit 1);
//! 8. the clean run exits 0 and converges: every namespace at target, with its status label, and
//!    a completed `up` restores exactly the original counts, suspend states and KEDA pauses;
//! 9. the write-ahead audit (docs/reference.md §6): once the clean run has closed what the faulty
//!    run left open (a SIGKILLed run's intents become `interrupted`), every namespace either run
//!    changed has exactly one record of that run in the table (none with DynamoDB unreachable:
//!    logged whole, see 7), and no record of either run is left `in_progress`.
//!
//! A SIGKILLed run only has to keep (1), and the next run must converge (8) and close its audit
//! (9) once its Lease has expired (the campaign expires it instead of waiting). A run that ended by itself yet left the
//! Lease held is printed as a finding (the clean run exits 3; the Lease is then expired and (8)
//! still required).
//!
//! Only rounds whose faults fired, whose signal was delivered, or whose DynamoDB was down prove
//! anything; the rest are counted as inert. A campaign in which fewer than half of the rounds
//! with planned faults saw one fire fails: its injection is not reaching the binary. Two short
//! self-checks run the campaign against a binary that retries once (it must report violations)
//! and with injection switched off (nothing fires, and the campaign must say so).
//!
//! `FAULT_ROUNDS` (default 20), `FAULT_SEED` (default: from the clock; always printed) and
//! `FAULT_BIN` (default: the binary cargo built for this test).
//! A failure prints the seed and the round: `FAULT_SEED=S FAULT_ROUNDS=R` replays the same
//! choices (the instants at which requests and signals meet still vary with timing).

#[path = "fault_campaign/audit.rs"]
mod audit;
mod common;
#[path = "fault_campaign/faults.rs"]
mod faults;
#[path = "fault_campaign/round.rs"]
mod round;
#[path = "fault_campaign/runner.rs"]
mod runner;
#[path = "fault_campaign/world.rs"]
mod world;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use faults::Mix;
use world::{Target, World};

/// The retry budget the campaign runs the binary with, and that its invariants assume.
const RETRY_ATTEMPTS: u64 = 5;
const RUN_LIMIT: Duration = Duration::from_secs(90);

/// How a campaign is played.
#[derive(Debug, Clone)]
struct Settings {
    rounds: u64,
    seed: u64,
    mix: Mix,
    /// The retry budget the invariants assume.
    budget: u64,
    /// `NS_SCHEDULER_RETRY_ATTEMPTS` given to the binary (the self-check breaks it).
    binary_attempts: u64,
    /// Whether planned faults are handed to the stand-in (the self-check switches it off).
    inject: bool,
    /// Printed before each report line; the main campaign's lines start "fault campaign" and
    /// two spaces, which is what `benches/report.py` records.
    title: &'static str,
}

impl Settings {
    fn new(title: &'static str, rounds: u64, seed: u64) -> Settings {
        Settings {
            rounds,
            seed,
            mix: Mix::Full,
            budget: RETRY_ATTEMPTS,
            binary_attempts: RETRY_ATTEMPTS,
            inject: true,
            title,
        }
    }
}

struct Env {
    rt: tokio::runtime::Runtime,
    dynamo: common::DynamoHandle,
    audit: String,
    permissions: String,
    settings: Settings,
}

#[derive(Default)]
struct Stats {
    rounds: u64,
    worlds: u64,
    /// Rounds that planned faults, and those in which at least one of them fired.
    rounds_planned: u64,
    rounds_fired: u64,
    /// Rounds in which nothing fired, no signal was delivered and DynamoDB was up: no proof.
    inert: u64,
    faults_planned: BTreeMap<String, u64>,
    faults_fired: BTreeMap<String, u64>,
    kills: BTreeMap<String, u64>,
    audit_outages: u64,
    /// SIGTERMs that ended the process before its handler, with no request sent.
    term_before_handler: u64,
    exits: BTreeMap<String, u64>,
    ns_outcomes: BTreeMap<String, u64>,
    /// How many times each fault-specific expectation was checked (it held or is a violation).
    proved: BTreeMap<String, u64>,
    violations: Vec<String>,
    /// Engine behaviour worth reporting that breaks no invariant (nothing lost, converges once
    /// a stale Lease expires), by kind, with the first examples.
    findings: BTreeMap<String, u64>,
    finding_examples: Vec<String>,
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

    /// Why this campaign proves nothing, if it does not: no planned fault fired in at least
    /// half of the rounds that planned some (injection not reaching the binary).
    fn ineffective(&self) -> Option<String> {
        (self.rounds_planned > 0 && self.rounds_fired * 2 < self.rounds_planned).then(|| {
            format!(
                "faults fired in only {} of the {} rounds that planned them: the injection does not reach the binary, so these rounds prove nothing",
                self.rounds_fired, self.rounds_planned
            )
        })
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
            .env("NS_SCHEDULER_RETRY_ATTEMPTS", self.settings.binary_attempts.to_string())
            .env("NS_SCHEDULER_RETRY_BASE_MS", "5")
            .env("NS_SCHEDULER_RETRY_MAX_MS", "60")
            .env("NS_SCHEDULER_LEASE_SECONDS", "20")
            .args(["--output", "json", "run", "--at", target.at()]);
        cmd
    }
}

fn print_map(indent: &str, title: &str, m: &BTreeMap<String, u64>) {
    let total: u64 = m.values().sum();
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!(
        "{indent}{title} ({total}): {}",
        if items.is_empty() {
            "none".into()
        } else {
            items.join(", ")
        }
    );
}

/// Plays a campaign and prints its report.
fn campaign(settings: Settings) -> Stats {
    let (title, seed, rounds) = (settings.title, settings.seed, settings.rounds);
    // The main campaign's report lines are what benches/report.py records ("fault campaign…",
    // two-space indented lines, "VIOLATION…"); a self-check's must not be mistaken for them.
    let main = title == "fault campaign";
    let (indent, tag) = if main {
        ("  ", "VIOLATION")
    } else {
        ("[self-check] ", "[self-check] violation found")
    };
    println!("{title}: FAULT_SEED={seed} FAULT_ROUNDS={rounds}");
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
        settings,
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
        let bad = round::play(&env, w, &mut rng, &mut stats, &label);
        if !bad.is_empty() {
            for b in &bad {
                eprintln!("{tag} ({title}, FAULT_SEED={seed}, {b}");
            }
            stats.violations.extend(bad);
            // The world's truth may no longer hold: start a fresh one.
            world = None;
        }
        if r % 50 == 0 {
            println!(
                "{indent}… {r} rounds, {} violations, {:?}",
                stats.violations.len(),
                started.elapsed()
            );
        }
    }
    let s = &stats;
    let kills: BTreeMap<String, u64> = s.kills.iter().fold(BTreeMap::new(), |mut m, (k, v)| {
        *m.entry(k.split(' ').next().unwrap_or_default().to_string())
            .or_default() += v;
        m
    });
    println!(
        "{title}: {} rounds in {} worlds, {:.1} s, FAULT_SEED={seed}",
        s.rounds,
        s.worlds,
        started.elapsed().as_secs_f64()
    );
    let bin = std::env::var("FAULT_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| format!("{} (built by cargo for this test)", common::BIN));
    println!(
        "{indent}binary: {bin}, run with NS_SCHEDULER_RETRY_ATTEMPTS={} (the invariants assume {})",
        env.settings.binary_attempts, env.settings.budget
    );
    println!(
        "{indent}rounds with planned faults: {}, in which a fault fired: {}; inert rounds (nothing fired, no signal, no outage; not counted as proof): {}",
        s.rounds_planned, s.rounds_fired, s.inert
    );
    print_map(indent, "faults planned by kind", &s.faults_planned);
    print_map(indent, "faults fired by kind (stand-in fire counts)", &s.faults_fired);
    print_map(indent, "signals delivered", &kills);
    print_map(indent, "signals by phase", &s.kills);
    println!("{indent}DynamoDB outages: {}", s.audit_outages);
    println!(
        "{indent}SIGTERM before its handler (process ended by the default action, no request sent): {}",
        s.term_before_handler
    );
    print_map(indent, "faulty-run endings", &s.exits);
    print_map(indent, "namespace outcomes in faulty runs", &s.ns_outcomes);
    print_map(indent, "expectations checked, from what fired", &s.proved);
    print_map(indent, "operations checked against the audit", &s.audited);
    print_map(indent, "engine findings (no invariant broken)", &s.findings);
    for e in &s.finding_examples {
        println!("{indent}  e.g. {e}");
    }
    println!("{indent}invariant violations: {}", s.violations.len());
    if let Some(why) = s.ineffective() {
        println!("{indent}NO PROOF: {why}");
    }
    stats
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
    let stats = campaign(Settings::new("fault campaign", rounds, seed));
    assert!(
        stats.violations.is_empty(),
        "{} invariant violation(s); reproduce with FAULT_SEED={seed} FAULT_ROUNDS={rounds}:\n{}",
        stats.violations.len(),
        stats.violations.join("\n")
    );
    assert_eq!(stats.ineffective(), None, "FAULT_SEED={seed}");
}

/// The campaign can fail: against a binary that gives up after one attempt, one-shot faults
/// on writes it must make are not absorbed, and the campaign says so.
#[test]
fn self_check_a_binary_that_retries_once_is_reported() {
    let mut s = Settings::new("self-check (binary retries once)", 4, 20261203);
    s.mix = Mix::TransientOnWrites;
    s.binary_attempts = 1;
    let stats = campaign(s);
    assert!(stats.rounds_fired > 0, "no fault fired: nothing was tested");
    assert!(
        !stats.violations.is_empty(),
        "one retry only, yet no violation reported in {} rounds with faults fired",
        stats.rounds_fired
    );
}

/// Planned faults that never reach the stand-in fire nowhere: the campaign counts none as fired
/// and declares that it proves nothing, instead of passing quietly.
#[test]
fn self_check_with_injection_off_nothing_fires_and_nothing_is_proved() {
    let mut s = Settings::new("self-check (injection off)", 3, 20261204);
    s.mix = Mix::TransientOnWrites;
    s.inject = false;
    let stats = campaign(s);
    assert_eq!(stats.faults_fired.values().sum::<u64>(), 0);
    assert_eq!(stats.rounds_fired, 0);
    assert_eq!(stats.inert, stats.rounds, "every round is inert");
    assert!(stats.rounds_planned > 0, "faults were planned");
    assert!(stats.ineffective().is_some(), "the campaign must say it proves nothing");
    assert!(stats.violations.is_empty(), "{:?}", stats.violations);
}
