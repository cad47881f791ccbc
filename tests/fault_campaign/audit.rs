//! The audit invariants of one finished (not SIGKILLed) run, read back from DynamoDB Local or
//! from the records the run logged whole.

use std::collections::BTreeMap;

use namespace_scheduler::audit::AuditRecord;

use crate::runner::{self, Outcome};
use crate::world::{Snapshot, World};
use crate::Env;

/// This run's records for `ns`: started within its lifetime, and of its run id when it printed one.
fn records_of(env: &Env, ns: &str, out: &Outcome) -> Vec<AuditRecord> {
    let run_id = out.summary().and_then(|s| s["run_id"].as_str().map(str::to_string));
    env.rt
        .block_on(runner::audited(
            &env.dynamo,
            &env.audit,
            ns,
            out.t0 - 0.01,
            out.t1 + 0.01,
        ))
        .into_iter()
        .filter(|r| run_id.as_ref().is_none_or(|id| *id == r.run_id))
        .collect()
}

/// Each namespace that changed, and each namespace the summary reports as completed, rolled
/// back or failed, has a record of this run in the table or logged whole (and then the exit code
/// is 1); completed records say what the cluster now holds (refused objects excepted: they say
/// what was wanted, and why not).
pub fn check(
    env: &Env,
    w: &World,
    (before, after): (&Snapshot, &Snapshot),
    out: &Outcome,
    bad: &mut Vec<String>,
    tally: &mut BTreeMap<String, u64>,
) {
    let rows: BTreeMap<String, String> = out.rows().into_iter().collect();
    let logged = out.logged_records();
    for ns in &w.managed {
        let changed = !w.ns_same(before, after, ns);
        let row = rows.get(ns).map(String::as_str);
        let expected: &[&str] = match row {
            Some(s @ ("completed" | "rolled_back" | "failed")) if !changed => {
                if s == "completed" {
                    // Only the namespace label changed (e.g. a crash left it behind): still audited.
                    &["completed"]
                } else {
                    &["rolled_back", "failed"]
                }
            }
            _ if changed => &["completed", "failed"],
            _ => continue,
        };
        let records = records_of(env, ns, out);
        let in_table = records.iter().any(|r| expected.contains(&r.status.as_str()));
        let in_log = logged.iter().any(|(n, s)| n == ns && expected.contains(&s.as_str()));
        let how = match (in_table, in_log) {
            (true, _) => "in the audit table",
            (false, true) => "logged whole (DynamoDB unreachable)",
            _ => "missing",
        };
        *tally.entry(how.to_string()).or_default() += 1;
        let logged_and_failed = in_log && out.code == Some(1);
        if !(in_table || logged_and_failed) {
            bad.push(format!(
                "{ns}: {} (summary row: {row:?}) but no audit record with status {expected:?} in the table{} ({})",
                if changed { "changed" } else { "reported" },
                if in_log { ", only in the log" } else { " nor in the log" },
                out.describe()
            ));
        }
        for r in records.iter().filter(|r| r.status.as_str() == "completed") {
            for res in r.resources.iter().filter(|res| res.skipped.is_none()) {
                let Some(wl) = w
                    .in_ns(ns)
                    .find(|x| x.name == res.name && format!("{:?}", x.kind) == res.kind)
                else {
                    continue;
                };
                let holds = wl.kind.shown(after[&wl.id()].value);
                if holds != res.to {
                    bad.push(format!(
                        "{ns}: audit says {} {} → {} (completed) but the cluster holds {holds}",
                        res.kind, res.name, res.to
                    ));
                }
            }
        }
    }
}

/// A refused object is named in its namespace's record of this run (table, or logged whole),
/// as skipped with the API's message.
pub fn check_refusal_named(env: &Env, ns: &str, name: &str, message: &str, out: &Outcome) -> Result<(), String> {
    let in_table = records_of(env, ns, out).iter().any(|r| {
        r.resources
            .iter()
            .any(|res| res.name == name && res.skipped.as_deref().is_some_and(|m| m.contains(message)))
    });
    let in_log = out.logged_record_values().iter().any(|r| {
        r["namespace_name"] == ns
            && r["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|res| res["name"] == name && res["skipped"].as_str().is_some_and(|m| m.contains(message)))
    });
    if in_table || in_log {
        Ok(())
    } else {
        Err(format!(
            "{ns}: refused {name} is not named (skipped, with the API's message) in this run's audit record"
        ))
    }
}

/// The write-ahead audit, once the run after `out` has closed whatever `out` left open: every
/// namespace `out` changed has exactly one record of it, and none of its records is still
/// `in_progress` (a SIGKILLed run's intents are closed as `interrupted`). With DynamoDB
/// unreachable the records are in the log instead (checked by [`check`]), none in the table.
pub fn check_exactly_once(
    env: &Env,
    w: &World,
    (before, after): (&Snapshot, &Snapshot),
    out: &Outcome,
    outage: bool,
    bad: &mut Vec<String>,
) {
    for ns in &w.managed {
        let records = records_of(env, ns, out);
        let open: Vec<&AuditRecord> = records.iter().filter(|r| !r.status.is_final()).collect();
        if !open.is_empty() {
            bad.push(format!(
                "{ns}: {} record(s) of the run ({}) still in_progress after the next run: {open:?}",
                open.len(),
                out.describe()
            ));
        }
        if w.ns_same(before, after, ns) {
            continue;
        }
        let want = usize::from(!outage);
        if records.len() != want {
            bad.push(format!(
                "{ns} changed, with {} record(s) of the run ({}) in the table, want {want}: {records:?}",
                records.len(),
                out.describe()
            ));
        }
    }
}
