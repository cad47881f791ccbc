//! `run`, the CronJob entrypoint: the clock decides (every time, not only at 08:00), so a late,
//! missed or hand-started run converges to the right state.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::Context;
use crate::audit::{AuditRecord, OperationType};
use crate::cli::RunArgs;
use crate::error::{Exit, Result};
use crate::permissions::{self, ActivationRequest, ActiveSet, PermissionsStore, Rejection};
use crate::scaling::engine::{self, Session};
use crate::scaling::inventory::{Inventory, ManagedNamespace};
use crate::scaling::plan::{plan_namespace, rfc3339, Intent, Target, Until};
use crate::scaling::summary::Row;

pub async fn execute(ctx: &Context, args: RunArgs) -> Result<Exit> {
    let at = args.at.unwrap_or_else(Utc::now);
    let business = ctx.config.business.is_business(at)?;
    let session = Session::open(ctx).await?;
    match decide_run(ctx, &session, at, business).await {
        Ok((inv, intents, extra)) => {
            let header = engine::header(ctx, "run", at, Some(business), inv.namespaces.len());
            // Planned lazily, one namespace at a time as the engine starts it.
            let plans = inv
                .namespaces
                .values()
                .zip(intents)
                .map(|(ns, intent)| plan_namespace(ns, inv.workloads_of(&ns.name), &intent));
            session.finish(ctx, header, plans, extra).await
        }
        Err(e) => {
            session.close().await;
            Err(e)
        }
    }
}

/// The inventory, one intent per managed namespace (in the inventory's order) and the
/// rejected requests' records.
type Decided = (Inventory, Vec<Intent>, Vec<(AuditRecord, Row)>);

async fn decide_run(ctx: &Context, session: &Session, at: DateTime<Utc>, business: bool) -> Result<Decided> {
    let inv = session.discover(ctx).await?;
    let answers = answer_requests(ctx, &inv, at, business).await;
    let mut intents = Vec::with_capacity(inv.namespaces.len());
    let mut extra = Vec::new();
    for ns in inv.namespaces.values() {
        let live_window = ns.active_until().is_some_and(|t| t > at);
        let mut intent = if business {
            // A window reaching past the end of business hours is kept; a spent one is removed.
            Intent {
                target: Target::Up,
                until: if live_window { Until::Keep } else { Until::Remove },
                operation: OperationType::AutoStartupBusinessHours,
                requested_by: "system".into(),
                answer: None,
            }
        } else if live_window {
            // Activated until later: stays up (and is brought up if a crash left it part-way).
            Intent {
                target: Target::Up,
                until: Until::Keep,
                operation: OperationType::Activate,
                requested_by: "system".into(),
                answer: None,
            }
        } else {
            Intent {
                target: Target::Down,
                until: Until::Remove,
                operation: OperationType::AutoShutdownBusinessHours,
                requested_by: "system".into(),
                answer: None,
            }
        };
        if let Some((raw, requested_by, verdict)) = answers.get(&ns.name) {
            match verdict {
                Ok(until) => {
                    intent = Intent {
                        target: Target::Up,
                        until: Until::Set(*until),
                        operation: OperationType::Activate,
                        requested_by: requested_by.clone(),
                        answer: Some((raw.clone(), "accepted".into())),
                    };
                }
                Err(why) => {
                    intent.answer = Some((raw.clone(), format!("rejected: {why}")));
                    extra.push(engine::rejection(ctx, &ns.name, &ns.cost_center, requested_by, why));
                }
            }
        }
        intents.push(intent);
    }
    Ok((inv, intents, extra))
}

/// Pending self-service requests, answered: namespace → (request value, requested_by,
/// accepted-until or the rejection). Each is authorized exactly like `up`; the permissions table
/// is read once, and only when there is a request (scheduled scale-downs never depend on it).
async fn answer_requests(
    ctx: &Context,
    inv: &Inventory,
    at: DateTime<Utc>,
    business: bool,
) -> BTreeMap<String, (String, String, std::result::Result<DateTime<Utc>, String>)> {
    let mut answers = BTreeMap::new();
    let mut candidates: Vec<(&ManagedNamespace, DateTime<Utc>)> = Vec::new();
    for ns in inv.namespaces.values() {
        let Some(req) = ns.pending_request() else { continue };
        let by = req.requested_by.clone().unwrap_or_else(|| "self-service".into());
        let verdict = match req.until {
            None => Err(format!("invalid: {:?} is not an RFC 3339 instant", req.raw)),
            Some(until) if until <= at => Err(format!(
                "expired: the requested window ended at {} (now {})",
                rfc3339(until),
                rfc3339(at)
            )),
            Some(until) => {
                candidates.push((ns, until));
                Ok(until)
            }
        };
        answers.insert(ns.name.clone(), (req.raw.clone(), by, verdict));
    }
    if candidates.is_empty() {
        return answers;
    }
    let requests: Vec<ActivationRequest> = candidates
        .iter()
        .map(|(ns, _)| ActivationRequest {
            namespace: ns.name.clone(),
            cost_center: ns.cost_center.clone(),
            requested_by: answers[&ns.name].1.clone(),
        })
        .collect();
    let verdicts = authorize(ctx, inv, &requests, business).await;
    for (req, verdict) in requests.iter().zip(verdicts) {
        if let Err(rejection) = verdict {
            if let Some(a) = answers.get_mut(&req.namespace) {
                a.2 = Err(rejection.to_string());
            }
        }
    }
    answers
}

/// Reads the permissions once for every cost center involved and applies SPEC §5's rules.
/// An unreadable table refuses every request (fail closed).
pub(super) async fn authorize(
    ctx: &Context,
    inv: &Inventory,
    requests: &[ActivationRequest],
    business: bool,
) -> Vec<std::result::Result<(), Rejection>> {
    let wanted: BTreeSet<String> = requests.iter().map(|r| r.cost_center.clone()).collect();
    let client = crate::dynamo::client(&ctx.config).await;
    match PermissionsStore::new(client, ctx.config.permissions_table.clone())
        .fetch(&wanted)
        .await
    {
        Ok(perms) => {
            let active = ActiveSet {
                by_namespace: inv.active_set(),
            };
            permissions::authorize(
                requests,
                &perms,
                &active,
                business,
                &ctx.config.cluster_name,
                ctx.config.max_active_off_hours,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "permissions table unreadable: refusing every activation request");
            requests
                .iter()
                .map(|_| Err(Rejection::permissions_unavailable(&e)))
                .collect()
        }
    }
}
