//! The authorization rules and the off-hours caps, pure: no table, no cluster.
//!
//! **The caps are an invariant over time.** At no instant outside the cluster's business hours
//! may more than `NON_BUSINESS_MAX_ACTIVE_NAMESPACES` managed namespaces hold an open activation
//! window, nor more than a cost center's `max_concurrent_namespaces` windows granted to it. A
//! window is what `up` or an accepted request opens: `[now, until)`, recorded on the namespace
//! with the cost center it was granted to. Windows, not running pods, hold slots.
//!
//! A new window is accepted only if the invariant still holds over its whole length. Every
//! window already open started at or before now, so the most windows that can be open at the
//! same time as the new one, outside business hours, are those open at the *first*
//! non-business instant it covers (now, when asked off-hours; the coming end of business hours,
//! when asked at 10:00 "until 22:00"): later on, windows only close. That instant is where the
//! new window is counted, with the windows accepted earlier in the same run. A window entirely
//! inside business hours needs no slot; a namespace asking again is not counted twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::{matches_any, CostCenter, Rejection, RejectionRule};
use crate::config::Config;
use crate::error::Result;
use crate::hours::BusinessHours;

/// A window proposed for one namespace, to be granted or refused by the rules: what an `up` or a
/// self-service ActivationRequest asks for. The cluster side has already checked that the
/// namespace exists, is managed and is not protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedWindow {
    pub namespace: String,
    /// The cost center asked for (`--cost-center`; a self-service request asks for the label).
    pub cost_center: String,
    /// The namespace's own `namespace-scheduler/cost-center` label, if it has one.
    pub label: Option<String>,
    pub requested_by: String,
    /// The end of the window asked for.
    pub until: DateTime<Utc>,
}

/// An open activation window, as recorded on its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub namespace: String,
    /// The cost center the window was granted to (its slot is counted there).
    pub cost_center: String,
    pub until: DateTime<Utc>,
}

impl Window {
    /// Open at `t`: every window known here started at or before the present.
    pub fn open_at(&self, t: DateTime<Utc>) -> bool {
        self.until > t
    }
}

/// A granted proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The first non-business instant the window covers, from which it holds a slot; `None`
    /// when it lies entirely inside business hours.
    pub holds_slot_from: Option<DateTime<Utc>>,
}

/// The limits every proposal is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// `NON_BUSINESS_MAX_ACTIVE_NAMESPACES`.
    pub cluster: u32,
    /// `MAX_ACTIVATION_HOURS`.
    pub max_window: Duration,
    /// `EKS_CLUSTER_NAME`, for `allowed_clusters`.
    pub cluster_name: String,
}

impl Caps {
    pub(crate) fn from_config(config: &Config) -> Self {
        Caps {
            cluster: config.max_active_off_hours,
            max_window: Duration::hours(i64::from(config.max_activation_hours)),
            cluster_name: config.cluster_name.clone(),
        }
    }
}

/// Checks each proposal in order. Granted ones count towards later ones (callers pass them in
/// a stable order, oldest request first). `open_windows` are the windows open now,
/// with the cost center each was granted to. `Err` only when the business calendar cannot
/// answer.
pub(crate) fn authorize(
    proposals: &[ProposedWindow],
    permissions: &BTreeMap<String, CostCenter>,
    open_windows: &[Window],
    hours: &BusinessHours,
    at: DateTime<Utc>,
    caps: &Caps,
) -> Result<Vec<std::result::Result<Grant, Rejection>>> {
    authorize_in_fleet(proposals, permissions, open_windows, &[], hours, at, caps)
}

