//! Per-namespace schedules (docs/reference.md §9): Madrid and Bogotá namespaces on one cluster, to the minute
//! across Europe's clock changes, holiday calendars, bad values, and the engine-facing
//! `ScheduleBook` agreeing with the offline `check --schedule` of the built binary.

use std::process::{Command, Output};

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc, Weekday};
use namespace_scheduler::config::Config;
use namespace_scheduler::hours::{clock, WeekdaySet, MINUTES_PER_DAY};
use namespace_scheduler::schedule::{NamespaceHours, ScheduleBook, ScheduleError, CLUSTER_SCHEDULE};
use proptest::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_namespace-scheduler");

/// The cluster's environment in every test: Bogotá 08-18 Mon-Fri, Colombian holidays, and one
/// configured holiday (Tuesday 2026-03-03) so "the cluster's calendar" is visibly more than CO.
const CLUSTER_ENV: [(&str, &str); 2] = [("POD_NAMESPACE", "task-scheduler"), ("BUSINESS_HOLIDAYS", "2026-03-03")];

const MADRID: &str = "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ES";

/// What the engine holds for one run at `at`.
fn book_at(at: DateTime<Utc>) -> ScheduleBook {
    let config = Config::from_vars(CLUSTER_ENV).unwrap();
    ScheduleBook::new(&config.business, at)
}

fn book(at: &str) -> ScheduleBook {
    book_at(instant(at))
}

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn decide(schedule: Option<&str>, at: &str) -> NamespaceHours {
    book(at).decide(schedule).unwrap()
}

fn business(schedule: Option<&str>, at: &str) -> bool {
    decide(schedule, at).business()
}

#[test]
fn a_madrid_namespace_and_a_bogota_namespace_disagree() {
    // Tuesday 10:00 in Madrid is 04:00 in Bogotá: Madrid up, the cluster's Bogotá hours down.
    let mut book = book("2026-03-10T10:00:00+01:00");
    let madrid = book.decide(Some(MADRID)).unwrap();
    let bogota = book.decide(None).unwrap();
    assert!(madrid.business(), "{madrid:?}");
    assert!(!bogota.business(), "{bogota:?}");
    assert_eq!(madrid.schedule, MADRID);
    assert_eq!(bogota.schedule, CLUSTER_SCHEDULE);
    assert_eq!(madrid.decision.local_time, "2026-03-10T10:00:00+01:00");
    assert_eq!(bogota.decision.local_time, "2026-03-10T04:00:00-05:00");
    assert_eq!(madrid.next_transition(), Some(instant("2026-03-10T19:00:00+01:00")));
    assert_eq!(bogota.next_transition(), Some(instant("2026-03-10T08:00:00-05:00")));

    // 18:00 in Madrid is 12:00 in Bogotá: a Madrid 08:00-18:00 namespace is down, Bogotá up.
    let at = "2026-03-10T18:00:00+01:00";
    assert!(!business(Some("Mon-Fri 08:00-18:00 Europe/Madrid holidays=ES"), at));
    assert!(business(None, at));
    // With the 07:00-19:00 schedule the reverse comes at 19:00 Madrid (13:00 Bogotá).
    assert!(business(Some(MADRID), at));
    assert!(!business(Some(MADRID), "2026-03-10T19:00:00+01:00"));
    assert!(business(None, "2026-03-10T19:00:00+01:00"));
}

