//! The business-hours decision (docs/reference.md §3): a pure function of (configuration, instant).
//! OWNER: calendar/hours engineer — signatures here are the contract other modules use.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::fmt;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, Offset, SecondsFormat, TimeZone, Timelike, Utc, Weekday,
};
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
                return Err("empty weekday".into());
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

    /// Exactly these days (an empty slice gives a set with no business day at all).
    pub fn from_days(days: &[Weekday]) -> Self {
        WeekdaySet(days.iter().fold(0, |bits, d| bits | 1 << d.num_days_from_monday()))
    }

    pub fn contains(&self, day: Weekday) -> bool {
        self.0 & (1 << day.num_days_from_monday()) != 0
    }

    /// The shortest text [`Self::parse`] reads back as this set: runs of three or more days as
    /// ranges (`Mon-Fri`, `Sun-Thu`), the rest listed (`Mon,Wed,Fri`, `Sat,Sun`).
    pub fn to_compact_string(&self) -> String {
        if self.0 & 0x7f == 0x7f {
            return "Mon-Sun".to_string();
        }
        // Start at the first day that opens a run, so a run across Sunday→Monday stays whole.
        let mut first = Weekday::Mon;
        for _ in 0..7 {
            if self.contains(first) && !self.contains(first.pred()) {
                break;
            }
            first = first.succ();
        }
        let mut parts = Vec::new();
        let mut day = first;
        let mut seen = 0;
        while seen < 7 {
            if !self.contains(day) {
                day = day.succ();
                seen += 1;
                continue;
            }
            let start = day;
            let mut len = 0;
            while seen < 7 && self.contains(day) {
                day = day.succ();
                seen += 1;
                len += 1;
            }
            let last = day.pred();
            match len {
                1 => parts.push(format!("{start}")),
                2 => parts.push(format!("{start},{last}")),
                _ => parts.push(format!("{start}-{last}")),
            }
        }
        parts.join(",")
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

/// Minutes in a local day: `24:00`, the latest end of a business window.
pub const MINUTES_PER_DAY: u32 = 24 * 60;

/// Business-hours rules: business = a business weekday, not a holiday, start ≤ local time < end.
/// The cluster's hours (`BUSINESS_*`) and a namespace's schedule ([`crate::schedule`]) are both
/// this type, so one piece of code decides them all.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    pub timezone: Tz,
    /// Minute of the local day business starts (0 = 00:00); `BUSINESS_START_HOUR` × 60.
    pub start_minute: u32,
    /// Minute of the local day business ends, exclusive; up to [`MINUTES_PER_DAY`] ("until midnight").
    pub end_minute: u32,
    pub days: WeekdaySet,
    pub calendar: HolidayCalendar,
}

/// Parses an IANA zone name; the error is the reason, for the caller to wrap with what it parsed.
pub(crate) fn parse_timezone(name: &str) -> std::result::Result<Tz, String> {
    name.parse()
        .map_err(|_| "not an IANA time zone (e.g. America/Bogota, Europe/Madrid)".to_string())
}

/// Checks a daily window `[start, end)` in minutes of the local day: start < end ≤ 24:00.
pub(crate) fn validate_window(start_minute: u32, end_minute: u32) -> std::result::Result<(), String> {
    if end_minute > MINUTES_PER_DAY {
        Err(format!("end {} is after 24:00", clock(end_minute)))
    } else if start_minute >= end_minute {
        Err(format!(
            "end {} is not after start {}",
            clock(end_minute),
            clock(start_minute)
        ))
    } else {
        Ok(())
    }
}

/// `HH:MM` for a minute of the day (1440 is `24:00`).
pub fn clock(minute_of_day: u32) -> String {
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// What the business hours say at one instant, as `check` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HoursAt {
    pub timezone: String,
    /// RFC 3339 local time with offset.
    pub local_time: String,
    pub weekday: String,
    pub business_hours: bool,
    /// Holiday name(s) if the local date is a holiday, joined with "; ".
    pub holiday: Option<String>,
    /// Why: "business day within 08:00-18:00", "weekend (Saturday)", "holiday: Navidad",
    /// "before 08:00 (business hours 08:00-18:00)", "18:00 or later (business hours 08:00-18:00)",
    /// "not a business day (Friday; business days Sun,Mon,Tue,Wed,Thu)".
    pub reason: String,
    /// First instant at which `business_hours` changes (None only if it never changes, e.g. no business days).
    pub next_transition: Option<DateTime<Utc>>,
}

