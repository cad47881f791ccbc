//! Activation windows across a fleet (docs/reference.md §5, docs/fleet.md): clusters that share
//! the tables share each cost center's `max_concurrent_namespaces`, decided atomically in the
//! windows table (`WINDOWS_TABLE_NAME`).
//!
//! **Model.** One partition per cost center: one item per window that holds an off-hours slot
//! (range key `<cluster>#<namespace>`: cluster, namespace, until, the first non-business instant
//! from which it holds its slot, requester, run id, granted_at, and a TTL a day after `until`),
//! and one version item. A grant reads the partition of each cost center it involves in one
//! consistent Query, decides with the pure rules ([`crate::permissions::rules`]) over this
//! cluster's own windows (from its Namespaces, as without a fleet, so windows granted before the
//! windows table still count here) plus the other clusters' recorded windows of that cost center,
//! and records what it granted in one `TransactWriteItems`: put each window, bump each version
//! item on the condition that it still has the version read, delete the records a grant
//! replaces. A writer that loses the race (the condition fails) reads again and decides again,
//! at most [`store::MAX_ROUNDS`] times, then leaves its requests undecided (retryable).
//!
//! Only windows that hold a slot are recorded; an expired one stops counting at its `until`.
//! `NON_BUSINESS_MAX_ACTIVE_NAMESPACES` stays per cluster: the other clusters' windows never
//! count towards it. The version item makes grants of one cost center serial; releases do not
//! bump it (a release only frees a slot: a grant that still counted it was merely cautious).
//!
//! **Who calls what.** `up` (all or nothing) and `run` (the ActivationRequests it decides) ask
//! through [`authorize()`], which reads the permissions and grants here, `preview` on `--dry-run`.
//! What they recorded, and the windows they close (`down`, a request deleted, rejected or
//! replaced), go to the engine as an [`AfterRun`], which releases them once the namespaces are
//! applied: a grant whose namespace did not come up, a closed window whose namespace did. The
//! engine runs [`FleetWindows::recover`] only when it takes the Lease over from a run that died
//! (or listed itself there), so a normal run makes no call for it.
//!
//! **Calls.** A grant makes one Query per cost center with new requests (more pages only for a
//! partition over 1 MB) and one TransactWriteItems, plus one of each again per lost race; a run
//! with no request makes none. DynamoDB unreachable is an `Err` (callers fail closed: exit 1,
//! requests left pending); a partition that does not read leaves only its cost center's
//! requests undecided.

pub mod authorize;
pub(crate) mod plan;
pub(crate) mod record;
pub mod release;
pub(crate) mod store;

pub use authorize::{authorize, Ask, Authorized};
pub use plan::{reconcile, Listed, Reconciliation};
pub use record::{Partition, WindowKey, WindowRecord};
pub use release::AfterRun;
pub use store::FleetWindows;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::hours::BusinessHours;
use crate::permissions::{Caps, CostCenter, Grant, ProposedWindow, Rejection, Window};

/// Everything a grant decides on.
#[derive(Debug, Clone, Copy)]
pub struct GrantBatch<'a> {
    /// In the order they are decided (oldest request first); accepted ones count towards later
    /// ones, as in [`crate::permissions::rules::authorize`].
    pub requests: &'a [ProposedWindow],
    /// The cost centers of the requests, read from the permissions table.
    pub permissions: &'a BTreeMap<String, CostCenter>,
    /// The windows open on this cluster's Namespaces (with the cost center each was granted to).
    pub own_windows: &'a [Window],
    /// The cluster's business hours (the caps are tied to them).
    pub hours: &'a BusinessHours,
    pub at: DateTime<Utc>,
    /// `caps.cluster_name` is this cluster: it must be the store's.
    pub caps: &'a Caps,
    /// Written on each window recorded.
    pub run_id: &'a str,
    /// `up` is all-or-nothing: when one request is not granted, nothing is recorded and the
    /// others come back [`Decision::Withheld`].
    pub all_or_nothing: bool,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Accepted; when it holds a slot, its window is recorded in the windows table.
    Granted(Grant),
    Rejected(Rejection),
    /// Accepted by the rules, but another request of an all-or-nothing batch was not: nothing
    /// was recorded for it.
    Withheld(Grant),
    /// Not decided this time: its cost center's windows do not read, or every round lost a
    /// race. Nothing was recorded; the next run decides it (retryable, like an unreadable
    /// permissions table).
    Undecided(String),
}

impl Decision {
    /// The window the grant recorded in the windows table, if any: what a rollback releases.
    pub fn recorded(&self) -> bool {
        matches!(self, Decision::Granted(g) if g.holds_slot_from.is_some())
    }
}
