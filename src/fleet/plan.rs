//! The pure half of a grant and of a recovery: what to decide and what to write, from what the
//! windows table holds. No I/O here; [`super::store`] reads, commits and retries.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::record::{Partition, WindowKey, WindowRecord};
use super::{Decision, GrantBatch};
use crate::error::Result;
use crate::permissions::{rules, ProposedWindow, Window};

/// TransactWriteItems takes at most 100 actions.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// The writes of one grant: recorded atomically, or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// The cost centers whose windows `puts` records, each with the version read: its version
    /// item is bumped, on the condition that it still has that version.
    pub versions: BTreeMap<String, Option<u64>>,
    pub puts: Vec<WindowRecord>,
    /// This cluster's windows that a grant replaces: a namespace that moved to another cost
    /// center, or whose new window holds no slot.
    pub deletes: Vec<WindowKey>,
}

impl Commit {
    pub fn items(&self) -> usize {
        self.versions.len() + self.puts.len() + self.deletes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items() == 0
    }
}

/// One round of a grant: the decisions of the pending requests up to `cut` (final once
/// `commit` is in the table), and the requests after it, decided again in the next round
/// (only when one transaction cannot hold every write).
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub decided: Vec<(usize, Decision)>,
    pub commit: Commit,
    pub deferred: Vec<usize>,
}

/// Decides the pending requests (indices into `batch.requests`, in order) over the windows
/// this cluster holds (`held`: its own, from its Namespaces, and those granted in earlier
/// rounds) and the fleet's windows of the other clusters in `partitions` (one per cost center
/// read; an `Err` is a partition that does not read: its requests stay undecided). Every
/// pending request gets a decision, in order; nothing says what to write. `Err` only when the
/// calendar cannot answer.
pub fn decide(
    batch: &GrantBatch<'_>,
    cluster: &str,
    pending: &[usize],
    held: &[Window],
    partitions: &BTreeMap<String, std::result::Result<Partition, String>>,
) -> Result<Vec<(usize, Decision)>> {
    let mut decided = Vec::with_capacity(pending.len());
    let mut judged = Vec::with_capacity(pending.len());
    for &i in pending {
        match partitions.get(&batch.requests[i].cost_center) {
            Some(Err(why)) => decided.push((
                i,
                Decision::Undecided(format!("the fleet's windows of this cost center do not read: {why}")),
            )),
            _ => judged.push(i),
        }
    }
    let fleet: Vec<Window> = partitions
        .values()
        .filter_map(|p| p.as_ref().ok())
        .flat_map(|p| &p.windows)
        .filter(|r| r.cluster != cluster)
        .map(WindowRecord::window)
        .collect();
    let requests: Vec<_> = judged.iter().map(|&i| batch.requests[i].clone()).collect();
    let verdicts = rules::authorize_in_fleet(
        &requests,
        batch.permissions,
        held,
        &fleet,
        batch.hours,
        batch.at,
        batch.caps,
    )?;
    decided.extend(judged.into_iter().zip(verdicts).map(|(i, verdict)| match verdict {
        Ok(grant) => (i, Decision::Granted(grant)),
        Err(rejection) => (i, Decision::Rejected(rejection)),
    }));
    decided.sort_by_key(|(i, _)| *i);
    Ok(decided)
}

/// All or nothing: when one request is not granted, the granted ones are withheld. True when
/// that happened (nothing may be recorded then).
pub fn withhold_unless_all_granted(decided: &mut [(usize, Decision)]) -> bool {
    if decided.iter().all(|(_, d)| matches!(d, Decision::Granted(_))) {
        return false;
    }
    for (_, d) in decided.iter_mut() {
        if let Decision::Granted(g) = d {
            *d = Decision::Withheld(*g);
        }
    }
    true
}

