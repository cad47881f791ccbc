//! Items written and read back: the request figures and totals of docs/reference.md §8, and records written
//! before them.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::*;

const MI: u64 = 1 << 20;

fn record(resources: Vec<ResourceChange>) -> AuditRecord {
    AuditRecord {
        namespace_name: "qa-a".into(),
        timestamp_start: 1_772_427_600.125,
        timestamp_end: 1_772_427_601.5,
        duration_ms: 1375,
        operation_type: OperationType::AutoShutdownBusinessHours,
        cost_center: "QA-TESTING".into(),
        cluster_name: "eks".into(),
        requested_by: "system".into(),
        status: AuditStatus::Completed,
        run_id: "run-1".into(),
        resources,
        error: None,
        active_until: None,
        closed_by: None,
    }
}

fn n(item: &HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => Some(v.clone()),
        _ => None,
    }
}

#[test]
fn request_figures_and_totals_round_trip() {
    let r = record(vec![
        ResourceChange::changed("Deployment", "api", "3", "0", Some((800, 512 * MI))),
        ResourceChange::changed("StatefulSet", "db", "2", "0", Some((1000, 2048 * MI))),
        ResourceChange::changed("CronJob", "nightly", "suspend=false", "suspend=true", None),
    ]);
    let totals = r.totals().expect("every entry with replicas has its figures");
    assert_eq!(totals.cpu_millicores, 3 * 800 + 2 * 1000);
    assert_eq!(totals.memory_bytes, (3 * 512 + 2 * 2048) * MI);
    assert_eq!((totals.vcpu(), totals.gib()), (4.4, 5.5));

    let item = r.to_item();
    assert_eq!(n(&item, CPU_TOTAL_ATTRIBUTE).as_deref(), Some("4400"));
    assert_eq!(n(&item, MEMORY_TOTAL_ATTRIBUTE), Some((5632 * MI).to_string()));
    let Some(AttributeValue::L(entries)) = item.get("resources") else {
        panic!("resources: {item:?}")
    };
    let AttributeValue::M(api) = &entries[0] else { panic!() };
    assert_eq!(api.get("cpu_millicores"), Some(&AttributeValue::N("800".into())));
    let AttributeValue::M(cron) = &entries[2] else { panic!() };
    assert!(!cron.contains_key("cpu_millicores") && !cron.contains_key("memory_bytes"));

    assert_eq!(AuditRecord::from_item(&item).unwrap(), r);
}

#[test]
fn an_up_records_what_it_restores() {
    let r = record(vec![
        ResourceChange::changed("Deployment", "api", "0", "3", Some((800, 512 * MI))),
        // Someone set 2 while it was down: the up keeps it and restores nothing.
        ResourceChange::changed("Deployment", "worker", "2", "2", Some((500, MI))),
    ]);
    let totals = r.totals().unwrap();
    assert_eq!((totals.cpu_millicores, totals.memory_bytes), (2400, 1536 * MI));
}

#[test]
fn records_without_requests_still_read_and_have_no_totals() {
    // An item as the previous version wrote it: no request figures, no totals.
    let old = record(vec![ResourceChange::changed("Deployment", "api", "3", "0", None)]);
    let mut item = old.to_item();
    assert!(!item.contains_key(CPU_TOTAL_ATTRIBUTE) && !item.contains_key(MEMORY_TOTAL_ATTRIBUTE));
    let back = AuditRecord::from_item(&item).unwrap();
    assert_eq!(back, old);
    assert_eq!(back.totals(), None);

    // Older still: no resources at all reads as none (and totals of nothing are zero).
    item.remove("resources");
    let back = AuditRecord::from_item(&item).unwrap();
    assert!(back.resources.is_empty());
    assert_eq!(back.totals().map(|t| t.is_zero()), Some(true));
}

#[test]
fn unreadable_figures_read_as_absent() {
    let mut item = record(vec![ResourceChange::changed(
        "Deployment",
        "api",
        "3",
        "0",
        Some((1, 1)),
    )])
    .to_item();
    let Some(AttributeValue::L(entries)) = item.get_mut("resources") else {
        panic!()
    };
    let AttributeValue::M(entry) = &mut entries[0] else {
        panic!()
    };
    entry.insert("cpu_millicores".into(), AttributeValue::N("-5".into()));
    entry.insert("memory_bytes".into(), AttributeValue::S("lots".into()));
    let back = AuditRecord::from_item(&item).unwrap();
    assert_eq!(
        (back.resources[0].cpu_millicores, back.resources[0].memory_bytes),
        (None, None)
    );
    assert_eq!(back.totals(), None);
}

#[test]
fn replica_counts_that_do_not_read_make_totals_unknown() {
    let r = record(vec![ResourceChange::changed(
        "Deployment",
        "api",
        "three",
        "0",
        Some((100, 100)),
    )]);
    assert_eq!(r.totals(), None);
    assert!(!r.to_item().contains_key(CPU_TOTAL_ATTRIBUTE));
}

#[test]
fn every_status_reads_back_and_only_in_progress_is_not_final() {
    for status in AuditStatus::ALL {
        assert_eq!(status.as_str().parse::<AuditStatus>(), Ok(status));
        assert_eq!(status.is_final(), status != AuditStatus::InProgress, "{status:?}");
        let mut r = record(vec![]);
        r.status = status;
        assert_eq!(AuditRecord::from_item(&r.to_item()).unwrap().status, status);
    }
    assert!("done".parse::<AuditStatus>().is_err());
}

#[test]
fn a_write_is_shifted_on_both_timestamps_and_a_deletion_on_its_key() {
    let r = record(vec![]);
    let AuditWrite::Put(shifted) = AuditWrite::Put(Box::new(r.clone())).shifted(-10.0) else {
        panic!()
    };
    assert_eq!(
        (shifted.timestamp_start, shifted.timestamp_end),
        (r.timestamp_start - 10.0, r.timestamp_end - 10.0)
    );
    let delete = AuditWrite::Delete {
        namespace_name: "qa-a".into(),
        timestamp_start: 5.0,
    }
    .shifted(2.5);
    assert_eq!(
        delete,
        AuditWrite::Delete {
            namespace_name: "qa-a".into(),
            timestamp_start: 7.5
        }
    );
}
