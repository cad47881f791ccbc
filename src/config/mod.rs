//! Configuration from the environment (docs/reference.md §2), parsed with `envy` and validated in full before
//! anything is touched. Every error names the variable and the bad value (exit 2).

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::Deserialize;

use crate::calendar::HolidayCalendar;
use crate::error::{Error, Result};
use crate::hours::{parse_timezone, validate_window, BusinessHours, WeekdaySet};
use crate::metrics::MetricsFormat;

/// The 15 namespaces the old system never touched (docs/reference.md §2).
pub const DEFAULT_PROTECTED_NAMESPACES: [&str; 15] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "default",
    "karpenter",
    "kyverno",
    "argocd",
    "istio-system",
    "monitoring",
    "task-scheduler",
    "cert-manager",
    "ingress-nginx",
    "amazon-cloudwatch",
    "calico-system",
    "tigera-operator",
];

/// Protected whatever `PROTECTED_NAMESPACES` says (docs/reference.md §2): the cluster's own namespaces. The
/// scheduler's own namespace is added to these at start-up.
pub(crate) const PROTECTED_FLOOR: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Where the scheduler runs when it cannot tell (no `POD_NAMESPACE`, no service-account file).
pub(crate) const DEFAULT_OWN_NAMESPACE: &str = "task-scheduler";
const SERVICE_ACCOUNT_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The raw environment (envy matches `FOO_BAR` to field `foo_bar`), every field a string so that a bad value is reported by our own
/// validation (naming variable and value) rather than by a generic deserializer message.
#[derive(Debug, Default, Deserialize)]
struct RawEnv {
    eks_cluster_name: Option<String>,
    aws_region: Option<String>,
    dynamodb_table_name: Option<String>,
    permissions_table_name: Option<String>,
    windows_table_name: Option<String>,
    dynamodb_endpoint_url: Option<String>,
    log_level: Option<String>,
    log_format: Option<String>,
    business_hours_timezone: Option<String>,
    business_start_hour: Option<String>,
    business_end_hour: Option<String>,
    business_days: Option<String>,
    business_holidays: Option<String>,
    business_holidays_country: Option<String>,
    business_holidays_subdivision: Option<String>,
    protected_namespaces: Option<String>,
    namespace_selector: Option<String>,
    non_business_max_active_namespaces: Option<String>,
    max_activation_hours: Option<String>,
    rollback_enabled: Option<String>,
    scale_concurrency: Option<String>,
    pod_namespace: Option<String>,
    ns_scheduler_request_timeout_ms: Option<String>,
    ns_scheduler_retry_attempts: Option<String>,
    ns_scheduler_retry_base_ms: Option<String>,
    ns_scheduler_retry_max_ms: Option<String>,
    ns_scheduler_lease_seconds: Option<String>,
    ns_scheduler_audit_clock: Option<String>,
    price_per_vcpu_hour: Option<String>,
    price_per_gib_hour: Option<String>,
    metrics_format: Option<String>,
}

/// Validated configuration. Built once per process; everything downstream reads it.
#[derive(Debug, Clone)]
pub struct Config {
    pub cluster_name: String,
    pub aws_region: String,
    pub audit_table: String,
    pub permissions_table: String,
    /// `WINDOWS_TABLE_NAME`: the activation windows of the fleet (docs/fleet.md), one table
    /// shared by every cluster, apart from the permissions so that no IaC that manages the
    /// permissions items can wipe an open window.
    pub windows_table: String,
    pub dynamodb_endpoint: Option<String>,
    /// A `tracing` filter directive (`debug`, `info`, `warn`, `error`, `trace`).
    pub log_level: String,
    pub log_format: LogFormat,
    pub business: BusinessHours,
    /// Never touched, never counted. Always contains [`PROTECTED_FLOOR`] and `own_namespace`.
    pub protected_namespaces: BTreeSet<String>,
    /// Kubernetes label selector narrowing the managed namespaces (None = all non-protected).
    pub namespace_selector: Option<String>,
    pub max_active_off_hours: u32,
    /// `MAX_ACTIVATION_HOURS`: the longest window an `up --for` or a request may open.
    pub max_activation_hours: u32,
    pub rollback_enabled: bool,
    pub scale_concurrency: usize,
    /// The scheduler's own namespace: holds the Lease and is always protected.
    pub own_namespace: String,
    /// Tuning beyond docs/reference.md §2 (`NS_SCHEDULER_*`); the defaults suit production, tests shorten them.
    pub tuning: Tuning,
    /// For the savings estimate of `report` (docs/reference.md §8).
    pub prices: Prices,
    /// `METRICS_FORMAT`: one EMF line at the end of each run, or none.
    pub metrics_format: MetricsFormat,
}

