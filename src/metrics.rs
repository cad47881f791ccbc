//! Run metrics as one CloudWatch Embedded Metric Format line (docs/reference.md §8, `METRICS_FORMAT=emf`).
//!
//! A pure rendering of a run's figures: the engine calls [`render`] once at the end of a run and
//! prints the line on stdout, on a line of its own. CloudWatch Logs turns such a line into
//! metrics when the log event reaches it as `json/emf` (docs/savings.md says how).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::resources::Requested;

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "NamespaceScheduler";
/// The one dimension: the `EKS_CLUSTER_NAME` of the run.
pub const DIMENSION: &str = "ClusterName";

/// `METRICS_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsFormat {
    /// No metrics line (the default).
    #[default]
    None,
    /// One EMF line per run.
    Emf,
}

impl std::str::FromStr for MetricsFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(MetricsFormat::None),
            "emf" => Ok(MetricsFormat::Emf),
            _ => Err("expected none or emf".to_string()),
        }
    }
}

/// What one run did, as the engine counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    /// When the run ended (the metrics' timestamp).
    pub at: DateTime<Utc>,
    pub cluster_name: String,
    /// `run`, `up` or `down`: a plain member, not a dimension (Logs Insights can filter on it).
    pub command: String,
    pub run_id: String,
    pub namespaces_changed: u64,
    pub namespaces_failed: u64,
    pub namespaces_rejected: u64,
    pub workloads_changed: u64,
    /// What the run's downs freed ([`crate::scaling::plan::ResourceTotals::frees`], summed).
    pub freed: Requested,
    /// What the run's ups restored.
    pub restored: Requested,
    pub duration_ms: u64,
}

/// The metric names and their CloudWatch units, in the order they are declared.
pub const METRICS: [(&str, &str); 9] = [
    ("NamespacesChanged", "Count"),
    ("NamespacesFailed", "Count"),
    ("NamespacesRejected", "Count"),
    ("WorkloadsChanged", "Count"),
    // CloudWatch has no vCPU unit, and its `Gigabytes` does not say 2^30: the unit is in the name.
    ("VCpuFreed", "None"),
    ("MemoryGiBFreed", "None"),
    ("VCpuRestored", "None"),
    ("MemoryGiBRestored", "None"),
    ("Duration", "Milliseconds"),
];

/// The line to print for `format`, or None when metrics are off.
pub fn render(format: MetricsFormat, figures: &RunFigures) -> Option<String> {
    match format {
        MetricsFormat::None => None,
        MetricsFormat::Emf => Some(emf_line(figures)),
    }
}

