//! What `up` and `run` ask of the tables: the permissions of the cost centers involved, and the
//! windows granted across the fleet ([`FleetWindows::grant`]), as one [`Verdict`] per proposal.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::{Decision, FleetWindows, GrantBatch, WindowKey};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::permissions::{Caps, CostCenter, PermissionsStore, ProposedWindow, Verdict, Window};

/// One decision of a run over its proposals.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Oldest request first: accepted ones count towards later ones.
    pub proposals: &'a [ProposedWindow],
    /// The windows open on this cluster's Namespaces (those ending this run left out).
    pub own_windows: &'a [Window],
    pub at: DateTime<Utc>,
    pub run_id: &'a str,
    /// `up`: when one proposal is not granted, none is (and nothing is recorded).
    pub all_or_nothing: bool,
    /// `--dry-run`: the same reads and rules, nothing written.
    pub preview: bool,
}

/// The verdicts, and the windows this cluster now holds in the windows table because of them.
#[derive(Debug)]
pub struct Authorized {
    /// One per proposal, in order. A proposal an all-or-nothing batch withheld is `Granted` by
    /// the rules (nothing was recorded for it): the caller sees the others' rejections.
    pub verdicts: Vec<Verdict>,
    /// By namespace: the window recorded for it (those granted that hold a slot).
    pub recorded: BTreeMap<String, WindowKey>,
    /// The windows table, for releasing them if their namespaces do not come up.
    pub windows: FleetWindows,
}

/// Reads the permissions of the proposals' cost centers (one BatchGetItem) and decides them over
/// the fleet's windows, recording what it grants (docs/fleet.md §2). A proposal whose cost
/// center's permissions item is invalid is `Undecided` and holds nothing; in an all-or-nothing
/// batch that leaves every other proposal `Deferred`, with nothing read or written. `Err` when
/// either table cannot be read or written: nothing was granted (callers fail closed, retryably).
pub async fn authorize(client: &aws_sdk_dynamodb::Client, config: &Config, ask: &Ask<'_>) -> Result<Authorized> {
    let wanted: BTreeSet<String> = ask.proposals.iter().map(|p| p.cost_center.clone()).collect();
    let windows = FleetWindows::from_config(client.clone(), config);
    let permissions = PermissionsStore::new(client.clone(), config.permissions_table.clone())
        .fetch(&wanted)
        .await
        .map_err(|e| {
            let message = format!("permissions table unreadable, no request decided: {e}");
            Error::dynamo_from(message, e)
        })?;
    let valid: BTreeMap<String, CostCenter> = permissions
        .iter()
        .filter_map(|(name, p)| Some((name.clone(), p.as_ref().ok()?.clone())))
        .collect();
    let invalid = |p: &ProposedWindow| permissions.get(&p.cost_center).and_then(|r| r.as_ref().err());
    let decidable: Vec<ProposedWindow> = ask.proposals.iter().filter(|p| invalid(p).is_none()).cloned().collect();
    let mut out = Authorized {
        verdicts: Vec::with_capacity(ask.proposals.len()),
        recorded: BTreeMap::new(),
        windows,
    };
    let any_invalid = decidable.len() < ask.proposals.len();
    let mut decided = if decidable.is_empty() || (ask.all_or_nothing && any_invalid) {
        Vec::new()
    } else {
        let caps = Caps::from_config(config);
        let batch = GrantBatch {
            requests: &decidable,
            permissions: &valid,
            own_windows: ask.own_windows,
            hours: &config.business,
            at: ask.at,
            caps: &caps,
            run_id: ask.run_id,
            all_or_nothing: ask.all_or_nothing,
        };
        let decided = if ask.preview {
            out.windows.preview(&batch).await
        } else {
            out.windows.grant(&batch).await
        };
        decided.map_err(|e| match e {
            Error::Dynamo { message, source } => Error::Dynamo {
                message: format!("windows table unreadable, no request decided: {message}"),
                source,
            },
            other => other,
        })?
    }
    .into_iter();
    for p in ask.proposals {
        if let Some(e) = invalid(p) {
            out.verdicts.push(Verdict::Undecided(e.clone()));
            continue;
        }
        let verdict = match decided.next() {
            None => Verdict::Deferred(
                "not decided: the request is all-or-nothing and another cost center's permissions item is invalid"
                    .to_string(),
            ),
            Some(Decision::Granted(g)) => {
                if g.holds_slot_from.is_some() && !ask.preview {
                    let key = out.windows.key(&p.cost_center, &p.namespace);
                    out.recorded.insert(p.namespace.clone(), key);
                }
                Verdict::Granted(g)
            }
            Some(Decision::Withheld(g)) => Verdict::Granted(g),
            Some(Decision::Rejected(r)) => Verdict::Rejected(r),
            Some(Decision::Undecided(why)) => Verdict::Deferred(why),
        };
        out.verdicts.push(verdict);
    }
    Ok(out)
}
