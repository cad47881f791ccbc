//! `check [--at RFC3339]`: the business-hours decision for an instant (default: now). Pure: no
//! network, no runtime, no credentials.

use super::Context;
use crate::cli::{CheckArgs, OutputFormat};
use crate::error::{Error, Exit, Result};
use crate::hours::Decision;

pub fn execute(ctx: &Context, args: CheckArgs) -> Result<Exit> {
    let at = args.at.unwrap_or_else(chrono::Utc::now);
    let decision = ctx.config.business.decide(at)?;
    tracing::debug!(business_hours = decision.business_hours, reason = %decision.reason, "decided");
    match ctx.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&decision)?),
        OutputFormat::Text => print!("{}", render_text(&decision)),
        OutputFormat::Csv => return Err(csv_refused("check")),
    }
    Ok(Exit::Ok)
}

/// `--output csv` is for `report` only.
pub(super) fn csv_refused(command: &str) -> Error {
    Error::Usage(format!(
        "`{command}` does not support --output csv (use text or json; csv is only for `report`)"
    ))
}

/// Aligned `key: value` lines.
pub fn render_text(d: &Decision) -> String {
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
