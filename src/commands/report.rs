//! `report --week YYYY-Www [--all-clusters] [--output text|json|csv] [--price-vcpu-hour P]
//! [--price-gib-hour P]`: active hours, hours down and what they saved, per namespace and per
//! cost center for one ISO week (business time zone), from the audit table, with totals
//! (docs/reference.md §8). With `--all-clusters`, every cluster that writes to the audit table:
//! a cluster column, each cluster's totals, the cost centers across the fleet and its total.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{csv_field as csv, Context};
use crate::cli::{OutputFormat, ReportArgs};
use crate::config::{self, Prices};
use crate::error::{Exit, Result};
use crate::report::table::{self, Coverage, Figures, FleetTable, WeekTable};
use crate::report::{self as audit_report, Scope};

pub async fn execute(ctx: &Context, args: ReportArgs) -> Result<Exit> {
    let tz = ctx.config.business.timezone;
    let (start, end) =
        audit_report::iso_week_bounds(&args.week, tz).map_err(|r| audit_report::week_error(&args.week, r))?;
    let prices = prices(&ctx.config.prices, &args)?;
    let now = Utc::now();
    let until = end.min(now);
    let scope = if args.all_clusters {
        Scope::Fleet
    } else {
        Scope::Cluster(ctx.config.cluster_name.clone())
    };
    let client = crate::dynamo::client(&ctx.config).await;
    let (mut by_cluster, records_read) = if until > start {
        audit_report::load_transitions(
            &client,
            &ctx.config.audit_table,
            &scope,
            until.timestamp_millis() as f64 / 1000.0,
        )
        .await?
    } else {
        (BTreeMap::new(), 0) // a week that has not started yet
    };
    let t = |d: DateTime<Utc>| d.timestamp_millis() as f64 / 1000.0;
    let (from, to) = (t(start), t(until).max(t(start)));
    let one;
    let fleet;
    let view = match &scope {
        Scope::Cluster(cluster) => {
            one = table::week_table(&by_cluster.remove(cluster).unwrap_or_default(), from, to);
            View::of_cluster(&one)
        }
        Scope::Fleet => {
            fleet = table::fleet_table(&by_cluster, from, to);
            View::of_fleet(&fleet)
        }
    };
    tracing::info!(
        week = %args.week,
        records_read,
        clusters = view.clusters.len(),
        rows = view.rows.len(),
        total_hours = hours(view.total.active_seconds),
        total_hours_down = hours(view.total.down.seconds),
        "report computed"
    );

    let week = Week {
        name: &args.week,
        tz,
        start,
        end,
        until,
    };
    match ctx.output {
        OutputFormat::Json => {
            let value = json_report(ctx, args.all_clusters, &week, &view, &prices, records_read);
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Csv => print_csv(&view, &prices),
        OutputFormat::Text => {
            let whose = if args.all_clusters {
                let names: Vec<&str> = view.clusters.iter().map(|(c, _)| *c).collect();
                format!("all clusters ({}: {})", names.len(), names.join(", "))
            } else {
                format!("cluster {}", ctx.config.cluster_name)
            };
            println!(
                "Active hours, hours down and savings, week {} ({} to {}{}), {whose}",
                week.name,
                week.local(start),
                week.local(end),
                if week.partial() {
                    format!(", counted up to {}", week.local(until.max(start)))
                } else {
                    String::new()
                },
            );
            println!(
                "Savings are requests not held while down, at {} per vCPU-hour and {} per GiB-hour.",
                prices.per_vcpu_hour, prices.per_gib_hour
            );
            print_text(&view, &prices);
        }
    }
    Ok(Exit::Ok)
}

/// The ISO week a report covers, and how far into it the figures go (`until`: now, in the
/// current week).
struct Week<'a> {
    name: &'a str,
    tz: chrono_tz::Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    until: DateTime<Utc>,
}

impl Week<'_> {
    /// The instant as the business zone reads it.
    fn local(&self, d: DateTime<Utc>) -> String {
        d.with_timezone(&self.tz).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The week is not over yet.
    fn partial(&self) -> bool {
        self.until < self.end
    }
}

/// The report as one JSON document (docs/reference.md §8).
fn json_report(
    ctx: &Context,
    all_clusters: bool,
    week: &Week<'_>,
    view: &View<'_>,
    prices: &Prices,
    records_read: usize,
) -> Value {
    let mut value = json!({
        "week": week.name,
        "timezone": week.tz.name(),
    });
    if all_clusters {
        value["all_clusters"] = json!(true);
        value["clusters"] = view
            .clusters
            .iter()
            .map(|(cluster, w)| {
                let mut v = json!({"cluster": cluster, "namespaces": w.rows.len()});
                extend(&mut v, figures_json(&w.total, prices));
                v
            })
            .collect();
    } else {
        value["cluster"] = json!(ctx.config.cluster_name);
    }
    extend(
        &mut value,
        json!({
            "table": ctx.config.audit_table,
            "start": week.local(week.start),
            "end": week.local(week.end),
            "until": week.local(week.until.max(week.start)),
            "partial": week.partial(),
            "records_read": records_read,
            "prices": {"per_vcpu_hour": prices.per_vcpu_hour, "per_gib_hour": prices.per_gib_hour},
            "namespaces": view.rows.iter().map(|(cluster, r)| {
                let mut v = json!({});
                if let Some(c) = cluster {
                    v["cluster"] = json!(c);
                }
                extend(&mut v, json!({"namespace": r.namespace, "cost_center": r.cost_center}));
                extend(&mut v, figures_json(&r.figures, prices));
                v
            }).collect::<Vec<_>>(),
            "cost_centers": view.cost_centers.iter().map(|(cc, c)| {
                let mut v = json!({"cost_center": cc, "namespaces": c.namespaces});
                extend(&mut v, figures_json(&c.figures, prices));
                v
            }).collect::<Vec<_>>(),
            // Kept from before savings were reported.
            "total_hours": hours(view.total.active_seconds),
            "total_seconds": round(view.total.active_seconds, 3),
        }),
    );
    value["totals"] = figures_json(view.total, prices);
    value
}

