//! One round: a faulty run towards the state the world is not in, then a clean run. What each
//! run must have done is stated from what actually happened to it: which planned faults fired
//! (and how often), whether the signal was delivered, whether DynamoDB was unreachable.

use std::time::Duration;

use serde_json::Value;

use crate::faults::{self, Planned, Role, Scenario, Trigger};
use crate::runner::{self, Outcome, Signal};
use crate::world::{Kind, Snapshot, Target, World};
use crate::{audit, Env, Stats, RUN_LIMIT};

/// Workload writes recorded so far (no copy of the request log: this is polled).
fn workload_writes(w: &World) -> usize {
    Kind::ALL.iter().map(|k| w.standin.count("patch", k.resource())).sum()
}

/// What happened to a faulty run, as far as the invariants care.
struct Facts<'a> {
    target: Target,
    /// How often each planned fault fired (0 for all when injection is off).
    fired: Vec<(&'a Planned, u64)>,
    /// One-shot faults that fired, all requests together: below the budget, retries must win.
    transient: u64,
    /// The signal, when it was delivered while the process ran.
    signal: Option<Signal>,
    outage: bool,
    budget: u64,
}

impl Facts<'_> {
    /// A persistent failure that fired at least the retry budget on `ns`: it must roll back.
    fn failed_for_good(&self, ns: &str) -> bool {
        self.fired
            .iter()
            .any(|(p, n)| matches!(&p.role, Role::Failing { ns: f, .. } if f == ns) && *n >= self.budget)
    }

    /// A persistent failure on `ns` that fired at all (even fewer times than the budget).
    fn failure_fired(&self, ns: &str) -> bool {
        self.fired
            .iter()
            .any(|(p, n)| matches!(&p.role, Role::Failing { ns: f, .. } if f == ns) && *n > 0)
    }

    fn any_failure_fired(&self) -> bool {
        self.fired
            .iter()
            .any(|(p, n)| matches!(p.role, Role::Failing { .. }) && *n > 0)
    }

    /// The object of `ns` whose write was refused, if a refusal fired there.
    fn refused_in(&self, ns: &str) -> Option<&str> {
        self.fired.iter().find_map(|(p, n)| match &p.role {
            Role::Refusal { ns: r, name } if r == ns && *n > 0 => Some(name.as_str()),
            _ => None,
        })
    }

    fn within_budget(&self) -> bool {
        self.transient < self.budget
    }
}

