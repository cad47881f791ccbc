//! Holiday calendars (docs/reference.md §3): Colombia computed by law for any year, other countries from the
//! `holidays` crate (with a clear error where its data ends), plus the manual `BUSINESS_HOLIDAYS`.
//! OWNER: calendar/hours engineer — signatures here are the contract other modules use.

pub(crate) mod colombia;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};

use crate::error::{Error, Result};

/// Name given to a date of `BUSINESS_HOLIDAYS`.
pub(crate) const CONFIGURED_HOLIDAY_NAME: &str = "Feriado configurado";

/// One country's table from the `holidays` crate: year → date → name.
type Table = BTreeMap<i32, BTreeMap<NaiveDate, String>>;

#[derive(Clone)]
enum Source {
    /// No country calendar (`BUSINESS_HOLIDAYS_COUNTRY` empty): only the configured dates.
    None,
    /// Computed by law (see [`colombia`]).
    Colombia,
    /// Precomputed by the `holidays` crate for a limited range of years.
    Table(Arc<Table>),
}

#[derive(Clone)]
pub struct HolidayCalendar {
    country: Option<String>,
    subdivision: Option<String>,
    extra: BTreeSet<NaiveDate>,
    source: Source,
}

impl fmt::Debug for HolidayCalendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HolidayCalendar")
            .field("country", &self.country)
            .field("subdivision", &self.subdivision)
            .field("extra", &self.extra)
            .field("years", &self.covered_years())
            .finish()
    }
}

impl HolidayCalendar {
    /// Validates the country (ISO 3166-1 alpha-2, e.g. `CO`) and subdivision up front:
    /// an unknown country or unsupported subdivision is `Error::Config` naming the variable.
    pub fn new(country: Option<&str>, subdivision: Option<&str>, extra: BTreeSet<NaiveDate>) -> Result<Self> {
        let country = country.map(str::trim).filter(|c| !c.is_empty());
        let subdivision = subdivision.map(str::trim).filter(|s| !s.is_empty());
        let (country, source) = match country {
            None => {
                if let Some(sub) = subdivision {
                    return Err(Error::config(
                        "BUSINESS_HOLIDAYS_SUBDIVISION",
                        sub,
                        "a subdivision needs BUSINESS_HOLIDAYS_COUNTRY",
                    ));
                }
                (None, Source::None)
            }
            Some(code) => {
                let (upper, source) =
                    country_source(code).map_err(|reason| Error::config("BUSINESS_HOLIDAYS_COUNTRY", code, reason))?;
                if let Some(sub) = subdivision {
                    let why = if upper == "CO" {
                        "Colombia has no regional holiday calendars; leave it empty".to_string()
                    } else {
                        format!("no regional holiday calendars are available for {upper}; leave it empty")
                    };
                    return Err(Error::config("BUSINESS_HOLIDAYS_SUBDIVISION", sub, why));
                }
                (Some(upper), source)
            }
        };
        Ok(HolidayCalendar {
            country,
            subdivision: subdivision.map(str::to_string),
            extra,
            source,
        })
    }

    /// No holidays at all (a namespace's `holidays=none`).
    pub fn none() -> Self {
        HolidayCalendar {
            country: None,
            subdivision: None,
            extra: BTreeSet::new(),
            source: Source::None,
        }
    }

    /// One country's calendar alone (no subdivision, no configured dates), as a namespace's
    /// `holidays=<country>` asks for. The error is the reason, for the caller to wrap.
    pub(crate) fn for_country(code: &str) -> std::result::Result<Self, String> {
        let (country, source) = country_source(code)?;
        Ok(HolidayCalendar {
            country: Some(country),
            subdivision: None,
            extra: BTreeSet::new(),
            source,
        })
    }

    /// The country code (upper case), if any.
    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    pub fn subdivision(&self) -> Option<&str> {
        self.subdivision.as_deref()
    }

    /// The configured `BUSINESS_HOLIDAYS` dates.
    pub fn extra(&self) -> &BTreeSet<NaiveDate> {
        &self.extra
    }

    /// The years the country calendar can answer for (None = unbounded or no country).
    pub(crate) fn covered_years(&self) -> Option<(i32, i32)> {
        match &self.source {
            Source::None => None,
            Source::Colombia => Some((colombia::FIRST_YEAR, colombia::LAST_YEAR)),
            Source::Table(t) => Some((*t.keys().next()?, *t.keys().next_back()?)),
        }
    }

    /// Every holiday of `year`: date → names (two holidays on one date give two names).
    pub fn holidays_in_year(&self, year: i32) -> Result<BTreeMap<NaiveDate, Vec<String>>> {
        let mut out: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
        match &self.source {
            Source::None => {}
            Source::Colombia => {
                for (date, name) in colombia::holidays(year)? {
                    out.entry(date).or_default().push(name.to_string());
                }
            }
            Source::Table(table) => {
                let days = table.get(&year).ok_or_else(|| {
                    let (first, last) = self.covered_years().unwrap_or((0, 0));
                    Error::Calendar(format!(
                        "country {}: no holiday data for year {year}; the `holidays` data covers {first}-{last}",
                        self.country.as_deref().unwrap_or("?")
                    ))
                })?;
                for (date, name) in days {
                    out.entry(*date).or_default().push(name.clone());
                }
            }
        }
        for date in self.extra.iter().filter(|d| d.year() == year) {
            let names = out.entry(*date).or_default();
            if !names.iter().any(|n| n == CONFIGURED_HOLIDAY_NAME) {
                names.push(CONFIGURED_HOLIDAY_NAME.to_string());
            }
        }
        Ok(out)
    }
}

