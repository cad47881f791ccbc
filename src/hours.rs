//! The business-hours decision (SPEC §3): a pure function of (configuration, instant).
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

    /// Exactly these days (an empty slice gives a set with no business day at all).
    pub fn from_days(days: &[Weekday]) -> Self {
        WeekdaySet(days.iter().fold(0, |bits, d| bits | 1 << d.num_days_from_monday()))
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
    /// Why: "business day within 08:00-18:00", "weekend (Saturday)", "holiday: Navidad",
    /// "before 08:00 (business hours 08:00-18:00)", "18:00 or later (business hours 08:00-18:00)",
    /// "not a business day (Friday; business days Sun,Mon,Tue,Wed,Thu)".
    pub reason: String,
    /// First instant at which `business_hours` changes (None only if it never changes, e.g. no business days).
    pub next_transition: Option<DateTime<Utc>>,
}

impl BusinessHours {
    /// How far ahead `next_transition` looks before answering None.
    pub const HORIZON_DAYS: i64 = 400;

    /// Decides for `at`. Errors only when a holiday calendar cannot answer for that year.
    pub fn decide(&self, at: DateTime<Utc>) -> Result<Decision> {
        let mut years = YearCache::default();
        let state = self.state(at, &mut years)?;
        let next_transition = self.scan(at, &mut years, |_, now| now != state.business)?;
        Ok(Decision {
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

    /// The first instant strictly after `at` at which a business period starts (the answer turns
    /// from non-business to business). When `at` is inside business hours this is the start of the
    /// *next* period, after the current one ends. None if there is none within [`Self::HORIZON_DAYS`].
    pub fn next_business_start(&self, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        self.scan(at, &mut YearCache::default(), |before, now| !before && now)
    }

    /// The first instant strictly after `at` at which business hours end (business → non-business).
    pub fn next_business_end(&self, at: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        self.scan(at, &mut YearCache::default(), |before, now| before && !now)
    }

    fn state(&self, at: DateTime<Utc>, years: &mut YearCache) -> Result<State> {
        let local = at.with_timezone(&self.timezone);
        let holiday = years.holiday_on(&self.calendar, local.date_naive())?;
        let hour = local.hour();
        let business =
            self.days.contains(local.weekday()) && holiday.is_none() && hour >= self.start_hour && hour < self.end_hour;
        Ok(State {
            local,
            holiday,
            business,
        })
    }

    fn reason(&self, state: &State) -> String {
        let window = format!("{:02}:00-{:02}:00", self.start_hour, self.end_hour);
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
        } else if state.local.hour() < self.start_hour {
            format!("before {:02}:00 (business hours {window})", self.start_hour)
        } else if state.local.hour() >= self.end_hour {
            format!("{:02}:00 or later (business hours {window})", self.end_hour)
        } else {
            format!("business day within {window}")
        }
    }

    /// Walks forward from `at`, one UTC day at a time up to the horizon, over every instant at
    /// which the answer *can* change (local hour boundaries at 00:00, start and end, both
    /// instants of an ambiguous local time, and every UTC-offset change, which is where a skipped
    /// local hour resumes), and returns the first one where `pick(answer before, answer now)`.
    /// The answer only depends on the local date and hour, so it is constant between those instants.
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
        let mut hours = vec![0, self.start_hour];
        if self.end_hour < 24 {
            hours.push(self.end_hour);
        }
        let mut date = first;
        while date <= last {
            for &h in &hours {
                let naive = date.and_hms_opt(h, 0, 0).expect("valid hour");
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
pub fn weekday_name(day: Weekday) -> &'static str {
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
