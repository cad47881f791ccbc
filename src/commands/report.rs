//! `report --week YYYY-Www [--output text|json|csv]`: active hours per namespace and per cost
//! center for one ISO week (business time zone), from the audit table, with totals.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::Context;
use crate::cli::{OutputFormat, ReportArgs};
use crate::error::{Exit, Result};
use crate::report::{self, Usage};

pub async fn execute(ctx: &Context, args: ReportArgs) -> Result<Exit> {
    let tz = ctx.config.business.timezone;
    let (start, end) = report::iso_week_bounds(&args.week, tz).map_err(|r| report::week_error(&args.week, r))?;
    let now = Utc::now();
    let until = end.min(now);
    let client = crate::dynamo::client(&ctx.config).await;
    let (transitions, records_read) = if until > start {
        report::load_transitions(
            &client,
            &ctx.config.audit_table,
            &ctx.config.cluster_name,
            until.timestamp_millis() as f64 / 1000.0,
        )
        .await?
    } else {
        (Vec::new(), 0) // a week that has not started yet
    };
    let t = |d: DateTime<Utc>| d.timestamp_millis() as f64 / 1000.0;
    let usage = report::active_seconds(&transitions, t(start), t(until).max(t(start)));
    let per_cc = report::by_cost_center(&usage);
    let total = usage.iter().fold(0.0, |acc, u| acc + u.seconds);
    tracing::info!(
        week = %args.week,
        records_read,
        namespaces = usage.len(),
        total_hours = hours(total),
        "report computed"
    );

    let local = |d: DateTime<Utc>| d.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true);
    let partial = until < end;
    match ctx.output {
        OutputFormat::Json => {
            let value = json!({
                "week": args.week,
                "timezone": tz.name(),
                "cluster": ctx.config.cluster_name,
                "table": ctx.config.audit_table,
                "start": local(start),
                "end": local(end),
                "until": local(until.max(start)),
                "partial": partial,
                "records_read": records_read,
                "namespaces": usage.iter().map(|u| json!({
                    "namespace": u.namespace,
                    "cost_center": u.cost_center,
                    "hours": hours(u.seconds),
                    "seconds": round(u.seconds, 3),
                })).collect::<Vec<_>>(),
                "cost_centers": per_cc.iter().map(|(cc, s)| json!({
                    "cost_center": cc,
                    "hours": hours(*s),
                    "seconds": round(*s, 3),
                    "namespaces": usage.iter().filter(|u| &u.cost_center == cc).count(),
                })).collect::<Vec<_>>(),
                "total_hours": hours(total),
                "total_seconds": round(total, 3),
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Csv => {
            println!("scope,namespace,cost_center,hours");
            for u in &usage {
                println!(
                    "namespace,{},{},{:.2}",
                    csv(&u.namespace),
                    csv(&u.cost_center),
                    u.seconds / 3600.0
                );
            }
            for (cc, s) in &per_cc {
                println!("cost_center,,{},{:.2}", csv(cc), s / 3600.0);
            }
            println!("total,,,{:.2}", total / 3600.0);
        }
        OutputFormat::Text => {
            println!(
                "Active hours, week {} ({} to {}{}), cluster {}",
                args.week,
                local(start),
                local(end),
                if partial {
                    format!(", counted up to {}", local(until.max(start)))
                } else {
                    String::new()
                },
                ctx.config.cluster_name
            );
            print_text(&usage, &per_cc, total);
        }
    }
    Ok(Exit::Ok)
}

fn print_text(usage: &[Usage], per_cc: &std::collections::BTreeMap<String, f64>, total: f64) {
    let ns_width = usage.iter().map(|u| u.namespace.len()).max().unwrap_or(0).max(9);
    let cc_width = per_cc.keys().map(String::len).max().unwrap_or(0).max(11);
    println!();
    println!(
        "{:<ns_width$}  {:<cc_width$}  {:>8}",
        "NAMESPACE", "COST CENTER", "HOURS"
    );
    if usage.is_empty() {
        println!("(no namespace was active)");
    }
    for u in usage {
        println!(
            "{:<ns_width$}  {:<cc_width$}  {:>8.2}",
            u.namespace,
            u.cost_center,
            u.seconds / 3600.0
        );
    }
    println!();
    println!("{:<cc_width$}  {:>8}", "COST CENTER", "HOURS");
    for (cc, s) in per_cc {
        println!("{:<cc_width$}  {:>8.2}", cc, s / 3600.0);
    }
    println!("{:<cc_width$}  {:>8.2}", "TOTAL", total / 3600.0);
}

fn hours(seconds: f64) -> f64 {
    round(seconds / 3600.0, 4)
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Quotes a CSV field when it needs it.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