#[test]
fn madrid_is_right_to_the_minute_on_both_sides_of_both_2026_clock_changes() {
    // Europe: 2026-03-29 and 2026-10-25 at 01:00Z. The weekdays either side, in their offsets.
    for (day, offset) in [
        ("2026-03-27", "+01:00"),
        ("2026-03-30", "+02:00"),
        ("2026-10-23", "+02:00"),
        ("2026-10-26", "+01:00"),
    ] {
        let local = |hms: &str| format!("{day}T{hms}{offset}");
        assert!(!business(Some(MADRID), &local("06:59:59")), "{day} 06:59");
        assert_eq!(
            decide(Some(MADRID), &local("06:59:00")).next_transition(),
            Some(instant(&local("07:00:00")))
        );
        assert!(business(Some(MADRID), &local("07:00:00")), "{day} 07:00");
        assert!(business(Some(MADRID), &local("18:59:59")), "{day} 18:59");
        assert_eq!(
            decide(Some(MADRID), &local("18:59:00")).next_transition(),
            Some(instant(&local("19:00:00")))
        );
        assert!(!business(Some(MADRID), &local("19:00:00")), "{day} 19:00");
    }
    // Across each weekend the next start lands in the new offset: 07:00 CEST = 05:00Z, 07:00 CET = 06:00Z.
    let d = decide(Some(MADRID), "2026-03-27T19:00:00+01:00");
    assert_eq!(d.next_transition(), Some(instant("2026-03-30T05:00:00Z")));
    let d = decide(Some(MADRID), "2026-10-23T19:00:00+02:00");
    assert_eq!(d.next_transition(), Some(instant("2026-10-26T06:00:00Z")));

    // Bogotá does not change: the cluster's 08:00 stays 13:00Z on both Mondays, so the gap to
    // Madrid is 7 hours in summer and 6 in winter.
    assert_eq!(
        decide(None, "2026-03-30T05:00:00Z").next_transition(),
        Some(instant("2026-03-30T13:00:00Z"))
    );
    assert_eq!(
        decide(None, "2026-10-26T06:00:00Z").next_transition(),
        Some(instant("2026-10-26T13:00:00Z"))
    );

    // On the change days themselves (Sundays), an every-day schedule.
    let daily = "Mon-Sun 07:00-19:00 Europe/Madrid holidays=none";
    assert!(!business(Some(daily), "2026-03-29T06:59:59+02:00"));
    assert!(business(Some(daily), "2026-03-29T07:00:00+02:00"));
    assert_eq!(
        decide(Some(daily), "2026-03-28T19:00:00+01:00").next_transition(),
        Some(instant("2026-03-29T05:00:00Z"))
    );
    assert!(!business(Some(daily), "2026-10-25T06:59:59+01:00"));
    assert!(business(Some(daily), "2026-10-25T07:00:00+01:00"));
    assert_eq!(
        decide(Some(daily), "2026-10-24T19:00:00+02:00").next_transition(),
        Some(instant("2026-10-25T06:00:00Z"))
    );
}

#[test]
fn a_start_inside_the_skipped_or_repeated_hour() {
    // 29 March: 02:00 CET jumps to 03:00 CEST, so 02:30 never happens; business starts when
    // the clock resumes at 03:00 (01:00Z).
    let s = "Mon-Sun 02:30-19:00 Europe/Madrid holidays=none";
    let d = decide(Some(s), "2026-03-29T00:30:00Z");
    assert!(!d.business());
    assert_eq!(d.next_transition(), Some(instant("2026-03-29T01:00:00Z")));
    assert!(!business(Some(s), "2026-03-29T00:59:59Z"));
    assert!(business(Some(s), "2026-03-29T01:00:00Z"));
    // 25 October: 02:30 happens twice; business starts at the first (02:30 CEST = 00:30Z).
    let d = decide(Some(s), "2026-10-25T00:00:00Z");
    assert_eq!(d.next_transition(), Some(instant("2026-10-25T02:30:00+02:00")));
    assert!(business(Some(s), "2026-10-25T02:30:00+01:00"));
}

#[test]
fn minutes_are_honoured_at_each_edge() {
    let s = "Mon-Fri 07:30-19:45 Europe/Madrid holidays=ES";
    let at = |hm: &str| format!("2026-03-10T{hm}:00+01:00");
    assert!(!business(Some(s), &at("07:29")));
    assert!(business(Some(s), &at("07:30")));
    assert!(business(Some(s), &at("19:44")));
    assert!(!business(Some(s), &at("19:45")));
    let d = decide(Some(s), &at("07:29"));
    assert_eq!(d.decision.reason, "before 07:30 (business hours 07:30-19:45)");
    assert_eq!(d.next_transition(), Some(instant(&at("07:30"))));
    assert_eq!(
        decide(Some(s), &at("19:44")).next_transition(),
        Some(instant(&at("19:45")))
    );

    // An end of 24:00 runs to midnight; Friday night ends at Saturday 00:00.
    let late = "Mon-Fri 20:15-24:00 Europe/Madrid holidays=none";
    assert!(business(Some(late), "2026-03-13T23:59:59+01:00"));
    let d = decide(Some(late), "2026-03-13T21:00:00+01:00");
    assert_eq!(d.decision.reason, "business day within 20:15-24:00");
    assert_eq!(d.next_transition(), Some(instant("2026-03-14T00:00:00+01:00")));
    let d = decide(Some(late), "2026-03-14T00:00:00+01:00");
    assert!(!d.business());
    assert_eq!(d.next_transition(), Some(instant("2026-03-16T20:15:00+01:00")));
}