/// What the report prints: its rows (each with its cluster when across the fleet), the
/// clusters' totals (across the fleet only), the cost centers and the total.
struct View<'a> {
    fleet: bool,
    rows: Vec<(Option<&'a str>, &'a table::Row)>,
    clusters: Vec<(&'a str, &'a WeekTable)>,
    cost_centers: &'a BTreeMap<String, table::CostCenter>,
    total: &'a Figures,
}

impl<'a> View<'a> {
    fn of_cluster(week: &'a WeekTable) -> Self {
        View {
            fleet: false,
            rows: week.rows.iter().map(|r| (None, r)).collect(),
            clusters: Vec::new(),
            cost_centers: &week.cost_centers,
            total: &week.total,
        }
    }

    fn of_fleet(fleet: &'a FleetTable) -> Self {
        View {
            fleet: true,
            rows: fleet
                .clusters
                .iter()
                .flat_map(|(c, week)| week.rows.iter().map(move |r| (Some(c.as_str()), r)))
                .collect(),
            clusters: fleet.clusters.iter().map(|(c, week)| (c.as_str(), week)).collect(),
            cost_centers: &fleet.cost_centers,
            total: &fleet.total,
        }
    }
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

/// `hours` stays the fourth column, as before (across the fleet a `cluster` column comes second);
/// the new ones follow. Unknown savings are empty cells with `savings` = `unknown`.
fn print_csv(view: &View<'_>, prices: &Prices) {
    let fleet = view.fleet;
    let cluster = |c: Option<&str>| {
        if fleet {
            format!("{},", csv(c.unwrap_or_default()))
        } else {
            String::new()
        }
    };
    println!(
        "scope,{}namespace,cost_center,hours,hours_down,vcpu_hours_saved,gib_hours_saved,saved,savings",
        if fleet { "cluster," } else { "" }
    );
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
    for (c, r) in &view.rows {
        println!(
            "namespace,{}{},{},{}",
            cluster(*c),
            csv(&r.namespace),
            csv(&r.cost_center),
            cells(&r.figures)
        );
    }
    for (c, week) in &view.clusters {
        println!("cluster,{},,{}", cluster(Some(c)), cells(&week.total));
    }
    for (cc, c) in view.cost_centers {
        println!("cost_center,{},{},{}", cluster(None), csv(cc), cells(&c.figures));
    }
    println!("total,{},,{}", cluster(None), cells(view.total));
}

fn print_text(view: &View<'_>, prices: &Prices) {
    let fleet = view.fleet;
    let cl_width = view.clusters.iter().map(|(c, _)| c.len()).max().unwrap_or(0).max(7);
    let cluster = |c: Option<&str>| {
        if fleet {
            format!("{:<cl_width$}  ", c.unwrap_or_default())
        } else {
            String::new()
        }
    };
    let ns_width = view
        .rows
        .iter()
        .map(|(_, r)| r.namespace.len())
        .max()
        .unwrap_or(0)
        .max(9);
    let cc_width = view.cost_centers.keys().map(String::len).max().unwrap_or(0).max(11);
    let header = format!(
        "{:>8}  {:>8}  {:>12}  {:>12}  {:>10}",
        "ACTIVE H", "DOWN H", "VCPU-H SAVED", "GIB-H SAVED", "SAVED"
    );
    println!();
    println!(
        "{}{:<ns_width$}  {:<cc_width$}  {header}",
        cluster(Some("CLUSTER")),
        "NAMESPACE",
        "COST CENTER"
    );
    if view.rows.is_empty() {
        println!("(no namespace was active or down)");
    }
    for (c, r) in &view.rows {
        println!(
            "{}{:<ns_width$}  {:<cc_width$}  {}",
            cluster(*c),
            r.namespace,
            r.cost_center,
            text_cells(&r.figures, prices)
        );
    }
    if fleet {
        println!();
        println!("{:<cl_width$}  {:>10}  {header}", "CLUSTER", "NAMESPACES");
        for (c, week) in &view.clusters {
            println!(
                "{:<cl_width$}  {:>10}  {}",
                c,
                week.rows.len(),
                text_cells(&week.total, prices)
            );
        }
        println!(
            "{:<cl_width$}  {:>10}  {}",
            "FLEET",
            view.rows.len(),
            text_cells(view.total, prices)
        );
    }
    println!();
    println!("{:<cc_width$}  {header}", "COST CENTER");
    for (cc, c) in view.cost_centers {
        println!("{:<cc_width$}  {}", cc, text_cells(&c.figures, prices));
    }
    println!("{:<cc_width$}  {}", "TOTAL", text_cells(view.total, prices));
    let any = |c: Coverage| view.total.coverage() == c || view.rows.iter().any(|(_, r)| r.figures.coverage() == c);
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
