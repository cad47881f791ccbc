//! What a run prints on stdout: the plan (`--dry-run`) or one summary, as text or one JSON object,
//! with what the downs free and the ups restore (vCPU and GiB requested by the pods removed or
//! brought back) per namespace and in total.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::context::OutputFormat;
use crate::resources::Requested;
use crate::scaling::apply::NsStatus;
use crate::scaling::plan::{NamespacePlan, ResourceTotals, Skipped};

/// What became of one namespace in a run: how its apply ended, or why it was not applied.
/// Declared in alphabetical order: [`Summary::counts`] is keyed by it, and both summaries list
/// the counts in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// Applied: every write done, or refused for good.
    Completed,
    /// A write failed and the namespace was left partly changed.
    Failed,
    /// Not started: the run was stopped.
    NotProcessed,
    /// A request refused before anything was touched.
    Rejected,
    /// A write failed; every applied change was reverted.
    RolledBack,
    /// Left exactly as it is (its schedule does not parse).
    Skipped,
    /// A request whose answer could not be decided or written: it stays pending.
    Unanswered,
    /// Nothing to change (only counted, no row).
    Unchanged,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Completed => "completed",
            RowStatus::Failed => "failed",
            RowStatus::NotProcessed => "not_processed",
            RowStatus::Rejected => "rejected",
            RowStatus::RolledBack => "rolled_back",
            RowStatus::Skipped => "skipped",
            RowStatus::Unanswered => "unanswered",
            RowStatus::Unchanged => "unchanged",
        }
    }

    /// A namespace in this state fails the run (exit 1).
    pub fn fails_the_run(self) -> bool {
        matches!(
            self,
            RowStatus::RolledBack | RowStatus::Failed | RowStatus::NotProcessed | RowStatus::Unanswered
        )
    }
}

impl std::fmt::Display for RowStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<NsStatus> for RowStatus {
    fn from(s: NsStatus) -> Self {
        match s {
            NsStatus::Completed => RowStatus::Completed,
            NsStatus::Unchanged => RowStatus::Unchanged,
            NsStatus::RolledBack => RowStatus::RolledBack,
            NsStatus::Failed => RowStatus::Failed,
            NsStatus::NotProcessed => RowStatus::NotProcessed,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub namespace: String,
    pub cost_center: String,
    /// `up`, `down`, `activate` for a rejected request, `-` for a namespace left alone.
    pub action: String,
    /// Which hours decided: `cluster` or the namespace's own schedule.
    pub schedule: String,
    /// Workloads changed.
    pub changes: usize,
    /// Workloads skipped by rule (excluded, operator-owned, off on purpose).
    pub skipped: usize,
    /// Objects the API refused to change (left as they are; tried again next run).
    pub refused: usize,
    /// What the changes made freed (downs) and restored (ups).
    pub freed: Requested,
    pub restored: Requested,
    pub status: RowStatus,
    pub error: Option<String>,
    /// Workloads left as they are because our annotation on them does not read (also named in
    /// `error`): until someone fixes them, named at every run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<Skipped>,
}

impl Row {
    /// A namespace decided before planning (a rejected request, one left alone).
    pub fn decided(namespace: &str, cost_center: &str, action: &str, status: RowStatus, why: &str) -> Row {
        Row {
            namespace: namespace.to_string(),
            cost_center: cost_center.to_string(),
            action: action.to_string(),
            schedule: String::new(),
            changes: 0,
            skipped: 0,
            refused: 0,
            freed: Requested::default(),
            restored: Requested::default(),
            status,
            error: Some(why.to_string()),
            unreadable: Vec::new(),
        }
    }
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
    pub counts: BTreeMap<RowStatus, usize>,
    /// Namespaces that changed, failed, were rejected or were not processed (unchanged ones
    /// are only counted, so a no-op run over thousands of namespaces stays one short line).
    pub namespaces: Vec<Row>,
    /// Totals of the rows: what this run's downs freed and its ups restored.
    pub freed: Requested,
    pub restored: Requested,
    pub audit_records: usize,
    pub audit_error: Option<String>,
    pub duration_ms: u64,
    pub exit_code: u8,
    pub note: Option<String>,
}

/// One namespace of a dry-run plan, with what it would free or restore.
#[derive(Debug, Clone, Serialize)]
struct PlanView<'a> {
    #[serde(flatten)]
    plan: &'a NamespacePlan,
    #[serde(flatten)]
    totals: ResourceTotals,
}

#[derive(Debug, Clone, Serialize)]
struct PlanDoc<'a> {
    #[serde(flatten)]
    header: &'a Header,
    dry_run: bool,
    writes: usize,
    /// What the plan would free and restore, over every namespace.
    frees: Requested,
    restores: Requested,
    /// Namespaces with something to change or to report (unchanged ones are only counted).
    namespaces: Vec<PlanView<'a>>,
    /// Namespaces decided before planning: rejected requests, namespaces left alone.
    not_planned: Vec<&'a Row>,
    unchanged: usize,
}

