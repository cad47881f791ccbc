//! Command line (docs/reference.md §1). Every flag can also come from the environment (`NS_SCHEDULER_*`),
//! so a CronJob can be reconfigured without changing its arguments.

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "namespace-scheduler",
    version,
    about = "Switch non-production namespaces off outside business hours"
)]
pub struct Cli {
    /// Plan only: print exactly what would change, touch nothing, write no audit.
    #[arg(long, global = true, env = "NS_SCHEDULER_DRY_RUN")]
    pub dry_run: bool,
    /// Summary format.
    #[arg(long, global = true, value_enum, default_value = "text", env = "NS_SCHEDULER_OUTPUT")]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

pub use crate::context::OutputFormat;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The CronJob entrypoint: scale every managed namespace to what the clock says.
    Run(RunArgs),
    /// One-off activation of namespaces for a cost center.
    Up(UpArgs),
    /// One-off deactivation of namespaces.
    Down(DownArgs),
    /// Print the business-hours decision.
    Check(CheckArgs),
    /// Print a year's holidays.
    Calendar(CalendarArgs),
    /// Seed the cost-center permissions table (never overwrites).
    Populate(PopulateArgs),
    /// Active hours, hours down and savings per namespace and cost center for an ISO week.
    Report(ReportArgs),
    /// The audit trail of every cluster sharing the audit table, read by key or index.
    History(HistoryArgs),
    /// Create the DynamoDB tables on DYNAMODB_ENDPOINT_URL (local demo and tests only; refuses
    /// to run against AWS, where infrastructure/dynamodb-tables.yaml is the way).
    #[command(hide = true)]
    LocalTables,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Decide as if it were this instant (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_instant, env = "NS_SCHEDULER_AT")]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Namespaces to activate (repeat the flag or separate with commas).
    #[arg(long = "namespace", short = 'n', required = true, num_args = 1.., value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Cost center paying for the activation.
    #[arg(long)]
    pub cost_center: String,
    /// Who asked (audited).
    #[arg(long, default_value = "cli", env = "NS_SCHEDULER_REQUESTED_BY")]
    pub requested_by: String,
    /// The activation window's length from now, e.g. 4h, 90m, 1h30m (at most MAX_ACTIVATION_HOURS;
    /// the part outside business hours needs a cap slot).
    #[arg(long = "for", value_parser = parse_duration, default_value = "4h")]
    pub duration: chrono::Duration,
    /// Decide as if it were this instant (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Namespaces to deactivate (repeat the flag or separate with commas).
    #[arg(long = "namespace", short = 'n', required = true, num_args = 1.., value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Cost center to record (defaults to the namespace's label).
    #[arg(long)]
    pub cost_center: Option<String>,
    /// Who asked (audited).
    #[arg(long, default_value = "cli", env = "NS_SCHEDULER_REQUESTED_BY")]
    pub requested_by: String,
    /// Record as if it were this instant (RFC 3339) instead of now.
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<DateTime<Utc>>,
    /// Decide by this per-namespace schedule instead of the cluster's hours, e.g.
    /// "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES" (see docs/schedules.md).
    #[arg(long)]
    pub schedule: Option<String>,
}

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// Defaults to the current year in the business time zone.
    #[arg(long)]
    pub year: Option<i32>,
    /// Defaults to BUSINESS_HOLIDAYS_COUNTRY.
    #[arg(long)]
    pub country: Option<String>,
    /// Defaults to BUSINESS_HOLIDAYS_SUBDIVISION when the country is the configured one.
    #[arg(long)]
    pub subdivision: Option<String>,
}

#[derive(Debug, Args)]
pub struct PopulateArgs {
    /// JSON or YAML list of cost centers (same fields as the table); defaults to the six of docs/reference.md §5.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// ISO week, e.g. 2026-W48.
    #[arg(long)]
    pub week: String,
    /// Every cluster writing to the audit table, not only this one (EKS_CLUSTER_NAME): a
    /// cluster column, each cluster's totals and the fleet's.
    #[arg(long)]
    pub all_clusters: bool,
    /// Price of one vCPU-hour of requests (overrides PRICE_PER_VCPU_HOUR), e.g. 0.04048.
    /// A negative value reaches the validation, which names it, instead of reading as a flag.
    #[arg(long, value_name = "PRICE", allow_hyphen_values = true)]
    pub price_vcpu_hour: Option<String>,
    /// Price of one GiB-hour of memory requests (overrides PRICE_PER_GIB_HOUR), e.g. 0.004445.
    #[arg(long, value_name = "PRICE", allow_hyphen_values = true)]
    pub price_gib_hour: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this namespace (of any cluster, unless --cluster narrows it).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Only this cost center.
    #[arg(long)]
    pub cost_center: Option<String>,
    /// Only what this requester asked for (`system`: the scheduled runs).
    #[arg(long)]
    pub requested_by: Option<String>,
    /// Only this operation: activate, deactivate, auto_startup_business_hours,
    /// auto_shutdown_business_hours.
    #[arg(long, value_parser = parse_operation)]
    pub operation: Option<crate::audit::OperationType>,
    /// Only this cluster (default: every cluster).
    #[arg(long)]
    pub cluster: Option<String>,
    /// From this instant (RFC 3339; default: 7 days before --until).
    #[arg(long, value_parser = parse_instant)]
    pub since: Option<DateTime<Utc>>,
    /// Up to this instant (RFC 3339; default: now).
    #[arg(long, value_parser = parse_instant)]
    pub until: Option<DateTime<Utc>>,
}

fn parse_operation(s: &str) -> Result<crate::audit::OperationType, String> {
    s.parse().map_err(|e| {
        format!("{e}; expected activate, deactivate, auto_startup_business_hours or auto_shutdown_business_hours")
    })
}

pub fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant (e.g. 2026-11-23T18:00:00-05:00): {e}"))
}

/// `4h`, `90m`, `1h30m`, `45s`, `2d`: a positive duration of at most 7 days.
pub fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let bad = || format!("{s:?} is not a duration like 4h, 90m or 1h30m");
    let (mut total, mut digits) = (0i64, String::new());
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        total = total
            .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total <= 0 {
        return Err(bad());
    }
    if total > 7 * 86_400 {
        return Err(format!("{s:?} is longer than the 7-day maximum"));
    }
    Ok(chrono::Duration::seconds(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("4h").unwrap().num_minutes(), 240);
        assert_eq!(parse_duration("1h30m").unwrap().num_minutes(), 90);
        assert_eq!(parse_duration("90m").unwrap().num_minutes(), 90);
        for bad in ["", "4", "h", "0h", "4x", "8d", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn instants_need_an_offset() {
        assert!(parse_instant("2026-11-23T18:00:00-05:00").is_ok());
        assert!(parse_instant("2026-11-23T18:00:00").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