/// Plays one round; returns the violations found.
pub fn play(env: &Env, w: &World, rng: &mut fastrand::Rng, stats: &mut Stats, label: &str) -> Vec<String> {
    let settings = &env.settings;
    let target = w.current.get().other();
    let before = w.snapshot();
    let needing = w.needing(&before, target);
    let sc: Scenario = faults::choose(rng, settings.mix, &needing, settings.budget);
    let ids: Vec<Option<u64>> = sc
        .faults
        .iter()
        .map(|p| {
            *stats.faults_planned.entry(p.kind.name().to_string()).or_default() += 1;
            settings.inject.then(|| w.standin.add_fault(p.rule.clone()))
        })
        .collect();
    w.standin.set_latency(Duration::from_millis(sc.latency_ms));
    let since = w.standin.request_count() as u64;
    let writes0 = workload_writes(w);

    let mut cmd = env.scheduler(w, target, sc.concurrency);
    if sc.audit_outage {
        cmd.env("DYNAMODB_ENDPOINT_URL", crate::common::closed_endpoint());
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
    let fired: Vec<(&Planned, u64)> = sc
        .faults
        .iter()
        .zip(&ids)
        .map(|(p, id)| (p, id.and_then(|id| w.standin.fault_fired(id)).unwrap_or(0)))
        .collect();
    w.standin.clear_faults();
    w.standin.set_latency(Duration::ZERO);
    // A request whose client has gone — delayed past the client's timeout, or in flight when
    // the run was killed — may still be served (a write committed) when its delay is over: wait
    // until the stand-in has none in flight, so the snapshot holds what the cluster finally holds
    // (a clean run's changes are then never confused with a killed run's last writes).
    settle(w);
    let after = w.snapshot();
    let facts = Facts {
        target,
        transient: fired
            .iter()
            .filter(|(p, _)| p.role == Role::OneShot)
            .map(|(_, n)| n)
            .sum(),
        fired,
        signal: sc.signal.map(|(s, _)| s).filter(|_| out.signalled),
        outage: sc.audit_outage,
        budget: settings.budget,
    };
    tally(stats, w, &sc, &facts, &out, writes0, needing.len());

    let mut bad = Vec::new();
    let ctx = |bad: &mut Vec<String>, what: String| {
        bad.push(format!(
            "{label} target {} [{}], faulty run {}: {what}",
            target.as_str(),
            sc.describe(),
            out.describe()
        ))
    };
    for l in w.lost_counts(&after) {
        ctx(&mut bad, format!("count lost: {l}"));
    }
    for f in w.forbidden_writes(since) {
        ctx(&mut bad, format!("forbidden write: {f}"));
    }
    match (out.code, out.signal) {
        _ if out.elapsed >= RUN_LIMIT => ctx(&mut bad, format!("hung: SIGKILLed after {RUN_LIMIT:?}")),
        (_, Some(15)) if out.signalled => {
            // SIGTERM's default action: the handler was not installed yet. It is installed before
            // anything else, so the run must not have sent a single request.
            let sent = w.standin.request_count() as u64 - since;
            if sent > 0 {
                ctx(
                    &mut bad,
                    format!("ended by SIGTERM without its handler after {sent} API request(s)"),
                );
            } else {
                stats.term_before_handler += 1;
            }
        }
        (_, Some(9)) if out.signalled => {}
        (None, sig) => ctx(
            &mut bad,
            format!("died of signal {sig:?}; stderr tail:\n{}", out.stderr_tail(8)),
        ),
        (Some(code), _) => {
            for v in ended_by_itself(env, w, (&before, &after), &facts, &out, code, stats) {
                ctx(&mut bad, v);
            }
        }
    }
    if out.code.is_none() {
        // A killed run never released its Lease: let it expire, as time would.
        w.expire_lease();
    }
    let clean = clean_run(env, w, target, &sc, &out, after.clone(), stats, label, &mut bad);
    // The clean run closed what the faulty one left open (it took over a killed run's Lease).
    let mut audit_bad = Vec::new();
    audit::check_exactly_once(env, w, (&before, &after), &out, sc.audit_outage, &mut audit_bad);
    for a in audit_bad {
        ctx(&mut bad, format!("write-ahead audit: {a}"));
    }
    *stats
        .proved
        .entry("write-ahead audit: one final record per change, none in_progress".into())
        .or_default() += 1;
    let (mid, end, clean) = clean;
    let mut audit_bad = Vec::new();
    audit::check_exactly_once(env, w, (&mid, &end), &clean, false, &mut audit_bad);
    for a in audit_bad {
        ctx(&mut bad, format!("write-ahead audit of the clean run: {a}"));
    }
    bad
}

/// Counts what the round did, for the report.
fn tally(stats: &mut Stats, w: &World, sc: &Scenario, facts: &Facts, out: &Outcome, writes0: usize, writes: usize) {
    let mut any = false;
    for (p, n) in &facts.fired {
        if *n > 0 {
            any = true;
            *stats.faults_fired.entry(p.kind.name().to_string()).or_default() += n;
        }
    }
    stats.rounds += 1;
    stats.rounds_planned += !sc.faults.is_empty() as u64;
    stats.rounds_fired += any as u64;
    stats.audit_outages += facts.outage as u64;
    if let Some(sig) = facts.signal {
        let phase = match workload_writes(w) - writes0 {
            0 => "before any write",
            k if k < writes => "during the writes",
            _ => "after the writes",
        };
        *stats.kills.entry(format!("{} {phase}", sig.name())).or_default() += 1;
    }
    if !any && facts.signal.is_none() && !facts.outage {
        stats.inert += 1;
    }
    *stats.exits.entry(out.describe()).or_default() += 1;
    for (_, s) in out.rows() {
        *stats.ns_outcomes.entry(s).or_default() += 1;
    }
}

fn status_of(row: &Option<Value>) -> &str {
    row.as_ref().and_then(|r| r["status"].as_str()).unwrap_or("no row")
}

/// The invariants of a faulty run that exited by itself (a handled SIGTERM included).
fn ended_by_itself(
    env: &Env,
    w: &World,
    (before, after): (&Snapshot, &Snapshot),
    facts: &Facts,
    out: &Outcome,
    code: i32,
    stats: &mut Stats,
) -> Vec<String> {
    let mut bad = Vec::new();
    if !matches!(code, 0 | 1) {
        bad.push(format!("unexpected exit; stderr tail:\n{}", out.stderr_tail(8)));
    }
    let mut proved = |what: &str| *stats.proved.entry(what.to_string()).or_default() += 1;
    for ns in &w.managed {
        let refused = facts.refused_in(ns);
        let untouched = |name: &str| {
            w.in_ns(ns)
                .filter(|x| x.name == name)
                .all(|x| before[&x.id()] == after[&x.id()])
        };
        let at_target = w
            .in_ns(ns)
            .filter(|x| Some(x.name.as_str()) != refused)
            .all(|x| after[&x.id()] == x.target_state(facts.target));
        let at_start = w.ns_same(before, after, ns);
        let row = out.row(ns);
        let status = status_of(&row);
        if !at_target && !at_start {
            let detail: Vec<String> = w
                .in_ns(ns)
                .map(|x| format!("{} {}→{}", x.name, before[&x.id()], after[&x.id()]))
                .collect();
            bad.push(format!("{ns} half-way ({status}): {}", detail.join(", ")));
        }
        if code == 0 && !at_target {
            bad.push(format!("exit 0 but {ns} is not at target ({status})"));
        }
        if facts.failed_for_good(ns) {
            // Every attempt of one write failed: the namespace must be back at its start.
            proved("persistent failure: namespace rolled back, exit 1");
            if !at_start || status != "rolled_back" {
                bad.push(format!(
                    "{ns}: a write failed {}+ times, yet the namespace is {} ({status}), not rolled back",
                    facts.budget,
                    if at_target { "at target" } else { "not at its start" }
                ));
            }
        } else if facts.within_budget() && !facts.failure_fired(ns) {
            // Nothing a retry cannot get past: at target, unless a SIGTERM kept it from starting.
            let stopped = facts.signal == Some(Signal::Term) && at_start && status == "not_processed";
            if facts.transient > 0 {
                proved("transient faults below the retry budget: namespace at target");
            }
            if !at_target && !stopped {
                bad.push(format!(
                    "{ns}: {} one-shot fault(s) fired, fewer than the {} attempts, yet it is not at target ({status})",
                    facts.transient, facts.budget
                ));
            }
        }
        if let Some(name) = refused {
            proved("refusal: object untouched, rest at target, named in summary and audit");
            if !untouched(name) {
                bad.push(format!("{ns}: {name} was refused for good, yet it changed"));
            }
            let named = row.as_ref().and_then(|r| r["error"].as_str()).unwrap_or("");
            if status != "completed" || !(named.contains(name) && named.contains(faults::REFUSAL_MESSAGE)) {
                bad.push(format!(
                    "{ns}: refusal of {name} not reported as a completed row naming it with the API's message: {row:?}"
                ));
            }
            if let Err(e) = audit::check_refusal_named(env, ns, name, faults::REFUSAL_MESSAGE, out) {
                bad.push(e);
            }
        }
    }
    let all_fine = facts.within_budget() && !facts.any_failure_fired() && facts.signal.is_none() && !facts.outage;
    if all_fine {
        proved("nothing past the retry budget, no signal, no outage: exit 0");
        if code != 0 {
            bad.push(format!(
                "exit {code} although only {} one-shot fault(s) fired (budget {}); stderr tail:\n{}",
                facts.transient,
                facts.budget,
                out.stderr_tail(6)
            ));
        }
    }
    if w.managed.iter().any(|ns| facts.failed_for_good(ns)) && code != 1 {
        bad.push(format!("exit {code} although a namespace had to roll back"));
    }
    if facts.signal == Some(Signal::Term) {
        proved("SIGTERM handled: every namespace at target or start, audit written");
    }
    if facts.outage {
        let moved = w.managed.iter().any(|ns| !w.ns_same(before, after, ns));
        if moved && code == 0 {
            bad.push("audit records could not be written, yet exit 0".into());
        }
    }
    audit::check(env, w, (before, after), out, &mut bad, &mut stats.audited);
    bad
}

/// The clean run: no faults, full DynamoDB, must converge. Returns the snapshots before and
/// after it, and its outcome.
#[allow(clippy::too_many_arguments)]
fn clean_run(
    env: &Env,
    w: &World,
    target: Target,
    sc: &Scenario,
    out: &Outcome,
    mid: Snapshot,
    stats: &mut Stats,
    label: &str,
    bad: &mut Vec<String>,
) -> (Snapshot, Snapshot, Outcome) {
    let since = w.standin.request_count() as u64;
    let mut clean = runner::run(env.scheduler(w, target, 16), None, |_| false, RUN_LIMIT);
    if clean.code == Some(3) && out.code.is_some() {
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
    settle(w);
    let end = w.snapshot();
    let ctx = |bad: &mut Vec<String>, what: String| {
        bad.push(format!(
            "{label} target {} [{}], faulty run {}, clean run {}: {what}",
            target.as_str(),
            sc.describe(),
            out.describe(),
            clean.describe()
        ))
    };
    if clean.code != Some(0) {
        ctx(
            bad,
            format!("clean run did not exit 0; stderr tail:\n{}", clean.stderr_tail(8)),
        );
    }
    for l in w.lost_counts(&end) {
        ctx(bad, format!("count lost: {l}"));
    }
    for f in w.forbidden_writes(since) {
        ctx(bad, format!("forbidden write: {f}"));
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
            ctx(bad, format!("{ns} did not converge: {}", detail.join(", ")));
        }
        let label = w.ns_status_label(ns);
        if label.as_deref() != Some(want_label) {
            ctx(bad, format!("{ns} status label {label:?}, want {want_label:?}"));
        }
    }
    w.current.set(target);
    let mut audit_bad = vec![];
    audit::check(env, w, (&mid, &end), &clean, &mut audit_bad, &mut stats.audited);
    for a in audit_bad {
        ctx(bad, a);
    }
    (mid, end, clean)
}

/// Waits until the stand-in has answered every request it received (see `Standin::wait_idle`).
fn settle(w: &World) {
    let limit = Duration::from_millis(faults::TIMEOUT_LATENCY_MS + 5_000);
    if !w.standin.wait_idle(limit) {
        eprintln!("fault campaign: the stand-in still had requests in flight after {limit:?}");
    }
}
