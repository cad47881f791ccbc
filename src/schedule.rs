//! Per-namespace schedules (docs/reference.md §9): the `namespace-scheduler/schedule` annotation, parsed into
//! the same [`BusinessHours`] as the cluster's `BUSINESS_*` variables and decided by the same code,
//! with the same zone, weekday, window and calendar checks (see `config.rs`), so the two cannot drift.
//!
//! Grammar, in this order, separated by whitespace (spaces around `-`, `,` and `=` are ignored):
//!
//! ```text
//! <weekdays> <HH:MM>-<HH:MM> <IANA zone> [holidays=<country>|holidays=none]
//! Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES
//! Sun-Thu 08:30-17:15 Asia/Jerusalem holidays=none
//! Mon,Wed,Fri 00:00-24:00 America/Bogota          (no holidays=: the cluster's calendar)
//! ```
//!
//! The value comes from a namespace annotation, so it is treated as hostile: bounded length, no
//! panics, and every error names the part that is wrong.
//!
//! The engine calls [`ScheduleBook::decide`] once per namespace; each distinct schedule is
//! parsed and decided once per run.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::calendar::HolidayCalendar;
use crate::error::Error;
use crate::hours::{clock, parse_timezone, validate_window, BusinessHours, HoursAt, WeekdaySet, MINUTES_PER_DAY};

/// The namespace annotation that carries a schedule.
pub const SCHEDULE_ANNOTATION: &str = "namespace-scheduler/schedule";

/// Longest schedule accepted, in bytes. A sensible one is under 100; annotations may be far larger.
pub(crate) const MAX_SCHEDULE_LEN: usize = 256;

/// How the cluster's own hours (`BUSINESS_*`) are named wherever a schedule is shown.
pub const CLUSTER_SCHEDULE: &str = "cluster";

/// Why a schedule cannot be used. The message names the bad part; the caller adds which namespace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule is {len} bytes long; at most {MAX_SCHEDULE_LEN} are accepted")]
    TooLong { len: usize },
    #[error("empty schedule (remove the annotation to use the cluster's hours)")]
    Empty,
    /// `reason` comes from [`WeekdaySet::parse`], e.g. `unknown weekday "Fry"`.
    #[error("{reason} in {token:?}")]
    Weekdays { token: String, reason: String },
    #[error("missing {what} after {after:?}")]
    Missing { what: &'static str, after: String },
    #[error("{token:?}: expected a time range HH:MM-HH:MM")]
    TimeRange { token: String },
    #[error("{token:?}: not a time 00:00-24:00")]
    Time { token: String },
    /// From [`validate_window`], e.g. `end 07:00 is not after start 19:00`.
    #[error("{0}")]
    Window(String),
    #[error("{token:?}: {reason}")]
    Timezone { token: String, reason: String },
    #[error("{token:?}: {reason}")]
    Holidays { token: String, reason: String },
    #[error("unexpected {token:?} after {after:?} ({hint})")]
    Unexpected {
        token: String,
        after: String,
        hint: &'static str,
    },
    /// The schedule parsed but its holiday calendar cannot answer (e.g. a year the `holidays`
    /// data does not cover): never decided as "no holiday".
    #[error("holiday calendar: {0}")]
    Calendar(String),
}

/// A schedule ready to decide: the cluster's hours or a namespace's.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    /// [`CLUSTER_SCHEDULE`], or the namespace's schedule in normal form (e.g.
    /// `Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES`), which parses back to the same schedule.
    pub name: String,
    pub hours: BusinessHours,
}

/// One namespace's answer for the run's instant.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceHours {
    /// Which schedule decided: [`CLUSTER_SCHEDULE`] or the normal form of the namespace's.
    pub schedule: String,
    /// The full decision, as `check` prints it.
    pub decision: HoursAt,
}

impl NamespaceHours {
    /// Within this namespace's business hours: scale up; otherwise down (unless a window is open).
    pub fn business(&self) -> bool {
        self.decision.business_hours
    }

