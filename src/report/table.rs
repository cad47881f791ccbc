//! The week's table: one row per (namespace, cost center) with its active hours, hours down and
//! savings, the same per cost center, and the total. Totals are sums of the rows' exact figures
//! (the output rounds each number only when it prints it).

use std::collections::BTreeMap;

use serde::Serialize;

use super::savings::{downtime, Downtime};
use super::{active_seconds, Transition};
use crate::config::Prices;

/// Whether a figure's savings are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Coverage {
    /// Every down interval came with request figures (or there was none).
    Known,
    /// Some did not: the savings shown are a lower bound.
    Partial,
    /// None did: no saving can be given (not zero, unknown).
    Unknown,
}

/// Active time, down time and savings, for a row, a cost center or the total.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Figures {
    pub active_seconds: f64,
    pub down: Downtime,
}

impl Figures {
    pub(crate) fn coverage(&self) -> Coverage {
        if self.down.unknown_seconds <= 0.0 {
            Coverage::Known
        } else if self.down.millicore_seconds > 0.0 || self.down.byte_seconds > 0.0 {
            Coverage::Partial
        } else {
            Coverage::Unknown
        }
    }

    /// vCPU-hours saved; None when unknown.
    pub fn vcpu_hours(&self) -> Option<f64> {
        (self.coverage() != Coverage::Unknown).then(|| self.down.vcpu_hours())
    }

    /// GiB-hours saved; None when unknown.
    pub fn gib_hours(&self) -> Option<f64> {
        (self.coverage() != Coverage::Unknown).then(|| self.down.gib_hours())
    }

    /// Money saved at `prices`; None when unknown.
    pub fn saved(&self, prices: &Prices) -> Option<f64> {
        Some(self.vcpu_hours()? * prices.per_vcpu_hour + self.gib_hours()? * prices.per_gib_hour)
    }
}

impl std::ops::AddAssign for Figures {
    fn add_assign(&mut self, o: Figures) {
        self.active_seconds += o.active_seconds;
        self.down += o.down;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub namespace: String,
    pub cost_center: String,
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CostCenter {
    pub figures: Figures,
    /// Rows of this cost center.
    pub namespaces: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WeekTable {
    /// Sorted by namespace, then cost center.
    pub rows: Vec<Row>,
    pub cost_centers: BTreeMap<String, CostCenter>,
    pub total: Figures,
}

/// The table of `[start, end)` (epoch seconds) from the audit's transitions.
pub(crate) fn week_table(transitions: &[Transition], start: f64, end: f64) -> WeekTable {
    let mut by_row: BTreeMap<(String, String), Figures> = BTreeMap::new();
    for u in active_seconds(transitions, start, end) {
        by_row.entry((u.namespace, u.cost_center)).or_default().active_seconds += u.seconds;
    }
    for (key, down) in downtime(transitions, start, end) {
        by_row.entry(key).or_default().down += down;
    }
    let mut table = WeekTable::default();
    for ((namespace, cost_center), figures) in by_row {
        let cc = table.cost_centers.entry(cost_center.clone()).or_insert(CostCenter {
            figures: Figures::default(),
            namespaces: 0,
        });
        cc.figures += figures;
        cc.namespaces += 1;
        table.total += figures;
        table.rows.push(Row {
            namespace,
            cost_center,
            figures,
        });
    }
    table
}

/// The week across the fleet: each cluster's table (its rows and totals), each cost center
/// across every cluster, and the fleet's total. A namespace is one cluster's: the same name on
/// two clusters is two rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FleetTable {
    pub clusters: BTreeMap<String, WeekTable>,
    pub cost_centers: BTreeMap<String, CostCenter>,
    pub total: Figures,
}

/// The fleet's table of `[start, end)` from each cluster's transitions.
pub fn fleet_table(by_cluster: &BTreeMap<String, Vec<Transition>>, start: f64, end: f64) -> FleetTable {
    let mut fleet = FleetTable::default();
    for (cluster, transitions) in by_cluster {
        let table = week_table(transitions, start, end);
        for (name, cc) in &table.cost_centers {
            let sum = fleet.cost_centers.entry(name.clone()).or_insert(CostCenter {
                figures: Figures::default(),
                namespaces: 0,
            });
            sum.figures += cc.figures;
            sum.namespaces += cc.namespaces;
        }
        fleet.total += table.total;
        fleet.clusters.insert(cluster.clone(), table);
    }
    fleet
}
