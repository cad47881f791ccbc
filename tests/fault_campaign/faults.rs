//! Choosing a round's faults: what goes wrong, on which request, and whether the process is
//! signalled.

use std::time::Duration;

use standin::{FaultAction, FaultRule};

use crate::runner::Signal;

/// The client timeout the campaign runs the binary with, and the latency that exceeds it.
pub const CLIENT_TIMEOUT_MS: u64 = 300;
pub const TIMEOUT_LATENCY_MS: u64 = 700;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    S500,
    S409,
    S429,
    Timeout,
    Drop,
    CommitThenDrop,
}

impl FaultKind {
    const ALL: [FaultKind; 6] = [
        FaultKind::S500,
        FaultKind::S409,
        FaultKind::S429,
        FaultKind::Timeout,
        FaultKind::Drop,
        FaultKind::CommitThenDrop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::S500 => "500",
            FaultKind::S409 => "409",
            FaultKind::S429 => "429",
            FaultKind::Timeout => "latency beyond client timeout",
            FaultKind::Drop => "dropped connection",
            FaultKind::CommitThenDrop => "commit-then-drop",
        }
    }

    fn action(self) -> FaultAction {
        match self {
            FaultKind::S500 => FaultAction::status(500),
            FaultKind::S409 => FaultAction::status(409),
            FaultKind::S429 => FaultAction::status(429),
            FaultKind::Timeout => FaultAction::Latency { ms: TIMEOUT_LATENCY_MS },
            FaultKind::Drop => FaultAction::Drop,
            FaultKind::CommitThenDrop => FaultAction::CommitThenDrop,
        }
    }
}

/// One planned fault, for the report.
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: FaultKind,
    pub rule: FaultRule,
    /// A persistent fault outlasts the retries, so its namespace must roll back.
    pub persistent: bool,
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

impl Scenario {
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .faults
            .iter()
            .map(|p| {
                let r = &p.rule;
                format!(
                    "{}{} on {} {}{}{}",
                    p.kind.name(),
                    if p.persistent { " (persistent)" } else { "" },
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

/// Picks a round's scenario. `writes` is how many workload writes the run needs, `workloads`
/// the names of the managed workloads (persistent faults pick one), `attempts` the binary's
/// retry budget.
pub fn choose(rng: &mut fastrand::Rng, writes: usize, workloads: &[(String, &'static str)], attempts: u64) -> Scenario {
    let mut s = Scenario {
        concurrency: [1, 2, 4, 16][rng.usize(..4)],
        ..Scenario::default()
    };
    let roll = rng.f64();
    let (with_faults, with_signal) = match roll {
        r if r < 0.55 => (true, false),
        r if r < 0.85 => (false, true),
        _ => (true, true),
    };
    s.audit_outage = rng.f64() < 0.06;
    if with_faults {
        // At most three one-shot faults: fewer than the retry budget, so an unlucky write can be
        // hit by all of them and still succeed; rollback writes are retried the same way.
        for _ in 0..rng.usize(1..=3) {
            let kind = FaultKind::ALL[rng.usize(..FaultKind::ALL.len())];
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
                persistent: false,
            });
        }
        if rng.f64() < 0.1 {
            // The Lease write (create on a world's first run, update after), which every
            // mutating run starts with.
            let kind = FaultKind::ALL[rng.usize(..FaultKind::ALL.len())];
            let verb = if rng.bool() { "update" } else { "create" };
            s.faults.push(Planned {
                kind,
                rule: FaultRule::new(kind.action()).verb(verb).resource("leases").once(),
                persistent: false,
            });
        }
        if !workloads.is_empty() && rng.f64() < 0.35 {
            let (ns_name, resource) = &workloads[rng.usize(..workloads.len())];
            let (ns, name) = ns_name.split_once('/').expect("ns/name");
            let kind = FaultKind::ALL[rng.usize(..FaultKind::ALL.len())];
            let rule = FaultRule::new(kind.action())
                .verb("patch")
                .resource(resource)
                .namespace(ns)
                .name(name)
                .times(attempts + 2);
            s.faults.push(Planned {
                kind,
                rule,
                persistent: true,
            });
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
