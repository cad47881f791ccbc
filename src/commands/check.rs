//! `check [--at RFC3339] [--schedule S]`: the business-hours decision for an instant (default:
//! now), by the cluster's hours or by a per-namespace schedule, decided exactly as `run` decides a
//! namespace (through [`ScheduleBook`]). Pure: no network, no runtime, no credentials.

use serde::Serialize;

use super::Context;
use crate::cli::{CheckArgs, OutputFormat};
use crate::error::{Error, Exit, Result};
use crate::hours::HoursAt;
use crate::schedule::{excerpt, ScheduleBook, ScheduleError};

/// What `check --output json` prints: the decision's fields, which schedule decided, and the
/// effective protected namespaces (docs/reference.md §2).
#[derive(Serialize)]
struct CheckReport<'a> {
    #[serde(flatten)]
    decision: &'a HoursAt,
    schedule: &'a str,
    protected_namespaces: Vec<&'a str>,
}

pub fn execute(ctx: &Context, args: CheckArgs) -> Result<Exit> {
    if ctx.output == OutputFormat::Csv {
        return Err(csv_refused("check"));
    }
    let at = args.at.unwrap_or_else(chrono::Utc::now);
    let mut book = ScheduleBook::new(&ctx.config.business, at);
    let decided = book
        .decide(args.schedule.as_deref())
        .map_err(|e| schedule_error(args.schedule.as_deref().unwrap_or_default(), e))?;
    let decision = &decided.decision;
    tracing::debug!(business_hours = decision.business_hours, reason = %decision.reason, schedule = %decided.schedule, "decided");
    match ctx.output {
        OutputFormat::Json => {
            let report = CheckReport {
                decision,
                schedule: &decided.schedule,
                protected_namespaces: ctx.config.protected_namespaces.iter().map(String::as_str).collect(),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
        _ => print!("{}", render_text(decision, &decided.schedule)),
    }
    Ok(Exit::Ok)
}

/// A calendar that cannot answer stays a calendar error; anything else is a bad `--schedule`
/// value (exit 2), shown cut short if it is long.
fn schedule_error(value: &str, e: ScheduleError) -> Error {
    match e {
        ScheduleError::Calendar(message) => Error::Calendar(message),
        other => Error::config("--schedule", excerpt(value), other.to_string()),
    }
}

/// `--output csv` is for `report` and `history` only.
pub(super) fn csv_refused(command: &str) -> Error {
    Error::Usage(format!(
        "`{command}` does not support --output csv (use text or json; csv is only for `report` and `history`)"
    ))
}

/// Aligned `key: value` lines.
pub fn render_text(d: &HoursAt, schedule: &str) -> String {
    let next = match d.next_transition {
        Some(t) => {
            let local = t.with_timezone(&d.timezone.parse::<chrono_tz::Tz>().unwrap_or(chrono_tz::UTC));
            format!(
                "{} ({})",
                local.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            )
        }
        None => "none within the next 400 days".to_string(),
    };
    let rows = [
        (
            "business_hours",
            if d.business_hours { "yes" } else { "no" }.to_string(),
        ),
        ("reason", d.reason.clone()),
        ("schedule", schedule.to_string()),
        ("timezone", d.timezone.clone()),
        ("local_time", d.local_time.clone()),
        ("weekday", d.weekday.clone()),
        ("holiday", d.holiday.clone().unwrap_or_else(|| "-".to_string())),
        ("next_transition", next),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| format!("{:<width$} {v}\n", format!("{k}:")))
        .collect()
}