#[test]
fn holidays_come_from_the_named_country_none_or_the_cluster() {
    // Tue 2026-01-06 is Epiphany in Spain (Colombia moves it to Monday 12 January).
    let es = decide(Some(MADRID), "2026-01-06T10:00:00+01:00");
    assert!(!es.business());
    assert_eq!(es.decision.holiday.as_deref(), Some("Epifanía del Señor"));
    assert_eq!(es.decision.reason, "holiday: Epifanía del Señor");
    assert!(business(Some(MADRID), "2026-01-12T10:00:00+01:00"));
    assert!(
        business(Some(MADRID), "2026-03-03T10:00:00+01:00"),
        "configured dates are the cluster's"
    );

    let co = "Mon-Fri 07:00-19:00 Europe/Madrid holidays=CO";
    assert!(business(Some(co), "2026-01-06T10:00:00+01:00"));
    assert!(!business(Some(co), "2026-01-12T10:00:00+01:00"));
    assert!(business(Some(co), "2026-03-03T10:00:00+01:00"));

    let none = "Mon-Fri 07:00-19:00 Europe/Madrid holidays=none";
    for day in ["2026-01-06", "2026-01-12", "2026-03-03", "2026-12-25"] {
        let d = decide(Some(none), &format!("{day}T10:00:00+01:00"));
        assert!(d.business(), "{day}: {d:?}");
        assert_eq!(d.decision.holiday, None);
    }

    // No holidays=: the cluster's calendar, Colombia and BUSINESS_HOLIDAYS both.
    let default = "Mon-Fri 07:00-19:00 Europe/Madrid";
    assert!(business(Some(default), "2026-01-06T10:00:00+01:00"));
    let d = decide(Some(default), "2026-01-12T10:00:00+01:00");
    assert_eq!(d.decision.holiday.as_deref(), Some("Día de los Reyes Magos"));
    let d = decide(Some(default), "2026-03-03T10:00:00+01:00");
    assert!(!d.business());
    assert_eq!(d.decision.holiday.as_deref(), Some("Feriado configurado"));
}

#[test]
fn bad_schedules_are_that_namespaces_error_and_others_still_decide() {
    let huge = "Mon-Fri ".repeat(10_000);
    let cases: [(&str, &str); 7] = [
        (
            "Mon-Fri 25:00-19:00 Europe/Madrid",
            r#""25:00": not a time 00:00-24:00"#,
        ),
        ("Mon-Fri 07:00-19:00 Mars/Base", r#""Mars/Base": not an IANA time zone"#),
        (
            "Mon-Fry 07:00-19:00 Europe/Madrid",
            r#"unknown weekday "Fry" in "Mon-Fry""#,
        ),
        (
            "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ZZ",
            r#""holidays=ZZ": unknown country"#,
        ),
        (
            "Mon-Fri 19:00-07:00 Europe/Madrid",
            "end 07:00 is not after start 19:00",
        ),
        ("business hours please", r#"unknown weekday "business" in "business""#),
        (&huge, "schedule is 80000 bytes long; at most 256"),
    ];
    let mut book = book("2026-03-10T10:00:00+01:00");
    for (text, want) in cases {
        let err = book.decide(Some(text)).unwrap_err();
        assert!(err.to_string().contains(want), "{err} does not contain {want}");
        assert!(!matches!(err, ScheduleError::Calendar(_)));
        // The namespace next to it is decided as ever.
        assert!(book.decide(Some(MADRID)).unwrap().business());
        assert!(!book.decide(None).unwrap().business());
    }
    assert_eq!(book.distinct_schedules(), 2);
}

// ---- the binary ------------------------------------------------------------------------------

fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "text")
        .args(args);
    for (k, v) in CLUSTER_ENV {
        cmd.env(k, v);
    }
    cmd.output().expect("run the binary")
}

