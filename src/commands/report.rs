//! `report --week YYYY-Www [--output text|json|csv] [--price-vcpu-hour P] [--price-gib-hour P]`:
//! active hours, hours down and what they saved, per namespace and per cost center for one ISO
//! week (business time zone), from the audit table, with totals (docs/reference.md §8).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::Context;
use crate::cli::{OutputFormat, ReportArgs};
use crate::config::{self, Prices};
use crate::error::{Exit, Result};
use crate::report::table::{self, Coverage, Figures, WeekTable};
use crate::report::{self as audit_report};

pub async fn execute(ctx: &Context, args: ReportArgs) -> Result<Exit> {
    let tz = ctx.config.business.timezone;
    let (start, end) =
        audit_report::iso_week_bounds(&args.week, tz).map_err(|r| audit_report::week_error(&args.week, r))?;
    let prices = prices(&ctx.config.prices, &args)?;
    let now = Utc::now();
    let until = end.min(now);
    let client = crate::dynamo::client(&ctx.config).await;
    let (transitions, records_read) = if until > start {
        audit_report::load_transitions(
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
    let week = table::week_table(&transitions, t(start), t(until).max(t(start)));
    tracing::info!(
        week = %args.week,
        records_read,
        rows = week.rows.len(),
        total_hours = hours(week.total.active_seconds),
        total_hours_down = hours(week.total.down.seconds),
        "report computed"
    );

    let local = |d: DateTime<Utc>| d.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true);
    let partial = until < end;
    match ctx.output {
        OutputFormat::Json => {
            let mut value = json!({
                "week": args.week,
                "timezone": tz.name(),
                "cluster": ctx.config.cluster_name,
                "table": ctx.config.audit_table,
                "start": local(start),
                "end": local(end),
                "until": local(until.max(start)),
                "partial": partial,
                "records_read": records_read,
                "prices": {"per_vcpu_hour": prices.per_vcpu_hour, "per_gib_hour": prices.per_gib_hour},
                "namespaces": week.rows.iter().map(|r| {
                    let mut v = json!({"namespace": r.namespace, "cost_center": r.cost_center});
                    extend(&mut v, figures_json(&r.figures, &prices));
                    v
                }).collect::<Vec<_>>(),
                "cost_centers": week.cost_centers.iter().map(|(cc, c)| {
                    let mut v = json!({"cost_center": cc, "namespaces": c.namespaces});
                    extend(&mut v, figures_json(&c.figures, &prices));
                    v
                }).collect::<Vec<_>>(),
                // Kept from before savings were reported.
                "total_hours": hours(week.total.active_seconds),
                "total_seconds": round(week.total.active_seconds, 3),
            });
            value["totals"] = figures_json(&week.total, &prices);
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Csv => print_csv(&week, &prices),
        OutputFormat::Text => {
            println!(
                "Active hours, hours down and savings, week {} ({} to {}{}), cluster {}",
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
            println!(
                "Savings are requests not held while down, at {} per vCPU-hour and {} per GiB-hour.",
                prices.per_vcpu_hour, prices.per_gib_hour
            );
            print_text(&week, &prices);
        }
    }
    Ok(Exit::Ok)
}

/// The configured prices, with the flags' values over them (validated like the variables).
fn prices(configured: &Prices, args: &ReportArgs) -> Result<Prices> {
    let mut prices = *configured;
    if let Some(v) = &args.price_vcpu_hour {
        prices.per_vcpu_hour = config::parse_price("--price-vcpu-hour", v)?;
    }
    if let Some(v) = &args.price_gib_hour {
        prices.per_gib_hour = config::parse_price("--price-gib-hour", v)?;
    }
    Ok(prices)
}

fn coverage_name(c: Coverage) -> &'static str {
    match c {
        Coverage::Known => "known",
        Coverage::Partial => "partial",
        Coverage::Unknown => "unknown",
    }
}

/// A row's figures in JSON: unknown savings are `null`, never 0.
fn figures_json(f: &Figures, prices: &Prices) -> Value {
    let opt = |v: Option<f64>, digits| v.map(|v| round(v, digits));
    json!({
        "hours": hours(f.active_seconds),
        "seconds": round(f.active_seconds, 3),
        "hours_down": hours(f.down.seconds),
        "vcpu_hours_saved": opt(f.vcpu_hours(), 4),
        "gib_hours_saved": opt(f.gib_hours(), 4),
        "saved": opt(f.saved(prices), 4),
        "savings": coverage_name(f.coverage()),
        "hours_down_savings_unknown": hours(f.down.unknown_seconds),
    })
}

fn extend(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// `hours` stays the fourth column, as before; the new ones follow. Unknown savings are empty
/// cells with `savings` = `unknown`.
fn print_csv(week: &WeekTable, prices: &Prices) {
    println!("scope,namespace,cost_center,hours,hours_down,vcpu_hours_saved,gib_hours_saved,saved,savings");
    let cells = |f: &Figures| {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
        format!(
            "{:.2},{:.2},{},{},{},{}",
            f.active_seconds / 3600.0,
            f.down.seconds / 3600.0,
            opt(f.vcpu_hours()),
            opt(f.gib_hours()),
            opt(f.saved(prices)),
            coverage_name(f.coverage())
        )
    };
    for r in &week.rows {
        println!(
            "namespace,{},{},{}",
            csv(&r.namespace),
            csv(&r.cost_center),
            cells(&r.figures)
        );
    }
    for (cc, c) in &week.cost_centers {
        println!("cost_center,,{},{}", csv(cc), cells(&c.figures));
    }
    println!("total,,,{}", cells(&week.total));
}

fn print_text(week: &WeekTable, prices: &Prices) {
    let ns_width = week.rows.iter().map(|r| r.namespace.len()).max().unwrap_or(0).max(9);
    let cc_width = week.cost_centers.keys().map(String::len).max().unwrap_or(0).max(11);
    let header = format!(
        "{:>8}  {:>8}  {:>12}  {:>12}  {:>10}",
        "ACTIVE H", "DOWN H", "VCPU-H SAVED", "GIB-H SAVED", "SAVED"
    );
    println!();
    println!("{:<ns_width$}  {:<cc_width$}  {header}", "NAMESPACE", "COST CENTER");
    if week.rows.is_empty() {
        println!("(no namespace was active or down)");
    }
    for r in &week.rows {
        println!(
            "{:<ns_width$}  {:<cc_width$}  {}",
            r.namespace,
            r.cost_center,
            text_cells(&r.figures, prices)
        );
    }
    println!();
    println!("{:<cc_width$}  {header}", "COST CENTER");
    for (cc, c) in &week.cost_centers {
        println!("{:<cc_width$}  {}", cc, text_cells(&c.figures, prices));
    }
    println!("{:<cc_width$}  {}", "TOTAL", text_cells(&week.total, prices));
    let any = |c: Coverage| week.total.coverage() == c || week.rows.iter().any(|r| r.figures.coverage() == c);
    let notes = [
        (
            any(Coverage::Unknown),
            "unknown: down by records written before requests were recorded; hours are exact, savings are not known.",
        ),
        (
            any(Coverage::Partial),
            ">= : part of that time has unknown savings; the figure is a lower bound.",
        ),
    ];
    if notes.iter().any(|(shown, _)| *shown) {
        println!();
    }
    for (_, note) in notes.iter().filter(|(shown, _)| *shown) {
        println!("{note}");
    }
}

fn text_cells(f: &Figures, prices: &Prices) -> String {
    let shown = |v: Option<f64>, digits: usize| match (v, f.coverage()) {
        (None, _) => "unknown".to_string(),
        (Some(v), Coverage::Partial) => format!(">={v:.digits$}"),
        (Some(v), _) => format!("{v:.digits$}"),
    };
    format!(
        "{:>8.2}  {:>8.2}  {:>12}  {:>12}  {:>10}",
        f.active_seconds / 3600.0,
        f.down.seconds / 3600.0,
        shown(f.vcpu_hours(), 2),
        shown(f.gib_hours(), 2),
        shown(f.saved(prices), 2)
    )
}

fn hours(seconds: f64) -> f64 {
    round(seconds / 3600.0, 4)
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    // `+ 0.0` turns a rounded -0.0 into 0.0.
    (v * f).round() / f + 0.0
}

/// Quotes a CSV field when it needs it.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
