//! Colombian public holidays computed by law, for any year from 1984 on.
//!
//! * Fixed days (Ley 51 de 1983 keeps them on their date): Jan 1, May 1, Jul 20, Aug 7, Dec 8, Dec 25.
//! * Ley 51 de 1983 ("Ley Emiliani"), in force from 1984: Epiphany (Jan 6), St Joseph (Mar 19),
//!   Sts Peter & Paul (Jun 29), Assumption (Aug 15), Columbus Day (Oct 12), All Saints (Nov 1) and
//!   Independence of Cartagena (Nov 11) move to the following Monday when they do not fall on one;
//!   Ascension (Easter + 39), Corpus Christi (Easter + 60) and Sacred Heart (Easter + 68) likewise
//!   (always Easter + 43, + 64, + 71). Maundy Thursday and Good Friday stay on their day.
//! * Ley 2578 de 2026: Our Lady of the Rosary of Chiquinquirá, July 9, moved to the following
//!   Monday, from 2026 on.
//!
//! Two holidays may land on one date (a moved holiday on another one); both are returned.

use chrono::{Datelike, Days, NaiveDate};

use crate::error::{Error, Result};

/// First year of Ley 51 de 1983 (the rules computed here).
pub(crate) const FIRST_YEAR: i32 = 1984;
/// First year of Ley 2578 de 2026 (Chiquinquirá).
pub(crate) const CHIQUINQUIRA_FROM: i32 = 2026;
/// chrono's dates end in year 262143; stay well inside so `next Monday` never overflows.
pub(crate) const LAST_YEAR: i32 = 200_000;

/// Easter Sunday (Gregorian), by the anonymous Gregorian algorithm (Meeus/Jones/Butcher).
pub(crate) fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32).expect("Easter is a valid date")
}

/// The date itself when it is a Monday, else the following Monday.
pub(crate) fn next_monday(date: NaiveDate) -> NaiveDate {
    let ahead = (7 - date.weekday().num_days_from_monday()) % 7;
    date + Days::new(u64::from(ahead))
}

/// Every holiday of `year` as (date, name), in the order of the law's list (not sorted; a date
/// may appear twice).
pub fn holidays(year: i32) -> Result<Vec<(NaiveDate, &'static str)>> {
    if year < FIRST_YEAR {
        return Err(Error::Calendar(format!(
            "Colombia (CO): year {year} is not supported; the rules computed here are those of Ley 51 de 1983, \
             in force from {FIRST_YEAR}"
        )));
    }
    if year > LAST_YEAR {
        return Err(Error::Calendar(format!(
            "Colombia (CO): year {year} is not supported (at most {LAST_YEAR})"
        )));
    }
    let date = |m: u32, d: u32| NaiveDate::from_ymd_opt(year, m, d).expect("valid fixed date");
    let easter = easter(year);
    let after_easter = |days: i64| easter + chrono::Duration::days(days);
    let moved = |m: u32, d: u32| next_monday(date(m, d));

    let mut list = vec![
        (date(1, 1), "Año Nuevo"),
        (moved(1, 6), "Día de los Reyes Magos"),
        (moved(3, 19), "Día de San José"),
        (after_easter(-3), "Jueves Santo"),
        (after_easter(-2), "Viernes Santo"),
        (date(5, 1), "Día del Trabajo"),
        (next_monday(after_easter(39)), "Ascensión del Señor"),
        (next_monday(after_easter(60)), "Corpus Christi"),
        (next_monday(after_easter(68)), "Sagrado Corazón"),
        (moved(6, 29), "San Pedro y San Pablo"),
    ];
    if year >= CHIQUINQUIRA_FROM {
        list.push((moved(7, 9), "Nuestra Señora del Rosario de Chiquinquirá"));
    }
    list.extend([
        (date(7, 20), "Día de la Independencia"),
        (date(8, 7), "Batalla de Boyacá"),
        (moved(8, 15), "La Asunción de la Virgen"),
        (moved(10, 12), "Día de la Raza"),
        (moved(11, 1), "Día de Todos los Santos"),
        (moved(11, 11), "Independencia de Cartagena"),
        (date(12, 8), "Inmaculada Concepción"),
        (date(12, 25), "Navidad"),
    ]);
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn easter_known_dates() {
        for (y, m, day) in [
            (1984, 4, 22),
            (2000, 4, 23),
            (2008, 3, 23),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2038, 4, 25),
            (2100, 3, 28),
        ] {
            assert_eq!(easter(y), d(y, m, day), "{y}");
        }
    }

    #[test]
    fn next_monday_keeps_mondays() {
        assert_eq!(next_monday(d(2026, 1, 5)), d(2026, 1, 5));
        assert_eq!(next_monday(d(2026, 1, 6)), d(2026, 1, 12));
        assert_eq!(next_monday(d(2026, 1, 11)), d(2026, 1, 12));
    }

    #[test]
    fn before_ley_51_is_refused() {
        let e = holidays(1983).unwrap_err().to_string();
        assert!(e.contains("1983") && e.contains("1984"), "{e}");
        assert_eq!(holidays(1984).unwrap().len(), 18);
        assert_eq!(holidays(2025).unwrap().len(), 18);
        assert_eq!(holidays(2026).unwrap().len(), 19);
    }
}
