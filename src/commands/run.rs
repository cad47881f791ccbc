//! `run`, the CronJob entrypoint: the clock decides (every time, not only at 08:00), so a late,
//! missed or hand-started run converges to the right state; and every pending self-service
//! request is decided by the same rules as `up`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Context;
use crate::audit::{AuditRecord, OperationType};
use crate::cli::RunArgs;
use crate::error::{Exit, Result};
use crate::permissions::{self, ActivationRequest};
use crate::scaling::engine::{self, Session};
use crate::scaling::inventory::{Inventory, ManagedNamespace};
use crate::scaling::plan::{plan_namespace, rfc3339, Intent, Target, Until};
use crate::schedule::{NamespaceHours, ScheduleBook, SCHEDULE_ANNOTATION};
use crate::summary::Row;

pub async fn execute(ctx: &Context, args: RunArgs) -> Result<Exit> {
    let at = args.at.unwrap_or_else(Utc::now);
    let business = ctx.config.business.is_business(at)?;
    let session = Session::open(ctx, at).await?;
    match decide_run(ctx, &session, at).await {
        Ok((inv, intents, extra)) => {
            let header = engine::header(ctx, "run", at, Some(business), inv.namespaces.len());
            // Planned lazily, one namespace at a time as the engine starts it; a namespace left
            // alone (its schedule does not parse) has no plan at all.
            let plans = inv.namespaces.values().zip(intents).filter_map(|(ns, decided)| {
                let (intent, schedule) = decided?;
                let mut plan = plan_namespace(ns, inv.workloads_of(&ns.name), &intent);
                plan.schedule = schedule;
                Some(plan)
            });
            // Answering a request "rejected" is the run doing its job: exit 0.
            session.finish(ctx, header, plans, extra, Exit::Ok).await
        }
        Err(e) => {
            session.close().await;
            Err(e)
        }
    }
}

/// The inventory, per managed namespace (in the inventory's order) its intent and the schedule
/// that decided it (None: left exactly as it is), and the rows decided before planning
/// (rejected requests with their audit records, namespaces left alone).
type Decided = (
    Inventory,
    Vec<Option<(Intent, String)>>,
    Vec<(Option<AuditRecord>, Row)>,
);

/// How a pending request was answered.
enum Answer {
    Accepted { until: DateTime<Utc> },
    Rejected(String),
}

async fn decide_run(ctx: &Context, session: &Session, at: DateTime<Utc>) -> Result<Decided> {
    let inv = session.discover(ctx).await?;
    // Each namespace by its own schedule (one decision per distinct schedule); the caps stay
    // on the cluster's hours. A schedule that does not parse leaves its namespace alone.
    let mut book = ScheduleBook::new(&ctx.config.business, at);
    let mut extra = Vec::new();
    let hours: BTreeMap<&str, NamespaceHours> = inv
        .namespaces
        .values()
        .filter_map(
            |ns| match book.decide(ns.annotations.get(SCHEDULE_ANNOTATION).map(String::as_str)) {
                Ok(h) => Some((ns.name.as_str(), h)),
                Err(e) => {
                    let why = format!("left as it is: {SCHEDULE_ANNOTATION}: {e}");
                    tracing::warn!(namespace = %ns.name, reason = %why, "namespace skipped");
                    extra.push((None, Row::decided(&ns.name, &ns.cost_center, "-", "skipped", &why)));
                    None
                }
            },
        )
        .collect();
    tracing::debug!(schedules = book.distinct_schedules(), "schedules decided");
    let answers = answer_requests(ctx, &inv, at, |ns| hours.contains_key(ns), &mut extra).await?;
    let mut intents = Vec::with_capacity(inv.namespaces.len());
    for ns in inv.namespaces.values() {
        let Some(h) = hours.get(ns.name.as_str()) else {
            intents.push(None);
            continue;
        };
        let live_window = ns.active_until().is_some_and(|t| t > at);
        let mut intent = scheduled_intent(h.business(), live_window);
        if let Some((raw, requested_by, answer)) = answers.get(&ns.name) {
            match answer {
                Answer::Accepted { until } => {
                    intent = Intent {
                        target: Target::Up,
                        until: Until::Set(*until, ns.cost_center.clone()),
                        operation: OperationType::Activate,
                        requested_by: requested_by.clone(),
                        answer: Some((raw.clone(), "accepted".into())),
                    };
                }
                Answer::Rejected(why) => {
                    intent.answer = Some((raw.clone(), format!("rejected: {why}")));
                    let (record, row) = engine::rejection(ctx, &ns.name, &ns.cost_center, requested_by, why);
                    extra.push((Some(record), row));
                }
            }
        }
        intents.push(Some((intent, h.schedule.clone())));
    }
    Ok((inv, intents, extra))
}

