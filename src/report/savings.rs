//! Hours down and what they saved (docs/reference.md §8), from the same transitions as the active hours.
//!
//! A namespace is down from a completed deactivation until its next completed activation. Each
//! workload that deactivation scaled down saves `replicas removed × per-replica request` from
//! then until the namespace's next activation, whatever that activation restores (someone may
//! have changed the workload while it was down; it was down from us until then at most). A
//! workload scaled down again while still down (someone brought it back up by hand, the next
//! run took it down again) ends its earlier saving there and starts the new one. Everything is
//! clipped to the report's range; what is still down at its end is counted to the end.
//!
//! A deactivation recorded before requests were (no totals on the record) still gives hours
//! down; its savings are unknown and are counted as "unknown seconds", never as zero.

use std::collections::BTreeMap;

use super::Transition;
use crate::resources::{Requested, BYTES_PER_GIB, MILLICORES_PER_VCPU};

/// Down time of one (namespace, cost center) and what it saved. Time in seconds; savings in
/// request-seconds (millicore-seconds, byte-seconds) so the sums stay exact enough for money.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Downtime {
    pub seconds: f64,
    pub millicore_seconds: f64,
    pub byte_seconds: f64,
    /// Down time opened by records without request figures: their savings are not known.
    pub unknown_seconds: f64,
}

impl Downtime {
    pub fn vcpu_hours(&self) -> f64 {
        self.millicore_seconds / MILLICORES_PER_VCPU / 3600.0
    }

    pub fn gib_hours(&self) -> f64 {
        self.byte_seconds / BYTES_PER_GIB / 3600.0
    }
}

impl std::ops::AddAssign for Downtime {
    fn add_assign(&mut self, o: Downtime) {
        self.seconds += o.seconds;
        self.millicore_seconds += o.millicore_seconds;
        self.byte_seconds += o.byte_seconds;
        self.unknown_seconds += o.unknown_seconds;
    }
}

/// A workload's saving in progress.
struct Saving<'t> {
    since: f64,
    cost_center: &'t str,
    removed: Requested,
}

/// One namespace's state while its transitions are replayed.
#[derive(Default)]
struct DownState<'t> {
    /// Down since, charged to this cost center.
    down: Option<(f64, &'t str)>,
    /// Down since a record without request figures.
    unknown: Option<(f64, &'t str)>,
    /// Savings in progress, by `Kind/name`.
    savings: BTreeMap<&'t str, Saving<'t>>,
}

/// Where one namespace's figures go, clipped to the range.
struct Rows<'o> {
    out: &'o mut BTreeMap<(String, String), Downtime>,
    namespace: &'o str,
    start: f64,
    end: f64,
}

impl Rows<'_> {
    /// Adds the clipped length of `[since, until)` to the row of `cost_center` through `add`.
    fn add(&mut self, cost_center: &str, since: f64, until: f64, add: impl FnOnce(&mut Downtime, f64)) {
        let seconds = until.min(self.end) - since.max(self.start);
        if seconds > 0.0 {
            let key = (self.namespace.to_string(), cost_center.to_string());
            add(self.out.entry(key).or_default(), seconds);
        }
    }

    fn end_saving(&mut self, s: Saving, at: f64) {
        self.add(s.cost_center, s.since, at, |d, seconds| {
            d.millicore_seconds += s.removed.cpu_millicores as f64 * seconds;
            d.byte_seconds += s.removed.memory_bytes as f64 * seconds;
        });
    }
}

impl<'t> DownState<'t> {
    fn deactivated(&mut self, t: &'t Transition, rows: &mut Rows) {
        self.down.get_or_insert((t.at, &t.cost_center));
        if !t.requests_known {
            self.unknown.get_or_insert((t.at, &t.cost_center));
            return;
        }
        for w in &t.scaled_down {
            let started = Saving {
                since: t.at,
                cost_center: &t.cost_center,
                removed: w.per_replica.times(w.replicas),
            };
            if let Some(earlier) = self.savings.insert(&w.workload, started) {
                rows.end_saving(earlier, t.at);
            }
        }
    }

    /// The namespace is up at `at` (or the range ends): everything in progress ends.
    fn activated(&mut self, at: f64, rows: &mut Rows) {
        if let Some((since, cc)) = self.down.take() {
            rows.add(cc, since, at, |d, s| d.seconds += s);
        }
        if let Some((since, cc)) = self.unknown.take() {
            rows.add(cc, since, at, |d, s| d.unknown_seconds += s);
        }
        for (_, saving) in std::mem::take(&mut self.savings) {
            rows.end_saving(saving, at);
        }
    }
}

/// Down time and savings within `[start, end)` (epoch seconds), per (namespace, cost center):
/// hours down are charged to the cost center of the deactivation that took the namespace down,
/// each saving to that of the deactivation that scaled its workload down. Rows with nothing in
/// the range are left out.
pub(crate) fn downtime(transitions: &[Transition], start: f64, end: f64) -> BTreeMap<(String, String), Downtime> {
    let mut by_namespace: BTreeMap<&str, Vec<&Transition>> = BTreeMap::new();
    for t in transitions {
        by_namespace.entry(t.namespace.as_str()).or_default().push(t);
    }
    let mut out = BTreeMap::new();
    for (namespace, mut events) in by_namespace {
        // Stable: records of one instant keep the order they were read in.
        events.sort_by(|a, b| a.at.total_cmp(&b.at));
        let mut rows = Rows {
            out: &mut out,
            namespace,
            start,
            end,
        };
        let mut state = DownState::default();
        for t in events.into_iter().take_while(|t| t.at < end) {
            if t.activates {
                state.activated(t.at, &mut rows);
            } else {
                state.deactivated(t, &mut rows);
            }
        }
        state.activated(end, &mut rows);
    }
    out
}
