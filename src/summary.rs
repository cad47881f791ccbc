//! What a run prints on stdout: the plan (`--dry-run`) or one summary, as text or one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::context::OutputFormat;
use crate::scaling::plan::NamespacePlan;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub namespace: String,
    pub cost_center: String,
    /// `up`, `down`, or `activate` for a rejected request.
    pub action: String,
    /// Workloads changed.
    pub changes: usize,
    /// Workloads skipped by rule (excluded, operator-owned, off on purpose).
    pub skipped: usize,
    /// Objects the API refused to change (left as they are; tried again next run).
    pub refused: usize,
    pub status: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub command: &'static str,
    pub run_id: String,
    pub cluster: String,
    /// The instant the decision was made for (RFC 3339).
    pub at: String,
    pub business_hours: Option<bool>,
    pub namespaces_managed: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    #[serde(flatten)]
    pub header: Header,
    pub dry_run: bool,
    pub namespaces_changed: usize,
    /// Write requests sent to the API (retries included; Events and the Lease not counted).
    pub writes: usize,
    /// Namespace count per status.
    pub counts: BTreeMap<String, usize>,
    /// Namespaces that changed, failed, were rejected or were not processed (unchanged ones
    /// are only counted, so a no-op run over thousands of namespaces stays one short line).
    pub namespaces: Vec<Row>,
    pub audit_records: usize,
    pub audit_error: Option<String>,
    pub duration_ms: u64,
    pub exit_code: u8,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct PlanDoc<'a> {
    #[serde(flatten)]
    header: &'a Header,
    dry_run: bool,
    writes: usize,
    /// Namespaces with something to change or to report (unchanged ones are only counted).
    namespaces: Vec<&'a NamespacePlan>,
    /// Namespaces decided before planning: rejected requests, namespaces left alone.
    not_planned: Vec<&'a Row>,
    unchanged: usize,
}

/// The plan of a dry run, with the rows decided before planning (rejected requests, namespaces
/// left alone) in `extra`.
pub fn render_plan<R>(format: OutputFormat, header: &Header, plans: &[NamespacePlan], extra: &[(R, Row)]) -> String {
    let extra: Vec<&Row> = extra.iter().map(|(_, row)| row).collect();
    let shown: Vec<&NamespacePlan> = plans.iter().filter(|p| !p.is_noop() || !p.skipped.is_empty()).collect();
    let writes = plans.iter().map(NamespacePlan::writes).sum();
    let unchanged = plans.iter().filter(|p| p.is_noop()).count();
    if format == OutputFormat::Json {
        let doc = PlanDoc {
            header,
            dry_run: true,
            writes,
            namespaces: shown,
            not_planned: extra,
            unchanged,
        };
        return serde_json::to_string(&doc).expect("plan serializes");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "DRY RUN {} at {} (business hours: {}): {} write(s) planned in {} namespace(s); {} unchanged",
        header.command,
        header.at,
        header.business_hours.map_or("n/a".into(), |b| b.to_string()),
        writes,
        plans.len() - unchanged,
        unchanged
    );
    for p in shown {
        let _ = writeln!(
            out,
            "\n{} [{}] -> {} ({}, requested by {})",
            p.namespace,
            p.cost_center,
            p.target.as_str(),
            p.operation,
            p.requested_by
        );
        for c in &p.changes {
            let _ = writeln!(out, "  {:<12} {:<40} {} -> {}", c.kind.as_str(), c.name, c.from, c.to);
        }
        for s in &p.skipped {
            let _ = writeln!(out, "  {:<12} {:<40} skipped: {}", s.kind.as_str(), s.name, s.reason);
        }
        if let Some(nc) = &p.namespace_change {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  {:<12} {:<40} status {} -> {}, active-until {} -> {}",
                "Namespace",
                p.namespace,
                show(&nc.before.status),
                show(&nc.after.status),
                show(&nc.before.active_until),
                show(&nc.after.active_until)
            );
            if nc.after.request_status != nc.before.request_status {
                let _ = writeln!(
                    out,
                    "  {:<12} {:<40} request: {}",
                    "",
                    "",
                    show(&nc.after.request_status)
                );
            }
        }
        if p.at_target > 0 {
            let _ = writeln!(out, "  ({} workload(s) already at target)", p.at_target);
        }
    }
    for r in extra {
        let _ = writeln!(
            out,
            "\n{} [{}] {}: {}",
            r.namespace,
            r.cost_center,
            r.status,
            r.error.as_deref().unwrap_or("")
        );
    }
    out
}

pub fn render_summary(format: OutputFormat, s: &Summary) -> String {
    if format == OutputFormat::Json {
        return serde_json::to_string(s).expect("summary serializes");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} at {} (business hours: {}) on {}, run {}",
        s.header.command,
        s.header.at,
        s.header.business_hours.map_or("n/a".into(), |b| b.to_string()),
        s.header.cluster,
        s.header.run_id
    );
    if !s.namespaces.is_empty() {
        let _ = writeln!(
            out,
            "{:<32} {:<22} {:<9} {:>7} {:>7} {:>7}  STATUS",
            "NAMESPACE", "COST CENTER", "ACTION", "CHANGES", "SKIPPED", "REFUSED"
        );
        for r in &s.namespaces {
            let _ = write!(
                out,
                "{:<32} {:<22} {:<9} {:>7} {:>7} {:>7}  {}",
                r.namespace, r.cost_center, r.action, r.changes, r.skipped, r.refused, r.status
            );
            if let Some(e) = &r.error {
                let _ = write!(out, " ({e})");
            }
            out.push('\n');
        }
    }
    let counts: Vec<String> = s.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "{} managed namespace(s): {}; {} write(s); {} audit record(s){}; {} ms; exit {}",
        s.header.namespaces_managed,
        if counts.is_empty() {
            "nothing to do".into()
        } else {
            counts.join(" ")
        },
        s.writes,
        s.audit_records,
        s.audit_error
            .as_ref()
            .map(|e| format!(" (AUDIT FAILED: {e})"))
            .unwrap_or_default(),
        s.duration_ms,
        s.exit_code
    );
    if let Some(note) = &s.note {
        let _ = writeln!(out, "{note}");
    }
    out
}