/// What the clock says for a namespace: up in its business hours (a spent window removed), up
/// while its window is open, down otherwise.
fn scheduled_intent(business: bool, live_window: bool) -> Intent {
    let (target, until, operation) = match (business, live_window) {
        (true, true) => (Target::Up, Until::Keep, OperationType::AutoStartupBusinessHours),
        (true, false) => (Target::Up, Until::Remove, OperationType::AutoStartupBusinessHours),
        // Activated until later: stays up (and is brought up if a crash left it part-way).
        (false, true) => (Target::Up, Until::Keep, OperationType::Activate),
        (false, false) => (Target::Down, Until::Remove, OperationType::AutoShutdownBusinessHours),
    };
    Intent {
        target,
        until,
        operation,
        requested_by: "system".into(),
        answer: None,
    }
}

/// Pending self-service requests of the namespaces `decided` (not left alone), answered:
/// namespace → (request value, requested_by, answer).
/// Each is authorized exactly like `up`, oldest request first; the permissions table is read
/// once, and only when there is a request (scheduled scale-downs never depend on it). When the
/// table cannot be read, requests that need it stay unanswered (rows `unanswered` in
/// `unanswered`, exit 1; the next healthy run decides them) and the rest of the run goes on.
async fn answer_requests(
    ctx: &Context,
    inv: &Inventory,
    at: DateTime<Utc>,
    decided: impl Fn(&str) -> bool,
    unanswered: &mut Vec<(Option<AuditRecord>, Row)>,
) -> Result<BTreeMap<String, (String, String, Answer)>> {
    let mut answers = BTreeMap::new();
    let mut candidates: Vec<(&ManagedNamespace, String, DateTime<Utc>, Option<String>)> = Vec::new();
    for ns in inv.namespaces.values().filter(|ns| decided(&ns.name)) {
        let Some(req) = ns.pending_request() else { continue };
        let by = req.requested_by.clone().unwrap_or_else(|| "self-service".into());
        match req.until {
            None => {
                let why = format!("invalid: {:?} is not an RFC 3339 instant", req.raw);
                answers.insert(ns.name.clone(), (req.raw, by, Answer::Rejected(why)));
            }
            Some(until) if until <= at => {
                let why = format!(
                    "expired: the requested window ended at {} (now {})",
                    rfc3339(until),
                    rfc3339(at)
                );
                answers.insert(ns.name.clone(), (req.raw, by, Answer::Rejected(why)));
            }
            Some(until) => candidates.push((ns, req.raw, until, req.written_at)),
        }
    }
    if candidates.is_empty() {
        return Ok(answers);
    }
    // Oldest request first (by when its annotation was written, as the apiserver records it),
    // then by name: a stable order, so the same requests get the same slots at every run.
    candidates.sort_by(|a, b| {
        let when = |c: &(&ManagedNamespace, String, DateTime<Utc>, Option<String>)| c.3.clone();
        (when(a).is_none(), when(a), &a.0.name).cmp(&(when(b).is_none(), when(b), &b.0.name))
    });
    let requests: Vec<ActivationRequest> = candidates
        .iter()
        .map(|(ns, _, until, _)| {
            let req = ns.pending_request().expect("pending");
            ActivationRequest {
                namespace: ns.name.clone(),
                cost_center: ns.cost_center.clone(),
                label: ns.cost_center_label().map(str::to_string),
                requested_by: req.requested_by.unwrap_or_else(|| "self-service".into()),
                until: *until,
            }
        })
        .collect();
    let verdicts = match permissions::authorize(&ctx.config, &requests, &inv.open_windows(at), at).await {
        Ok(v) => v,
        Err(e) => {
            // Not a rejection: the request is not answered at all, and the run fails (exit 1)
            // so the Job is retried and the next healthy run decides it.
            tracing::error!(error = %e, requests = requests.len(), "self-service requests left unanswered until the next run");
            let why = format!("left unanswered until the next run: {e}");
            unanswered.extend(requests.iter().map(|r| {
                (
                    None,
                    Row::decided(&r.namespace, &r.cost_center, "activate", "unanswered", &why),
                )
            }));
            return Ok(answers);
        }
    };
    for ((_, raw, until, _), (request, verdict)) in candidates.into_iter().zip(requests.into_iter().zip(verdicts)) {
        let answer = match verdict {
            Ok(_) => Answer::Accepted { until },
            Err(rejection) => Answer::Rejected(rejection.to_string()),
        };
        answers.insert(request.namespace, (raw, request.requested_by, answer));
    }
    Ok(answers)
}
