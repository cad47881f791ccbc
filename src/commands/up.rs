//! `up`: one-off activation, all-or-nothing. It opens a window `[now, now + --for)` granted to
//! `--cost-center`, held to the same rules and caps as a self-service request. If any requested
//! namespace is rejected, nothing is touched, each one is audited `rejected`, and the exit code
//! is 4. The windows are granted across the fleet (docs/fleet.md): recorded in the windows table
//! all together or not at all, and released again for the namespaces that do not come up. If
//! either table cannot be read or written, or the item of `--cost-center` is invalid, nothing is
//! touched and the exit code is 1 (a failure the platform can fix or a retry gets past, not a
//! rejection).

use chrono::Utc;

use super::Context;
use crate::audit::OperationType;
use crate::cli::UpArgs;
use crate::engine;
use crate::error::{Error, Exit, Result};
use crate::fleet::{self, AfterRun, Ask};
use crate::permissions::{ProposedWindow, Verdict};
use crate::scaling::plan::{plan_namespace, Intent, Target, Until};

pub async fn execute(ctx: &Context, mut args: UpArgs) -> Result<Exit> {
    // Naming a namespace twice must not make two racing writers of it.
    args.namespaces.sort();
    args.namespaces.dedup();
    let at = args.at.unwrap_or_else(Utc::now);
    let business = ctx.config.business.is_business(at)?;
    let (mut session, inv) = engine::open_for_named(ctx, &args.namespaces, at).await?;
    let proposals: Vec<ProposedWindow> = args
        .namespaces
        .iter()
        .map(|n| ProposedWindow {
            namespace: n.clone(),
            cost_center: args.cost_center.clone(),
            label: inv.namespaces[n].cost_center_label().map(str::to_string),
            requested_by: args.requested_by.clone(),
            until: at + args.duration,
        })
        .collect();
    let ask = Ask {
        proposals: &proposals,
        own_windows: &inv.open_windows(at),
        at,
        run_id: &ctx.run_id,
        all_or_nothing: true,
        preview: ctx.dry_run,
    };
    let authorized = match fleet::authorize(&session.dynamo, &ctx.config, &ask).await {
        Ok(a) => a,
        Err(e) => {
            session.close().await;
            return Err(e);
        }
    };
    // An invalid item of the cost center is the platform's to fix, the fleet's windows
    // unreadable or contended a retry's: exit 1, nothing touched.
    if let Some(why) = authorized.verdicts.iter().find_map(Verdict::undecided) {
        session.close().await;
        return Err(Error::failed(format!("{why}; nothing was changed")));
    }
    session.release_windows_after(AfterRun::new(authorized.windows, authorized.recorded));
    let header = engine::header(ctx, "up", at, Some(business), inv.namespaces.len());
    let asked = Asked {
        args: &args,
        until: at + args.duration,
    };
    decided(ctx, session, header, asked, &inv, &proposals, &authorized.verdicts).await
}

/// What the admin asked for, and the end of the windows it opens.
struct Asked<'a> {
    args: &'a UpArgs,
    until: chrono::DateTime<Utc>,
}

/// Once every proposal is decided: exit 4 with nothing touched if one was rejected, else the
/// windows opened.
async fn decided(
    ctx: &Context,
    session: engine::Session,
    header: crate::summary::Header,
    Asked { args, until }: Asked<'_>,
    inv: &crate::scaling::inventory::Inventory,
    proposals: &[ProposedWindow],
    verdicts: &[Verdict],
) -> Result<Exit> {
    let rejections: Vec<(String, String)> = proposals
        .iter()
        .zip(verdicts)
        .filter_map(|(r, v)| match v {
            Verdict::Rejected(why) => Some((r.namespace.clone(), why.to_string())),
            _ => None,
        })
        .collect();
    if !rejections.is_empty() {
        let first = rejections
            .iter()
            .map(|(n, why)| format!("{n}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        if ctx.dry_run {
            session.close().await;
            return Err(Error::Rejected(first));
        }
        tracing::warn!(rejected = %first, "request rejected; nothing was touched");
        let rejected = proposals
            .iter()
            .map(|r| {
                let why = rejections
                    .iter()
                    .find(|(n, _)| *n == r.namespace)
                    .map(|(_, w)| w.clone())
                    .unwrap_or_else(|| format!("not applied: the request is all-or-nothing and {first}"));
                engine::rejection(ctx, &r.namespace, &r.cost_center, &r.requested_by, &why)
            })
            .collect();
        // The usual summary and audit, with the rejected rows: exit 4 (1 if the audit failed).
        let finished = session
            .finish(ctx, header, Vec::new(), rejected, Exit::Rejected)
            .await?;
        return Ok(super::print_finished(ctx, finished));
    }
    let intent = Intent {
        target: Target::Up,
        until: Until::Set(until, args.cost_center.clone()),
        operation: OperationType::Activate,
        requested_by: args.requested_by.clone(),
        granted_by: None,
    };
    let plans: Vec<_> = args
        .namespaces
        .iter()
        .map(|n| {
            let mut plan = plan_namespace(&inv.namespaces[n], inv.workloads_of(n), &intent);
            plan.cost_center = args.cost_center.clone();
            plan
        })
        .collect();
    let finished = session.finish(ctx, header, plans, vec![], Exit::Rejected).await?;
    Ok(super::print_finished(ctx, finished))
}
