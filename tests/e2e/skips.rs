//! Loud skips (docs/reference.md §4): a workload left alone because our annotation on it does not
//! read is named, with the reason, in the summary (text and JSON), the audit record and a Warning
//! Event at every run until someone fixes it; its namespace is never "unchanged", and the exit
//! code stays 0. Skips by rule (excluded, operator-owned, off on purpose) stay quiet.

use serde_json::{json, Value};

use crate::harness::*;

const ORIG: &str = "namespace-scheduler/original-replicas";
const ORIG_SUSPEND: &str = "namespace-scheduler/original-suspend";

async fn skipped_warnings(c: &Cluster, ns: &str) -> Vec<Value> {
    let mut warnings = c.events(ns, "Skipped").await;
    warnings.retain(|e| e["type"] == "Warning");
    warnings
}

/// Someone edits our annotations on `broken` and `job`.
async fn write_originals(c: &Cluster, ns: &str, replicas: &str, suspend: &str) {
    let patch = |key: &str, value: &str| json!({"metadata": {"annotations": {key: value}}});
    c.patch("Deployment", Some(ns), "broken", patch(ORIG, replicas)).await;
    c.patch("CronJob", Some(ns), "job", patch(ORIG_SUSPEND, suspend)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_original_is_left_alone_and_named_at_every_run_until_fixed() {
    let c = Cluster::start().await;
    let ns = c.namespace("garbled", &[]).await;
    c.deployment(&ns, "api", 3).await;
    c.deployment(&ns, "broken", 2).await;
    c.cronjob(&ns, "job", false).await;
    // Off on purpose: skipped by rule, quietly.
    c.deployment(&ns, "idle", 0).await;
    assert_eq!(c.run(&["run", "--at", OFF_HOURS]).await.0, 0);
    write_originals(&c, &ns, "abc", "maybe").await;

    let (code, s, err) = c.run_json(BUSINESS, &[]).await;
    assert_eq!(code, 0, "{s}\n{err}");
    let r = row(&s, &ns);
    assert_eq!(r["status"], "completed", "{r}");
    let unreadable = r["unreadable"].as_array().expect("named in the JSON summary");
    let named: Vec<(&str, bool)> = unreadable
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap(),
                u["reason"].as_str().unwrap().contains("unreadable"),
            )
        })
        .collect();
    assert_eq!(named, vec![("broken", true), ("job", true)], "{r}");
    let note = r["error"].as_str().unwrap();
    assert!(
        note.contains(&format!("{ORIG}=\"abc\"")) && note.contains(ORIG_SUSPEND),
        "{note}"
    );
    assert!(!note.contains("idle"), "a skip by rule stays quiet: {note}");
    // Left at 0 with its annotation, never a guessed count; the rest is up.
    assert_eq!(c.replicas("Deployment", &ns, "broken").await, 0);
    assert_eq!(
        c.annotation("Deployment", Some(&ns), "broken", ORIG).await.as_deref(),
        Some("abc")
    );
    assert!(c.suspended(&ns, "job").await);
    assert_eq!(c.replicas("Deployment", &ns, "api").await, 3);
    let warnings = skipped_warnings(&c, &ns).await;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(message.contains(ORIG) && message.contains("broken"), "{message}");
    let record = c
        .audit()
        .await
        .into_iter()
        .find(|a| a.namespace_name == ns && Some(a.run_id.as_str()) == s["run_id"].as_str())
        .expect("an audit record");
    let entry = record
        .resources
        .iter()
        .find(|x| x.name == "broken")
        .expect("broken named");
    assert!(entry.skipped.as_deref().is_some_and(|m| m.contains(ORIG)), "{entry:?}");
    assert!(!record.resources.iter().any(|x| x.name == "idle"), "{record:?}");

    // The next run has nothing to write, yet names it again (text output too): never "unchanged".
    let (code, text, err) = c.run(&["run", "--at", BUSINESS]).await;
    assert_eq!(code, 0, "{text}\n{err}");
    let line = text
        .lines()
        .find(|l| l.starts_with(&ns))
        .unwrap_or_else(|| panic!("no row: {text}"));
    assert!(line.contains("completed") && line.contains("abc"), "{line}");
    assert!(!text.contains("unchanged=1"), "{text}");
    assert_eq!(skipped_warnings(&c, &ns).await.len(), 2, "a Warning at every run");
    // Down, up, and this run: a record each.
    assert_eq!(c.audit().await.iter().filter(|a| a.namespace_name == ns).count(), 3);

    // Fixed: restored, and the namespace goes quiet.
    write_originals(&c, &ns, "2", "false").await;
    assert_eq!(c.run(&["run", "--at", BUSINESS]).await.0, 0);
    assert_eq!(c.replicas("Deployment", &ns, "broken").await, 2);
    assert!(!c.suspended(&ns, "job").await);
    let (code, s, _) = c.run_json(BUSINESS, &[]).await;
    assert_eq!(code, 0);
    assert!(find_row(&s, &ns).is_none(), "{s}");
    assert_eq!(s["counts"]["unchanged"], 1, "{s}");
}
