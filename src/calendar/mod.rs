//! Holiday calendars (SPEC §3): Colombia computed by law for any year, other countries from the
//! `holidays` crate (with a clear error where its data ends), plus the manual `BUSINESS_HOLIDAYS`.
//! OWNER: calendar/hours engineer — signatures here are the contract other modules use.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use crate::error::Result;

#[derive(Debug, Clone)]
pub struct HolidayCalendar {
    country: Option<String>,
    subdivision: Option<String>,
    extra: BTreeSet<NaiveDate>,
}

impl HolidayCalendar {
    /// Validates the country (ISO 3166-1 alpha-2, e.g. `CO`) and subdivision up front:
    /// an unknown country or unsupported subdivision is `Error::Config` naming the variable.
    pub fn new(country: Option<&str>, subdivision: Option<&str>, extra: BTreeSet<NaiveDate>) -> Result<Self> {
        Ok(HolidayCalendar {
            country: country.map(str::to_string),
            subdivision: subdivision.map(str::to_string),
            extra,
        })
    }

    /// Every holiday of `year`: date → names (two holidays on one date give two names).
    pub fn holidays_in_year(&self, year: i32) -> Result<BTreeMap<NaiveDate, Vec<String>>> {
        let _ = (year, &self.country, &self.subdivision, &self.extra);
        todo!("calendar/hours engineer")
    }

    /// The holiday name(s) on `date`, joined with "; ", or None.
    pub fn holiday_on(&self, date: NaiveDate) -> Result<Option<String>> {
        let _ = date;
        todo!("calendar/hours engineer")
    }
}