/// The calendar for an ISO 3166-1 alpha-2 code (any case) and the code in upper case. Shared by the
/// cluster's `BUSINESS_HOLIDAYS_COUNTRY` and a namespace's `holidays=`, so both accept the same codes.
fn country_source(code: &str) -> std::result::Result<(String, Source), String> {
    let upper = code.trim().to_ascii_uppercase();
    let valid_shape = upper.len() == 2 && upper.chars().all(|c| c.is_ascii_uppercase());
    if !valid_shape {
        return Err("expected an ISO 3166-1 alpha-2 country code such as CO".to_string());
    }
    let source = if upper == "CO" {
        Source::Colombia
    } else {
        Source::Table(Arc::new(crate_table(&upper).ok_or_else(|| {
            "unknown country: no holiday calendar for it (use CO or another ISO 3166-1 alpha-2 code the \
             `holidays` data knows)"
                .to_string()
        })?))
    };
    Ok((upper, source))
}

/// The `holidays` crate's table for one country, or None if it does not know the code.
fn crate_table(code: &str) -> Option<Table> {
    let country: holidays::Country = code.parse().ok()?;
    let mut map = holidays::Builder::new().countries(&[country]).build().ok()?;
    let years = map.remove(&country)?;
    let table: Table = years
        .into_iter()
        .map(|(year, days)| (year, days.into_iter().map(|(d, h)| (d, h.name)).collect()))
        .collect();
    (!table.is_empty()).then_some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// The holiday name(s) of `cal` on `date`, joined with "; ", or None.
    fn holiday_on(cal: &HolidayCalendar, date: NaiveDate) -> Result<Option<String>> {
        let mut year = cal.holidays_in_year(date.year())?;
        Ok(year.remove(&date).map(|names| names.join("; ")))
    }

    #[test]
    fn unknown_country_and_bad_subdivision_name_the_variable() {
        for code in ["ZZ", "Colombia", "1"] {
            let e = HolidayCalendar::new(Some(code), None, BTreeSet::new()).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains("BUSINESS_HOLIDAYS_COUNTRY") && msg.contains(code), "{msg}");
        }
        let e = HolidayCalendar::new(Some("CO"), Some("ANT"), BTreeSet::new()).unwrap_err();
        assert!(e.to_string().contains("BUSINESS_HOLIDAYS_SUBDIVISION") && e.to_string().contains("ANT"));
        let e = HolidayCalendar::new(Some("US"), Some("CA"), BTreeSet::new()).unwrap_err();
        assert!(e.to_string().contains("BUSINESS_HOLIDAYS_SUBDIVISION"), "{e}");
    }

    #[test]
    fn crate_countries_error_outside_their_years() {
        let cal = HolidayCalendar::new(Some("us"), None, BTreeSet::new()).unwrap();
        assert_eq!(cal.country(), Some("US"));
        let (first, last) = cal.covered_years().unwrap();
        assert!(cal.holidays_in_year(first).unwrap().contains_key(&d(first, 1, 1)));
        let msg = cal.holidays_in_year(last + 1).unwrap_err().to_string();
        assert!(msg.contains("US") && msg.contains(&(last + 1).to_string()), "{msg}");
        assert!(msg.contains(&format!("{first}-{last}")), "{msg}");
        assert!(holiday_on(&cal, d(last + 1, 7, 4)).is_err());
    }

    #[test]
    fn configured_dates_merge_with_country_names() {
        let extra: BTreeSet<_> = [d(2026, 12, 25), d(2026, 12, 24)].into();
        let cal = HolidayCalendar::new(Some("CO"), None, extra.clone()).unwrap();
        assert_eq!(
            holiday_on(&cal, d(2026, 12, 24)).unwrap().as_deref(),
            Some("Feriado configurado")
        );
        assert_eq!(
            holiday_on(&cal, d(2026, 12, 25)).unwrap().as_deref(),
            Some("Navidad; Feriado configurado")
        );
        let none = HolidayCalendar::new(None, None, extra).unwrap();
        assert_eq!(none.holidays_in_year(2026).unwrap().len(), 2);
        assert_eq!(holiday_on(&none, d(2026, 1, 1)).unwrap(), None);
        assert!(none.holidays_in_year(1900).unwrap().is_empty());
    }

    #[test]
    fn colombia_before_1984_is_an_error() {
        let cal = HolidayCalendar::new(Some("CO"), None, BTreeSet::new()).unwrap();
        assert!(matches!(cal.holidays_in_year(1983), Err(Error::Calendar(_))));
        assert!(cal.holidays_in_year(2100).is_ok());
        assert!(cal.holidays_in_year(3000).is_ok());
    }
}