    /// When this namespace's answer next changes (None: never within the horizon).
    pub fn next_transition(&self) -> Option<DateTime<Utc>> {
        self.decision.next_transition
    }
}

impl Schedule {
    /// The cluster's own hours.
    pub fn cluster(hours: &BusinessHours) -> Self {
        Schedule {
            name: CLUSTER_SCHEDULE.to_string(),
            hours: hours.clone(),
        }
    }

    /// Parses a schedule value. Without `holidays=`, it uses `cluster`'s calendar (its country
    /// and `BUSINESS_HOLIDAYS` dates); `holidays=<country>` is that country's calendar alone.
    pub fn parse(text: &str, cluster: &BusinessHours) -> Result<Self, ScheduleError> {
        if text.len() > MAX_SCHEDULE_LEN {
            return Err(ScheduleError::TooLong { len: text.len() });
        }
        let tokens = tokens(text);
        let mut tokens = tokens.iter().map(String::as_str);

        let days_token = tokens.next().ok_or(ScheduleError::Empty)?;
        let days = WeekdaySet::parse(days_token).map_err(|reason| ScheduleError::Weekdays {
            token: days_token.to_string(),
            reason,
        })?;

        let window_token = tokens.next().ok_or_else(|| ScheduleError::Missing {
            what: "the time range HH:MM-HH:MM",
            after: days_token.to_string(),
        })?;
        let (start_minute, end_minute) = parse_window(window_token)?;

        let zone_token = tokens.next().ok_or_else(|| ScheduleError::Missing {
            what: "the time zone (an IANA name such as Europe/Madrid)",
            after: window_token.to_string(),
        })?;
        let timezone = parse_timezone(zone_token).map_err(|reason| ScheduleError::Timezone {
            token: zone_token.to_string(),
            reason,
        })?;

        let (calendar, holidays_suffix) = match tokens.next() {
            None => (cluster.calendar.clone(), String::new()),
            Some(token) => {
                let (calendar, suffix) = parse_holidays(token, zone_token)?;
                if let Some(extra) = tokens.next() {
                    return Err(ScheduleError::Unexpected {
                        token: extra.to_string(),
                        after: token.to_string(),
                        hint: "nothing may follow holidays=",
                    });
                }
                (calendar, suffix)
            }
        };

        let name = format!(
            "{} {}-{} {}{holidays_suffix}",
            days.to_compact_string(),
            clock(start_minute),
            clock(end_minute),
            timezone.name()
        );
        Ok(Schedule {
            name,
            hours: BusinessHours {
                timezone,
                start_minute,
                end_minute,
                days,
                calendar,
            },
        })
    }

    /// Decides for `at`. The only error is a calendar that cannot answer for the years involved.
    pub fn decide(&self, at: DateTime<Utc>) -> Result<NamespaceHours, ScheduleError> {
        let decision = self.hours.decide(at).map_err(|e| match e {
            Error::Calendar(message) => ScheduleError::Calendar(message),
            other => ScheduleError::Calendar(other.to_string()),
        })?;
        Ok(NamespaceHours {
            schedule: self.name.clone(),
            decision,
        })
    }
}