/// [`decide`], and the writes that record the grants, as many as one transaction holds: the
/// decisions after the first grant that does not fit are deferred to the next round (they may
/// depend on it).
pub fn round(
    batch: &GrantBatch<'_>,
    cluster: &str,
    pending: &[usize],
    held: &[Window],
    partitions: &BTreeMap<String, std::result::Result<Partition, String>>,
) -> Result<Round> {
    let all = decide(batch, cluster, pending, held, partitions)?;
    let mut writes = Writes::new(cluster, held, partitions);
    let mut decided = Vec::with_capacity(all.len());
    let mut deferred = Vec::new();
    for (i, decision) in all {
        let fits = deferred.is_empty()
            && match &decision {
                Decision::Granted(grant) => writes.grant(batch, i, grant.holds_slot_from),
                _ => true,
            };
        if fits {
            decided.push((i, decision));
        } else {
            deferred.push(i);
        }
    }
    if batch.all_or_nothing && withhold_unless_all_granted(&mut decided) {
        return Ok(Round {
            decided,
            commit: Commit::default(),
            deferred,
        });
    }
    Ok(Round {
        decided,
        commit: writes.into_commit(),
        deferred,
    })
}

/// The writes of a round, built grant by grant, within one transaction's limit.
struct Writes<'a> {
    cluster: &'a str,
    partitions: &'a BTreeMap<String, std::result::Result<Partition, String>>,
    /// Where each namespace of this cluster may have its window recorded now: the cost center
    /// of its open window (from its Namespace) and every record of it in the partitions read.
    recorded: BTreeMap<&'a str, BTreeSet<WindowKey>>,
    versions: BTreeMap<String, Option<u64>>,
    puts: BTreeMap<WindowKey, WindowRecord>,
    deletes: BTreeSet<WindowKey>,
}

impl<'a> Writes<'a> {
    fn new(
        cluster: &'a str,
        held: &'a [Window],
        partitions: &'a BTreeMap<String, std::result::Result<Partition, String>>,
    ) -> Self {
        let mut recorded: BTreeMap<&str, BTreeSet<WindowKey>> = BTreeMap::new();
        let read = |cc: &str| partitions.get(cc).and_then(|p| p.as_ref().ok());
        for w in held {
            // A partition read tells whether the window is recorded there; one not read may hold it.
            if read(&w.cost_center).is_none() {
                let key = WindowKey::of(&w.cost_center, cluster, &w.namespace);
                recorded.entry(w.namespace.as_str()).or_default().insert(key);
            }
        }
        for r in partitions
            .values()
            .filter_map(|p| p.as_ref().ok())
            .flat_map(|p| &p.windows)
        {
            if r.cluster == cluster {
                recorded.entry(r.namespace.as_str()).or_default().insert(r.key());
            }
        }
        Writes {
            cluster,
            partitions,
            recorded,
            versions: BTreeMap::new(),
            puts: BTreeMap::new(),
            deletes: BTreeSet::new(),
        }
    }

    fn items(&self) -> usize {
        self.versions.len() + self.puts.len() + self.deletes.len()
    }

    /// Adds the writes of one grant; false (and nothing added) when they would not fit.
    fn grant(&mut self, batch: &GrantBatch<'a>, i: usize, holds_slot_from: Option<DateTime<Utc>>) -> bool {
        let requests: &'a [ProposedWindow] = batch.requests;
        let request = &requests[i];
        let cc = request.cost_center.as_str();
        let key = WindowKey::of(cc, self.cluster, &request.namespace);
        // The namespace's other records: the new window replaces them.
        let stale: Vec<WindowKey> = self
            .recorded
            .get(request.namespace.as_str())
            .into_iter()
            .flatten()
            .filter(|old| holds_slot_from.is_none() || **old != key)
            .cloned()
            .collect();
        let new_version = holds_slot_from.is_some() && !self.versions.contains_key(cc);
        let added = usize::from(holds_slot_from.is_some() && !self.puts.contains_key(&key))
            + usize::from(new_version)
            + stale.iter().filter(|k| !self.deletes.contains(*k)).count();
        if self.items() + added > MAX_TRANSACTION_ITEMS {
            return false;
        }
        for old in stale {
            self.puts.remove(&old);
            self.deletes.insert(old);
        }
        let entry = self.recorded.entry(request.namespace.as_str()).or_default();
        entry.clear();
        let Some(from) = holds_slot_from else {
            return true;
        };
        entry.insert(key.clone());
        if new_version {
            let version = self
                .partitions
                .get(cc)
                .and_then(|p| p.as_ref().ok())
                .and_then(|p| p.version);
            self.versions.insert(cc.to_string(), version);
        }
        self.deletes.remove(&key);
        self.puts.insert(
            key,
            WindowRecord {
                cost_center: cc.to_string(),
                cluster: self.cluster.to_string(),
                namespace: request.namespace.clone(),
                until: request.until,
                holds_slot_from: from,
                requested_by: request.requested_by.clone(),
                run_id: batch.run_id.to_string(),
                granted_at: batch.at,
            },
        );
        true
    }

