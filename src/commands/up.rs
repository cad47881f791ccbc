//! `up`: one-off activation, all-or-nothing. It opens a window `[now, now + --for)` granted to
//! `--cost-center`, held to the same rules and caps as a self-service request. If any requested
//! namespace is rejected, nothing is touched, each one is audited `rejected`, and the exit code
//! is 4. If the permissions table cannot be read, or the item of `--cost-center` in it is
//! invalid, nothing is touched and the exit code is 1 (a failure the platform can fix, not a
//! rejection).

use chrono::Utc;

use super::Context;
use crate::audit::OperationType;
use crate::cli::UpArgs;
use crate::engine;
use crate::error::{Error, Exit, Result};
use crate::permissions::{self, ProposedWindow, Verdict};
use crate::scaling::plan::{plan_namespace, Intent, Target, Until};

pub async fn execute(ctx: &Context, mut args: UpArgs) -> Result<Exit> {
    // Naming a namespace twice must not make two racing writers of it.
    args.namespaces.sort();
    args.namespaces.dedup();
    let at = args.at.unwrap_or_else(Utc::now);
    let business = ctx.config.business.is_business(at)?;
    let until = at + args.duration;
    let (session, inv) = engine::open_for_named(ctx, &args.namespaces, at).await?;
    let proposals: Vec<ProposedWindow> = args
        .namespaces
        .iter()
        .map(|n| ProposedWindow {
            namespace: n.clone(),
            cost_center: args.cost_center.clone(),
            label: inv.namespaces[n].cost_center_label().map(str::to_string),
            requested_by: args.requested_by.clone(),
            until,
        })
        .collect();
    let verdicts =
        match permissions::authorize(&session.dynamo, &ctx.config, &proposals, &inv.open_windows(at), at).await {
            Ok(v) => v,
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
    // An invalid item of the cost center is the platform's to fix: exit 1, nothing touched.
    if let Some(invalid) = verdicts.iter().find_map(|v| match v {
        Verdict::Undecided(e) => Some(e),
        _ => None,
    }) {
        session.close().await;
        return Err(Error::failed(format!("{invalid}; nothing was changed")));
    }
    let rejections: Vec<(String, String)> = proposals
        .iter()
        .zip(&verdicts)
        .filter_map(|(r, v)| match v {
            Verdict::Rejected(why) => Some((r.namespace.clone(), why.to_string())),
            _ => None,
        })
        .collect();
    let header = engine::header(ctx, "up", at, Some(business), inv.namespaces.len());
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
