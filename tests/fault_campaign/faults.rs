//! Choosing a round's faults: what goes wrong, on which request, and whether the process is
//! signalled.

use std::time::Duration;

use standin::{FaultAction, FaultRule};

use crate::runner::Signal;

/// The client timeout the campaign runs the binary with, and the latency that exceeds it.
pub const CLIENT_TIMEOUT_MS: u64 = 300;
pub const TIMEOUT_LATENCY_MS: u64 = 700;
/// The message of an injected refusal, as an admission policy would word it.
pub const REFUSAL_MESSAGE: &str = "denied by policy freeze-legacy: this workload is frozen";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    S500,
    S409,
    S429,
    Timeout,
    Drop,
    CommitThenDrop,
    /// A refusal for good (admission policy, RBAC): 403 Forbidden.
    Refused403,
    /// A refusal for good (validation, ValidatingAdmissionPolicy): 422 Invalid.
    Refused422,
}

impl FaultKind {
    /// The faults a retry can get past.
    pub const TRANSIENT: [FaultKind; 6] = [
        FaultKind::S500,
        FaultKind::S409,
        FaultKind::S429,
        FaultKind::Timeout,
        FaultKind::Drop,
        FaultKind::CommitThenDrop,
    ];
    /// Persistent faults that fail a write for good: the request is never processed. (A
    /// persistent timeout or commit-then-drop lets the write commit, and the re-read finds it
    /// done: not a failure.)
    const FAILING: [FaultKind; 4] = [FaultKind::S500, FaultKind::S409, FaultKind::S429, FaultKind::Drop];
    const REFUSALS: [FaultKind; 2] = [FaultKind::Refused403, FaultKind::Refused422];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::S500 => "500",
            FaultKind::S409 => "409",
            FaultKind::S429 => "429",
            FaultKind::Timeout => "latency beyond client timeout",
            FaultKind::Drop => "dropped connection",
            FaultKind::CommitThenDrop => "commit-then-drop",
            FaultKind::Refused403 => "refusal 403",
            FaultKind::Refused422 => "refusal 422",
        }
    }

    fn action(self) -> FaultAction {
        let refusal = |code| FaultAction::Status {
            code,
            retry_after_seconds: None,
            message: Some(REFUSAL_MESSAGE.into()),
        };
        match self {
            FaultKind::S500 => FaultAction::status(500),
            FaultKind::S409 => FaultAction::status(409),
            FaultKind::S429 => FaultAction::status(429),
            FaultKind::Timeout => FaultAction::Latency { ms: TIMEOUT_LATENCY_MS },
            FaultKind::Drop => FaultAction::Drop,
            FaultKind::CommitThenDrop => FaultAction::CommitThenDrop,
            FaultKind::Refused403 => refusal(403),
            FaultKind::Refused422 => refusal(422),
        }
    }
}

/// What a planned fault is for, which decides what must follow once it has fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Fires once: retries must get past it.
    OneShot,
    /// Fails every write of one object (more times than the retry budget): its namespace must
    /// roll back.
    Failing { ns: String, name: String },
    /// Refuses every write of one object for good: that object is skipped and named, the rest
    /// of its namespace reaches its target.
    Refusal { ns: String, name: String },
}

/// One planned fault.
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: FaultKind,
    pub rule: FaultRule,
    pub role: Role,
}

/// When the signal is sent.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    /// This long after the spawn (covers start-up, the Lease and discovery).
    After(Duration),
    /// Once the stand-in has received this many workload writes of the run, plus a delay.
    Writes(usize, Duration),
}

/// What a round does to its faulty run.
#[derive(Debug, Clone, Default)]
pub struct Scenario {
    pub faults: Vec<Planned>,
    pub signal: Option<(Signal, Trigger)>,
    /// DynamoDB unreachable: every record must be logged whole and the run must exit 1.
    pub audit_outage: bool,
    /// Per-request latency (ms) for the faulty run, so kills land mid-way.
    pub latency_ms: u64,
    pub concurrency: usize,
}

/// Which rounds a campaign plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Everything: one-shot faults anywhere, persistent failures, refusals, signals, outages.
    Full,
    /// Only one-shot faults on workload writes the run must make (each fires if the binary
    /// writes at all), no signal, no outage: what a broken retry cannot hide from.
    TransientOnWrites,
}

/// A workload the run must write (it is not at the round's target), for faults that must fire.
#[derive(Debug, Clone)]
pub struct Needing {
    pub ns: String,
    pub name: String,
    pub resource: &'static str,
}

impl Scenario {
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .faults
            .iter()
            .map(|p| {
                let r = &p.rule;
                let role = match p.role {
                    Role::OneShot => "",
                    Role::Failing { .. } => " (persistent)",
                    Role::Refusal { .. } => " (for good)",
                };
                format!(
                    "{}{role} on {} {}{}{}",
                    p.kind.name(),
                    r.verb.as_deref().unwrap_or("any request"),
                    r.resource.as_deref().unwrap_or(""),
                    r.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default(),
                    r.nth.map(|n| format!(" #{n}")).unwrap_or_default(),
                )
            })
            .collect();
        match self.signal {
            Some((s, Trigger::After(at))) => parts.push(format!("{} at {} ms", s.name(), at.as_millis())),
            Some((s, Trigger::Writes(k, d))) => {
                parts.push(format!("{} {} ms after write #{k}", s.name(), d.as_millis()))
            }
            None => {}
        }
        if self.audit_outage {
            parts.push("DynamoDB unreachable".into());
        }
        parts.push(format!(
            "latency {} ms, SCALE_CONCURRENCY={}",
            self.latency_ms, self.concurrency
        ));
        parts.join("; ")
    }
}