impl BusinessHours {
    /// How far ahead `next_transition` looks before answering None.
    pub(crate) const HORIZON_DAYS: i64 = 400;

    /// Decides for `at`. Errors only when a holiday calendar cannot answer for that year.
    pub fn decide(&self, at: DateTime<Utc>) -> Result<HoursAt> {
        let mut years = YearCache::default();
        let state = self.state(at, &mut years)?;
        let next_transition = self.scan(at, &mut years, |_, now| now != state.business)?;
        Ok(HoursAt {
            timezone: self.timezone.name().to_string(),
            local_time: state.local.to_rfc3339_opts(SecondsFormat::AutoSi, false),
            weekday: weekday_name(state.local.weekday()).to_string(),
            business_hours: state.business,
            reason: self.reason(&state),
            holiday: state.holiday,
            next_transition,
        })
    }

    /// Whether `at` is within business hours (same rules as `decide`, without the report).
    pub fn is_business(&self, at: DateTime<Utc>) -> Result<bool> {
        Ok(self.state(at, &mut YearCache::default())?.business)
    }

    /// The first instant strictly after `at` at which business hours end (business → non-business).
    pub(crate) fn next_business_end(&self, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        self.scan(at, &mut YearCache::default(), |before, now| before && !now)
    }

    fn state(&self, at: DateTime<Utc>, years: &mut YearCache) -> Result<State> {
        let local = at.with_timezone(&self.timezone);
        let holiday = years.holiday_on(&self.calendar, local.date_naive())?;
        let minute = minute_of_day(&local);
        let business = self.days.contains(local.weekday())
            && holiday.is_none()
            && minute >= self.start_minute
            && minute < self.end_minute;
        Ok(State {
            local,
            holiday,
            business,
        })
    }

    fn reason(&self, state: &State) -> String {
        let (start, end) = (clock(self.start_minute), clock(self.end_minute));
        let window = format!("{start}-{end}");
        let day = state.local.weekday();
        if let Some(name) = &state.holiday {
            format!("holiday: {name}")
        } else if !self.days.contains(day) {
            if matches!(day, Weekday::Sat | Weekday::Sun) {
                format!("weekend ({})", weekday_name(day))
            } else {
                format!(
                    "not a business day ({}; business days {})",
                    weekday_name(day),
                    self.days
                )
            }
        } else if minute_of_day(&state.local) < self.start_minute {
            format!("before {start} (business hours {window})")
        } else if minute_of_day(&state.local) >= self.end_minute {
            format!("{end} or later (business hours {window})")
        } else {
            format!("business day within {window}")
        }
    }

    /// Walks forward from `at`, one UTC day at a time up to the horizon, over every instant at
    /// which the answer *can* change (local times 00:00, start and end, both
    /// instants of an ambiguous local time, and every UTC-offset change, which is where a skipped
    /// local hour resumes), and returns the first one where `pick(answer before, answer now)`.
    /// The answer only depends on the local date and minute, so it is constant between those instants.
    fn scan(
        &self,
        at: DateTime<Utc>,
        years: &mut YearCache,
        mut pick: impl FnMut(bool, bool) -> bool,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut current = self.state(at, years)?.business;
        for day in 0..Self::HORIZON_DAYS {
            let from = at + Duration::days(day);
            let to = from + Duration::days(1);
            for event in self.events_in(from, to) {
                let now = self.state(event, years)?.business;
                if now != current {
                    if pick(current, now) {
                        return Ok(Some(event));
                    }
                    current = now;
                }
            }
        }
        Ok(None)
    }

