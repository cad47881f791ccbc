//! `history [--namespace NS] [--cost-center CC] [--requested-by U] [--operation OP] [--cluster C]
//! [--since T] [--until T] [--output text|json|csv]`: the audit trail of the whole fleet (every
//! cluster writing to the audit table) unless `--cluster` narrows it, oldest first. A record
//! that does not read is named on stderr (and in the JSON) and the listing goes on: exit 0.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::{csv_field, Context};
use crate::cli::{HistoryArgs, OutputFormat};
use crate::config::validate_namespace_name;
use crate::error::{Error, Exit, Result};
use crate::history::{self, Entry, Filters, History};

pub async fn execute(ctx: &Context, args: HistoryArgs) -> Result<Exit> {
    let filters = filters(args, Utc::now())?;
    let client = crate::dynamo::client(&ctx.config).await;
    let found = history::load(&client, &ctx.config.audit_table, &filters).await?;
    tracing::info!(
        records = found.entries.len(),
        unreadable = found.unreadable.len(),
        queries = found.queries.len(),
        pages = found.pages,
        "history read"
    );
    for u in &found.unreadable {
        eprintln!("namespace-scheduler: unreadable {u}");
    }
    let tz = ctx.config.business.timezone;
    let time = |epoch: f64| {
        DateTime::from_timestamp_millis((epoch * 1000.0).round() as i64)
            .map(|t| t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    match ctx.output {
        OutputFormat::Json => {
            let records: Vec<_> = found
                .entries
                .iter()
                .map(|e| {
                    let mut v = serde_json::to_value(e).unwrap_or_default();
                    v["time"] = json!(time(e.timestamp_start));
                    v
                })
                .collect();
            let value = json!({
                "table": ctx.config.audit_table,
                "timezone": tz.name(),
                "since": filters.since.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true),
                "until": filters.until.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true),
                "cluster": filters.cluster,
                "queries": found.queries,
                "pages": found.pages,
                "records": records,
                "unreadable": found.unreadable,
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        OutputFormat::Csv => print_csv(&found, &time),
        OutputFormat::Text => {
            println!(
                "Audit trail from {} to {} ({}), {}: {} record(s)",
                filters.since.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                filters.until.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                tz.name(),
                filters
                    .cluster
                    .as_deref()
                    .map_or("every cluster".to_string(), |c| format!("cluster {c}")),
                found.entries.len()
            );
            print_text(&found, &time);
        }
    }
    Ok(Exit::Ok)
}

/// The filters of the command line, checked: a bad value is exit 2, naming the flag.
fn filters(args: HistoryArgs, now: DateTime<Utc>) -> Result<Filters> {
    let given = |flag: &str, v: Option<String>| -> Result<Option<String>> {
        match v.map(|v| v.trim().to_string()) {
            Some(v) if v.is_empty() => Err(Error::config(flag, v, "must not be empty")),
            other => Ok(other),
        }
    };
    let namespace = given("--namespace", args.namespace)?;
    if let Some(ns) = &namespace {
        validate_namespace_name("--namespace", ns)?;
    }
    let until = args.until.unwrap_or(now);
    let since = args.since.unwrap_or(until - history::DEFAULT_RANGE);
    if since > until {
        return Err(Error::config(
            "--since",
            since.to_rfc3339(),
            format!("is after --until {}", until.to_rfc3339()),
        ));
    }
    Ok(Filters {
        namespace,
        cost_center: given("--cost-center", args.cost_center)?,
        requested_by: given("--requested-by", args.requested_by)?,
        operation: args.operation,
        cluster: given("--cluster", args.cluster)?,
        since,
        until,
    })
}

/// Every field of a record, as the CSV names them ([`values`] in this order).
const FIELDS: [&str; 12] = [
    "time",
    "timestamp_start",
    "cluster",
    "namespace",
    "cost_center",
    "operation",
    "status",
    "requested_by",
    "active_until",
    "run_id",
    "duration_ms",
    "error",
];

/// A record's [`FIELDS`] as printed.
fn values(e: &Entry, time: &impl Fn(f64) -> String) -> [String; 12] {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        time(e.timestamp_start),
        format!("{}", e.timestamp_start),
        e.cluster.clone(),
        e.namespace.clone(),
        e.cost_center.clone(),
        e.operation.as_str().to_string(),
        e.status.clone(),
        e.requested_by.clone(),
        text(&e.active_until),
        text(&e.run_id),
        e.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
        text(&e.error),
    ]
}

/// The text table's columns, (header, one of [`FIELDS`]); the last one is not padded.
const TEXT: [(&str, &str); 9] = [
    ("TIME", "time"),
    ("CLUSTER", "cluster"),
    ("NAMESPACE", "namespace"),
    ("COST CENTER", "cost_center"),
    ("OPERATION", "operation"),
    ("STATUS", "status"),
    ("REQUESTED BY", "requested_by"),
    ("UNTIL", "active_until"),
    ("ERROR", "error"),
];

fn print_text(found: &History, time: &impl Fn(f64) -> String) {
    let rows: Vec<Vec<String>> = found
        .entries
        .iter()
        .map(|e| {
            let all = values(e, time);
            TEXT.iter()
                .map(|(_, name)| {
                    let i = FIELDS.iter().position(|f| f == name).expect("a text column is a field");
                    match &all[i] {
                        v if v.is_empty() && *name == "active_until" => "-".to_string(),
                        v => v.clone(),
                    }
                })
                .collect()
        })
        .collect();
    let headers: Vec<String> = TEXT.iter().map(|(h, _)| h.to_string()).collect();
    let mut widths: Vec<usize> = headers.iter().map(String::len).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let (last, padded) = cells.split_last().expect("columns");
        let mut out: Vec<String> = padded.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push(last.clone());
        out.join("  ").trim_end().to_string()
    };
    println!();
    println!("{}", line(&headers));
    if rows.is_empty() {
        println!("(no record)");
    }
    for row in &rows {
        println!("{}", line(row));
    }
    if !found.unreadable.is_empty() {
        println!();
        println!(
            "{} record(s) do not read and are not listed (see stderr).",
            found.unreadable.len()
        );
    }
}

fn print_csv(found: &History, time: &impl Fn(f64) -> String) {
    println!("{}", FIELDS.join(","));
    for e in &found.entries {
        let row: Vec<String> = values(e, time).iter().map(|v| csv_field(v)).collect();
        println!("{}", row.join(","));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn args() -> HistoryArgs {
        HistoryArgs {
            namespace: None,
            cost_center: None,
            requested_by: None,
            operation: None,
            cluster: None,
            since: None,
            until: None,
        }
    }

    #[test]
    fn defaults_are_the_last_seven_days() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let f = filters(args(), now).unwrap();
        assert_eq!((f.since, f.until), (now - chrono::Duration::days(7), now));
        let until = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
        let f = filters(
            HistoryArgs {
                until: Some(until),
                ..args()
            },
            now,
        )
        .unwrap();
        assert_eq!(f.since, until - chrono::Duration::days(7));
    }

    #[test]
    fn bad_filters_are_exit_2_naming_the_flag() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        let cases = [
            (
                HistoryArgs {
                    namespace: Some("Dev_A".into()),
                    ..args()
                },
                "--namespace",
            ),
            (
                HistoryArgs {
                    cost_center: Some(" ".into()),
                    ..args()
                },
                "--cost-center",
            ),
            (
                HistoryArgs {
                    cluster: Some(String::new()),
                    ..args()
                },
                "--cluster",
            ),
            (
                HistoryArgs {
                    since: Some(now + chrono::Duration::hours(1)),
                    ..args()
                },
                "--since",
            ),
        ];
        for (a, flag) in cases {
            let err = filters(a, now).unwrap_err();
            assert_eq!(err.exit(), Exit::Usage, "{err}");
            assert!(err.to_string().contains(flag), "{flag}: {err}");
        }
    }
}
