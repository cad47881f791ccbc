//! `run`, the CronJob entrypoint: the clock decides (every time, not only at 08:00), so a late,
//! missed or hand-started run converges to the right state; and every pending ActivationRequest
//! is decided by the same rules as `up` (docs/reference.md §5).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Context;
use crate::audit::OperationType;
use crate::cli::RunArgs;
use crate::context::Clients;
use crate::engine::{self, DecidedRow, Session};
use crate::error::{Exit, Result};
use crate::fleet::{self, AfterRun, Ask, FleetWindows};
use crate::permissions::Window;
use crate::scaling::inventory::Inventory;
use crate::scaling::plan::{plan_namespace, Intent, Target, Until};
use crate::schedule::{NamespaceHours, ScheduleBook, SCHEDULE_ANNOTATION};
use crate::self_service::answer::{self, AnswerOnceApplied, Delivered, Due};
use crate::self_service::judge::{Decisions, Grant, Judgement, Reason, Reply};
use crate::self_service::{self, ActivationRequest};
use crate::summary::{Row, RowStatus};

pub async fn execute(ctx: &Context, args: RunArgs) -> Result<Exit> {
    let at = args.at.unwrap_or_else(Utc::now);
    let business = ctx.config.business.is_business(at)?;
    let mut session = Session::open(ctx, Clients::connect(&ctx.config).await?, at).await?;
    match decide_run(ctx, &session, at).await {
        Ok(Decided {
            inv,
            intents,
            extra,
            grants,
            windows,
        }) => {
            let header = engine::header(ctx, "run", at, Some(business), inv.namespaces.len());
            session.after_apply(Box::new(AnswerOnceApplied { grants }));
            if let Some(windows) = windows {
                session.release_windows_after(windows);
            }
            // Planned lazily, one namespace at a time as the engine starts it; a namespace left
            // alone (its schedule does not parse) has no plan at all.
            let plans = inv.namespaces.values().filter_map(|ns| {
                let Scheduled { intent, schedule } = intents.get(&ns.name)?;
                let mut plan = plan_namespace(ns, inv.workloads_of(&ns.name), intent);
                plan.schedule = schedule.clone();
                Some(plan)
            });
            // Answering a request "rejected" is the run doing its job: exit 0.
            let finished = session.finish(ctx, header, plans, extra, Exit::Ok).await?;
            Ok(super::print_finished(ctx, finished))
        }
        Err(e) => {
            session.close().await;
            Err(e)
        }
    }
}

/// What `run` hands the engine.
struct Decided {
    inv: Inventory,
    /// Per managed namespace, its intent and the schedule that decided it; a namespace left
    /// exactly as it is has none.
    intents: BTreeMap<String, Scheduled>,
    /// Rows decided before planning (answers to requests, namespaces left alone), with their
    /// audit records.
    extra: Vec<DecidedRow>,
    /// Windows granted to requests whose namespace has something to apply: answered once
    /// it is at its target.
    grants: BTreeMap<String, Grant>,
    /// The windows recorded for the grants and those the run closes (None: neither).
    windows: Option<AfterRun>,
}

/// What the clock (or a granted request) decided for one namespace, and the schedule that
/// decided it.
struct Scheduled {
    intent: Intent,
    schedule: String,
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
                    extra.push(DecidedRow::unrecorded(Row::decided(
                        &ns.name,
                        &ns.cost_center,
                        "-",
                        RowStatus::Skipped,
                        &why,
                    )));
                    None
                }
            },
        )
        .collect();
    tracing::debug!(schedules = book.distinct_schedules(), "schedules decided");
    let (mut decisions, mut windows) = judge_requests(ctx, session, &inv, |ns| hours.contains_key(ns), at).await?;
    let closing: Vec<Window> = decisions
        .ending
        .iter()
        .filter_map(|ns| inv.namespaces.get(ns)?.window())
        .collect();
    if !closing.is_empty() && !ctx.dry_run {
        let windows = match &mut windows {
            Some(w) => w,
            None => windows.insert(AfterRun::new(
                FleetWindows::from_config(session.dynamo.clone(), &ctx.config),
                BTreeMap::new(),
            )),
        };
        windows.ending_all(&closing, &ctx.config.business, at);
    }

    let mut intents = BTreeMap::new();
    let mut answered_now = Vec::new();
    for ns in inv.namespaces.values() {
        let Some(h) = hours.get(ns.name.as_str()) else {
            continue;
        };
        let live_window = ns.active_until().is_some_and(|t| t > at) && !decisions.ending.contains(&ns.name);
        let mut intent = scheduled_intent(h.business(), live_window);
        if let Some(g) = decisions.grants.get(&ns.name) {
            intent = Intent {
                target: Target::Up,
                until: Until::Set(g.until, g.cost_center.clone()),
                operation: OperationType::Activate,
                requested_by: g.requested_by.clone(),
                granted_by: Some(g.request.name.clone()),
            };
            // Nothing to apply: the namespace is at its target already, so the answer is due now.
            if plan_namespace(ns, inv.workloads_of(&ns.name), &intent).is_noop() {
                answered_now.push(ns.name.clone());
            }
        }
        intents.insert(
            ns.name.clone(),
            Scheduled {
                intent,
                schedule: h.schedule.clone(),
            },
        );
    }
    let due: Vec<Grant> = answered_now
        .iter()
        .filter_map(|ns| decisions.grants.remove(ns))
        .collect();
    extra.extend(answer_now(ctx, session, std::mem::take(&mut decisions.replies), due).await);
    Ok(Decided {
        inv,
        intents,
        extra,
        grants: decisions.grants,
        windows,
    })
}