    /// Candidate instants in (from, to], sorted and unique.
    fn events_in(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let tz = &self.timezone;
        let mut events = Vec::new();
        let first = from.with_timezone(tz).date_naive() - Duration::days(1);
        let last = to.with_timezone(tz).date_naive() + Duration::days(1);
        let mut minutes = vec![0, self.start_minute];
        if self.end_minute < MINUTES_PER_DAY {
            minutes.push(self.end_minute);
        }
        let mut date = first;
        while date <= last {
            for &m in &minutes {
                let Some(naive) = date.and_hms_opt(m / 60, m % 60, 0) else {
                    continue; // only a start of 24:00, which validation refuses
                };
                match tz.from_local_datetime(&naive) {
                    LocalResult::Single(t) => events.push(t.with_timezone(&Utc)),
                    LocalResult::Ambiguous(a, b) => {
                        events.push(a.with_timezone(&Utc));
                        events.push(b.with_timezone(&Utc));
                    }
                    // Skipped by a clock change: the offset change below is where it resumes.
                    LocalResult::None => {}
                }
            }
            date += Duration::days(1);
        }
        // UTC-offset changes, found hour by hour then narrowed to the second.
        let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let mut t = from;
        while t < to {
            let next = (t + Duration::hours(1)).min(to);
            if offset(t) != offset(next) {
                let (mut lo, mut hi) = (t, next);
                while hi - lo > Duration::seconds(1) {
                    let mid = lo + (hi - lo) / 2;
                    if offset(mid) == offset(lo) {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                // Offsets change on whole seconds.
                let whole = DateTime::from_timestamp(hi.timestamp(), 0).expect("in range");
                events.push(if whole > lo { whole } else { hi });
            }
            t = next;
        }
        events.retain(|e| *e > from && *e <= to);
        events.sort();
        events.dedup();
        events
    }
}

/// Minutes since local midnight (seconds do not matter: windows are whole minutes).
fn minute_of_day(local: &DateTime<Tz>) -> u32 {
    local.hour() * 60 + local.minute()
}

struct State {
    local: DateTime<Tz>,
    holiday: Option<String>,
    business: bool,
}

/// Each year's holidays computed once per decision (a scan may look at a few hundred days).
#[derive(Default)]
struct YearCache(BTreeMap<i32, BTreeMap<NaiveDate, Vec<String>>>);

impl YearCache {
    fn holiday_on(&mut self, calendar: &HolidayCalendar, date: NaiveDate) -> Result<Option<String>> {
        let year = match self.0.entry(date.year()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(calendar.holidays_in_year(date.year())?),
        };
        Ok(year.get(&date).map(|names| names.join("; ")))
    }
}

/// English weekday name, e.g. `Monday`.
pub(crate) fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "Monday",
        Weekday::Tue => "Tuesday",
        Weekday::Wed => "Wednesday",
        Weekday::Thu => "Thursday",
        Weekday::Fri => "Friday",
        Weekday::Sat => "Saturday",
        Weekday::Sun => "Sunday",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_weekdays_read_back_as_the_same_set() {
        for bits in 1u8..128 {
            let set = WeekdaySet(bits);
            let text = set.to_compact_string();
            assert_eq!(WeekdaySet::parse(&text), Ok(set), "{bits:07b} -> {text}");
        }
        let compact = |s: &str| WeekdaySet::parse(s).unwrap().to_compact_string();
        assert_eq!(compact("Mon,Tue,Wed,Thu,Fri"), "Mon-Fri");
        assert_eq!(compact("Sun-Thu"), "Sun-Thu");
        assert_eq!(compact("Fri-Mon"), "Fri-Mon");
        assert_eq!(compact("Mon,Wed,Fri"), "Mon,Wed,Fri");
        assert_eq!(compact("Sat,Sun"), "Sat,Sun");
        assert_eq!(compact("Mon-Sun"), "Mon-Sun");
        assert_eq!(compact("Wed"), "Wed");
    }

    #[test]
    fn windows_are_checked_in_minutes() {
        assert_eq!(validate_window(0, MINUTES_PER_DAY), Ok(()));
        assert_eq!(validate_window(7 * 60 + 30, 7 * 60 + 31), Ok(()));
        assert_eq!(
            validate_window(19 * 60, 7 * 60).unwrap_err(),
            "end 07:00 is not after start 19:00"
        );
        assert_eq!(
            validate_window(600, 600).unwrap_err(),
            "end 10:00 is not after start 10:00"
        );
        assert_eq!(
            validate_window(0, MINUTES_PER_DAY + 1).unwrap_err(),
            "end 24:01 is after 24:00"
        );
        assert_eq!(clock(MINUTES_PER_DAY), "24:00");
    }
}

#[cfg(test)]
mod behaviour_tests;