    fn into_commit(self) -> Commit {
        Commit {
            versions: self.versions,
            puts: self.puts.into_values().collect(),
            deletes: self.deletes.into_iter().collect(),
        }
    }
}

/// What a cluster's recorded windows and its Namespaces' open windows disagree on, after a run
/// died between a grant and its namespace coming up (or a release was lost).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Recorded windows that no open slot-holding window of this cluster's Namespaces backs
    /// (same namespace, same cost center): they hold a slot for nothing. Release them.
    pub release: Vec<WindowKey>,
    /// Open windows that hold a slot and are not recorded as they are (granted before the
    /// windows table, or recorded with another `until` by a grant whose namespace never took
    /// it): record them, so the other clusters count exactly them.
    pub record: Vec<WindowRecord>,
}

/// One of this cluster's items listed through the cluster GSI, read or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: WindowKey,
    pub record: std::result::Result<WindowRecord, String>,
}

/// Compares this cluster's recorded windows (`listed`) with the windows open on its Namespaces
/// at `at`: the Namespaces are the truth. An item of this cluster that does not read is
/// released (nothing could count it, and it blocks its cost center); expired records are left
/// to the TTL. A window recorded again keeps its recorded requester and grant; one never
/// recorded gets `unknown` and `run_id`.
pub fn reconcile(
    cluster: &str,
    listed: &[Listed],
    open: &[Window],
    hours: &crate::hours::BusinessHours,
    at: DateTime<Utc>,
    run_id: &str,
) -> Result<Reconciliation> {
    // The open windows that hold a slot, and from when.
    let mut holding: BTreeMap<(&str, &str), (&Window, DateTime<Utc>)> = BTreeMap::new();
    for w in open.iter().filter(|w| w.open_at(at)) {
        if let Some(from) = rules::first_non_business(hours, at, w.until)? {
            holding.insert((&w.namespace, &w.cost_center), (w, from));
        }
    }
    let mut out = Reconciliation::default();
    let mut recorded: BTreeMap<(&str, &str), &WindowRecord> = BTreeMap::new();
    for l in listed.iter().filter(|l| l.key.is_of_cluster(cluster)) {
        match &l.record {
            Ok(r) if r.until <= at => {}
            Ok(r) if holding.contains_key(&(r.namespace.as_str(), r.cost_center.as_str())) => {
                recorded.insert((&r.namespace, &r.cost_center), r);
            }
            _ => out.release.push(l.key.clone()),
        }
    }
    for ((namespace, cost_center), (w, from)) in holding {
        let fresh = WindowRecord {
            cost_center: cost_center.to_string(),
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
            until: w.until,
            holds_slot_from: from,
            requested_by: "unknown".to_string(),
            run_id: run_id.to_string(),
            granted_at: at,
        };
        match recorded.get(&(namespace, cost_center)) {
            Some(r) if r.until == w.until => {}
            Some(r) => out.record.push(WindowRecord {
                until: w.until,
                holds_slot_from: from,
                ..(*r).clone()
            }),
            None => out.record.push(fresh),
        }
    }
    out.release.sort();
    out.release.dedup();
    Ok(out)
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