fn check_json(schedule: &str, at: DateTime<Utc>) -> serde_json::Value {
    let at = at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let o = run(&["check", "--schedule", schedule, "--at", &at, "--output", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn check_schedule_prints_the_decision_and_which_schedule() {
    let v = check_json(
        " Mon - Fri 07:00-19:00  Europe/Madrid holidays=es",
        instant("2026-03-10T10:00:00+01:00"),
    );
    assert_eq!(v["schedule"], MADRID);
    assert_eq!(v["business_hours"], true);
    assert_eq!(v["timezone"], "Europe/Madrid");
    assert_eq!(v["local_time"], "2026-03-10T10:00:00+01:00");
    assert_eq!(v["weekday"], "Tuesday");
    assert_eq!(v["reason"], "business day within 07:00-19:00");
    assert_eq!(v["next_transition"], "2026-03-10T18:00:00Z");
    assert!(v["protected_namespaces"].is_array());

    let o = run(&["check", "--schedule", MADRID, "--at", "2026-01-06T10:00:00+01:00"]);
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!("schedule:        {MADRID}\n")), "{text}");
    assert!(text.contains("holiday:         Epifanía del Señor\n"), "{text}");
    assert!(text.contains("business_hours:  no\n"), "{text}");

    let o = run(&["check", "--at", "2026-03-10T10:00:00+01:00"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("schedule:        cluster\n"));
}

#[test]
fn check_schedule_with_a_bad_value_exits_2_with_one_line_naming_the_bad_part() {
    for (value, want) in [
        (
            "Mon-Fri 25:00-19:00 Europe/Madrid",
            r#""25:00": not a time 00:00-24:00"#,
        ),
        (
            "Mon-Fry 07:00-19:00 Europe/Madrid",
            r#"unknown weekday "Fry" in "Mon-Fry""#,
        ),
        ("Mon-Fri 07:00-19:00 Mars/Base", r#""Mars/Base": not an IANA time zone"#),
        (
            "Mon-Fri 07:00-19:00 Europe/Madrid holidays=ZZ",
            r#""holidays=ZZ": unknown country"#,
        ),
    ] {
        let o = run(&["check", "--schedule", value, "--output", "json"]);
        assert_eq!(o.status.code(), Some(2), "{value}");
        assert!(
            o.stdout.is_empty(),
            "{value}: stdout {:?}",
            String::from_utf8_lossy(&o.stdout)
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        let line = stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with("namespace-scheduler: invalid --schedule="), "{stderr}");
        assert!(line.contains(want), "{value}: {line}");
    }
    // A year the `holidays` data does not cover: an error, never "no holiday".
    let o = run(&["check", "--schedule", MADRID, "--at", "2040-03-06T10:00:00Z"]);
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("ES") && stderr.contains("2040"), "{stderr}");
}

// ---- property: the engine-facing book agrees with the offline check --------------------------

/// A few zones, with and without clock changes.
const ZONES: [&str; 6] = [
    "Europe/Madrid",
    "America/Bogota",
    "America/New_York",
    "Australia/Lord_Howe", // 30-minute DST
    "America/Santiago",    // DST at midnight
    "Asia/Kolkata",
];

const HOLIDAYS: [&str; 4] = ["", " holidays=none", " holidays=CO", " holidays=ES"];

fn schedule_strategy() -> impl Strategy<Value = String> {
    (
        1u8..128,
        any::<bool>(),
        0u32..MINUTES_PER_DAY,
        1u32..=MINUTES_PER_DAY,
        0..ZONES.len(),
        0..HOLIDAYS.len(),
    )
        .prop_map(|(bits, listed, start, span, zone, holidays)| {
            let days: Vec<Weekday> = (0..7u8)
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| Weekday::try_from(i).unwrap())
                .collect();
            let set = WeekdaySet::from_days(&days);
            // Both spellings the parser accepts: a compact form and a plain list.
            let days = if listed {
                days.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
            } else {
                set.to_compact_string()
            };
            let end = (start + span).min(MINUTES_PER_DAY);
            format!(
                "{days} {}-{} {}{}",
                clock(start),
                clock(end),
                ZONES[zone],
                HOLIDAYS[holidays]
            )
        })
}

/// Whole seconds in 2026-2029 (inside the `holidays` data's years, even a year ahead), half of
/// them within two days of a European or American clock change.
fn instant_strategy() -> impl Strategy<Value = DateTime<Utc>> {
    let changes: Vec<DateTime<Utc>> = [
        "2026-03-08T07:00:00Z",
        "2026-03-29T01:00:00Z",
        "2026-04-05T03:00:00Z",
        "2026-10-25T01:00:00Z",
        "2026-11-01T06:00:00Z",
        "2027-03-28T01:00:00Z",
        "2027-10-31T01:00:00Z",
    ]
    .iter()
    .map(|s| instant(s))
    .collect();
    prop_oneof![
        (1_767_225_600i64..1_893_456_000).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap()),
        (prop::sample::select(changes), -2 * 86_400i64..2 * 86_400).prop_map(|(c, s)| c + Duration::seconds(s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_book_decides_exactly_what_check_schedule_prints(
        schedule in schedule_strategy(),
        at in instant_strategy(),
    ) {
        let decided = book_at(at).decide(Some(&schedule)).unwrap();
        let mut want = serde_json::to_value(&decided.decision).unwrap();
        want["schedule"] = decided.schedule.clone().into();
        let mut got = check_json(&schedule, at);
        got.as_object_mut().unwrap().remove("protected_namespaces");
        prop_assert_eq!(&got, &want, "{} at {}", schedule, at);
    }
}
