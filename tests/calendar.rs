//! Holiday calendars against golden data, and the `calendar` / `check` commands as whole processes.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

use chrono::{Datelike, NaiveDate};
use namespace_scheduler::calendar::HolidayCalendar;

const GOLDEN: &str = include_str!("fixtures/colombia-holidays-1984-2100.tsv");

/// year → date → names, from the python-holidays reference (see the fixture's header).
fn golden() -> BTreeMap<i32, BTreeMap<NaiveDate, Vec<String>>> {
    let mut out: BTreeMap<i32, BTreeMap<NaiveDate, Vec<String>>> = BTreeMap::new();
    for line in GOLDEN.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (date, names) = line.split_once('\t').expect("date<TAB>names");
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        let names = names.split("; ").map(str::to_string).collect();
        out.entry(date.year()).or_default().insert(date, names);
    }
    out
}

fn colombia() -> HolidayCalendar {
    HolidayCalendar::new(Some("CO"), None, BTreeSet::new()).unwrap()
}

#[test]
fn colombia_matches_the_reference_for_every_year_1984_to_2100() {
    let golden = golden();
    assert_eq!(
        golden.keys().copied().collect::<Vec<_>>(),
        (1984..=2100).collect::<Vec<_>>()
    );
    let cal = colombia();
    for (year, expected) in &golden {
        let ours = cal.holidays_in_year(*year).unwrap();
        let our_dates: Vec<_> = ours.keys().collect();
        let ref_dates: Vec<_> = expected.keys().collect();
        assert_eq!(our_dates, ref_dates, "{year}: dates differ");
        for (date, names) in expected {
            let mut want = names.clone();
            let mut got = ours[date].clone();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{date}: names differ");
        }
    }
}

#[test]
fn the_reference_has_the_cases_we_rely_on() {
    let golden = golden();
    // 18 holidays a year under Ley 51 de 1983, 19 from 2026 (Ley 2578 de 2026).
    for (year, days) in &golden {
        let count: usize = days.values().map(Vec::len).sum();
        assert_eq!(count, if *year >= 2026 { 19 } else { 18 }, "{year}");
    }
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
    assert_eq!(
        golden[&2025][&d(2025, 6, 30)],
        ["Sagrado Corazón", "San Pedro y San Pablo"]
    );
    assert_eq!(
        golden[&2026][&d(2026, 7, 13)],
        ["Nuestra Señora del Rosario de Chiquinquirá"]
    );
    assert!(!golden[&2025].values().flatten().any(|n| n.contains("Chiquinquirá")));
}

/// A third opinion where it has data: the `holidays` crate's table (2000-2030, built from an older
/// python-holidays that predates Ley 2578 de 2026, so Chiquinquirá is left out of the comparison).
#[test]
fn colombia_matches_the_holidays_crate_where_it_has_data() {
    let mut map = holidays::Builder::new()
        .countries(&[holidays::Country::CO])
        .build()
        .unwrap();
    let table = map.remove(&holidays::Country::CO).unwrap();
    assert!(table.len() >= 20);
    let cal = colombia();
    for (year, days) in table {
        let crate_dates: BTreeSet<NaiveDate> = days.keys().copied().collect();
        let ours: BTreeSet<NaiveDate> = cal
            .holidays_in_year(year)
            .unwrap()
            .into_iter()
            .filter(|(_, names)| !names.iter().all(|n| n.contains("Chiquinquirá")))
            .map(|(date, _)| date)
            .collect();
        assert_eq!(ours, crate_dates, "{year}");
    }
}

// ---- the binary ----------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_namespace-scheduler");