/// Lists and judges the ActivationRequests, asking the permissions table (once, only when a
/// request is pending) about the ones the rules decide, and granting their windows across the
/// fleet (docs/fleet.md; one Query per cost center with requests, one TransactWriteItems). When
/// a table cannot be read or written, those requests stay pending and unanswered (exit 1; the
/// next healthy run decides them) and the rest of the run goes on; a request whose cost center's
/// item (or its windows in the windows table) does not read stays pending the same way, and only
/// its cost center is affected. Also returns the windows recorded, to release if their
/// namespaces do not come up.
async fn judge_requests(
    ctx: &Context,
    session: &Session,
    inv: &Inventory,
    decided: impl Fn(&str) -> bool,
    at: DateTime<Utc>,
) -> Result<(Decisions, Option<AfterRun>)> {
    let requests: Vec<ActivationRequest> = self_service::list(&session.client, &session.policy).await?;
    let mut judgement = Judgement::of(&requests, inv, decided, at);
    for (ns, name) in std::mem::take(&mut judgement.missing_holders) {
        if self_service::gone(&session.client, &session.policy, &ns, &name).await? {
            judgement.holder_gone(&ns);
        }
    }
    if judgement.proposals.is_empty() {
        return Ok((judgement.settle(Ok(Vec::new()), inv), None));
    }
    // Windows that end this run hold no slot.
    let open: Vec<Window> = inv
        .open_windows(at)
        .into_iter()
        .filter(|w| !judgement.ending.contains(&w.namespace))
        .collect();
    let proposals = judgement.proposed();
    let ask = Ask {
        proposals: &proposals,
        own_windows: &open,
        at,
        run_id: &ctx.run_id,
        all_or_nothing: false,
        preview: ctx.dry_run,
    };
    let (verdicts, windows) = match fleet::authorize(&session.dynamo, &ctx.config, &ask).await {
        Ok(a) => (Ok(a.verdicts), Some(AfterRun::new(a.windows, a.recorded))),
        Err(e) => {
            // Not a rejection: the requests are not answered at all, and the run fails (exit 1)
            // so the Job is retried and the next healthy run decides them.
            tracing::error!(error = %e, requests = proposals.len(), "self-service requests left unanswered until the next run");
            (Err(e.to_string()), None)
        }
    };
    Ok((judgement.settle(verdicts, inv), windows))
}

/// Writes the answers due before anything is applied — rejections, ends of windows, the
/// reasons a request stays pending, and acceptances whose namespace is already at its target —
/// and returns their summary rows and audit records. A rejection is audited once, when its
/// answer is written; an answer that cannot be written makes an `unanswered` row (exit 1). In a
/// dry run nothing is written: the rows say what would be.
async fn answer_now(ctx: &Context, session: &Session, replies: Vec<Reply>, due: Vec<Grant>) -> Vec<DecidedRow> {
    let cost_center = |r: &Reason| match r {
        Reason::Rejected { cost_center, .. } | Reason::Undecided { cost_center } => cost_center.clone(),
        Reason::Ended => String::new(),
    };
    let mut out = Vec::new();
    // Rows of what does not depend on being written: a pending request is unanswered either way.
    for reply in &replies {
        let why = format!("ActivationRequest {}: {}", reply.request.name, reply.answer.message);
        if let Reason::Undecided { cost_center } = &reply.reason {
            out.push(DecidedRow::unrecorded(Row::decided(
                &reply.request.namespace,
                cost_center,
                "activate",
                RowStatus::Unanswered,
                &why,
            )));
        }
    }
    let mut dues: Vec<Due> = replies
        .into_iter()
        .map(|r| Due {
            reason: Some(r.reason),
            request: r.request,
            answer: r.answer,
        })
        .collect();
    for g in due {
        let replaced = g.replaced.into_iter().map(|(request, answer)| Due {
            reason: None,
            request,
            answer,
        });
        dues.extend(
            std::iter::once(Due {
                reason: None,
                request: g.request,
                answer: g.answer,
            })
            .chain(replaced),
        );
    }
    let (client, policy, concurrency) = (&session.client, &session.policy, ctx.config.scale_concurrency);
    let delivered = answer::write_all(client, policy, concurrency, dues, ctx.dry_run).await;
    for Delivered {
        due: Due {
            reason,
            request,
            answer: a,
        },
        result,
    } in delivered
    {
        let cc = reason.as_ref().map(cost_center).unwrap_or_default();
        match (reason, result) {
            (
                Some(Reason::Rejected {
                    cost_center,
                    requested_by,
                }),
                Ok(()),
            ) => {
                let why = format!("ActivationRequest {}: {}", request.name, a.message);
                out.push(engine::rejection(
                    ctx,
                    &request.namespace,
                    &cost_center,
                    &requested_by,
                    &why,
                ));
            }
            // Its `unanswered` row is there already.
            (Some(Reason::Undecided { .. }), Err(e)) => {
                tracing::warn!(request = %request.key(), error = ?e, "why the request stays pending could not be written");
            }
            (_, result) => {
                if let Some(row) = answer::unwritten_row(&request.namespace, &cc, &request, &a, result) {
                    out.push(DecidedRow::unrecorded(row));
                }
            }
        }
    }
    out
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
        granted_by: None,
    }
}
