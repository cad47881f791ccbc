//! The business-hours decision: boundaries, weekends, holidays, END=24, DST, and properties
//! (purity; `next_transition` is really the first change).

use std::collections::BTreeSet;

use crate::calendar::HolidayCalendar;
use crate::config::Config;
use crate::hours::{BusinessHours, HoursAt, WeekdaySet, MINUTES_PER_DAY};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;

fn config(vars: &[(&str, &str)]) -> BusinessHours {
    let mut all = vec![("POD_NAMESPACE", "task-scheduler")];
    all.extend_from_slice(vars);
    Config::from_vars(all).unwrap().business
}

fn bogota() -> BusinessHours {
    config(&[])
}

/// An instant from an RFC 3339 string with offset.
fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn decide(b: &BusinessHours, s: &str) -> HoursAt {
    b.decide(at(s)).unwrap()
}

#[test]
fn bogota_boundaries_on_a_plain_tuesday() {
    let b = bogota();
    let d = decide(&b, "2026-03-03T07:59:59-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.reason, "before 08:00 (business hours 08:00-18:00)");
    assert_eq!(d.next_transition, Some(at("2026-03-03T08:00:00-05:00")));
    assert_eq!(d.weekday, "Tuesday");
    assert_eq!(d.timezone, "America/Bogota");
    assert_eq!(d.local_time, "2026-03-03T07:59:59-05:00");
    assert_eq!(d.holiday, None);

    let d = decide(&b, "2026-03-03T08:00:00-05:00");
    assert!(d.business_hours);
    assert_eq!(d.reason, "business day within 08:00-18:00");
    assert_eq!(d.next_transition, Some(at("2026-03-03T18:00:00-05:00")));

    let d = decide(&b, "2026-03-03T17:59:59-05:00");
    assert!(d.business_hours);
    assert_eq!(d.next_transition, Some(at("2026-03-03T18:00:00-05:00")));

    let d = decide(&b, "2026-03-03T18:00:00-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.reason, "18:00 or later (business hours 08:00-18:00)");
    assert_eq!(d.next_transition, Some(at("2026-03-04T08:00:00-05:00")));

    // The same instants written in UTC give the same answers.
    assert!(b.is_business(at("2026-03-03T13:00:00Z")).unwrap());
    assert!(!b.is_business(at("2026-03-03T12:59:59Z")).unwrap());
    assert!(!b.is_business(at("2026-03-03T23:00:00Z")).unwrap());
}

#[test]
fn end_hour_24_runs_until_midnight() {
    let b = config(&[("BUSINESS_START_HOUR", "0"), ("BUSINESS_END_HOUR", "24")]);
    let d = decide(&b, "2026-03-06T23:59:59-05:00"); // Friday
    assert!(d.business_hours, "{d:?}");
    assert_eq!(d.reason, "business day within 00:00-24:00");
    assert_eq!(d.next_transition, Some(at("2026-03-07T00:00:00-05:00")));
    let d = decide(&b, "2026-03-07T00:00:00-05:00"); // Saturday
    assert!(!d.business_hours);
    assert_eq!(d.next_transition, Some(at("2026-03-09T00:00:00-05:00")));

    let b = config(&[("BUSINESS_START_HOUR", "20"), ("BUSINESS_END_HOUR", "24")]);
    assert!(b.is_business(at("2026-03-03T23:59:59-05:00")).unwrap());
    let d = decide(&b, "2026-03-03T22:00:00-05:00");
    assert_eq!(d.next_transition, Some(at("2026-03-04T00:00:00-05:00")));
    let d = decide(&b, "2026-03-04T00:00:00-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.next_transition, Some(at("2026-03-04T20:00:00-05:00")));
}

#[test]
fn windows_are_decided_to_the_minute() {
    let b = BusinessHours {
        start_minute: 7 * 60 + 30,
        end_minute: 19 * 60 + 45,
        ..bogota()
    };
    let d = decide(&b, "2026-03-03T07:29:59-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.reason, "before 07:30 (business hours 07:30-19:45)");
    assert_eq!(d.next_transition, Some(at("2026-03-03T07:30:00-05:00")));
    let d = decide(&b, "2026-03-03T07:30:00-05:00");
    assert!(d.business_hours);
    assert_eq!(d.reason, "business day within 07:30-19:45");
    assert_eq!(d.next_transition, Some(at("2026-03-03T19:45:00-05:00")));
    assert!(b.is_business(at("2026-03-03T19:44:59-05:00")).unwrap());
    let d = decide(&b, "2026-03-03T19:45:00-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.reason, "19:45 or later (business hours 07:30-19:45)");
    assert_eq!(d.next_transition, Some(at("2026-03-04T07:30:00-05:00")));
    assert_eq!(
        b.next_business_end(at("2026-03-03T07:00:00-05:00")).unwrap(),
        Some(at("2026-03-03T19:45:00-05:00"))
    );
}

#[test]
fn madrid_window_across_both_european_clock_changes() {
    // Every day 06:45-19:15 in Madrid; Europe moves on 2026-03-29 (01:00Z) and 2026-10-25 (01:00Z).
    let b = config(&[
        ("BUSINESS_HOURS_TIMEZONE", "Europe/Madrid"),
        ("BUSINESS_HOLIDAYS_COUNTRY", ""),
        ("BUSINESS_DAYS", "Mon-Sun"),
    ]);
    let b = BusinessHours {
        start_minute: 6 * 60 + 45,
        end_minute: 19 * 60 + 15,
        ..b
    };
    for (day, offset) in [
        ("2026-03-28", "+01:00"),
        ("2026-03-29", "+02:00"),
        ("2026-10-24", "+02:00"),
        ("2026-10-25", "+01:00"),
    ] {
        let local = |hm: &str| at(&format!("{day}T{hm}:00{offset}"));
        assert!(!b.is_business(local("06:44")).unwrap(), "{day} 06:44");
        assert_eq!(
            decide(&b, &format!("{day}T06:44:59{offset}")).next_transition,
            Some(local("06:45"))
        );
        assert!(b.is_business(local("06:45")).unwrap(), "{day} 06:45");
        assert!(b.is_business(local("19:14")).unwrap(), "{day} 19:14");
        assert_eq!(
            decide(&b, &format!("{day}T19:14:59{offset}")).next_transition,
            Some(local("19:15"))
        );
        assert!(!b.is_business(local("19:15")).unwrap(), "{day} 19:15");
    }
    // The evening before each change, the next start lands on the other side of it.
    let d = decide(&b, "2026-03-28T20:00:00+01:00");
    assert_eq!(d.next_transition, Some(at("2026-03-29T04:45:00Z")));
    let d = decide(&b, "2026-10-24T20:00:00+02:00");
    assert_eq!(d.next_transition, Some(at("2026-10-25T05:45:00Z")));
}

#[test]
fn weekend_is_not_business_and_friday_evening_waits_for_monday() {
    let b = bogota();
    let d = decide(&b, "2026-03-07T10:00:00-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.weekday, "Saturday");
    assert_eq!(d.reason, "weekend (Saturday)");
    assert_eq!(d.next_transition, Some(at("2026-03-09T08:00:00-05:00")));
    let d = decide(&b, "2026-03-06T18:00:00-05:00");
    assert_eq!(d.next_transition, Some(at("2026-03-09T08:00:00-05:00")));

    // Sun-Thu business days: Friday is off, Sunday is on.
    let b = config(&[("BUSINESS_DAYS", "Sun-Thu")]);
    let d = decide(&b, "2026-03-06T10:00:00-05:00");
    assert!(!d.business_hours);
    assert!(d.reason.starts_with("not a business day (Friday"), "{}", d.reason);
    assert!(b.is_business(at("2026-03-08T10:00:00-05:00")).unwrap());
}

#[test]
fn holiday_on_a_weekday() {
    let b = bogota();
    let d = decide(&b, "2026-04-02T10:00:00-05:00"); // Maundy Thursday
    assert!(!d.business_hours);
    assert_eq!(d.holiday.as_deref(), Some("Jueves Santo"));
    assert_eq!(d.reason, "holiday: Jueves Santo");
    // Good Friday, the weekend, then Monday.
    assert_eq!(d.next_transition, Some(at("2026-04-06T08:00:00-05:00")));
    // Wednesday evening before: the next start skips both holidays.
    let d = decide(&b, "2026-04-01T17:00:00-05:00");
    assert_eq!(d.next_transition, Some(at("2026-04-01T18:00:00-05:00")));
    assert_eq!(
        b.next_business_end(at("2026-04-01T07:00:00-05:00")).unwrap(),
        Some(at("2026-04-01T18:00:00-05:00"))
    );
}

#[test]
fn monday_moved_holiday() {
    let b = bogota();
    // Epiphany 2026 falls on Tuesday January 6: that day is worked, Monday the 12th is off.
    assert!(b.is_business(at("2026-01-06T10:00:00-05:00")).unwrap());
    let d = decide(&b, "2026-01-12T10:00:00-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.holiday.as_deref(), Some("Día de los Reyes Magos"));
    assert_eq!(d.next_transition, Some(at("2026-01-13T08:00:00-05:00")));
    // Friday before: Monday is skipped.
    let d = decide(&b, "2026-01-09T18:30:00-05:00");
    assert_eq!(d.next_transition, Some(at("2026-01-13T08:00:00-05:00")));
    // Chiquinquirá (Ley 2578 de 2026): Thursday July 9 2026 → Monday July 13.
    assert!(b.is_business(at("2026-07-09T10:00:00-05:00")).unwrap());
    assert_eq!(
        decide(&b, "2026-07-13T10:00:00-05:00").holiday.as_deref(),
        Some("Nuestra Señora del Rosario de Chiquinquirá")
    );
}

#[test]
fn two_holidays_on_one_date() {
    // 2025: Sacred Heart (Easter + 71) and Sts Peter & Paul (Sunday June 29 → Monday) both on June 30.
    let d = decide(&bogota(), "2025-06-30T10:00:00-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.holiday.as_deref(), Some("Sagrado Corazón; San Pedro y San Pablo"));
    assert_eq!(d.reason, "holiday: Sagrado Corazón; San Pedro y San Pablo");
}

#[test]
fn configured_holidays_and_no_country() {
    let b = config(&[("BUSINESS_HOLIDAYS", "2026-03-03,2026-12-25")]);
    let d = decide(&b, "2026-03-03T10:00:00-05:00");
    assert_eq!(d.holiday.as_deref(), Some("Feriado configurado"));
    assert!(!d.business_hours);
    assert_eq!(
        decide(&b, "2026-12-25T10:00:00-05:00").holiday.as_deref(),
        Some("Navidad; Feriado configurado")
    );
    let b = config(&[("BUSINESS_HOLIDAYS_COUNTRY", "")]);
    assert!(b.is_business(at("2026-04-02T10:00:00-05:00")).unwrap());
    // Colombia's rules start in 1984: earlier instants are an error, not "no holiday".
    assert!(bogota().decide(at("1983-06-01T10:00:00-05:00")).is_err());
}

#[test]
fn new_york_next_transition_across_both_dst_changes() {
    let b = config(&[
        ("BUSINESS_HOURS_TIMEZONE", "America/New_York"),
        ("BUSINESS_HOLIDAYS_COUNTRY", ""),
    ]);
    // Spring forward: Sunday 2026-03-08 02:00 EST → 03:00 EDT.
    let d = decide(&b, "2026-03-06T18:00:00-05:00");
    assert_eq!(d.next_transition, Some(at("2026-03-09T08:00:00-04:00")));
    assert_eq!(d.next_transition, Some(at("2026-03-09T12:00:00Z")));
    let d = decide(&b, "2026-03-09T08:00:00-04:00");
    assert_eq!(d.local_time, "2026-03-09T08:00:00-04:00");
    assert_eq!(d.next_transition, Some(at("2026-03-09T22:00:00Z")));
    // Fall back: Sunday 2026-11-01 02:00 EDT → 01:00 EST.
    let d = decide(&b, "2026-10-30T18:00:00-04:00");
    assert_eq!(d.next_transition, Some(at("2026-11-02T08:00:00-05:00")));
    assert_eq!(d.next_transition, Some(at("2026-11-02T13:00:00Z")));

    let every_day = |start: &'static str, end: &'static str| {
        config(&[
            ("BUSINESS_HOURS_TIMEZONE", "America/New_York"),
            ("BUSINESS_HOLIDAYS_COUNTRY", ""),
            ("BUSINESS_DAYS", "Mon-Sun"),
            ("BUSINESS_START_HOUR", start),
            ("BUSINESS_END_HOUR", end),
        ])
    };
    // A start hour skipped by the clock: business starts at the first instant whose local hour
    // is ≥ start, 03:00 EDT (= 07:00Z).
    let b = every_day("2", "18");
    let d = decide(&b, "2026-03-08T01:30:00-05:00");
    assert!(!d.business_hours);
    assert_eq!(d.next_transition, Some(at("2026-03-08T07:00:00Z")));
    // A start hour that happens twice: the earliest (01:00 EDT).
    let b = every_day("1", "18");
    let d = decide(&b, "2026-11-01T00:30:00-04:00");
    assert_eq!(d.next_transition, Some(at("2026-11-01T01:00:00-04:00")));
    // An end hour after the repeated hour: the business period lasts one real hour longer.
    let b = every_day("0", "2");
    let d = decide(&b, "2026-11-01T00:30:00-04:00");
    assert!(d.business_hours);
    assert_eq!(d.next_transition, Some(at("2026-11-01T02:00:00-05:00")));
    assert!(b.is_business(at("2026-11-01T01:30:00-05:00")).unwrap());
}

#[test]
fn no_business_day_means_no_transition() {
    let b = BusinessHours {
        days: WeekdaySet::from_days(&[]),
        ..bogota()
    };
    let d = b.decide(at("2026-03-03T10:00:00-05:00")).unwrap();
    assert!(!d.business_hours);
    assert_eq!(d.next_transition, None);
}

// ---- properties ----------------------------------------------------------------------------

const ZONES: [Tz; 7] = [
    chrono_tz::America::Bogota,
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::America::Santiago, // DST changes at midnight: local midnight is skipped/repeated
    chrono_tz::Australia::Lord_Howe, // 30-minute DST
    chrono_tz::Asia::Kolkata,
    chrono_tz::Pacific::Apia, // skipped a whole day (2011-12-30)
];

fn hours_strategy() -> impl Strategy<Value = BusinessHours> {
    (
        0..ZONES.len(),
        0u32..MINUTES_PER_DAY,
        1u32..=MINUTES_PER_DAY,
        1u8..128,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(zone, start, span, bits, colombia, extra)| {
            let end = (start + span).min(MINUTES_PER_DAY);
            let days: Vec<Weekday> = (0..7)
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| Weekday::try_from(i as u8).unwrap())
                .collect();
            let extra: BTreeSet<NaiveDate> = if extra {
                (2000..2090)
                    .map(|y| NaiveDate::from_ymd_opt(y, 3, 3).unwrap())
                    .collect()
            } else {
                BTreeSet::new()
            };
            BusinessHours {
                timezone: ZONES[zone],
                start_minute: start,
                end_minute: end,
                days: WeekdaySet::from_days(&days),
                calendar: HolidayCalendar::new(colombia.then_some("CO"), None, extra).unwrap(),
            }
        })
}

/// Whole seconds from 1986 to 2090 (Colombia's rules start in 1984).
fn instant_strategy() -> impl Strategy<Value = DateTime<Utc>> {
    (505_000_000i64..3_786_000_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

/// Clock changes (UTC instant, zone), where mistakes hide.
const CLOCK_CHANGES: [(&str, Tz); 9] = [
    ("2026-03-08T07:00:00Z", chrono_tz::America::New_York), // 02:00 → 03:00
    ("2026-11-01T06:00:00Z", chrono_tz::America::New_York), // 02:00 → 01:00
    ("2026-03-29T01:00:00Z", chrono_tz::Europe::London),    // 01:00 → 02:00
    ("2026-10-25T01:00:00Z", chrono_tz::Europe::London),    // 02:00 → 01:00
    ("2026-04-05T03:00:00Z", chrono_tz::America::Santiago), // 24:00 → 23:00
    ("2026-09-06T04:00:00Z", chrono_tz::America::Santiago), // 00:00 → 01:00 (midnight skipped)
    ("2026-04-04T15:00:00Z", chrono_tz::Australia::Lord_Howe), // 02:00 → 01:30
    ("2026-10-03T15:30:00Z", chrono_tz::Australia::Lord_Howe), // 02:00 → 02:30
    ("2011-12-30T10:00:00Z", chrono_tz::Pacific::Apia),     // Dec 30 skipped
];

/// A configuration whose start or end sits on or near a clock change (to the minute), and an
/// instant near it.
fn around_clock_change() -> impl Strategy<Value = (BusinessHours, DateTime<Utc>)> {
    (
        hours_strategy(),
        0..CLOCK_CHANGES.len(),
        prop::sample::select(vec![0u32, 1, 2, 3, 22, 23]),
        prop::sample::select(vec![0u32, 1, 29, 30, 31, 59]),
        prop::sample::select(vec![1u32, 30, 60, 61, 120, 180, MINUTES_PER_DAY]),
        -30 * 3600i64..30 * 3600,
    )
        .prop_map(|(b, i, start_hour, start_min, span, offset)| {
            let (instant, zone) = CLOCK_CHANGES[i];
            let start = start_hour * 60 + start_min;
            let b = BusinessHours {
                timezone: zone,
                start_minute: start,
                end_minute: (start + span).min(MINUTES_PER_DAY),
                ..b
            };
            (b, at(instant) + Duration::seconds(offset))
        })
}

fn check_first_change(b: &BusinessHours, at: DateTime<Utc>, samples: &[f64]) -> Result<(), TestCaseError> {
    let d = b.decide(at).unwrap();
    prop_assert_eq!(&d, &b.decide(at).unwrap(), "decide is not pure");
    prop_assert_eq!(d.business_hours, b.is_business(at).unwrap());
    let any_day = (0..7).any(|i| b.days.contains(Weekday::try_from(i as u8).unwrap()));
    match d.next_transition {
        None => prop_assert!(!any_day, "no transition although some days are business days: {d:?}"),
        Some(next) => {
            prop_assert!(next > at);
            prop_assert_ne!(b.is_business(next).unwrap(), d.business_hours, "no change at {}", next);
            let before = next - Duration::seconds(1);
            if before > at {
                prop_assert_eq!(
                    b.is_business(before).unwrap(),
                    d.business_hours,
                    "changed before {}",
                    next
                );
            }
            let span = (next - at).num_seconds();
            for f in samples {
                let t = at + Duration::seconds((span as f64 * f) as i64);
                if t < next {
                    prop_assert_eq!(
                        b.is_business(t).unwrap(),
                        d.business_hours,
                        "changed at {} < {}",
                        t,
                        next
                    );
                }
            }
            // Brute force: minute by minute (and second by second in the last minute) when close.
            if span <= 3 * 86_400 {
                let mut t = at;
                while t + Duration::minutes(1) < next {
                    t += Duration::minutes(1);
                    prop_assert_eq!(
                        b.is_business(t).unwrap(),
                        d.business_hours,
                        "changed at {} < {}",
                        t,
                        next
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn decision_is_pure_and_next_transition_is_the_first_change(
        b in hours_strategy(),
        at in instant_strategy(),
        samples in proptest::collection::vec(0.0f64..1.0, 16),
    ) {
        check_first_change(&b, at, &samples)?;
    }

    #[test]
    fn next_transition_is_the_first_change_around_dst(
        (b, at) in around_clock_change(),
        samples in proptest::collection::vec(0.0f64..1.0, 16),
    ) {
        check_first_change(&b, at, &samples)?;
    }
}