/// Runs the binary with a controlled environment (only PATH plus `env`).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "text")
        .env("POD_NAMESPACE", "task-scheduler")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn calendar_2026_prints_every_holiday_sorted() {
    let o = run(&["calendar", "--year", "2026"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let expected = "\
2026-01-01\tAño Nuevo
2026-01-12\tDía de los Reyes Magos
2026-03-23\tDía de San José
2026-04-02\tJueves Santo
2026-04-03\tViernes Santo
2026-05-01\tDía del Trabajo
2026-05-18\tAscensión del Señor
2026-06-08\tCorpus Christi
2026-06-15\tSagrado Corazón
2026-06-29\tSan Pedro y San Pablo
2026-07-13\tNuestra Señora del Rosario de Chiquinquirá
2026-07-20\tDía de la Independencia
2026-08-07\tBatalla de Boyacá
2026-08-17\tLa Asunción de la Virgen
2026-10-12\tDía de la Raza
2026-11-02\tDía de Todos los Santos
2026-11-16\tIndependencia de Cartagena
2026-12-08\tInmaculada Concepción
2026-12-25\tNavidad
";
    assert_eq!(stdout(&o), expected);
}

#[test]
fn calendar_joins_two_holidays_on_one_line_and_merges_configured_dates() {
    let o = run(
        &["calendar", "--year", "2025"],
        &[("BUSINESS_HOLIDAYS", "2025-12-24,2025-12-25")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("2025-06-30\tSagrado Corazón; San Pedro y San Pablo\n"),
        "{out}"
    );
    assert!(out.contains("2025-12-24\tFeriado configurado\n"), "{out}");
    assert!(out.contains("2025-12-25\tNavidad; Feriado configurado\n"), "{out}");
    assert_eq!(out.lines().count(), 18);
}

#[test]
fn calendar_country_flag_and_its_errors() {
    // Another country: the configured Colombian extras do not apply.
    let o = run(
        &["calendar", "--year", "2026", "--country", "US"],
        &[("BUSINESS_HOLIDAYS", "2026-12-24")],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("2026-01-01\t"), "{out}");
    assert!(!out.contains("Feriado configurado"), "{out}");
    assert!(out.contains("2026-07-03\t") || out.contains("2026-07-04\t"), "{out}");

    let o = run(&["calendar", "--year", "2031", "--country", "US"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("US") && err.contains("2031") && err.contains("2000-2030"),
        "{err}"
    );

    let o = run(&["calendar", "--country", "ZZ"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--country") && stderr(&o).contains("ZZ"),
        "{}",
        stderr(&o)
    );

    let o = run(&["calendar", "--year", "2026", "--subdivision", "ANT"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--subdivision") && stderr(&o).contains("ANT"),
        "{}",
        stderr(&o)
    );

    let o = run(&["calendar", "--year", "1983"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("1983") && stderr(&o).contains("1984"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_json_reports_the_decision() {
    let o = run(&["check", "--at", "2026-01-12T10:00:00-05:00", "--output", "json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["timezone"], "America/Bogota");
    assert_eq!(v["local_time"], "2026-01-12T10:00:00-05:00");
    assert_eq!(v["weekday"], "Monday");
    assert_eq!(v["business_hours"], false);
    assert_eq!(v["holiday"], "Día de los Reyes Magos");
    assert_eq!(v["reason"], "holiday: Día de los Reyes Magos");
    assert_eq!(v["next_transition"], "2026-01-13T13:00:00Z");

    let o = run(&["check", "--at", "2026-01-13T08:00:00-05:00", "--output", "json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["business_hours"], true);
    assert_eq!(v["holiday"], serde_json::Value::Null);
    assert_eq!(v["next_transition"], "2026-01-13T23:00:00Z");
}

#[test]
fn check_json_prints_the_effective_protected_namespaces() {
    let protected = |env: &[(&str, &str)]| -> Vec<String> {
        let o = run(&["check", "--output", "json"], env);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        serde_json::from_value(v["protected_namespaces"].clone()).expect("an array of names")
    };
    let defaults = protected(&[]);
    assert_eq!(defaults.len(), 15, "{defaults:?}");
    assert!(defaults.contains(&"argocd".to_string()) && defaults.contains(&"task-scheduler".to_string()));
    // A custom list keeps the floor and the scheduler's own namespace.
    assert_eq!(
        protected(&[("PROTECTED_NAMESPACES", "dev-shared"), ("POD_NAMESPACE", "ops")]),
        ["dev-shared", "kube-node-lease", "kube-public", "kube-system", "ops"]
    );
}

#[test]
fn check_text_is_aligned_key_value_lines() {
    let o = run(&["check", "--at", "2026-03-07T10:00:00-05:00"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 6, "{out}");
    // Every value starts in the same column, after "key:" and padding.
    let value_column = |line: &str| {
        let colon = line.find(':').expect("key: value");
        colon + 1 + line[colon + 1..].find(|c: char| c != ' ').expect("a value")
    };
    let column = value_column(lines[0]);
    for line in &lines {
        assert_eq!(value_column(line), column, "{out}");
    }
    assert!(out.contains("business_hours:  no\n"), "{out}");
    assert!(out.contains("weekend (Saturday)"), "{out}");
}

#[test]
fn bad_configuration_exits_2_naming_variable_and_value() {
    let o = run(&["check"], &[("BUSINESS_START_HOUR", "25")]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("BUSINESS_START_HOUR") && err.contains("25"), "{err}");
    assert!(o.stdout.is_empty());

    let o = run(&["calendar"], &[("BUSINESS_HOLIDAYS_COUNTRY", "ZZ")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("BUSINESS_HOLIDAYS_COUNTRY") && stderr(&o).contains("ZZ"));

    let o = run(&["check"], &[("BUSINESS_HOLIDAYS_SUBDIVISION", "DC")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("BUSINESS_HOLIDAYS_SUBDIVISION") && stderr(&o).contains("DC"));
}

#[test]
fn csv_output_is_refused() {
    for args in [&["check", "--output", "csv"][..], &["calendar", "--output", "csv"][..]] {
        let o = run(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("csv"), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn check_without_at_uses_now_and_needs_no_credentials() {
    let o = run(&["check", "--output", "json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["business_hours"].is_boolean());
    assert!(v["next_transition"].is_string());
}
