//! `down`: one-off deactivation of named namespaces (removes any activation window, and releases
//! its slot in the fleet's windows table once the namespace is down).

use chrono::Utc;

use super::Context;
use crate::audit::OperationType;
use crate::cli::DownArgs;
use crate::engine;
use crate::error::{Exit, Result};
use crate::fleet::{AfterRun, FleetWindows};
use crate::scaling::plan::{plan_namespace, Intent, Target, Until};

pub async fn execute(ctx: &Context, mut args: DownArgs) -> Result<Exit> {
    // Naming a namespace twice must not make two racing writers of it.
    args.namespaces.sort();
    args.namespaces.dedup();
    let at = args.at.unwrap_or_else(Utc::now);
    let (mut session, inv) = engine::open_for_named(ctx, &args.namespaces, at).await?;
    let closing: Vec<_> = args
        .namespaces
        .iter()
        .filter_map(|n| inv.namespaces[n].window())
        .collect();
    if !closing.is_empty() {
        let mut windows = AfterRun::new(
            FleetWindows::from_config(session.dynamo.clone(), &ctx.config),
            Default::default(),
        );
        windows.ending_all(&closing, &ctx.config.business, at);
        session.release_windows_after(windows);
    }
    let intent = Intent {
        target: Target::Down,
        until: Until::Remove,
        operation: OperationType::Deactivate,
        requested_by: args.requested_by.clone(),
        granted_by: None,
    };
    let plans: Vec<_> = args
        .namespaces
        .iter()
        .map(|n| {
            let mut plan = plan_namespace(&inv.namespaces[n], inv.workloads_of(n), &intent);
            if let Some(cc) = &args.cost_center {
                plan.cost_center = cc.clone();
            }
            plan
        })
        .collect();
    let header = engine::header(ctx, "down", at, None, inv.namespaces.len());
    let finished = session.finish(ctx, header, plans, vec![], Exit::Ok).await?;
    Ok(super::print_finished(ctx, finished))
}