/// The start of a value short enough for one log line or skip reason (whole characters).
pub(crate) fn excerpt(text: &str) -> String {
    const SHOWN: usize = 80;
    match text.char_indices().nth(SHOWN) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// One run's schedule decisions: each distinct annotation is parsed once and each distinct
/// schedule decided once, all for the one instant of the run.
///
/// ```
/// # use namespace_scheduler::{config::Config, schedule::ScheduleBook};
/// # let config = Config::from_vars([("POD_NAMESPACE", "task-scheduler")]).unwrap();
/// # let at = chrono::Utc::now();
/// let mut book = ScheduleBook::new(&config.business, at);
/// // Per namespace: its `namespace-scheduler/schedule` annotation, if any.
/// let madrid = book.decide(Some("Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES")).unwrap();
/// let cluster = book.decide(None).unwrap();
/// assert_eq!(cluster.schedule, "cluster");
/// // An Err means: leave that namespace exactly as it is, skipped with `err.to_string()`.
/// assert!(book.decide(Some("Mon-Fry 07:00-19:00 Europe/Madrid")).is_err());
/// # let _ = madrid.business();
/// ```
#[derive(Debug)]
pub struct ScheduleBook {
    cluster: BusinessHours,
    at: DateTime<Utc>,
    /// Annotation as found → the normal form it parses to, or why it does not parse.
    parsed: HashMap<String, Result<String, ScheduleError>>,
    /// Normal form (or [`CLUSTER_SCHEDULE`]) → its decision at `at`.
    decided: HashMap<String, Result<NamespaceHours, ScheduleError>>,
}

impl ScheduleBook {
    /// A book for one run at `at`, defaulting to `cluster` (the configuration's business hours).
    pub fn new(cluster: &BusinessHours, at: DateTime<Utc>) -> Self {
        ScheduleBook {
            cluster: cluster.clone(),
            at,
            parsed: HashMap::new(),
            decided: HashMap::new(),
        }
    }

    /// The instant every decision of this book is for.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The decision for a namespace whose schedule annotation is `annotation` (None: the
    /// cluster's hours). An error names the bad part of the annotation, or the calendar year that
    /// cannot be answered; the namespace must then be left as it is.
    pub fn decide(&mut self, annotation: Option<&str>) -> Result<NamespaceHours, ScheduleError> {
        let name = match annotation {
            None => {
                if !self.decided.contains_key(CLUSTER_SCHEDULE) {
                    let decision = Schedule::cluster(&self.cluster).decide(self.at);
                    self.decided.insert(CLUSTER_SCHEDULE.to_string(), decision);
                }
                CLUSTER_SCHEDULE.to_string()
            }
            // Not remembered: a hostile namespace must not make the book hold its huge value.
            Some(text) if text.len() > MAX_SCHEDULE_LEN => {
                return Err(ScheduleError::TooLong { len: text.len() });
            }
            Some(text) => match self.parsed.get(text) {
                Some(known) => known.clone()?,
                None => {
                    let parsed = Schedule::parse(text, &self.cluster);
                    let name = parsed.as_ref().map(|s| s.name.clone()).map_err(Clone::clone);
                    self.parsed.insert(text.to_string(), name.clone());
                    if let Ok(schedule) = parsed {
                        // Two spellings of one schedule share one decision.
                        let at = self.at;
                        self.decided
                            .entry(schedule.name.clone())
                            .or_insert_with(|| schedule.decide(at));
                    }
                    name?
                }
            },
        };
        self.decided[&name].clone()
    }

    /// How many distinct schedules have been decided so far (the cluster's counts as one).
    pub fn distinct_schedules(&self) -> usize {
        self.decided.len()
    }
}

/// Whitespace-separated tokens, with spaces around `-`, `,` and `=` dropped
/// (`Mon - Fri` → `Mon-Fri`, `holidays = ES` → `holidays=ES`).
fn tokens(text: &str) -> Vec<String> {
    let glue = |c: char| matches!(c, '-' | ',' | '=');
    let mut out: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match out.last_mut() {
            Some(last) if last.ends_with(glue) || word.starts_with(glue) => last.push_str(word),
            _ => out.push(word.to_string()),
        }
    }
    out
}

/// `HH:MM-HH:MM` → (start, end) in minutes of the day, start < end ≤ 24:00.
fn parse_window(token: &str) -> Result<(u32, u32), ScheduleError> {
    let (start, end) = token.split_once('-').ok_or_else(|| ScheduleError::TimeRange {
        token: token.to_string(),
    })?;
    let minute = |part: &str| {
        parse_clock(part).ok_or_else(|| ScheduleError::Time {
            token: part.to_string(),
        })
    };
    let (start, end) = (minute(start)?, minute(end)?);
    validate_window(start, end).map_err(ScheduleError::Window)?;
    Ok((start, end))
}