/// One EMF document on one line: `_aws` metadata, the `ClusterName` dimension and every metric
/// as top-level members.
pub fn emf_line(f: &RunFigures) -> String {
    let values: [Value; 9] = [
        json!(f.namespaces_changed),
        json!(f.namespaces_failed),
        json!(f.namespaces_rejected),
        json!(f.workloads_changed),
        json!(f.freed.vcpu()),
        json!(f.freed.gib()),
        json!(f.restored.vcpu()),
        json!(f.restored.gib()),
        json!(f.duration_ms),
    ];
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": f.at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[DIMENSION]],
                "Metrics": METRICS.iter().map(|(name, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    root.insert(DIMENSION.into(), json!(f.cluster_name));
    for ((name, _), value) in METRICS.iter().zip(values) {
        root.insert((*name).into(), value);
    }
    root.insert("command".into(), json!(f.command));
    root.insert("run_id".into(), json!(f.run_id));
    Value::Object(root).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The CloudWatch units the EMF schema accepts (`MetricUnit` pattern of the specification).
    const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];

    /// Checks a document against the EMF specification's required members and constraints;
    /// returns every violation found.
    fn emf_violations(line: &str) -> Vec<String> {
        let mut bad = Vec::new();
        if line.contains('\n') {
            bad.push("more than one line".into());
        }
        let root: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return vec![format!("not JSON: {e}")],
        };
        let Some(root) = root.as_object() else {
            return vec!["root is not an object".into()];
        };
        let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
            return vec!["no _aws object".into()];
        };
        match aws.get("Timestamp") {
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => {}
            other => bad.push(format!("Timestamp is not an integer: {other:?}")),
        }
        let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
            bad.push("CloudWatchMetrics is not an array".into());
            return bad;
        };
        let name_ok = |s: &str| (1..=255).contains(&s.chars().count());
        for d in directives {
            match d.get("Namespace").and_then(Value::as_str) {
                Some(ns) if name_ok(ns) => {}
                other => bad.push(format!("Namespace: {other:?}")),
            }
            match d.get("Dimensions").and_then(Value::as_array) {
                Some(sets) if !sets.is_empty() => {
                    for set in sets {
                        let Some(keys) = set.as_array().filter(|k| k.len() <= 9) else {
                            bad.push(format!("DimensionSet is not an array of at most 9: {set}"));
                            continue;
                        };
                        for key in keys {
                            match key.as_str() {
                                Some(k) if name_ok(k) => match root.get(k) {
                                    Some(Value::String(v)) if !v.is_empty() && v.len() <= 1024 => {}
                                    other => bad.push(format!("dimension {k} is not a string member: {other:?}")),
                                },
                                _ => bad.push(format!("dimension key is not a string: {key}")),
                            }
                        }
                    }
                }
                other => bad.push(format!("Dimensions is not a non-empty array: {other:?}")),
            }
            match d.get("Metrics").and_then(Value::as_array) {
                Some(metrics) if metrics.len() <= 100 => {
                    for m in metrics {
                        let Some(name) = m.get("Name").and_then(Value::as_str).filter(|n| name_ok(n)) else {
                            bad.push(format!("metric without a valid Name: {m}"));
                            continue;
                        };
                        match m.get("Unit") {
                            None => {}
                            Some(Value::String(u)) if UNITS.contains(&u.as_str()) => {}
                            Some(u) => bad.push(format!("{name}: unit {u} is not a CloudWatch unit")),
                        }
                        match root.get(name) {
                            Some(Value::Number(_)) => {}
                            Some(Value::Array(a)) if a.len() <= 100 && a.iter().all(Value::is_number) => {}
                            other => bad.push(format!("metric {name} is not a numeric member: {other:?}")),
                        }
                    }
                }
                other => bad.push(format!("Metrics is not an array of at most 100: {other:?}")),
            }
        }
        bad
    }

    fn figures() -> RunFigures {
        RunFigures {
            at: Utc.with_ymd_and_hms(2026, 3, 2, 23, 0, 0).unwrap() + chrono::Duration::milliseconds(481),
            cluster_name: "eks-dev".into(),
            command: "run".into(),
            run_id: "20260302T230000Z-abcdef".into(),
            namespaces_changed: 12,
            namespaces_failed: 1,
            namespaces_rejected: 0,
            workloads_changed: 84,
            freed: Requested {
                cpu_millicores: 4400,
                memory_bytes: 5632 << 20,
            },
            restored: Requested::default(),
            duration_ms: 1834,
        }
    }

    #[test]
    fn the_line_is_a_valid_emf_document_with_every_figure() {
        let line = emf_line(&figures());
        assert_eq!(emf_violations(&line), Vec::<String>::new(), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_772_492_400_481i64);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "NamespaceScheduler");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["ClusterName"]])
        );
        assert_eq!(v["ClusterName"], "eks-dev");
        for (name, want) in [
            ("NamespacesChanged", json!(12)),
            ("NamespacesFailed", json!(1)),
            ("NamespacesRejected", json!(0)),
            ("WorkloadsChanged", json!(84)),
            ("VCpuFreed", json!(4.4)),
            ("MemoryGiBFreed", json!(5.5)),
            ("VCpuRestored", json!(0.0)),
            ("MemoryGiBRestored", json!(0.0)),
            ("Duration", json!(1834)),
        ] {
            assert_eq!(v[name], want, "{name}");
        }
        let declared: Vec<&str> = v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(declared.len(), 9);
    }

    #[test]
    fn the_line_is_the_one_docs_savings_md_shows() {
        // read at test time, not compiled in: the image build has no docs/
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/savings.md")).unwrap();
        let line = emf_line(&figures());
        assert!(doc.contains(&line), "docs/savings.md does not show the line: {line}");
    }

    #[test]
    fn the_validator_catches_what_the_specification_forbids() {
        let good: Value = serde_json::from_str(&emf_line(&figures())).unwrap();
        let broken = |f: &dyn Fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            emf_violations(&v.to_string())
        };
        assert!(!broken(&|v| v["_aws"]["Timestamp"] = json!(1.5)).is_empty());
        assert!(!broken(&|v| v["_aws"]["Timestamp"] = json!("now")).is_empty());
        assert!(!broken(&|v| {
            v.as_object_mut().unwrap().remove("ClusterName");
        })
        .is_empty());
        assert!(!broken(&|v| v["ClusterName"] = json!(3)).is_empty());
        assert!(!broken(&|v| v["VCpuFreed"] = json!("4.4")).is_empty());
        assert!(!broken(&|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("vCPU")).is_empty());
        assert!(!broken(&|v| v["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([])).is_empty());
        assert!(!broken(&|v| v["_aws"]["CloudWatchMetrics"][0]["Namespace"] = json!("")).is_empty());
        assert!(!broken(&|v| {
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"] =
                json!((0..101).map(|i| json!({"Name": format!("M{i}")})).collect::<Vec<_>>())
        })
        .is_empty());
        assert!(!broken(&|v| {
            v.as_object_mut().unwrap().remove("_aws");
        })
        .is_empty());
    }

    #[test]
    fn metrics_format_values() {
        assert_eq!("emf".parse::<MetricsFormat>(), Ok(MetricsFormat::Emf));
        assert_eq!("EMF".parse::<MetricsFormat>(), Ok(MetricsFormat::Emf));
        assert_eq!("none".parse::<MetricsFormat>(), Ok(MetricsFormat::None));
        assert!("prometheus".parse::<MetricsFormat>().is_err());
        assert!("".parse::<MetricsFormat>().is_err());
        assert_eq!(render(MetricsFormat::None, &figures()), None);
        assert!(render(MetricsFormat::Emf, &figures()).is_some_and(|l| l.starts_with('{')));
    }
}