/// [`authorize`] for a cluster among others that share the tables (docs/fleet.md).
/// `fleet_windows` are the windows the *other* clusters hold (read from the windows table):
/// they count towards a cost center's `max_concurrent_namespaces`, which holds across the
/// fleet, and never towards `NON_BUSINESS_MAX_ACTIVE_NAMESPACES`, which stays this cluster's
/// own. A namespace of another cluster is another namespace, whatever its name.
pub(crate) fn authorize_in_fleet(
    proposals: &[ProposedWindow],
    permissions: &BTreeMap<String, CostCenter>,
    open_windows: &[Window],
    fleet_windows: &[Window],
    hours: &BusinessHours,
    at: DateTime<Utc>,
    caps: &Caps,
) -> Result<Vec<std::result::Result<Grant, Rejection>>> {
    let mut windows: Vec<Window> = open_windows.iter().filter(|w| w.open_at(at)).cloned().collect();
    let fleet: Vec<&Window> = fleet_windows.iter().filter(|w| w.open_at(at)).collect();
    let mut verdicts = Vec::with_capacity(proposals.len());
    for proposal in proposals {
        let verdict = check(proposal, permissions, &windows, &fleet, hours, at, caps)?;
        if verdict.is_ok() {
            windows.retain(|w| w.namespace != proposal.namespace);
            windows.push(Window {
                namespace: proposal.namespace.clone(),
                cost_center: proposal.cost_center.clone(),
                until: proposal.until,
            });
        }
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

/// The first instant in `[at, until)` outside business hours, if any.
pub fn first_non_business(
    hours: &BusinessHours,
    at: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    if until <= at {
        return Ok(None);
    }
    if !hours.is_business(at)? {
        return Ok(Some(at));
    }
    Ok(hours.next_business_end(at)?.filter(|end| *end < until))
}

fn check(
    proposal: &ProposedWindow,
    permissions: &BTreeMap<String, CostCenter>,
    windows: &[Window],
    fleet: &[&Window],
    hours: &BusinessHours,
    at: DateTime<Utc>,
    caps: &Caps,
) -> Result<std::result::Result<Grant, Rejection>> {
    let reject = |rule, message: String| Ok(Err(Rejection::new(rule, message)));
    let ns = &proposal.namespace;
    let name = &proposal.cost_center;
    let Some(cc) = permissions.get(name) else {
        return reject(
            RejectionRule::UnknownCostCenter,
            format!("cost center {name:?} does not exist in the permissions table"),
        );
    };
    if !cc.is_authorized {
        return reject(
            RejectionRule::NotAuthorized,
            format!("cost center {name} is not authorized (is_authorized=false)"),
        );
    }
    if let Some(patterns) = &cc.authorized_namespaces {
        if !matches_any(patterns, ns) {
            return reject(
                RejectionRule::NamespaceNotAllowed,
                format!(
                    "namespace {ns} matches none of the authorized_namespaces of {name} ({})",
                    patterns.join(", ")
                ),
            );
        }
    }
    if let Some(clusters) = &cc.allowed_clusters {
        if !clusters.contains(&caps.cluster_name) {
            return reject(
                RejectionRule::ClusterNotAllowed,
                format!(
                    "cluster {} is not in the allowed_clusters of {name} ({})",
                    caps.cluster_name,
                    clusters.join(", ")
                ),
            );
        }
    }
    if let Some(label) = proposal.label.as_deref().filter(|l| l != name) {
        return reject(
            RejectionRule::CostCenterMismatch,
            format!("namespace {ns} belongs to cost center {label} (its label), not {name}"),
        );
    }
    let length = proposal.until - at;
    if length <= Duration::zero() {
        return reject(
            RejectionRule::WindowTooLong,
            format!(
                "the window must end after now; it ends at {}",
                local(hours, proposal.until)
            ),
        );
    }
    if length > caps.max_window {
        return reject(
            RejectionRule::WindowTooLong,
            format!(
                "the window to {} is {} long, more than MAX_ACTIVATION_HOURS={}",
                local(hours, proposal.until),
                human(length),
                caps.max_window.num_hours()
            ),
        );
    }
    let Some(from) = first_non_business(hours, at, proposal.until)? else {
        return Ok(Ok(Grant { holds_slot_from: None }));
    };
    Ok(check_caps(proposal, cc, windows, fleet, from, hours, caps))
}

/// The caps, for a window that holds a slot from `from` (its first non-business instant): the
/// cost center's windows (here and on the fleet's other clusters) and the cluster's.
fn check_caps(
    proposal: &ProposedWindow,
    cc: &CostCenter,
    windows: &[Window],
    fleet: &[&Window],
    from: DateTime<Utc>,
    hours: &BusinessHours,
    caps: &Caps,
) -> std::result::Result<Grant, Rejection> {
    let reject = |rule, message: String| Err(Rejection::new(rule, message));
    let ns = &proposal.namespace;
    let name = &proposal.cost_center;
    let others: Vec<&Window> = windows
        .iter()
        .filter(|w| w.namespace != *ns && w.open_at(from))
        .collect();
    let elsewhere = fleet
        .iter()
        .filter(|w| w.cost_center == *name && w.open_at(from))
        .count();
    let of_cc = others.iter().filter(|w| w.cost_center == *name).count() + elsewhere;
    let max = cc.max_concurrent_namespaces as usize;
    if of_cc + 1 > max {
        let on_other_clusters = match elsewhere {
            0 => String::new(),
            n => format!(", {n} of them on other clusters"),
        };
        return reject(
            RejectionRule::CostCenterCap,
            format!(
                "{of_cc} of {max} windows of {name} open at {} (max_concurrent_namespaces={max}{on_other_clusters})",
                local(hours, from)
            ),
        );
    }
    let cap = caps.cluster as usize;
    if others.len() + 1 > cap {
        return reject(
            RejectionRule::ClusterCap,
            format!(
                "{} of {cap} windows open at {} (NON_BUSINESS_MAX_ACTIVE_NAMESPACES={cap})",
                others.len(),
                local(hours, from)
            ),
        );
    }
    Ok(Grant {
        holds_slot_from: Some(from),
    })
}

/// `18:00 on 2026-11-25 America/Bogota`: the instant as the business zone reads it.
fn local(hours: &BusinessHours, t: DateTime<Utc>) -> String {
    let l = t.with_timezone(&hours.timezone);
    format!(
        "{} on {} {}",
        l.format("%H:%M"),
        l.format("%Y-%m-%d"),
        hours.timezone.name()
    )
}

fn human(d: Duration) -> String {
    let minutes = d.num_minutes();
    match (minutes / 60, minutes % 60) {
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h{m:02}m"),
    }
}

#[cfg(test)]
mod tests;
