//! What a run came to, once everything is applied and the audit is written: the summary, the
//! figures and the exit code, as plain data (no I/O).

use std::time::Instant;

use chrono::Utc;

use super::pipeline::Tally;
use super::Finished;
use crate::context::Context;
use crate::error::Exit;
use crate::metrics::RunFigures;
use crate::resources::Requested;
use crate::summary::{Header, RowStatus, Summary};

/// How a run's audit, journal and Lease ended, and what it cost.
pub(super) struct Ended {
    /// Records handed to the audit table.
    pub audit_records: usize,
    /// Intents, final records or the journal of earlier runs that could not be written.
    pub audit_error: Option<String>,
    /// The runs whose audit this run closed, for the note.
    pub closed: Vec<String>,
    /// Windows of the fleet this run could not release (the next run reconciles them).
    pub windows_error: Option<String>,
    /// Why the run stopped, when it lost the Lease.
    pub lease_lost: Option<String>,
    /// Write requests sent to the API.
    pub writes: usize,
    pub started: Instant,
}

/// What a run came to: its summary, its figures and its exit code, from its tally and how it
/// ended. A failed namespace, an audit error or a lost Lease is exit 1; else a rejected
/// request is `on_rejection`.
pub(super) fn conclude(ctx: &Context, header: Header, tally: Tally, ended: Ended, on_rejection: Exit) -> Finished {
    let Tally {
        mut rows,
        mut counts,
        changed,
        unchanged,
        ..
    } = tally;
    if unchanged > 0 {
        counts.insert(RowStatus::Unchanged, unchanged);
    }
    rows.sort_by(|a, b| a.namespace.cmp(&b.namespace).then(a.action.cmp(&b.action)));
    let count = |s: RowStatus| counts.get(&s).copied().unwrap_or(0);
    let failed: usize = counts.iter().filter(|(s, _)| s.fails_the_run()).map(|(_, n)| n).sum();
    let exit =
        if failed > 0 || ended.audit_error.is_some() || ended.windows_error.is_some() || ended.lease_lost.is_some() {
            Exit::Failed
        } else if count(RowStatus::Rejected) > 0 {
            on_rejection
        } else {
            Exit::Ok
        };
    let not_processed = count(RowStatus::NotProcessed);
    let stopped = match &ended.lease_lost {
        Some(reason) => Some(format!(
            "stopped: {reason}; {not_processed} namespace(s) were not processed and keep their previous state"
        )),
        None => (not_processed > 0).then(|| {
            format!(
                "stopped by a signal: {not_processed} namespace(s) were not processed and keep their previous state"
            )
        }),
    };
    let note = stopped
        .into_iter()
        .chain(ended.closed)
        .chain(ended.windows_error)
        .reduce(|a, b| format!("{a}; {b}"));
    let freed: Requested = rows.iter().map(|r| r.freed).sum();
    let restored: Requested = rows.iter().map(|r| r.restored).sum();
    let duration_ms = ended.started.elapsed().as_millis() as u64;
    let figures = RunFigures {
        at: Utc::now(),
        cluster_name: ctx.config.cluster_name.clone(),
        command: header.command.to_string(),
        run_id: ctx.run_id.clone(),
        namespaces_changed: changed as u64,
        namespaces_failed: failed as u64,
        namespaces_rejected: count(RowStatus::Rejected) as u64,
        workloads_changed: rows
            .iter()
            .filter(|r| r.status == RowStatus::Completed)
            .map(|r| r.changes as u64)
            .sum(),
        freed,
        restored,
        duration_ms,
    };
    let summary = Summary {
        header,
        dry_run: false,
        namespaces_changed: changed,
        writes: ended.writes,
        counts,
        freed,
        restored,
        namespaces: rows,
        audit_records: ended.audit_records,
        audit_error: ended.audit_error,
        duration_ms,
        exit_code: exit as u8,
        note,
    };
    Finished::Applied {
        summary: Box::new(summary),
        figures,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::context::OutputFormat;
    use crate::summary::Row;

    fn ctx() -> Context {
        Context {
            config: crate::config::Config::from_vars([("POD_NAMESPACE", "task-scheduler")]).unwrap(),
            output: OutputFormat::Json,
            dry_run: false,
            run_id: "run-1".into(),
            stop: crate::scaling::stop::Stop::new(),
        }
    }

    fn header() -> Header {
        Header {
            command: "run",
            run_id: "run-1".into(),
            cluster: "eks-a".into(),
            at: "2026-11-25T23:00:00Z".into(),
            business_hours: Some(false),
            namespaces_managed: 3,
        }
    }

    fn ended(audit_error: Option<&str>, lease_lost: Option<&str>) -> Ended {
        Ended {
            audit_records: 2,
            audit_error: audit_error.map(str::to_string),
            closed: vec![],
            windows_error: None,
            lease_lost: lease_lost.map(str::to_string),
            writes: 7,
            started: Instant::now(),
        }
    }

    fn tally(statuses: &[RowStatus], unchanged: usize) -> Tally {
        let rows: Vec<Row> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| Row::decided(&format!("dev-{i}"), "IT", "down", *s, "why"))
            .collect();
        let mut counts = BTreeMap::new();
        for s in statuses {
            *counts.entry(*s).or_default() += 1;
        }
        Tally {
            rows,
            counts,
            changed: statuses.iter().filter(|s| **s == RowStatus::Completed).count(),
            unchanged,
            intents_written: 0,
        }
    }

    /// One run's ending: its rows, how its audit and Lease ended, and what it must come to.
    struct Case {
        name: &'static str,
        statuses: Vec<RowStatus>,
        audit_error: Option<&'static str>,
        lease_lost: Option<&'static str>,
        on_rejection: Exit,
        exit: Exit,
        note: Option<&'static str>,
    }

    fn case(name: &'static str, statuses: Vec<RowStatus>, on_rejection: Exit, exit: Exit) -> Case {
        Case {
            name,
            statuses,
            audit_error: None,
            lease_lost: None,
            on_rejection,
            exit,
            note: None,
        }
    }

    #[test]
    fn the_exit_code_and_the_note_follow_from_the_rows_the_audit_and_the_lease() {
        use RowStatus::*;
        let cases = [
            case("all completed", vec![Completed, Completed], Exit::Rejected, Exit::Ok),
            case("nothing to do", vec![], Exit::Rejected, Exit::Ok),
            case("a rejected up", vec![Rejected], Exit::Rejected, Exit::Rejected),
            case(
                "a request rejected by run",
                vec![Rejected, Completed],
                Exit::Ok,
                Exit::Ok,
            ),
            case("a skip is no failure", vec![Skipped], Exit::Ok, Exit::Ok),
            case("rolled back", vec![Completed, RolledBack], Exit::Ok, Exit::Failed),
            case(
                "failed beats rejected",
                vec![Failed, Rejected],
                Exit::Rejected,
                Exit::Failed,
            ),
            case("unanswered", vec![Unanswered], Exit::Ok, Exit::Failed),
            Case {
                note: Some("stopped by a signal: 1 namespace(s) were not processed and keep their previous state"),
                ..case("a signal", vec![Completed, NotProcessed], Exit::Ok, Exit::Failed)
            },
            Case {
                audit_error: Some("3 of 3 not written"),
                ..case("audit failed", vec![Completed], Exit::Ok, Exit::Failed)
            },
            Case {
                lease_lost: Some("the Lease was lost"),
                note: Some(
                    "stopped: the Lease was lost; 1 namespace(s) were not processed and keep their previous state",
                ),
                ..case("lease lost", vec![NotProcessed], Exit::Ok, Exit::Failed)
            },
        ];
        for c in cases {
            let name = c.name;
            let finished = conclude(
                &ctx(),
                header(),
                tally(&c.statuses, 1),
                ended(c.audit_error, c.lease_lost),
                c.on_rejection,
            );
            assert_eq!(finished.exit(), c.exit, "{name}");
            let Finished::Applied { summary, figures, .. } = finished else {
                panic!("{name}: not applied")
            };
            assert_eq!(summary.exit_code, c.exit as u8, "{name}");
            assert_eq!(summary.note.as_deref(), c.note, "{name}");
            assert_eq!(summary.counts.get(&Unchanged), Some(&1), "{name}");
            assert_eq!(summary.namespaces.len(), c.statuses.len(), "{name}");
            let failing = c.statuses.iter().filter(|s| s.fails_the_run()).count() as u64;
            assert_eq!(figures.namespaces_failed, failing, "{name}");
            assert_eq!(summary.audit_error.as_deref(), c.audit_error, "{name}");
        }
    }

    #[test]
    fn the_json_summary_keeps_its_field_values() {
        let finished = conclude(
            &ctx(),
            header(),
            tally(&[RowStatus::Skipped, RowStatus::Completed], 2),
            ended(None, None),
            Exit::Ok,
        );
        let Finished::Applied { summary, .. } = finished else {
            panic!("not applied")
        };
        let json = crate::summary::render_summary(OutputFormat::Json, &summary);
        // The counts in the order (alphabetical) and with the names they always had.
        assert!(
            json.contains(r#""counts":{"completed":1,"skipped":1,"unchanged":2}"#),
            "{json}"
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["namespaces"][0]["status"], "skipped");
        assert_eq!(v["namespaces"][1]["status"], "completed");
    }
}