/// `H:MM` or `HH:MM` from 00:00 to 24:00 → minute of the day.
fn parse_clock(text: &str) -> Option<u32> {
    let (hours, minutes) = text.split_once(':')?;
    let digits =
        |s: &str, len: std::ops::RangeInclusive<usize>| len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hours, 1..=2) || !digits(minutes, 2..=2) {
        return None;
    }
    let (hours, minutes): (u32, u32) = (hours.parse().ok()?, minutes.parse().ok()?);
    let minute_of_day = hours * 60 + minutes;
    (minutes < 60 && minute_of_day <= MINUTES_PER_DAY).then_some(minute_of_day)
}

/// `holidays=<country>` / `holidays=none` → the calendar and how the normal form spells it.
fn parse_holidays(token: &str, after: &str) -> Result<(HolidayCalendar, String), ScheduleError> {
    let unexpected = || ScheduleError::Unexpected {
        token: token.to_string(),
        after: after.to_string(),
        hint: "only holidays=<country> or holidays=none may follow the time zone",
    };
    let (key, value) = token.split_once('=').ok_or_else(unexpected)?;
    if !key.eq_ignore_ascii_case("holidays") {
        return Err(unexpected());
    }
    let bad = |reason: String| ScheduleError::Holidays {
        token: token.to_string(),
        reason,
    };
    if value.is_empty() {
        return Err(bad("expected a country code such as ES, or none".to_string()));
    }
    if value.eq_ignore_ascii_case("none") {
        return Ok((HolidayCalendar::none(), " holidays=none".to_string()));
    }
    let calendar = HolidayCalendar::for_country(value).map_err(bad)?;
    let suffix = format!(" holidays={}", calendar.country().unwrap_or(value));
    Ok((calendar, suffix))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::Config;

    fn cluster() -> BusinessHours {
        Config::from_vars([("POD_NAMESPACE", "task-scheduler"), ("BUSINESS_HOLIDAYS", "2026-03-03")])
            .unwrap()
            .business
    }

    fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse(text, &cluster())
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_the_spec_example_into_business_hours() {
        let s = parse("Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES").unwrap();
        assert_eq!(s.name, "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES");
        assert_eq!(s.hours.timezone, chrono_tz::Europe::Madrid);
        assert_eq!((s.hours.start_minute, s.hours.end_minute), (7 * 60, 19 * 60));
        assert_eq!(s.hours.days, WeekdaySet::parse("Mon-Fri").unwrap());
        assert_eq!(s.hours.calendar.country(), Some("ES"));
        assert!(s.hours.calendar.extra().is_empty());
    }

    #[test]
    fn holidays_default_to_the_clusters_calendar() {
        let s = parse("Mon-Fri 07:30-19:45 America/Bogota").unwrap();
        assert_eq!(s.name, "Mon-Fri 07:30-19:45 America/Bogota");
        assert_eq!(s.hours.calendar.country(), Some("CO"));
        assert_eq!(s.hours.calendar.extra().len(), 1);
        let s = parse("Mon-Fri 07:30-19:45 America/Bogota holidays=NONE").unwrap();
        assert_eq!(s.name, "Mon-Fri 07:30-19:45 America/Bogota holidays=none");
        assert_eq!(s.hours.calendar.country(), None);
        assert!(s.hours.calendar.extra().is_empty());
    }

    #[test]
    fn whitespace_and_spelling_variants_normalise() {
        for text in [
            "  Mon - Fri   7:00 - 19:00\tEurope/Madrid  holidays = es ",
            "mon-fri 07:00-19:00 Europe/Madrid Holidays=ES",
            "Mon,Tue,Wed,Thu,Fri 07:00-19:00 Europe/Madrid holidays=ES",
            "Mon-Wed, Thu,Fri 07:00-19:00 Europe/Madrid holidays=ES",
        ] {
            assert_eq!(
                parse(text).unwrap().name,
                "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES",
                "{text:?}"
            );
        }
        assert_eq!(
            parse("Sun-Thu 00:00-24:00 Asia/Jerusalem holidays=none").unwrap().name,
            "Sun-Thu 00:00-24:00 Asia/Jerusalem holidays=none"
        );
    }

    #[test]
    fn the_normal_form_parses_back_to_itself() {
        for text in [
            "Sat,Sun 10:00-14:00 UTC holidays=none",
            "Fri-Mon 00:01-23:59 America/Port-au-Prince",
            "Mon,Wed,Fri 08:15-24:00 Etc/GMT-5 holidays=CO",
        ] {
            let name = parse(text).unwrap().name;
            assert_eq!(name, text);
            assert_eq!(parse(&name).unwrap().name, name);
        }
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            (
                "Mon-Fri 25:00-19:00 Europe/Madrid",
                r#""25:00": not a time 00:00-24:00"#,
            ),
            (
                "Mon-Fri 07:00-24:30 Europe/Madrid",
                r#""24:30": not a time 00:00-24:00"#,
            ),
            (
                "Mon-Fri 07:60-19:00 Europe/Madrid",
                r#""07:60": not a time 00:00-24:00"#,
            ),
            ("Mon-Fri 7-19 Europe/Madrid", r#""7": not a time 00:00-24:00"#),
            (
                "Mon-Fri 0700 Europe/Madrid",
                r#""0700": expected a time range HH:MM-HH:MM"#,
            ),
            (
                "Mon-Fry 07:00-19:00 Europe/Madrid",
                r#"unknown weekday "Fry" in "Mon-Fry""#,
            ),
            ("Mon,,Fri 07:00-19:00 Europe/Madrid", r#"empty weekday in "Mon,,Fri""#),
            ("Mon-Fri 07:00-19:00 Mars/Base", r#""Mars/Base": not an IANA time zone"#),
            (
                "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ZZ",
                r#""holidays=ZZ": unknown country"#,
            ),
            (
                "Mon-Fri 07:00-19:00 Europe/Madrid holidays=Spain",
                r#""holidays=Spain": expected an ISO 3166-1"#,
            ),
            (
                "Mon-Fri 07:00-19:00 Europe/Madrid holidays=",
                r#""holidays=": expected a country code"#,
            ),
            (
                "Mon-Fri 19:00-07:00 Europe/Madrid",
                "end 07:00 is not after start 19:00",
            ),
            (
                "Mon-Fri 09:00-09:00 Europe/Madrid",
                "end 09:00 is not after start 09:00",
            ),
            (
                "Mon-Fri 24:00-24:00 Europe/Madrid",
                "end 24:00 is not after start 24:00",
            ),
            ("Mon-Fri", r#"missing the time range HH:MM-HH:MM after "Mon-Fri""#),
            (
                "Mon-Fri 07:00-19:00",
                r#"missing the time zone (an IANA name such as Europe/Madrid) after "07:00-19:00""#,
            ),
            (
                "Mon-Fri 07:00-19:00 Europe/Madrid ES",
                r#"unexpected "ES" after "Europe/Madrid""#,
            ),
            (
                "Mon-Fri 07:00-19:00 Europe/Madrid tz=ES",
                r#"unexpected "tz=ES" after "Europe/Madrid""#,
            ),
            (
                "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES please",
                r#"unexpected "please" after "holidays=ES""#,
            ),
            ("", "empty schedule"),
            (" \t\n", "empty schedule"),
        ];
        for (text, want) in cases {
            let got = error(text);
            assert!(got.contains(want), "{text:?}: {got:?} does not contain {want:?}");
        }
    }

    #[test]
    fn hostile_input_is_bounded_and_quoted() {
        let huge = format!("Mon-Fri 07:00-19:00 Europe/Madrid {}", "x".repeat(100_000));
        assert_eq!(parse(&huge).unwrap_err(), ScheduleError::TooLong { len: huge.len() });
        assert!(error(&huge).len() < 100);
        let mut book = ScheduleBook::new(&cluster(), Utc::now());
        assert!(matches!(book.decide(Some(&huge)), Err(ScheduleError::TooLong { .. })));
        assert!(book.parsed.is_empty(), "a huge value is not remembered");
        // Control characters and non-ASCII come back escaped inside quotes, on one line.
        let got = error("Mon-Fri 07:00-19:00 Europe/Madrid\u{0}\n holidays=ES\u{1b}[31m");
        assert!(
            !got.contains('\n') && !got.contains('\u{1b}') && !got.contains('\u{0}'),
            "{got:?}"
        );
        assert!(error("Lun–Vie 07:00-19:00 Europe/Madrid").contains(r#"unknown weekday "Lun–Vie""#));
        assert_eq!(excerpt(&"é".repeat(200)).chars().count(), 81);
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn the_book_decides_each_distinct_schedule_once() {
        let at = "2026-03-10T09:00:00Z".parse().unwrap(); // Tue 10:00 Madrid, 04:00 Bogotá
        let mut book = ScheduleBook::new(&cluster(), at);
        let madrid = "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES";
        for _ in 0..3 {
            let d = book.decide(Some(madrid)).unwrap();
            assert!(d.business());
            assert_eq!(d.schedule, madrid);
        }
        // Another spelling of the same schedule: parsed once more, decided once in all.
        let respelled = book
            .decide(Some(" Mon - Fri 07:00-19:00 Europe/Madrid holidays=es"))
            .unwrap();
        assert_eq!(respelled.schedule, madrid);
        assert_eq!(book.distinct_schedules(), 1);
        let cluster = book.decide(None).unwrap();
        assert!(!cluster.business());
        assert_eq!(cluster.schedule, CLUSTER_SCHEDULE);
        assert_eq!(cluster.next_transition(), Some("2026-03-10T13:00:00Z".parse().unwrap()));
        assert_eq!(book.distinct_schedules(), 2);
        // A bad one is an error each time, and decides nothing.
        for _ in 0..2 {
            assert!(book.decide(Some("Mon-Fry 07:00-19:00 Europe/Madrid")).is_err());
        }
        assert_eq!(book.distinct_schedules(), 2);
        assert_eq!(book.parsed.len(), 3);
    }

    #[test]
    fn a_year_the_holidays_data_lacks_is_that_schedules_error() {
        let at = "2040-03-06T09:00:00Z".parse().unwrap();
        let mut book = ScheduleBook::new(&cluster(), at);
        let err = book
            .decide(Some("Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES"))
            .unwrap_err();
        assert!(matches!(err, ScheduleError::Calendar(_)), "{err:?}");
        assert!(
            err.to_string().contains("ES") && err.to_string().contains("2040"),
            "{err}"
        );
        // Colombia is computed for any year, and no calendar needs no data.
        assert!(book
            .decide(Some("Mon-Fri 07:00-19:00 Europe/Madrid holidays=CO"))
            .is_ok());
        assert!(book
            .decide(Some("Mon-Fri 07:00-19:00 Europe/Madrid holidays=none"))
            .is_ok());
        assert!(book.decide(None).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_text_parses_or_errors_without_panicking(text in "\\PC{0,80}") {
            let _ = parse(&text);
        }

        #[test]
        fn schedule_shaped_text_parses_or_errors_without_panicking(
            text in "[A-Za-z]{0,4}[-, ]{0,2}[A-Za-z]{0,4} [0-9]{0,3}:?[0-9]{0,3}-?[0-9]{0,3}:?[0-9]{0,3} [A-Za-z/_+-]{0,16} ?[a-z=A-Z]{0,12}",
        ) {
            if let Ok(s) = parse(&text) {
                prop_assert_eq!(parse(&s.name).unwrap().name, s.name.clone());
                prop_assert!(s.hours.start_minute < s.hours.end_minute && s.hours.end_minute <= MINUTES_PER_DAY);
            }
        }
    }
}