/// Price of a vCPU-hour and of a GiB-hour of requests, in the currency of the values (the
/// defaults are USD).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub per_vcpu_hour: f64,
    pub per_gib_hour: f64,
}

impl Prices {
    /// AWS Fargate on-demand, Linux/x86, us-east-1: per vCPU-hour and per GB-hour of memory.
    pub(crate) const DEFAULT: Prices = Prices {
        per_vcpu_hour: 0.04048,
        per_gib_hour: 0.004445,
    };
}

/// A price: a non-negative finite decimal such as `0.04048` (no sign, exponent, `inf` or `NaN`).
/// `var` is the variable or flag named in the error.
pub(crate) fn parse_price(var: &str, raw: &str) -> Result<f64> {
    let text = raw.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits_only(whole) || !digits_only(fraction) {
        return Err(Error::config(
            var,
            raw,
            "expected a non-negative decimal price, e.g. 0.04048",
        ));
    }
    match text.parse::<f64>() {
        Ok(price) if price.is_finite() => Ok(price),
        _ => Err(Error::config(var, raw, "price out of range")),
    }
}

/// Timeouts, retries and the lock's duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// Per-request timeout on the Kubernetes client (`NS_SCHEDULER_REQUEST_TIMEOUT_MS`, 10 s).
    pub request_timeout: Duration,
    /// Attempts per API write or read before it counts as failed (`NS_SCHEDULER_RETRY_ATTEMPTS`, 5).
    pub retry_attempts: u32,
    /// Backoff base and ceiling (`NS_SCHEDULER_RETRY_BASE_MS` 200 ms, `NS_SCHEDULER_RETRY_MAX_MS` 5 s).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How long a silent holder keeps the Lease (`NS_SCHEDULER_LEASE_SECONDS`, 60).
    pub lease_seconds: u32,
    /// Which clock audit records carry (`NS_SCHEDULER_AUDIT_CLOCK`, `wall`).
    pub audit_clock: AuditClock,
}

/// `NS_SCHEDULER_AUDIT_CLOCK`: `wall` (the default: when it happened) or `decision` (the instant
/// the run decided for, `--at`: a demo's pretend week, a backfill; never for production).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditClock {
    Wall,
    Decision,
}

