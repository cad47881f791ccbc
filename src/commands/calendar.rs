//! `calendar [--year Y] [--country CC] [--subdivision S]`: one `YYYY-MM-DD<TAB>name` line per
//! holiday date, sorted; two holidays on one date give one line with the names joined by "; ".

use chrono::Datelike;

use super::Context;
use crate::calendar::HolidayCalendar;
use crate::cli::{CalendarArgs, OutputFormat};
use crate::error::{Error, Exit, Result};

pub fn execute(ctx: &Context, args: CalendarArgs) -> Result<Exit> {
    if ctx.output == OutputFormat::Csv {
        return Err(super::check::csv_refused("calendar"));
    }
    let configured = &ctx.config.business.calendar;
    let calendar = match (&args.country, &args.subdivision) {
        (None, None) => configured.clone(),
        // Another country: the configured dates and subdivision belong to the configured one.
        (Some(country), sub) => {
            HolidayCalendar::new(Some(country), sub.as_deref(), Default::default()).map_err(as_flag_error)?
        }
        (None, Some(sub)) => {
            HolidayCalendar::new(configured.country(), Some(sub), configured.extra().clone()).map_err(as_flag_error)?
        }
    };
    let year = args
        .year
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&ctx.config.business.timezone).year());
    let holidays = calendar.holidays_in_year(year)?;
    match ctx.output {
        OutputFormat::Json => {
            let rows: Vec<_> = holidays
                .iter()
                .map(|(date, names)| serde_json::json!({"date": date.to_string(), "name": names.join("; "), "names": names}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        _ => {
            let mut out = String::new();
            for (date, names) in &holidays {
                out.push_str(&format!("{date}\t{}\n", names.join("; ")));
            }
            print!("{out}");
        }
    }
    Ok(Exit::Ok)
}

/// A calendar chosen with flags: name the flag rather than the environment variable.
fn as_flag_error(e: Error) -> Error {
    match e {
        Error::Config { var, value, reason } => {
            let flag = match var.as_str() {
                "BUSINESS_HOLIDAYS_COUNTRY" => "--country",
                "BUSINESS_HOLIDAYS_SUBDIVISION" => "--subdivision",
                other => other,
            };
            Error::Config {
                var: flag.to_string(),
                value,
                reason,
            }
        }
        other => other,
    }
}
