//! The business-hours decision (SPEC §3): a pure function of (configuration, instant).
//! OWNER: calendar/hours engineer — signatures here are the contract other modules use.

use std::fmt;

use chrono::{DateTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use crate::calendar::HolidayCalendar;
use crate::error::Result;

/// Which weekdays can be business days (`BUSINESS_DAYS`, e.g. `Mon-Fri`, `Mon,Wed,Fri`, `Sun-Thu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekdaySet(u8);

impl WeekdaySet {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let day = |s: &str| -> std::result::Result<Weekday, String> {
            s.trim()
                .parse::<Weekday>()
                .map_err(|_| format!("unknown weekday {:?}", s.trim()))
        };
        let mut bits = 0u8;
        for part in text.split(',').map(str::trim) {
            if part.is_empty() {
                return Err("empty weekday in list".into());
            }
            if let Some((from, to)) = part.split_once('-') {
                let (mut d, to) = (day(from)?, day(to)?);
                loop {
                    bits |= 1 << d.num_days_from_monday();
                    if d == to {
                        break;
                    }
                    d = d.succ();
                }
            } else {
                bits |= 1 << day(part)?.num_days_from_monday();
            }
        }
        Ok(WeekdaySet(bits))
    }

    pub fn contains(&self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }
}

impl fmt::Display for WeekdaySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut d = Weekday::Mon;
        for _ in 0..7 {
            if self.contains(d) {
                if !first {
                    f.write_str(",")?;
                }
                write!(f, "{d}")?;
                first = false;
            }
            d = d.succ();
        }
        Ok(())
    }
}

/// Business-hours rules: business = a business weekday, not a holiday, start ≤ local hour < end.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    pub timezone: Tz,
    pub start_hour: u32,
    /// 1–24; 24 means "until midnight".
    pub end_hour: u32,
    pub days: WeekdaySet,
    pub calendar: HolidayCalendar,
}

/// The answer for one instant, as `check` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub timezone: String,
    /// RFC 3339 local time with offset.
    pub local_time: String,
    pub weekday: String,
    pub business_hours: bool,
    /// Holiday name(s) if the local date is a holiday, joined with "; ".
    pub holiday: Option<String>,
    /// Why: e.g. "business day within 08:00-18:00", "weekend (Saturday)", "holiday: Navidad", "before 08:00".
    pub reason: String,
    /// First instant at which `business_hours` changes (None only if it never changes, e.g. no business days).
    pub next_transition: Option<DateTime<Utc>>,
}

impl BusinessHours {
    /// Decides for `at`. Errors only when a holiday calendar cannot answer for that year.
    pub fn decide(&self, at: DateTime<Utc>) -> Result<Decision> {
        let _ = at;
        todo!("calendar/hours engineer")
    }

    /// Whether `at` is within business hours (same rules as `decide`, without the report).
    pub fn is_business(&self, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.decide(at)?.business_hours)
    }
}