impl Config {
    /// Reads and validates the process environment.
    pub(crate) fn from_env() -> Result<Self> {
        let raw: RawEnv = envy::from_env().map_err(|e| Error::config("environment", "", e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Validates an explicit set of variables (tests use this instead of mutating the process env).
    pub fn from_vars<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let pairs = vars.into_iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let raw: RawEnv = envy::from_iter(pairs).map_err(|e| Error::config("environment", "", e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Every variable parsed and checked, one after another in the order of docs/reference.md
    /// §2: long, but one flat list is the easiest to hold against the reference.
    fn from_raw(raw: RawEnv) -> Result<Self> {
        let text =
            |v: Option<String>, default: &str| v.map(|s| s.trim().to_string()).unwrap_or_else(|| default.to_string());
        let non_empty = |var: &str, v: String| -> Result<String> {
            if v.is_empty() {
                Err(Error::config(var, v, "must not be empty"))
            } else {
                Ok(v)
            }
        };

        let timezone_name = text(raw.business_hours_timezone, "America/Bogota");
        let timezone: Tz = parse_timezone(&timezone_name)
            .map_err(|reason| Error::config("BUSINESS_HOURS_TIMEZONE", &timezone_name, reason))?;
        let start_hour = parse_int::<u32>("BUSINESS_START_HOUR", raw.business_start_hour, 8, 0..=23)?;
        let end_hour = parse_int::<u32>("BUSINESS_END_HOUR", raw.business_end_hour, 18, 1..=24)?;
        // Whole hours here; a namespace's schedule may use any minute (same type, same check).
        let (start_minute, end_minute) = (start_hour * 60, end_hour * 60);
        validate_window(start_minute, end_minute).map_err(|reason| {
            Error::config(
                "BUSINESS_END_HOUR",
                end_hour.to_string(),
                format!("{reason} (BUSINESS_START_HOUR={start_hour})"),
            )
        })?;
        let days_text = text(raw.business_days, "Mon-Fri");
        let days =
            WeekdaySet::parse(&days_text).map_err(|reason| Error::config("BUSINESS_DAYS", &days_text, reason))?;

        let extra_holidays = parse_dates(raw.business_holidays.as_deref().unwrap_or(""))?;
        let country = text(raw.business_holidays_country, "CO");
        let subdivision = text(raw.business_holidays_subdivision, "");
        let calendar = HolidayCalendar::new(
            (!country.is_empty()).then_some(country.as_str()),
            (!subdivision.is_empty()).then_some(subdivision.as_str()),
            extra_holidays,
        )?;

        let own_namespace = raw
            .pod_namespace
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE_FILE)
                    .ok()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| DEFAULT_OWN_NAMESPACE.to_string());
        validate_namespace_name("POD_NAMESPACE", &own_namespace)?;

        let mut protected_namespaces = match raw.protected_namespaces {
            None => DEFAULT_PROTECTED_NAMESPACES.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                let mut set = BTreeSet::new();
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    validate_namespace_name("PROTECTED_NAMESPACES", name)?;
                    set.insert(name.to_string());
                }
                // An overlay that blanks the variable must not expose the cluster's namespaces
                // by accident: to mean "the defaults", unset it.
                if set.is_empty() {
                    return Err(Error::config(
                        "PROTECTED_NAMESPACES",
                        list,
                        "names no namespace; unset the variable to get the default list",
                    ));
                }
                set
            }
        };
        protected_namespaces.extend(PROTECTED_FLOOR.iter().map(|s| s.to_string()));
        protected_namespaces.insert(own_namespace.clone());

        let namespace_selector = match raw.namespace_selector.map(|s| s.trim().to_string()) {
            Some(s) if !s.is_empty() => {
                crate::selector::validate(&s).map_err(|reason| Error::config("NAMESPACE_SELECTOR", &s, reason))?;
                Some(s)
            }
            _ => None,
        };

        Ok(Config {
            cluster_name: non_empty("EKS_CLUSTER_NAME", text(raw.eks_cluster_name, "local"))?,
            aws_region: non_empty("AWS_REGION", text(raw.aws_region, "us-east-1"))?,
            audit_table: table_name(
                "DYNAMODB_TABLE_NAME",
                text(raw.dynamodb_table_name, "task-scheduler-logs-production"),
            )?,
            permissions_table: table_name(
                "PERMISSIONS_TABLE_NAME",
                text(raw.permissions_table_name, "cost-center-permissions-production"),
            )?,
            windows_table: table_name(
                "WINDOWS_TABLE_NAME",
                text(raw.windows_table_name, "namespace-scheduler-windows-production"),
            )?,
            dynamodb_endpoint: match raw.dynamodb_endpoint_url.map(|s| s.trim().to_string()) {
                Some(url) if !url.is_empty() => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(Error::config(
                            "DYNAMODB_ENDPOINT_URL",
                            url,
                            "must start with http:// or https://",
                        ));
                    }
                    Some(url)
                }
                _ => None,
            },
            log_level: parse_log_level(&text(raw.log_level, "INFO"))?,
            log_format: match text(raw.log_format, "json").to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                other => return Err(Error::config("LOG_FORMAT", other, "expected json or text")),
            },
            business: BusinessHours {
                timezone,
                start_minute,
                end_minute,
                days,
                calendar,
            },
            protected_namespaces,
            namespace_selector,
            max_active_off_hours: parse_int(
                "NON_BUSINESS_MAX_ACTIVE_NAMESPACES",
                raw.non_business_max_active_namespaces,
                5,
                0..=100_000,
            )?,
            max_activation_hours: parse_int("MAX_ACTIVATION_HOURS", raw.max_activation_hours, 72, 1..=8_784)?,
            rollback_enabled: parse_bool("ROLLBACK_ENABLED", raw.rollback_enabled, true)?,
            scale_concurrency: parse_int::<usize>("SCALE_CONCURRENCY", raw.scale_concurrency, 16, 1..=512)?,
            own_namespace,
            tuning: Tuning {
                request_timeout: Duration::from_millis(parse_int(
                    "NS_SCHEDULER_REQUEST_TIMEOUT_MS",
                    raw.ns_scheduler_request_timeout_ms,
                    10_000,
                    100..=300_000,
                )?),
                retry_attempts: parse_int(
                    "NS_SCHEDULER_RETRY_ATTEMPTS",
                    raw.ns_scheduler_retry_attempts,
                    5,
                    1..=20,
                )?,
                retry_base: Duration::from_millis(parse_int(
                    "NS_SCHEDULER_RETRY_BASE_MS",
                    raw.ns_scheduler_retry_base_ms,
                    200,
                    1..=60_000,
                )?),
                retry_max: Duration::from_millis(parse_int(
                    "NS_SCHEDULER_RETRY_MAX_MS",
                    raw.ns_scheduler_retry_max_ms,
                    5_000,
                    1..=300_000,
                )?),
                lease_seconds: parse_int(
                    "NS_SCHEDULER_LEASE_SECONDS",
                    raw.ns_scheduler_lease_seconds,
                    60,
                    2..=3600,
                )?,
                audit_clock: match text(raw.ns_scheduler_audit_clock, "wall").to_ascii_lowercase().as_str() {
                    "wall" => AuditClock::Wall,
                    "decision" => AuditClock::Decision,
                    other => {
                        return Err(Error::config(
                            "NS_SCHEDULER_AUDIT_CLOCK",
                            other,
                            "expected wall or decision",
                        ))
                    }
                },
            },
            prices: Prices {
                per_vcpu_hour: match raw.price_per_vcpu_hour {
                    Some(v) => parse_price("PRICE_PER_VCPU_HOUR", &v)?,
                    None => Prices::DEFAULT.per_vcpu_hour,
                },
                per_gib_hour: match raw.price_per_gib_hour {
                    Some(v) => parse_price("PRICE_PER_GIB_HOUR", &v)?,
                    None => Prices::DEFAULT.per_gib_hour,
                },
            },
            metrics_format: match raw.metrics_format {
                Some(v) => v
                    .parse()
                    .map_err(|reason: String| Error::config("METRICS_FORMAT", &v, reason))?,
                None => MetricsFormat::None,
            },
        })
    }

    pub(crate) fn is_protected(&self, namespace: &str) -> bool {
        self.protected_namespaces.contains(namespace)
    }
}