fn on_object(kind: FaultKind, n: &Needing) -> FaultRule {
    FaultRule::new(kind.action())
        .verb("patch")
        .resource(n.resource)
        .namespace(&n.ns)
        .name(&n.name)
}

/// Picks a round's scenario. `needing` are the workloads the run must write (persistent faults
/// and refusals pick one, so they meet a write), `attempts` the retry budget the invariants
/// assume: one-shot faults stay below it.
pub fn choose(rng: &mut fastrand::Rng, mix: Mix, needing: &[Needing], attempts: u64) -> Scenario {
    let writes = needing.len();
    let mut s = Scenario {
        concurrency: [1, 2, 4, 16][rng.usize(..4)],
        ..Scenario::default()
    };
    if mix == Mix::TransientOnWrites {
        // One to three one-shot faults, each on the first write of a workload that must be written.
        for _ in 0..rng.usize(1..=3).min(writes).min(attempts as usize - 1) {
            let kind = FaultKind::TRANSIENT[rng.usize(..FaultKind::TRANSIENT.len())];
            let n = &needing[rng.usize(..writes)];
            s.faults.push(Planned {
                kind,
                rule: on_object(kind, n).once(),
                role: Role::OneShot,
            });
        }
        s.latency_ms = rng.u64(0..=2);
        return s;
    }
    let roll = rng.f64();
    let (with_faults, with_signal) = match roll {
        r if r < 0.55 => (true, false),
        r if r < 0.85 => (false, true),
        _ => (true, true),
    };
    s.audit_outage = rng.f64() < 0.06;
    if with_faults {
        // At most three one-shot faults (four with the Lease's): fewer than the retry budget, so
        // an unlucky write can be hit by all of them and still succeed; rollback writes are
        // retried the same way.
        for _ in 0..rng.usize(1..=3) {
            let kind = FaultKind::TRANSIENT[rng.usize(..FaultKind::TRANSIENT.len())];
            // An apiserver answers 409 only to writes (a conflict or AlreadyExists), so a 409
            // goes to a workload write; the other kinds may hit any request.
            let pick = if kind == FaultKind::S409 { 0 } else { rng.usize(..10) };
            let rule = match pick {
                0..=5 => FaultRule::new(kind.action())
                    .verb("patch")
                    .nth(rng.u64(1..=writes.max(1) as u64 + 2)),
                6 => FaultRule::new(kind.action()).verb("list").nth(rng.u64(1..=4)),
                7 => FaultRule::new(kind.action()).verb("get").nth(rng.u64(1..=3)),
                _ => FaultRule::new(kind.action()).nth(rng.u64(1..=writes as u64 + 8)),
            };
            s.faults.push(Planned {
                kind,
                rule: rule.once(),
                role: Role::OneShot,
            });
        }
        if rng.f64() < 0.1 {
            // The Lease write (create on a world's first run, update after), which every
            // mutating run starts with.
            let kind = FaultKind::TRANSIENT[rng.usize(..FaultKind::TRANSIENT.len())];
            let verb = if rng.bool() { "update" } else { "create" };
            s.faults.push(Planned {
                kind,
                rule: FaultRule::new(kind.action()).verb(verb).resource("leases").once(),
                role: Role::OneShot,
            });
        }
        // At most one object with a persistent fault per round: a failure or a refusal.
        if writes > 0 {
            let n = &needing[rng.usize(..writes)];
            let (ns, name) = (n.ns.clone(), n.name.clone());
            match rng.f64() {
                r if r < 0.25 => {
                    let kind = FaultKind::FAILING[rng.usize(..FaultKind::FAILING.len())];
                    s.faults.push(Planned {
                        kind,
                        // Past the budget, so the forward write fails; the rest for the
                        // rollback's own writes of that object, which must then get through.
                        rule: on_object(kind, n).times(attempts + 2),
                        role: Role::Failing { ns, name },
                    });
                }
                r if r < 0.45 => {
                    let kind = FaultKind::REFUSALS[rng.usize(..2)];
                    s.faults.push(Planned {
                        kind,
                        rule: on_object(kind, n),
                        role: Role::Refusal { ns, name },
                    });
                }
                _ => {}
            }
        }
    }
    if with_signal {
        s.latency_ms = rng.u64(3..=25);
        let sig = if rng.bool() { Signal::Term } else { Signal::Kill };
        let trigger = if writes == 0 || rng.f64() < 0.35 {
            // Anywhere in start-up, the Lease, discovery and the writes: roughly 10 reads and
            // `writes / concurrency` rounds of writes (plus Events and labels), one latency each.
            let rounds = 10 + 2 * writes.div_ceil(s.concurrency) as u64;
            Trigger::After(Duration::from_millis(rng.u64(0..=15 + s.latency_ms * rounds)))
        } else {
            // Mid-way through the writes: right after the k-th reached the server.
            Trigger::Writes(rng.usize(1..=writes), Duration::from_millis(rng.u64(0..=s.latency_ms)))
        };
        s.signal = Some((sig, trigger));
    } else {
        s.latency_ms = rng.u64(0..=2);
    }
    s
}