fn amount(r: &Requested) -> String {
    format!("{:.2} vCPU, {:.2} GiB", r.vcpu(), r.gib())
}

/// The plan of a dry run, with the rows decided before planning (rejected requests, namespaces
/// left alone) in `extra`.
pub fn render_plan(format: OutputFormat, header: &Header, plans: &[NamespacePlan], extra: Vec<&Row>) -> String {
    let shown: Vec<PlanView> = plans
        .iter()
        .filter(|p| !p.is_noop() || !p.skipped.is_empty())
        .map(|plan| PlanView {
            plan,
            totals: plan.resource_totals(),
        })
        .collect();
    let writes = plans.iter().map(NamespacePlan::writes).sum();
    let unchanged = plans.iter().filter(|p| p.is_noop()).count();
    let frees: Requested = shown.iter().map(|v| v.totals.frees).sum();
    let restores: Requested = shown.iter().map(|v| v.totals.restores).sum();
    if format == OutputFormat::Json {
        let doc = PlanDoc {
            header,
            dry_run: true,
            writes,
            frees,
            restores,
            namespaces: shown,
            not_planned: extra,
            unchanged,
        };
        return serde_json::to_string(&doc).expect("plan serializes");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "DRY RUN {} at {} (business hours: {}): {} write(s) planned in {} namespace(s); {} unchanged; frees {}, restores {}",
        header.command,
        header.at,
        header.business_hours.map_or("n/a".into(), |b| b.to_string()),
        writes,
        plans.len() - unchanged,
        unchanged,
        amount(&frees),
        amount(&restores)
    );
    for view in &shown {
        plan_text(&mut out, view);
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

/// The text of one namespace of a dry-run plan: its changes, what is skipped, its Namespace
/// change, and what it frees or restores.
fn plan_text(out: &mut String, view: &PlanView) {
    let PlanView { plan: p, totals } = view;
    let _ = writeln!(
        out,
        "\n{} [{}] -> {} ({}, requested by {}; schedule {})",
        p.namespace,
        p.cost_center,
        p.target.as_str(),
        p.operation,
        p.requested_by,
        p.schedule
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
        if nc.after.active_request != nc.before.active_request {
            let _ = writeln!(
                out,
                "  {:<12} {:<40} window granted to ActivationRequest {}",
                "",
                "",
                show(&nc.after.active_request)
            );
        }
    }
    if p.at_target > 0 {
        let _ = writeln!(out, "  ({} workload(s) already at target)", p.at_target);
    }
    if !totals.frees.is_zero() {
        let _ = writeln!(out, "  frees {}", amount(&totals.frees));
    }
    if !totals.restores.is_zero() {
        let _ = writeln!(out, "  restores {}", amount(&totals.restores));
    }
    for gap in &totals.without_requests {
        let _ = writeln!(
            out,
            "  {:<12} {:<40} counted 0: {}",
            gap.kind.as_str(),
            gap.name,
            gap.reason
        );
    }
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
            "{:<32} {:<22} {:<9} {:>7} {:>7} {:>7} {:>7} {:>7}  STATUS",
            "NAMESPACE", "COST CENTER", "ACTION", "CHANGES", "SKIPPED", "REFUSED", "VCPU", "GIB"
        );
        for r in &s.namespaces {
            // What the row moved: freed by a down, restored by an up.
            let moved = r.freed + r.restored;
            let _ = write!(
                out,
                "{:<32} {:<22} {:<9} {:>7} {:>7} {:>7} {:>7.2} {:>7.2}  {}",
                r.namespace,
                r.cost_center,
                r.action,
                r.changes,
                r.skipped,
                r.refused,
                moved.vcpu(),
                moved.gib(),
                r.status
            );
            if !r.schedule.is_empty() && r.schedule != crate::schedule::CLUSTER_SCHEDULE {
                let _ = write!(out, " [schedule {}]", r.schedule);
            }
            if let Some(e) = &r.error {
                let _ = write!(out, " ({e})");
            }
            out.push('\n');
        }
    }
    let counts: Vec<String> = s.counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        out,
        "{} managed namespace(s): {}; freed {}; restored {}; {} write(s); {} audit record(s){}; {} ms; exit {}",
        s.header.namespaces_managed,
        if counts.is_empty() {
            "nothing to do".into()
        } else {
            counts.join(" ")
        },
        amount(&s.freed),
        amount(&s.restored),
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