fn parse_int<T>(var: &str, value: Option<String>, default: T, range: std::ops::RangeInclusive<T>) -> Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = value.map(|s| s.trim().to_string()) else {
        return Ok(default);
    };
    let parsed: T = raw.parse().map_err(|_| {
        Error::config(
            var,
            &raw,
            format!("expected a whole number from {} to {}", range.start(), range.end()),
        )
    })?;
    if !range.contains(&parsed) {
        return Err(Error::config(
            var,
            &raw,
            format!("must be from {} to {}", range.start(), range.end()),
        ));
    }
    Ok(parsed)
}

fn parse_bool(var: &str, value: Option<String>, default: bool) -> Result<bool> {
    let Some(raw) = value else { return Ok(default) };
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(Error::config(var, raw, "expected true or false")),
    }
}

/// Accepts the Python names the old service used as well as Rust's.
fn parse_log_level(raw: &str) -> Result<String> {
    let level = match raw.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARNING" | "WARN" => "warn",
        "ERROR" | "CRITICAL" => "error",
        _ => {
            return Err(Error::config(
                "LOG_LEVEL",
                raw,
                "expected DEBUG, INFO, WARNING, ERROR (or trace, warn)",
            ))
        }
    };
    Ok(level.to_string())
}

/// `BUSINESS_HOLIDAYS`: comma-separated `YYYY-MM-DD` dates.
fn parse_dates(list: &str) -> Result<BTreeSet<NaiveDate>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .filter(|_| s.len() == 10)
                .ok_or_else(|| Error::config("BUSINESS_HOLIDAYS", s, "not a valid YYYY-MM-DD date"))
        })
        .collect()
}

fn table_name(var: &str, name: String) -> Result<String> {
    let ok = (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(name)
    } else {
        Err(Error::config(
            var,
            name,
            "DynamoDB table names are 3-255 characters of a-z A-Z 0-9 _ - .",
        ))
    }
}

/// RFC 1123 label, as Kubernetes requires for namespace names.
pub(crate) fn validate_namespace_name(var: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::config(
            var,
            name,
            "not a valid namespace name (lowercase RFC 1123 label)",
        ))
    }
}

#[cfg(test)]
mod tests;
